// CUDA runtime state: lazy initialization, one stream and cuBLAS handle per device, the caching
// allocator, and copies between devices through a pinned staging buffer.
#include "glia/backends/cuda/runtime.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "glia/autograd/autograd.h"
#include "glia/backends/cpu/loops.h"
#include "glia/core/block_cache.h"
#include "glia/core/cuda.h"
#include "glia/core/cuda_hooks.h"
#include "glia/core/random.h"

namespace glia::cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw DeviceError(detail::str("CUDA error in ", what, ": ", cudaGetErrorString(e)));
}
void check(cublasStatus_t e, const char* what) {
  if (e != CUBLAS_STATUS_SUCCESS)
    throw DeviceError(detail::str("cuBLAS error in ", what, ": ", cublasGetStatusString(e)));
}

void check(cudnnStatus_t e, const char* what) {
  if (e != CUDNN_STATUS_SUCCESS) throw DeviceError(detail::str("cuDNN error in ", what, ": ", cudnnGetErrorString(e)));
}

namespace {

struct Init {
  int count = 0;
  cudaError_t error = cudaSuccess;
};

const Init& init() {
  static const Init state = [] {
    Init s;
    s.error = cudaGetDeviceCount(&s.count);
    if (s.error != cudaSuccess) {
      s.count = 0;
      (void)cudaGetLastError();  // not sticky: leave no error behind for later calls
    }
    return s;
  }();
  return state;
}

struct PerDevice {
  std::once_flag once;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cudnnHandle_t dnn = nullptr;
  // Pinned staging for larger host-to-device copies: a ring of buffers, each with an event marking
  // when the copy out of it is done, so that the host can stage the next batches while the GPU is
  // still busy with earlier work (it waits only for a copy kStaging copies ago).
  std::mutex staging_mu;
  static constexpr int kStaging = 4;
  void* staging[kStaging] = {};
  size_t staging_size[kStaging] = {};
  cudaEvent_t staged[kStaging] = {};
  int next_staging = 0;
  // Page-locked host tensors whose copies to this device are queued: each storage is held, with an
  // event after its copy, until the copy is done (the tensor may be dropped at once).
  std::deque<std::pair<cudaEvent_t, std::shared_ptr<Storage>>> in_flight;
  std::vector<cudaEvent_t> spare_events;
  // Small copies (numbers in code, shapes) rotate through slots with an event each, so that the host
  // waits only for a copy kSlots copies ago, not for all the work queued before the last one.
  static constexpr int kSlots = 64;
  static constexpr size_t kSlotBytes = 4096;
  char* slots = nullptr;
  cudaEvent_t slot_done[kSlots] = {};
  int next_slot = 0;
};

PerDevice& per_device(int index) {
  static auto* devices = new std::vector<PerDevice>(static_cast<size_t>(std::max(init().count, 1)));
  PerDevice& p = (*devices)[static_cast<size_t>(index)];
  std::call_once(p.once, [&] {
    DeviceGuard g(index);
    check(cudaStreamCreateWithFlags(&p.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    for (cudaEvent_t& e : p.staged) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    for (cudaEvent_t& e : p.slot_done) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    void* slots = nullptr;
    check(cudaHostAlloc(&slots, PerDevice::kSlots * PerDevice::kSlotBytes, cudaHostAllocDefault), "cudaHostAlloc");
    p.slots = static_cast<char*>(slots);
  });
  return p;
}

bool g_allow_tf32 = false;

std::atomic<bool>& autotune_flag() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("GLIA_CONV_AUTOTUNE");
    return !(e && std::string(e) == "0");
  }()};
  return on;
}

}  // namespace

void ensure_device(int index) {
  const Init& s = init();
  if (s.count == 0)
    throw DeviceError(detail::str("Device::cuda(", index, "): no CUDA GPU is available (cudaGetDeviceCount: ",
                                  s.error == cudaSuccess ? "found 0 devices" : cudaGetErrorString(s.error), ")"));
  GLIA_CHECK(index >= 0 && index < s.count, DeviceError, "Device::cuda(", index, "): there are only ", s.count,
             " CUDA GPU(s)");
}

DeviceGuard::DeviceGuard(int index) {
  check(cudaGetDevice(&prev_), "cudaGetDevice");
  if (prev_ != index) check(cudaSetDevice(index), "cudaSetDevice");
}
DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) (void)cudaSetDevice(prev_);
}

cudaStream_t stream(int index) {
  ensure_device(index);
  return per_device(index).stream;
}

cublasHandle_t cublas(int index) {
  PerDevice& p = per_device(index);
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (!p.blas) {
    DeviceGuard g(index);
    check(cublasCreate(&p.blas), "cublasCreate");
    check(cublasSetStream(p.blas, p.stream), "cublasSetStream");
    // A workspace of our own (after cublasSetStream, which resets it), so that cuBLAS never
    // allocates while a step is recorded into a CUDA Graph. NVIDIA's size: 32 MiB on Hopper and
    // later, 4 MiB before. From the caching allocator, so it counts in memory_stats as PyTorch's
    // does in max_memory_allocated; kept for the life of the process, like the handle.
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
    size_t bytes = (prop.major >= 9 ? 32 : 4) * (size_t(1) << 20);
    void* ws = detail::cuda_allocator(index).allocate(bytes);
    check(cublasSetWorkspace(p.blas, ws, bytes), "cublasSetWorkspace");
  }
  check(cublasSetMathMode(p.blas, g_allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
        "cublasSetMathMode");
  return p.blas;
}

cudnnHandle_t cudnn(int index) {
  PerDevice& p = per_device(index);
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (!p.dnn) {
    DeviceGuard g(index);
    check(cudnnCreate(&p.dnn), "cudnnCreate");
    check(cudnnSetStream(p.dnn, p.stream), "cudnnSetStream");
  }
  return p.dnn;
}

bool built_with_cuda() { return true; }
bool is_available() { return init().count > 0; }
int device_count() { return init().count; }

std::string describe() {
  auto version = [](int v, int major_unit, int minor_unit) {
    return detail::str(v / major_unit, ".", v % major_unit / minor_unit);
  };
  int runtime = 0, driver = 0, blas_major = 0, blas_minor = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cudaDriverGetVersion(&driver);
  (void)cublasGetProperty(MAJOR_VERSION, &blas_major);
  (void)cublasGetProperty(MINOR_VERSION, &blas_minor);
  size_t dnn = cudnnGetVersion();  // major * 10000 + minor * 100 + patch (cuDNN 9)
  std::string s = detail::str("CUDA runtime ", version(runtime, 1000, 10), ", driver ",
                              driver > 0 ? version(driver, 1000, 10) : std::string("none"), ", cuBLAS ", blas_major,
                              ".", blas_minor, ", cuDNN ", dnn / 10000, ".", dnn % 10000 / 100, ".", dnn % 100);
  (void)cudaGetLastError();
  const Init& in = init();
  if (in.count == 0)
    return s + "; no usable GPU: " +
           (in.error != cudaSuccess ? std::string(cudaGetErrorString(in.error)) : std::string("none found"));
  for (int i = 0; i < in.count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      (void)cudaGetLastError();
      s += detail::str("; cuda:", i, " (properties unreadable)");
      continue;
    }
    s += detail::str("; cuda:", i, " ", p.name, ", sm_", p.major, p.minor, ", ", p.totalGlobalMem / (size_t(1) << 20),
                     " MiB, ", p.multiProcessorCount, " multiprocessors");
  }
  return s;
}
void synchronize(Device d) {
  GLIA_CHECK(d.is_cuda(), DeviceError, "cuda::synchronize: expected a CUDA device, got ", d.str());
  cudaStream_t s = stream(d.index);
  DeviceGuard g(d.index);
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
}
void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }
void set_conv_autotune(bool on) { autotune_flag() = on; }
bool conv_autotune() { return autotune_flag(); }

namespace {
/// Page-locked host memory (cudaHostAlloc), portable to every device's context.
class PinnedSource final : public detail::MemorySource {
 public:
  void* get(size_t bytes) override {
    void* p = nullptr;
    cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      return nullptr;
    }
    check(e, "cudaHostAlloc");
    return p;
  }
  void put(void* p) override { (void)cudaFreeHost(p); }
  [[noreturn]] void out_of_memory(size_t asked, const AllocatorStats& s) override {
    throw DeviceError(detail::str("out of page-locked host memory: asked for ", asked, " bytes; Glia has ",
                                  s.allocated_bytes, " bytes of it allocated and ", s.reserved_bytes, " reserved"));
  }
};

/// The caching allocator of page-locked host memory (cudaHostAlloc is slow, and synchronizes).
detail::BlockCache& pinned_cache() {
  // Leaked on purpose, as the device allocators: pinned tensors in static objects may outlive it.
  static auto* cache = new detail::BlockCache(*new PinnedSource);
  return *cache;
}
}  // namespace

bool is_pinned(const Tensor& t) {
  if (!t.defined() || !t.device().is_cpu() || !t.storage() || !t.storage()->data() || init().count == 0) return false;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, t.storage()->data()) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

struct BatchStager::Impl {
  int dev = 0;
  cudaStream_t copy = nullptr;
  cudaEvent_t uploaded = nullptr, taken = nullptr;
  bool pending = false, taken_once = false;
  std::vector<Tensor> staging, held;  // the device buffers; the host batch being (or last) copied
};

BatchStager::BatchStager(Device d) : impl_(new Impl) {
  GLIA_CHECK(d.is_cuda(), DeviceError, "cuda::BatchStager: expected a CUDA device, got ", d.str());
  ensure_device(d.index);
  impl_->dev = d.index;
  DeviceGuard g(d.index);
  check(cudaStreamCreateWithFlags(&impl_->copy, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  check(cudaEventCreateWithFlags(&impl_->uploaded, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventCreateWithFlags(&impl_->taken, cudaEventDisableTiming), "cudaEventCreate");
}

BatchStager::~BatchStager() {
  if (!impl_->copy) return;
  DeviceGuard g(impl_->dev);
  (void)cudaStreamSynchronize(impl_->copy);  // the held host batch and the staging buffers are in use until then
  (void)cudaEventDestroy(impl_->uploaded);
  (void)cudaEventDestroy(impl_->taken);
  (void)cudaStreamDestroy(impl_->copy);
}

bool BatchStager::upload(const std::vector<Tensor>& host) {
  for (const Tensor& t : host)
    if (!t.defined() || !t.device().is_cpu() || !t.is_contiguous() || !is_pinned(t)) return false;
  Impl& m = *impl_;
  DeviceGuard g(m.dev);
  // The previous upload is done before its host tensors are let go (it is, unless nobody took it).
  if (!m.held.empty()) check(cudaEventSynchronize(m.uploaded), "cudaEventSynchronize");
  m.held.clear();
  m.pending = false;
  bool same = m.staging.size() == host.size();
  for (size_t i = 0; same && i < host.size(); ++i)
    same = m.staging[i].shape() == host[i].shape() && m.staging[i].dtype() == host[i].dtype();
  if (!same) {
    // New buffers may reuse the old ones' memory: the waits below order the copies into them after
    // the device stream's reads of the old ones.
    m.staging.clear();
    for (const Tensor& t : host) m.staging.push_back(Tensor::empty(t.shape(), t.dtype(), Device::cuda(m.dev)));
    check(cudaEventRecord(m.taken, stream(m.dev)), "cudaEventRecord");
    m.taken_once = true;
  }
  // The staging buffers are free once the device stream has done the last take's copies out of them.
  if (m.taken_once) check(cudaStreamWaitEvent(m.copy, m.taken, 0), "cudaStreamWaitEvent");
  for (size_t i = 0; i < host.size(); ++i) {
    size_t n = static_cast<size_t>(host[i].numel()) * host[i].itemsize();
    if (n)
      check(cudaMemcpyAsync(m.staging[i].data_ptr(), host[i].data_ptr(), n, cudaMemcpyHostToDevice, m.copy),
            "cudaMemcpyAsync");
  }
  check(cudaEventRecord(m.uploaded, m.copy), "cudaEventRecord");
  m.held = host;
  m.pending = true;
  return true;
}

bool BatchStager::take(const std::vector<Tensor>& host, const std::vector<Tensor>& dst) {
  Impl& m = *impl_;
  if (!m.pending) return false;
  m.pending = false;
  bool ok = host.size() == m.held.size() && dst.size() == m.held.size();
  for (size_t i = 0; ok && i < host.size(); ++i)
    ok = host[i].is_same(m.held[i]) && dst[i].device() == Device::cuda(m.dev) && dst[i].is_contiguous() &&
         dst[i].shape() == m.staging[i].shape() && dst[i].dtype() == m.staging[i].dtype();
  if (!ok) return false;
  DeviceGuard g(m.dev);
  cudaStream_t s = stream(m.dev);
  check(cudaStreamWaitEvent(s, m.uploaded, 0), "cudaStreamWaitEvent");
  for (size_t i = 0; i < dst.size(); ++i) {
    size_t n = static_cast<size_t>(dst[i].numel()) * dst[i].itemsize();
    if (n)
      check(cudaMemcpyAsync(dst[i].data_ptr(), m.staging[i].data_ptr(), n, cudaMemcpyDeviceToDevice, s),
            "cudaMemcpyAsync");
  }
  check(cudaEventRecord(m.taken, s), "cudaEventRecord");
  m.taken_once = true;
  return true;
}

Tensor pin_memory(const Tensor& t) {
  GLIA_CHECK(t.defined() && t.device().is_cpu(), DeviceError, "cuda::pin_memory: expected a CPU tensor, got ",
             t.defined() ? t.device().str() : std::string("an undefined tensor"));
  GLIA_CHECK(t.storage(), ValueError, "cuda::pin_memory: expected a tensor with data, got a symbolic one");
  if (is_pinned(t)) return t;
  Tensor out = empty_pinned(t.shape(), t.dtype());
  no_grad guard;
  if (out.numel() > 0) out.copy_(t);
  return out;
}

Tensor empty_pinned(IntList shape, DType dtype) {
  for (int64_t d : shape)
    GLIA_CHECK(d >= 0, ShapeError, "cuda::empty_pinned: negative dimension in shape ", to_string(shape));
  ensure_device(0);
  size_t n = static_cast<size_t>(glia::numel(shape)) * glia::itemsize(dtype);
  detail::BlockCache& cache = pinned_cache();
  void* p = cache.allocate(n);
  auto storage = std::make_shared<Storage>(p, n, Device::cpu(), [&cache, n](void* q) { cache.deallocate(q, n); });
  return Tensor::make_view(storage, shape, contiguous_strides(shape), 0, dtype);
}

launch::Dt dt(DType t) { return static_cast<launch::Dt>(static_cast<int>(t)); }

template <int N>
launch::Strided<N> strided(IntList shape, const Tensor* const (&ops)[N]) {
  launch::Strided<N> it;
  int nd = static_cast<int>(shape.size());
  GLIA_CHECK(nd <= launch::kMaxDims, ShapeError, "cuda: tensors of rank ", nd, " are not supported (at most ",
             launch::kMaxDims, ")");
  int64_t size[launch::kMaxDims] = {}, st[N][launch::kMaxDims] = {};
  it.numel = 1;
  for (int d = 0; d < nd; ++d) {
    size[d] = shape[static_cast<size_t>(d)];
    it.numel *= size[d];
  }
  for (int k = 0; k < N; ++k) {
    const Tensor& t = *ops[k];
    int lead = nd - static_cast<int>(t.dim());
    for (int d = 0; d < nd; ++d) {
      int td = d - lead;
      st[k][d] = td < 0 || t.shape()[static_cast<size_t>(td)] == 1 ? 0 : t.strides()[static_cast<size_t>(td)];
    }
    it.data[k] = t.data_ptr();
  }
  static_cast<detail::LoopDims<N>&>(it) = detail::loop_dims<N>(nd, size, st);
  return it;
}
template launch::Strided<1> strided<1>(IntList, const Tensor* const (&)[1]);
template launch::Strided<2> strided<2>(IntList, const Tensor* const (&)[2]);
template launch::Strided<3> strided<3>(IntList, const Tensor* const (&)[3]);
template launch::Strided<4> strided<4>(IntList, const Tensor* const (&)[4]);

Tensor on_device(const Tensor& t, Device dev, DType d) {
  if (t.device() == dev && t.dtype() == d) return t;
  no_grad guard;
  Tensor out = Tensor::empty(t.shape(), d, dev);
  out.copy_(t);
  return out;
}

// --- what the thread is recording into a CUDA Graph

namespace {
struct Capture {
  int device = -1;
  uint64_t* rng = nullptr;               // device memory: {seed, counter shift}
  std::vector<void*>* pinned = nullptr;  // host buffers of copies from the CPU, kept by the graph
};
thread_local Capture t_capture;
}  // namespace

const uint64_t* rng_slot(int index) { return t_capture.device == index ? t_capture.rng : nullptr; }

// --- the caching allocator (glia::detail::BlockCache) over cudaMalloc

namespace {

class CudaSource final : public detail::MemorySource {
 public:
  explicit CudaSource(int index) : index_(index) {}
  void* get(size_t bytes) override {
    DeviceGuard g(index_);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky: the cache is emptied and the request retried
      return nullptr;
    }
    check(e, "cudaMalloc");
    return p;
  }
  void put(void* p) override {
    DeviceGuard g(index_);
    (void)cudaFree(p);
  }
  [[noreturn]] void out_of_memory(size_t asked, const AllocatorStats& s) override {
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    throw DeviceError(detail::str("out of memory on Device::cuda(", index_, "): asked for ", asked, " bytes; Glia has ",
                                  s.allocated_bytes, " bytes allocated and ", s.reserved_bytes,
                                  " reserved; the GPU has ", free_b, " of ", total_b, " bytes free"));
  }

 private:
  int index_;
};

}  // namespace
}  // namespace glia::cuda

namespace glia::detail {
namespace {
/// A batch into pinned staging, on several threads: one core copies some 10 GB/s, so a 3 MB batch
/// copied by one would hold up every step of a small model.
void stage(void* dst, const void* src, size_t n) {
  cpu::parallel_for(static_cast<int64_t>(n), int64_t(512) << 10, [&](int64_t b, int64_t e) {
    std::memcpy(static_cast<char*>(dst) + b, static_cast<const char*>(src) + b, static_cast<size_t>(e - b));
  });
}
}  // namespace

Allocator& cuda_allocator(int index) {
  cuda::ensure_device(index);
  // Leaked on purpose, as the CPU allocator: tensors in static objects may outlive it.
  static auto* all = [] {
    auto* v = new std::vector<BlockCache*>();
    for (int i = 0; i < cuda::device_count(); ++i) v->push_back(new BlockCache(*new cuda::CudaSource(i)));
    return v;
  }();
  return *(*all)[static_cast<size_t>(index)];
}

void cross_device_copy(const Tensor& dst, const Tensor& src) {
  no_grad guard;
  if (dst.numel() == 0) return;
  if (dst.device().is_cuda() && src.device().is_cpu()) {
    int dev = dst.device().index;
    cudaStream_t s = cuda::stream(dev);
    // A page-locked tensor is copied straight from its memory and asynchronously, as PyTorch's
    // non_blocking copies: its storage is held until the copy is done (it must not be written
    // before then). Not while recording: a graph gets a buffer of its own (below).
    if (cuda::t_capture.device != dev && src.is_contiguous() && dst.is_contiguous() && src.dtype() == dst.dtype() &&
        src.shape() == dst.shape() && cuda::is_pinned(src)) {
      cuda::PerDevice& p = cuda::per_device(dev);
      std::lock_guard<std::mutex> lock(p.staging_mu);
      cuda::DeviceGuard g(dev);
      while (!p.in_flight.empty()) {  // let go of the storages whose copies are done
        cudaError_t q = cudaEventQuery(p.in_flight.front().first);
        if (q == cudaErrorNotReady) {
          (void)cudaGetLastError();  // not an error, but recorded as the last one: the next launch check would throw
          break;
        }
        cuda::check(q, "cudaEventQuery");
        p.spare_events.push_back(p.in_flight.front().first);
        p.in_flight.pop_front();
      }
      cudaEvent_t done = nullptr;
      if (p.spare_events.empty()) {
        cuda::check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
      } else {
        done = p.spare_events.back();
        p.spare_events.pop_back();
      }
      p.in_flight.emplace_back(done, src.storage());
      size_t n = static_cast<size_t>(src.numel()) * src.itemsize();
      cuda::check(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), n, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync");
      cuda::check(cudaEventRecord(done, s), "cudaEventRecord");
      return;
    }
    // Broadcast and convert on the host, so the transfer is one contiguous block of dst's type.
    Tensor host = src;
    if (!src.is_contiguous() || src.dtype() != dst.dtype() || src.shape() != dst.shape()) {
      host = Tensor::empty(dst.shape(), dst.dtype());
      host.copy_(src);
    }
    Tensor target = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
    size_t n = static_cast<size_t>(host.numel()) * host.itemsize();
    cuda::PerDevice& p = cuda::per_device(dev);
    if (cuda::t_capture.device == dev) {
      // Recorded, not run: the graph reads this host buffer on every replay, so it gets its own.
      void* buf = nullptr;
      cuda::check(cudaHostAlloc(&buf, n, cudaHostAllocDefault), "cudaHostAlloc");
      cuda::t_capture.pinned->push_back(buf);
      stage(buf, host.data_ptr(), n);
      cuda::check(cudaMemcpyAsync(target.data_ptr(), buf, n, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync");
    } else {
      std::lock_guard<std::mutex> lock(p.staging_mu);
      cuda::DeviceGuard g(dev);
      if (n <= cuda::PerDevice::kSlotBytes) {
        int slot = p.next_slot;
        p.next_slot = (p.next_slot + 1) % cuda::PerDevice::kSlots;
        char* buf = p.slots + static_cast<size_t>(slot) * cuda::PerDevice::kSlotBytes;
        cuda::check(cudaEventSynchronize(p.slot_done[slot]), "cudaEventSynchronize");
        std::memcpy(buf, host.data_ptr(), n);
        cuda::check(cudaMemcpyAsync(target.data_ptr(), buf, n, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync");
        cuda::check(cudaEventRecord(p.slot_done[slot], s), "cudaEventRecord");
      } else {
        // The earlier copy out of this staging buffer must be done before it is overwritten.
        int k = p.next_staging;
        p.next_staging = (k + 1) % cuda::PerDevice::kStaging;
        cuda::check(cudaEventSynchronize(p.staged[k]), "cudaEventSynchronize");
        if (p.staging_size[k] < n) {
          if (p.staging[k]) cuda::check(cudaFreeHost(p.staging[k]), "cudaFreeHost");
          p.staging[k] = nullptr;
          p.staging_size[k] = 0;
          cuda::check(cudaHostAlloc(&p.staging[k], n, cudaHostAllocDefault), "cudaHostAlloc");
          p.staging_size[k] = n;
        }
        stage(p.staging[k], host.data_ptr(), n);
        cuda::check(cudaMemcpyAsync(target.data_ptr(), p.staging[k], n, cudaMemcpyHostToDevice, s), "cudaMemcpyAsync");
        cuda::check(cudaEventRecord(p.staged[k], s), "cudaEventRecord");
      }
    }
    if (!target.is_same(dst)) dst.copy_(target);
    return;
  }
  if (dst.device().is_cpu() && src.device().is_cuda()) {
    int dev = src.device().index;
    GLIA_CHECK(cuda::t_capture.device != dev, DeviceError, "copy from ", src.device().str(),
               " to the CPU while its work is being recorded into a CUDA Graph (the values do not exist yet)");
    cudaStream_t s = cuda::stream(dev);
    Tensor c = src.contiguous();
    Tensor host = Tensor::empty(src.shape(), src.dtype());
    cuda::DeviceGuard g(dev);
    cuda::check(cudaMemcpyAsync(host.data_ptr(), c.data_ptr(), static_cast<size_t>(c.numel()) * c.itemsize(),
                                cudaMemcpyDeviceToHost, s),
                "cudaMemcpyAsync");
    cuda::check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    dst.copy_(host);
    return;
  }
  if (dst.device().is_cuda() && src.device().is_cuda()) {
    // Between GPUs: src made contiguous in dst's dtype on its own device, then a peer copy.
    int from = src.device().index, to = dst.device().index;
    Tensor c = cuda::on_device(src.expand(dst.shape()), src.device(), dst.dtype()).contiguous();
    Tensor target = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
    cudaStream_t s = cuda::stream(from);
    cuda::synchronize(dst.device());  // dst's earlier work on its own stream comes first
    cuda::check(cudaMemcpyPeerAsync(target.data_ptr(), to, c.data_ptr(), from,
                                    static_cast<size_t>(c.numel()) * c.itemsize(), s),
                "cudaMemcpyPeerAsync");
    cuda::check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    if (!target.is_same(dst)) dst.copy_(target);
    return;
  }
  throw DeviceError(detail::str("copy_: cannot copy from ", src.device().str(), " to ", dst.device().str()));
}

namespace {

class RecordedGraph final : public CudaGraph {
 public:
  explicit RecordedGraph(int dev) : dev_(dev) {
    cuda::DeviceGuard g(dev);
    cuda::check(cudaMalloc(reinterpret_cast<void**>(&rng_), 2 * sizeof(uint64_t)), "cudaMalloc");
  }
  ~RecordedGraph() override {
    cuda::DeviceGuard g(dev_);
    // Replays still queued read this memory: let them finish first.
    (void)cudaStreamSynchronize(cuda::stream(dev_));
    if (exec_) (void)cudaGraphExecDestroy(exec_);
    if (graph_) (void)cudaGraphDestroy(graph_);
    (void)cudaFree(rng_);
    for (void* p : pinned_) (void)cudaFreeHost(p);
    static_cast<BlockCache&>(cuda_allocator(dev_)).release_owner(this);
  }

  void record(const std::function<void()>& work) {
    cudaStream_t s = cuda::stream(dev_);
    cuda::DeviceGuard g(dev_);
    auto& alloc = static_cast<BlockCache&>(cuda_allocator(dev_));
    random::GeneratorState before = random::get_state();
    rng_start_ = before.offset;
    // The first launch draws what was reserved while recording: no shift.
    cuda::launch::set_u64_pair(rng_, before.seed, 0, s);
    cuda::check(cudaGetLastError(), "set_u64_pair");
    GLIA_CHECK(cuda::t_capture.device < 0, DeviceError, "CUDA Graph capture on Device::cuda(", dev_,
               ") while another capture is in progress on this thread");
    cuda::t_capture = {dev_, rng_, &pinned_};
    alloc.set_capture_owner(this);
    auto stop = [&] {
      cuda::t_capture = {};
      alloc.set_capture_owner(nullptr);
    };
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
    if (e != cudaSuccess) {
      stop();
      cuda::check(e, "cudaStreamBeginCapture");
    }
    try {
      work();
    } catch (...) {
      cudaGraph_t partial = nullptr;
      (void)cudaStreamEndCapture(s, &partial);
      if (partial) (void)cudaGraphDestroy(partial);
      (void)cudaGetLastError();
      stop();
      throw;
    }
    e = cudaStreamEndCapture(s, &graph_);
    stop();
    cuda::check(e, "cudaStreamEndCapture");
    cuda::check(cudaGraphInstantiate(&exec_, graph_, 0), "cudaGraphInstantiate");
    blocks_ = random::get_state().offset - rng_start_;
    first_ = true;
  }

  void replay() override {
    cudaStream_t s = cuda::stream(dev_);
    cuda::DeviceGuard g(dev_);
    if (!first_ && blocks_ > 0) {
      random::Draw d = random::reserve(blocks_);
      cuda::launch::set_u64_pair(rng_, d.seed, d.offset - rng_start_, s);
      cuda::check(cudaGetLastError(), "set_u64_pair");
    }
    first_ = false;
    cuda::check(cudaGraphLaunch(exec_, s), "cudaGraphLaunch");
  }

 private:
  int dev_;
  uint64_t* rng_ = nullptr;
  std::vector<void*> pinned_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  uint64_t rng_start_ = 0, blocks_ = 0;
  bool first_ = true;
};

}  // namespace

std::unique_ptr<CudaGraph> cuda_capture(int index, const std::function<void()>& work) {
  cuda::ensure_device(index);
  // Checked before a RecordedGraph exists: its constructor and destructor (stream synchronize) would
  // land in, and invalidate, the capture in progress.
  GLIA_CHECK(cuda::t_capture.device < 0, DeviceError, "CUDA Graph capture on Device::cuda(", index,
             ") while another capture is in progress on this thread");
  auto g = std::make_unique<RecordedGraph>(index);
  g->record(work);
  return g;
}

}  // namespace glia::detail
