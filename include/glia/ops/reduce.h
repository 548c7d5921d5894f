// Reductions over any set of dimensions, with keepdim.
// An empty `dims` list means all dimensions.
#pragma once

#include <utility>

#include "glia/core/tensor.h"

namespace glia {

Tensor sum(const Tensor& x, IntList dims = {}, bool keepdim = false);
/// sum in a wider dtype for integers (as PyTorch: int and bool sum to int64).
Tensor mean(const Tensor& x, IntList dims = {}, bool keepdim = false);
Tensor prod(const Tensor& x, IntList dims = {}, bool keepdim = false);
/// Max / min values over dims; gradient flows to the max elements (split evenly on ties).
Tensor amax(const Tensor& x, IntList dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, IntList dims = {}, bool keepdim = false);
/// Max / min over one dimension with the (first) index of each: {values, indices}.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
/// Max / min of all elements.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
/// Index of the first max / min along dim (int64), or of the flattened tensor.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x);
Tensor argmin(const Tensor& x);
/// Variance / standard deviation with `correction` (1 = unbiased, as PyTorch's default).
Tensor var(const Tensor& x, IntList dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, IntList dims = {}, int64_t correction = 1, bool keepdim = false);
/// log(sum(exp(x))) computed stably.
Tensor logsumexp(const Tensor& x, IntList dims, bool keepdim = false);
/// Sums x down to `shape` (the reverse of broadcasting x from shape), for gradients.
Tensor sum_to(const Tensor& x, IntList shape);
/// True where all / any elements are nonzero.
Tensor all(const Tensor& x);
Tensor any(const Tensor& x);

}  // namespace glia
