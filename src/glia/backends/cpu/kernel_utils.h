// Helpers shared by CPU kernels: typed element-wise maps over the broadcast
// loop, with the float32 contiguous runs handed to the SIMD loops.
#pragma once

#include <cstring>
#include <type_traits>

#include "glia/backends/cpu/loops.h"
#include "glia/backends/cpu/simd.h"
#include "glia/ops/op.h"

namespace glia::cpu {

/// Slots of scratch(): buffers a kernel uses at the same time need different slots.
inline constexpr int kScratchSlots = 4;
/// A buffer of at least `bytes` bytes for a kernel's temporaries (oneDNN scratchpads, reordered
/// weights), kept per thread and slot and reused, so that kernels run again without allocating.
/// Valid until the next call with the same slot on this thread.
void* scratch(int slot, size_t bytes);

/// Matrix products with fewer multiply-adds than this run on one thread (GLIA_SERIAL_GEMM
/// overrides it): waking the second core and moving its half of the result between the cores'
/// caches costs more than it saves.
int64_t serial_gemm_limit();

/// Runs f with OpenMP limited to one thread when `serial` (the previous limit restored after).
template <class F>
void with_threads(bool serial, F&& f) {
  if (!serial) {
    f();
    return;
  }
  int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  try {
    f();
  } catch (...) {
    omp_set_num_threads(prev);
    throw;
  }
  omp_set_num_threads(prev);
}

/// dst[...] = src[...] converted to dst's dtype; shapes must broadcast src -> dst.
void cast_copy(const Tensor& src, const Tensor& dst);

/// t in dtype d: t itself, or a converted copy (no autograd).
Tensor as_dtype(const Tensor& t, DType d);

/// out = f(x) element-wise, computing in acc_t<T>; x is converted to out's dtype first.
/// When T is float and the run is contiguous, `simd_op` (if given) does the work.
template <class T, class F>
void map_unary(const Tensor& x_in, const Tensor& out, F f, const simd::Unary* simd_op = nullptr, float p0 = 0.f,
               float p1 = 0.f, int64_t grain = 32768) {
  Tensor x = as_dtype(x_in, out.dtype());
  const Tensor* ops[2] = {&out, &x};
  Loop L = make_loop(ops, out.shape());
  parallel_loop(
      L,
      [&](char** p, const int64_t* s, int64_t n) {
        if constexpr (std::is_same_v<T, float>) {
          if (simd_op && s[0] == 4 && s[1] == 4) {
            simd::unary_f32(*simd_op, reinterpret_cast<const float*>(p[1]), reinterpret_cast<float*>(p[0]), n, p0, p1);
            return;
          }
        }
        char* o = p[0];
        const char* a = p[1];
        for (int64_t i = 0; i < n; ++i, o += s[0], a += s[1])
          *reinterpret_cast<T*>(o) = static_cast<T>(f(static_cast<acc_t<T>>(*reinterpret_cast<const T*>(a))));
      },
      grain);
}

/// out = f(a, b) element-wise with broadcasting; a and b are converted to `compute` dtype
/// (T) first, and the result is stored as out's dtype (U).
template <class T, class U, class F>
void map_binary(const Tensor& a_in, const Tensor& b_in, const Tensor& out, F f, const simd::Binary* simd_op = nullptr) {
  if constexpr (!std::is_same_v<acc_t<T>, T> && std::is_same_v<U, T>) {
    // In arithmetic, a number (0-d tensor of another dtype) with a 16-bit tensor is used in float,
    // not rounded to 16 bits first: x / 1e5 must not become x / inf in float16. PyTorch does the
    // same; it compares in the 16-bit type, as comparisons here still do.
    auto number = [](const Tensor& t) { return t.dim() == 0 && t.dtype() != dtype_v<T>; };
    if (number(a_in) != number(b_in)) {
      bool left = number(a_in);
      const acc_t<T> s = (left ? a_in : b_in).item().template to<acc_t<T>>();
      Tensor x = as_dtype(left ? b_in : a_in, dtype_v<T>);
      const Tensor* ops[2] = {&out, &x};
      Loop L = make_loop(ops, out.shape());
      parallel_loop(L, [&](char** p, const int64_t* st, int64_t n) {
        char* o = p[0];
        const char* v = p[1];
        for (int64_t i = 0; i < n; ++i, o += st[0], v += st[1]) {
          auto e = static_cast<acc_t<T>>(*reinterpret_cast<const T*>(v));
          *reinterpret_cast<U*>(o) = static_cast<U>(left ? f(s, e) : f(e, s));
        }
      });
      return;
    }
  }
  Tensor a = as_dtype(a_in, dtype_v<T>);
  Tensor b = as_dtype(b_in, dtype_v<T>);
  const Tensor* ops[3] = {&out, &a, &b};
  Loop L = make_loop(ops, out.shape());
  parallel_loop(L, [&](char** p, const int64_t* s, int64_t n) {
    if constexpr (std::is_same_v<T, float> && std::is_same_v<U, float>) {
      if (simd_op && s[0] == 4 && (s[1] == 4 || s[1] == 0) && (s[2] == 4 || s[2] == 0) && !(s[1] == 0 && s[2] == 0)) {
        simd::Mode m = s[1] == 0 ? simd::Mode::SV : s[2] == 0 ? simd::Mode::VS : simd::Mode::VV;
        simd::binary_f32(*simd_op, m, reinterpret_cast<const float*>(p[1]), reinterpret_cast<const float*>(p[2]),
                         reinterpret_cast<float*>(p[0]), n);
        return;
      }
    }
    char* o = p[0];
    const char* x = p[1];
    const char* y = p[2];
    for (int64_t i = 0; i < n; ++i, o += s[0], x += s[1], y += s[2])
      *reinterpret_cast<U*>(o) = static_cast<U>(f(static_cast<acc_t<T>>(*reinterpret_cast<const T*>(x)),
                                                  static_cast<acc_t<T>>(*reinterpret_cast<const T*>(y))));
  });
}

}  // namespace glia::cpu
