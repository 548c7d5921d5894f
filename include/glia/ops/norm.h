// Normalization over channels-last tensors.
#pragma once

#include "glia/core/tensor.h"

namespace glia {

struct BatchNormOptions {
  bool training = false;
  /// Running statistics update: running = momentum * running + (1 - momentum) * batch
  /// (Keras's convention; PyTorch's momentum is 1 - this).
  double momentum = 0.99;
  double eps = 1e-3;
};

/// Batch normalization over the last (channel) axis of NC / NHWC input: statistics over
/// all other axes. In training, normalizes with the batch mean and biased variance and
/// updates running_mean / running_var in place when given (not recorded by autograd;
/// unbiased variance, as Keras and PyTorch); otherwise normalizes with them. gamma / beta
/// [C] may be undefined (no scale / no offset). Statistics are float32 (float64 for float64 x).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& gamma,
                  const Tensor& beta, const BatchNormOptions& o = {});

/// Layer normalization over the last `normalized_ndim` dims (biased variance); gamma/beta of
/// that shape or undefined.
Tensor layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& gamma = {}, const Tensor& beta = {},
                  double eps = 1e-5);

namespace detail {
/// The dtype batch and layer norm keep their statistics (and the parameters they meet) in: float64
/// for float64 input, float32 otherwise. The CUDA normalization kernels read and write them in it.
inline DType norm_stat_dtype(DType x) { return x == DType::f64 ? DType::f64 : DType::f32; }
}  // namespace detail

}  // namespace glia
