// Division by a fixed divisor with a multiply-high, for index arithmetic in GPU kernels (a 64-bit
// division is a long subroutine there). Host and device code (nvcc compiles it as C++17); kept
// apart from the CUDA headers so that it is tested on any machine.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GLIA_HOST_DEVICE __host__ __device__
#else
#define GLIA_HOST_DEVICE
#endif

namespace glia::detail {

/// n / d for a fixed d (1 <= d < 2^31) and any n < 2^31 by one multiply-high, an add and a shift
/// (Granlund & Montgomery, as PyTorch's IntDivider): with s = ceil(log2 d),
/// magic = floor(2^32 (2^s - d) / d) + 1 (< 2^32 because 2^s <= 2d - 2 for d > 1), and
/// n / d = (mulhi(n, magic) + n) >> s, where the sum stays below 2^32 because n < 2^31.
struct FastDiv {
  uint32_t magic = 1, shift = 0;
};

inline FastDiv fast_div(uint32_t d) {
  FastDiv f;
  while (f.shift < 32 && (uint64_t(1) << f.shift) < d) ++f.shift;
  f.magic = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << f.shift) - d)) / d + 1);
  return f;
}

GLIA_HOST_DEVICE inline uint32_t fast_quot(uint32_t n, FastDiv f) {
#if defined(__CUDA_ARCH__)
  uint32_t t = __umulhi(n, f.magic);
#else
  uint32_t t = static_cast<uint32_t>((static_cast<uint64_t>(n) * f.magic) >> 32);
#endif
  return (t + n) >> f.shift;
}

}  // namespace glia::detail
