// Views of a tensor's storage with any shape, strides and offset, outside autograd: the kernels of
// every backend use them to address parts of their inputs and outputs (slices of a concat, a pad).
#pragma once

#include "glia/core/tensor.h"
#include "glia/ops/op.h"

namespace glia::detail {

/// A view of t's storage with other shape / strides / offset (no autograd).
inline Tensor raw_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  return Tensor::make_view(t.storage(), shape, strides, offset, t.dtype());
}

/// The slice (dim, start, end, step) of t as a raw view.
inline Tensor raw_slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Shape s = t.shape(), st = t.strides();
  auto d = static_cast<size_t>(dim);
  s[d] = end > start ? (end - start + step - 1) / step : 0;
  st[d] *= step;
  return raw_view(t, s, st, t.offset() + start * t.strides()[d]);
}

/// The concat kernel of every backend: input i is written with copy(i, view) into its slice of the
/// output along the attr "dim".
template <class Copy>
void concat_into(const KernelContext& k, Copy&& copy) {
  const Tensor& out = k.output();
  int64_t dim = k.attr<int64_t>("dim");
  int64_t off = 0;
  for (size_t i = 0; i < k.num_inputs(); ++i) {
    int64_t len = k.input(i).shape()[static_cast<size_t>(dim)];
    if (len == 0) continue;
    Tensor v = raw_slice(out, dim, off, off + len, 1);
    if (v.numel() > 0) copy(i, v);
    off += len;
  }
}

}  // namespace glia::detail
