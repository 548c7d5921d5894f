// A device held in an op's attrs as two integers (type and index), for ops whose output is made on
// a device their inputs do not decide: to_device, and random draws with no inputs.
#pragma once

#include "glia/ops/op.h"

namespace glia::detail {

inline void set_device_attrs(Attrs& a, const char* type_key, const char* index_key, Device d) {
  a.set(type_key, static_cast<int64_t>(d.type));
  a.set(index_key, static_cast<int64_t>(d.index));
}

inline Device device_from_attrs(const Attrs& a, const char* type_key, const char* index_key) {
  return {static_cast<DeviceType>(a.get<int64_t>(type_key)), static_cast<int16_t>(a.get<int64_t>(index_key))};
}

}  // namespace glia::detail
