// The CPU caching allocator and Storage.
//
// Freed blocks go to a free list per size class instead of back to the
// system: large buffers then keep their pages mapped, so a training step
// does not page-fault through its activations every iteration, and a
// compiled step can prove it allocates nothing new (system_allocs).
#include "glia/core/storage.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "glia/core/allocation_budget.h"
#include "glia/core/cuda_hooks.h"
#include "glia/core/error.h"

namespace glia {
namespace {

constexpr size_t kAlign = 64;

/// Size classes: multiples of 64 up to 1 KiB, then four classes per power of two,
/// so a block is at most 25% larger than asked.
size_t size_class(size_t n) {
  if (n <= 1024) return (n + kAlign - 1) / kAlign * kAlign;
  size_t p = size_t(1) << (63 - __builtin_clzll(n - 1));  // largest power of two < n
  size_t step = p / 4;
  return (n + step - 1) / step * step;
}

class CpuCachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    size_t cls = size_class(nbytes);
    {
      std::lock_guard<std::mutex> g(mu_);
      ++stats_.alloc_calls;
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= static_cast<int64_t>(cls);
        note_alloc(cls);
        return p;
      }
      ++stats_.system_allocs;
    }
    void* p = std::aligned_alloc(kAlign, cls);
    if (!p) {
      empty_cache();
      p = std::aligned_alloc(kAlign, cls);
    }
    if (!p) throw ValueError(detail::str("out of memory: could not allocate ", nbytes, " bytes on cpu"));
    std::lock_guard<std::mutex> g(mu_);
    stats_.reserved_bytes += static_cast<int64_t>(cls);
    note_alloc(cls);
    return p;
  }

  void deallocate(void* p, size_t nbytes) override {
    if (!p) return;
    size_t cls = size_class(nbytes);
    std::lock_guard<std::mutex> g(mu_);
    stats_.allocated_bytes -= static_cast<int64_t>(cls);
    if (cached_ + static_cast<int64_t>(cls) > kMaxCached) {
      stats_.reserved_bytes -= static_cast<int64_t>(cls);
      std::free(p);
      return;
    }
    free_[cls].push_back(p);
    cached_ += static_cast<int64_t>(cls);
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> g(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> g(mu_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }
  void empty_cache() override {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [cls, v] : free_) {
      for (void* p : v) std::free(p);
      stats_.reserved_bytes -= static_cast<int64_t>(cls * v.size());
      v.clear();
    }
    cached_ = 0;
  }

 private:
  void note_alloc(size_t cls) {
    stats_.allocated_bytes += static_cast<int64_t>(cls);
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  }
  static constexpr int64_t kMaxCached = int64_t(4) << 30;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  int64_t cached_ = 0;
  AllocatorStats stats_;
};

}  // namespace

Allocator& allocator_for(Device d) {
  // Leaked on purpose: tensors held in static objects may die after it would.
  static auto* cpu = new CpuCachingAllocator();
  if (d.is_cuda()) return detail::cuda_allocator(d.index);
  return *cpu;
}

AllocatorStats memory_stats(Device d) { return allocator_for(d).stats(); }
void reset_peak_memory_stats(Device d) { allocator_for(d).reset_peak(); }
void empty_cache(Device d) { allocator_for(d).empty_cache(); }

namespace {
thread_local AllocationBudget* t_budget = nullptr;
}  // namespace

AllocationBudget::AllocationBudget(int64_t bytes, std::string what)
    : left_(bytes), what_(std::move(what)), prev_(t_budget) {
  t_budget = this;
}

AllocationBudget::~AllocationBudget() { t_budget = prev_; }

void AllocationBudget::charge(size_t nbytes) {
  AllocationBudget* b = t_budget;
  if (b == nullptr) return;
  if (static_cast<uint64_t>(nbytes) > static_cast<uint64_t>(std::max<int64_t>(b->left_, 0)))
    throw ValueError(detail::str(b->what_, ": asks to allocate ", nbytes, " bytes, more than the ",
                                 std::max<int64_t>(b->left_, 0), " bytes left of its budget"));
  b->left_ -= static_cast<int64_t>(nbytes);
}

Storage::Storage(size_t nbytes, Device d) : data_(nullptr), nbytes_(nbytes), device_(d), allocator_(&allocator_for(d)) {
  AllocationBudget::charge(nbytes);
  data_ = allocator_->allocate(nbytes);
}

Storage::Storage(void* data, size_t nbytes, Device d, std::function<void(void*)> deleter)
    : data_(data), nbytes_(nbytes), device_(d), allocator_(nullptr), deleter_(std::move(deleter)) {}

Storage::~Storage() {
  if (allocator_) {
    allocator_->deallocate(data_, nbytes_);
  } else if (deleter_) {
    deleter_(data_);
  }
}

}  // namespace glia
