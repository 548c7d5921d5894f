// CUDA emulator (tools/cuda-emu): CUDA's runtime API on the CPU, faithful where Glia's use of it could
// be wrong. Device memory is host memory, filled with 0xff bytes (NaN) when allocated so that reading
// what was never written shows. It lies in one arena that host code cannot touch: the arena is
// readable and writable only while the emulator runs device work, so a host read or write of device
// memory faults as on a GPU, and a SIGSEGV handler names the address and prints a backtrace. Work on a stream is queued
// and runs only when the host waits for it (stream or event synchronization, a copy into pageable host memory,
// cudaFree), so a missing wait leaves stale data exactly where a GPU would. Copies are checked against the allocations
// they touch. While a stream is captured its work is recorded instead, and what a capture forbids (synchronizing,
// pageable copies, waiting on captured events) fails and invalidates the capture, as CUDA does. GLIA_EMU_DEVICES
// (default 1) sets the number of devices, GLIA_EMU_MEMORY_MB (default 16384) the memory of each; GLIA_EMU_PROFILE=1
// prints each captured graph's kernels by launch site.
#include <execinfo.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#define GLIA_EMU_NO_DEVICE_MACROS
#include "device.h"
#include "emu.h"

struct CUstream_st {
  int device = 0;
  // Recursive: a stream's work may wait for another stream (cudaStreamWaitEvent), whose work may
  // wait for this one up to an earlier point; items are taken off the queue before they run, so the
  // inner flush of this stream finds nothing more to run.
  std::recursive_mutex m;
  struct Item {
    uint64_t seq;
    std::function<void()> work;
  };
  std::deque<Item> queue;
  uint64_t next = 0;  // sequence number of the next item
  bool capturing = false, invalidated = false;
  std::vector<std::function<void()>> captured;
  std::map<std::string, int> captured_kernels;  // launch site -> count (GLIA_EMU_PROFILE)
};

struct CUevent_st {
  CUstream_st* stream = nullptr;
  uint64_t seq = 0;  // recorded after the stream's items below this number
  bool recorded = false, in_capture = false, timing = true;
  std::shared_ptr<std::chrono::steady_clock::time_point> when;
};

struct CUgraph_st {
  std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> work;
};

namespace glia_emu {

void run_grid(const Cfg& cfg, const std::function<void()>& body);

namespace {

thread_local cudaError_t t_last = cudaSuccess;
thread_local int t_device = 0;

cudaError_t fail(cudaError_t e) {
  if (e != cudaSuccess) t_last = e;
  return e;
}

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : dflt;
}

int device_count() {
  static const int n = env_int("GLIA_EMU_DEVICES", 1);
  return n;
}

size_t device_memory() {
  static const size_t b = static_cast<size_t>(env_int("GLIA_EMU_MEMORY_MB", 16384)) << 20;
  return b;
}

struct Alloc {
  size_t bytes;
  int device;  // -1: page-locked host memory
};

struct Global {
  std::mutex m;
  std::map<uintptr_t, Alloc> allocs;
  std::vector<size_t> used;
  std::set<CUstream_st*> streams;
  std::vector<CUstream_st*> legacy;  // each device's default stream (stream 0)
  Global() : used(device_count(), 0) {
    for (int i = 0; i < device_count(); ++i) {
      auto* s = new CUstream_st;
      s->device = i;
      legacy.push_back(s);
      streams.insert(s);
    }
  }
};

Global& global() {
  static Global* g = new Global;  // never destroyed: streams may be used while statics are torn down
  return *g;
}

/// Device memory: one reserved range, inaccessible (PROT_NONE) except while at least one
/// DeviceAccess is alive. First-fit allocation in 256-byte units from a free list.
class Arena {
 public:
  Arena() : bytes_(2 * device_memory() * static_cast<size_t>(device_count())) {
    // Address space only (nothing is committed until written); less where a limit (ulimit -v)
    // refuses that much, down to 1 GiB (an allocation that does not fit is then out of memory).
    void* p = mmap(nullptr, bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    while (p == MAP_FAILED && bytes_ > (size_t(1) << 30)) {
      bytes_ /= 2;
      p = mmap(nullptr, bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    }
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "CUDA emulator: cannot reserve %zu bytes of address space for device memory\n", bytes_);
      std::abort();
    }
    base_ = static_cast<char*>(p);
    free_[0] = bytes_;
    struct sigaction sa {};
    sa.sa_sigaction = &Arena::on_fault;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;  // the fault repeats after the handler and kills as before
    sigaction(SIGSEGV, &sa, nullptr);
  }
  void* get(size_t n) {
    n = (n + 255) / 256 * 256;
    std::lock_guard<std::mutex> l(m_);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < n) continue;
      size_t at = it->first, left = it->second - n;
      free_.erase(it);
      if (left) free_[at + n] = left;
      return base_ + at;
    }
    return nullptr;
  }
  void put(void* p, size_t n) {
    n = (n + 255) / 256 * 256;
    size_t at = static_cast<size_t>(static_cast<char*>(p) - base_);
    std::lock_guard<std::mutex> l(m_);
    auto next = free_.lower_bound(at);
    if (next != free_.end() && next->first == at + n) {
      n += next->second;
      next = free_.erase(next);
    }
    if (next != free_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == at) {
        prev->second += n;
        return;
      }
    }
    free_[at] = n;
  }
  /// Opens the arena to this process (nested and from several threads: it closes with the last).
  void open() {
    std::lock_guard<std::mutex> l(m_);
    if (open_++ == 0) protect(PROT_READ | PROT_WRITE);
  }
  void close() {
    std::lock_guard<std::mutex> l(m_);
    if (--open_ == 0) protect(PROT_NONE);
  }

 private:
  void protect(int prot) {
    if (mprotect(base_, bytes_, prot) != 0) {
      std::perror("CUDA emulator: mprotect of device memory");
      std::abort();
    }
  }
  static void on_fault(int, siginfo_t* info, void*);
  char* base_ = nullptr;
  size_t bytes_;
  std::mutex m_;
  std::map<size_t, size_t> free_;  // offset -> bytes
  int open_ = 0;
};

Arena& arena() {
  static Arena* a = new Arena;
  return *a;
}

void Arena::on_fault(int, siginfo_t* info, void*) {
  const Arena& a = arena();
  auto* at = static_cast<char*>(info->si_addr);
  if (at < a.base_ || at >= a.base_ + a.bytes_) return;  // not device memory: the default action follows
  // Only async-signal-safe calls: the process dies right after.
  static const char msg[] =
      "CUDA emulator: host code read or wrote device memory (memory from cudaMalloc), which faults on a "
      "GPU too. Backtrace:\n";
  (void)!write(2, msg, sizeof msg - 1);
  void* frames[48];
  backtrace_symbols_fd(frames, backtrace(frames, 48), 2);
}

/// While alive, device memory is accessible: the emulator is running device work.
struct DeviceAccess {
  DeviceAccess() { arena().open(); }
  ~DeviceAccess() { arena().close(); }
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;
};

/// The allocation holding [p, p + n), or null (not found, or the range runs past its end: `past` set).
const Alloc* find(const void* p, size_t n, bool* past = nullptr) {
  Global& g = global();
  auto a = reinterpret_cast<uintptr_t>(p);
  auto it = g.allocs.upper_bound(a);
  if (it == g.allocs.begin()) return nullptr;
  --it;
  if (a >= it->first + std::max<size_t>(it->second.bytes, 1)) return nullptr;
  if (a + n > it->first + it->second.bytes) {
    if (past) *past = true;
    return nullptr;
  }
  return &it->second;
}

CUstream_st* resolve(cudaStream_t s) { return s ? s : global().legacy.at(static_cast<size_t>(t_device)); }

/// Runs s's queued work up to (not including) sequence number `upto`.
void flush(CUstream_st* s, uint64_t upto = UINT64_MAX) {
  std::lock_guard<std::recursive_mutex> l(s->m);
  if (s->queue.empty() || s->queue.front().seq >= upto) return;
  DeviceAccess open;
  while (!s->queue.empty() && s->queue.front().seq < upto) {
    auto w = std::move(s->queue.front().work);
    s->queue.pop_front();
    w();
  }
}

/// Runs every stream's queued work (what cudaFree and cudaFreeHost wait for).
void flush_all() {
  std::vector<CUstream_st*> all;
  {
    std::lock_guard<std::mutex> l(global().m);
    all.assign(global().streams.begin(), global().streams.end());
  }
  for (CUstream_st* s : all) flush(s);
}

bool capturing(CUstream_st* s) {
  std::lock_guard<std::recursive_mutex> l(s->m);
  return s->capturing;
}

/// What a capture forbids happened on s: the capture is invalidated (cudaStreamEndCapture fails).
cudaError_t forbidden_in_capture(CUstream_st* s, const char* what) {
  std::fprintf(stderr, "CUDA emulator: %s while stream capture is active: not allowed in a CUDA Graph capture\n", what);
  std::lock_guard<std::recursive_mutex> l(s->m);
  s->invalidated = true;
  return fail(cudaErrorStreamCaptureUnsupported);
}

/// GLIA_EMU_PROFILE=1: each captured CUDA Graph's kernels by launch site, printed when it ends, and
/// at exit how often the host launched graphs, launched kernels outside them, copied and waited.
struct Counts {
  std::atomic<long> graphs{0}, kernels{0}, h2d{0}, d2h{0}, waits{0};
};
Counts& counts() {
  static Counts* c = new Counts;
  return *c;
}
bool profile() {
  static const bool on = [] {
    bool p = env_int("GLIA_EMU_PROFILE", 0) != 0;
    if (p)
      std::atexit([] {
        Counts& c = counts();
        std::fprintf(stderr,
                     "CUDA emulator: %ld graph launches, %ld kernel launches outside graphs, %ld host-to-device "
                     "and %ld device-to-host copies, %ld host waits (stream or event synchronizations, "
                     "copies into pageable memory)\n",
                     c.graphs.load(), c.kernels.load(), c.h2d.load(), c.d2h.load(), c.waits.load());
      });
    return p;
  }();
  return on;
}
void count(std::atomic<long> Counts::*which) {
  if (profile()) ++(counts().*which);
}

void fill_bytes(void* p, size_t n) { std::memset(p, 0xff, n); }

}  // namespace

void enqueue(cudaStream_t stream, std::function<void()> work) {
  CUstream_st* s = resolve(stream);
  std::lock_guard<std::recursive_mutex> l(s->m);
  if (s->capturing)
    s->captured.push_back(std::move(work));
  else
    s->queue.push_back({s->next++, std::move(work)});
}

bool is_device_pointer(const void* p) {
  std::lock_guard<std::mutex> l(global().m);
  const Alloc* a = find(p, 0);
  return a && a->device >= 0;
}

bool device_readable(const void* p) {
  if (!p) return true;
  std::lock_guard<std::mutex> l(global().m);
  return find(p, 0) != nullptr;
}

void launch(const Cfg& c, int host_ptr, std::function<void()> body) {
  const dim3 &g = c.grid, &b = c.block;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 ||
      g.x > 2147483647u || g.y > 65535 || g.z > 65535 || c.smem > 48 * 1024) {
    std::fprintf(stderr,
                 "CUDA emulator: kernel at %s:%u: invalid launch grid (%u, %u, %u) block (%u, %u, %u) shared %zu\n",
                 c.where.file_name(), c.where.line(), g.x, g.y, g.z, b.x, b.y, b.z, c.smem);
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (host_ptr >= 0) {
    std::fprintf(stderr, "CUDA emulator: kernel at %s:%u: argument %d points at pageable host memory\n",
                 c.where.file_name(), c.where.line(), host_ptr);
    fail(cudaErrorIllegalAddress);
    return;
  }
  CUstream_st* s = resolve(c.stream);
  if (s->device != t_device) {
    std::fprintf(stderr,
                 "CUDA emulator: kernel at %s:%u: launched on a stream of device %d while device %d is current\n",
                 c.where.file_name(), c.where.line(), s->device, t_device);
    fail(cudaErrorInvalidResourceHandle);
    return;
  }
  if (profile()) {
    std::lock_guard<std::recursive_mutex> l(s->m);
    if (s->capturing)
      ++s->captured_kernels[std::string(c.where.file_name()) + ":" + std::to_string(c.where.line())];
    else
      ++counts().kernels;
  }
  Cfg cfg = c;
  enqueue(s, [cfg, body = std::move(body)] { run_grid(cfg, body); });
}

}  // namespace glia_emu

using namespace glia_emu;

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError:
      return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    case cudaErrorIllegalAddress:
      return "cudaErrorIllegalAddress";
    case cudaErrorStreamCaptureUnsupported:
      return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
      return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched:
      return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureImplicit:
      return "cudaErrorStreamCaptureImplicit";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorIllegalState:
      return "cudaErrorIllegalState";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    default:
      return cudaGetErrorName(e);
  }
}

cudaError_t cudaGetLastError() {
  cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = device_count();
  return device_count() > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}
cudaError_t cudaGetDevice(int* device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = t_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (!p) return fail(cudaErrorInvalidValue);
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "Glia CUDA emulator (CPU)");
  p->totalGlobalMem = device_memory();
  p->sharedMemPerBlock = 48 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  if (!v) return fail(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  if (!v) return fail(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (!ptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  Global& g = global();
  {
    std::lock_guard<std::mutex> l(g.m);
    if (g.used[static_cast<size_t>(t_device)] + size > device_memory()) return fail(cudaErrorMemoryAllocation);
  }
  void* p = arena().get(size);
  if (!p) return fail(cudaErrorMemoryAllocation);
  {
    DeviceAccess open;
    fill_bytes(p, size);
  }
  std::lock_guard<std::mutex> l(g.m);
  g.used[static_cast<size_t>(t_device)] += size;
  g.allocs[reinterpret_cast<uintptr_t>(p)] = Alloc{size, t_device};
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  flush_all();  // cudaFree waits for the device
  Global& g = global();
  std::lock_guard<std::mutex> l(g.m);
  auto it = g.allocs.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == g.allocs.end() || it->second.device < 0) {
    std::fprintf(stderr, "CUDA emulator: cudaFree of %p, which cudaMalloc did not return\n", ptr);
    return fail(cudaErrorInvalidValue);
  }
  g.used[static_cast<size_t>(it->second.device)] -= it->second.bytes;
  arena().put(ptr, it->second.bytes);
  g.allocs.erase(it);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned int) {
  if (!ptr) return fail(cudaErrorInvalidValue);
  void* p = std::aligned_alloc(4096, (std::max<size_t>(size, 1) + 4095) / 4096 * 4096);
  if (!p) return fail(cudaErrorMemoryAllocation);
  fill_bytes(p, size);
  std::lock_guard<std::mutex> l(global().m);
  global().allocs[reinterpret_cast<uintptr_t>(p)] = Alloc{size, -1};
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  flush_all();
  std::lock_guard<std::mutex> l(global().m);
  auto it = global().allocs.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == global().allocs.end() || it->second.device >= 0) {
    std::fprintf(stderr, "CUDA emulator: cudaFreeHost of %p, which cudaHostAlloc did not return\n", ptr);
    return fail(cudaErrorInvalidValue);
  }
  global().allocs.erase(it);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) {
  if (!free_b || !total_b) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> l(global().m);
  *total_b = device_memory();
  *free_b = device_memory() - global().used[static_cast<size_t>(t_device)];
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* ptr) {
  if (!a) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> l(global().m);
  const Alloc* al = find(ptr, 0);
  *a = cudaPointerAttributes{};
  a->device = al && al->device >= 0 ? al->device : -2;
  a->type = !al ? cudaMemoryTypeUnregistered : al->device >= 0 ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
  a->devicePointer = al ? const_cast<void*>(ptr) : nullptr;
  a->hostPointer = al && al->device < 0 ? const_cast<void*>(ptr) : nullptr;
  return cudaSuccess;
}

namespace {

enum class Mem { Pageable, Pinned, Device };

/// Classifies [p, p + n): device memory, page-locked or pageable host memory; false (and a message)
/// when it starts in an allocation but runs past its end.
bool classify(const void* p, size_t n, Mem* m, int* device, const char* what, const char* side) {
  std::lock_guard<std::mutex> l(global().m);
  bool past = false;
  const Alloc* a = find(p, n, &past);
  if (past) {
    std::fprintf(stderr, "CUDA emulator: %s: %s range %p + %zu bytes runs past the end of its allocation\n", what, side,
                 p, n);
    return false;
  }
  *m = !a ? Mem::Pageable : a->device >= 0 ? Mem::Device : Mem::Pinned;
  *device = a ? a->device : -1;
  return true;
}

}  // namespace

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t stream) {
  const char* what = "cudaMemcpyAsync";
  if (n == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue);
  Mem md, ms;
  int dd, ds;
  if (!classify(dst, n, &md, &dd, what, "destination") || !classify(src, n, &ms, &ds, what, "source"))
    return fail(cudaErrorInvalidValue);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice:
      ok = md == Mem::Device && ms != Mem::Device;
      break;
    case cudaMemcpyDeviceToHost:
      ok = md != Mem::Device && ms == Mem::Device;
      break;
    case cudaMemcpyDeviceToDevice:
      ok = md == Mem::Device && ms == Mem::Device;
      break;
    case cudaMemcpyHostToHost:
      ok = md != Mem::Device && ms != Mem::Device;
      break;
    default:
      break;
  }
  if (!ok) {
    std::fprintf(stderr, "CUDA emulator: %s: the pointers do not match the copy kind %d\n", what, int(kind));
    return fail(cudaErrorInvalidValue);
  }
  CUstream_st* s = resolve(stream);
  const bool pageable = md == Mem::Pageable || ms == Mem::Pageable;
  if (pageable && capturing(s)) return forbidden_in_capture(s, "a copy to or from pageable host memory");
  if (ms == Mem::Pageable) {
    // The source is taken at the call, as CUDA stages pageable memory before returning.
    auto held = std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + n);
    enqueue(s, [dst, held] { std::memcpy(dst, held->data(), held->size()); });
  } else {
    enqueue(s, [dst, src, n] { std::memmove(dst, src, n); });
  }
  if (!capturing(s)) count(md == Mem::Device ? &Counts::h2d : &Counts::d2h);
  // Into pageable memory the call returns when the copy is done.
  if (md == Mem::Pageable) {
    count(&Counts::waits);
    flush(s);
  }
  return cudaSuccess;
}
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t count,
                                cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  Mem md, ms;
  int dd, ds;
  if (!classify(dst, count, &md, &dd, "cudaMemcpyPeerAsync", "destination") ||
      !classify(src, count, &ms, &ds, "cudaMemcpyPeerAsync", "source") || md != Mem::Device || ms != Mem::Device ||
      dd != dst_device || ds != src_device) {
    std::fprintf(stderr, "CUDA emulator: cudaMemcpyPeerAsync: pointers are not on devices %d and %d\n", dst_device,
                 src_device);
    return fail(cudaErrorInvalidValue);
  }
  enqueue(stream, [dst, src, count] { std::memmove(dst, src, count); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  if (!s) return fail(cudaErrorInvalidValue);
  auto* st = new CUstream_st;
  st->device = t_device;
  std::lock_guard<std::mutex> l(global().m);
  global().streams.insert(st);
  *s = st;
  return cudaSuccess;
}
// The stream's queued work still runs (CUDA finishes it before releasing the stream); then it is gone.
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  if (capturing(stream)) return forbidden_in_capture(stream, "cudaStreamDestroy");
  flush(stream);
  {
    std::lock_guard<std::mutex> l(global().m);
    global().streams.erase(stream);
  }
  delete stream;
  return cudaSuccess;
}
// The work queued on `stream` after this call runs after the work queued on the event's stream
// before its last record (run on demand, when the host waits for `stream`).
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t e, unsigned int) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  if (capturing(s)) return forbidden_in_capture(s, "cudaStreamWaitEvent");
  if (!e->recorded || e->stream == s) return cudaSuccess;
  if (e->in_capture) return forbidden_in_capture(e->stream, "cudaStreamWaitEvent on a captured event");
  CUstream_st* src = e->stream;
  const uint64_t upto = e->seq + 1;
  enqueue(s, [src, upto] { flush(src, upto); });
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (capturing(s)) return forbidden_in_capture(s, "cudaStreamSynchronize");
  count(&Counts::waits);
  flush(s);
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (!stream) return fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
  std::lock_guard<std::recursive_mutex> l(stream->m);
  if (stream->capturing) return fail(cudaErrorIllegalState);
  stream->capturing = true;
  stream->invalidated = false;
  stream->captured.clear();
  stream->captured_kernels.clear();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (!stream || !graph) return fail(cudaErrorInvalidValue);
  *graph = nullptr;
  std::lock_guard<std::recursive_mutex> l(stream->m);
  if (!stream->capturing) return fail(cudaErrorIllegalState);
  stream->capturing = false;
  if (stream->invalidated) {
    stream->captured.clear();
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  if (profile()) {
    int total = 0;
    for (const auto& [site, n] : stream->captured_kernels) total += n;
    std::fprintf(stderr, "CUDA emulator: captured a graph of %zu operations, %d kernel launches:\n",
                 stream->captured.size(), total);
    for (const auto& [site, n] : stream->captured_kernels) std::fprintf(stderr, "  %5d  %s\n", n, site.c_str());
  }
  stream->captured_kernels.clear();
  *graph = new CUgraph_st{std::move(stream->captured)};
  stream->captured.clear();
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (!status) return fail(cudaErrorInvalidValue);
  CUstream_st* s = resolve(stream);
  std::lock_guard<std::recursive_mutex> l(s->m);
  *status = !s->capturing    ? cudaStreamCaptureStatusNone
            : s->invalidated ? cudaStreamCaptureStatusInvalidated
                             : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int flags) {
  if (!e) return fail(cudaErrorInvalidValue);
  *e = new CUevent_st;
  (*e)->timing = !(flags & cudaEventDisableTiming);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  auto when = std::make_shared<std::chrono::steady_clock::time_point>();
  std::lock_guard<std::recursive_mutex> l(s->m);
  e->stream = s;
  e->recorded = true;
  e->when = when;
  e->in_capture = s->capturing;
  if (s->capturing) {
    s->captured.push_back([when] { *when = std::chrono::steady_clock::now(); });
  } else {
    e->seq = s->next;
    s->queue.push_back({s->next++, [when] { *when = std::chrono::steady_clock::now(); }});
  }
  return cudaSuccess;
}
namespace {
cudaError_t wait_event(cudaEvent_t e, const char* what) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  if (!e->recorded) return cudaSuccess;
  if (e->in_capture) return forbidden_in_capture(e->stream, what);
  count(&Counts::waits);
  flush(e->stream, e->seq + 1);
  return cudaSuccess;
}
}  // namespace
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return wait_event(e, "cudaEventSynchronize on a captured event"); }
// Not ready while the work before the event is still queued: the emulated GPU does nothing until the
// host waits for it, so code that polls must cope with a GPU that is behind.
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  if (!e->recorded) return cudaSuccess;
  if (e->in_capture) return forbidden_in_capture(e->stream, "cudaEventQuery on a captured event");
  std::lock_guard<std::recursive_mutex> l(e->stream->m);
  return e->stream->queue.empty() || e->stream->queue.front().seq > e->seq ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!ms || !a || !b) return fail(cudaErrorInvalidValue);
  if (!a->timing || !b->timing || !a->recorded || !b->recorded) return fail(cudaErrorInvalidResourceHandle);
  if (a->stream) flush(a->stream, a->seq + 1);
  if (b->stream) flush(b->stream, b->seq + 1);
  *ms = std::chrono::duration<float, std::milli>(*b->when - *a->when).count();
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->work};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return fail(cudaErrorInvalidValue);
  count(&Counts::graphs);
  for (const auto& w : exec->work) enqueue(stream, w);
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
