// CPU kernels of softmax and log-softmax: numerically stable (shifted by the
// max), float32 through the Highway loops, parallel over rows / column blocks.
#include <cmath>
#include <limits>
#include <vector>

#include "glia/backends/cpu/kernel_utils.h"
#include "glia/backends/cpu/nn_simd.h"

namespace glia::cpu {
namespace {

/// The softmax axis as [outer, R, inner] of the contiguous input.
struct Rows {
  int64_t outer = 1, R = 1, inner = 1;
};

Rows rows_of(const Shape& s, int64_t axis) {
  Rows r;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
    int64_t n = s[static_cast<size_t>(d)];
    if (d < axis)
      r.outer *= n;
    else if (d == axis)
      r.R = n;
    else
      r.inner *= n;
  }
  return r;
}

/// One softmax group (R elements, stride `st`) in the accumulation type A.
template <class T, class A>
void softmax_generic(const T* x, T* y, int64_t R, int64_t st, bool log) {
  A m = -std::numeric_limits<A>::infinity();
  bool nan = false;
  for (int64_t r = 0; r < R; ++r) {
    A v = static_cast<A>(x[r * st]);
    nan = nan || std::isnan(v);
    m = v > m ? v : m;
  }
  if (nan) m = std::numeric_limits<A>::quiet_NaN();
  double s = 0;
  for (int64_t r = 0; r < R; ++r) s += static_cast<double>(std::exp(static_cast<A>(x[r * st]) - m));
  if (log) {
    A c = m + static_cast<A>(std::log(s));
    for (int64_t r = 0; r < R; ++r) y[r * st] = static_cast<T>(static_cast<A>(x[r * st]) - c);
  } else {
    A inv = static_cast<A>(1.0 / s);
    for (int64_t r = 0; r < R; ++r) y[r * st] = static_cast<T>(std::exp(static_cast<A>(x[r * st]) - m) * inv);
  }
}

void softmax_kernel(KernelContext& k, bool log) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  Tensor x = k.input(0).contiguous();
  Rows g = rows_of(x.shape(), k.attr<int64_t>("axis"));
  if (out.dtype() == DType::f32) {
    const float* xp = x.data<float>();
    float* yp = out.data<float>();
    if (g.inner == 1) {
      parallel_for(g.outer, std::max<int64_t>(1, 16384 / g.R), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) nn_simd::softmax_row_f32(xp + o * g.R, yp + o * g.R, g.R, log);
      });
      return;
    }
    // Blocks of columns: each task is one (outer, column block) pair, vectorized across the block.
    constexpr int64_t kCols = 256;
    int64_t nblk = (g.inner + kCols - 1) / kCols;
    parallel_for(g.outer * nblk, std::max<int64_t>(1, 16384 / (g.R * std::min(kCols, g.inner))),
                 [&](int64_t b, int64_t e) {
                   for (int64_t t = b; t < e; ++t) {
                     int64_t o = t / nblk, j0 = (t % nblk) * kCols;
                     int64_t off = o * g.R * g.inner + j0;
                     nn_simd::softmax_cols_f32(xp + off, yp + off, g.R, std::min(kCols, g.inner - j0), g.inner, log);
                   }
                 });
    return;
  }
  visit_float(out.dtype(), k.name(), [&]<class T>() {
    using A = acc_t<T>;
    const T* xp = static_cast<const T*>(x.data_ptr());
    T* yp = static_cast<T*>(out.data_ptr());
    parallel_for(g.outer * g.inner, std::max<int64_t>(1, 8192 / g.R), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        int64_t o = i / g.inner, j = i % g.inner;
        int64_t off = o * g.R * g.inner + j;
        softmax_generic<T, A>(xp + off, yp + off, g.R, g.inner, log);
      }
    });
  });
}

}  // namespace

GLIA_KERNEL(softmax, CPU, [](KernelContext& k) { softmax_kernel(k, false); });
GLIA_KERNEL(log_softmax, CPU, [](KernelContext& k) { softmax_kernel(k, true); });

}  // namespace glia::cpu
