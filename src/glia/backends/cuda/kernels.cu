// CUDA kernels of the element-wise ops, copies and sums. One generic strided loop: each thread
// turns a linear index of the output into per-operand offsets (the offset calculator), so any rank,
// view or broadcast works. Vectorized contiguous fast paths are a later optimization.
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

// --- element-wise math

template <class T>
__device__ __forceinline__ T ipow(T a, T b) {
  T r = 1;
  for (T i = 0; i < b; ++i) r *= a;
  return r;
}

template <BinOp op, class T>
__device__ __forceinline__ T bin(T a, T b) {
  if constexpr (op == BinOp::Add) return a + b;
  if constexpr (op == BinOp::Sub) return a - b;
  if constexpr (op == BinOp::Mul) return a * b;
  if constexpr (op == BinOp::Div) return a / b;
  if constexpr (op == BinOp::Max || op == BinOp::Min) {
    if constexpr (std::is_floating_point_v<T>)
      if (isnan(a) || isnan(b)) return a + b;  // NaN propagates, as on the CPU
    if constexpr (op == BinOp::Max) return a > b ? a : b;
    return a < b ? a : b;
  }
  if constexpr (op == BinOp::Pow) {
    if constexpr (std::is_floating_point_v<T>)
      return pow(a, b);
    else
      return ipow(a, b);
  }
  return T(0);
}

template <BinOp op, class T>
__global__ void binary_kernel(Strided<3> it) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < it.numel; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    offsets(it, i, off);
    T a = static_cast<const T*>(it.data[1])[off[1]];
    T b = static_cast<const T*>(it.data[2])[off[2]];
    static_cast<T*>(it.data[0])[off[0]] = bin<op, T>(a, b);
  }
}

template <UnOp op, class T>
__device__ __forceinline__ T un(T x) {
  if constexpr (op == UnOp::Neg) return -x;
  if constexpr (op == UnOp::Abs) return x < T(0) ? -x : x;
  if constexpr (op == UnOp::Relu) return x < T(0) ? T(0) : x;
  if constexpr (op == UnOp::Square) return x * x;
  if constexpr (std::is_floating_point_v<T>) {
    if constexpr (op == UnOp::Exp) return exp(x);
    if constexpr (op == UnOp::Log) return log(x);
    if constexpr (op == UnOp::Sqrt) return sqrt(x);
    if constexpr (op == UnOp::Rsqrt) return T(1) / sqrt(x);
    if constexpr (op == UnOp::Tanh) return tanh(x);
    if constexpr (op == UnOp::Reciprocal) return T(1) / x;
    if constexpr (op == UnOp::Sigmoid) {
      if (x >= T(0)) return T(1) / (T(1) + exp(-x));
      T e = exp(x);
      return e / (T(1) + e);
    }
  }
  return x;
}

template <UnOp op, class T>
__global__ void unary_kernel(Strided<2> it) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < it.numel; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    offsets(it, i, off);
    static_cast<T*>(it.data[0])[off[0]] = un<op, T>(static_cast<const T*>(it.data[1])[off[1]]);
  }
}

template <BinOp op>
bool binary_t(const Strided<3>& it, Dt dt, cudaStream_t s) {
  int nb = blocks_for(it.numel);
  switch (dt) {
    case F32:
      binary_kernel<op, float><<<nb, kThreads, 0, s>>>(it);
      return true;
    case F64:
      binary_kernel<op, double><<<nb, kThreads, 0, s>>>(it);
      return true;
    case I32:
      binary_kernel<op, int32_t><<<nb, kThreads, 0, s>>>(it);
      return true;
    case I64:
      binary_kernel<op, int64_t><<<nb, kThreads, 0, s>>>(it);
      return true;
    default:
      return false;
  }
}

template <UnOp op>
bool unary_t(const Strided<2>& it, Dt dt, cudaStream_t s) {
  constexpr bool int_ok = op == UnOp::Neg || op == UnOp::Abs || op == UnOp::Relu || op == UnOp::Square;
  int nb = blocks_for(it.numel);
  switch (dt) {
    case F32:
      unary_kernel<op, float><<<nb, kThreads, 0, s>>>(it);
      return true;
    case F64:
      unary_kernel<op, double><<<nb, kThreads, 0, s>>>(it);
      return true;
    case I32:
      if constexpr (int_ok) {
        unary_kernel<op, int32_t><<<nb, kThreads, 0, s>>>(it);
        return true;
      }
      return false;
    case I64:
      if constexpr (int_ok) {
        unary_kernel<op, int64_t><<<nb, kThreads, 0, s>>>(it);
        return true;
      }
      return false;
    default:
      return false;
  }
}

// --- sums: one block per output row, a tree in shared memory.

template <class T, class A, class O>
__global__ void sum_rows_kernel(const T* x, O* out, int64_t outer, int64_t R) {
  __shared__ A buf[kThreads];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    A acc = A(0);
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) acc += static_cast<A>(load(x + o * R + r));
    buf[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
      if (threadIdx.x < w) buf[threadIdx.x] += buf[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) store(out + o, buf[0]);
    __syncthreads();
  }
}

}  // namespace

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

bool binary(BinOp op, const Strided<3>& it, Dt dt, cudaStream_t s) {
  if (it.numel == 0) return dt == F32 || dt == F64 || dt == I32 || dt == I64;
  switch (op) {
    case BinOp::Add:
      return binary_t<BinOp::Add>(it, dt, s);
    case BinOp::Sub:
      return binary_t<BinOp::Sub>(it, dt, s);
    case BinOp::Mul:
      return binary_t<BinOp::Mul>(it, dt, s);
    case BinOp::Div:
      return binary_t<BinOp::Div>(it, dt, s);
    case BinOp::Max:
      return binary_t<BinOp::Max>(it, dt, s);
    case BinOp::Min:
      return binary_t<BinOp::Min>(it, dt, s);
    case BinOp::Pow:
      return binary_t<BinOp::Pow>(it, dt, s);
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

bool sum_rows(const void* x, void* out, Dt in_dt, Dt out_dt, int64_t outer, int64_t R, cudaStream_t s) {
  if (outer == 0) return true;
  int nb = static_cast<int>(outer < 65535 ? outer : 65535);
  auto run = [&](auto t, auto a, auto o) {
    using T = decltype(t);
    using A = decltype(a);
    using O = decltype(o);
    sum_rows_kernel<T, A, O><<<nb, kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<O*>(out), outer, R);
  };
  if (in_dt == F32 && out_dt == F32) return run(float{}, float{}, float{}), true;
  if (in_dt == F64 && out_dt == F64) return run(double{}, double{}, double{}), true;
  if (in_dt == BF16 && out_dt == BF16) return run(bf16_t{}, float{}, bf16_t{}), true;
  if (in_dt == F16 && out_dt == F16) return run(f16_t{}, float{}, f16_t{}), true;
  if (in_dt == BF16 && out_dt == F32) return run(bf16_t{}, float{}, float{}), true;
  if (in_dt == F16 && out_dt == F32) return run(f16_t{}, float{}, float{}), true;
  if (out_dt == I64) {
    if (in_dt == I32) return run(int32_t{}, int64_t{}, int64_t{}), true;
    if (in_dt == I64) return run(int64_t{}, int64_t{}, int64_t{}), true;
    if (in_dt == U8) return run(uint8_t{}, int64_t{}, int64_t{}), true;
    if (in_dt == B8) return run(bool{}, int64_t{}, int64_t{}), true;
  }
  return false;
}

}  // namespace glia::cuda::launch
