// Helpers for the op tests: inputs in several memory layouts, and element
// access that reads raw strides, so that references do not depend on the
// loops and copies under test.
#pragma once

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "testing.h"

namespace glia::testing {

enum class Layout { Contiguous, Permuted, Strided };
inline constexpr Layout kLayouts[] = {Layout::Contiguous, Layout::Permuted, Layout::Strided};

inline const char* layout_name(Layout l) {
  return l == Layout::Contiguous ? "contiguous" : l == Layout::Permuted ? "permuted" : "strided";
}

/// A random tensor of `shape` whose memory is row-major (Contiguous), reversed-dims
/// (Permuted: a permute() of a contiguous tensor) or every other element with an offset
/// (Strided: slices with step 2 starting at 1).
inline Tensor make_input(const std::vector<int64_t>& shape, Layout layout, double lo = -1.0, double hi = 1.0,
                         DType dtype = DType::f64) {
  size_t n = shape.size();
  if (layout == Layout::Contiguous || n == 0) return uniform(IntList(shape), lo, hi, dtype);
  if (layout == Layout::Permuted) {
    std::vector<int64_t> rev(shape.rbegin(), shape.rend()), perm(n);
    for (size_t i = 0; i < n; ++i) perm[i] = static_cast<int64_t>(n - 1 - i);
    return uniform(IntList(rev), lo, hi, dtype).permute(IntList(perm));
  }
  std::vector<int64_t> big;
  for (int64_t d : shape) big.push_back(2 * d + 1);
  Tensor t = uniform(IntList(big), lo, hi, dtype);
  for (size_t d = 0; d < n; ++d) t = t.slice(static_cast<int64_t>(d), 1, 2 * shape[d] + 1, 2);
  return t;
}

/// The NumPy broadcast of two shapes, written out here (independent of glia::broadcast_shapes).
inline std::vector<int64_t> bshape(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t n = std::max(a.size(), b.size());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    out[i] = da == 1 ? db : da;
  }
  return out;
}

inline std::vector<int64_t> vshape(const Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

/// Elements of t broadcast to `shape`, row-major, read through t's strides one by one.
inline std::vector<double> read_as(const Tensor& t, const std::vector<int64_t>& shape) {
  std::vector<double> v;
  v.reserve(static_cast<size_t>(numel(IntList(shape))));
  for_each_index(IntList(shape), [&](const std::vector<int64_t>& idx) { v.push_back(at_broadcast(t, idx)); });
  return v;
}
inline std::vector<double> read(const Tensor& t) { return read_as(t, vshape(t)); }

/// Applies f to the broadcast inputs element by element, in double.
inline std::vector<double> ref_map(const std::vector<Tensor>& ins, const std::vector<int64_t>& shape,
                                   const std::function<double(const std::vector<double>&)>& f) {
  std::vector<std::vector<double>> cols;
  for (auto& t : ins) cols.push_back(read_as(t, shape));
  std::vector<double> out(static_cast<size_t>(numel(IntList(shape))));
  std::vector<double> args(ins.size());
  for (size_t i = 0; i < out.size(); ++i) {
    for (size_t k = 0; k < ins.size(); ++k) args[k] = cols[k][i];
    out[i] = f(args);
  }
  return out;
}

/// |got - want| <= atol + rtol |want| element-wise; NaNs and infinities must match exactly.
inline ::testing::AssertionResult near(const std::vector<double>& got, const std::vector<double>& want, double rtol,
                                       double atol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs expected " << want.size();
  int bad = 0;
  std::ostringstream msg;
  for (size_t i = 0; i < got.size(); ++i) {
    double a = got[i], e = want[i];
    bool ok = (std::isnan(a) && std::isnan(e)) || a == e ||
              (std::isfinite(a) && std::isfinite(e) && std::abs(a - e) <= atol + rtol * std::abs(e));
    if (!ok && bad++ < 5) msg << "\n  [" << i << "] got " << a << ", expected " << e;
  }
  if (bad) return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements differ:" << msg.str();
  return ::testing::AssertionSuccess();
}

/// Shape and element check of t against a reference computed in double.
inline ::testing::AssertionResult matches(const Tensor& t, const std::vector<int64_t>& shape,
                                          const std::vector<double>& want, double rtol, double atol) {
  if (vshape(t) != shape)
    return ::testing::AssertionFailure() << "shape " << to_string(t.shape()) << ", expected " << to_string(shape);
  return near(read(t), want, rtol, atol);
}

/// Default comparison tolerances for results of dtype d computed from inputs of dtype d.
inline double rtol_for(DType d) {
  switch (d) {
    case DType::f64:
      return 1e-12;
    case DType::f32:
      return 2e-6;
    case DType::f16:
      return 2e-3;
    case DType::bf16:
      return 1e-2;
    default:
      return 0;
  }
}
inline double atol_for(DType d) {
  switch (d) {
    case DType::f64:
      return 1e-13;
    case DType::f32:
      return 1e-6;
    case DType::f16:
      return 1e-3;
    case DType::bf16:
      return 1e-2;
    default:
      return 0;
  }
}

}  // namespace glia::testing
