// Indexing ops: gather, index_select, embedding, one_hot, and dropout.
#pragma once

#include "glia/core/tensor.h"

namespace glia {

/// out[i][j] = x[i][index[i][j]] along dim (torch.gather). index is int32/int64.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// Adds src into a zero tensor of `shape` at index along dim (the gradient of gather).
Tensor scatter_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src);
/// Picks entries index (1-D) along dim.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// Adds src's slices into base at index along dim (the gradient of index_select).
Tensor index_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src);
/// Rows of weight [V, D] for each id: ids of shape S give S + [D]. The gradient
/// scatter-adds into the rows used.
Tensor embedding(const Tensor& weight, const Tensor& ids);
/// One-hot encoding of integer labels: shape + [num_classes], float32 unless given.
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype = DType::f32);
/// Zeroes elements with probability p and scales the rest by 1/(1-p) when training;
/// the identity otherwise. The mask comes from the seeded generator.
Tensor dropout(const Tensor& x, double p, bool training);

}  // namespace glia
