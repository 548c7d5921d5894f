// Storage: one buffer of bytes on one device, shared by all views of it,
// with the version counter that autograd checks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "glia/core/device.h"

namespace glia {

/// Counters of a device allocator. `alloc_calls` counts every request;
/// `system_allocs` counts those the cache could not serve.
struct AllocatorStats {
  int64_t allocated_bytes = 0;  // handed out now
  int64_t reserved_bytes = 0;   // handed out + cached
  int64_t peak_allocated_bytes = 0;
  int64_t alloc_calls = 0;
  int64_t system_allocs = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  /// Gives cached blocks back to the system.
  virtual void empty_cache() = 0;
};

/// The caching allocator of a device (one per CUDA GPU); throws DeviceError for a CUDA device
/// that cannot be used.
Allocator& allocator_for(Device d);

/// Statistics and cache control of a device's allocator, for tests and benchmarks.
AllocatorStats memory_stats(Device d = Device::cpu());
void reset_peak_memory_stats(Device d = Device::cpu());
void empty_cache(Device d = Device::cpu());

class Storage {
 public:
  /// Allocates nbytes on device d from its caching allocator.
  Storage(size_t nbytes, Device d);
  /// Wraps memory the caller owns; `deleter` (may be empty) runs when the storage dies.
  Storage(void* data, size_t nbytes, Device d, std::function<void(void*)> deleter);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  uint32_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Allocator* allocator_;  // null when external
  std::function<void(void*)> deleter_;
  std::atomic<uint32_t> version_{0};
};

}  // namespace glia
