// The data movement of convolutions run as matrix products (conv_ops.cpp, "GEMM" way): im2col
// gathers each output position's receptive field into a row of `col`, and col2im sums a column
// matrix's rows back into the input cells they came from. col2im gathers per input cell, in a fixed
// (kh, kw) order, without atomics: results are deterministic.
#include <cstdint>

#include "device.cuh"
#include "launch_nn.h"

namespace glia::cuda::launch {
namespace {

constexpr int kColThreads = 256;

inline unsigned col_blocks(int64_t n) {
  int64_t b = (n + kColThreads - 1) / kColThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 1048576 ? 1048576 : b));
}

/// col [nb*OH*OW, KH*KW*C] from x [nb, H, W, C]; zeros where the field reaches into the padding.
template <class I>
__global__ void im2col_kernel(const float* x, float* col, ColGeom g, I total) {
  const I C = static_cast<I>(g.C), KW = static_cast<I>(g.KW), KH = static_cast<I>(g.KH);
  const I OW = static_cast<I>(g.OW), OH = static_cast<I>(g.OH), H = static_cast<I>(g.H), W = static_cast<I>(g.W);
  for (I i = static_cast<I>(blockIdx.x) * kColThreads + threadIdx.x; i < total;
       i += static_cast<I>(gridDim.x) * kColThreads) {
    I c = i % C, t = i / C;
    I kw = t % KW;
    t /= KW;
    I kh = t % KH, r = t / KH;
    I ow = r % OW;
    r /= OW;
    I oh = r % OH, n = r / OH;
    I h = oh * static_cast<I>(g.sh) - static_cast<I>(g.pt) + kh * static_cast<I>(g.dh);
    I w = ow * static_cast<I>(g.sw) - static_cast<I>(g.pl) + kw * static_cast<I>(g.dw);
    col[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * H + h) * W + w) * C + c] : 0.f;
  }
}

/// dx [nb, H, W, C] = for each cell, the sum of the col entries that im2col would have read from it.
template <class I>
__global__ void col2im_kernel(const float* col, float* dx, ColGeom g, I total) {
  const I C = static_cast<I>(g.C), KW = static_cast<I>(g.KW), KH = static_cast<I>(g.KH);
  const I OW = static_cast<I>(g.OW), OH = static_cast<I>(g.OH), H = static_cast<I>(g.H), W = static_cast<I>(g.W);
  const I sh = static_cast<I>(g.sh), sw = static_cast<I>(g.sw), row = KH * KW * C;
  for (I i = static_cast<I>(blockIdx.x) * kColThreads + threadIdx.x; i < total;
       i += static_cast<I>(gridDim.x) * kColThreads) {
    I c = i % C, t = i / C;
    I w = t % W;
    t /= W;
    I h = t % H, n = t / H;
    float sum = 0.f;
    for (I kh = 0; kh < KH; ++kh) {
      I hh = h + static_cast<I>(g.pt) - kh * static_cast<I>(g.dh);  // oh * sh
      if (hh < 0 || hh % sh != 0) continue;
      I oh = hh / sh;
      if (oh >= OH) continue;
      for (I kw = 0; kw < KW; ++kw) {
        I ww = w + static_cast<I>(g.pl) - kw * static_cast<I>(g.dw);
        if (ww < 0 || ww % sw != 0) continue;
        I ow = ww / sw;
        if (ow >= OW) continue;
        sum += col[((n * OH + oh) * OW + ow) * row + (kh * KW + kw) * C + c];
      }
    }
    dx[i] = sum;
  }
}

bool fits_i32(int64_t n) { return n < (int64_t(1) << 31); }

}  // namespace

void im2col(const float* x, float* col, const ColGeom& g, int64_t nb, cudaStream_t s) {
  const int64_t total = nb * g.OH * g.OW * g.KH * g.KW * g.C;
  const int64_t x_total = nb * g.H * g.W * g.C;
  if (total == 0) return;
  if (fits_i32(total) && fits_i32(x_total))
    im2col_kernel<int32_t><<<col_blocks(total), kColThreads, 0, s>>>(x, col, g, static_cast<int32_t>(total));
  else
    im2col_kernel<int64_t><<<col_blocks(total), kColThreads, 0, s>>>(x, col, g, total);
}

void col2im(const float* col, float* dx, const ColGeom& g, int64_t nb, cudaStream_t s) {
  const int64_t total = nb * g.H * g.W * g.C;
  const int64_t col_total = nb * g.OH * g.OW * g.KH * g.KW * g.C;
  if (total == 0) return;
  if (fits_i32(total) && fits_i32(col_total))
    col2im_kernel<int32_t><<<col_blocks(total), kColThreads, 0, s>>>(col, dx, g, static_cast<int32_t>(total));
  else
    col2im_kernel<int64_t><<<col_blocks(total), kColThreads, 0, s>>>(col, dx, g, total);
}

}  // namespace glia::cuda::launch
