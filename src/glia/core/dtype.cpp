#include "glia/core/dtype.h"

#include <algorithm>

#include "glia/core/scalar.h"

namespace glia {

const char* name(DType t) {
  switch (t) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::bf16:
      return "bfloat16";
    case DType::f16:
      return "float16";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
    case DType::u8:
      return "uint8";
    case DType::b8:
      return "bool";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, DType t) { return os << name(t); }

DType dtype_from_name(const std::string& s) {
  static const std::pair<const char*, DType> names[] = {
      {"float32", DType::f32}, {"f32", DType::f32},    {"float", DType::f32},     {"float64", DType::f64},
      {"f64", DType::f64},     {"double", DType::f64}, {"bfloat16", DType::bf16}, {"bf16", DType::bf16},
      {"float16", DType::f16}, {"f16", DType::f16},    {"half", DType::f16},      {"int32", DType::i32},
      {"i32", DType::i32},     {"int64", DType::i64},  {"i64", DType::i64},       {"uint8", DType::u8},
      {"u8", DType::u8},       {"bool", DType::b8},    {"b8", DType::b8}};
  for (auto& [n, t] : names)
    if (s == n) return t;
  throw ValueError("unknown dtype '" + s +
                   "': expected one of float32, float64, bfloat16, float16, int32, int64, "
                   "uint8, bool");
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  auto rank = [](DType t) {
    switch (t) {
      case DType::b8:
        return 0;
      case DType::u8:
        return 1;
      case DType::i32:
        return 2;
      case DType::i64:
        return 3;
      case DType::f16:
        return 4;
      case DType::bf16:
        return 5;
      case DType::f32:
        return 6;
      case DType::f64:
        return 7;
    }
    return 0;
  };
  // bfloat16 with float16 has no exact common 16-bit type; PyTorch gives float32.
  if ((a == DType::bf16 && b == DType::f16) || (a == DType::f16 && b == DType::bf16)) return DType::f32;
  return rank(a) > rank(b) ? a : b;
}

std::ostream& operator<<(std::ostream& os, const Scalar& s) {
  if (s.is_float()) return os << s.to<double>();
  if (s.is_bool()) return os << (s.to<bool>() ? "true" : "false");
  return os << s.to<int64_t>();
}

}  // namespace glia
