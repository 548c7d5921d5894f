// CUDA kernels of comparisons, logic, where, the float math of activations and their backward
// ops, and the interpreter of fused_elementwise programs. The single ops and the interpreter share
// one implementation of each MathOp, so a fused chain computes what the unfused ops compute.
#include <cstdint>
#include <type_traits>

#include "device.cuh"
#include "launch_elementwise.h"

namespace glia::cuda::launch {
namespace {

// --- float math: explicit float / double entry points, so float never computes in double

#define GLIA_MATH1(name, fname)                                             \
  __device__ __forceinline__ float m_##name(float x) { return ::fname(x); } \
  __device__ __forceinline__ double m_##name(double x) { return ::name(x); }
GLIA_MATH1(exp, expf)
GLIA_MATH1(expm1, expm1f)
GLIA_MATH1(log, logf)
GLIA_MATH1(log1p, log1pf)
GLIA_MATH1(sqrt, sqrtf)
GLIA_MATH1(sin, sinf)
GLIA_MATH1(cos, cosf)
GLIA_MATH1(tanh, tanhf)
GLIA_MATH1(erf, erff)
#undef GLIA_MATH1

template <class A>
__device__ __forceinline__ A sigmoid(A x) {
  // Split by sign so that exp never overflows into inf / inf.
  if (x >= A(0)) return A(1) / (A(1) + m_exp(-x));
  A e = m_exp(x);
  return e / (A(1) + e);
}

/// r = op(x) lane by lane; the switch is outside the lanes so that a program instruction
/// dispatches once for all of a thread's lanes.
template <int L, class A>
__device__ __forceinline__ void un(int op, const A (&x)[L], A (&r)[L], A p0, A p1) {
#define GLIA_LANES(expr)                          \
  _Pragma("unroll") for (int l = 0; l < L; ++l) { \
    const A v = x[l];                             \
    r[l] = (expr);                                \
  }                                               \
  break;
  switch (static_cast<MathOp>(op)) {
    case MathOp::Neg:
      GLIA_LANES(-v)
    case MathOp::Abs:
      GLIA_LANES(v < A(0) ? -v : v)
    case MathOp::Exp:
      GLIA_LANES(m_exp(v))
    case MathOp::Expm1:
      GLIA_LANES(m_expm1(v))
    case MathOp::Log:
      GLIA_LANES(m_log(v))
    case MathOp::Log1p:
      GLIA_LANES(m_log1p(v))
    case MathOp::Sqrt:
      GLIA_LANES(m_sqrt(v))
    case MathOp::Rsqrt:
      GLIA_LANES(A(1) / m_sqrt(v))
    case MathOp::Reciprocal:
      GLIA_LANES(A(1) / v)
    case MathOp::Sin:
      GLIA_LANES(m_sin(v))
    case MathOp::Cos:
      GLIA_LANES(m_cos(v))
    case MathOp::Tanh:
      GLIA_LANES(m_tanh(v))
    case MathOp::Sigmoid:
      GLIA_LANES(sigmoid(v))
    case MathOp::Erf:
      GLIA_LANES(m_erf(v))
    case MathOp::Relu:  // NaN stays NaN (v < 0 is false), as on the CPU
      GLIA_LANES(v < A(0) ? A(0) : v)
    case MathOp::LeakyRelu:
      GLIA_LANES(v < A(0) ? v * p0 : v)
    case MathOp::Elu:
      GLIA_LANES(v > A(0) ? v : p0 * m_expm1(v))
    case MathOp::Gelu:
      GLIA_LANES(A(0.5) * v * (A(1) + m_erf(v * A(0.70710678118654752440))))
    case MathOp::GeluTanh:
      GLIA_LANES(A(0.5) * v * (A(1) + m_tanh(A(0.7978845608028654) * (v + A(0.044715) * v * v * v))))
    case MathOp::Softplus:
      GLIA_LANES(v * p0 > p1 ? v : m_log1p(m_exp(v * p0)) / p0)
    case MathOp::Square:
      GLIA_LANES(v * v)
    default:
      GLIA_LANES(v)
  }
#undef GLIA_LANES
}

template <int L, class A>
__device__ __forceinline__ void bin(int op, const A (&x)[L], const A (&y)[L], A (&r)[L]) {
#define GLIA_LANES(expr)                          \
  _Pragma("unroll") for (int l = 0; l < L; ++l) { \
    const A a = x[l], b = y[l];                   \
    r[l] = (expr);                                \
  }                                               \
  break;
  switch (static_cast<MathOp>(op)) {
    case MathOp::Add:
      GLIA_LANES(a + b)
    case MathOp::Sub:
      GLIA_LANES(a - b)
    case MathOp::Mul:
      GLIA_LANES(a * b)
    case MathOp::Div:
      GLIA_LANES(a / b)
    case MathOp::Maximum:  // NaN propagates, as on the CPU
      GLIA_LANES(isnan(a) || isnan(b) ? a + b : (a > b ? a : b))
    case MathOp::Minimum:
      GLIA_LANES(isnan(a) || isnan(b) ? a + b : (a < b ? a : b))
    case MathOp::ReluBackward:  // a = grad, b = relu output
      GLIA_LANES(b > A(0) ? a : A(0))
    case MathOp::SigmoidBackward:  // a = grad, b = sigmoid output
      GLIA_LANES(a * b * (A(1) - b))
    case MathOp::TanhBackward:  // a = grad, b = tanh output
      GLIA_LANES(a * (A(1) - b * b))
    default:
      GLIA_LANES(a)
  }
#undef GLIA_LANES
}

// --- strided loops: contiguous operands skip the offset calculator

template <int N>
bool all_contiguous(const Strided<N>& it) {
  for (int k = 0; k < N; ++k) {
    int64_t expect = 1;
    for (int d = it.ndim - 1; d >= 0; --d) {
      if (it.size[d] != 1 && it.stride[k][d] != expect) return false;
      expect *= it.size[d];
    }
  }
  return true;
}

template <int N>
__device__ __forceinline__ void offs(const Strided<N>& it, bool contig, int64_t i, int64_t (&off)[N]) {
  if (contig) {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = i;
  } else {
    offsets(it, i, off);
  }
}

template <class T>
__global__ void compare_kernel(Strided<3> it, bool contig, CmpOp op) {
  GLIA_CUDA_LOOP(i, it.numel) {
    int64_t off[3];
    offs(it, contig, i, off);
    auto a = load(static_cast<const T*>(it.data[1]) + off[1]);
    auto b = load(static_cast<const T*>(it.data[2]) + off[2]);
    bool r = false;
    switch (op) {
      case CmpOp::Eq:
        r = a == b;
        break;
      case CmpOp::Ne:
        r = a != b;
        break;
      case CmpOp::Lt:
        r = a < b;
        break;
      case CmpOp::Le:
        r = a <= b;
        break;
      case CmpOp::Gt:
        r = a > b;
        break;
      case CmpOp::Ge:
        r = a >= b;
        break;
      case CmpOp::And:
        r = a && b;
        break;
      case CmpOp::Or:
        r = a || b;
        break;
      case CmpOp::Xor:
        r = static_cast<bool>(a) != static_cast<bool>(b);
        break;
    }
    static_cast<bool*>(it.data[0])[off[0]] = r;
  }
}

template <class T>
__global__ void math_unary_kernel(Strided<2> it, bool contig, int op, typename Acc<T>::type p0,
                                  typename Acc<T>::type p1) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, it.numel) {
    int64_t off[2];
    offs(it, contig, i, off);
    A x[1] = {load(static_cast<const T*>(it.data[1]) + off[1])}, r[1];
    un<1, A>(op, x, r, p0, p1);
    store(static_cast<T*>(it.data[0]) + off[0], r[0]);
  }
}

template <class T>
__global__ void math_binary_kernel(Strided<3> it, bool contig, int op) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, it.numel) {
    int64_t off[3];
    offs(it, contig, i, off);
    A x[1] = {load(static_cast<const T*>(it.data[1]) + off[1])};
    A y[1] = {load(static_cast<const T*>(it.data[2]) + off[2])}, r[1];
    bin<1, A>(op, x, y, r);
    store(static_cast<T*>(it.data[0]) + off[0], r[0]);
  }
}

template <class T>
__global__ void float_class_kernel(Strided<2> it, bool contig, bool finite) {
  GLIA_CUDA_LOOP(i, it.numel) {
    int64_t off[2];
    offs(it, contig, i, off);
    auto v = load(static_cast<const T*>(it.data[1]) + off[1]);
    static_cast<bool*>(it.data[0])[off[0]] = finite ? static_cast<bool>(isfinite(v)) : static_cast<bool>(isnan(v));
  }
}

template <class T>
__device__ __forceinline__ T arith(ArithOp op, T x, const ArithParams& p) {
  if constexpr (std::is_same_v<T, bool>) {
    if (op == ArithOp::Clamp) {  // the host gives the bounds as bool (0 / 1), as the CPU converts them
      int64_t v = x ? 1 : 0;
      if (p.has_lo && v < p.ilo) v = p.ilo;
      if (p.has_hi && v > p.ihi) v = p.ihi;
      return v != 0;
    }
    return x;  // sign and pow_scalar keep a bool
  } else {
    constexpr bool flt = std::is_floating_point_v<T>;
    switch (op) {
      case ArithOp::Sign:
        if constexpr (flt) {
          if (isnan(x)) return x;
        }
        if constexpr (std::is_unsigned_v<T>)
          return static_cast<T>(x > T(0) ? 1 : 0);
        else
          return static_cast<T>((T(0) < x) - (x < T(0)));
      case ArithOp::Clamp:
        if constexpr (flt) {
          if (isnan(x)) return x;
          if (p.has_lo && x < static_cast<T>(p.lo)) x = static_cast<T>(p.lo);
          if (p.has_hi && x > static_cast<T>(p.hi)) x = static_cast<T>(p.hi);
          return x;
        } else {
          if (p.has_lo && x < static_cast<T>(p.ilo)) x = static_cast<T>(p.ilo);
          if (p.has_hi && x > static_cast<T>(p.ihi)) x = static_cast<T>(p.ihi);
          return x;
        }
      case ArithOp::PowScalar:  // in double for every dtype, as the CPU kernel
        return static_cast<T>(::pow(static_cast<double>(x), p.exponent));
    }
    return x;
  }
}

// 16-bit floats compute in float (their Acc), as the CPU's acc_t.
template <class T>
__global__ void arith_kernel(Strided<2> it, bool contig, ArithOp op, ArithParams p) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, it.numel) {
    int64_t off[2];
    offs(it, contig, i, off);
    store(static_cast<T*>(it.data[0]) + off[0], arith<A>(op, load(static_cast<const T*>(it.data[1]) + off[1]), p));
  }
}

// where moves bits: one kernel per element size serves every dtype.
template <class B>
__global__ void where_kernel(Strided<4> it, bool contig) {
  GLIA_CUDA_LOOP(i, it.numel) {
    int64_t off[4];
    offs(it, contig, i, off);
    bool c = static_cast<const bool*>(it.data[3])[off[3]];
    static_cast<B*>(it.data[0])[off[0]] =
        c ? static_cast<const B*>(it.data[1])[off[1]] : static_cast<const B*>(it.data[2])[off[2]];
  }
}

// --- fused_elementwise: each thread runs the program over kVec consecutive elements held in one
// 16-byte vector per slot, so loads and stores of contiguous aligned operands are float4.

constexpr int kVec = 4;
struct alignas(16) Lanes {
  float v[kVec];
};

__global__ void fused_kernel(const FusedArgs a, bool vec) {
  Lanes slot[kFusedMaxInputs + kFusedMaxRegisters];
  for (int i = 0; i < a.n_inputs; ++i) {
    if (a.kind[i] != 1) continue;
    float s = a.scalar_ptr[i] ? *a.scalar_ptr[i] : a.scalar[i];
#pragma unroll
    for (int l = 0; l < kVec; ++l) slot[i].v[l] = s;
  }
  const int64_t groups = (a.numel + kVec - 1) / kVec;
  GLIA_CUDA_LOOP(g, groups) {
    const int64_t base = g * kVec;
    const bool whole = vec && base + kVec <= a.numel;
    const int cnt = a.numel - base < kVec ? static_cast<int>(a.numel - base) : kVec;
    for (int i = 0; i < a.n_inputs; ++i) {
      const float* p = a.ptr[i];
      if (a.kind[i] == 0) {
        if (whole) {
          float4 q = *reinterpret_cast<const float4*>(p + base);
          slot[i] = Lanes{{q.x, q.y, q.z, q.w}};
        } else {
#pragma unroll
          for (int l = 0; l < kVec; ++l) slot[i].v[l] = l < cnt ? p[base + l] : 0.f;
        }
      } else if (a.kind[i] == 2) {
        int64_t c = base % a.cols;
#pragma unroll
        for (int l = 0; l < kVec; ++l) {
          slot[i].v[l] = l < cnt ? p[c] : 0.f;
          if (++c == a.cols) c = 0;
        }
      }
    }
    Lanes out{};
    for (int pc = 0; pc < a.n_instr; ++pc) {
      const FusedInstr in = a.instr[pc];
      const Lanes x = slot[in.a];
      Lanes r;
      if (in.code >= static_cast<int>(MathOp::Add)) {
        const Lanes y = slot[in.b];
        bin<kVec, float>(in.code, x.v, y.v, r.v);
      } else {
        un<kVec, float>(in.code, x.v, r.v, in.p0, in.p1);
      }
      if (in.dst < 0)
        out = r;
      else
        slot[in.dst] = r;
    }
    if (whole) {
      *reinterpret_cast<float4*>(a.out + base) = make_float4(out.v[0], out.v[1], out.v[2], out.v[3]);
    } else {
#pragma unroll
      for (int l = 0; l < kVec; ++l)
        if (l < cnt) a.out[base + l] = out.v[l];
    }
  }
}

}  // namespace

bool compare(CmpOp op, const Strided<3>& it, Dt dt, cudaStream_t s) {
  if (it.numel == 0) return true;
  bool contig = all_contiguous(it);
  visit(dt, [&](auto t) { compare_kernel<decltype(t)><<<blocks_for(it.numel), kThreads, 0, s>>>(it, contig, op); });
  return true;
}

bool math_unary(MathOp op, const Strided<2>& it, Dt dt, double p0, double p1, cudaStream_t s) {
  return visit_floating(dt, [&](auto t) {
    using T = decltype(t);
    using A = typename Acc<T>::type;
    if (it.numel == 0) return;
    math_unary_kernel<T><<<blocks_for(it.numel), kThreads, 0, s>>>(it, all_contiguous(it), static_cast<int>(op),
                                                                   static_cast<A>(p0), static_cast<A>(p1));
  });
}

bool math_binary(MathOp op, const Strided<3>& it, Dt dt, cudaStream_t s) {
  return visit_floating(dt, [&](auto t) {
    if (it.numel == 0) return;
    math_binary_kernel<decltype(t)>
        <<<blocks_for(it.numel), kThreads, 0, s>>>(it, all_contiguous(it), static_cast<int>(op));
  });
}

bool float_class(bool finite, const Strided<2>& it, Dt dt, cudaStream_t s) {
  return visit_floating(dt, [&](auto t) {
    if (it.numel == 0) return;
    float_class_kernel<decltype(t)><<<blocks_for(it.numel), kThreads, 0, s>>>(it, all_contiguous(it), finite);
  });
}

bool arith_unary(ArithOp op, const Strided<2>& it, Dt dt, const ArithParams& p, cudaStream_t s) {
  auto run = [&](auto t) {
    if (it.numel == 0) return true;
    arith_kernel<decltype(t)><<<blocks_for(it.numel), kThreads, 0, s>>>(it, all_contiguous(it), op, p);
    return true;
  };
  switch (dt) {
    case F32:
      return run(float{});
    case F64:
      return run(double{});
    case BF16:
      return run(bf16_t{});
    case F16:
      return run(f16_t{});
    case I32:
      return run(int32_t{});
    case I64:
      return run(int64_t{});
    case U8:
      return run(uint8_t{});
    case B8:
      return run(bool{});
    default:
      return false;
  }
}

bool where(const Strided<4>& it, int itemsize, cudaStream_t s) {
  if (it.numel == 0) return itemsize == 1 || itemsize == 2 || itemsize == 4 || itemsize == 8;
  bool contig = all_contiguous(it);
  int nb = blocks_for(it.numel);
  switch (itemsize) {
    case 1:
      where_kernel<uint8_t><<<nb, kThreads, 0, s>>>(it, contig);
      return true;
    case 2:
      where_kernel<uint16_t><<<nb, kThreads, 0, s>>>(it, contig);
      return true;
    case 4:
      where_kernel<uint32_t><<<nb, kThreads, 0, s>>>(it, contig);
      return true;
    case 8:
      where_kernel<uint64_t><<<nb, kThreads, 0, s>>>(it, contig);
      return true;
    default:
      return false;
  }
}

void fused_elementwise(const FusedArgs& args, cudaStream_t s) {
  if (args.numel == 0) return;
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  bool vec = aligned(args.out);
  for (int i = 0; i < args.n_inputs; ++i)
    if (args.kind[i] == 0) vec = vec && aligned(args.ptr[i]);
  fused_kernel<<<blocks_for((args.numel + kVec - 1) / kVec), kThreads, 0, s>>>(args, vec);
}

}  // namespace glia::cuda::launch
