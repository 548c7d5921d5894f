// CUDA kernels of the neural-network ops that cuDNN does not cover with the CPU's semantics:
// pooling (the CPU's window-position index and NaN rule; count-exclude-pad averages), batch-norm
// statistics (deterministic per-channel sums in double over fixed row blocks, then a fixed-order
// combine), the per-channel affine passes, and the bias + activation epilogue of fused ops.
// Backward pooling is a gather per input cell over the windows that contain it, in the CPU's
// window order: no atomics, so results are deterministic.
// bfloat16 / float16 load into float (Acc), compute there and round once on store, as the CPU's
// kernels (which run these ops on float32 copies); statistics stay in double for every dtype.
#include <cstdint>
#include <type_traits>

#include "device.cuh"
#include "launch_nn.h"

namespace glia::cuda::launch {
namespace {

// --- per-channel passes over [M, C] (NHWC rows)

constexpr int kChan = 32;  // channels per block (one warp along C: coalesced rows)
constexpr int kRowThreads = 8;
constexpr int64_t kRowsPerBlock = 64;  // rows a block of a per-channel pass covers (8 per thread)

/// Blocks (kChan, kRowThreads): threadIdx.x walks 32 channels (a warp reads 128 contiguous bytes of a
/// row), threadIdx.y and blockIdx.y walk the rows, so each thread keeps one channel (and its
/// coefficients) and computes no index division per element.
struct ChanGrid {
  dim3 grid, block;
};
inline ChanGrid chan_grid(int64_t M, int64_t C) {
  int64_t gy = (M + kRowsPerBlock - 1) / kRowsPerBlock;
  gy = gy < 1 ? 1 : (gy > 65535 ? 65535 : gy);
  return {dim3(static_cast<unsigned>((C + kChan - 1) / kChan), static_cast<unsigned>(gy)), dim3(kChan, kRowThreads)};
}
#define GLIA_CHAN_ROWS(r, M) \
  for (int64_t r = blockIdx.y * int64_t(kRowThreads) + threadIdx.y; r < (M); r += int64_t(gridDim.y) * kRowThreads)

// --- bias + activation

template <class T>
__device__ __forceinline__ T activate(T x, Act act) {
  switch (act) {
    case Act::None:
      return x;
    case Act::Relu:
      return x < T(0) ? T(0) : x;  // NaN stays NaN, as the relu op
    case Act::Tanh:
      return tanh(x);
    case Act::Sigmoid: {
      T e = exp(-fabs(x));
      T r = T(1) / (T(1) + e);
      return x < T(0) ? e * r : r;
    }
    case Act::Gelu:
      return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752)));
    case Act::GeluTanh: {
      T inner = T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
      return T(0.5) * x * (T(1) + tanh(inner));
    }
  }
  return x;
}

template <class T>
__global__ void bias_act_kernel(T* y, const T* bias, int64_t M, int64_t C, Act act) {
  using A = typename Acc<T>::type;
  int64_t c = blockIdx.x * int64_t(kChan) + threadIdx.x;
  if (c >= C) return;
  const A b = bias ? static_cast<A>(load(bias + c)) : A(0);
  GLIA_CHAN_ROWS(r, M) {
    A v = load(y + r * C + c);
    if (bias) v += b;
    store(y + r * C + c, activate<A>(v, act));
  }
}

// --- pooling

/// n / d for n >= 0: with the geometry's multiply-high divider f when `fast` (n < 2^31), else a
/// 64-bit division.
__device__ __forceinline__ int64_t div_by(int64_t n, int64_t d, glia::detail::FastDiv f, bool fast) {
  return fast ? static_cast<int64_t>(glia::detail::fast_quot(static_cast<uint32_t>(n), f)) : n / d;
}

/// The output rows (or columns) whose windows contain input row i: [lo, hi], empty when lo > hi.
__device__ __forceinline__ void covering(int64_t i, int64_t pad, int64_t K, int64_t stride, glia::detail::FastDiv ds,
                                         bool fast, int64_t O, int64_t& lo, int64_t& hi) {
  int64_t first = i + pad - K + 1;  // a window starting at o * stride - pad covers i iff first <= o * stride <= i + pad
  lo = first <= 0 ? 0 : div_by(first + stride - 1, stride, ds, fast);
  hi = div_by(i + pad, stride, ds, fast);  // i + pad >= 0
  if (hi > O - 1) hi = O - 1;
}

/// Cell i of [N, H, W, C] (the input's or the output's H, W and their dividers) as n, h, w, c.
struct Nhwc {
  int64_t n, h, w, c;
};
__device__ __forceinline__ Nhwc split_nhwc(const PoolGeom& g, int64_t i, int64_t H, int64_t W, glia::detail::FastDiv dH,
                                           glia::detail::FastDiv dW) {
  Nhwc q;
  int64_t r = div_by(i, g.C, g.dC, g.fast);
  q.c = i - r * g.C;
  int64_t r2 = div_by(r, W, dW, g.fast);
  q.w = r - r2 * W;
  q.n = div_by(r2, H, dH, g.fast);
  q.h = r2 - q.n * H;
  return q;
}

/// Output cell o of [N, OH, OW, C], and the top-left input position of its window.
struct OutCell {
  int64_t n, oh, ow, c, ih0, iw0;
};
__device__ __forceinline__ OutCell out_cell(const PoolGeom& g, int64_t o) {
  Nhwc s = split_nhwc(g, o, g.OH, g.OW, g.dOH, g.dOW);
  OutCell q;
  q.n = s.n, q.oh = s.h, q.ow = s.w, q.c = s.c;
  q.ih0 = q.oh * g.sh - g.pt;
  q.iw0 = q.ow * g.sw - g.pl;
  return q;
}

/// The window at (ih0, iw0) clipped to the input: rows [h0, h1), columns [w0, w1).
struct Clip {
  int64_t h0, h1, w0, w1;
};
__device__ __forceinline__ Clip clip(const PoolGeom& g, int64_t ih0, int64_t iw0) {
  return {ih0 < 0 ? 0 : ih0, ih0 + g.KH < g.H ? ih0 + g.KH : g.H, iw0 < 0 ? 0 : iw0,
          iw0 + g.KW < g.W ? iw0 + g.KW : g.W};
}

/// Input cell i of [N, H, W, C], and the outputs whose windows contain it: rows [ohl, ohh],
/// columns [owl, owh] (empty when lo > hi).
struct InCell {
  int64_t n, ih, iw, c, ohl, ohh, owl, owh;
};
__device__ __forceinline__ InCell in_cell(const PoolGeom& g, int64_t i) {
  Nhwc s = split_nhwc(g, i, g.H, g.W, g.dH, g.dW);
  InCell q;
  q.n = s.n, q.ih = s.h, q.iw = s.w, q.c = s.c;
  covering(q.ih, g.pt, g.KH, g.sh, g.dsh, g.fast, g.OH, q.ohl, q.ohh);
  covering(q.iw, g.pl, g.KW, g.sw, g.dsw, g.fast, g.OW, q.owl, q.owh);
  return q;
}

template <class T, class I>
__global__ void max_fwd_kernel(PoolGeom g, const T* x, T* y, I* idx, int64_t total) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(o, total) {
    OutCell q = out_cell(g, o);
    int64_t ih0 = q.ih0, iw0 = q.iw0;
    Clip w = clip(g, ih0, iw0);  // as kernel positions: [khl, khh) x [kwl, kwh)
    int64_t khl = w.h0 - ih0, kwl = w.w0 - iw0, khh = w.h1 - ih0, kwh = w.w1 - iw0;
    const T* base = x + q.n * g.H * g.W * g.C + q.c;
    A m = load(base + ((ih0 + khl) * g.W + iw0 + kwl) * g.C);
    int64_t best = khl * g.KW + kwl;
    // A strictly greater value or any NaN takes the place (the CPU's rule: the last NaN wins).
    for (int64_t kh = khl; kh < khh; ++kh)
      for (int64_t kw = kwl; kw < kwh; ++kw) {
        A v = load(base + ((ih0 + kh) * g.W + iw0 + kw) * g.C);
        if (v > m || isnan(v)) {
          m = v;
          best = kh * g.KW + kw;
        }
      }
    store(y + o, m);
    idx[o] = static_cast<I>(best);
  }
}

template <class T, class I>
__global__ void max_bwd_kernel(PoolGeom g, const T* gy, const I* idx, T* gx, int64_t total) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, total) {
    InCell q = in_cell(g, i);
    A acc = A(0);
    for (int64_t oh = q.ohl; oh <= q.ohh; ++oh)
      for (int64_t ow = q.owl; ow <= q.owh; ++ow) {
        int64_t o = ((q.n * g.OH + oh) * g.OW + ow) * g.C + q.c;
        int64_t pos = (q.ih - (oh * g.sh - g.pt)) * g.KW + (q.iw - (ow * g.sw - g.pl));
        if (static_cast<int64_t>(idx[o]) == pos) acc += load(gy + o);
      }
    store(gx + i, acc);
  }
}

template <class T, class I>
__global__ void max_gather_kernel(PoolGeom g, const T* x, const I* idx, T* y, int64_t total) {
  GLIA_CUDA_LOOP(o, total) {
    OutCell q = out_cell(g, o);
    int64_t k = static_cast<int64_t>(idx[o]);
    int64_t kh = k / g.KW;  // (a window position: small)
    int64_t ih = q.ih0 + kh, iw = q.iw0 + (k - kh * g.KW);
    // An index from max_pool2d always names a cell inside the input; a foreign one reads zero.
    y[o] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x[((q.n * g.H + ih) * g.W + iw) * g.C + q.c] : T{};
  }
}

/// The number of the window's cells inside the input (count_include_pad = false, as the CPU).
__device__ __forceinline__ int64_t window_count(const PoolGeom& g, int64_t oh, int64_t ow) {
  Clip w = clip(g, oh * g.sh - g.pt, ow * g.sw - g.pl);
  return (w.h1 - w.h0) * (w.w1 - w.w0);
}

template <class T>
__global__ void avg_fwd_kernel(PoolGeom g, const T* x, T* y, int64_t total) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(o, total) {
    OutCell q = out_cell(g, o);
    Clip w = clip(g, q.ih0, q.iw0);
    const T* base = x + q.n * g.H * g.W * g.C + q.c;
    A s = A(0);
    for (int64_t ih = w.h0; ih < w.h1; ++ih)
      for (int64_t iw = w.w0; iw < w.w1; ++iw) s += load(base + (ih * g.W + iw) * g.C);
    store(y + o, s * (A(1) / static_cast<A>((w.h1 - w.h0) * (w.w1 - w.w0))));
  }
}

template <class T>
__global__ void avg_bwd_kernel(PoolGeom g, const T* gy, T* gx, int64_t total) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, total) {
    InCell q = in_cell(g, i);
    A acc = A(0);
    for (int64_t oh = q.ohl; oh <= q.ohh; ++oh)
      for (int64_t ow = q.owl; ow <= q.owh; ++ow) {
        A inv = A(1) / static_cast<A>(window_count(g, oh, ow));
        acc += load(gy + ((q.n * g.OH + oh) * g.OW + ow) * g.C + q.c) * inv;
      }
    store(gx + i, acc);
  }
}

// --- batch norm

constexpr int64_t kMinRowsPerPart = 256;
constexpr int64_t kMaxParts = 1024;

/// The type of per-channel statistics and parameters for data of type T: double for double, float
/// otherwise (stat_dtype of ops/norm.cpp).
template <class T>
using Stat = std::conditional_t<std::is_same_v<T, double>, double, float>;

/// Block (kChan, kRowThreads) sums rows [p * chunk, (p + 1) * chunk) of its channels; each thread
/// strides the rows, then thread row 0 adds the kRowThreads sums in a fixed order.
template <class T>
__global__ void bn_partial_kernel(const T* x, const T* g, const Stat<T>* mean, int64_t M, int64_t C, int64_t chunk,
                                  double* part) {
  __shared__ double s1[kRowThreads][kChan], s2[kRowThreads][kChan];
  int64_t c = blockIdx.x * int64_t(kChan) + threadIdx.x;
  int64_t p = blockIdx.y;
  int64_t r0 = p * chunk, r1 = r0 + chunk < M ? r0 + chunk : M;
  double a1 = 0, a2 = 0;
  if (c < C) {
    double ref = g ? static_cast<double>(mean[c])
                   : static_cast<double>(load(x + c));  // training: shifted by row 0 (no cancellation)
    // Unrolled so that several loads are in flight per thread (the sums keep their order).
#pragma unroll 4
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowThreads) {
      double xv = static_cast<double>(load(x + r * C + c)) - ref;
      if (g) {
        double gv = static_cast<double>(load(g + r * C + c));
        a1 += gv;
        a2 += gv * xv;
      } else {
        a1 += xv;
        a2 += xv * xv;
      }
    }
  }
  s1[threadIdx.y][threadIdx.x] = a1;
  s2[threadIdx.y][threadIdx.x] = a2;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    double t1 = 0, t2 = 0;
    for (int k = 0; k < kRowThreads; ++k) {
      t1 += s1[k][threadIdx.x];
      t2 += s2[k][threadIdx.x];
    }
    part[(p * 2) * C + c] = t1;
    part[(p * 2 + 1) * C + c] = t2;
  }
}

constexpr int kPartThreads = 32;  // threads along the parts in the finishing kernels

/// The sums over the P parts of channel c (blocks (kChan, kPartThreads)): thread y adds parts y,
/// y + kPartThreads, ... in order, then thread y = 0 adds the kPartThreads sums in order, so the
/// result does not depend on timing. True in the thread that holds the totals (y = 0, c < C).
__device__ __forceinline__ bool sum_parts(const double* part, int64_t P, int64_t C, int64_t c, double& t1, double& t2) {
  __shared__ double s1[kPartThreads][kChan], s2[kPartThreads][kChan];
  double a1 = 0, a2 = 0;
  if (c < C) {
#pragma unroll 4
    for (int64_t p = threadIdx.y; p < P; p += kPartThreads) {
      a1 += part[(p * 2) * C + c];
      a2 += part[(p * 2 + 1) * C + c];
    }
  }
  s1[threadIdx.y][threadIdx.x] = a1;
  s2[threadIdx.y][threadIdx.x] = a2;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return false;
  t1 = 0;
  t2 = 0;
  for (int k = 0; k < kPartThreads; ++k) {
    t1 += s1[k][threadIdx.x];
    t2 += s2[k][threadIdx.x];
  }
  return true;
}

template <class T>
__global__ void bn_train_finish_kernel(const double* part, int64_t P, const T* x, const Stat<T>* gamma,
                                       const Stat<T>* beta, int64_t M, int64_t C, double eps, double* coef,
                                       Stat<T>* mean_out, Stat<T>* invstd_out, Stat<T>* var_out) {
  using S = Stat<T>;
  const int64_t c = blockIdx.x * int64_t(kChan) + threadIdx.x;
  double t1, t2;
  if (sum_parts(part, P, C, c, t1, t2)) {
    double shift = M > 0 ? static_cast<double>(load(x + c)) : 0.0;
    double m1 = t1 / static_cast<double>(M);
    double mean = shift + m1;
    double v = t2 / static_cast<double>(M) - m1 * m1;
    double var = 0.0 < v ? v : 0.0;  // std::max(0.0, v): NaN gives 0 as on the CPU
    double invstd = 1.0 / sqrt(var + eps);
    double a = static_cast<double>(gamma[c]) * invstd;
    mean_out[c] = static_cast<S>(mean);
    invstd_out[c] = static_cast<S>(invstd);
    var_out[c] = static_cast<S>(var);
    coef[c] = a;
    coef[C + c] = static_cast<double>(beta[c]) - mean * a;
  }
}

template <class S>
__global__ void bn_backward_finish_kernel(const double* part, int64_t P, const S* mean, const S* invstd, const S* gamma,
                                          int64_t M, int64_t C, double* coef, S* dgamma, S* dbeta) {
  const int64_t c = blockIdx.x * int64_t(kChan) + threadIdx.x;
  double sg, sgx;
  if (sum_parts(part, P, C, c, sg, sgx)) {
    double is = invstd[c], k = static_cast<double>(gamma[c]) * is, Md = static_cast<double>(M);
    double b = -k * is * is * sgx / Md;
    dgamma[c] = static_cast<S>(sgx * is);
    dbeta[c] = static_cast<S>(sg);
    coef[c] = k;
    coef[C + c] = b;
    coef[2 * C + c] = -k * sg / Md - b * static_cast<double>(mean[c]);
  }
}

// 16-bit floats: float coefficients (as the CPU's acc_t vectors) and each product and sum rounded
// (no FMA contraction), as the CPU's scalar loop computes them, so the results match it exactly.
template <class T>
__global__ void affine_kernel(const T* x, const double* a, const double* b, T* y, int64_t M, int64_t C) {
  const int64_t c = blockIdx.x * int64_t(kChan) + threadIdx.x;
  if (c >= C) return;
  if constexpr (std::is_same_v<typename Acc<T>::type, T>) {
    const T ac = static_cast<T>(a[c]), bc = static_cast<T>(b[c]);
    GLIA_CHAN_ROWS(r, M) {
      const int64_t i = r * C + c;
      y[i] = x[i] * ac + bc;
    }
  } else {
    const float ac = static_cast<float>(a[c]), bc = static_cast<float>(b[c]);
    GLIA_CHAN_ROWS(r, M) {
      const int64_t i = r * C + c;
      store(y + i, __fadd_rn(__fmul_rn(load(x + i), ac), bc));
    }
  }
}

template <class T>
__global__ void affine2_kernel(const T* g, const T* x, const double* a, const double* b, const double* d, T* y,
                               int64_t M, int64_t C) {
  const int64_t c = blockIdx.x * int64_t(kChan) + threadIdx.x;
  if (c >= C) return;
  if constexpr (std::is_same_v<typename Acc<T>::type, T>) {
    const T ac = static_cast<T>(a[c]), bc = static_cast<T>(b[c]), dc = static_cast<T>(d[c]);
    GLIA_CHAN_ROWS(r, M) {
      const int64_t i = r * C + c;
      y[i] = g[i] * ac + x[i] * bc + dc;
    }
  } else {
    const float ac = static_cast<float>(a[c]), bc = static_cast<float>(b[c]), dc = static_cast<float>(d[c]);
    GLIA_CHAN_ROWS(r, M) {
      const int64_t i = r * C + c;
      float ga = __fmul_rn(load(g + i), ac);
      float xb = __fmul_rn(load(x + i), bc);
      store(y + i, __fadd_rn(__fadd_rn(ga, xb), dc));
    }
  }
}

bool is_float(Dt dt) { return dt == F32 || dt == F64 || dt == BF16 || dt == F16; }

unsigned finish_blocks(int64_t C) { return static_cast<unsigned>((C + kChan - 1) / kChan); }

template <class F>
bool visit_pool(Dt dt, bool idx32, F&& f) {
  return visit_floating(dt, [&](auto t) {
    if (idx32)
      f(t, int32_t{});
    else
      f(t, uint8_t{});
  });
}

}  // namespace

bool bias_act(void* y, const void* bias, int64_t n, int64_t C, Act act, Dt dt, cudaStream_t s) {
  if (n == 0) return true;
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    ChanGrid cg = chan_grid(n / C, C);
    bias_act_kernel<T><<<cg.grid, cg.block, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(bias), n / C, C, act);
  });
}

bool max_pool_fwd(const PoolGeom& g, const void* x, void* y, void* idx, bool idx32, Dt dt, cudaStream_t s) {
  int64_t total = g.N * g.OH * g.OW * g.C;
  if (total == 0) return true;
  return visit_pool(dt, idx32, [&](auto t, auto i) {
    using T = decltype(t);
    using I = decltype(i);
    max_fwd_kernel<T, I><<<blocks_for(total), kThreads, 0, s>>>(g, static_cast<const T*>(x), static_cast<T*>(y),
                                                                static_cast<I*>(idx), total);
  });
}

bool max_pool_bwd(const PoolGeom& g, const void* gy, const void* idx, bool idx32, void* gx, Dt dt, cudaStream_t s) {
  int64_t total = g.N * g.H * g.W * g.C;
  if (total == 0) return true;
  return visit_pool(dt, idx32, [&](auto t, auto i) {
    using T = decltype(t);
    using I = decltype(i);
    max_bwd_kernel<T, I><<<blocks_for(total), kThreads, 0, s>>>(g, static_cast<const T*>(gy),
                                                                static_cast<const I*>(idx), static_cast<T*>(gx), total);
  });
}

bool max_pool_gather(const PoolGeom& g, const void* x, const void* idx, bool idx32, void* y, Dt dt, cudaStream_t s) {
  int64_t total = g.N * g.OH * g.OW * g.C;
  if (total == 0) return true;
  return visit_pool(dt, idx32, [&](auto t, auto i) {
    using T = decltype(t);
    using I = decltype(i);
    max_gather_kernel<T, I><<<blocks_for(total), kThreads, 0, s>>>(
        g, static_cast<const T*>(x), static_cast<const I*>(idx), static_cast<T*>(y), total);
  });
}

bool avg_pool_fwd(const PoolGeom& g, const void* x, void* y, Dt dt, cudaStream_t s) {
  int64_t total = g.N * g.OH * g.OW * g.C;
  if (total == 0) return true;
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    avg_fwd_kernel<T><<<blocks_for(total), kThreads, 0, s>>>(g, static_cast<const T*>(x), static_cast<T*>(y), total);
  });
}

bool avg_pool_bwd(const PoolGeom& g, const void* gy, void* gx, Dt dt, cudaStream_t s) {
  int64_t total = g.N * g.H * g.W * g.C;
  if (total == 0) return true;
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    avg_bwd_kernel<T><<<blocks_for(total), kThreads, 0, s>>>(g, static_cast<const T*>(gy), static_cast<T*>(gx), total);
  });
}

int64_t bn_parts(int64_t M) {
  if (M <= 0) return 0;
  int64_t P = (M + kMinRowsPerPart - 1) / kMinRowsPerPart;
  if (P > kMaxParts) P = kMaxParts;
  int64_t chunk = (M + P - 1) / P;
  return (M + chunk - 1) / chunk;
}

bool bn_partial_sums(const void* x, const void* g, const void* mean, int64_t M, int64_t C, double* part, Dt dt,
                     cudaStream_t s) {
  int64_t P = bn_parts(M);
  if (P == 0 || C == 0) return is_float(dt);
  int64_t chunk = (M + P - 1) / P;
  dim3 grid(static_cast<unsigned>((C + kChan - 1) / kChan), static_cast<unsigned>(P));
  dim3 block(kChan, kRowThreads);
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    bn_partial_kernel<T><<<grid, block, 0, s>>>(static_cast<const T*>(x), static_cast<const T*>(g),
                                                static_cast<const Stat<T>*>(mean), M, C, chunk, part);
  });
}

bool bn_train_finish(const double* part, int64_t P, const void* x, Dt dt, const void* gamma, const void* beta,
                     int64_t M, int64_t C, double eps, double* coef, void* mean, void* invstd, void* var,
                     cudaStream_t s) {
  if (C == 0) return is_float(dt);
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    using S = Stat<T>;
    bn_train_finish_kernel<T><<<finish_blocks(C), dim3(kChan, kPartThreads), 0, s>>>(
        part, P, static_cast<const T*>(x), static_cast<const S*>(gamma), static_cast<const S*>(beta), M, C, eps, coef,
        static_cast<S*>(mean), static_cast<S*>(invstd), static_cast<S*>(var));
  });
}

void bn_backward_finish(const double* part, int64_t P, const void* mean, const void* invstd, const void* gamma,
                        int64_t M, int64_t C, Dt stat, double* coef, void* dgamma, void* dbeta, cudaStream_t s) {
  if (C == 0) return;
  auto run = [&](auto t) {
    using S = decltype(t);
    bn_backward_finish_kernel<S><<<finish_blocks(C), dim3(kChan, kPartThreads), 0, s>>>(
        part, P, static_cast<const S*>(mean), static_cast<const S*>(invstd), static_cast<const S*>(gamma), M, C, coef,
        static_cast<S*>(dgamma), static_cast<S*>(dbeta));
  };
  if (stat == F64)
    run(double{});
  else
    run(float{});
}

bool channel_affine(const void* x, const double* a, const double* b, void* y, int64_t M, int64_t C, Dt dt,
                    cudaStream_t s) {
  int64_t n = M * C;
  if (n == 0) return is_float(dt);
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    ChanGrid cg = chan_grid(M, C);
    affine_kernel<T><<<cg.grid, cg.block, 0, s>>>(static_cast<const T*>(x), a, b, static_cast<T*>(y), M, C);
  });
}

bool channel_affine2(const void* g, const void* x, const double* a, const double* b, const double* d, void* y,
                     int64_t M, int64_t C, Dt dt, cudaStream_t s) {
  int64_t n = M * C;
  if (n == 0) return is_float(dt);
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    ChanGrid cg = chan_grid(M, C);
    affine2_kernel<T><<<cg.grid, cg.block, 0, s>>>(static_cast<const T*>(g), static_cast<const T*>(x), a, b, d,
                                                   static_cast<T*>(y), M, C);
  });
}

}  // namespace glia::cuda::launch
