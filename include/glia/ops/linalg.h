// Matrix products (oneDNN on CPU).
#pragma once

#include "glia/core/tensor.h"

namespace glia {

/// Matrix product with NumPy semantics: 1-D operands are promoted and the
/// extra dimension removed, leading (batch) dimensions broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
/// x @ weight + bias, with weight of shape [in, out] (Keras's kernel layout)
/// and bias of shape [out] (or undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

}  // namespace glia
