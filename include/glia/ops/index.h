// Indexing ops: gather, index_select, embedding, one_hot, and dropout.
#pragma once

#include "glia/core/tensor.h"

namespace glia {

// Index tensors are int32 or int64 (others: DTypeError); an index outside the dimension
// it indexes is a ValueError naming it.

/// out[i][j] = x[i][index[i][j]] for dim 1 (torch.gather): out has index's shape; index has
/// x's rank and is no larger than x outside dim.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// base with src[i][j] added at [i][index[i][j]] for dim 1 (torch.scatter_add; repeated
/// indices add up). The gradient of gather is scatter_add into zeros.
Tensor scatter_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src);
/// The slices of x at the positions of `index` (1-D) along dim.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// base with slice k of src added at position index[k] along dim (repeats add up); the
/// gradient of index_select.
Tensor index_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src);
/// Rows of weight [V, D] for each id: ids of shape S give S + [D]. The gradient
/// scatter-adds into the rows used. An id outside [0, V) is a ValueError.
Tensor embedding(const Tensor& weight, const Tensor& ids);
/// One-hot encoding of integer labels: shape + [num_classes], float32 unless given.
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype = DType::f32);
/// Zeroes elements with probability p in [0, 1] and scales the rest by 1/(1-p) when
/// training (p = 1 gives zeros); returns x itself when !training or p == 0. The mask
/// comes from the seeded generator (glia::manual_seed), independent of the thread count.
Tensor dropout(const Tensor& x, double p, bool training);

}  // namespace glia
