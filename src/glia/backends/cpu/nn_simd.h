// SIMD loops for the fused softmax and batch-norm kernels (float32, Highway,
// dispatched at run time like simd.h).
#pragma once

#include <cstdint>

namespace glia::cpu::nn_simd {

/// Softmax (or log-softmax when `log`) of one contiguous row of n floats; y may equal x.
void softmax_row_f32(const float* x, float* y, int64_t n, bool log);
/// Softmax down the columns of a [rows, cols] block with row stride ld (each column on its own).
void softmax_cols_f32(const float* x, float* y, int64_t rows, int64_t cols, int64_t ld, bool log);

/// Per-channel moments of a [rows, C] block: s1[c] += sum(x - shift[c]), s2[c] += sum((x - shift[c])^2).
void col_moments_f32(const float* x, int64_t rows, int64_t C, const float* shift, double* s1, double* s2);
/// Per-channel gradient moments: sg[c] += sum(g), sgx[c] += sum(g * (x - mean[c])).
void col_grad_moments_f32(const float* g, const float* x, int64_t rows, int64_t C, const float* mean, double* sg,
                          double* sgx);
/// y = x * a[c] + b[c] over a [rows, C] block.
void col_affine_f32(const float* x, int64_t rows, int64_t C, const float* a, const float* b, float* y);
/// y = g * a[c] + x * b[c] + d[c] over a [rows, C] block.
void col_affine2_f32(const float* g, const float* x, int64_t rows, int64_t C, const float* a, const float* b,
                     const float* d, float* y);

/// Mean and biased variance of one row of n floats (two passes, accumulated in double).
void row_moments_f32(const float* x, int64_t n, double* mean, double* var);
/// y = (x - mean) * rstd * gamma + beta for one row (gamma / beta per element).
void row_normalize_f32(const float* x, int64_t n, float mean, float rstd, const float* gamma, const float* beta,
                       float* y);
/// Layer-norm backward sums of one row, with gh = g * gamma: s1 = sum(gh), s2 = sum(gh * (x - mean));
/// also dgamma[j] += g * (x - mean) * rstd and dbeta[j] += g.
void row_grad_sums_f32(const float* g, const float* x, int64_t n, float mean, float rstd, const float* gamma,
                       double* s1, double* s2, float* dgamma, float* dbeta);
/// dx = rstd * (g * gamma - a - (x - mean) * b) for one row.
void row_grad_apply_f32(const float* g, const float* x, int64_t n, float mean, float rstd, const float* gamma, float a,
                        float b, float* dx);

}  // namespace glia::cpu::nn_simd
