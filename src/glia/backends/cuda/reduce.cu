// CUDA reductions (sum, prod, amax / amin, max / min with indices, var), softmax / log-softmax and
// layer norm. Rows up to 1024 elements get one warp each, longer rows one block; reductions over
// a middle axis with contiguous columns after it get a coalesced column kernel. Every output is
// combined in a tree fixed by the launch shape alone, so results are deterministic.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "device.cuh"
#include "launch_reduce.h"

namespace glia::cuda::launch {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxBlocks = 65535 * 8;
constexpr unsigned kFull = 0xffffffffu;

template <class V>
__device__ __forceinline__ V pos_inf() {
  if constexpr (std::is_floating_point_v<V>)
    return static_cast<V>(INFINITY);
  else
    return INT64_MAX;
}
template <class V>
__device__ __forceinline__ V neg_inf() {
  if constexpr (std::is_floating_point_v<V>)
    return -static_cast<V>(INFINITY);
  else
    return INT64_MIN;
}

__device__ __forceinline__ float ex(float v) { return expf(v); }
__device__ __forceinline__ double ex(double v) { return exp(v); }
__device__ __forceinline__ float lg(float v) { return logf(v); }
__device__ __forceinline__ double lg(double v) { return log(v); }

template <class V>
struct ArgS {  // a value and its index along the reduced axis (plain: it lives in shared memory)
  V v;
  int64_t i;
};

template <class V>
__device__ __forceinline__ V shfl_down(V v, int off) {
  return __shfl_down_sync(kFull, v, off);
}
template <class V>
__device__ __forceinline__ ArgS<V> shfl_down(ArgS<V> v, int off) {
  return {shfl_down(v.v, off), shfl_down(v.i, off)};
}

struct AddF {
  template <class V>
  __device__ __forceinline__ V operator()(V a, V b) const {
    return a + b;
  }
};
template <bool kMax>
struct ExtremeF {  // NaN wins
  template <class V>
  __device__ __forceinline__ V operator()(V a, V b) const {
    if (a != a) return a;
    if (b != b) return b;
    return kMax ? (b > a ? b : a) : (b < a ? b : a);
  }
};

/// The combined value in lane 0.
template <class S, class F>
__device__ __forceinline__ S warp_reduce(S s, F f) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off >>= 1) s = f(s, shfl_down(s, off));
  return s;
}

/// The combined value in thread 0. `part` holds one value per warp.
template <class S, class F>
__device__ __forceinline__ S block_reduce(S s, F f, S* part, S init) {
  int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
  s = warp_reduce(s, f);
  __syncthreads();  // part may still be read from the previous use
  if (lane == 0) part[warp] = s;
  __syncthreads();
  if (warp == 0) s = warp_reduce(lane < nw ? part[lane] : init, f);
  return s;
}

/// The combined value in every thread of the row's warp (warp_rows) or of the block.
template <class S, class F>
__device__ __forceinline__ S all_reduce(S s, F f, S* part, S init, bool warp_rows) {
  if (warp_rows) return __shfl_sync(kFull, warp_reduce(s, f), 0);
  s = block_reduce(s, f, part, init);
  if (threadIdx.x == 0) part[0] = s;
  __syncthreads();
  return part[0];
}

/// Rows of a row kernel: one per warp (blockDim.x / 32 per block) or one per block.
struct RowLoop {
  bool warp_rows;
  int tid, nt;
  int64_t first, step;
  __device__ explicit RowLoop(bool w) : warp_rows(w) {
    tid = w ? threadIdx.x % kWarp : threadIdx.x;
    nt = w ? kWarp : blockDim.x;
    int64_t per = w ? blockDim.x / kWarp : 1;
    first = blockIdx.x * per + (w ? threadIdx.x / kWarp : 0);
    step = int64_t(gridDim.x) * per;
  }
};

bool warp_rows_for(int64_t R) { return R <= 1024; }

int row_blocks(int64_t rows, bool warp_rows) {
  int64_t b = warp_rows ? (rows + kThreads / kWarp - 1) / (kThreads / kWarp) : rows;
  return static_cast<int>(b < 1 ? 1 : b < kMaxBlocks ? b : kMaxBlocks);
}

// --- generic reductions: an op gives the state of one element, combines states, stores the result.

template <class T, class V>
struct SumR : AddF {
  using S = V;
  static __device__ S init() { return V(0); }
  static __device__ S elem(const T* p, int64_t) { return static_cast<V>(load(p)); }
  template <class O>
  static __device__ void finish(S s, O* vals, int64_t*, int64_t o) {
    store(vals + o, s);
  }
};

template <class T, class V>
struct ProdR {
  using S = V;
  __device__ S operator()(S a, S b) const { return a * b; }
  static __device__ S init() { return V(1); }
  static __device__ S elem(const T* p, int64_t) { return static_cast<V>(load(p)); }
  template <class O>
  static __device__ void finish(S s, O* vals, int64_t*, int64_t o) {
    store(vals + o, s);
  }
};

template <class T, class V, bool kMax>
struct ExtremeR : ExtremeF<kMax> {
  using S = V;
  static __device__ S init() { return kMax ? neg_inf<V>() : pos_inf<V>(); }
  static __device__ S elem(const T* p, int64_t) { return static_cast<V>(load(p)); }
  template <class O>
  static __device__ void finish(S s, O* vals, int64_t*, int64_t o) {
    store(vals + o, s);
  }
};
template <class T, class V>
using MaxR = ExtremeR<T, V, true>;
template <class T, class V>
using MinR = ExtremeR<T, V, false>;

// The first NaN, else the extreme with the smallest index: the same as the CPU's scan in order,
// and independent of how the elements are grouped.
template <class T, class V, bool kMax>
struct ArgR {
  using S = ArgS<V>;
  __device__ S operator()(S a, S b) const {
    bool an = a.v != a.v, bn = b.v != b.v;
    if (an || bn) return an && bn ? (b.i < a.i ? b : a) : (an ? a : b);
    bool better = kMax ? b.v > a.v : b.v < a.v;
    return better || (b.v == a.v && b.i < a.i) ? b : a;
  }
  static __device__ S init() { return {kMax ? neg_inf<V>() : pos_inf<V>(), INT64_MAX}; }
  static __device__ S elem(const T* p, int64_t r) { return {static_cast<V>(load(p)), r}; }
  template <class O>
  static __device__ void finish(S s, O* vals, int64_t* idx, int64_t o) {
    idx[o] = s.i;
    if (vals) store(vals + o, s.v);
  }
};
template <class T, class V>
using ArgMaxR = ArgR<T, V, true>;
template <class T, class V>
using ArgMinR = ArgR<T, V, false>;

template <class Op, class T, class O>
__global__ void reduce_rows_kernel(const T* x, O* vals, int64_t* idx, int64_t outer, int64_t R, bool warp_rows) {
  using S = typename Op::S;
  __shared__ S part[kThreads / kWarp];
  Op op;
  RowLoop L(warp_rows);
  for (int64_t o = L.first; o < outer; o += L.step) {
    const T* row = x + o * R;
    S s = Op::init();
    for (int64_t r = L.tid; r < R; r += L.nt) s = op(s, Op::elem(row + r, r));
    s = warp_rows ? warp_reduce(s, op) : block_reduce(s, op, part, Op::init());
    if (L.tid == 0) Op::finish(s, vals, idx, o);
  }
}

// Columns: a block is 32 adjacent columns (coalesced) by kColRows row slices, whose partial
// results are combined in shared memory in slice order.
constexpr int kColRows = kThreads / kWarp;

template <class Op, class T, class O>
__global__ void reduce_cols_kernel(const T* x, O* vals, int64_t* idx, int64_t outer, int64_t R, int64_t inner) {
  using S = typename Op::S;
  __shared__ S part[kColRows][kWarp + 1];
  Op op;
  int tx = threadIdx.x, ty = threadIdx.y;
  int64_t tiles = (inner + kWarp - 1) / kWarp;
  for (int64_t t = blockIdx.x; t < outer * tiles; t += gridDim.x) {
    int64_t o = t / tiles, j = (t % tiles) * kWarp + tx;
    S s = Op::init();
    if (j < inner) {
      const T* base = x + o * R * inner + j;
      for (int64_t r = ty; r < R; r += kColRows) s = op(s, Op::elem(base + r * inner, r));
    }
    part[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && j < inner) {
      for (int k = 1; k < kColRows; ++k) s = op(s, part[k][tx]);
      Op::finish(s, vals, idx, o * inner + j);
    }
    __syncthreads();
  }
}

struct Args {
  const void* x;
  void* vals;
  int64_t* idx;
  int64_t outer, R, inner;
  cudaStream_t s;
};

template <template <class, class> class OpT, class T, class V, class O>
bool run(const Args& a) {
  using Op = OpT<T, V>;
  const T* x = static_cast<const T*>(a.x);
  O* vals = static_cast<O*>(a.vals);
  if (a.outer * a.inner == 0) return true;
  if (a.inner == 1) {
    bool w = warp_rows_for(a.R);
    reduce_rows_kernel<Op, T, O><<<row_blocks(a.outer, w), kThreads, 0, a.s>>>(x, vals, a.idx, a.outer, a.R, w);
  } else {
    int64_t tiles = a.outer * ((a.inner + kWarp - 1) / kWarp);
    int blocks = static_cast<int>(tiles < kMaxBlocks ? tiles : kMaxBlocks);
    reduce_cols_kernel<Op, T, O><<<blocks, dim3(kWarp, kColRows), 0, a.s>>>(x, vals, a.idx, a.outer, a.R, a.inner);
  }
  return true;
}

bool sum_prod(bool prod, const Args& a, Dt in, Dt out) {
  auto f = [&](auto t, auto o) {
    using T = decltype(t);
    using O = decltype(o);
    if constexpr (std::is_integral_v<T>) {
      return prod ? run<ProdR, T, int64_t, int64_t>(a) : run<SumR, T, int64_t, int64_t>(a);
    } else {
      return prod ? run<ProdR, T, double, O>(a) : run<SumR, T, typename Acc<T>::type, O>(a);
    }
  };
  if (out == I64) {
    switch (in) {
      case I32:
        return f(int32_t{}, int64_t{});
      case I64:
        return f(int64_t{}, int64_t{});
      case U8:
        return f(uint8_t{}, int64_t{});
      case B8:
        return f(bool{}, int64_t{});
      default:
        return false;
    }
  }
  if (in == F32 && out == F32) return f(float{}, float{});
  if (in == F64 && out == F64) return f(double{}, double{});
  if (in == BF16 && out == BF16) return f(bf16_t{}, bf16_t{});
  if (in == F16 && out == F16) return f(f16_t{}, f16_t{});
  if (!prod && in == BF16 && out == F32) return run<SumR, bf16_t, float, float>(a);
  if (!prod && in == F16 && out == F32) return run<SumR, f16_t, float, float>(a);
  return false;
}

template <bool kMax>
bool extreme(bool with_index, const Args& a, Dt dt) {
  if (with_index && dt == B8) return false;
  bool ok = true;
  visit(dt, [&](auto t) {
    using T = decltype(t);
    using V = std::conditional_t<std::is_integral_v<T>, int64_t, typename Acc<T>::type>;
    if constexpr (!std::is_same_v<T, bool>) {
      if (with_index) {
        ok = kMax ? run<ArgMaxR, T, V, T>(a) : run<ArgMinR, T, V, T>(a);
        return;
      }
    }
    ok = kMax ? run<MaxR, T, V, T>(a) : run<MinR, T, V, T>(a);
  });
  return ok;
}

// --- var: two passes in double (the mean, then squared deviations), as the CPU kernel.

/// The mean of row[0, R) (on every thread of the row) and this thread's share of the squared
/// deviations from it: two passes in double, as the CPU's var and layer norm.
template <class T>
__device__ __forceinline__ double row_mean(const T* row, int64_t R, const RowLoop& L, double* part, double& dev2) {
  double s = 0;
  for (int64_t r = L.tid; r < R; r += L.nt) s += static_cast<double>(load(row + r));
  double m = all_reduce(s, AddF{}, part, 0.0, L.warp_rows) / static_cast<double>(R);
  dev2 = 0;
  for (int64_t r = L.tid; r < R; r += L.nt) {
    double d = static_cast<double>(load(row + r)) - m;
    dev2 += d * d;
  }
  return m;
}

template <class T>
__global__ void var_kernel(const T* x, T* out, int64_t outer, int64_t R, double denom, bool warp_rows) {
  __shared__ double part[kThreads / kWarp];
  RowLoop L(warp_rows);
  for (int64_t o = L.first; o < outer; o += L.step) {
    double q;
    row_mean(x + o * R, R, L, part, q);
    q = warp_rows ? warp_reduce(q, AddF{}) : block_reduce(q, AddF{}, part, 0.0);
    if (L.tid == 0) store(out + o, denom > 0 ? q / denom : static_cast<double>(NAN));
  }
}

// --- softmax

template <class T>
__global__ void softmax_rows_kernel(const T* x, T* y, int64_t outer, int64_t R, bool log, bool warp_rows) {
  using A = typename Acc<T>::type;
  __shared__ A part[kThreads / kWarp];
  RowLoop L(warp_rows);
  for (int64_t o = L.first; o < outer; o += L.step) {
    const T* xr = x + o * R;
    T* yr = y + o * R;
    A m = neg_inf<A>();
    for (int64_t r = L.tid; r < R; r += L.nt) m = ExtremeF<true>{}(m, load(xr + r));
    m = all_reduce(m, ExtremeF<true>{}, part, neg_inf<A>(), warp_rows);
    A s = 0;
    for (int64_t r = L.tid; r < R; r += L.nt) s += ex(load(xr + r) - m);
    s = all_reduce(s, AddF{}, part, A(0), warp_rows);
    if (log) {
      A c = m + lg(s);
      for (int64_t r = L.tid; r < R; r += L.nt) store(yr + r, load(xr + r) - c);
    } else {
      A inv = A(1) / s;
      for (int64_t r = L.tid; r < R; r += L.nt) store(yr + r, ex(load(xr + r) - m) * inv);
    }
  }
}

// One thread per column (adjacent threads read adjacent columns), three passes down the column.
template <class T>
__global__ void softmax_cols_kernel(const T* x, T* y, int64_t outer, int64_t R, int64_t inner, bool log) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, outer * inner) {
    int64_t o = i / inner, j = i % inner;
    const T* xc = x + o * R * inner + j;
    T* yc = y + o * R * inner + j;
    A m = neg_inf<A>();
    for (int64_t r = 0; r < R; ++r) m = ExtremeF<true>{}(m, load(xc + r * inner));
    A s = 0;
    for (int64_t r = 0; r < R; ++r) s += ex(load(xc + r * inner) - m);
    if (log) {
      A c = m + lg(s);
      for (int64_t r = 0; r < R; ++r) store(yc + r * inner, load(xc + r * inner) - c);
    } else {
      A inv = A(1) / s;
      for (int64_t r = 0; r < R; ++r) store(yc + r * inner, ex(load(xc + r * inner) - m) * inv);
    }
  }
}

// --- layer norm over rows [R, H]: statistics in double, as the CPU kernel.

template <class T, class A = typename Acc<T>::type>
__global__ void ln_fwd_kernel(const T* x, const A* gamma, const A* beta, T* y, A* mean, A* rstd, int64_t rows,
                              int64_t H, double eps, bool warp_rows) {
  __shared__ double part[kThreads / kWarp];
  RowLoop L(warp_rows);
  for (int64_t o = L.first; o < rows; o += L.step) {
    const T* xr = x + o * H;
    T* yr = y + o * H;
    double v;
    double m = row_mean(xr, H, L, part, v);
    v = all_reduce(v, AddF{}, part, 0.0, warp_rows) / static_cast<double>(H);
    double rs = 1.0 / sqrt(v + eps);
    if (L.tid == 0) {
      mean[o] = static_cast<A>(m);
      rstd[o] = static_cast<A>(rs);
    }
    A mm = static_cast<A>(m), ss = static_cast<A>(rs);
    for (int64_t j = L.tid; j < H; j += L.nt) store(yr + j, (load(xr + j) - mm) * ss * gamma[j] + beta[j]);
  }
}

// dx = rstd (g gamma - a - (x - mean) b) with a = mean(g gamma), b = rstd^2 mean(g gamma (x - mean)).
template <class T, class A = typename Acc<T>::type>
__global__ void ln_bwd_dx_kernel(const T* g, const T* x, const A* mean, const A* rstd, const A* gamma, T* dx,
                                 int64_t rows, int64_t H, bool warp_rows) {
  __shared__ double part[kThreads / kWarp];
  RowLoop L(warp_rows);
  for (int64_t o = L.first; o < rows; o += L.step) {
    const T *gr = g + o * H, *xr = x + o * H;
    A m = mean[o], s = rstd[o];
    double s1 = 0, s2 = 0;
    for (int64_t j = L.tid; j < H; j += L.nt) {
      A gh = load(gr + j) * gamma[j];
      s1 += static_cast<double>(gh);
      s2 += static_cast<double>(gh) * static_cast<double>(load(xr + j) - m);
    }
    s1 = all_reduce(s1, AddF{}, part, 0.0, warp_rows);
    s2 = all_reduce(s2, AddF{}, part, 0.0, warp_rows);
    auto a = static_cast<A>(s1 / static_cast<double>(H));
    auto b = static_cast<A>(static_cast<double>(s) * static_cast<double>(s) * s2 / static_cast<double>(H));
    for (int64_t j = L.tid; j < H; j += L.nt)
      store(dx + o * H + j, s * (load(gr + j) * gamma[j] - a - (load(xr + j) - m) * b));
  }
}

// dgamma / dbeta partial sums: block (column tile, row chunk); partial[chunk][0|1][H].
template <class T, class A = typename Acc<T>::type>
__global__ void ln_bwd_param_kernel(const T* g, const T* x, const A* mean, const A* rstd, double* partial, int64_t rows,
                                    int64_t H, int64_t chunk_rows) {
  __shared__ double pg[kColRows][kWarp + 1], pb[kColRows][kWarp + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  int64_t j = blockIdx.x * int64_t(kWarp) + tx;
  int64_t r0 = blockIdx.y * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  double dg = 0, db = 0;
  if (j < H) {
    for (int64_t r = r0 + ty; r < r1; r += kColRows) {
      A gv = load(g + r * H + j);
      dg += static_cast<double>(gv * (load(x + r * H + j) - mean[r]) * rstd[r]);
      db += static_cast<double>(gv);
    }
  }
  pg[ty][tx] = dg;
  pb[ty][tx] = db;
  __syncthreads();
  if (ty == 0 && j < H) {
    for (int k = 1; k < kColRows; ++k) {
      dg += pg[k][tx];
      db += pb[k][tx];
    }
    partial[(2 * int64_t(blockIdx.y)) * H + j] = dg;
    partial[(2 * int64_t(blockIdx.y) + 1) * H + j] = db;
  }
}

template <class A>
__global__ void ln_bwd_finish_kernel(const double* partial, A* dgamma, A* dbeta, int64_t H, int64_t chunks) {
  GLIA_CUDA_LOOP(j, H) {
    double dg = 0, db = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      dg += partial[2 * c * H + j];
      db += partial[(2 * c + 1) * H + j];
    }
    dgamma[j] = static_cast<A>(dg);
    dbeta[j] = static_cast<A>(db);
  }
}

}  // namespace

bool reduce(RedOp op, const void* x, Dt in_dt, void* vals, Dt out_dt, int64_t* idx, int64_t outer, int64_t R,
            int64_t inner, cudaStream_t s) {
  Args a{x, vals, idx, outer, R, inner, s};
  bool arg = op == RedOp::ArgMax || op == RedOp::ArgMin;
  if (!arg && op != RedOp::Sum && op != RedOp::Prod && in_dt != out_dt) return false;
  switch (op) {
    case RedOp::Sum:
      return sum_prod(false, a, in_dt, out_dt);
    case RedOp::Prod:
      return sum_prod(true, a, in_dt, out_dt);
    case RedOp::Max:
      return extreme<true>(false, a, in_dt);
    case RedOp::Min:
      return extreme<false>(false, a, in_dt);
    case RedOp::ArgMax:
      return extreme<true>(true, a, in_dt);
    case RedOp::ArgMin:
      return extreme<false>(true, a, in_dt);
  }
  return false;
}

bool var_rows(const void* x, void* out, Dt dt, int64_t outer, int64_t R, int64_t correction, cudaStream_t s) {
  double denom = static_cast<double>(R - correction);
  bool w = warp_rows_for(R);
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    if (outer == 0) return;
    var_kernel<T>
        <<<row_blocks(outer, w), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(out), outer, R, denom, w);
  });
}

bool softmax(const void* x, void* y, Dt dt, int64_t outer, int64_t R, int64_t inner, bool log, cudaStream_t s) {
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    const T* xp = static_cast<const T*>(x);
    T* yp = static_cast<T*>(y);
    if (outer * R * inner == 0) return;
    if (inner == 1) {
      bool w = warp_rows_for(R);
      softmax_rows_kernel<T><<<row_blocks(outer, w), kThreads, 0, s>>>(xp, yp, outer, R, log, w);
    } else {
      softmax_cols_kernel<T><<<blocks_for(outer * inner), kThreads, 0, s>>>(xp, yp, outer, R, inner, log);
    }
  });
}

bool layer_norm_fwd(const void* x, const void* gamma, const void* beta, void* y, void* mean, void* rstd, Dt dt,
                    int64_t R, int64_t H, double eps, cudaStream_t s) {
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    using A = typename Acc<T>::type;
    if (R == 0) return;
    bool w = warp_rows_for(H);
    ln_fwd_kernel<T><<<row_blocks(R, w), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<const A*>(gamma),
                                                           static_cast<const A*>(beta), static_cast<T*>(y),
                                                           static_cast<A*>(mean), static_cast<A*>(rstd), R, H, eps, w);
  });
}

int64_t layer_norm_bwd_chunks(int64_t R) {
  int64_t c = (R + 63) / 64;
  return c < 1 ? 1 : c > 128 ? 128 : c;
}

bool layer_norm_bwd(const void* g, const void* x, const void* mean, const void* rstd, const void* gamma, void* dx,
                    double* partial, void* dgamma, void* dbeta, Dt dt, int64_t R, int64_t H, cudaStream_t s) {
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    using A = typename Acc<T>::type;
    if (R == 0 || H == 0) return;
    const T *gp = static_cast<const T*>(g), *xp = static_cast<const T*>(x);
    const A *mp = static_cast<const A*>(mean), *sp = static_cast<const A*>(rstd);
    bool w = warp_rows_for(H);
    ln_bwd_dx_kernel<T><<<row_blocks(R, w), kThreads, 0, s>>>(gp, xp, mp, sp, static_cast<const A*>(gamma),
                                                              static_cast<T*>(dx), R, H, w);
    int64_t chunks = layer_norm_bwd_chunks(R), chunk_rows = (R + chunks - 1) / chunks;
    dim3 grid(static_cast<unsigned>((H + kWarp - 1) / kWarp), static_cast<unsigned>(chunks));
    ln_bwd_param_kernel<T><<<grid, dim3(kWarp, kColRows), 0, s>>>(gp, xp, mp, sp, partial, R, H, chunk_rows);
    ln_bwd_finish_kernel<A>
        <<<blocks_for(H), kThreads, 0, s>>>(partial, static_cast<A*>(dgamma), static_cast<A*>(dbeta), H, chunks);
  });
}

}  // namespace glia::cuda::launch
