// Shapes and strides, and the helpers every op needs: element counts,
// contiguous strides, axis wrapping, broadcasting.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "glia/core/small_vector.h"

namespace glia {

using Shape = SmallVec<int64_t, 6>;

/// A borrowed list of integers for function arguments (shapes, dims): takes a brace
/// list `{2, 3}`, a Shape, a std::vector or a span. Like PyTorch's IntArrayRef it does
/// not own its elements: use it for parameters, not for variables.
class IntList {
 public:
  constexpr IntList() = default;
  constexpr IntList(const int64_t* data, size_t size) : data_(data), size_(size) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"  // intended: the list outlives the call
#endif
  constexpr IntList(std::initializer_list<int64_t> il) : data_(il.begin()), size_(il.size()) {}  // NOLINT
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  IntList(const Shape& s) : data_(s.data()), size_(s.size()) {}                        // NOLINT
  IntList(const std::vector<int64_t>& v) : data_(v.data()), size_(v.size()) {}         // NOLINT
  constexpr IntList(std::span<const int64_t> s) : data_(s.data()), size_(s.size()) {}  // NOLINT
  template <size_t N>
  constexpr IntList(const std::array<int64_t, N>& a) : data_(a.data()), size_(N) {}  // NOLINT

  constexpr const int64_t* data() const { return data_; }
  constexpr size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr const int64_t* begin() const { return data_; }
  constexpr const int64_t* end() const { return data_ + size_; }
  constexpr int64_t operator[](size_t i) const { return data_[i]; }
  constexpr int64_t back() const { return data_[size_ - 1]; }
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  operator std::span<const int64_t>() const { return {data_, size_}; }

 private:
  const int64_t* data_ = nullptr;
  size_t size_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Shape& s);
std::string to_string(IntList s);

int64_t numel(IntList shape);
/// Row-major strides (in elements) for a shape.
Shape contiguous_strides(IntList shape);

/// Maps a possibly negative axis into [0, ndim); throws ValueError naming `op` when out of range.
int64_t wrap_axis(int64_t axis, int64_t ndim, const char* op);

/// The NumPy broadcast of two shapes; throws ShapeError naming `op` and both shapes.
Shape broadcast_shapes(IntList a, IntList b, const char* op);

}  // namespace glia
