// Keras metrics: running means of per-sample values, confusion counts, AUC.
#include "glia/nn/metrics.h"

#include <cmath>

#include "glia/autograd/autograd.h"
#include "glia/ops/functions.h"

namespace glia::metrics {
namespace {

Tensor labels_of(const Tensor& y_true, const Tensor& y_pred) {
  Tensor y = y_true;
  if (y.dim() == y_pred.dim() && y.dim() >= 1 && y.shape().back() == 1) y = y.squeeze(-1);
  return y.to(DType::i64);
}

}  // namespace

void WeightedTotal::add(const Tensor& v, const Tensor& sw) {
  no_grad g;
  Tensor per = v.dim() >= 2 ? glia::mean(v.to(DType::f64), {-1}) : v.to(DType::f64);
  while (per.dim() >= 2) per = glia::mean(per, {-1});
  Tensor w;
  if (sw.defined()) {
    w = sw.to(DType::f64).reshape({-1});
    GLIA_CHECK(w.numel() == per.numel(), ShapeError, "metric: sample_weight of ", w.numel(), " values for ",
               per.numel(), " samples");
  }
  Tensor s = w.defined() ? sum(per * w) : sum(per);
  if (per.device().is_cpu()) {
    total_ += s.item<double>();
    count_ += w.defined() ? sum(w).item<double>() : static_cast<double>(per.numel());
    return;
  }
  device_total_ = device_total_.defined() ? device_total_ + s : s;
  if (w.defined())
    device_count_ = device_count_.defined() ? device_count_ + sum(w) : sum(w);
  else
    count_ += static_cast<double>(per.numel());
}

double WeightedTotal::mean() const {
  if (device_total_.defined()) total_ += device_total_.item<double>();
  if (device_count_.defined()) count_ += device_count_.item<double>();
  device_total_ = device_count_ = Tensor();
  return count_ > 0 ? total_ / count_ : 0.0;
}

void WeightedTotal::reset() {
  total_ = count_ = 0;
  device_total_ = device_count_ = Tensor();
}

Config Metric::config() const { return {{"name", name_}}; }

void Mean::update_state(const Tensor& values, const Tensor&, const Tensor& sample_weight) {
  total_.add(values, sample_weight);
}
void Mean::update(double value, double weight) { total_.add(value, weight); }

void MeanMetricWrapper::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) {
  no_grad g;
  total_.add(values(y_true, y_pred), sample_weight);
}

Tensor Accuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  return (y_true.to(y_pred.dtype()) == y_pred).to(DType::f32);
}

Tensor CategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  GLIA_CHECK(y_true.shape() == y_pred.shape(), ShapeError, "categorical_accuracy: y_true of shape ",
             to_string(y_true.shape()), " does not match y_pred of shape ", to_string(y_pred.shape()));
  return (argmax(y_true, -1) == argmax(y_pred, -1)).to(DType::f32);
}

Tensor SparseCategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  Tensor labels = labels_of(y_true, y_pred);
  Tensor pred = argmax(y_pred, -1);
  GLIA_CHECK(labels.shape() == pred.shape(), ShapeError, "sparse_categorical_accuracy: labels of shape ",
             to_string(y_true.shape()), " do not match predictions of shape ", to_string(y_pred.shape()));
  return (labels == pred).to(DType::f32);
}

Tensor BinaryAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  Tensor y = y_true;
  if (y.dim() == y_pred.dim() - 1) y = y.unsqueeze(-1);
  return ((y_pred > threshold_) == (y.to(y_pred.dtype()) > 0.5)).to(DType::f32);
}

namespace {
/// Whether the true class is among the k largest predictions (ties count in its favour).
Tensor in_top_k(const Tensor& labels, const Tensor& y_pred, int64_t k) {
  Tensor true_score = gather(y_pred, -1, labels.unsqueeze(-1));
  Tensor better = sum((y_pred > true_score).to(DType::i64), {-1});
  return (better < k).to(DType::f32);
}
}  // namespace

Tensor TopKCategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  return in_top_k(argmax(y_true, -1), y_pred, k_);
}
Config TopKCategoricalAccuracy::config() const {
  Config c = Metric::config();
  c["k"] = k_;
  return c;
}
Tensor SparseTopKCategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  return in_top_k(labels_of(y_true, y_pred), y_pred, k_);
}
Config SparseTopKCategoricalAccuracy::config() const {
  Config c = Metric::config();
  c["k"] = k_;
  return c;
}

Tensor MeanSquaredError::values(const Tensor& y_true, const Tensor& y_pred) const {
  Tensor y = y_true.dim() == y_pred.dim() - 1 ? y_true.unsqueeze(-1) : y_true;
  return square(y_pred - y.to(y_pred.dtype()));
}
Tensor MeanAbsoluteError::values(const Tensor& y_true, const Tensor& y_pred) const {
  Tensor y = y_true.dim() == y_pred.dim() - 1 ? y_true.unsqueeze(-1) : y_true;
  return abs(y_pred - y.to(y_pred.dtype()));
}

namespace {
/// Flattened predictions and labels with weights, as doubles.
struct Flat {
  std::vector<double> pred, label, weight;
};
Flat flatten(const Tensor& y_true, const Tensor& y_pred, const Tensor& sw) {
  Flat f;
  f.pred = y_pred.to(DType::f64).contiguous().to_vector<double>();
  f.label = y_true.to(DType::f64).contiguous().to_vector<double>();
  GLIA_CHECK(f.pred.size() == f.label.size(), ShapeError, "metric: y_true of shape ", to_string(y_true.shape()),
             " does not match y_pred of shape ", to_string(y_pred.shape()));
  f.weight.assign(f.pred.size(), 1.0);
  if (sw.defined()) {
    auto w = sw.to(DType::f64).contiguous().to_vector<double>();
    GLIA_CHECK(!w.empty() && f.pred.size() % w.size() == 0, ShapeError, "metric: sample_weight of ", w.size(),
               " values for ", f.pred.size(), " predictions");
    size_t per = f.pred.size() / w.size();
    for (size_t i = 0; i < f.pred.size(); ++i) f.weight[i] = w[i / per];
  }
  return f;
}
}  // namespace

void Precision::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sw) {
  Flat f = flatten(y_true, y_pred, sw);
  for (size_t i = 0; i < f.pred.size(); ++i) {
    if (f.pred[i] <= threshold_) continue;
    (f.label[i] > 0.5 ? tp_ : fp_) += f.weight[i];
  }
}
Config Precision::config() const {
  Config c = Metric::config();
  c["thresholds"] = threshold_;
  return c;
}

void Recall::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sw) {
  Flat f = flatten(y_true, y_pred, sw);
  for (size_t i = 0; i < f.pred.size(); ++i) {
    if (f.label[i] <= 0.5) continue;
    (f.pred[i] > threshold_ ? tp_ : fn_) += f.weight[i];
  }
}
Config Recall::config() const {
  Config c = Metric::config();
  c["thresholds"] = threshold_;
  return c;
}

AUC::AUC(int64_t num_thresholds, std::string name) : Metric(std::move(name)), n_(num_thresholds) {
  GLIA_CHECK(num_thresholds > 1, ValueError, "AUC: num_thresholds must be > 1, got ", num_thresholds);
  reset_state();
}

void AUC::reset_state() {
  tp_.assign(static_cast<size_t>(n_), 0.0);
  fp_ = tn_ = fn_ = tp_;
}

void AUC::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sw) {
  // Thresholds as Keras: -eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps; positive when pred > threshold.
  Flat f = flatten(y_true, y_pred, sw);
  const double eps = 1e-7;
  for (size_t i = 0; i < f.pred.size(); ++i) {
    bool pos = f.label[i] > 0.5;
    for (int64_t t = 0; t < n_; ++t) {
      double th = t == 0 ? -eps : t == n_ - 1 ? 1.0 + eps : static_cast<double>(t) / static_cast<double>(n_ - 1);
      bool pred_pos = f.pred[i] > th;
      auto k = static_cast<size_t>(t);
      if (pos)
        (pred_pos ? tp_[k] : fn_[k]) += f.weight[i];
      else
        (pred_pos ? fp_[k] : tn_[k]) += f.weight[i];
    }
  }
}

double AUC::result() const {
  // ROC: trapezoids between consecutive thresholds.
  double auc = 0;
  for (int64_t t = 0; t + 1 < n_; ++t) {
    auto a = static_cast<size_t>(t), b = static_cast<size_t>(t + 1);
    auto tpr = [&](size_t k) { return tp_[k] + fn_[k] > 0 ? tp_[k] / (tp_[k] + fn_[k]) : 0.0; };
    auto fpr = [&](size_t k) { return fp_[k] + tn_[k] > 0 ? fp_[k] / (fp_[k] + tn_[k]) : 0.0; };
    auto tpr_a = tpr(a), tpr_b = tpr(b);
    auto fpr_a = fpr(a), fpr_b = fpr(b);
    auc += (fpr_a - fpr_b) * (tpr_a + tpr_b) / 2.0;
  }
  return auc;
}

Config AUC::config() const {
  Config c = Metric::config();
  c["num_thresholds"] = n_;
  return c;
}

MetricPtr get(const std::string& name) {
  if (name == "accuracy" || name == "acc") return std::make_shared<Accuracy>(name);
  if (name == "categorical_accuracy") return std::make_shared<CategoricalAccuracy>();
  if (name == "sparse_categorical_accuracy") return std::make_shared<SparseCategoricalAccuracy>();
  if (name == "binary_accuracy") return std::make_shared<BinaryAccuracy>();
  if (name == "top_k_categorical_accuracy") return std::make_shared<TopKCategoricalAccuracy>();
  if (name == "sparse_top_k_categorical_accuracy") return std::make_shared<SparseTopKCategoricalAccuracy>();
  if (name == "mse" || name == "mean_squared_error") return std::make_shared<MeanSquaredError>(name);
  if (name == "mae" || name == "mean_absolute_error") return std::make_shared<MeanAbsoluteError>(name);
  if (name == "precision") return std::make_shared<Precision>();
  if (name == "recall") return std::make_shared<Recall>();
  if (name == "auc") return std::make_shared<AUC>();
  throw ValueError("unknown metric '" + name +
                   "': expected one of accuracy, categorical_accuracy, sparse_categorical_accuracy, "
                   "binary_accuracy, top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, mse, mae, "
                   "precision, recall, auc");
}

MetricPtr resolve(const std::string& name, const std::string& loss_class, const Shape& t, const Shape& p) {
  if (name != "accuracy" && name != "acc") return get(name);
  // Keras's choice: binary when predictions have one column (or the loss is binary cross-entropy),
  // sparse when the targets have a rank less or a single column, categorical otherwise.
  bool is_binary = loss_class == "BinaryCrossentropy" || (!p.empty() && p.back() == 1);
  bool is_sparse = t.size() < p.size() || (!t.empty() && !p.empty() && t.back() == 1 && p.back() > 1);
  if (is_binary) return std::make_shared<BinaryAccuracy>(name);
  if (is_sparse || loss_class == "SparseCategoricalCrossentropy")
    return std::make_shared<SparseCategoricalAccuracy>(name);
  return std::make_shared<CategoricalAccuracy>(name);
}

}  // namespace glia::metrics
