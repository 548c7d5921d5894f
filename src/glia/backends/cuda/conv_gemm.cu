// The data movement of convolutions run as matrix products (conv_ops.cpp, "GEMM" way): im2col
// gathers each output position's receptive field into a row of `col`, and col2im sums a column
// matrix's rows back into the input cells they came from. col2im gathers per input cell, in a fixed
// (kh, kw) order, without atomics: results are deterministic. Where the channel count is a multiple of
// 4 and the memory 16-byte aligned, each thread moves or sums 4 channels (float4).
#include <cstdint>
#include <type_traits>

#include "device.cuh"
#include "launch_nn.h"

namespace glia::cuda::launch {
namespace {

/// V consecutive floats (V = 4: one 16-byte load or store).
template <int V>
struct Vec {
  using type = float;
};
template <>
struct Vec<4> {
  using type = float4;
};
template <int V>
__device__ __forceinline__ typename Vec<V>::type vzero() {
  if constexpr (V == 4)
    return make_float4(0.f, 0.f, 0.f, 0.f);
  else
    return 0.f;
}
template <int V>
__device__ __forceinline__ void vadd(typename Vec<V>::type& a, const typename Vec<V>::type& b) {
  if constexpr (V == 4) {
    a.x += b.x;
    a.y += b.y;
    a.z += b.z;
    a.w += b.w;
  } else {
    a += b;
  }
}

/// col [nb*OH*OW, KH*KW*C] from x [nb, H, W, C]; zeros where the field reaches into the padding.
/// Each thread moves V channels of one (row, kh, kw) (C % V == 0, both pointers V-aligned).
template <class I, int V>
__global__ void im2col_kernel(const float* x, float* col, ColGeom g, I total) {
  using T = typename Vec<V>::type;
  const I CV = static_cast<I>(g.C / V), KW = static_cast<I>(g.KW), KH = static_cast<I>(g.KH);
  const I OW = static_cast<I>(g.OW), OH = static_cast<I>(g.OH), H = static_cast<I>(g.H), W = static_cast<I>(g.W);
  const T* xv = reinterpret_cast<const T*>(x);
  T* cv = reinterpret_cast<T*>(col);
  for (I i = static_cast<I>(blockIdx.x) * kThreads + threadIdx.x; i < total;
       i += static_cast<I>(gridDim.x) * kThreads) {
    I c = i % CV, t = i / CV;
    I kw = t % KW;
    t /= KW;
    I kh = t % KH, r = t / KH;
    I ow = r % OW;
    r /= OW;
    I oh = r % OH, n = r / OH;
    I h = oh * static_cast<I>(g.sh) - static_cast<I>(g.pt) + kh * static_cast<I>(g.dh);
    I w = ow * static_cast<I>(g.sw) - static_cast<I>(g.pl) + kw * static_cast<I>(g.dw);
    cv[i] = (h >= 0 && h < H && w >= 0 && w < W) ? xv[((n * H + h) * W + w) * CV + c] : vzero<V>();
  }
}

/// dx [nb, H, W, C] = for each cell, the sum of the col entries that im2col would have read from it,
/// over (kh, kw) in order. Each thread sums V channels of one cell.
template <class I, int V>
__global__ void col2im_kernel(const float* col, float* dx, ColGeom g, I total) {
  using T = typename Vec<V>::type;
  const I CV = static_cast<I>(g.C / V), KW = static_cast<I>(g.KW), KH = static_cast<I>(g.KH);
  const I OW = static_cast<I>(g.OW), OH = static_cast<I>(g.OH), H = static_cast<I>(g.H), W = static_cast<I>(g.W);
  const I sh = static_cast<I>(g.sh), sw = static_cast<I>(g.sw), row = KH * KW * CV;
  const T* cv = reinterpret_cast<const T*>(col);
  T* dxv = reinterpret_cast<T*>(dx);
  for (I i = static_cast<I>(blockIdx.x) * kThreads + threadIdx.x; i < total;
       i += static_cast<I>(gridDim.x) * kThreads) {
    I c = i % CV, t = i / CV;
    I w = t % W;
    t /= W;
    I h = t % H, n = t / H;
    T sum = vzero<V>();
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
        vadd<V>(sum, cv[((n * OH + oh) * OW + ow) * row + (kh * KW + kw) * CV + c]);
      }
    }
    dxv[i] = sum;
  }
}

bool fits_i32(int64_t n) { return n < (int64_t(1) << 31); }

/// Whether V = 4 applies: whole float4s of channels at 16-byte aligned addresses.
bool by4(const ColGeom& g, const void* a, const void* b) {
  return g.C % 4 == 0 && reinterpret_cast<uintptr_t>(a) % 16 == 0 && reinterpret_cast<uintptr_t>(b) % 16 == 0;
}

// --- direct convolution for few input channels (the first layer of an image network)

constexpr int kDirectThreads = kThreads;  // launched with blocks_for
constexpr int kDirectMaxK = 48;           // KH * KW * C
constexpr int kDirectMaxO = 128;          // output channels
constexpr int kDirectOB = 16;             // output channels per pass of the forward (4 float4s)
constexpr int kTile = 64;                 // pixels per tile of the weight gradient
constexpr int kUnits = 8;                 // (k, 4 output channels) units per thread of the weight gradient

/// Each k of a receptive field (row-major (kh, kw, c)) as its row and column offsets kh * dh and
/// kw * dw and its channel, in shared memory: computed once per block, so no thread divides by C or KW.
struct FieldTable {
  int dh[kDirectMaxK], dw[kDirectMaxK], c[kDirectMaxK];
};
__device__ __forceinline__ void fill_table(FieldTable& t, const ColGeom& g, int K) {
  const int C = static_cast<int>(g.C), KW = static_cast<int>(g.KW);
  for (int k = threadIdx.x; k < K; k += blockDim.x) {
    t.c[k] = k % C;
    t.dw[k] = (k / C % KW) * static_cast<int>(g.dw);
    t.dh[k] = (k / C / KW) * static_cast<int>(g.dh);
  }
}

/// y [P, O] = field(p) . w [K, O] (+ bias, then ReLU): one pixel per thread, the weights in shared
/// memory, read 4 output channels at a time. For each block of kDirectOB outputs the field is walked
/// once, one value at a time (a second block reads it again from L1): few registers, so many threads
/// per SM to hide the gathers' latency. O % 4 == 0; w, bias and y 16-byte aligned.
template <class I>
__global__ void direct_fwd_kernel(const float* x, const float* w, const float* bias, float* y, ColGeom g, int O, I P,
                                  bool relu) {
  __shared__ float4 ws4[kDirectMaxK * kDirectMaxO / 4];
  __shared__ FieldTable table;
  const int K = static_cast<int>(g.KH * g.KW * g.C), O4 = O / 4;
  const float4* w4 = reinterpret_cast<const float4*>(w);
  for (int i = threadIdx.x; i < K * O4; i += kDirectThreads) ws4[i] = w4[i];
  fill_table(table, g, K);
  __syncthreads();
  const float4* b4 = reinterpret_cast<const float4*>(bias);
  float4* y4 = reinterpret_cast<float4*>(y);
  const I H = static_cast<I>(g.H), W = static_cast<I>(g.W), C = static_cast<I>(g.C);
  for (I p = static_cast<I>(blockIdx.x) * kDirectThreads + threadIdx.x; p < P;
       p += static_cast<I>(gridDim.x) * kDirectThreads) {
    I ow = p % static_cast<I>(g.OW), r = p / static_cast<I>(g.OW);
    I oh = r % static_cast<I>(g.OH), n = r / static_cast<I>(g.OH);
    const int top = static_cast<int>(oh * static_cast<I>(g.sh) - static_cast<I>(g.pt));
    const int left = static_cast<int>(ow * static_cast<I>(g.sw) - static_cast<I>(g.pl));
    const float* xn = x + n * H * W * C;
    for (int o4 = 0; o4 < O4; o4 += kDirectOB / 4) {
      float4 acc[kDirectOB / 4];
#pragma unroll
      for (int j = 0; j < kDirectOB / 4; ++j) acc[j] = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 3
      for (int k = 0; k < K; ++k) {
        const int h = top + table.dh[k], wc = left + table.dw[k];
        const float f = (h >= 0 && h < static_cast<int>(H) && wc >= 0 && wc < static_cast<int>(W))
                            ? xn[(static_cast<I>(h) * W + wc) * C + table.c[k]]
                            : 0.f;
#pragma unroll
        for (int j = 0; j < kDirectOB / 4; ++j) {
          if (o4 + j < O4) {
            float4 wv = ws4[k * O4 + o4 + j];
            acc[j].x += f * wv.x;
            acc[j].y += f * wv.y;
            acc[j].z += f * wv.z;
            acc[j].w += f * wv.w;
          }
        }
      }
#pragma unroll
      for (int j = 0; j < kDirectOB / 4; ++j) {
        if (o4 + j < O4) {
          float4 v = acc[j];
          if (b4) {
            float4 b = b4[o4 + j];
            v.x += b.x;
            v.y += b.y;
            v.z += b.z;
            v.w += b.w;
          }
          if (relu) {  // NaN stays NaN, as the relu op
            v.x = v.x < 0.f ? 0.f : v.x;
            v.y = v.y < 0.f ? 0.f : v.y;
            v.z = v.z < 0.f ? 0.f : v.z;
            v.w = v.w < 0.f ? 0.f : v.w;
          }
          y4[p * O4 + o4 + j] = v;
        }
      }
    }
  }
}

/// Partial weight gradients: part[block, K, O] = sum over the block's pixels [p0, p1) of
/// field(p)[k] * gy[p, o]. Tiles of kTile pixels (fields and gradient rows) go to shared memory; each
/// thread keeps up to kUnits (k, 4 output channels) sums.
template <class I>
__global__ void direct_wgrad_kernel(const float* x, const float* gy, float* part, ColGeom g, int O, I P, I per_block) {
  __shared__ float fs[kTile][kDirectMaxK + 1];
  __shared__ FieldTable table;
  __shared__ float4 gs4[kTile * kDirectMaxO / 4];  // [kTile][O / 4]
  __shared__ I base[kTile];
  __shared__ int top[kTile], left[kTile];
  const int K = static_cast<int>(g.KH * g.KW * g.C), O4 = O / 4, units = K * O4;
  const I p0 = static_cast<I>(blockIdx.x) * per_block;
  const I p1 = p0 + per_block < P ? p0 + per_block : P;
  fill_table(table, g, K);
  __syncthreads();
  float4 acc[kUnits];
#pragma unroll
  for (int u = 0; u < kUnits; ++u) acc[u] = make_float4(0.f, 0.f, 0.f, 0.f);
  const float4* gy4 = reinterpret_cast<const float4*>(gy);
  for (I t0 = p0; t0 < p1; t0 += kTile) {
    const int n = static_cast<int>(p1 - t0 < kTile ? p1 - t0 : kTile);
    for (int i = threadIdx.x; i < kTile * O4; i += kDirectThreads) {
      int t = i / O4;
      gs4[i] = t < n ? gy4[(t0 + t) * O4 + i % O4] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    if (static_cast<int>(threadIdx.x) < n) {  // each tile pixel's image offset and top-left corner
      I p = t0 + static_cast<I>(threadIdx.x);
      I ow = p % static_cast<I>(g.OW), r = p / static_cast<I>(g.OW);
      I oh = r % static_cast<I>(g.OH), nn = r / static_cast<I>(g.OH);
      base[threadIdx.x] = nn * static_cast<I>(g.H * g.W * g.C);
      top[threadIdx.x] = static_cast<int>(oh * static_cast<I>(g.sh) - static_cast<I>(g.pt));
      left[threadIdx.x] = static_cast<int>(ow * static_cast<I>(g.sw) - static_cast<I>(g.pl));
    }
    __syncthreads();
    for (int i = threadIdx.x; i < kTile * K; i += kDirectThreads) {
      int t = i / K, k = i % K;
      float v = 0.f;
      if (t < n) {
        int h = top[t] + table.dh[k], w = left[t] + table.dw[k];
        if (h >= 0 && h < static_cast<int>(g.H) && w >= 0 && w < static_cast<int>(g.W))
          v = x[base[t] + (static_cast<I>(h) * static_cast<I>(g.W) + w) * static_cast<I>(g.C) + table.c[k]];
      }
      fs[t][k] = v;
    }
    __syncthreads();
#pragma unroll
    for (int u = 0; u < kUnits; ++u) {
      int q = threadIdx.x + u * kDirectThreads;
      if (q < units) {
        int k = q / O4, o4 = q % O4;
        float4 a = acc[u];
        for (int t = 0; t < kTile; ++t) {
          float fv = fs[t][k];
          float4 gv = gs4[t * O4 + o4];
          a.x += fv * gv.x;
          a.y += fv * gv.y;
          a.z += fv * gv.z;
          a.w += fv * gv.w;
        }
        acc[u] = a;
      }
    }
    __syncthreads();
  }
  float4* out = reinterpret_cast<float4*>(part) + static_cast<int64_t>(blockIdx.x) * units;
#pragma unroll
  for (int u = 0; u < kUnits; ++u) {
    int q = threadIdx.x + u * kDirectThreads;
    if (q < units) out[q] = acc[u];
  }
}

/// gw[i] = sum over blocks b in order of part[b, i]: a fixed order, so the result is the same on
/// every run.
__global__ void sum_parts_kernel(const float* part, float* gw, int64_t n, int blocks) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    float s = 0.f;
    for (int b = 0; b < blocks; ++b) s += part[static_cast<int64_t>(b) * n + i];
    gw[i] = s;
  }
}

}  // namespace

bool direct_fits(const ColGeom& g, int64_t O) {
  const int64_t K = g.KH * g.KW * g.C;
  return g.C <= 4 && K >= 1 && K <= kDirectMaxK && O >= 4 && O % 4 == 0 && O <= kDirectMaxO &&
         K * (O / 4) <= int64_t(kUnits) * kDirectThreads;
}

int direct_wgrad_blocks(int64_t P) {
  int64_t b = (P + 255) / 256;  // at least 256 pixels a block; up to 4 blocks for each of 132 SMs
  return static_cast<int>(b < 1 ? 1 : (b > 528 ? 528 : b));
}

void direct_forward(const float* x, const float* w, const float* bias, float* y, const ColGeom& g, int64_t N, int64_t O,
                    bool relu, cudaStream_t s) {
  const int64_t P = N * g.OH * g.OW;
  if (P == 0) return;
  const bool small = fits_i32(P * O) && fits_i32(N * g.H * g.W * g.C);
  const int blocks = blocks_for(P);
  if (small)
    direct_fwd_kernel<int32_t>
        <<<blocks, kDirectThreads, 0, s>>>(x, w, bias, y, g, static_cast<int>(O), static_cast<int32_t>(P), relu);
  else
    direct_fwd_kernel<int64_t><<<blocks, kDirectThreads, 0, s>>>(x, w, bias, y, g, static_cast<int>(O), P, relu);
}

void direct_weight_grad(const float* x, const float* gy, float* part, float* gw, const ColGeom& g, int64_t N, int64_t O,
                        cudaStream_t s) {
  const int64_t P = N * g.OH * g.OW, K = g.KH * g.KW * g.C;
  const int blocks = direct_wgrad_blocks(P);
  const int64_t per = (P + blocks - 1) / blocks;
  if (P > 0) {
    if (fits_i32(P * O) && fits_i32(N * g.H * g.W * g.C))
      direct_wgrad_kernel<int32_t><<<blocks, kDirectThreads, 0, s>>>(
          x, gy, part, g, static_cast<int>(O), static_cast<int32_t>(P), static_cast<int32_t>(per));
    else
      direct_wgrad_kernel<int64_t><<<blocks, kDirectThreads, 0, s>>>(x, gy, part, g, static_cast<int>(O), P, per);
  }
  sum_parts_kernel<<<blocks_for(K * O), kThreads, 0, s>>>(part, gw, K * O, P > 0 ? blocks : 0);
}

namespace {
/// Calls launch(I{}, V, units) with V = 4 where `vec4` (units = total / 4) else 1, and I = int32_t
/// where `small` (every index involved fits) else int64_t.
template <class L>
void by_width_and_index(bool vec4, bool small, int64_t total, L&& launch) {
  const int64_t units = vec4 ? total / 4 : total;
  auto with_width = [&](auto index) {
    if (vec4)
      launch(index, std::integral_constant<int, 4>{}, static_cast<decltype(index)>(units));
    else
      launch(index, std::integral_constant<int, 1>{}, static_cast<decltype(index)>(units));
  };
  if (small)
    with_width(int32_t{});
  else
    with_width(int64_t{});
}
}  // namespace

void im2col(const float* x, float* col, const ColGeom& g, int64_t nb, cudaStream_t s) {
  const int64_t total = nb * g.OH * g.OW * g.KH * g.KW * g.C;
  if (total == 0) return;
  by_width_and_index(by4(g, x, col), fits_i32(total) && fits_i32(nb * g.H * g.W * g.C), total,
                     [&](auto index, auto width, auto units) {
                       im2col_kernel<decltype(index), decltype(width)::value>
                           <<<blocks_for(units), kThreads, 0, s>>>(x, col, g, units);
                     });
}

void col2im(const float* col, float* dx, const ColGeom& g, int64_t nb, cudaStream_t s) {
  const int64_t total = nb * g.H * g.W * g.C;
  if (total == 0) return;
  by_width_and_index(by4(g, col, dx), fits_i32(total) && fits_i32(nb * g.OH * g.OW * g.KH * g.KW * g.C), total,
                     [&](auto index, auto width, auto units) {
                       col2im_kernel<decltype(index), decltype(width)::value>
                           <<<blocks_for(units), kThreads, 0, s>>>(col, dx, g, units);
                     });
}

}  // namespace glia::cuda::launch
