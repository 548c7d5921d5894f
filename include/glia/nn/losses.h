// Losses (keras.losses). A loss maps (y_true, y_pred) to a per-sample loss and
// reduces it ("sum_over_batch_size" by default, as Keras).
#pragma once

#include <memory>
#include <string>

#include "glia/core/tensor.h"
#include "glia/nn/config.h"

namespace glia::losses {

struct LossOptions {
  bool from_logits = false;
  double label_smoothing = 0.0;
  /// "sum_over_batch_size" (mean), "sum" or "none".
  std::string reduction = "sum_over_batch_size";
};

class Loss {
 public:
  explicit Loss(std::string name, LossOptions o = {}) : name_(std::move(name)), o_(std::move(o)) {}
  virtual ~Loss() = default;
  /// The reduced loss; sample_weight (shape [batch]) weighs each sample's loss.
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {}) const;
  /// The loss of each sample, shape [batch] (or y_pred's shape without the last axis).
  virtual Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const = 0;
  virtual std::string class_name() const = 0;
  virtual Config config() const;
  const std::string& name() const { return name_; }
  const LossOptions& options() const { return o_; }
  /// Whether this loss takes probabilities that the model could give as logits instead
  /// (softmax for categorical, sigmoid for binary): the activation it pairs with, or "".
  virtual std::string pairs_with_activation() const { return ""; }
  /// The same loss reading logits (from_logits = true).
  virtual std::shared_ptr<Loss> with_logits() const { return nullptr; }

 protected:
  std::string name_;
  LossOptions o_;
};
using LossPtr = std::shared_ptr<Loss>;

class CategoricalCrossentropy : public Loss {
 public:
  explicit CategoricalCrossentropy(LossOptions o = {});
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "CategoricalCrossentropy"; }
  std::string pairs_with_activation() const override { return o_.from_logits ? "" : "softmax"; }
  LossPtr with_logits() const override;
};
class SparseCategoricalCrossentropy : public Loss {
 public:
  explicit SparseCategoricalCrossentropy(LossOptions o = {});
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "SparseCategoricalCrossentropy"; }
  std::string pairs_with_activation() const override { return o_.from_logits ? "" : "softmax"; }
  LossPtr with_logits() const override;
};
class BinaryCrossentropy : public Loss {
 public:
  explicit BinaryCrossentropy(LossOptions o = {});
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "BinaryCrossentropy"; }
  std::string pairs_with_activation() const override { return o_.from_logits ? "" : "sigmoid"; }
  LossPtr with_logits() const override;
};
class MeanSquaredError : public Loss {
 public:
  explicit MeanSquaredError(LossOptions o = {});
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "MeanSquaredError"; }
};
class MeanAbsoluteError : public Loss {
 public:
  explicit MeanAbsoluteError(LossOptions o = {});
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "MeanAbsoluteError"; }
};
class Huber : public Loss {
 public:
  explicit Huber(double delta = 1.0, LossOptions o = {});
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "Huber"; }
  Config config() const override;

 private:
  double delta_;
};

/// A loss by Keras name: "categorical_crossentropy", "sparse_categorical_crossentropy",
/// "binary_crossentropy", "mse" / "mean_squared_error", "mae" / "mean_absolute_error", "huber".
LossPtr get(const std::string& name);
LossPtr from_config(const Config& c);
Config to_config(const Loss& l);

}  // namespace glia::losses
