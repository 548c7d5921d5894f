// Device-side building blocks shared by the .cu files of the CUDA backend: launch sizes, the
// offset calculator of strided loops, 16-bit float storage types, loads/stores through the
// accumulation type, and a dtype switch. Included only by .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "launch.h"

namespace glia::cuda::launch {
namespace {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 * 8 ? (b < 1 ? 1 : b) : 65535 * 8);
}

template <int N>
__device__ __forceinline__ void offsets(const Strided<N>& it, int64_t i, int64_t (&off)[N]) {
  glia::detail::loop_offsets(it, i, off);
}

// Storage types: 16-bit floats are raw bits here and converted through float.
struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

template <class T>
struct Acc {
  using type = T;
};
template <>
struct Acc<bf16_t> {
  using type = float;
};
template <>
struct Acc<f16_t> {
  using type = float;
};

template <class T>
__device__ __forceinline__ typename Acc<T>::type load(const T* p) {
  return *p;
}
template <>
__device__ __forceinline__ float load(const bf16_t* p) {
  return __bfloat162float(__ushort_as_bfloat16(p->bits));
}
template <>
__device__ __forceinline__ float load(const f16_t* p) {
  return __half2float(__ushort_as_half(p->bits));
}

template <class T, class V>
__device__ __forceinline__ void store(T* p, V v) {
  if constexpr (std::is_same_v<T, bool>) {
    *p = v != V(0);
  } else if constexpr (std::is_same_v<T, bf16_t>) {
    p->bits = __bfloat16_as_ushort(__float2bfloat16_rn(static_cast<float>(v)));
  } else if constexpr (std::is_same_v<T, f16_t>) {
    p->bits = __half_as_ushort(__float2half_rn(static_cast<float>(v)));
  } else {
    *p = static_cast<T>(v);
  }
}

template <class F>
inline void visit(Dt dt, F&& f) {
  switch (dt) {
    case F32:
      f(float{});
      break;
    case F64:
      f(double{});
      break;
    case BF16:
      f(bf16_t{});
      break;
    case F16:
      f(f16_t{});
      break;
    case I32:
      f(int32_t{});
      break;
    case I64:
      f(int64_t{});
      break;
    case U8:
      f(uint8_t{});
      break;
    case B8:
      f(bool{});
      break;
  }
}

/// f(T{}) for the floating dtypes only; false (f not called) for the others.
template <class F>
inline bool visit_floating(Dt dt, F&& f) {
  switch (dt) {
    case F32:
      f(float{});
      return true;
    case F64:
      f(double{});
      return true;
    case BF16:
      f(bf16_t{});
      return true;
    case F16:
      f(f16_t{});
      return true;
    default:
      return false;
  }
}

/// Grid-stride loop over [0, n).
#define GLIA_CUDA_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

}  // namespace
}  // namespace glia::cuda::launch
