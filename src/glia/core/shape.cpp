#include "glia/core/shape.h"

#include <sstream>

#include "glia/core/error.h"

namespace glia {

std::string to_string(IntList s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << to_string(s); }

int64_t numel(IntList shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Shape contiguous_strides(IntList shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return st;
}

int64_t wrap_axis(int64_t axis, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);  // a 0-d tensor takes axis 0 and -1
  GLIA_CHECK(axis >= -n && axis < n, ValueError, op, ": axis ", axis, " is out of range for a tensor of rank ", ndim,
             " (expected ", -n, " <= axis < ", n, ")");
  return axis < 0 ? axis + n : axis;
}

Shape broadcast_shapes(IntList a, IntList b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      throw ShapeError(detail::str(op, ": shapes ", to_string(a), " and ", to_string(b),
                                   " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")"));
    }
  }
  return out;
}

}  // namespace glia
