// The dims of an element-wise loop over strided operands, as GPU kernels walk them: size-1 dims
// dropped, dims that are one run of memory for every operand merged, and 32-bit index splitting by
// multiply-high where the sizes allow. Host and device code (nvcc compiles it as C++17); kept apart
// from the CUDA headers so that it is tested on any machine.
#pragma once

#include <cstdint>

#include "glia/core/fast_div.h"

namespace glia::detail {

inline constexpr int kLoopMaxDims = 16;

/// A row-major loop over `size` (ndim dims) with N operands, each with element strides (0 along
/// broadcast dims). `fast`: every size and the element count are below 2^31, and `div` divides by
/// each size.
template <int N>
struct LoopDims {
  int ndim = 0;
  int64_t size[kLoopMaxDims] = {};
  int64_t stride[N][kLoopMaxDims] = {};
  bool fast = false;
  FastDiv div[kLoopMaxDims] = {};
};

/// The loop over `shape` (nd <= kLoopMaxDims dims) where operand k steps by strides[k][d] along
/// dim d. A dim is merged into the kept dim before it when that one steps, for every operand,
/// exactly over the whole of it (stride = inner stride * inner size): the same elements in the
/// same order, with fewer index splits per element.
template <int N>
LoopDims<N> loop_dims(int nd, const int64_t* shape, const int64_t (&strides)[N][kLoopMaxDims]) {
  LoopDims<N> l;
  int64_t numel = 1;
  for (int d = 0; d < nd; ++d) numel *= shape[d];
  for (int d = 0; d < nd; ++d) {
    if (shape[d] == 1) continue;  // no index moves along it
    bool merge = l.ndim > 0;
    for (int k = 0; k < N && merge; ++k) merge = l.stride[k][l.ndim - 1] == strides[k][d] * shape[d];
    int at = merge ? l.ndim - 1 : l.ndim++;
    l.size[at] = merge ? l.size[at] * shape[d] : shape[d];
    for (int k = 0; k < N; ++k) l.stride[k][at] = strides[k][d];
  }
  l.fast = numel < (int64_t(1) << 31);
  for (int d = 0; d < l.ndim && l.fast; ++d) {
    l.fast = l.size[d] >= 1 && l.size[d] < (int64_t(1) << 31);
    if (l.fast) l.div[d] = fast_div(static_cast<uint32_t>(l.size[d]));
  }
  return l;
}

/// The element offset of each operand at linear index i (0 <= i < the element count) of loop `it`
/// (a LoopDims<N> or a type derived from it).
template <class L, int N>
GLIA_HOST_DEVICE inline void loop_offsets(const L& it, int64_t i, int64_t (&off)[N]) {
  for (int k = 0; k < N; ++k) off[k] = 0;
  if (it.fast) {  // 32-bit indices: a multiply-high per dim instead of a 64-bit division
    uint32_t n = static_cast<uint32_t>(i);
    for (int d = it.ndim - 1; d >= 0; --d) {
      uint32_t q = fast_quot(n, it.div[d]);
      uint32_t idx = n - q * static_cast<uint32_t>(it.size[d]);
      n = q;
      for (int k = 0; k < N; ++k) off[k] += int64_t(idx) * it.stride[k][d];
    }
    return;
  }
  for (int d = it.ndim - 1; d >= 0; --d) {
    int64_t sz = it.size[d];
    int64_t idx = i % sz;
    i /= sz;
    for (int k = 0; k < N; ++k) off[k] += idx * it.stride[k][d];
  }
}

}  // namespace glia::detail
