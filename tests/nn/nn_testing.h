// Helpers for the Keras-layer tests: random float32 inputs and weights, and
// row-major index arithmetic for the plain-loop references.
#pragma once

#include <gmock/gmock.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops/op_testing.h"

namespace glia::testing {

/// A random float32 tensor (the dtype layers compute in).
inline Tensor rnd32(std::initializer_list<int64_t> shape, double lo = -1.0, double hi = 1.0) {
  return uniform(shape, lo, hi, DType::f32);
}

/// Gives every weight of `layer` new random values in [lo, hi) (so that zero biases and unit
/// scales do not hide mistakes) and returns them as doubles, in the order of weights().
inline std::vector<std::vector<double>> randomize_weights(Layer& layer, double lo = -1.0, double hi = 1.0) {
  std::vector<Tensor> vals;
  std::vector<std::vector<double>> out;
  for (Variable* v : layer.weights()) {
    vals.push_back(uniform(IntList(v->value.shape()), lo, hi, DType::f32));
    out.push_back(values(vals.back()));
  }
  layer.set_weights(vals);
  return out;
}

/// Row-major offset of an index into a shape.
inline size_t offset_of(const std::vector<int64_t>& shape, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  for (size_t d = 0; d < shape.size(); ++d) off = off * shape[d] + idx[d];
  return static_cast<size_t>(off);
}

inline bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace glia::testing
