// Where a tensor lives. Every kernel is looked up by device type.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace glia {

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };
inline constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int16_t index = 0;

  static constexpr Device cpu() { return {DeviceType::CPU, 0}; }
  static constexpr Device cuda(int i = 0) { return {DeviceType::CUDA, static_cast<int16_t>(i)}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  /// "cpu", "cuda" (= "cuda:0") or "cuda:N"; anything else is a ValueError.
  static Device parse(const std::string& s);
  friend bool operator==(Device a, Device b) { return a.type == b.type && a.index == b.index; }
  friend bool operator!=(Device a, Device b) { return !(a == b); }
};

std::ostream& operator<<(std::ostream& os, Device d);

}  // namespace glia
