// Host-side helpers of the CUDA backend: error checks, the device's stream and cuBLAS handle,
// and the conversion of tensors into the launchers' strided descriptions.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "glia/backends/cuda/launch.h"
#include "glia/core/error.h"
#include "glia/core/tensor.h"

namespace glia::cuda {

/// Throws DeviceError naming `what` and CUDA's message when `e` is an error.
void check(cudaError_t e, const char* what);
void check(cublasStatus_t e, const char* what);

/// Throws DeviceError unless CUDA device `index` exists and can be used (initializes CUDA lazily).
void ensure_device(int index);
/// The device's stream (made on first use): all of Glia's work on that device is queued on it.
cudaStream_t stream(int index);
cublasHandle_t cublas(int index);

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

}  // namespace glia::cuda
