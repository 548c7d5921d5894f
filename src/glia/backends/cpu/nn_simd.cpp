// Highway loops for softmax and batch normalization, compiled once per x86
// target and picked at run time (as simd.cpp).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "glia/backends/cpu/nn_simd.cpp"
// foreach_target must come first.
// clang-format off
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include "glia/backends/cpu/nn_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

HWY_BEFORE_NAMESPACE();
namespace glia::cpu::nn_simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

constexpr float kInf = std::numeric_limits<float>::infinity();

// exp(x - m) for x - m <= 0 (m is the max): inputs below -104 underflow to 0 in
// float32, and Highway's Exp is only valid above that. NaN (a NaN input, or
// inf - inf) stays NaN, as in PyTorch.
HWY_INLINE V ShiftedExp(D d, V x, V m) {
  V t = hn::Sub(x, m);
  V e = hn::Exp(d, hn::Max(t, hn::Set(d, -104.f)));
  return hn::IfThenElse(hn::IsNaN(t), t, e);
}

HWY_INLINE float ScalarShiftedExp(float x, float m) {
  float t = x - m;
  return std::isnan(t) ? t : std::exp(std::max(t, -104.f));
}

// NaN-propagating max.
HWY_INLINE V MaxNaN(V a, V b) {
  return hn::IfThenElse(hn::IsNaN(b), b, hn::IfThenElse(hn::IsNaN(a), a, hn::Max(a, b)));
}

void SoftmaxRowF32(const float* x, float* y, int64_t n, bool log) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  if (n == 0) return;
  // 1. the max
  V vm = hn::Set(d, -kInf);
  auto nan = hn::Lt(vm, vm);  // all false
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    V v = hn::LoadU(d, x + i);
    nan = hn::Or(nan, hn::IsNaN(v));
    vm = hn::Max(vm, v);
  }
  float m = hn::GetLane(hn::MaxOfLanes(d, vm));
  if (!hn::AllFalse(d, nan)) m = std::numeric_limits<float>::quiet_NaN();
  for (int64_t k = i; k < n; ++k)
    m = std::isnan(x[k]) || std::isnan(m) ? std::numeric_limits<float>::quiet_NaN() : std::max(m, x[k]);
  // 2. the sum of exp(x - m), in float vectors per block of 1024 and double across blocks
  const V mv = hn::Set(d, m);
  double sum = 0;
  i = 0;
  for (int64_t b = 0; b < n; b += 1024) {
    int64_t e = std::min(n, b + 1024);
    V s = hn::Zero(d);
    for (i = b; i + N <= e; i += N) {
      V ex = ShiftedExp(d, hn::LoadU(d, x + i), mv);
      if (!log) hn::StoreU(ex, d, y + i);
      s = hn::Add(s, ex);
    }
    sum += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, s)));
    for (; i < e; ++i) {
      float ex = ScalarShiftedExp(x[i], m);
      if (!log) y[i] = ex;
      sum += static_cast<double>(ex);
    }
  }
  // 3. normalize
  i = 0;
  if (!log) {
    const V inv = hn::Set(d, static_cast<float>(1.0 / sum));
    for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, y + i), inv), d, y + i);
    for (; i < n; ++i) y[i] *= static_cast<float>(1.0 / sum);
  } else {
    const float c = m + static_cast<float>(std::log(sum));
    const V cv = hn::Set(d, c);
    for (; i + N <= n; i += N) hn::StoreU(hn::Sub(hn::LoadU(d, x + i), cv), d, y + i);
    for (; i < n; ++i) y[i] = x[i] - c;
  }
}

void SoftmaxColsF32(const float* x, float* y, int64_t rows, int64_t cols, int64_t ld, bool log) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  if (rows == 0) return;
  int64_t j = 0;
  for (; j + N <= cols; j += N) {
    V m = hn::LoadU(d, x + j);
    for (int64_t r = 1; r < rows; ++r) m = MaxNaN(m, hn::LoadU(d, x + r * ld + j));
    V s = hn::Zero(d);
    for (int64_t r = 0; r < rows; ++r) {
      V ex = ShiftedExp(d, hn::LoadU(d, x + r * ld + j), m);
      if (!log) hn::StoreU(ex, d, y + r * ld + j);
      s = hn::Add(s, ex);
    }
    if (!log) {
      V inv = hn::Div(hn::Set(d, 1.f), s);
      for (int64_t r = 0; r < rows; ++r) hn::StoreU(hn::Mul(hn::LoadU(d, y + r * ld + j), inv), d, y + r * ld + j);
    } else {
      // s >= 1 (the max contributes exp(0)) unless it is NaN.
      V c = hn::Add(m, hn::IfThenElse(hn::IsNaN(s), s, hn::Log(d, s)));
      for (int64_t r = 0; r < rows; ++r) hn::StoreU(hn::Sub(hn::LoadU(d, x + r * ld + j), c), d, y + r * ld + j);
    }
  }
  for (; j < cols; ++j) {
    float m = x[j];
    for (int64_t r = 1; r < rows; ++r) {
      float v = x[r * ld + j];
      m = std::isnan(v) || std::isnan(m) ? std::numeric_limits<float>::quiet_NaN() : std::max(m, v);
    }
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) {
      float ex = ScalarShiftedExp(x[r * ld + j], m);
      if (!log) y[r * ld + j] = ex;
      s += static_cast<double>(ex);
    }
    if (!log) {
      float inv = static_cast<float>(1.0 / s);
      for (int64_t r = 0; r < rows; ++r) y[r * ld + j] *= inv;
    } else {
      float c = m + static_cast<float>(std::log(s));
      for (int64_t r = 0; r < rows; ++r) y[r * ld + j] = x[r * ld + j] - c;
    }
  }
}

// Rows are taken in blocks: float vector sums within a block, double across blocks.
constexpr int64_t kRowBlock = 64;

HWY_INLINE void AddLanes(D d, V v, double* acc) {
  HWY_ALIGN float buf[hn::MaxLanes(d)];
  hn::Store(v, d, buf);
  for (size_t l = 0; l < hn::Lanes(d); ++l) acc[l] += static_cast<double>(buf[l]);
}

void ColMomentsF32(const float* x, int64_t rows, int64_t C, const float* shift, double* s1, double* s2) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    int64_t r1 = std::min(rows, r0 + kRowBlock);
    int64_t j = 0;
    for (; j + N <= C; j += N) {
      const V sh = hn::LoadU(d, shift + j);
      V a1 = hn::Zero(d), a2 = hn::Zero(d);
      for (int64_t r = r0; r < r1; ++r) {
        V t = hn::Sub(hn::LoadU(d, x + r * C + j), sh);
        a1 = hn::Add(a1, t);
        a2 = hn::MulAdd(t, t, a2);
      }
      AddLanes(d, a1, s1 + j);
      AddLanes(d, a2, s2 + j);
    }
    for (; j < C; ++j) {
      double a1 = 0, a2 = 0;
      for (int64_t r = r0; r < r1; ++r) {
        double t = static_cast<double>(x[r * C + j]) - static_cast<double>(shift[j]);
        a1 += t;
        a2 += t * t;
      }
      s1[j] += a1;
      s2[j] += a2;
    }
  }
}

void ColGradMomentsF32(const float* g, const float* x, int64_t rows, int64_t C, const float* mean, double* sg,
                       double* sgx) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    int64_t r1 = std::min(rows, r0 + kRowBlock);
    int64_t j = 0;
    for (; j + N <= C; j += N) {
      const V mu = hn::LoadU(d, mean + j);
      V a1 = hn::Zero(d), a2 = hn::Zero(d);
      for (int64_t r = r0; r < r1; ++r) {
        V gv = hn::LoadU(d, g + r * C + j);
        a1 = hn::Add(a1, gv);
        a2 = hn::MulAdd(gv, hn::Sub(hn::LoadU(d, x + r * C + j), mu), a2);
      }
      AddLanes(d, a1, sg + j);
      AddLanes(d, a2, sgx + j);
    }
    for (; j < C; ++j) {
      double a1 = 0, a2 = 0;
      for (int64_t r = r0; r < r1; ++r) {
        double gv = static_cast<double>(g[r * C + j]);
        a1 += gv;
        a2 += gv * (static_cast<double>(x[r * C + j]) - static_cast<double>(mean[j]));
      }
      sg[j] += a1;
      sgx[j] += a2;
    }
  }
}

void ColAffineF32(const float* x, int64_t rows, int64_t C, const float* a, const float* b, float* y) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    int64_t j = 0;
    for (; j + N <= C; j += N)
      hn::StoreU(hn::MulAdd(hn::LoadU(d, xr + j), hn::LoadU(d, a + j), hn::LoadU(d, b + j)), d, yr + j);
    for (; j < C; ++j) yr[j] = xr[j] * a[j] + b[j];
  }
}

void ColAffine2F32(const float* g, const float* x, int64_t rows, int64_t C, const float* a, const float* b,
                   const float* c, float* y) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t r = 0; r < rows; ++r) {
    const float* gr = g + r * C;
    const float* xr = x + r * C;
    float* yr = y + r * C;
    int64_t j = 0;
    for (; j + N <= C; j += N) {
      V t = hn::MulAdd(hn::LoadU(d, xr + j), hn::LoadU(d, b + j), hn::LoadU(d, c + j));
      hn::StoreU(hn::MulAdd(hn::LoadU(d, gr + j), hn::LoadU(d, a + j), t), d, yr + j);
    }
    for (; j < C; ++j) yr[j] = gr[j] * a[j] + xr[j] * b[j] + c[j];
  }
}

void RowMomentsF32(const float* x, int64_t n, double* mean, double* var) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  double s = 0;
  for (int64_t b = 0; b < n; b += 1024) {
    int64_t e = std::min(n, b + 1024), i = b;
    V acc = hn::Zero(d);
    for (; i + N <= e; i += N) acc = hn::Add(acc, hn::LoadU(d, x + i));
    s += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, acc)));
    for (; i < e; ++i) s += static_cast<double>(x[i]);
  }
  double m = s / static_cast<double>(n);
  const V mv = hn::Set(d, static_cast<float>(m));
  double q = 0;
  for (int64_t b = 0; b < n; b += 1024) {
    int64_t e = std::min(n, b + 1024), i = b;
    V acc = hn::Zero(d);
    for (; i + N <= e; i += N) {
      V t = hn::Sub(hn::LoadU(d, x + i), mv);
      acc = hn::MulAdd(t, t, acc);
    }
    q += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, acc)));
    for (; i < e; ++i) {
      double t = static_cast<double>(x[i]) - m;
      q += t * t;
    }
  }
  *mean = m;
  *var = q / static_cast<double>(n);
}

void RowNormalizeF32(const float* x, int64_t n, float mean, float rstd, const float* gamma, const float* beta,
                     float* y) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const V mv = hn::Set(d, mean), sv = hn::Set(d, rstd);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    V t = hn::Mul(hn::Sub(hn::LoadU(d, x + i), mv), sv);
    hn::StoreU(hn::MulAdd(t, hn::LoadU(d, gamma + i), hn::LoadU(d, beta + i)), d, y + i);
  }
  for (; i < n; ++i) y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
}

void RowGradSumsF32(const float* g, const float* x, int64_t n, float mean, float rstd, const float* gamma, double* s1,
                    double* s2, float* dgamma, float* dbeta) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const V mv = hn::Set(d, mean), sv = hn::Set(d, rstd);
  V a1 = hn::Zero(d), a2 = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    V gv = hn::LoadU(d, g + i);
    V xc = hn::Sub(hn::LoadU(d, x + i), mv);
    V gh = hn::Mul(gv, hn::LoadU(d, gamma + i));
    a1 = hn::Add(a1, gh);
    a2 = hn::MulAdd(gh, xc, a2);
    hn::StoreU(hn::MulAdd(hn::Mul(gv, xc), sv, hn::LoadU(d, dgamma + i)), d, dgamma + i);
    hn::StoreU(hn::Add(hn::LoadU(d, dbeta + i), gv), d, dbeta + i);
  }
  double t1 = static_cast<double>(hn::GetLane(hn::SumOfLanes(d, a1)));
  double t2 = static_cast<double>(hn::GetLane(hn::SumOfLanes(d, a2)));
  for (; i < n; ++i) {
    float xc = x[i] - mean, gh = g[i] * gamma[i];
    t1 += static_cast<double>(gh);
    t2 += static_cast<double>(gh) * static_cast<double>(xc);
    dgamma[i] += g[i] * xc * rstd;
    dbeta[i] += g[i];
  }
  *s1 = t1;
  *s2 = t2;
}

void RowGradApplyF32(const float* g, const float* x, int64_t n, float mean, float rstd, const float* gamma, float a,
                     float b, float* dx) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const V mv = hn::Set(d, mean), sv = hn::Set(d, rstd), av = hn::Set(d, a), bv = hn::Set(d, b);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    V gh = hn::Mul(hn::LoadU(d, g + i), hn::LoadU(d, gamma + i));
    V t = hn::NegMulAdd(hn::Sub(hn::LoadU(d, x + i), mv), bv, hn::Sub(gh, av));  // gh - a - (x - mean) b
    hn::StoreU(hn::Mul(t, sv), d, dx + i);
  }
  for (; i < n; ++i) dx[i] = rstd * (g[i] * gamma[i] - a - (x[i] - mean) * b);
}

}  // namespace glia::cpu::nn_simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace glia::cpu::nn_simd {

HWY_EXPORT(SoftmaxRowF32);
HWY_EXPORT(SoftmaxColsF32);
HWY_EXPORT(ColMomentsF32);
HWY_EXPORT(ColGradMomentsF32);
HWY_EXPORT(ColAffineF32);
HWY_EXPORT(ColAffine2F32);
HWY_EXPORT(RowMomentsF32);
HWY_EXPORT(RowNormalizeF32);
HWY_EXPORT(RowGradSumsF32);
HWY_EXPORT(RowGradApplyF32);

void softmax_row_f32(const float* x, float* y, int64_t n, bool log) {
  HWY_DYNAMIC_DISPATCH(SoftmaxRowF32)(x, y, n, log);
}
void softmax_cols_f32(const float* x, float* y, int64_t rows, int64_t cols, int64_t ld, bool log) {
  HWY_DYNAMIC_DISPATCH(SoftmaxColsF32)(x, y, rows, cols, ld, log);
}
void col_moments_f32(const float* x, int64_t rows, int64_t C, const float* shift, double* s1, double* s2) {
  HWY_DYNAMIC_DISPATCH(ColMomentsF32)(x, rows, C, shift, s1, s2);
}
void col_grad_moments_f32(const float* g, const float* x, int64_t rows, int64_t C, const float* mean, double* sg,
                          double* sgx) {
  HWY_DYNAMIC_DISPATCH(ColGradMomentsF32)(g, x, rows, C, mean, sg, sgx);
}
void col_affine_f32(const float* x, int64_t rows, int64_t C, const float* a, const float* b, float* y) {
  HWY_DYNAMIC_DISPATCH(ColAffineF32)(x, rows, C, a, b, y);
}
void col_affine2_f32(const float* g, const float* x, int64_t rows, int64_t C, const float* a, const float* b,
                     const float* d, float* y) {
  HWY_DYNAMIC_DISPATCH(ColAffine2F32)(g, x, rows, C, a, b, d, y);
}

void row_moments_f32(const float* x, int64_t n, double* mean, double* var) {
  HWY_DYNAMIC_DISPATCH(RowMomentsF32)(x, n, mean, var);
}
void row_normalize_f32(const float* x, int64_t n, float mean, float rstd, const float* gamma, const float* beta,
                       float* y) {
  HWY_DYNAMIC_DISPATCH(RowNormalizeF32)(x, n, mean, rstd, gamma, beta, y);
}
void row_grad_sums_f32(const float* g, const float* x, int64_t n, float mean, float rstd, const float* gamma,
                       double* s1, double* s2, float* dgamma, float* dbeta) {
  HWY_DYNAMIC_DISPATCH(RowGradSumsF32)(g, x, n, mean, rstd, gamma, s1, s2, dgamma, dbeta);
}
void row_grad_apply_f32(const float* g, const float* x, int64_t n, float mean, float rstd, const float* gamma, float a,
                        float b, float* dx) {
  HWY_DYNAMIC_DISPATCH(RowGradApplyF32)(g, x, n, mean, rstd, gamma, a, b, dx);
}

}  // namespace glia::cpu::nn_simd
#endif
