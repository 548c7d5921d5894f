// A number that mixes with tensors: `x * 2`, `x + 0.5`, `clamp(x, 0, 6)`.
#pragma once

#include <cstdint>
#include <ostream>
#include <type_traits>

#include "glia/core/dtype.h"

namespace glia {

class Scalar {
 public:
  enum class Kind : uint8_t { Float, Int, Bool };

  Scalar() : Scalar(0.0) {}
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Scalar(T v) : kind_(Kind::Float), d_(static_cast<double>(v)) {}  // NOLINT
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Scalar(T v) : kind_(Kind::Int), i_(static_cast<int64_t>(v)) {}  // NOLINT
  Scalar(bool v) : kind_(Kind::Bool), i_(v) {}                    // NOLINT
  Scalar(BFloat16 v) : Scalar(static_cast<float>(v)) {}           // NOLINT
  Scalar(Float16 v) : Scalar(static_cast<float>(v)) {}            // NOLINT

  Kind kind() const { return kind_; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_bool() const { return kind_ == Kind::Bool; }

  template <class T>
  T to() const {
    if constexpr (std::is_same_v<T, bool>)
      return kind_ == Kind::Float ? d_ != 0.0 : i_ != 0;
    else if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>)
      return T(static_cast<float>(to<double>()));
    else
      return kind_ == Kind::Float ? static_cast<T>(d_) : static_cast<T>(i_);
  }
  double to_double() const { return to<double>(); }
  int64_t to_int() const { return to<int64_t>(); }

  /// The dtype a tensor made from this number gets: float32, int64 or bool.
  DType default_dtype() const {
    return kind_ == Kind::Float ? DType::f32 : kind_ == Kind::Int ? DType::i64 : DType::b8;
  }

 private:
  Kind kind_;
  union {
    double d_;
    int64_t i_;
  };
};

std::ostream& operator<<(std::ostream& os, const Scalar& s);

}  // namespace glia
