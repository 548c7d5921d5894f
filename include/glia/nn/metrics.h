// Metrics (keras.metrics): stateful accumulators over batches, reset each epoch.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "glia/core/tensor.h"
#include "glia/nn/config.h"

namespace glia::metrics {

class Metric {
 public:
  explicit Metric(std::string name) : name_(std::move(name)) {}
  virtual ~Metric() = default;
  /// Accumulates a batch; sample_weight (shape [batch]) weighs samples.
  virtual void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {}) = 0;
  virtual double result() const = 0;
  virtual void reset_state() = 0;
  virtual std::string class_name() const = 0;
  virtual Config config() const;
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }

 protected:
  std::string name_;
};
using MetricPtr = std::shared_ptr<Metric>;

/// The weighted sum and weight of the per-sample values seen so far. Values on a GPU are summed
/// there, so that a training step never waits for its metrics: the host reads the sums only when
/// the mean is asked for.
class WeightedTotal {
 public:
  /// values: [batch] or more (averaged per sample first); sample_weight: [batch] or undefined.
  void add(const Tensor& values, const Tensor& sample_weight);
  void add(double value, double weight) { total_ += value * weight, count_ += weight; }
  double mean() const;
  void reset();

 private:
  mutable double total_ = 0, count_ = 0;
  mutable Tensor device_total_, device_count_;  // float64 sums not read yet
};

/// Weighted mean of the values given (used for the running loss).
class Mean : public Metric {
 public:
  explicit Mean(std::string name = "mean") : Metric(std::move(name)) {}
  void update_state(const Tensor& values, const Tensor& unused = {}, const Tensor& sample_weight = {}) override;
  void update(double value, double weight = 1.0);
  double result() const override { return total_.mean(); }
  void reset_state() override { total_.reset(); }
  std::string class_name() const override { return "Mean"; }

 private:
  WeightedTotal total_;
};

/// Base of metrics that average a per-sample value (accuracies, errors).
class MeanMetricWrapper : public Metric {
 public:
  using Metric::Metric;
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {}) override;
  double result() const override { return total_.mean(); }
  void reset_state() override { total_.reset(); }
  /// The per-sample values, shape [batch].
  virtual Tensor values(const Tensor& y_true, const Tensor& y_pred) const = 0;

 private:
  WeightedTotal total_;
};

/// Exact match of y_true and y_pred (both labels).
class Accuracy : public MeanMetricWrapper {
 public:
  explicit Accuracy(std::string name = "accuracy") : MeanMetricWrapper(std::move(name)) {}
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "Accuracy"; }
};
/// argmax(y_true) == argmax(y_pred): one-hot targets.
class CategoricalAccuracy : public MeanMetricWrapper {
 public:
  explicit CategoricalAccuracy(std::string name = "categorical_accuracy") : MeanMetricWrapper(std::move(name)) {}
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "CategoricalAccuracy"; }
};
/// y_true == argmax(y_pred): integer targets.
class SparseCategoricalAccuracy : public MeanMetricWrapper {
 public:
  explicit SparseCategoricalAccuracy(std::string name = "sparse_categorical_accuracy")
      : MeanMetricWrapper(std::move(name)) {}
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "SparseCategoricalAccuracy"; }
};
/// y_true == (y_pred > threshold), averaged over the last axis.
class BinaryAccuracy : public MeanMetricWrapper {
 public:
  explicit BinaryAccuracy(std::string name = "binary_accuracy", double threshold = 0.5)
      : MeanMetricWrapper(std::move(name)), threshold_(threshold) {}
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "BinaryAccuracy"; }

 private:
  double threshold_;
};
/// Whether the true class (one-hot) is among the k highest predictions.
class TopKCategoricalAccuracy : public MeanMetricWrapper {
 public:
  explicit TopKCategoricalAccuracy(int64_t k = 5, std::string name = "top_k_categorical_accuracy")
      : MeanMetricWrapper(std::move(name)), k_(k) {}
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "TopKCategoricalAccuracy"; }
  Config config() const override;

 private:
  int64_t k_;
};
class SparseTopKCategoricalAccuracy : public MeanMetricWrapper {
 public:
  explicit SparseTopKCategoricalAccuracy(int64_t k = 5, std::string name = "sparse_top_k_categorical_accuracy")
      : MeanMetricWrapper(std::move(name)), k_(k) {}
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "SparseTopKCategoricalAccuracy"; }
  Config config() const override;

 private:
  int64_t k_;
};
class MeanSquaredError : public MeanMetricWrapper {
 public:
  explicit MeanSquaredError(std::string name = "mean_squared_error") : MeanMetricWrapper(std::move(name)) {}
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "MeanSquaredError"; }
};
class MeanAbsoluteError : public MeanMetricWrapper {
 public:
  explicit MeanAbsoluteError(std::string name = "mean_absolute_error") : MeanMetricWrapper(std::move(name)) {}
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string class_name() const override { return "MeanAbsoluteError"; }
};

/// Binary precision / recall at a threshold (predictions > threshold count as positive).
class Precision : public Metric {
 public:
  explicit Precision(double threshold = 0.5, std::string name = "precision")
      : Metric(std::move(name)), threshold_(threshold) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {}) override;
  double result() const override { return tp_ + fp_ > 0 ? tp_ / (tp_ + fp_) : 0.0; }
  void reset_state() override { tp_ = fp_ = 0; }
  std::string class_name() const override { return "Precision"; }
  Config config() const override;

 private:
  double threshold_, tp_ = 0, fp_ = 0;
};
class Recall : public Metric {
 public:
  explicit Recall(double threshold = 0.5, std::string name = "recall")
      : Metric(std::move(name)), threshold_(threshold) {}
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {}) override;
  double result() const override { return tp_ + fn_ > 0 ? tp_ / (tp_ + fn_) : 0.0; }
  void reset_state() override { tp_ = fn_ = 0; }
  std::string class_name() const override { return "Recall"; }
  Config config() const override;

 private:
  double threshold_, tp_ = 0, fn_ = 0;
};
/// Area under the ROC curve, approximated with `num_thresholds` as Keras's AUC
/// (trapezoidal summation over thresholds evenly spaced in [0, 1]).
class AUC : public Metric {
 public:
  explicit AUC(int64_t num_thresholds = 200, std::string name = "auc");
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {}) override;
  double result() const override;
  void reset_state() override;
  std::string class_name() const override { return "AUC"; }
  Config config() const override;

 private:
  int64_t n_;
  std::vector<double> tp_, fp_, tn_, fn_;
};

/// A metric by Keras name. "accuracy"/"acc" is resolved by the model from the loss and
/// shapes (categorical, sparse or binary) as Keras does; `get` returns plain Accuracy for it.
MetricPtr get(const std::string& name);
/// Resolves "accuracy" / "acc" / "crossentropy"-style shorthands for a given loss class name and
/// output shape, as Keras's compile does.
MetricPtr resolve(const std::string& name, const std::string& loss_class, const Shape& y_true_shape,
                  const Shape& y_pred_shape);

}  // namespace glia::metrics
