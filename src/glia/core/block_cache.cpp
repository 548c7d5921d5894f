#include "glia/core/block_cache.h"

#include <algorithm>

namespace glia::detail {
namespace {
size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }
}  // namespace

BlockCache::~BlockCache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached();
}

void* BlockCache::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  bool small = nbytes <= kSmallLimit;
  size_t size = small ? round_up(nbytes, kSmallRound) : round_up(nbytes, kLargeRound);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.alloc_calls;
  auto& pool = small ? small_ : large_;
  Block key;
  key.size = size;
  if (capture_owner_) {  // a block this recording already freed: still allocated, and the graph's
    for (auto it = capture_free_.lower_bound(&key); it != capture_free_.end(); ++it) {
      Block* b = *it;
      if (!small && b->size > 2 * size) break;  // keep big blocks for big requests
      if (b->small != small) continue;
      capture_free_.erase(it);
      auto& held = held_[capture_owner_];
      held.erase(std::find(held.begin(), held.end(), b));
      live_[b->ptr] = b;
      return b->ptr;
    }
  }
  auto it = pool.lower_bound(&key);
  Block* b = nullptr;
  if (it != pool.end()) {
    b = *it;
    pool.erase(it);
  } else {
    ++stats_.system_allocs;
    size_t seg = small ? kSmallSegment : size;
    char* p = get_or_retry(seg, nbytes);
    b = new Block{p, seg, small, true, nullptr, nullptr, nullptr};
    stats_.reserved_bytes += static_cast<int64_t>(seg);
  }
  // Split: the rest stays cached. Large blocks are only split when the rest is itself large.
  size_t rest = b->size - size;
  if (rest >= (small ? kSmallRound : kSmallLimit + 1)) {
    auto* r = new Block{b->ptr + size, rest, small, true, b, b->next, nullptr};
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = size;
    pool.insert(r);
  }
  b->free = false;
  b->owner = capture_owner_;
  live_[b->ptr] = b;
  stats_.allocated_bytes += static_cast<int64_t>(b->size);
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return b->ptr;
}

void BlockCache::deallocate(void* p, size_t) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;
  Block* b = it->second;
  live_.erase(it);
  // A recorded graph writes this block on every replay: it stays the graph's until the graph goes.
  if (b->owner) {
    held_[b->owner].push_back(b);
    if (b->owner == capture_owner_) capture_free_.insert(b);
    return;
  }
  release_block(b);
}

AllocatorStats BlockCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void BlockCache::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
}

void BlockCache::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached();
}

void BlockCache::set_capture_owner(const void* owner) {
  std::lock_guard<std::mutex> lock(mu_);
  capture_owner_ = owner;
  capture_free_.clear();  // still held; only the recording that freed them may reuse them
}

void BlockCache::release_owner(const void* owner) {
  std::lock_guard<std::mutex> lock(mu_);
  if (owner == capture_owner_) capture_free_.clear();
  auto it = held_.find(owner);
  if (it != held_.end()) {
    for (Block* b : it->second) release_block(b);
    held_.erase(it);
  }
  for (auto& [ptr, b] : live_)
    if (b->owner == owner) b->owner = nullptr;
}

void BlockCache::release_block(Block* b) {
  stats_.allocated_bytes -= static_cast<int64_t>(b->size);
  b->free = true;
  b->owner = nullptr;
  auto& pool = b->small ? small_ : large_;
  // Merge with free neighbours of the same segment.
  auto absorb = [](Block* a, Block* next) {  // a takes in next, the block right after it
    a->size += next->size;
    a->next = next->next;
    if (next->next) next->next->prev = a;
    delete next;
  };
  if (b->prev && b->prev->free) {
    Block* a = b->prev;
    pool.erase(a);
    absorb(a, b);
    b = a;
  }
  if (b->next && b->next->free) {
    pool.erase(b->next);
    absorb(b, b->next);
  }
  pool.insert(b);
}

// Returns the cached blocks that are whole segments (others share their segment with live blocks).
void BlockCache::release_cached() {
  for (auto* pool : {&small_, &large_}) {
    for (auto it = pool->begin(); it != pool->end();) {
      Block* b = *it;
      if (!b->prev && !b->next) {
        source_.put(b->ptr);
        stats_.reserved_bytes -= static_cast<int64_t>(b->size);
        delete b;
        it = pool->erase(it);
      } else {
        ++it;
      }
    }
  }
}

char* BlockCache::get_or_retry(size_t seg, size_t asked) {
  void* p = source_.get(seg);
  // Not while a graph is recorded: giving memory back synchronizes, which would break the
  // recording. The request fails; the caller's run outside the recording retries.
  if (!p && !capture_owner_) {
    release_cached();
    p = source_.get(seg);
  }
  if (!p) source_.out_of_memory(asked, stats_);
  return static_cast<char*>(p);
}

}  // namespace glia::detail
