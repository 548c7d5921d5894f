// The CUDA emulator's own interface between its pieces (runtime.cpp, cublas.cpp, cudnn.cpp):
// how work is queued on a stream. Device memory is host memory here and every stream runs its
// work on the calling thread, at once, except while a stream is being captured into a CUDA Graph:
// then the work is recorded and runs at each cudaGraphLaunch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <functional>

namespace glia_emu {

/// Runs `work` now, or records it into the graph being captured on `s`.
void enqueue(cudaStream_t s, std::function<void()> work);

/// True when `p` lies in memory from cudaMalloc (device memory), false for host memory.
bool is_device_pointer(const void* p);

/// f with 10 mantissa bits, to nearest (ties away from zero), as tensor cores take float32 in TF32.
inline float to_tf32(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7f800000u) == 0x7f800000u) return f;  // inf, NaN
  x = (x + 0x1000u) & 0xffffe000u;
  std::memcpy(&f, &x, 4);
  return f;
}

/// The element types of cuBLAS's and cuDNN's operands (each library maps its own type enum here).
enum class Elem { F32, F64, F16, BF16 };
/// How float32 operands are rounded before the products (what a compute or math type takes in).
enum class Round { None, Tf32, Half, Bf16 };

/// Element i of p, as a double (float32 rounded by r first).
inline double load_elem(const void* p, Elem t, int64_t i, Round r = Round::None) {
  switch (t) {
    case Elem::F64:
      return static_cast<const double*>(p)[i];
    case Elem::F16:
      return f16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    case Elem::BF16:
      return bf16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    case Elem::F32:
      break;
  }
  float f = static_cast<const float*>(p)[i];
  return r == Round::Tf32   ? to_tf32(f)
         : r == Round::Half ? f16_bits_to_f32(f32_to_f16_bits(f))
         : r == Round::Bf16 ? bf16_bits_to_f32(f32_to_bf16_bits(f))
                            : f;
}

/// p[i] = v in p's type (16-bit types through float, as a float compute type rounds).
inline void store_elem(void* p, Elem t, int64_t i, double v) {
  switch (t) {
    case Elem::F64:
      static_cast<double*>(p)[i] = v;
      return;
    case Elem::F16:
      static_cast<uint16_t*>(p)[i] = f32_to_f16_bits(static_cast<float>(v));
      return;
    case Elem::BF16:
      static_cast<uint16_t*>(p)[i] = f32_to_bf16_bits(static_cast<float>(v));
      return;
    case Elem::F32:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      return;
  }
}

}  // namespace glia_emu
