// CUDA emulator (tools/cuda-emu): stand-in for CUDA's cuda_bf16.h: __nv_bfloat16 as bfloat16 bits
// with the conversions Glia's kernels use (round to nearest even; NaN stays a quiet NaN).
#pragma once

#include <cstdint>
#include <cstring>

namespace glia_emu {

inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bf16_bits_to_f32(uint16_t b) {
  uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace glia_emu

struct __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  explicit __nv_bfloat16(float f) : __x(glia_emu::f32_to_bf16_bits(f)) {}
  operator float() const { return glia_emu::bf16_bits_to_f32(__x); }
};

inline float __bfloat162float(__nv_bfloat16 h) { return glia_emu::bf16_bits_to_f32(h.__x); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short bits) {
  __nv_bfloat16 h;
  h.__x = bits;
  return h;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
