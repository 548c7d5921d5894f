// CUDA emulator (tools/cuda-emu): what nvcc gives a .cu file, for g++. Force-included (-include) into
// each of the backend's .cu files after `<<<` / `>>>` are rewritten (see CMakeLists.txt) so that
//   kernel<<<grid, block, smem, stream>>>(args...)
// becomes a call of glia_emu::launch. Every GPU thread of a block is a fiber on the host: they run one
// after another and switch only at __syncthreads and warp shuffles, which wait for the whole block /
// warp as on a GPU (a barrier that not all threads reach is reported, not hung). Blocks run one after
// another. __shared__ variables are per host thread (one block runs at a time on it).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

namespace glia_emu {

/// One emulated GPU thread's built-in variables.
struct ThreadVars {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
/// The GPU thread the current host thread is running (null outside kernels).
extern thread_local const ThreadVars* t_vars;

inline const ThreadVars& vars() { return *t_vars; }

/// __syncthreads: waits until every thread of the block that has not exited gets here.
void sync_threads();
/// Warp shuffles on 64-bit payloads; mode 0: lane `arg` (of the width-wide segment), 1: lane + arg
/// (down), 2: lane - arg (up), 3: lane ^ arg.
uint64_t shuffle(uint64_t v, int mode, int arg, int width);

template <class T>
T shuffle_as(T v, int mode, int arg, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle(bits, mode, arg, width);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

struct Cfg {
  dim3 grid, block;
  size_t smem = 0;
  cudaStream_t stream = nullptr;
  std::source_location where;
  template <class G, class B, class S = size_t>
  Cfg(G g, B b, S shared = 0, cudaStream_t s = nullptr, std::source_location loc = std::source_location::current())
      : grid(g), block(b), smem(static_cast<size_t>(shared)), stream(s), where(loc) {}
};

/// Checks the launch (sizes, pointer arguments: `host_ptr` is the index of an argument pointing at
/// pageable host memory, or -1), then queues `body` to run as every thread of the grid on cfg.stream.
void launch(const Cfg& cfg, int host_ptr, std::function<void()> body);
/// Whether a kernel may read `p`: null, device memory or page-locked host memory.
bool device_readable(const void* p);

template <class... P>
struct Pending {
  void (*kernel)(P...);
  Cfg cfg;

  template <class... A>
  void operator|(std::tuple<A...>&& a) && {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    auto params = std::apply(
        [](auto&&... x) { return std::tuple<std::decay_t<P>...>(std::forward<decltype(x)>(x)...); }, std::move(a));
    int host_ptr = -1, k = 0;
    auto check = [&](const auto& p) {
      if (host_ptr < 0 && !pointer_ok(p)) host_ptr = k;
      ++k;
    };
    std::apply([&](const auto&... p) { (check(p), ...); }, params);
    launch(cfg, host_ptr, [kern = kernel, params = std::move(params)] { std::apply(kern, params); });
  }

 private:
  template <class T>
  static bool pointer_ok(const T& p) {
    if constexpr (std::is_pointer_v<T>)
      return device_readable(static_cast<const void*>(p));
    else
      return true;
  }
};

template <class... P>
Pending<P...> operator|(void (*kernel)(P...), Cfg cfg) {
  return Pending<P...>{kernel, std::move(cfg)};
}

template <class... A>
std::tuple<A&&...> args(A&&... a) {
  return std::tuple<A&&...>(std::forward<A>(a)...);
}

}  // namespace glia_emu

// The device-code vocabulary; the emulator's own sources (GLIA_EMU_NO_DEVICE_MACROS) use only the
// declarations above.
#ifndef GLIA_EMU_NO_DEVICE_MACROS
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define threadIdx (::glia_emu::vars().thread_idx)
#define blockIdx (::glia_emu::vars().block_idx)
#define blockDim (::glia_emu::vars().block_dim)
#define gridDim (::glia_emu::vars().grid_dim)
#define warpSize 32

// CUDA's math functions for float and double, unqualified as device code calls them.
using std::erf;
using std::exp;
using std::fabs;
using std::isfinite;
using std::isinf;
using std::isnan;
using std::log;
using std::sqrt;
using std::tanh;

inline void __syncthreads() { ::glia_emu::sync_threads(); }
template <class T>
T __shfl_sync(unsigned, T v, int src, int width = 32) {
  return ::glia_emu::shuffle_as(v, 0, src, width);
}
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  return ::glia_emu::shuffle_as(v, 1, static_cast<int>(delta), width);
}
template <class T>
T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
  return ::glia_emu::shuffle_as(v, 2, static_cast<int>(delta), width);
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
  return ::glia_emu::shuffle_as(v, 3, mask, width);
}

// Atomics: one host thread runs a whole grid, so a plain read-modify-write is atomic here.
template <class T>
T atomicAdd(T* p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
inline __half atomicAdd(__half* p, __half v) {
  __half old = *p;
  *p = __half(static_cast<float>(old) + static_cast<float>(v));
  return old;
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* p, __nv_bfloat16 v) {
  __nv_bfloat16 old = *p;
  *p = __nv_bfloat16(static_cast<float>(old) + static_cast<float>(v));
  return old;
}
template <class T>
T atomicCAS(T* p, T compare, T v) {
  T old = *p;
  if (old == compare) *p = v;
  return old;
}
template <class T>
T atomicMax(T* p, T v) {
  T old = *p;
  if (v > old) *p = v;
  return old;
}
template <class T>
T atomicMin(T* p, T v) {
  T old = *p;
  if (v < old) *p = v;
  return old;
}
template <class T>
T atomicExch(T* p, T v) {
  T old = *p;
  *p = v;
  return old;
}

// Correctly rounded arithmetic intrinsics: the emulated files are built with -ffp-contract=off, so
// each of these is one IEEE operation, as on the GPU.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline unsigned __umulhi(unsigned a, unsigned b) { return static_cast<unsigned>((static_cast<uint64_t>(a) * b) >> 32); }
inline float __int_as_float(int v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
inline int __float_as_int(float v) {
  int i;
  std::memcpy(&i, &v, 4);
  return i;
}

#endif  // GLIA_EMU_NO_DEVICE_MACROS
