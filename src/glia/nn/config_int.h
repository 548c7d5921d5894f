// Integers read from a config (a layer's, a model's, a schedule's, a checkpoint's metadata). JSON
// files written by Python may hold 64.0 for 64; nlohmann converts any float to an integer with a
// plain cast, which is undefined for values out of range (2e103) and truncates fractions, so every
// integer a config gives goes through here instead of get<int64_t>().
#pragma once

#include <cmath>
#include <cstdint>

#include "glia/core/error.h"
#include "glia/nn/config.h"

namespace glia::detail {

/// v as an int64: an integer number, or a float with an integral value in int64's range. Anything
/// else is a ValueError naming `what` and the value.
inline int64_t config_int(const Config& v, const char* what) {
  if (v.is_number_integer()) {
    GLIA_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), ValueError, what,
               ": expected an integer, got ", v.dump(), " (too large)");
    return v.get<int64_t>();
  }
  double d = v.is_number_float() ? v.get<double>() : 0.5;
  GLIA_CHECK(v.is_number_float() && d == std::floor(d) && d >= -9.2233720368547758e18 && d < 9.2233720368547758e18,
             ValueError, what, ": expected an integer, got ", v.dump());
  return static_cast<int64_t>(d);
}

}  // namespace glia::detail
