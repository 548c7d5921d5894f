// The CUDA emulator's own interface between its pieces (runtime.cpp, cublas.cpp, cudnn.cpp):
// how work is queued on a stream. Device memory is host memory here and every stream runs its
// work on the calling thread, at once, except while a stream is being captured into a CUDA Graph:
// then the work is recorded and runs at each cudaGraphLaunch.
#pragma once

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

}  // namespace glia_emu
