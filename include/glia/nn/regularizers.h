// Weight regularizers (keras.regularizers): their penalties are added to the training loss.
#pragma once

#include <memory>
#include <string>

#include "glia/core/tensor.h"
#include "glia/nn/config.h"

namespace glia::regularizers {

class Regularizer {
 public:
  virtual ~Regularizer() = default;
  /// The penalty for weight w (a scalar tensor, differentiable).
  virtual Tensor operator()(const Tensor& w) const = 0;
  virtual std::string class_name() const = 0;
  virtual Config config() const = 0;
};
using RegularizerPtr = std::shared_ptr<Regularizer>;

/// l1 * sum(|w|) + l2 * sum(w^2).
class L1L2 : public Regularizer {
 public:
  explicit L1L2(double l1 = 0.0, double l2 = 0.0) : l1_(l1), l2_(l2) {}
  Tensor operator()(const Tensor& w) const override;
  std::string class_name() const override { return "L1L2"; }
  Config config() const override { return {{"l1", l1_}, {"l2", l2_}}; }

 private:
  double l1_, l2_;
};

RegularizerPtr l1(double factor = 0.01);
RegularizerPtr l2(double factor = 0.01);
RegularizerPtr l1_l2(double l1 = 0.01, double l2 = 0.01);
/// "l1", "l2", "l1_l2" with Keras's default factors.
RegularizerPtr get(const std::string& name);
RegularizerPtr from_config(const Config& c);
Config to_config(const RegularizerPtr& r);

}  // namespace glia::regularizers
