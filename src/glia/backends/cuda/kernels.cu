// CUDA kernels of the element-wise ops and copies. One generic strided loop: each thread
// turns a linear index of the output into per-operand offsets (the offset calculator), so any rank,
// view or broadcast works; operands that are contiguous or one number take a flat loop instead
// (float4 loads and stores for aligned float32).
#include <cstdint>
#include <type_traits>

#include "device.cuh"

namespace glia::cuda::launch {
namespace {

// --- fill, copy

template <class T>
__global__ void fill_kernel(Strided<1> it, double fv, int64_t iv) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < it.numel; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[1];
    offsets(it, i, off);
    T* p = static_cast<T*>(it.data[0]) + off[0];
    if constexpr (std::is_floating_point_v<typename Acc<T>::type>)
      store(p, fv);
    else
      store(p, iv);
  }
}

template <class D, class S>
__global__ void copy_kernel(Strided<2> it) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < it.numel; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    offsets(it, i, off);
    auto v = load(static_cast<const S*>(it.data[1]) + off[1]);
    D* o = static_cast<D*>(it.data[0]) + off[0];
    if constexpr (std::is_same_v<S, bool>)
      store(o, v ? 1 : 0);
    else
      store(o, v);
  }
}

// --- element-wise math. bin / un compute in the accumulation type A (float for the 16-bit floats,
// rounded once on store) and follow the CPU kernels for every dtype: bool arithmetic is on 0/1
// integers stored back as != 0 (add and maximum are or, mul and minimum are and), uint8 wraps.

template <class T>
__device__ __forceinline__ T ipow(T a, T b) {
  T r = 1;
  for (T i = 0; i < b; ++i) r = static_cast<T>(r * a);
  return r;
}

template <BinOp op, class A>
__device__ __forceinline__ A bin(A a, A b) {
  if constexpr (op == BinOp::Add) return static_cast<A>(a + b);
  if constexpr (op == BinOp::Sub) return static_cast<A>(a - b);
  if constexpr (op == BinOp::Mul) return static_cast<A>(a * b);
  if constexpr (op == BinOp::Div) return static_cast<A>(a / b);
  if constexpr (op == BinOp::Max || op == BinOp::Min) {
    if constexpr (std::is_floating_point_v<A>)
      if (isnan(a) || isnan(b)) return a + b;  // NaN propagates, as on the CPU
    if constexpr (op == BinOp::Max) return a > b ? a : b;
    return a < b ? a : b;
  }
  if constexpr (op == BinOp::Pow) {
    if constexpr (std::is_same_v<A, bool>)
      return a || !b;  // x^0 = 1, x^1 = x
    else if constexpr (std::is_floating_point_v<A>)
      return pow(a, b);
    else
      return ipow(a, b);
  }
  return A(0);
}

/// Operand of a binary loop as A. With a 16-bit result, a number of another dtype (a 0-d tensor)
/// arrives as one float32 (`num`) and is used in float, as the CPU does: x / 1e5 in float16 must
/// not become x / inf.
template <class T>
__device__ __forceinline__ typename Acc<T>::type operand(const void* p, int64_t off, bool num) {
  if constexpr (!std::is_same_v<typename Acc<T>::type, T>)
    if (num) return *static_cast<const float*>(p);
  return load(static_cast<const T*>(p) + off);
}

/// `num`: 0, or 1 / 2 when operand a / b is such a float32 number (16-bit T only).
template <BinOp op, class T>
__global__ void binary_kernel(Strided<3> it, int num) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, it.numel) {
    int64_t off[3];
    offsets(it, i, off);
    A a = operand<T>(it.data[1], off[1], num == 1), b = operand<T>(it.data[2], off[2], num == 2);
    store(static_cast<T*>(it.data[0]) + off[0], bin<op, A>(a, b));
  }
}

template <UnOp op, class A>
__device__ __forceinline__ A un(A x) {
  // bool counts as unsigned: abs and relu leave it (and uint8) as it is, as on the CPU.
  constexpr bool is_unsigned = std::is_unsigned_v<A>;
  if constexpr (op == UnOp::Neg) return static_cast<A>(-x);  // never bool: the host refuses it
  if constexpr (op == UnOp::Abs) {
    if constexpr (is_unsigned)
      return x;
    else
      return x < A(0) ? static_cast<A>(-x) : x;
  }
  if constexpr (op == UnOp::Relu) {
    if constexpr (is_unsigned)
      return x;
    else
      return x < A(0) ? A(0) : x;
  }
  if constexpr (op == UnOp::Square) return static_cast<A>(x * x);
  if constexpr (std::is_floating_point_v<A>) {
    if constexpr (op == UnOp::Exp) return exp(x);
    if constexpr (op == UnOp::Log) return log(x);
    if constexpr (op == UnOp::Sqrt) return sqrt(x);
    if constexpr (op == UnOp::Rsqrt) return A(1) / sqrt(x);
    if constexpr (op == UnOp::Tanh) return tanh(x);
    if constexpr (op == UnOp::Reciprocal) return A(1) / x;
    if constexpr (op == UnOp::Sigmoid) {
      if (x >= A(0)) return A(1) / (A(1) + exp(-x));
      A e = exp(x);
      return e / (A(1) + e);
    }
  }
  return x;
}

template <UnOp op, class T>
__global__ void unary_kernel(Strided<2> it) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, it.numel) {
    int64_t off[2];
    offsets(it, i, off);
    store(static_cast<T*>(it.data[0]) + off[0], un<op, A>(load(static_cast<const T*>(it.data[1]) + off[1])));
  }
}

// --- flat fast path: every operand is either contiguous over the whole loop or one number, so no
// offset calculator is needed; float32 with 16-byte-aligned pointers and a multiple of 4 elements
// moves four values per load and store (float4).

/// Operand k of the loop: 0 contiguous, 1 one number (all strides 0), -1 anything else.
template <int N>
bool flat_kinds(const Strided<N>& it, int (&kind)[N]) {
  for (int k = 0; k < N; ++k) {
    bool scalar = true, contiguous = true;
    int64_t expect = 1;
    for (int d = it.ndim - 1; d >= 0; --d) {
      if (it.size[d] == 1) continue;
      scalar = scalar && it.stride[k][d] == 0;
      contiguous = contiguous && it.stride[k][d] == expect;
      expect *= it.size[d];
    }
    kind[k] = contiguous ? 0 : scalar ? 1 : -1;
    if (k == 0 && kind[k] != 0) return false;  // the output is written in full
    if (kind[k] < 0) return false;
  }
  return true;
}

template <int N>
bool vec4_ok(const Strided<N>& it, const int (&kind)[N]) {
  if (it.numel % 4 != 0) return false;
  for (int k = 0; k < N; ++k)
    if (kind[k] == 0 && reinterpret_cast<uintptr_t>(it.data[k]) % 16 != 0) return false;
  return true;
}

__device__ __forceinline__ float4 load4(const float* p, bool scalar, int64_t i4) {
  if (scalar) {
    float v = *p;
    return make_float4(v, v, v, v);
  }
  return reinterpret_cast<const float4*>(p)[i4];
}

template <BinOp op, class T>
__global__ void binary_flat_kernel(T* out, const void* a, const void* b, bool sa, bool sb, int num, int64_t n) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, n) {
    store(out + i, bin<op, A>(operand<T>(a, sa ? 0 : i, num == 1), operand<T>(b, sb ? 0 : i, num == 2)));
  }
}

template <BinOp op>
__global__ void binary_vec4_kernel(float* out, const float* a, const float* b, bool sa, bool sb, int64_t n4) {
  GLIA_CUDA_LOOP(i, n4) {
    float4 x = load4(a, sa, i), y = load4(b, sb, i);
    reinterpret_cast<float4*>(out)[i] = make_float4(bin<op, float>(x.x, y.x), bin<op, float>(x.y, y.y),
                                                    bin<op, float>(x.z, y.z), bin<op, float>(x.w, y.w));
  }
}

template <UnOp op, class T>
__global__ void unary_flat_kernel(T* out, const T* x, int64_t n) {
  using A = typename Acc<T>::type;
  GLIA_CUDA_LOOP(i, n) store(out + i, un<op, A>(load(x + i)));
}

template <UnOp op>
__global__ void unary_vec4_kernel(float* out, const float* x, int64_t n4) {
  GLIA_CUDA_LOOP(i, n4) {
    float4 v = reinterpret_cast<const float4*>(x)[i];
    reinterpret_cast<float4*>(out)[i] =
        make_float4(un<op, float>(v.x), un<op, float>(v.y), un<op, float>(v.z), un<op, float>(v.w));
  }
}

/// The binary loop for element type T: flat (vectorized for float) when the operands allow.
template <BinOp op, class T>
void binary_run(const Strided<3>& it, int num, cudaStream_t s) {
  if (it.numel == 0) return;
  int kind[3];
  if (flat_kinds(it, kind)) {
    T* out = static_cast<T*>(it.data[0]);
    if constexpr (std::is_same_v<T, float>) {
      if (vec4_ok(it, kind)) {
        const float* a = static_cast<const float*>(it.data[1]);
        const float* b = static_cast<const float*>(it.data[2]);
        binary_vec4_kernel<op>
            <<<blocks_for(it.numel / 4), kThreads, 0, s>>>(out, a, b, kind[1] == 1, kind[2] == 1, it.numel / 4);
        return;
      }
    }
    binary_flat_kernel<op, T><<<blocks_for(it.numel), kThreads, 0, s>>>(out, it.data[1], it.data[2], kind[1] == 1,
                                                                        kind[2] == 1, num, it.numel);
    return;
  }
  binary_kernel<op, T><<<blocks_for(it.numel), kThreads, 0, s>>>(it, num);
}

template <UnOp op, class T>
void unary_run(const Strided<2>& it, cudaStream_t s) {
  if (it.numel == 0) return;
  int kind[2];
  if (flat_kinds(it, kind) && kind[1] == 0) {
    T* out = static_cast<T*>(it.data[0]);
    const T* x = static_cast<const T*>(it.data[1]);
    if constexpr (std::is_same_v<T, float>) {
      if (vec4_ok(it, kind)) {
        unary_vec4_kernel<op><<<blocks_for(it.numel / 4), kThreads, 0, s>>>(out, x, it.numel / 4);
        return;
      }
    }
    unary_flat_kernel<op, T><<<blocks_for(it.numel), kThreads, 0, s>>>(out, x, it.numel);
    return;
  }
  unary_kernel<op, T><<<blocks_for(it.numel), kThreads, 0, s>>>(it);
}

// The dtypes each op's CPU kernel can get: sub refuses bool (on the host, with the CPU's message),
// div's result is always floating (int32 / int64 kept from before; uint8 / bool never come).
template <BinOp op>
bool binary_t(const Strided<3>& it, Dt dt, int num, cudaStream_t s) {
  constexpr bool small_ints = op != BinOp::Div;
  constexpr bool bools = small_ints && op != BinOp::Sub;
  bool ok = true;
  visit(dt, [&](auto t) {
    using T = decltype(t);
    if constexpr ((std::is_same_v<T, uint8_t> && !small_ints) || (std::is_same_v<T, bool> && !bools))
      ok = false;
    else
      binary_run<op, T>(it, num, s);
  });
  return ok;
}

// neg refuses bool on the host; abs / relu / square take every dtype; the rest floating types only.
template <UnOp op>
bool unary_t(const Strided<2>& it, Dt dt, cudaStream_t s) {
  constexpr bool ints = op == UnOp::Neg || op == UnOp::Abs || op == UnOp::Relu || op == UnOp::Square;
  constexpr bool bools = ints && op != UnOp::Neg;
  bool ok = true;
  visit(dt, [&](auto t) {
    using T = decltype(t);
    if constexpr ((std::is_integral_v<T> && !std::is_same_v<T, bool> && !ints) || (std::is_same_v<T, bool> && !bools))
      ok = false;
    else
      unary_run<op, T>(it, s);
  });
  return ok;
}

__global__ void set_u64_pair_kernel(uint64_t* p, uint64_t a, uint64_t b) {
  p[0] = a;
  p[1] = b;
}

}  // namespace

void set_u64_pair(uint64_t* p, uint64_t a, uint64_t b, cudaStream_t s) { set_u64_pair_kernel<<<1, 1, 0, s>>>(p, a, b); }

void fill(const Strided<1>& it, Dt dt, double fv, int64_t iv, cudaStream_t s) {
  if (it.numel == 0) return;
  visit(dt, [&](auto t) { fill_kernel<decltype(t)><<<blocks_for(it.numel), kThreads, 0, s>>>(it, fv, iv); });
}

void copy(const Strided<2>& it, Dt out_dt, Dt in_dt, cudaStream_t s) {
  if (it.numel == 0) return;
  visit(out_dt, [&](auto d) {
    visit(in_dt,
          [&](auto src) { copy_kernel<decltype(d), decltype(src)><<<blocks_for(it.numel), kThreads, 0, s>>>(it); });
  });
}

bool binary(BinOp op, const Strided<3>& it, Dt dt, cudaStream_t s, int number) {
  switch (op) {
    case BinOp::Add:
      return binary_t<BinOp::Add>(it, dt, number, s);
    case BinOp::Sub:
      return binary_t<BinOp::Sub>(it, dt, number, s);
    case BinOp::Mul:
      return binary_t<BinOp::Mul>(it, dt, number, s);
    case BinOp::Div:
      return binary_t<BinOp::Div>(it, dt, number, s);
    case BinOp::Max:
      return binary_t<BinOp::Max>(it, dt, number, s);
    case BinOp::Min:
      return binary_t<BinOp::Min>(it, dt, number, s);
    case BinOp::Pow:
      return binary_t<BinOp::Pow>(it, dt, number, s);
  }
  return false;
}

bool unary(UnOp op, const Strided<2>& it, Dt dt, cudaStream_t s) {
  switch (op) {
    case UnOp::Neg:
      return unary_t<UnOp::Neg>(it, dt, s);
    case UnOp::Abs:
      return unary_t<UnOp::Abs>(it, dt, s);
    case UnOp::Exp:
      return unary_t<UnOp::Exp>(it, dt, s);
    case UnOp::Log:
      return unary_t<UnOp::Log>(it, dt, s);
    case UnOp::Sqrt:
      return unary_t<UnOp::Sqrt>(it, dt, s);
    case UnOp::Rsqrt:
      return unary_t<UnOp::Rsqrt>(it, dt, s);
    case UnOp::Relu:
      return unary_t<UnOp::Relu>(it, dt, s);
    case UnOp::Sigmoid:
      return unary_t<UnOp::Sigmoid>(it, dt, s);
    case UnOp::Tanh:
      return unary_t<UnOp::Tanh>(it, dt, s);
    case UnOp::Square:
      return unary_t<UnOp::Square>(it, dt, s);
    case UnOp::Reciprocal:
      return unary_t<UnOp::Reciprocal>(it, dt, s);
  }
  return false;
}

}  // namespace glia::cuda::launch
