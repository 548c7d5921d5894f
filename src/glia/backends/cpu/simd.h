// SIMD loops for contiguous float32 runs (Highway, dispatched at run time to
// the best instruction set of the machine: AVX-512, AVX2 or SSE4).
#pragma once

#include <cstdint>

namespace glia::cpu::simd {

enum class Unary {
  Neg,
  Abs,
  Exp,
  Log,
  Log1p,
  Sqrt,
  Rsqrt,
  Sin,
  Cos,
  Tanh,
  Sigmoid,
  Relu,
  LeakyRelu,
  Elu,
  Gelu,
  GeluTanh,
  Softplus,
  Erf,
  Square,
  Reciprocal,
  Expm1
};
/// y[i] = op(x[i]); p0/p1 are the op's parameters (alpha, beta, threshold).
void unary_f32(Unary op, const float* x, float* y, int64_t n, float p0 = 0.f, float p1 = 0.f);

enum class Binary { Add, Sub, Mul, Div, Max, Min, ReluBackward, SigmoidBackward, TanhBackward };
/// Broadcast modes for binary runs: both arrays, a is one value, b is one value.
enum class Mode { VV, SV, VS };
void binary_f32(Binary op, Mode mode, const float* a, const float* b, float* y, int64_t n);

/// y[i] = a[i] + alpha * b[i].
void axpy_f32(const float* a, const float* b, float alpha, float* y, int64_t n);

/// Sum of x[0..n) (pairwise-blocked for accuracy).
double sum_f32(const float* x, int64_t n);
/// Max / min of x[0..n); NaN if any element is NaN.
float max_f32(const float* x, int64_t n);
float min_f32(const float* x, int64_t n);

/// Column reductions: y[j] (op)= x[i*ld + j] over i < rows, for j < cols (y is overwritten).
void col_sum_f32(const float* x, int64_t rows, int64_t cols, int64_t ld, float* y);
void col_max_f32(const float* x, int64_t rows, int64_t cols, int64_t ld, float* y);
void col_min_f32(const float* x, int64_t rows, int64_t cols, int64_t ld, float* y);

}  // namespace glia::cpu::simd
