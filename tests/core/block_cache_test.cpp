// The block cache under the CUDA allocator, on host memory: rounding, splitting and merging,
// reuse, emptying, out-of-memory with one retry, and the holds of recorded CUDA Graphs. The same
// code serves every GPU, so it is checked here, where there is none.
#include "glia/core/block_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

namespace glia::detail {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

/// Host memory with a capacity, counting what is taken and given back.
class FakeSource final : public MemorySource {
 public:
  explicit FakeSource(size_t capacity) : capacity_(capacity) {}
  ~FakeSource() override {
    for (auto& [p, n] : live) std::free(p);
  }
  void* get(size_t bytes) override {
    ++gets;
    if (used + bytes > capacity_) return nullptr;
    void* p = std::malloc(bytes);
    live[p] = bytes;
    used += bytes;
    return p;
  }
  void put(void* p) override {
    ++puts;
    used -= live.at(p);
    live.erase(p);
    std::free(p);
  }
  [[noreturn]] void out_of_memory(size_t asked, const AllocatorStats& s) override {
    throw std::runtime_error("oom asked " + std::to_string(asked) + " allocated " + std::to_string(s.allocated_bytes));
  }
  std::map<void*, size_t> live;
  size_t used = 0, gets = 0, puts = 0;

 private:
  size_t capacity_;
};

char* at(void* p) { return static_cast<char*>(p); }

TEST(BlockCache, SmallRequestsRoundAndShareASegment) {
  FakeSource src(64 * kMiB);
  BlockCache c(src);
  void* a = c.allocate(1);
  void* b = c.allocate(513);
  void* d = c.allocate(512);
  EXPECT_EQ(src.gets, 1u);  // one 2 MiB segment serves all three
  EXPECT_EQ(at(b) - at(a), 512);
  EXPECT_EQ(at(d) - at(b), 1024);
  AllocatorStats s = c.stats();
  EXPECT_EQ(s.allocated_bytes, 2048);
  EXPECT_EQ(s.reserved_bytes, static_cast<int64_t>(BlockCache::kSmallSegment));
  EXPECT_EQ(s.system_allocs, 1);
  EXPECT_EQ(s.alloc_calls, 3);
  c.deallocate(b, 513);
  EXPECT_EQ(c.stats().allocated_bytes, 1024);
  EXPECT_EQ(c.stats().peak_allocated_bytes, 2048);
  // The freed 1024 bytes are reused at once, without the source.
  EXPECT_EQ(c.allocate(1000), b);
  EXPECT_EQ(src.gets, 1u);
  EXPECT_EQ(c.allocate(0), nullptr);
}

TEST(BlockCache, FreedNeighboursMergeAndEmptyCacheReturnsWholeSegments) {
  FakeSource src(64 * kMiB);
  BlockCache c(src);
  void* a = c.allocate(1000);
  void* b = c.allocate(1000);
  void* d = c.allocate(1000);
  c.deallocate(a, 1000);
  c.deallocate(b, 1000);  // merges with a
  // 2048 bytes fit where a and b were, before d.
  void* e = c.allocate(2048);
  EXPECT_EQ(e, a);
  c.deallocate(e, 2048);
  c.empty_cache();
  EXPECT_EQ(src.puts, 0u);  // d still lives in the segment
  c.deallocate(d, 1000);    // now the segment is whole again
  c.empty_cache();
  EXPECT_EQ(src.puts, 1u);
  EXPECT_EQ(c.stats().reserved_bytes, 0);
  EXPECT_EQ(c.stats().allocated_bytes, 0);
}

TEST(BlockCache, LargeRequestsRoundTo2MiBAndSplitOnlyIntoLargeRests) {
  FakeSource src(64 * kMiB);
  BlockCache c(src);
  void* a = c.allocate(3 * kMiB);  // a 4 MiB segment
  EXPECT_EQ(src.live.begin()->second, 4 * kMiB);
  c.deallocate(a, 3 * kMiB);
  // 1.5 MiB rounds to 2 MiB; the 2 MiB rest is large, so the cached segment is split.
  void* b = c.allocate(kMiB + kMiB / 2);
  EXPECT_EQ(b, a);
  void* d = c.allocate(2 * kMiB);
  EXPECT_EQ(at(d) - at(b), static_cast<std::ptrdiff_t>(2 * kMiB));
  EXPECT_EQ(src.gets, 1u);
  EXPECT_EQ(c.stats().allocated_bytes, static_cast<int64_t>(4 * kMiB));
}

TEST(BlockCache, OutOfMemoryEmptiesTheCacheRetriesOnceThenReports) {
  FakeSource src(6 * kMiB);
  BlockCache c(src);
  void* a = c.allocate(4 * kMiB);
  c.deallocate(a, 4 * kMiB);       // cached, holding 4 of the 6 MiB
  void* b = c.allocate(6 * kMiB);  // fails, empties the cache, succeeds
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(src.puts, 1u);
  EXPECT_EQ(src.gets, 3u);
  try {
    c.allocate(2 * kMiB);
    ADD_FAILURE() << "expected out of memory";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("asked 2097152 allocated 6291456"));
  }
  c.deallocate(b, 6 * kMiB);
  // While a graph is recorded, returning memory to the source (cudaFree, which synchronizes) would
  // break the recording: the request fails at once, the recording is dropped, and the step's
  // kernel-by-kernel run retries outside it.
  FakeSource src2(4 * kMiB);
  BlockCache c2(src2);
  c2.deallocate(c2.allocate(1000), 1000);  // a cached 2 MiB small segment
  int graph = 0;
  c2.set_capture_owner(&graph);
  EXPECT_THROW(c2.allocate(4 * kMiB), std::runtime_error);
  EXPECT_EQ(src2.puts, 0u);
  c2.set_capture_owner(nullptr);
  void* d = c2.allocate(4 * kMiB);  // now the cache is emptied and the request retried
  EXPECT_EQ(src2.puts, 1u);
  c2.deallocate(d, 4 * kMiB);
}

// Blocks handed out while a graph is recorded stay the graph's after their tensors free them:
// nobody else gets them until the graph is released.
TEST(BlockCache, RecordedGraphsHoldTheirBlocksUntilReleased) {
  FakeSource src(64 * kMiB);
  BlockCache c(src);
  int graph = 0, other = 0;
  c.set_capture_owner(&graph);
  void* t = c.allocate(4096);     // a kernel's temporary while recording
  void* kept = c.allocate(8192);  // an output that outlives the recording
  c.deallocate(t, 4096);          // freed during the recording: held
  c.set_capture_owner(nullptr);
  EXPECT_EQ(c.stats().allocated_bytes, 4096 + 8192);
  std::set<void*> handed;
  for (int i = 0; i < 8; ++i) handed.insert(c.allocate(4096));
  EXPECT_FALSE(handed.count(t)) << "a held block was handed out again";
  c.deallocate(kept, 8192);  // freed after the recording: held too
  EXPECT_EQ(c.stats().allocated_bytes, 4096 + 8192 + 8 * 4096);
  c.release_owner(&other);  // another graph's release changes nothing
  EXPECT_EQ(c.stats().allocated_bytes, 4096 + 8192 + 8 * 4096);
  c.release_owner(&graph);
  EXPECT_EQ(c.stats().allocated_bytes, 8 * 4096);
  // Both are back in the cache: the next requests of their sizes get them.
  void* again = c.allocate(8192);
  EXPECT_TRUE(again == kept || again == t);
  for (void* p : handed) c.deallocate(p, 4096);
  c.deallocate(again, 8192);
  EXPECT_EQ(c.stats().allocated_bytes, 0);
  // A block made while recording but freed only after release is an ordinary block.
  c.set_capture_owner(&graph);
  void* late = c.allocate(512);
  c.set_capture_owner(nullptr);
  c.release_owner(&graph);
  c.deallocate(late, 512);
  EXPECT_EQ(c.stats().allocated_bytes, 0);
  EXPECT_EQ(c.allocate(512), late);
}

// Within one recording, freed blocks serve its later requests (the replay runs in the recorded
// order on one stream), so a step's temporaries share memory as they do eagerly; after the
// recording they are the graph's alone.
TEST(BlockCache, ARecordingReusesTheBlocksItFreed) {
  FakeSource src(64 * kMiB);
  BlockCache c(src);
  int graph = 0, other = 0;
  c.set_capture_owner(&graph);
  void* a = c.allocate(3 * kMiB);  // a workspace, freed after its kernel
  c.deallocate(a, 3 * kMiB);
  void* b = c.allocate(3 * kMiB);  // the next kernel's workspace: the same block
  EXPECT_EQ(b, a);
  void* s = c.allocate(1000);
  c.deallocate(s, 1000);
  EXPECT_EQ(c.allocate(600), s) << "best fit among the small blocks it freed";
  c.deallocate(b, 3 * kMiB);
  void* tiny = c.allocate(2 * kMiB);  // 4 MiB held: at most twice the size asked, so reused
  EXPECT_EQ(tiny, a);
  c.deallocate(tiny, 2 * kMiB);
  EXPECT_NE(c.allocate(512 * 1024), a) << "a small request took a large block";
  EXPECT_EQ(c.stats().allocated_bytes, 4 * kMiB + 1024 + 512 * 1024);
  EXPECT_EQ(c.stats().peak_allocated_bytes, 4 * kMiB + 1024 + 512 * 1024);
  // Another recording, or the eager code after it, never gets the graph's blocks.
  c.set_capture_owner(&other);
  void* o = c.allocate(4 * kMiB);
  EXPECT_NE(o, a);
  c.set_capture_owner(nullptr);
  void* e = c.allocate(4 * kMiB);
  EXPECT_NE(e, a);
  c.release_owner(&graph);
  c.release_owner(&other);
  c.deallocate(e, 4 * kMiB);
}

}  // namespace
}  // namespace glia::detail
