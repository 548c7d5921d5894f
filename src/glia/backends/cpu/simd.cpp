// Highway SIMD loops, compiled once per x86 target and picked at run time.
// NaN goes through every op as it does in PyTorch (relu(NaN) is NaN), so a
// diverging loss is seen, not hidden.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "glia/backends/cpu/simd.cpp"
// foreach_target.h must come first: it re-includes this file once per target.
// clang-format off
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include "glia/backends/cpu/simd.h"

#include <cmath>
#include <cstring>
#include <limits>

HWY_BEFORE_NAMESPACE();
namespace glia::cpu::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

// --- math with the edge cases Highway leaves out

// The largest float whose exp is finite (just below ln(FLT_MAX) = 88.7228390...).
constexpr float kMaxExpArg = 88.72283172607421875f;

HWY_INLINE V SafeExp(D d, V x) {
  V r = hn::Exp(d, hn::Min(hn::Max(x, hn::Set(d, -104.f)), hn::Set(d, 100.f)));
  r = hn::IfThenElse(hn::Gt(x, hn::Set(d, kMaxExpArg)), hn::Set(d, std::numeric_limits<float>::infinity()), r);
  return hn::IfThenElse(hn::IsNaN(x), x, r);
}

HWY_INLINE V SafeExpm1(D d, V x) {
  V r = hn::Expm1(d, hn::Min(hn::Max(x, hn::Set(d, -104.f)), hn::Set(d, 100.f)));
  r = hn::IfThenElse(hn::Gt(x, hn::Set(d, kMaxExpArg)), hn::Set(d, std::numeric_limits<float>::infinity()), r);
  return hn::IfThenElse(hn::IsNaN(x), x, r);
}

HWY_INLINE V SafeLog(D d, V x) {
  const V zero = hn::Zero(d);
  V safe = hn::IfThenElse(hn::Gt(x, zero), x, hn::Set(d, 1.f));
  V r = hn::Log(d, safe);
  r = hn::IfThenElse(hn::Eq(x, zero), hn::Set(d, -std::numeric_limits<float>::infinity()), r);
  r = hn::IfThenElse(hn::Lt(x, zero), hn::Set(d, std::numeric_limits<float>::quiet_NaN()), r);
  r = hn::IfThenElse(hn::Eq(x, hn::Set(d, std::numeric_limits<float>::infinity())), x, r);
  return hn::IfThenElse(hn::IsNaN(x), x, r);
}

// log1p(x) = log(u) * x / (u - 1) with u = 1 + x: exact where u - 1 == x and
// corrects the rounding of u otherwise.
HWY_INLINE V SafeLog1p(D d, V x) {
  const V one = hn::Set(d, 1.f);
  V u = hn::Add(one, x);
  V um1 = hn::Sub(u, one);
  V logu = SafeLog(d, u);
  V corrected = hn::Mul(logu, hn::Div(x, hn::IfThenElse(hn::Eq(um1, hn::Zero(d)), one, um1)));
  V r = hn::IfThenElse(hn::Eq(um1, hn::Zero(d)), x, corrected);
  r = hn::IfThenElse(hn::Eq(u, hn::Set(d, std::numeric_limits<float>::infinity())), u, r);
  return hn::IfThenElse(hn::Le(u, hn::Zero(d)), logu, r);
}

HWY_INLINE V Sigmoid(D d, V x) {
  const V one = hn::Set(d, 1.f);
  V e = SafeExp(d, hn::Neg(hn::Abs(x)));  // in (0, 1]: no overflow
  V r = hn::Div(one, hn::Add(one, e));
  return hn::IfThenElse(hn::Lt(x, hn::Zero(d)), hn::Mul(e, r), r);
}

// erf as a rational function on [-4, 4] (outside, erf is +-1 in float32).
HWY_INLINE V Erf(D d, V a) {
  V x = hn::Min(hn::Max(a, hn::Set(d, -4.f)), hn::Set(d, 4.f));
  V x2 = hn::Mul(x, x);
  V p = hn::MulAdd(x2, hn::Set(d, -2.72614225801306e-10f), hn::Set(d, 2.77068142495902e-08f));
  p = hn::MulAdd(x2, p, hn::Set(d, -2.10102402082508e-06f));
  p = hn::MulAdd(x2, p, hn::Set(d, -5.69250639462346e-05f));
  p = hn::MulAdd(x2, p, hn::Set(d, -7.34990630326855e-04f));
  p = hn::MulAdd(x2, p, hn::Set(d, -2.95459980854025e-03f));
  p = hn::MulAdd(x2, p, hn::Set(d, -1.60960333262415e-02f));
  p = hn::Mul(x, p);
  V q = hn::MulAdd(x2, hn::Set(d, -1.45660718464996e-05f), hn::Set(d, -2.13374055278905e-04f));
  q = hn::MulAdd(x2, q, hn::Set(d, -1.68282697438203e-03f));
  q = hn::MulAdd(x2, q, hn::Set(d, -7.37332916720468e-03f));
  q = hn::MulAdd(x2, q, hn::Set(d, -1.42647390514189e-02f));
  return hn::IfThenElse(hn::IsNaN(a), a, hn::Div(p, q));
}

template <class F>
HWY_INLINE V Trig(D d, V x, F f, float (*scalar)(float)) {
  // Highway's sin/cos are accurate on [-39000, 39000]; other lanes go scalar.
  auto big = hn::Gt(hn::Abs(x), hn::Set(d, 39000.f));
  if (HWY_LIKELY(hn::AllFalse(d, big))) return f(d, x);
  HWY_ALIGN float buf[hn::MaxLanes(d)];
  hn::Store(x, d, buf);
  for (size_t i = 0; i < hn::Lanes(d); ++i) buf[i] = scalar(buf[i]);
  return hn::Load(d, buf);
}

HWY_INLINE V ApplyUnary(D d, Unary op, V x, float p0, float p1) {
  const V zero = hn::Zero(d);
  const V half = hn::Set(d, 0.5f);
  const V one = hn::Set(d, 1.f);
  switch (op) {
    case Unary::Neg:
      return hn::Neg(x);
    case Unary::Abs:
      return hn::Abs(x);
    case Unary::Exp:
      return SafeExp(d, x);
    case Unary::Expm1:
      return SafeExpm1(d, x);
    case Unary::Log:
      return SafeLog(d, x);
    case Unary::Log1p:
      return SafeLog1p(d, x);
    case Unary::Sqrt:
      return hn::Sqrt(x);
    case Unary::Rsqrt:
      return hn::Div(one, hn::Sqrt(x));
    case Unary::Sin:
      return Trig(
          d, x, [](D dd, V v) HWY_ATTR { return hn::Sin(dd, v); }, [](float v) { return std::sin(v); });
    case Unary::Cos:
      return Trig(
          d, x, [](D dd, V v) HWY_ATTR { return hn::Cos(dd, v); }, [](float v) { return std::cos(v); });
    case Unary::Tanh:
      return hn::IfThenElse(hn::IsNaN(x), x, hn::Tanh(d, x));
    case Unary::Sigmoid:
      return Sigmoid(d, x);
    case Unary::Relu:
      return hn::IfThenZeroElse(hn::Lt(x, zero), x);
    case Unary::LeakyRelu:
      return hn::IfThenElse(hn::Lt(x, zero), hn::Mul(x, hn::Set(d, p0)), x);
    case Unary::Elu:
      return hn::IfThenElse(hn::Gt(x, zero), x, hn::Mul(hn::Set(d, p0), SafeExpm1(d, x)));
    case Unary::Gelu:
      return hn::Mul(hn::Mul(half, x), hn::Add(one, Erf(d, hn::Mul(x, hn::Set(d, 0.70710678118654752f)))));
    case Unary::GeluTanh: {
      V inner =
          hn::Mul(hn::Set(d, 0.7978845608028654f), hn::MulAdd(hn::Mul(hn::Set(d, 0.044715f), hn::Mul(x, x)), x, x));
      return hn::Mul(hn::Mul(half, x), hn::Add(one, hn::Tanh(d, inner)));
    }
    case Unary::Softplus: {  // p0 = beta, p1 = threshold
      V bx = hn::Mul(x, hn::Set(d, p0));
      V soft = hn::Div(SafeLog1p(d, SafeExp(d, bx)), hn::Set(d, p0));
      return hn::IfThenElse(hn::Gt(bx, hn::Set(d, p1)), x, soft);
    }
    case Unary::Erf:
      return Erf(d, x);
    case Unary::Square:
      return hn::Mul(x, x);
    case Unary::Reciprocal:
      return hn::Div(one, x);
  }
  return x;
}

template <Unary kOp>
void UnaryLoop(const float* HWY_RESTRICT x, float* HWY_RESTRICT y, int64_t n, float p0, float p1) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(ApplyUnary(d, kOp, hn::LoadU(d, x + i), p0, p1), d, y + i);
  if (i < n) {
    HWY_ALIGN float buf[hn::MaxLanes(d)] = {};
    std::memcpy(buf, x + i, static_cast<size_t>(n - i) * sizeof(float));
    hn::Store(ApplyUnary(d, kOp, hn::Load(d, buf), p0, p1), d, buf);
    std::memcpy(y + i, buf, static_cast<size_t>(n - i) * sizeof(float));
  }
}

void UnaryF32(Unary op, const float* x, float* y, int64_t n, float p0, float p1) {
  switch (op) {
#define GLIA_U(name) \
  case Unary::name:  \
    return UnaryLoop<Unary::name>(x, y, n, p0, p1);
    GLIA_U(Neg)
    GLIA_U(Abs)
    GLIA_U(Exp)
    GLIA_U(Log) GLIA_U(Log1p) GLIA_U(Sqrt) GLIA_U(Rsqrt) GLIA_U(Sin) GLIA_U(Cos) GLIA_U(Tanh) GLIA_U(Sigmoid)
        GLIA_U(Relu) GLIA_U(LeakyRelu) GLIA_U(Elu) GLIA_U(Gelu) GLIA_U(GeluTanh) GLIA_U(Softplus) GLIA_U(Erf)
            GLIA_U(Square) GLIA_U(Reciprocal) GLIA_U(Expm1)
#undef GLIA_U
  }
}

HWY_INLINE V ApplyBinary(D d, Binary op, V a, V b) {
  const V zero = hn::Zero(d);
  switch (op) {
    case Binary::Add:
      return hn::Add(a, b);
    case Binary::Sub:
      return hn::Sub(a, b);
    case Binary::Mul:
      return hn::Mul(a, b);
    case Binary::Div:
      return hn::Div(a, b);
    case Binary::Max:
      return hn::IfThenElse(hn::Or(hn::IsNaN(a), hn::IsNaN(b)), hn::Add(a, b), hn::Max(a, b));
    case Binary::Min:
      return hn::IfThenElse(hn::Or(hn::IsNaN(a), hn::IsNaN(b)), hn::Add(a, b), hn::Min(a, b));
    case Binary::ReluBackward:  // a = grad, b = relu output
      return hn::IfThenElseZero(hn::Gt(b, zero), a);
    case Binary::SigmoidBackward:  // a = grad, b = sigmoid output
      return hn::Mul(a, hn::Mul(b, hn::Sub(hn::Set(d, 1.f), b)));
    case Binary::TanhBackward:  // a = grad, b = tanh output
      return hn::Mul(a, hn::NegMulAdd(b, b, hn::Set(d, 1.f)));
  }
  return a;
}

template <Binary op>
void BinaryLoop(Mode mode, const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, float* HWY_RESTRICT y, int64_t n) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  if (mode == Mode::VV) {
    for (; i + N <= n; i += N) hn::StoreU(ApplyBinary(d, op, hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, y + i);
  } else if (mode == Mode::SV) {
    const V va = hn::Set(d, a[0]);
    for (; i + N <= n; i += N) hn::StoreU(ApplyBinary(d, op, va, hn::LoadU(d, b + i)), d, y + i);
  } else {
    const V vb = hn::Set(d, b[0]);
    for (; i + N <= n; i += N) hn::StoreU(ApplyBinary(d, op, hn::LoadU(d, a + i), vb), d, y + i);
  }
  if (i < n) {
    HWY_ALIGN float ba[hn::MaxLanes(d)] = {};
    HWY_ALIGN float bb[hn::MaxLanes(d)] = {};
    size_t rem = static_cast<size_t>(n - i) * sizeof(float);
    if (mode == Mode::SV)
      for (auto& v : ba) v = a[0];
    else
      std::memcpy(ba, a + i, rem);
    if (mode == Mode::VS)
      for (auto& v : bb) v = b[0];
    else
      std::memcpy(bb, b + i, rem);
    hn::Store(ApplyBinary(d, op, hn::Load(d, ba), hn::Load(d, bb)), d, ba);
    std::memcpy(y + i, ba, rem);
  }
}

void BinaryF32(Binary op, Mode mode, const float* a, const float* b, float* y, int64_t n) {
  switch (op) {
#define GLIA_B(name) \
  case Binary::name: \
    return BinaryLoop<Binary::name>(mode, a, b, y, n);
    GLIA_B(Add)
    GLIA_B(Sub)
    GLIA_B(Mul) GLIA_B(Div) GLIA_B(Max) GLIA_B(Min) GLIA_B(ReluBackward) GLIA_B(SigmoidBackward) GLIA_B(TanhBackward)
#undef GLIA_B
  }
}

void AxpyF32(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, float alpha, float* HWY_RESTRICT y, int64_t n) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const V va = hn::Set(d, alpha);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(va, hn::LoadU(d, b + i), hn::LoadU(d, a + i)), d, y + i);
  for (; i < n; ++i) y[i] = a[i] + alpha * b[i];
}

double SumF32(const float* HWY_RESTRICT x, int64_t n) {
  // Blocks of 4096 summed in float vectors, blocks added in double.
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  double total = 0;
  for (int64_t b = 0; b < n; b += 4096) {
    int64_t e = b + 4096 < n ? b + 4096 : n;
    V s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
    int64_t i = b;
    for (; i + 4 * N <= e; i += 4 * N) {
      s0 = hn::Add(s0, hn::LoadU(d, x + i));
      s1 = hn::Add(s1, hn::LoadU(d, x + i + N));
      s2 = hn::Add(s2, hn::LoadU(d, x + i + 2 * N));
      s3 = hn::Add(s3, hn::LoadU(d, x + i + 3 * N));
    }
    for (; i + N <= e; i += N) s0 = hn::Add(s0, hn::LoadU(d, x + i));
    float part = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
    double tail = 0;
    for (; i < e; ++i) tail += x[i];
    total += static_cast<double>(part) + tail;
  }
  return total;
}

template <bool kMax>
float ExtremeF32(const float* HWY_RESTRICT x, int64_t n) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const float init = kMax ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
  V m = hn::Set(d, init);
  auto nan = hn::Lt(m, m);  // all false
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    V v = hn::LoadU(d, x + i);
    nan = hn::Or(nan, hn::IsNaN(v));
    m = kMax ? hn::Max(m, v) : hn::Min(m, v);
  }
  if (!hn::AllFalse(d, nan)) return std::numeric_limits<float>::quiet_NaN();
  float r = hn::GetLane(kMax ? hn::MaxOfLanes(d, m) : hn::MinOfLanes(d, m));
  for (; i < n; ++i) {
    if (std::isnan(x[i])) return x[i];
    r = kMax ? (x[i] > r ? x[i] : r) : (x[i] < r ? x[i] : r);
  }
  return r;
}
float MaxF32(const float* x, int64_t n) { return ExtremeF32<true>(x, n); }
float MinF32(const float* x, int64_t n) { return ExtremeF32<false>(x, n); }

template <int kOp>  // 0 sum, 1 max, 2 min
void ColReduceF32(const float* HWY_RESTRICT x, int64_t rows, int64_t cols, int64_t ld, float* HWY_RESTRICT y) {
  const D d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t j = 0;
  auto combine = [](V a, V b) HWY_ATTR {
    if constexpr (kOp == 0) return hn::Add(a, b);
    // NaN wins: max(a, b) with NaN in b keeps the NaN.
    auto nb = hn::IsNaN(b);
    if constexpr (kOp == 1) return hn::IfThenElse(nb, b, hn::IfThenElse(hn::IsNaN(a), a, hn::Max(a, b)));
    return hn::IfThenElse(nb, b, hn::IfThenElse(hn::IsNaN(a), a, hn::Min(a, b)));
  };
  for (; j + N <= cols; j += N) {
    V acc = hn::LoadU(d, x + j);
    for (int64_t i = 1; i < rows; ++i) acc = combine(acc, hn::LoadU(d, x + i * ld + j));
    hn::StoreU(acc, d, y + j);
  }
  for (; j < cols; ++j) {
    float acc = x[j];
    for (int64_t i = 1; i < rows; ++i) {
      float v = x[i * ld + j];
      if constexpr (kOp == 0)
        acc += v;
      else if (std::isnan(v) || std::isnan(acc))
        acc = std::isnan(acc) ? acc : v;
      else
        acc = kOp == 1 ? (v > acc ? v : acc) : (v < acc ? v : acc);
    }
    y[j] = acc;
  }
}
void ColSumF32(const float* x, int64_t r, int64_t c, int64_t ld, float* y) { ColReduceF32<0>(x, r, c, ld, y); }
void ColMaxF32(const float* x, int64_t r, int64_t c, int64_t ld, float* y) { ColReduceF32<1>(x, r, c, ld, y); }
void ColMinF32(const float* x, int64_t r, int64_t c, int64_t ld, float* y) { ColReduceF32<2>(x, r, c, ld, y); }

}  // namespace glia::cpu::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace glia::cpu::simd {

HWY_EXPORT(UnaryF32);
HWY_EXPORT(BinaryF32);
HWY_EXPORT(AxpyF32);
HWY_EXPORT(SumF32);
HWY_EXPORT(MaxF32);
HWY_EXPORT(MinF32);
HWY_EXPORT(ColSumF32);
HWY_EXPORT(ColMaxF32);
HWY_EXPORT(ColMinF32);

void unary_f32(Unary op, const float* x, float* y, int64_t n, float p0, float p1) {
  HWY_DYNAMIC_DISPATCH(UnaryF32)(op, x, y, n, p0, p1);
}
void binary_f32(Binary op, Mode mode, const float* a, const float* b, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(BinaryF32)(op, mode, a, b, y, n);
}
void axpy_f32(const float* a, const float* b, float alpha, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(AxpyF32)(a, b, alpha, y, n);
}
double sum_f32(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(SumF32)(x, n); }
float max_f32(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(MaxF32)(x, n); }
float min_f32(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(MinF32)(x, n); }
void col_sum_f32(const float* x, int64_t r, int64_t c, int64_t ld, float* y) {
  HWY_DYNAMIC_DISPATCH(ColSumF32)(x, r, c, ld, y);
}
void col_max_f32(const float* x, int64_t r, int64_t c, int64_t ld, float* y) {
  HWY_DYNAMIC_DISPATCH(ColMaxF32)(x, r, c, ld, y);
}
void col_min_f32(const float* x, int64_t r, int64_t c, int64_t ld, float* y) {
  HWY_DYNAMIC_DISPATCH(ColMinF32)(x, r, c, ld, y);
}

}  // namespace glia::cpu::simd
#endif
