#include "glia/backends/cpu/loops.h"

namespace glia::cpu {

Loop make_loop(std::span<const Tensor* const> ops, IntList shape) {
  Loop L;
  L.nops = static_cast<int>(ops.size());
  GLIA_CHECK(L.nops <= kMaxLoopOps, InternalError, "element-wise loop with ", L.nops, " operands");
  int nd = static_cast<int>(shape.size());
  L.numel = numel(shape);
  for (int op = 0; op < L.nops; ++op) L.data[op] = static_cast<char*>(ops[op]->data_ptr());
  // Collect dims innermost first, dropping size-1 dims.
  int64_t sz[64];
  int64_t st[kMaxLoopOps][64];
  GLIA_CHECK(nd <= 64, ShapeError, "tensors of rank ", nd, " are not supported (at most 64)");
  int n = 0;
  for (int d = nd - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    sz[n] = shape[d];
    for (int op = 0; op < L.nops; ++op) {
      const Tensor& t = *ops[op];
      int td = d - (nd - static_cast<int>(t.dim()));
      int64_t s = 0;
      if (td >= 0 && t.shape()[td] != 1) s = t.strides()[td] * static_cast<int64_t>(t.itemsize());
      st[op][n] = s;
    }
    ++n;
  }
  // Merge dim i+1 into i when every operand steps through both as one run.
  int m = 0;
  for (int i = 0; i < n; ++i) {
    if (m > 0) {
      bool ok = true;
      for (int op = 0; op < L.nops && ok; ++op) ok = st[op][i] == st[op][m - 1] * L.size[m - 1];
      if (ok) {
        L.size[m - 1] *= sz[i];
        continue;
      }
    }
    GLIA_CHECK(m < kMaxLoopDims, ShapeError, "element-wise op over ", n,
               " non-mergeable dimensions; at most 16 are supported (make the inputs contiguous first)");
    L.size[m] = sz[i];
    for (int op = 0; op < L.nops; ++op) L.stride[op][m] = st[op][i];
    ++m;
  }
  L.ndim = m;
  return L;
}

}  // namespace glia::cpu
