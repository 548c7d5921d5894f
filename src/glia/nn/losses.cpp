// Keras losses on top of the loss ops.
#include "glia/nn/losses.h"

#include "glia/ops/functions.h"

namespace glia::losses {
namespace {

constexpr double kEps = 1e-7;  // Keras's backend epsilon, for clipping probabilities

/// y_true of the same shape as y_pred for element-wise losses ([N] next to [N, 1] is expanded).
Tensor match_shape(const Tensor& y_true, const Tensor& y_pred, const char* loss) {
  Tensor y = y_true;
  if (y.dim() == y_pred.dim() - 1 && y_pred.dim() >= 1 && y_pred.shape().back() == 1) y = y.unsqueeze(-1);
  GLIA_CHECK(y.shape() == y_pred.shape(), ShapeError, loss, ": y_true of shape ", to_string(y_true.shape()),
             " does not match y_pred of shape ", to_string(y_pred.shape()));
  return is_floating(y.dtype()) ? y.to(y_pred.dtype()) : y.to(y_pred.dtype());
}

/// Integer labels [N] from y_true [N] or [N, 1] (floats holding integers are accepted, as Keras does).
Tensor sparse_labels(const Tensor& y_true, const Tensor& y_pred, const char* loss) {
  Tensor y = y_true;
  if (y.dim() == y_pred.dim() && y.dim() >= 1 && y.shape().back() == 1) y = y.squeeze(-1);
  GLIA_CHECK(y.dim() == y_pred.dim() - 1, ShapeError, loss, ": expected integer labels of shape ",
             to_string(Shape(y_pred.shape().begin(), y_pred.shape().end() - 1)), " for predictions of shape ",
             to_string(y_pred.shape()), ", got shape ", to_string(y_true.shape()));
  for (int64_t d = 0; d < y.dim(); ++d)
    GLIA_CHECK(y.shape()[static_cast<size_t>(d)] == y_pred.shape()[static_cast<size_t>(d)], ShapeError, loss,
               ": labels of shape ", to_string(y_true.shape()), " do not match predictions of shape ",
               to_string(y_pred.shape()));
  return y.to(DType::i64);
}

void check_pred(const Tensor& y_pred, const char* loss) {
  GLIA_CHECK(is_floating(y_pred.dtype()), DTypeError, loss, ": predictions must be floating point, got ",
             name(y_pred.dtype()));
  GLIA_CHECK(y_pred.dim() >= 1, ShapeError, loss, ": predictions need a batch axis, got a 0-d tensor");
}

}  // namespace

Tensor Loss::operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) const {
  GLIA_CHECK(y_true.defined() && y_pred.defined(), ValueError, name_, ": y_true and y_pred must be defined");
  Tensor l = per_sample(y_true, y_pred);
  if (sample_weight.defined()) {
    Tensor w = sample_weight.to(l.dtype());
    GLIA_CHECK(w.numel() == (l.dim() ? l.shape()[0] : 1), ShapeError, name_, ": sample_weight of shape ",
               to_string(sample_weight.shape()), " does not match ", l.dim() ? l.shape()[0] : 1, " samples");
    Shape ws{w.numel()};
    for (int64_t d = 1; d < l.dim(); ++d) ws.push_back(1);
    l = l * w.reshape(ws);
  }
  const std::string& r = o_.reduction;
  if (r == "none") return l;
  if (r == "sum") return sum(l);
  GLIA_CHECK(r == "sum_over_batch_size" || r == "mean", ValueError, name_,
             ": reduction must be sum_over_batch_size, sum or none, got '", r, "'");
  return l.numel() == 0 ? zeros({}, {.dtype = l.dtype()}) : mean(l);
}

Config Loss::config() const {
  Config c;
  c["name"] = name_;
  c["reduction"] = o_.reduction;
  c["from_logits"] = o_.from_logits;
  c["label_smoothing"] = o_.label_smoothing;
  return c;
}

CategoricalCrossentropy::CategoricalCrossentropy(LossOptions o) : Loss("categorical_crossentropy", std::move(o)) {}
Tensor CategoricalCrossentropy::per_sample(const Tensor& y_true, const Tensor& y_pred) const {
  check_pred(y_pred, "categorical_crossentropy");
  GLIA_CHECK(y_true.shape() == y_pred.shape(), ShapeError, "categorical_crossentropy: y_true of shape ",
             to_string(y_true.shape()), " does not match y_pred of shape ", to_string(y_pred.shape()),
             " (for integer labels use sparse_categorical_crossentropy)");
  Tensor y = y_true.to(y_pred.dtype());
  if (o_.label_smoothing > 0) {
    double c = static_cast<double>(y_pred.shape().back());
    y = y * (1.0 - o_.label_smoothing) + o_.label_smoothing / c;
  }
  if (o_.from_logits) return neg(sum(y * log_softmax(y_pred, -1), {-1}));
  Tensor p = y_pred / sum(y_pred, {-1}, true);
  return neg(sum(y * log(clamp(p, kEps, 1.0 - kEps)), {-1}));
}
LossPtr CategoricalCrossentropy::with_logits() const {
  LossOptions o = o_;
  o.from_logits = true;
  return std::make_shared<CategoricalCrossentropy>(o);
}

SparseCategoricalCrossentropy::SparseCategoricalCrossentropy(LossOptions o)
    : Loss("sparse_categorical_crossentropy", std::move(o)) {}
Tensor SparseCategoricalCrossentropy::per_sample(const Tensor& y_true, const Tensor& y_pred) const {
  check_pred(y_pred, "sparse_categorical_crossentropy");
  Tensor labels = sparse_labels(y_true, y_pred, "sparse_categorical_crossentropy");
  Tensor logits = o_.from_logits ? y_pred : log(clamp(y_pred, kEps, 1.0 - kEps));
  // cross_entropy checks the labels are in [0, classes) and names a bad one.
  return cross_entropy(logits, labels, {.reduction = "none", .label_smoothing = o_.label_smoothing});
}
LossPtr SparseCategoricalCrossentropy::with_logits() const {
  LossOptions o = o_;
  o.from_logits = true;
  return std::make_shared<SparseCategoricalCrossentropy>(o);
}

BinaryCrossentropy::BinaryCrossentropy(LossOptions o) : Loss("binary_crossentropy", std::move(o)) {}
Tensor BinaryCrossentropy::per_sample(const Tensor& y_true, const Tensor& y_pred) const {
  check_pred(y_pred, "binary_crossentropy");
  Tensor y = match_shape(y_true, y_pred, "binary_crossentropy");
  if (o_.label_smoothing > 0) y = y * (1.0 - o_.label_smoothing) + 0.5 * o_.label_smoothing;
  Tensor l =
      o_.from_logits
          ? binary_cross_entropy_with_logits(y_pred, y, "none")
          : neg(y * log(clamp(y_pred, kEps, 1.0 - kEps)) + (1.0 - y) * log(clamp(1.0 - y_pred, kEps, 1.0 - kEps)));
  return y_pred.dim() >= 2 ? mean(l, {-1}) : l;
}
LossPtr BinaryCrossentropy::with_logits() const {
  LossOptions o = o_;
  o.from_logits = true;
  return std::make_shared<BinaryCrossentropy>(o);
}

MeanSquaredError::MeanSquaredError(LossOptions o) : Loss("mean_squared_error", std::move(o)) {}
Tensor MeanSquaredError::per_sample(const Tensor& y_true, const Tensor& y_pred) const {
  check_pred(y_pred, "mean_squared_error");
  Tensor d = square(y_pred - match_shape(y_true, y_pred, "mean_squared_error"));
  return y_pred.dim() >= 2 ? mean(d, {-1}) : d;
}

MeanAbsoluteError::MeanAbsoluteError(LossOptions o) : Loss("mean_absolute_error", std::move(o)) {}
Tensor MeanAbsoluteError::per_sample(const Tensor& y_true, const Tensor& y_pred) const {
  check_pred(y_pred, "mean_absolute_error");
  Tensor d = abs(y_pred - match_shape(y_true, y_pred, "mean_absolute_error"));
  return y_pred.dim() >= 2 ? mean(d, {-1}) : d;
}

Huber::Huber(double delta, LossOptions o) : Loss("huber_loss", std::move(o)), delta_(delta) {
  GLIA_CHECK(delta > 0, ValueError, "Huber: delta must be positive, got ", delta);
}
Tensor Huber::per_sample(const Tensor& y_true, const Tensor& y_pred) const {
  check_pred(y_pred, "huber_loss");
  Tensor l = huber_loss(y_pred, match_shape(y_true, y_pred, "huber_loss"), delta_, "none");
  return y_pred.dim() >= 2 ? mean(l, {-1}) : l;
}
Config Huber::config() const {
  Config c = Loss::config();
  c["delta"] = delta_;
  return c;
}

LossPtr get(const std::string& name) {
  if (name == "categorical_crossentropy" || name == "CategoricalCrossentropy")
    return std::make_shared<CategoricalCrossentropy>();
  if (name == "sparse_categorical_crossentropy" || name == "SparseCategoricalCrossentropy")
    return std::make_shared<SparseCategoricalCrossentropy>();
  if (name == "binary_crossentropy" || name == "BinaryCrossentropy") return std::make_shared<BinaryCrossentropy>();
  if (name == "mse" || name == "mean_squared_error" || name == "MeanSquaredError")
    return std::make_shared<MeanSquaredError>();
  if (name == "mae" || name == "mean_absolute_error" || name == "MeanAbsoluteError")
    return std::make_shared<MeanAbsoluteError>();
  if (name == "huber" || name == "huber_loss" || name == "Huber") return std::make_shared<Huber>();
  throw ValueError("unknown loss '" + name +
                   "': expected one of categorical_crossentropy, sparse_categorical_crossentropy, "
                   "binary_crossentropy, mse (mean_squared_error), mae (mean_absolute_error), huber");
}

LossPtr from_config(const Config& c) {
  std::string cls = c.at("class_name").get<std::string>();
  const Config& a = c.contains("config") ? c["config"] : Config::object();
  LossOptions o;
  if (a.contains("from_logits")) o.from_logits = a["from_logits"].get<bool>();
  if (a.contains("label_smoothing")) o.label_smoothing = a["label_smoothing"].get<double>();
  if (a.contains("reduction")) o.reduction = a["reduction"].get<std::string>();
  if (cls == "CategoricalCrossentropy") return std::make_shared<CategoricalCrossentropy>(o);
  if (cls == "SparseCategoricalCrossentropy") return std::make_shared<SparseCategoricalCrossentropy>(o);
  if (cls == "BinaryCrossentropy") return std::make_shared<BinaryCrossentropy>(o);
  if (cls == "MeanSquaredError") return std::make_shared<MeanSquaredError>(o);
  if (cls == "MeanAbsoluteError") return std::make_shared<MeanAbsoluteError>(o);
  if (cls == "Huber") return std::make_shared<Huber>(a.contains("delta") ? a["delta"].get<double>() : 1.0, o);
  throw ValueError("unknown loss class '" + cls + "'");
}

Config to_config(const Loss& l) { return {{"class_name", l.class_name()}, {"config", l.config()}}; }

}  // namespace glia::losses
