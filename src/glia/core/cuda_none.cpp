// The CUDA entry points of a CPU-only build: they exist, and say that this build has no CUDA.
#ifndef GLIA_WITH_CUDA

#include "glia/core/cuda.h"
#include "glia/core/cuda_hooks.h"
#include "glia/core/error.h"

namespace glia {
namespace {
[[noreturn]] void no_cuda(Device d) {
  throw DeviceError(detail::str("Device::cuda(", d.index, "): this build of Glia has no CUDA support"));
}
}  // namespace

namespace cuda {
bool built_with_cuda() { return false; }
bool is_available() { return false; }
int device_count() { return 0; }
std::string describe() { return "this build of Glia has no CUDA support"; }
void synchronize(Device d) { no_cuda(d); }
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }
void set_conv_autotune(bool) {}
bool conv_autotune() { return false; }
Tensor pin_memory(const Tensor&) {
  throw DeviceError("cuda::pin_memory: this build of Glia has no CUDA support (page-locked memory needs it)");
}
Tensor empty_pinned(IntList, DType) {
  throw DeviceError("cuda::empty_pinned: this build of Glia has no CUDA support (page-locked memory needs it)");
}
bool is_pinned(const Tensor&) { return false; }
struct BatchStager::Impl {};
BatchStager::BatchStager(Device d) { no_cuda(d); }
BatchStager::~BatchStager() = default;
bool BatchStager::upload(const std::vector<Tensor>&) { return false; }
bool BatchStager::take(const std::vector<Tensor>&, const std::vector<Tensor>&) { return false; }
}  // namespace cuda

namespace detail {
Allocator& cuda_allocator(int index) { no_cuda(Device::cuda(index)); }
void cross_device_copy(const Tensor& dst, const Tensor& src) {
  no_cuda(dst.device().is_cuda() ? dst.device() : src.device());
}
std::unique_ptr<CudaGraph> cuda_capture(int index, const std::function<void()>&) { no_cuda(Device::cuda(index)); }
}  // namespace detail

}  // namespace glia

#endif  // GLIA_WITH_CUDA
