// Element types: the enum, the 16-bit float types, traits and promotion.
#pragma once

#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <type_traits>

#include "glia/core/error.h"

namespace glia {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u8, b8 };
inline constexpr int kNumDTypes = 8;

inline constexpr DType float32 = DType::f32;
inline constexpr DType float64 = DType::f64;
inline constexpr DType bfloat16 = DType::bf16;
inline constexpr DType float16 = DType::f16;
inline constexpr DType int32 = DType::i32;
inline constexpr DType int64 = DType::i64;
inline constexpr DType uint8 = DType::u8;
inline constexpr DType bool_ = DType::b8;

/// bfloat16: the top half of a float32; converts with round-to-nearest-even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float f) : bits(from_float(f)) {}  // NOLINT: implicit like a number
  operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
  }
};

/// IEEE binary16, converted in software (round-to-nearest-even).
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  Float16(float f) : bits(from_float(f)) {}  // NOLINT
  operator float() const { return to_float(bits); }
  static float to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
      if (man == 0) {
        u = sign;
      } else {  // subnormal: normalize
        int e = -1;
        do {
          ++e;
          man <<= 1;
        } while ((man & 0x400u) == 0);
        u = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
      }
    } else if (exp == 31) {
      u = sign | 0x7f800000u | (man << 13);
    } else {
      u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
    if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow to inf
    if (a < 0x38800000u) {                                               // subnormal or zero
      if (a < 0x33000000u) return static_cast<uint16_t>(sign);
      uint32_t e = a >> 23;
      uint32_t m = (a & 0x7fffffu) | 0x800000u;
      uint32_t shift = 126 - e;  // 14..24
      uint32_t half = m >> shift;
      uint32_t rem = m & ((1u << shift) - 1);
      uint32_t mid = 1u << (shift - 1);
      if (rem > mid || (rem == mid && (half & 1u))) ++half;
      return static_cast<uint16_t>(sign | half);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round to nearest even
    uint32_t h = ((r >> 23) - 112) << 10 | ((r >> 13) & 0x3ffu);
    return static_cast<uint16_t>(sign | h);
  }
};

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> : std::integral_constant<DType, DType::f32> {};
template <>
struct dtype_of<double> : std::integral_constant<DType, DType::f64> {};
template <>
struct dtype_of<BFloat16> : std::integral_constant<DType, DType::bf16> {};
template <>
struct dtype_of<Float16> : std::integral_constant<DType, DType::f16> {};
template <>
struct dtype_of<int32_t> : std::integral_constant<DType, DType::i32> {};
template <>
struct dtype_of<int64_t> : std::integral_constant<DType, DType::i64> {};
template <>
struct dtype_of<uint8_t> : std::integral_constant<DType, DType::u8> {};
template <>
struct dtype_of<bool> : std::integral_constant<DType, DType::b8> {};
template <class T>
inline constexpr DType dtype_v = dtype_of<T>::value;

constexpr size_t itemsize(DType t) {
  switch (t) {
    case DType::f64:
    case DType::i64:
      return 8;
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::bf16:
    case DType::f16:
      return 2;
    case DType::u8:
    case DType::b8:
      return 1;
  }
  return 0;
}
constexpr bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}
/// bfloat16 or float16.
constexpr bool is_16bit(DType t) { return t == DType::bf16 || t == DType::f16; }
constexpr bool is_integral(DType t, bool include_bool = false) {
  return t == DType::i32 || t == DType::i64 || t == DType::u8 || (include_bool && t == DType::b8);
}

const char* name(DType t);
std::ostream& operator<<(std::ostream& os, DType t);
/// Parses "float32", "f32", "int64", ...; throws ValueError for unknown names.
DType dtype_from_name(const std::string& s);

/// The result type of combining a and b, as NumPy/PyTorch promote tensors.
DType promote_types(DType a, DType b);

/// Arithmetic type used to compute on T: float for the 16-bit floats.
template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>, float, T>;

/// Calls f.template operator()<T>() with T the C++ type of dtype t.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32:
      return f.template operator()<float>();
    case DType::f64:
      return f.template operator()<double>();
    case DType::bf16:
      return f.template operator()<BFloat16>();
    case DType::f16:
      return f.template operator()<Float16>();
    case DType::i32:
      return f.template operator()<int32_t>();
    case DType::i64:
      return f.template operator()<int64_t>();
    case DType::u8:
      return f.template operator()<uint8_t>();
    case DType::b8:
      return f.template operator()<bool>();
  }
  throw InternalError("visit_dtype: bad dtype");
}

/// Like visit_dtype but only for the floating types; others throw DTypeError naming `op`.
template <class F>
decltype(auto) visit_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32:
      return f.template operator()<float>();
    case DType::f64:
      return f.template operator()<double>();
    case DType::bf16:
      return f.template operator()<BFloat16>();
    case DType::f16:
      return f.template operator()<Float16>();
    default:
      throw DTypeError(detail::str(op, ": expected a floating-point tensor, got ", name(t)));
  }
}

}  // namespace glia
