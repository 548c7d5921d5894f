// The interface between conv_ops.cpp and nn.cu: the own kernels of the neural-network ops (pooling,
// batch-norm reductions and affine passes, the bias + activation epilogue; conv_gemm.cu: im2col and
// col2im). Plain types only.
// Every pointer is to contiguous memory; Dt is F32, F64, BF16 or F16 (the launchers return false
// otherwise): 16-bit floats are computed in float and rounded once, statistics are double throughout.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "launch.h"

namespace glia::cuda::launch {

enum class Act : int { None, Relu, Tanh, Sigmoid, Gelu, GeluTanh };

/// y[i] = act(y[i] + bias[i % C]) in place over n elements; bias null: no bias.
bool bias_act(void* y, const void* bias, int64_t n, int64_t C, Act act, Dt dt, cudaStream_t s);

/// One pooling over NHWC: x [N,H,W,C], y [N,OH,OW,C], window KHxKW, stride, top / left pads.
/// `fast` (set by with_dividers): every index involved is below 2^30, and the kernels split cell
/// indices and divide by the strides with the d* dividers instead of 64-bit divisions.
struct PoolGeom {
  int64_t N = 0, H = 0, W = 0, C = 0, OH = 0, OW = 0, KH = 0, KW = 0, sh = 1, sw = 1, pt = 0, pl = 0;
  bool fast = false;
  glia::detail::FastDiv dC, dW, dH, dOW, dOH, dsh, dsw;
};

/// g with `fast` and its dividers set where the sizes allow.
inline PoolGeom with_dividers(PoolGeom g) {
  const int64_t lim = int64_t(1) << 30;
  auto in = [&](int64_t v, int64_t hi) { return v >= 1 && v < hi; };
  g.fast = in(g.N * g.H * g.W * g.C, lim) && in(g.N * g.OH * g.OW * g.C, lim) && in(g.sh, 1 << 20) &&
           in(g.sw, 1 << 20) && g.pt >= 0 && g.pt < (1 << 20) && g.pl >= 0 && g.pl < (1 << 20);
  if (g.fast) {
    g.dC = glia::detail::fast_div(static_cast<uint32_t>(g.C));
    g.dW = glia::detail::fast_div(static_cast<uint32_t>(g.W));
    g.dH = glia::detail::fast_div(static_cast<uint32_t>(g.H));
    g.dOW = glia::detail::fast_div(static_cast<uint32_t>(g.OW));
    g.dOH = glia::detail::fast_div(static_cast<uint32_t>(g.OH));
    g.dsh = glia::detail::fast_div(static_cast<uint32_t>(g.sh));
    g.dsw = glia::detail::fast_div(static_cast<uint32_t>(g.sw));
  }
  return g;
}

/// y = max over each window, idx = the window position kh * KW + kw of the max (uint8, or int32 if idx32).
bool max_pool_fwd(const PoolGeom& g, const void* x, void* y, void* idx, bool idx32, Dt dt, cudaStream_t s);
/// gx[cell] = sum of gy over the windows whose idx names the cell (gx is input-shaped).
bool max_pool_bwd(const PoolGeom& g, const void* gy, const void* idx, bool idx32, void* gx, Dt dt, cudaStream_t s);
/// y[out] = x[the cell idx names] (y is pooled-shaped).
bool max_pool_gather(const PoolGeom& g, const void* x, const void* idx, bool idx32, void* y, Dt dt, cudaStream_t s);
/// y = mean over the window's cells inside the input.
bool avg_pool_fwd(const PoolGeom& g, const void* x, void* y, Dt dt, cudaStream_t s);
/// The adjoint of avg_pool_fwd: gx input-shaped.
bool avg_pool_bwd(const PoolGeom& g, const void* gy, void* gx, Dt dt, cudaStream_t s);

/// The number of row blocks a per-channel reduction over M rows is split into (fixed by M alone, so
/// the summation order, and with it the result, is the same on every run).
int64_t bn_parts(int64_t M);
/// Partial per-channel sums over rows of x [M, C] into part [P, 2, C] (double), P = bn_parts(M).
/// g null: sums of (x - x[0, c]) and its square (batch-norm training statistics). Otherwise sums of
/// g and g * (x - mean[c]) (the backward), g of x's dtype, mean of the statistics type (below).
bool bn_partial_sums(const void* x, const void* g, const void* mean, int64_t M, int64_t C, double* part, Dt dt,
                     cudaStream_t s);
/// From the training partial sums: mean, invstd and the biased var into [C] vectors of the
/// statistics type (double for F64 data, float otherwise; gamma and beta are of it too), and the
/// affine y = x a + b as coef [2, C] = a, b (double).
bool bn_train_finish(const double* part, int64_t P, const void* x, Dt dt, const void* gamma, const void* beta,
                     int64_t M, int64_t C, double eps, double* coef, void* mean, void* invstd, void* var,
                     cudaStream_t s);
/// From the backward partial sums: dgamma and dbeta into [C] vectors of type `stat` (F32 or F64, as
/// mean, invstd and gamma), and dx = g a + x b + d as coef [3, C] = a, b, d (double).
void bn_backward_finish(const double* part, int64_t P, const void* mean, const void* invstd, const void* gamma,
                        int64_t M, int64_t C, Dt stat, double* coef, void* dgamma, void* dbeta, cudaStream_t s);
/// y[r, c] = x[r, c] a[c] + b[c] over [M, C].
bool channel_affine(const void* x, const double* a, const double* b, void* y, int64_t M, int64_t C, Dt dt,
                    cudaStream_t s);
/// y[r, c] = g[r, c] a[c] + x[r, c] b[c] + d[c] over [M, C].
bool channel_affine2(const void* g, const void* x, const double* a, const double* b, const double* d, void* y,
                     int64_t M, int64_t C, Dt dt, cudaStream_t s);

/// A convolution as conv_gemm.cu sees it: x [nb, H, W, C] (NHWC, one group), output positions
/// [nb, OH, OW], kernel KH x KW, strides, dilations and the top / left pads (any bottom / right pad
/// is implied by OH / OW).
struct ColGeom {
  int64_t H = 0, W = 0, C = 0, KH = 0, KW = 0, OH = 0, OW = 0, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
};
/// col [nb*OH*OW, KH*KW*C] (row-major): row (n, oh, ow) holds x's receptive field of that output
/// position in (kh, kw, c) order, the order of the Keras kernel's rows; zeros in the padding.
void im2col(const float* x, float* col, const ColGeom& g, int64_t nb, cudaStream_t s);
/// The adjoint: dx [nb, H, W, C] (overwritten) = for each cell, the sum over (kh, kw) in that order
/// of the col entries im2col reads it into.
void col2im(const float* col, float* dx, const ColGeom& g, int64_t nb, cudaStream_t s);

/// Whether the direct kernels below take a convolution with O output channels: C <= 4,
/// KH * KW * C <= 48, O a multiple of 4 up to 128 (the first layer of an image network).
bool direct_fits(const ColGeom& g, int64_t O);
/// Blocks of direct_weight_grad (its partial sums are [blocks, K, O] floats), fixed by the pixel count.
int direct_wgrad_blocks(int64_t P);
/// y [N, OH, OW, O] = the convolution of x [N, H, W, C] with w [KH, KW, C, O] (+ bias [O], then ReLU
/// where `relu`), summed in float in (kh, kw, c) order. w, bias and y 16-byte aligned.
void direct_forward(const float* x, const float* w, const float* bias, float* y, const ColGeom& g, int64_t N,
                    int64_t O, bool relu, cudaStream_t s);
/// gw [KH, KW, C, O] = sum over the output pixels of the field times gy [N, OH, OW, O]: per block of
/// pixels into part [direct_wgrad_blocks(N * OH * OW), K, O], then over the blocks in order. gy, part
/// and gw 16-byte aligned.
void direct_weight_grad(const float* x, const float* gy, float* part, float* gw, const ColGeom& g, int64_t N,
                        int64_t O, cudaStream_t s);

}  // namespace glia::cuda::launch
