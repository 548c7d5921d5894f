// Weight initializers (keras.initializers): by name ("glorot_uniform", "he_normal", ...) or object.
#pragma once

#include <memory>
#include <string>

#include "glia/core/tensor.h"
#include "glia/nn/config.h"

namespace glia::initializers {

class Initializer {
 public:
  virtual ~Initializer() = default;
  /// A new tensor of `shape` with this initializer's values (drawn from the seeded generator).
  virtual Tensor operator()(const Shape& shape, DType dtype = DType::f32) const = 0;
  virtual std::string class_name() const = 0;
  virtual Config config() const { return Config::object(); }
};
using InitializerPtr = std::shared_ptr<Initializer>;

/// Fan-in / fan-out of a weight shape as Keras computes them ([in, out] for Dense,
/// [kh, kw, in, out] for convolutions: receptive field times channels).
std::pair<double, double> compute_fans(const Shape& shape);

class Zeros : public Initializer {
 public:
  Tensor operator()(const Shape& shape, DType dtype) const override;
  std::string class_name() const override { return "Zeros"; }
};
class Ones : public Initializer {
 public:
  Tensor operator()(const Shape& shape, DType dtype) const override;
  std::string class_name() const override { return "Ones"; }
};
class Constant : public Initializer {
 public:
  explicit Constant(double value = 0.0) : value_(value) {}
  Tensor operator()(const Shape& shape, DType dtype) const override;
  std::string class_name() const override { return "Constant"; }
  Config config() const override { return {{"value", value_}}; }

 private:
  double value_;
};
class RandomNormal : public Initializer {
 public:
  explicit RandomNormal(double mean = 0.0, double stddev = 0.05) : mean_(mean), stddev_(stddev) {}
  Tensor operator()(const Shape& shape, DType dtype) const override;
  std::string class_name() const override { return "RandomNormal"; }
  Config config() const override { return {{"mean", mean_}, {"stddev", stddev_}}; }

 private:
  double mean_, stddev_;
};
class RandomUniform : public Initializer {
 public:
  explicit RandomUniform(double minval = -0.05, double maxval = 0.05) : min_(minval), max_(maxval) {}
  Tensor operator()(const Shape& shape, DType dtype) const override;
  std::string class_name() const override { return "RandomUniform"; }
  Config config() const override { return {{"minval", min_}, {"maxval", max_}}; }

 private:
  double min_, max_;
};
/// Keras's VarianceScaling: scale / fan (fan_in, fan_out or fan_avg), with a truncated
/// normal, untruncated normal or uniform distribution. Glorot, He and LeCun are instances.
class VarianceScaling : public Initializer {
 public:
  VarianceScaling(double scale = 1.0, std::string mode = "fan_in", std::string distribution = "truncated_normal",
                  std::string class_name = "VarianceScaling");
  Tensor operator()(const Shape& shape, DType dtype) const override;
  std::string class_name() const override { return class_name_; }
  Config config() const override;

 private:
  double scale_;
  std::string mode_, distribution_, class_name_;
};

InitializerPtr glorot_uniform();
InitializerPtr glorot_normal();
InitializerPtr he_normal();
InitializerPtr he_uniform();
InitializerPtr lecun_normal();
InitializerPtr lecun_uniform();

/// An initializer by Keras name ("glorot_uniform", "zeros", "he_normal", ...);
/// throws ValueError listing the known names otherwise.
InitializerPtr get(const std::string& name);
/// From a config {"class_name": ..., "config": {...}}.
InitializerPtr from_config(const Config& c);
Config to_config(const InitializerPtr& init);

}  // namespace glia::initializers
