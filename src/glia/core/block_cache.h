// The bookkeeping of a caching allocator for memory that is slow to get from its source (cudaMalloc
// synchronizes the device): size classes, splitting and merging of cached blocks, statistics, and
// holds for recorded CUDA Graphs. Kept apart from the CUDA calls so that it is tested on any machine.
#pragma once

#include <cstddef>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "glia/core/storage.h"

namespace glia::detail {

/// Where a BlockCache gets its memory.
class MemorySource {
 public:
  virtual ~MemorySource() = default;
  /// `bytes` of memory, or nullptr when the source is out of memory (other failures throw).
  virtual void* get(size_t bytes) = 0;
  virtual void put(void* p) = 0;
  /// Throws the error for a request of `asked` bytes that failed even after the cache was emptied.
  [[noreturn]] virtual void out_of_memory(size_t asked, const AllocatorStats& s) = 0;
};

/// Requests up to kSmallLimit round to kSmallRound and come from kSmallSegment segments; larger ones
/// round to kLargeRound and get a segment each. Freed blocks are cached, merged with free neighbours
/// of their segment and handed out again at once (the user orders reuse, e.g. by one stream per
/// device). When the source is out of memory, whole cached segments are returned and the request
/// retried once (not while a graph is recorded: the request fails). While a capture owner is set, blocks handed out
/// belong to it too: freeing one keeps it (counted as allocated) until release_owner, so nothing else reuses a recorded
/// graph's memory. Within the recording itself, later requests reuse the blocks it freed (best fit, same pool, large
/// ones at most twice the size asked): the graph replays its work in the order it was recorded, on one stream, as the
/// work ran eagerly.
class BlockCache final : public Allocator {
 public:
  static constexpr size_t kSmallLimit = size_t(1) << 20;
  static constexpr size_t kSmallRound = 512;
  static constexpr size_t kSmallSegment = size_t(2) << 20;
  static constexpr size_t kLargeRound = size_t(2) << 20;

  explicit BlockCache(MemorySource& source) : source_(source) {}
  /// Returns the cached segments to the source (live blocks are the owners' to free first).
  ~BlockCache() override;
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;
  AllocatorStats stats() const override;
  void reset_peak() override;
  void empty_cache() override;

  void set_capture_owner(const void* owner);
  void release_owner(const void* owner);

 private:
  struct Block {
    char* ptr = nullptr;
    size_t size = 0;
    bool small = false;
    bool free = true;
    Block* prev = nullptr;  // neighbours within one segment
    Block* next = nullptr;
    const void* owner = nullptr;  // the graph recorded while this block was handed out, if any
  };
  struct BySize {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };
  void release_block(Block* b);
  void release_cached();
  char* get_or_retry(size_t seg, size_t asked);

  MemorySource& source_;
  mutable std::mutex mu_;
  std::set<Block*, BySize> small_, large_;
  std::unordered_map<void*, Block*> live_;
  const void* capture_owner_ = nullptr;
  std::unordered_map<const void*, std::vector<Block*>> held_;
  std::set<Block*, BySize> capture_free_;  // held blocks of capture_owner_ freed during its recording
  AllocatorStats stats_;
};

}  // namespace glia::detail
