// CPU pooling kernels over NHWC. Channels are contiguous, so the float32
// loops run SIMD across C (Highway, compiled per x86 target and picked at run
// time) and threads split the output rows (n, oh). Max pooling saves the
// position of the max within its window (kh * KW + kw, uint8) so that its
// backward is a scatter; when windows do not overlap (stride >= kernel) the
// backward writes each input cell once, without zero-filling first.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "glia/backends/cpu/pool.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#ifndef GLIA_CPU_POOL_SHARED
#define GLIA_CPU_POOL_SHARED
namespace glia::cpu::pool {

/// Sizes of one pooling: x [N,H,W,C], y [N,OH,OW,C], window KHxKW, stride, top/left pads.
struct Geom {
  int64_t N, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl;
  /// First input row of output row oh and its valid kernel rows [lo, hi).
  void rows(int64_t oh, int64_t& i0, int64_t& lo, int64_t& hi) const {
    i0 = oh * sh - pt;
    lo = std::max<int64_t>(0, -i0);
    hi = std::min<int64_t>(KH, H - i0);
  }
  void cols(int64_t ow, int64_t& i0, int64_t& lo, int64_t& hi) const {
    i0 = ow * sw - pl;
    lo = std::max<int64_t>(0, -i0);
    hi = std::min<int64_t>(KW, W - i0);
  }
};

}  // namespace glia::cpu::pool
#endif

HWY_BEFORE_NAMESPACE();
namespace glia::cpu::pool::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using D8 = hn::Rebind<uint8_t, DF>;

/// The cells of one window that lie inside the input: element offsets from `base` (itself an
/// offset into the NHWC input) and their positions in the window (kh * KW + kw). Full windows
/// share one precomputed list.
struct Window {
  int64_t base;
  const int64_t* off;
  const int32_t* pos;
  int64_t count;
};

/// Walks the output cells of rows [r0, r1) and hands each one's window to f(window, out_offset).
/// full_off / full_pos list the cells of an unclipped window relative to its top-left corner.
template <class F>
HWY_INLINE void ForEachWindow(const Geom& g, const int64_t* full_off, const int32_t* full_pos, int64_t r0, int64_t r1,
                              F&& f) {
  const int64_t K = g.KH * g.KW;
  std::vector<int64_t> off(static_cast<size_t>(K));
  std::vector<int32_t> pos(static_cast<size_t>(K));
  for (int64_t r = r0; r < r1; ++r) {
    int64_t n = r / g.OH, oh = r % g.OH, ih0, khl, khh;
    g.rows(oh, ih0, khl, khh);
    const int64_t image = n * g.H * g.W * g.C;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      int64_t iw0, kwl, kwh;
      g.cols(ow, iw0, kwl, kwh);
      const int64_t o = (r * g.OW + ow) * g.C;
      if (khh - khl == g.KH && kwh - kwl == g.KW) {
        f(Window{image + (ih0 * g.W + iw0) * g.C, full_off, full_pos, K}, o);
        continue;
      }
      int64_t m = 0;
      for (int64_t kh = khl; kh < khh; ++kh)
        for (int64_t kw = kwl; kw < kwh; ++kw, ++m) {
          off[m] = ((ih0 + kh) * g.W + iw0 + kw) * g.C;
          pos[m] = static_cast<int32_t>(kh * g.KW + kw);
        }
      f(Window{image, off.data(), pos.data(), m}, o);
    }
  }
}

/// Calls body.template operator()<K>() with K the window size when it is 4 or 9 (unrolled), else 0.
template <class F>
HWY_INLINE void WithWindowSize(const Geom& g, F&& body) {
  const int64_t K = g.KH * g.KW;
  if (K == 4)
    body.template operator()<4>();
  else if (K == 9)
    body.template operator()<9>();
  else
    body.template operator()<0>();
}

// NaN counts as the max (as PyTorch): a later NaN or a strictly greater value takes the place.
template <int K>
HWY_INLINE void MaxWindow(const Window& w, const float* HWY_RESTRICT x, float* HWY_RESTRICT yp,
                          uint8_t* HWY_RESTRICT ip, int64_t C) {
  const float* base = x + w.base;
  const DF df;
  const DI di;
  const D8 d8;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t cnt = (K > 0 && w.count == K) ? K : w.count;
  int64_t c = 0;
  for (; c + L <= C; c += L) {
    auto m = hn::LoadU(df, base + w.off[0] + c);
    auto ix = hn::Set(di, w.pos[0]);
    for (int64_t j = 1; j < cnt; ++j) {
      auto v = hn::LoadU(df, base + w.off[j] + c);
      auto take = hn::Or(hn::Gt(v, m), hn::IsNaN(v));
      m = hn::IfThenElse(take, v, m);
      ix = hn::IfThenElse(hn::RebindMask(di, take), hn::Set(di, w.pos[j]), ix);
    }
    hn::StoreU(m, df, yp + c);
    hn::StoreU(hn::DemoteTo(d8, ix), d8, ip + c);
  }
  for (; c < C; ++c) {
    float m = base[w.off[0] + c];
    int32_t ix = w.pos[0];
    for (int64_t j = 1; j < cnt; ++j) {
      float v = base[w.off[j] + c];
      if (v > m || std::isnan(v)) {
        m = v;
        ix = w.pos[j];
      }
    }
    yp[c] = m;
    ip[c] = static_cast<uint8_t>(ix);
  }
}

void MaxFwdF32(const Geom& g, const int64_t* full_off, const int32_t* full_pos, const float* HWY_RESTRICT x,
               float* HWY_RESTRICT y, uint8_t* HWY_RESTRICT idx, int64_t r0, int64_t r1) {
  WithWindowSize(g, [&]<int K>() HWY_ATTR {
    ForEachWindow(g, full_off, full_pos, r0, r1,
                  [&](const Window& w, int64_t o) HWY_ATTR { MaxWindow<K>(w, x, y + o, idx + o, g.C); });
  });
}

// Each gradient and index vector is loaded once and routed to every cell of its window: stored when
// windows are disjoint, added otherwise (then gx starts zeroed and rows come by whole images).
template <int K, bool kAdd>
HWY_INLINE void MaxScatterWindow(const Window& w, float* gx, const float* HWY_RESTRICT gp,
                                 const uint8_t* HWY_RESTRICT ip, int64_t C) {
  const DF df;
  const DI di;
  const D8 d8;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t cnt = (K > 0 && w.count == K) ? K : w.count;
  float* base = gx + w.base;
  int64_t c = 0;
  for (; c + L <= C; c += L) {
    const auto gv = hn::LoadU(df, gp + c);
    const auto iv = hn::PromoteTo(di, hn::LoadU(d8, ip + c));
    for (int64_t j = 0; j < cnt; ++j) {
      float* dst = base + w.off[j] + c;
      auto v = hn::IfThenElseZero(hn::RebindMask(df, hn::Eq(iv, hn::Set(di, w.pos[j]))), gv);
      if constexpr (kAdd) v = hn::Add(v, hn::LoadU(df, dst));
      hn::StoreU(v, df, dst);
    }
  }
  for (; c < C; ++c)
    for (int64_t j = 0; j < cnt; ++j) {
      float* dst = base + w.off[j] + c;
      float v = ip[c] == w.pos[j] ? gp[c] : 0.f;
      *dst = kAdd ? *dst + v : v;
    }
}

template <bool kAdd>
void MaxBwd(const Geom& g, const int64_t* full_off, const int32_t* full_pos, const float* HWY_RESTRICT gy,
            const uint8_t* HWY_RESTRICT idx, float* gx, int64_t r0, int64_t r1) {
  WithWindowSize(g, [&]<int K>() HWY_ATTR {
    ForEachWindow(g, full_off, full_pos, r0, r1,
                  [&](const Window& w, int64_t o) HWY_ATTR { MaxScatterWindow<K, kAdd>(w, gx, gy + o, idx + o, g.C); });
  });
}
void MaxBwdStoreF32(const Geom& g, const int64_t* fo, const int32_t* fp, const float* gy, const uint8_t* idx, float* gx,
                    int64_t r0, int64_t r1) {
  MaxBwd<false>(g, fo, fp, gy, idx, gx, r0, r1);
}
void MaxBwdAddF32(const Geom& g, const int64_t* fo, const int32_t* fp, const float* gy, const uint8_t* idx, float* gx,
                  int64_t r0, int64_t r1) {
  MaxBwd<true>(g, fo, fp, gy, idx, gx, r0, r1);
}

// Mean over the valid (unpadded) cells of each window.
template <int K>
HWY_INLINE void AvgWindow(const Window& w, const float* HWY_RESTRICT x, float* HWY_RESTRICT yp, int64_t C) {
  const float* base = x + w.base;
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t cnt = (K > 0 && w.count == K) ? K : w.count;
  const float inv = 1.f / static_cast<float>(cnt);
  int64_t c = 0;
  for (; c + L <= C; c += L) {
    auto s = hn::LoadU(df, base + w.off[0] + c);
    for (int64_t j = 1; j < cnt; ++j) s = hn::Add(s, hn::LoadU(df, base + w.off[j] + c));
    hn::StoreU(hn::Mul(s, hn::Set(df, inv)), df, yp + c);
  }
  for (; c < C; ++c) {
    float s = base[w.off[0] + c];
    for (int64_t j = 1; j < cnt; ++j) s += base[w.off[j] + c];
    yp[c] = s * inv;
  }
}

void AvgFwdF32(const Geom& g, const int64_t* full_off, const int32_t* full_pos, const float* HWY_RESTRICT x,
               float* HWY_RESTRICT y, int64_t r0, int64_t r1) {
  WithWindowSize(g, [&]<int K>() HWY_ATTR {
    ForEachWindow(g, full_off, full_pos, r0, r1,
                  [&](const Window& w, int64_t o) HWY_ATTR { AvgWindow<K>(w, x, y + o, g.C); });
  });
}

template <int K, bool kAdd>
HWY_INLINE void AvgScatterWindow(const Window& w, float* gx, const float* HWY_RESTRICT gp, int64_t C) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const int64_t cnt = (K > 0 && w.count == K) ? K : w.count;
  const float inv = 1.f / static_cast<float>(cnt);
  float* base = gx + w.base;
  int64_t c = 0;
  for (; c + L <= C; c += L) {
    const auto v = hn::Mul(hn::LoadU(df, gp + c), hn::Set(df, inv));
    for (int64_t j = 0; j < cnt; ++j) {
      float* dst = base + w.off[j] + c;
      hn::StoreU(kAdd ? hn::Add(v, hn::LoadU(df, dst)) : v, df, dst);
    }
  }
  for (; c < C; ++c)
    for (int64_t j = 0; j < cnt; ++j) {
      float* dst = base + w.off[j] + c;
      *dst = kAdd ? *dst + gp[c] * inv : gp[c] * inv;
    }
}

template <bool kAdd>
void AvgBwd(const Geom& g, const int64_t* full_off, const int32_t* full_pos, const float* HWY_RESTRICT gy, float* gx,
            int64_t r0, int64_t r1) {
  WithWindowSize(g, [&]<int K>() HWY_ATTR {
    ForEachWindow(g, full_off, full_pos, r0, r1,
                  [&](const Window& w, int64_t o) HWY_ATTR { AvgScatterWindow<K, kAdd>(w, gx, gy + o, g.C); });
  });
}
void AvgBwdStoreF32(const Geom& g, const int64_t* fo, const int32_t* fp, const float* gy, float* gx, int64_t r0,
                    int64_t r1) {
  AvgBwd<false>(g, fo, fp, gy, gx, r0, r1);
}
void AvgBwdAddF32(const Geom& g, const int64_t* fo, const int32_t* fp, const float* gy, float* gx, int64_t r0,
                  int64_t r1) {
  AvgBwd<true>(g, fo, fp, gy, gx, r0, r1);
}

}  // namespace glia::cpu::pool::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "glia/backends/cpu/kernel_utils.h"

namespace glia::cpu::pool {

HWY_EXPORT(MaxFwdF32);
HWY_EXPORT(MaxBwdStoreF32);
HWY_EXPORT(MaxBwdAddF32);
HWY_EXPORT(AvgFwdF32);
HWY_EXPORT(AvgBwdStoreF32);
HWY_EXPORT(AvgBwdAddF32);

namespace {

using I64s = std::vector<int64_t>;

Geom make_geom(const Shape& x, const Shape& y, const Attrs& a) {
  const auto& k = a.get<I64s>("kernel");
  const auto& s = a.get<I64s>("stride");
  const auto& p = a.get<I64s>("pads");
  return {x[0], x[1], x[2], x[3], y[1], y[2], k[0], k[1], s[0], s[1], p[0], p[2]};
}

bool disjoint(const Geom& g) { return g.sh >= g.KH && g.sw >= g.KW; }

/// The cells of an unclipped window: offsets from its top-left corner and positions kh * KW + kw.
struct FullWindow {
  std::vector<int64_t> off;
  std::vector<int32_t> pos;
  explicit FullWindow(const Geom& g) {
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        off.push_back((kh * g.W + kw) * g.C);
        pos.push_back(static_cast<int32_t>(kh * g.KW + kw));
      }
  }
};

/// f(lo, hi) over [0, n) rows split evenly across threads; `row_work` elements per row.
template <class F>
void parallel_rows(int64_t n, int64_t row_work, F&& f) {
  int nt = threads_for(n * row_work, 16384);
  if (nt <= 1 || n < 2) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t lo = n * t / T, hi = n * (t + 1) / T;
    if (lo < hi) f(lo, hi);
  }
}

/// The input columns that some window reads; with disjoint windows the others (and the rows
/// between / after the windows) are never written by the scatter and get zeros instead.
struct Gaps {
  std::vector<char> col_covered;
  bool all_cols = true;
  explicit Gaps(const Geom& g) : col_covered(static_cast<size_t>(g.W), 0) {
    for (int64_t o = 0; o < g.OW; ++o)
      for (int64_t i = std::max<int64_t>(0, o * g.sw - g.pl); i < std::min(g.W, o * g.sw - g.pl + g.KW); ++i)
        col_covered[static_cast<size_t>(i)] = 1;
    all_cols = std::all_of(col_covered.begin(), col_covered.end(), [](char v) { return v != 0; });
  }
};

/// Zeroes the cells of output rows [r0, r1) that their disjoint windows skip: output row oh owns the
/// input rows from its window's start to the next window's start (from 0 for the first, to H for the last).
template <class T>
void zero_gaps(const Geom& g, const Gaps& gaps, T* gx, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    int64_t n = r / g.OH, oh = r % g.OH, i0 = oh * g.sh - g.pt;
    int64_t a = std::max<int64_t>(oh == 0 ? 0 : i0, 0), b = std::min(oh == g.OH - 1 ? g.H : i0 + g.sh, g.H);
    for (int64_t ih = a; ih < b; ++ih) {
      T* row = gx + (n * g.H + ih) * g.W * g.C;
      if (ih < i0 || ih >= i0 + g.KH) {
        std::fill(row, row + g.W * g.C, T(0));
      } else if (!gaps.all_cols) {
        for (int64_t iw = 0; iw < g.W; ++iw)
          if (!gaps.col_covered[static_cast<size_t>(iw)]) std::fill(row + iw * g.C, row + (iw + 1) * g.C, T(0));
      }
    }
  }
}

// --- generic loops (float64, and float32 with int32 indices for huge windows)

template <class T>
const T* cell(const Geom& g, const T* x, int64_t n, int64_t ih, int64_t iw) {
  return x + ((n * g.H + ih) * g.W + iw) * g.C;
}

template <class T, class I>
void max_fwd_generic(const Geom& g, const T* x, T* y, I* idx, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    int64_t n = r / g.OH, ih0, khl, khh;
    g.rows(r % g.OH, ih0, khl, khh);
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      int64_t iw0, kwl, kwh;
      g.cols(ow, iw0, kwl, kwh);
      T* yp = y + (r * g.OW + ow) * g.C;
      I* ip = idx + (r * g.OW + ow) * g.C;
      const T* first = cell(g, x, n, ih0 + khl, iw0 + kwl);
      for (int64_t c = 0; c < g.C; ++c) {
        yp[c] = first[c];
        ip[c] = static_cast<I>(khl * g.KW + kwl);
      }
      for (int64_t kh = khl; kh < khh; ++kh)
        for (int64_t kw = kwl; kw < kwh; ++kw) {
          const T* xp = cell(g, x, n, ih0 + kh, iw0 + kw);
          for (int64_t c = 0; c < g.C; ++c)
            if (xp[c] > yp[c] || std::isnan(xp[c])) {
              yp[c] = xp[c];
              ip[c] = static_cast<I>(kh * g.KW + kw);
            }
        }
    }
  }
}

/// kGather: gy[out] = gx[cell named by idx]; otherwise the scatter gx[cell] (+)= gy[out].
template <class T, class I, bool kAdd, bool kGather>
void max_route_generic(const Geom& g, const T* gy_in, const I* idx, T* gx, T* gy_out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    int64_t n = r / g.OH, ih0, khl, khh;
    g.rows(r % g.OH, ih0, khl, khh);
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      int64_t iw0, kwl, kwh;
      g.cols(ow, iw0, kwl, kwh);
      int64_t o = (r * g.OW + ow) * g.C;
      if constexpr (kGather) {
        for (int64_t c = 0; c < g.C; ++c) {
          int64_t k = static_cast<int64_t>(idx[o + c]);
          gy_out[o + c] = cell(g, static_cast<const T*>(gx), n, ih0 + k / g.KW, iw0 + k % g.KW)[c];
        }
      } else {
        for (int64_t kh = khl; kh < khh; ++kh)
          for (int64_t kw = kwl; kw < kwh; ++kw) {
            T* dst = const_cast<T*>(cell(g, static_cast<const T*>(gx), n, ih0 + kh, iw0 + kw));
            I k = static_cast<I>(kh * g.KW + kw);
            for (int64_t c = 0; c < g.C; ++c) {
              T v = idx[o + c] == k ? gy_in[o + c] : T(0);
              dst[c] = kAdd ? dst[c] + v : v;
            }
          }
      }
    }
  }
}

template <class T>
void avg_fwd_generic(const Geom& g, const T* x, T* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    int64_t n = r / g.OH, ih0, khl, khh;
    g.rows(r % g.OH, ih0, khl, khh);
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      int64_t iw0, kwl, kwh;
      g.cols(ow, iw0, kwl, kwh);
      T* yp = y + (r * g.OW + ow) * g.C;
      std::fill(yp, yp + g.C, T(0));
      for (int64_t kh = khl; kh < khh; ++kh)
        for (int64_t kw = kwl; kw < kwh; ++kw) {
          const T* xp = cell(g, x, n, ih0 + kh, iw0 + kw);
          for (int64_t c = 0; c < g.C; ++c) yp[c] += xp[c];
        }
      T inv = T(1) / static_cast<T>((khh - khl) * (kwh - kwl));
      for (int64_t c = 0; c < g.C; ++c) yp[c] *= inv;
    }
  }
}

template <class T, bool kAdd>
void avg_bwd_generic(const Geom& g, const T* gy, T* gx, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    int64_t n = r / g.OH, ih0, khl, khh;
    g.rows(r % g.OH, ih0, khl, khh);
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      int64_t iw0, kwl, kwh;
      g.cols(ow, iw0, kwl, kwh);
      const T* gp = gy + (r * g.OW + ow) * g.C;
      T inv = T(1) / static_cast<T>((khh - khl) * (kwh - kwl));
      for (int64_t kh = khl; kh < khh; ++kh)
        for (int64_t kw = kwl; kw < kwh; ++kw) {
          T* dst = const_cast<T*>(cell(g, static_cast<const T*>(gx), n, ih0 + kh, iw0 + kw));
          for (int64_t c = 0; c < g.C; ++c) dst[c] = kAdd ? dst[c] + gp[c] * inv : gp[c] * inv;
        }
    }
  }
}

/// Runs f(lo, hi) over output rows: split anywhere for disjoint windows, by whole images otherwise.
template <class F>
void over_rows(const Geom& g, bool whole_images, F&& f) {
  int64_t row_work = g.OW * g.C * g.KH * g.KW;
  if (!whole_images) {
    parallel_rows(g.N * g.OH, row_work, f);
    return;
  }
  parallel_rows(g.N, g.OH * row_work, [&](int64_t lo, int64_t hi) { f(lo * g.OH, hi * g.OH); });
}

/// Float32 copies of 16-bit float inputs; the result is written back to out's dtype.
template <class F>
void compute_in(DType compute, const Tensor& out, F f) {
  if (out.dtype() == compute) {
    f(out);
    return;
  }
  Tensor tmp = Tensor::empty(out.shape(), compute);
  f(tmp);
  cast_copy(tmp, out);
}

DType compute_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

void max_forward(KernelContext& k) {
  const Tensor &y = k.output(0), &idx = k.output(1);
  Geom g = make_geom(k.input(0).shape(), y.shape(), k.attrs());
  if (y.numel() == 0) return;
  DType ct = compute_dtype(y.dtype());
  Tensor x = as_dtype(k.input(0), ct).contiguous();
  FullWindow fw(g);
  compute_in(ct, y, [&](const Tensor& out) {
    visit_dtype(idx.dtype(), [&]<class I>() {
      if constexpr (std::is_same_v<I, uint8_t> || std::is_same_v<I, int32_t>) {
        I* ip = static_cast<I*>(idx.data_ptr());
        if (ct == DType::f64) {
          parallel_rows(g.N * g.OH, g.OW * g.C * g.KH * g.KW, [&](int64_t lo, int64_t hi) {
            max_fwd_generic(g, x.data<double>(), out.data<double>(), ip, lo, hi);
          });
        } else if constexpr (std::is_same_v<I, uint8_t>) {
          parallel_rows(g.N * g.OH, g.OW * g.C * g.KH * g.KW, [&](int64_t lo, int64_t hi) {
            HWY_DYNAMIC_DISPATCH(MaxFwdF32)
            (g, fw.off.data(), fw.pos.data(), x.data<float>(), out.data<float>(), ip, lo, hi);
          });
        } else {
          parallel_rows(g.N * g.OH, g.OW * g.C * g.KH * g.KW, [&](int64_t lo, int64_t hi) {
            max_fwd_generic(g, x.data<float>(), out.data<float>(), ip, lo, hi);
          });
        }
      } else {
        throw InternalError("max_pool2d: index dtype must be uint8 or int32");
      }
    });
  });
}

/// Shared by max_pool2d_backward (scatter) and max_pool2d_gather.
template <bool kGather>
void max_route(KernelContext& k) {
  const Tensor& out = k.output();
  const Tensor& idx_in = k.input(1);
  const Tensor& src_in = k.input(0);
  // Scatter: src is grad [N,OH,OW,C], out the input-shaped gradient. Gather: the other way.
  Geom g =
      kGather ? make_geom(src_in.shape(), out.shape(), k.attrs()) : make_geom(out.shape(), src_in.shape(), k.attrs());
  if (out.numel() == 0) return;
  DType ct = compute_dtype(out.dtype());
  Tensor src = as_dtype(src_in, ct).contiguous();
  Tensor idx = idx_in.contiguous();
  bool dis = disjoint(g);
  FullWindow fw(g);
  compute_in(ct, out, [&](const Tensor& o) {
    if (!kGather && (!dis || g.N * g.OH == 0)) o.zero_();
    if (g.N * g.OH * g.OW * g.C == 0) return;
    visit_dtype(idx.dtype(), [&]<class I>() {
      if constexpr (std::is_same_v<I, uint8_t> || std::is_same_v<I, int32_t>) {
        const I* ip = static_cast<const I*>(idx.data_ptr());
        visit_float(ct, "max_pool2d_backward", [&]<class T>() {
          if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
            const T* s = src.data<T>();
            T* d = o.data<T>();
            if constexpr (kGather) {
              over_rows(g, false, [&](int64_t lo, int64_t hi) {
                max_route_generic<T, I, false, true>(g, nullptr, ip, const_cast<T*>(s), d, lo, hi);
              });
              return;
            } else {
              Gaps gaps(g);
              over_rows(g, !dis, [&](int64_t lo, int64_t hi) {
                if (dis) zero_gaps(g, gaps, d, lo, hi);
                if constexpr (std::is_same_v<T, float> && std::is_same_v<I, uint8_t>) {
                  if (dis)
                    HWY_DYNAMIC_DISPATCH(MaxBwdStoreF32)(g, fw.off.data(), fw.pos.data(), s, ip, d, lo, hi);
                  else
                    HWY_DYNAMIC_DISPATCH(MaxBwdAddF32)(g, fw.off.data(), fw.pos.data(), s, ip, d, lo, hi);
                } else if (dis) {
                  max_route_generic<T, I, false, false>(g, s, ip, d, nullptr, lo, hi);
                } else {
                  max_route_generic<T, I, true, false>(g, s, ip, d, nullptr, lo, hi);
                }
              });
            }
          }
        });
      } else {
        throw InternalError("max_pool2d_backward: index dtype must be uint8 or int32");
      }
    });
  });
}

void avg_forward(KernelContext& k) {
  const Tensor& y = k.output();
  Geom g = make_geom(k.input(0).shape(), y.shape(), k.attrs());
  if (y.numel() == 0) return;
  DType ct = compute_dtype(y.dtype());
  Tensor x = as_dtype(k.input(0), ct).contiguous();
  FullWindow fw(g);
  compute_in(ct, y, [&](const Tensor& out) {
    over_rows(g, false, [&](int64_t lo, int64_t hi) {
      if (ct == DType::f64)
        avg_fwd_generic(g, x.data<double>(), out.data<double>(), lo, hi);
      else
        HWY_DYNAMIC_DISPATCH(AvgFwdF32)(g, fw.off.data(), fw.pos.data(), x.data<float>(), out.data<float>(), lo, hi);
    });
  });
}

void avg_backward(KernelContext& k) {
  const Tensor& gx = k.output();
  Geom g = make_geom(gx.shape(), k.input(0).shape(), k.attrs());
  if (gx.numel() == 0) return;
  DType ct = compute_dtype(gx.dtype());
  Tensor gy = as_dtype(k.input(0), ct).contiguous();
  bool dis = disjoint(g);
  FullWindow fw(g);
  compute_in(ct, gx, [&](const Tensor& out) {
    if (!dis || gy.numel() == 0) out.zero_();
    if (gy.numel() == 0) return;
    Gaps gaps(g);
    over_rows(g, !dis, [&](int64_t lo, int64_t hi) {
      if (dis) {
        if (ct == DType::f64)
          zero_gaps(g, gaps, out.data<double>(), lo, hi);
        else
          zero_gaps(g, gaps, out.data<float>(), lo, hi);
      }
      if (ct == DType::f64) {
        if (dis)
          avg_bwd_generic<double, false>(g, gy.data<double>(), out.data<double>(), lo, hi);
        else
          avg_bwd_generic<double, true>(g, gy.data<double>(), out.data<double>(), lo, hi);
      } else if (dis) {
        HWY_DYNAMIC_DISPATCH(AvgBwdStoreF32)
        (g, fw.off.data(), fw.pos.data(), gy.data<float>(), out.data<float>(), lo, hi);
      } else {
        HWY_DYNAMIC_DISPATCH(AvgBwdAddF32)
        (g, fw.off.data(), fw.pos.data(), gy.data<float>(), out.data<float>(), lo, hi);
      }
    });
  });
}

}  // namespace
}  // namespace glia::cpu::pool

namespace glia::cpu {
GLIA_KERNEL(max_pool2d, CPU, pool::max_forward);
GLIA_KERNEL(max_pool2d_backward, CPU, pool::max_route<false>);
GLIA_KERNEL(max_pool2d_gather, CPU, pool::max_route<true>);
GLIA_KERNEL(avg_pool2d, CPU, pool::avg_forward);
GLIA_KERNEL(avg_pool2d_backward, CPU, pool::avg_backward);
}  // namespace glia::cpu
#endif
