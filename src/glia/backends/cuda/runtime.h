// Host-side helpers of the CUDA backend: error checks, the device's stream and cuBLAS handle,
// and the conversion of tensors into the launchers' strided descriptions.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "glia/backends/cuda/launch.h"
#include "glia/core/error.h"
#include "glia/core/tensor.h"
#include "glia/ops/op.h"

namespace glia::cuda {

/// Throws DeviceError naming `what` and CUDA's message when `e` is an error.
void check(cudaError_t e, const char* what);
void check(cublasStatus_t e, const char* what);
void check(cudnnStatus_t e, const char* what);

/// Throws DeviceError unless CUDA device `index` exists and can be used (initializes CUDA lazily).
void ensure_device(int index);
/// The device's stream (made on first use): all of Glia's work on that device is queued on it.
cudaStream_t stream(int index);
cublasHandle_t cublas(int index);
/// The device's cuDNN handle, bound to its stream (made on first use).
cudnnHandle_t cudnn(int index);

/// Makes device `index` current for its lifetime and restores the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

launch::Dt dt(DType t);

/// A loop over `shape` with the given operands (operand 0 is written); each operand broadcasts to shape.
template <int N>
launch::Strided<N> strided(IntList shape, const Tensor* const (&ops)[N]);

/// t as a tensor on device `dev` in dtype d, without autograd (copies only where needed).
Tensor on_device(const Tensor& t, Device dev, DType d);

/// Kernel input i on the output's device in dtype d: inputs may be 0-d CPU tensors (numbers in code).
Tensor input_as(const KernelContext& k, size_t i, DType d);
/// dst[...] = src[...] (src broadcast to dst's shape, converted to dst's dtype), both on dst's GPU.
void copy_into(const Tensor& src, const Tensor& dst);
/// Where a kernel writes output `out` in dtype d: out itself when it is contiguous of dtype d, else
/// plan scratch that finish_target copies into `out` afterwards.
Tensor as_target(const Tensor& out, DType d);
void finish_target(const Tensor& written, const Tensor& out);
/// out[...] = v, out on a GPU.
void fill(const Tensor& out, const Scalar& v);

/// Where random kernels read their generator state while a CUDA Graph is being captured on device
/// `index`: {seed, counter shift}, written before each replay so that every replay draws new numbers
/// (exactly those an eager run would have drawn). Null when not capturing: kernels then use the
/// seed and counter they were given, unshifted.
const uint64_t* rng_slot(int index);

}  // namespace glia::cuda
