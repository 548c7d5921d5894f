// CUDA kernels of the indexing, padding and triangle ops, image translation, the Philox random
// draws, dropout and the fused optimizer updates. Each mirrors its CPU kernel in
// src/glia/backends/cpu/{index,shape_ops,image,random,optim}.cpp, dtypes included: the random kernels
// draw exactly the CPU's numbers for the same generator state, 16-bit floats compute in float (or
// double, where the CPU does) and round once on store as the CPU's conversions, and the optimizer
// updates (float32 / float64, as the CPU's) use the CPU's operation order with explicitly rounded
// operations (no contraction into FMAs), so both agree bit for bit.
#include <cstdint>
#include <type_traits>

#include "device.cuh"
#include "launch_index.h"

namespace glia::cuda::launch {
namespace {

/// Raw element types of each size: pure data movement does not need to know the dtype.
template <int kBytes>
struct Raw;
template <>
struct Raw<1> {
  using type = uint8_t;
};
template <>
struct Raw<2> {
  using type = uint16_t;
};
template <>
struct Raw<4> {
  using type = uint32_t;
};
template <>
struct Raw<8> {
  using type = uint64_t;
};

inline int item_size(Dt dt) {
  switch (dt) {
    case F64:
    case I64:
      return 8;
    case F32:
    case I32:
      return 4;
    case BF16:
    case F16:
      return 2;
    default:
      return 1;
  }
}

template <class F>
inline void visit_raw(Dt dt, F&& f) {
  switch (item_size(dt)) {
    case 8:
      f(uint64_t{});
      break;
    case 4:
      f(uint32_t{});
      break;
    case 2:
      f(uint16_t{});
      break;
    default:
      f(uint8_t{});
      break;
  }
}

// --- gather / scatter

/// Offsets of walk position i: in a, in b without the indexed dim, and in the index.
__device__ __forceinline__ void walk_offsets(const Walk& w, int64_t i, int64_t& oa, int64_t& ob, int64_t& oi) {
  oa = ob = oi = 0;
  for (int d = w.ndim - 1; d >= 0; --d) {
    int64_t m = i % w.size[d];
    i /= w.size[d];
    oa += m * w.a_stride[d];
    oi += m * w.i_stride[d];
    if (d != w.dim) ob += m * w.b_stride[d];
  }
}

template <class E>
__global__ void gather_kernel(Walk w, E* a, const E* b, const int64_t* index) {
  GLIA_CUDA_LOOP(i, w.numel) {
    int64_t oa, ob, oi;
    walk_offsets(w, i, oa, ob, oi);
    int64_t j = index[oi];
    // The host cannot check indices without a sync: an out-of-range one reads as 0.
    a[oa] = j >= 0 && j < w.dim_size ? b[ob + j * w.b_stride[w.dim]] : E(0);
  }
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(reinterpret_cast<int*>(p), int(v)); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  // Two's complement addition is the same on unsigned words, wrap-around included.
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}
// The 16-bit atomics add exactly and round to nearest even once per add: the CPU's float add of two
// 16-bit values followed by one rounding (that float sum is exact, or off by less than can change
// the 16-bit result). Only the order of repeated indices differs from the CPU's index order.
__device__ __forceinline__ void atomic_add(bf16_t* p, bf16_t v) {
  atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __ushort_as_bfloat16(v.bits));
}
__device__ __forceinline__ void atomic_add(f16_t* p, f16_t v) {
  atomicAdd(reinterpret_cast<__half*>(p), __ushort_as_half(v.bits));
}
// No byte atomics: a compare-and-swap of the aligned word holding the byte. The allocator's blocks
// and the graph arena's tensors start 64-byte aligned and span whole words, so the word is ours to
// read; wrap-around modulo 256 is the CPU's uint8 sum, in any order.
__device__ __forceinline__ void atomic_add(uint8_t* p, uint8_t v) {
  auto addr = reinterpret_cast<uintptr_t>(p);
  auto* word = reinterpret_cast<unsigned int*>(addr & ~uintptr_t(3));
  unsigned int shift = static_cast<unsigned int>(addr & 3) * 8;
  unsigned int old = *word, assumed;
  do {
    assumed = old;
    unsigned int byte = ((assumed >> shift) + v) & 0xffu;
    old = atomicCAS(word, assumed, (assumed & ~(0xffu << shift)) | (byte << shift));
  } while (old != assumed);
}

template <class T>
__global__ void scatter_add_kernel(Walk w, const T* a, T* b, const int64_t* index) {
  GLIA_CUDA_LOOP(i, w.numel) {
    int64_t oa, ob, oi;
    walk_offsets(w, i, oa, ob, oi);
    int64_t j = index[oi];
    // Out-of-range indices are skipped (the CPU throws; the GPU cannot without a host sync).
    if (j >= 0 && j < w.dim_size) atomic_add(b + ob + j * w.b_stride[w.dim], a[oa]);
  }
}

template <class T>
__global__ void one_hot_kernel(const int64_t* labels, T* out, int64_t n, int64_t C) {
  GLIA_CUDA_LOOP(i, n * C) store(out + i, labels[i / C] == i % C ? 1 : 0);
}

// --- padding

__device__ __forceinline__ int64_t pad_source(int64_t o, int64_t before, int64_t n, int mode) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  if (mode == PadConstant) return -1;
  if (mode == PadReplicate) return i < 0 ? 0 : n - 1;
  if (n == 1) return 0;
  int64_t period = 2 * (n - 1);
  int64_t m = ((i % period) + period) % period;
  return m < n ? m : period - m;
}

template <class T>
__global__ void pad_kernel(PadArgs a, T* out, const T* in, double value) {
  GLIA_CUDA_LOOP(i, a.numel) {
    int64_t rem = i, off = 0;
    bool inside = true;
    for (int d = a.ndim - 1; d >= 0; --d) {
      int64_t o = rem % a.out_size[d];
      rem /= a.out_size[d];
      int64_t s = pad_source(o, a.before[d], a.in_size[d], a.mode);
      if (s < 0) inside = false;
      off += s * a.in_stride[d];
    }
    if (inside)
      out[i] = in[off];
    else
      store(out + i, value);
  }
}

/// floor(a / b) for b > 0.
__device__ __forceinline__ int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Gathers rather than scatters, so every output element sums its sources in a fixed order
// (deterministic, no atomics): the direct copy, then the padded positions that copied it.
template <class T>
__global__ void pad_backward_kernel(const T* g, T* out, int64_t outer, int64_t Lg, int64_t n, int64_t inner,
                                    int64_t before, int mode) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(e, outer * n * inner) {
    int64_t c = e % inner, i = (e / inner) % n, o = e / (inner * n);
    const T* row = g + o * Lg * inner + c;
    A acc = A(0);
    auto add = [&](int64_t j) { acc = acc + A(load(row + j * inner)); };
    int64_t direct = i + before;
    if (direct >= 0 && direct < Lg) add(direct);
    if (mode == PadReplicate) {
      if (i == 0)
        for (int64_t j = 0; j < before && j < Lg; ++j) add(j);
      if (i == n - 1)
        for (int64_t j = before + n > 0 ? before + n : 0; j < Lg; ++j) add(j);
    } else if (mode == PadReflect) {
      if (n == 1) {
        for (int64_t j = 0; j < Lg; ++j)
          if (j != direct) add(j);
      } else {
        // Padded positions t = j - before outside [0, n) with t = +-i (mod 2 (n - 1)).
        int64_t p = 2 * (n - 1), lo = -before, hi = Lg - before - 1;
        for (int sign = 1; sign >= -1; sign -= 2) {
          if (sign < 0 && (i == 0 || i == n - 1)) break;  // -i lies in the same class as +i
          int64_t base = sign * i;
          for (int64_t k = -floor_div(base - lo, p); k <= floor_div(hi - base, p); ++k) {
            int64_t t = base + k * p;
            if (t < 0 || t >= n) add(t + before);
          }
        }
      }
    }
    store(out + e, acc);
  }
}

template <class E>
__global__ void triangle_kernel(const E* in, E* out, int64_t total, int64_t R, int64_t C, int64_t diag, bool lower) {
  GLIA_CUDA_LOOP(f, total) {
    int64_t j = f % C, i = (f / C) % R;
    bool keep = lower ? j - i <= diag : j - i >= diag;
    out[f] = keep ? in[f] : E(0);
  }
}

// --- translate_images

__device__ __forceinline__ int64_t fill_index(int64_t i, int64_t n, int mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case 0: {
      int64_t period = 2 * n;
      int64_t m = ((i % period) + period) % period;
      return m < n ? m : period - 1 - m;
    }
    case 1:
      return ((i % n) + n) % n;
    case 2:
      return i < 0 ? 0 : n - 1;
    default:
      return -1;
  }
}

template <class T>
__global__ void translate_kernel(const T* x, T* out, const float* dyp, const float* dxp, int64_t N, int64_t H,
                                 int64_t W, int64_t C, int mode, bool bilinear, double fill) {
  GLIA_CUDA_LOOP(e, N * H * W * C) {
    int64_t c = e % C, xx = (e / C) % W, y = (e / (C * W)) % H, n = e / (C * W * H);
    double sy = double(y) - double(dyp[n]), sx = double(xx) - double(dxp[n]);
    auto sample = [&](int64_t iy, int64_t ix) -> double {
      int64_t fy = fill_index(iy, H, mode), fx = fill_index(ix, W, mode);
      if (fy < 0 || fx < 0) return fill;
      return double(load(x + ((n * H + fy) * W + fx) * C + c));
    };
    double v;
    if (!bilinear) {
      v = sample(int64_t(floor(sy + 0.5)), int64_t(floor(sx + 0.5)));
    } else {
      int64_t y0 = int64_t(floor(sy)), x0 = int64_t(floor(sx));
      double wy = sy - double(y0), wx = sx - double(x0);
      // Rounded as the CPU's separate multiplies and adds (no FMA contraction).
      double top = __dadd_rn(__dmul_rn(1 - wx, sample(y0, x0)), __dmul_rn(wx, sample(y0, x0 + 1)));
      double bot = __dadd_rn(__dmul_rn(1 - wx, sample(y0 + 1, x0)), __dmul_rn(wx, sample(y0 + 1, x0 + 1)));
      v = __dadd_rn(__dmul_rn(1 - wy, top), __dmul_rn(wy, bot));
    }
    store(out + e, v);
  }
}

// --- random: Philox 4x32-10 as glia::random::philox (counter_hi = 0)

struct Words {
  uint32_t w[4];
};

__device__ __forceinline__ Words philox(uint64_t key, uint64_t counter) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0 = __umulhi(M0, c0), lo0 = M0 * c0;
    uint32_t hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  return {{c0, c1, c2, c3}};
}

/// The draw's seed and first counter: from the capture slot when there is one.
__device__ __forceinline__ void start(const Rng& r, uint64_t& seed, uint64_t& offset) {
  seed = r.slot ? r.slot[0] : r.seed;
  offset = r.slot ? r.offset + r.slot[1] : r.offset;
}

__device__ __forceinline__ double unit_double(uint32_t hi, uint32_t lo) {
  uint64_t v = (uint64_t(hi) << 21) ^ (lo >> 11);
  return double(v & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

template <class T>
__global__ void uniform_kernel(T* out, int64_t n, double low, double high, Rng r) {
  uint64_t seed, off;
  start(r, seed, off);
  GLIA_CUDA_LOOP(i, n) {
    Words w = philox(seed, off + uint64_t(i / 2));
    int lane = int(i % 2) * 2;
    // Narrow types round the double through float, as the CPU's conversions do.
    T v;
    store(&v, __dadd_rn(low, __dmul_rn(high - low, unit_double(w.w[lane], w.w[lane + 1]))));
    if (double(load(&v)) >= high && high > low) store(&v, low);
    out[i] = v;
  }
}

template <class T>
__global__ void normal_kernel(T* out, int64_t n, double mean, double sd, Rng r) {
  uint64_t seed, off;
  start(r, seed, off);
  GLIA_CUDA_LOOP(i, n) {
    Words w = philox(seed, off + uint64_t(i));
    double u1 = 1.0 - unit_double(w.w[0], w.w[1]);
    double u2 = unit_double(w.w[2], w.w[3]);
    double z = __dmul_rn(__dmul_rn(sd, sqrt(-2.0 * log(u1))), cos(__dmul_rn(2.0 * 3.14159265358979323846, u2)));
    store(out + i, __dadd_rn(mean, z));
  }
}

template <class T>
__global__ void int_kernel(T* out, int64_t n, int64_t low, uint64_t range, Rng r) {
  uint64_t seed, off;
  start(r, seed, off);
  GLIA_CUDA_LOOP(i, n) {
    Words w = philox(seed, off + uint64_t(i / 2));
    int lane = int(i % 2) * 2;
    uint64_t v = (uint64_t(w.w[lane]) << 32) | w.w[lane + 1];
    int64_t x = low + int64_t(v % range);
    if constexpr (std::is_integral_v<T>)
      out[i] = static_cast<T>(x);
    else
      store(out + i, double(x));
  }
}

template <class T, class A = typename Acc<T>::type>
__global__ void dropout_kernel(const T* x, T* y, bool* mask, int64_t n, A scale, uint32_t threshold, Rng r) {
  uint64_t seed, off;
  start(r, seed, off);
  GLIA_CUDA_LOOP(blk, (n + 3) / 4) {
    Words w = philox(seed, off + uint64_t(blk));
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      int64_t i = blk * 4 + q;
      if (i >= n) break;
      bool keep = (w.w[q] >> 8) >= threshold;
      mask[i] = keep;
      store(y + i, load(x + i) * (scale * A(keep)));
    }
  }
}

// --- optimizer updates: IEEE operations rounded one by one, as the CPU's Highway loops

__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float dv(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double dv(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sq(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sq(double a) { return __dsqrt_rn(a); }

template <OptRule kRule, class T>
__global__ void optim_kernel(OptimArgs a) {
  if (a.guard && !*a.guard) return;
  double lr = a.state ? a.state[0] : a.lr;
  int64_t step = a.state ? int64_t(a.state[1]) : a.step;
  double decay = lr * a.weight_decay;
  double alpha = 0;
  if constexpr (kRule == OptRule::Adam) {
    // The bias correction (two pow in double) once per block, not per thread.
    __shared__ double block_alpha;
    if (threadIdx.x == 0) {
      double t = double(step + 1);
      block_alpha = lr * sqrt(1 - pow(a.beta_2, t)) / (1 - pow(a.beta_1, t));
    }
    __syncthreads();
    alpha = block_alpha;
  }
  const T tlr = T(lr), scale = T(a.grad_scale), clip = T(a.clipvalue), tdecay = T(decay), mom = T(a.momentum);
  const bool has_scale = a.grad_scale != 1.0, has_clip = a.clipvalue > 0, has_decay = decay != 0.0;
  T* w = static_cast<T*>(a.w);
  const T* g = static_cast<const T*>(a.g);
  T* s0 = static_cast<T*>(a.s[0]);
  T* s1 = static_cast<T*>(a.s[1]);
  T* s2 = static_cast<T*>(a.s[2]);
  GLIA_CUDA_LOOP(i, a.n) {
    T gv = g[i];
    if (has_scale) gv = mul(gv, scale);
    if (has_clip) gv = gv > clip ? clip : gv < -clip ? -clip : gv;  // NaN stays NaN
    T wv = w[i];
    if (has_decay) wv = sub(wv, mul(wv, tdecay));
    if constexpr (kRule == OptRule::Sgd) {
      T lrg = mul(gv, tlr);
      if (s0) {
        T mv = sub(mul(s0[i], mom), lrg);
        s0[i] = mv;
        wv = a.nesterov ? add(wv, sub(mul(mv, mom), lrg)) : add(wv, mv);
      } else {
        wv = sub(wv, lrg);
      }
    } else if constexpr (kRule == OptRule::Adam) {
      T mv = add(s0[i], mul(sub(gv, s0[i]), T(1.0 - a.beta_1)));
      T vv = add(s1[i], mul(sub(mul(gv, gv), s1[i]), T(1.0 - a.beta_2)));
      s0[i] = mv;
      s1[i] = vv;
      if (s2) {
        // As x86's maxps(vhat, v): v unless vhat > v, so a NaN gives v.
        vv = s2[i] > vv ? s2[i] : vv;
        s2[i] = vv;
      }
      wv = sub(wv, dv(mul(mv, T(alpha)), add(sq(vv), T(a.epsilon))));
    } else if constexpr (kRule == OptRule::Rmsprop) {
      const T rho = T(a.rho), rho1 = T(1.0 - a.rho), eps = T(a.epsilon);
      T vv = add(mul(rho, s0[i]), mul(rho1, mul(gv, gv)));
      s0[i] = vv;
      T denom;
      if (s2) {
        T av = add(mul(rho, s2[i]), mul(rho1, gv));
        s2[i] = av;
        denom = add(sub(vv, mul(av, av)), eps);
      } else {
        denom = add(vv, eps);
      }
      T inc = dv(mul(tlr, gv), sq(denom));
      if (s1) {
        T mv = add(mul(mom, s1[i]), inc);
        s1[i] = mv;
        wv = sub(wv, mv);
      } else {
        wv = sub(wv, inc);
      }
    } else {
      T av = add(s0[i], mul(gv, gv));
      s0[i] = av;
      wv = sub(wv, dv(mul(tlr, gv), sq(add(av, T(a.epsilon)))));
    }
    w[i] = wv;
  }
}

template <OptRule kRule>
void optim_launch(const OptimArgs& a, Dt dt, cudaStream_t s) {
  if (dt == F32)
    optim_kernel<kRule, float><<<blocks_for(a.n), kThreads, 0, s>>>(a);
  else
    optim_kernel<kRule, double><<<blocks_for(a.n), kThreads, 0, s>>>(a);
}

}  // namespace

void gather(const Walk& w, void* a, const void* b, const int64_t* index, Dt dt, cudaStream_t s) {
  if (w.numel == 0) return;
  visit_raw(dt, [&](auto e) {
    using E = decltype(e);
    gather_kernel<E><<<blocks_for(w.numel), kThreads, 0, s>>>(w, static_cast<E*>(a), static_cast<const E*>(b), index);
  });
}

bool scatter_add(const Walk& w, const void* a, void* b, const int64_t* index, Dt dt, cudaStream_t s) {
  if (dt == B8) return false;
  if (w.numel == 0) return true;
  visit(dt, [&](auto v) {
    using T = decltype(v);
    if constexpr (!std::is_same_v<T, bool>)
      scatter_add_kernel<T>
          <<<blocks_for(w.numel), kThreads, 0, s>>>(w, static_cast<const T*>(a), static_cast<T*>(b), index);
  });
  return true;
}

void one_hot(const int64_t* labels, void* out, int64_t n, int64_t C, Dt dt, cudaStream_t s) {
  if (n * C == 0) return;
  visit(dt, [&](auto v) {
    using T = decltype(v);
    one_hot_kernel<T><<<blocks_for(n * C), kThreads, 0, s>>>(labels, static_cast<T*>(out), n, C);
  });
}

void pad(const PadArgs& a, void* out, const void* in, double value, Dt dt, cudaStream_t s) {
  if (a.numel == 0) return;
  visit(dt, [&](auto v) {
    using T = decltype(v);
    pad_kernel<T><<<blocks_for(a.numel), kThreads, 0, s>>>(a, static_cast<T*>(out), static_cast<const T*>(in), value);
  });
}

void pad_backward_dim(const void* g, void* out, int64_t outer, int64_t Lg, int64_t n, int64_t inner, int64_t before,
                      int mode, Dt dt, cudaStream_t s) {
  int64_t total = outer * n * inner;
  if (total == 0) return;
  visit(dt, [&](auto v) {
    using T = decltype(v);
    pad_backward_kernel<T><<<blocks_for(total), kThreads, 0, s>>>(static_cast<const T*>(g), static_cast<T*>(out), outer,
                                                                  Lg, n, inner, before, mode);
  });
}

void triangle(const void* in, void* out, int64_t batch, int64_t R, int64_t C, int64_t diag, bool lower, Dt dt,
              cudaStream_t s) {
  int64_t total = batch * R * C;
  if (total == 0) return;
  visit_raw(dt, [&](auto e) {
    using E = decltype(e);
    triangle_kernel<E><<<blocks_for(total), kThreads, 0, s>>>(static_cast<const E*>(in), static_cast<E*>(out), total, R,
                                                              C, diag, lower);
  });
}

bool translate_images(const void* x, void* out, const float* dy, const float* dx, int64_t N, int64_t H, int64_t W,
                      int64_t C, int mode, bool bilinear, double fill, Dt dt, cudaStream_t s) {
  int64_t total = N * H * W * C;
  auto go = [&](auto v) {
    using T = decltype(v);
    if (total > 0)
      translate_kernel<T><<<blocks_for(total), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(out), dy, dx,
                                                                 N, H, W, C, mode, bilinear, fill);
  };
  return visit_floating(dt, go);
}

bool random_uniform(void* out, int64_t n, double low, double high, Rng r, Dt dt, cudaStream_t s) {
  return visit_floating(dt, [&](auto v) {
    using T = decltype(v);
    if (n > 0) uniform_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(out), n, low, high, r);
  });
}

bool random_normal(void* out, int64_t n, double mean, double sd, Rng r, Dt dt, cudaStream_t s) {
  return visit_floating(dt, [&](auto v) {
    using T = decltype(v);
    if (n > 0) normal_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(out), n, mean, sd, r);
  });
}

void random_int(void* out, int64_t n, int64_t low, uint64_t range, Rng r, Dt dt, cudaStream_t s) {
  if (n == 0) return;
  visit(dt, [&](auto v) {
    using T = decltype(v);
    int_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(out), n, low, range, r);
  });
}

bool dropout(const void* x, void* y, bool* mask, int64_t n, double scale, uint32_t threshold, Rng r, Dt dt,
             cudaStream_t s) {
  int64_t blocks = (n + 3) / 4;
  return visit_floating(dt, [&](auto v) {
    using T = decltype(v);
    using A = typename Acc<T>::type;
    // The scale in the compute type, as the CPU's static_cast<acc_t<T>>(scale).
    if (n > 0)
      dropout_kernel<T><<<blocks_for(blocks), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), mask, n,
                                                                static_cast<A>(scale), threshold, r);
  });
}

bool optim_update(OptRule rule, const OptimArgs& a, Dt dt, cudaStream_t s) {
  if (dt != F32 && dt != F64) return false;
  switch (rule) {
    case OptRule::Sgd:
      optim_launch<OptRule::Sgd>(a, dt, s);
      break;
    case OptRule::Adam:
      optim_launch<OptRule::Adam>(a, dt, s);
      break;
    case OptRule::Rmsprop:
      optim_launch<OptRule::Rmsprop>(a, dt, s);
      break;
    case OptRule::Adagrad:
      optim_launch<OptRule::Adagrad>(a, dt, s);
      break;
  }
  return true;
}

}  // namespace glia::cuda::launch
