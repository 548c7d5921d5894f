// Softmax, log-softmax and the losses. softmax / log_softmax are ops with a
// fused kernel; their gradients (and the losses) are written with public
// functions, so they work at any order.
#include "glia/ops/loss.h"

#include <cmath>

#include "glia/ops/elementwise.h"
#include "glia/ops/op.h"
#include "glia/ops/reduce.h"
#include "glia/ops/shape_ops.h"

namespace glia {
namespace {

InferFn softmax_infer() {
  return [](InferContext& c) {
    check_floating(c.input(0), c.name());
    c.set_output(c.shape(0), c.dtype(0));
  };
}

void check_reduction(const std::string& r, const char* op) {
  GLIA_CHECK(r == "mean" || r == "sum" || r == "none", ValueError, op,
             ": reduction must be 'mean', 'sum' or 'none', got '", r, "'");
}

bool is_index_dtype(DType t) { return t == DType::i32 || t == DType::i64; }

Shape without_axis(const Shape& s, int64_t axis) {
  Shape r = s;
  r.erase(r.begin() + axis);
  return r;
}

/// -log_probs at the target class along axis; the shape of target. The gather kernel
/// checks the classes (no host round trip), with a message about labels.
Tensor pick_nll(const Tensor& logp, const Tensor& target, int64_t axis, const char* op) {
  static const OpDef& gather_op = OpRegistry::instance().get("gather");
  std::string err =
      std::string(op) + ": target class {index} is out of range for {size} classes (labels must be in [0, {size}))";
  return neg(squeeze(call(gather_op, {logp, unsqueeze(target, axis)}, {{"dim", axis}, {"index_error", err}}), axis));
}

void check_index_target(const Tensor& logp, const Tensor& target, int64_t axis, const char* op) {
  GLIA_CHECK(is_index_dtype(target.dtype()), DTypeError, op, ": target must hold class indices (int32 or int64), got ",
             name(target.dtype()));
  Shape want = without_axis(logp.shape(), axis);
  GLIA_CHECK(target.shape() == want, ShapeError, op, ": target of class indices must have shape ", to_string(want),
             " (the input shape ", to_string(logp.shape()), " without the class axis ", axis, "), got ",
             to_string(target.shape()));
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* an, const char* bn) {
  GLIA_CHECK(a.shape() == b.shape(), ShapeError, op, ": ", bn, " of shape ", to_string(b.shape()), " does not match ",
             an, " of shape ", to_string(a.shape()));
}

/// The target of a regression loss, in pred's dtype, after the common checks.
Tensor regression_target(const Tensor& pred, const Tensor& target, const std::string& reduction, const char* op) {
  check_floating(pred, op, "prediction");
  check_reduction(reduction, op);
  check_same_shape(pred, target, op, "prediction", "target");
  GLIA_CHECK(target.dtype() != DType::b8, DTypeError, op, ": target must be numeric, got bool");
  return cast(target, pred.dtype());
}

}  // namespace

// --- softmax

GLIA_OP(softmax).inputs({"x"}).infer(softmax_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  int64_t axis = c.attr<int64_t>("axis");
  Tensor y = c.output(0);
  const Tensor& g = c.grad_out();
  return grads{y * (g - sum(g * y, {axis}, true))};
});

GLIA_OP(log_softmax).inputs({"x"}).infer(softmax_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  int64_t axis = c.attr<int64_t>("axis");
  Tensor y = c.output(0);
  const Tensor& g = c.grad_out();
  return grads{g - exp(y) * sum(g, {axis}, true)};
});

Tensor softmax(const Tensor& x, int64_t axis) {
  check_floating(x, "softmax");
  if (x.dim() == 0) return call(op_softmax, {x.reshape({1})}, {{"axis", int64_t(0)}}).reshape({});
  return call(op_softmax, {x}, {{"axis", wrap_axis(axis, x.dim(), "softmax")}});
}

Tensor log_softmax(const Tensor& x, int64_t axis) {
  check_floating(x, "log_softmax");
  if (x.dim() == 0) return call(op_log_softmax, {x.reshape({1})}, {{"axis", int64_t(0)}}).reshape({});
  return call(op_log_softmax, {x}, {{"axis", wrap_axis(axis, x.dim(), "log_softmax")}});
}

// --- losses

Tensor reduce_loss(const Tensor& loss, const std::string& reduction, const char* op) {
  check_reduction(reduction, op);
  if (reduction == "mean") return mean(loss);
  if (reduction == "sum") return sum(loss);
  return loss;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  const char* op = "cross_entropy";
  check_floating(logits, op, "logits");
  check_reduction(o.reduction, op);
  GLIA_CHECK(logits.dim() >= 1, ShapeError, op, ": logits must have a class axis, got a 0-d tensor");
  GLIA_CHECK(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0, ValueError, op,
             ": label_smoothing must be in [0, 1], got ", o.label_smoothing);
  int64_t axis = wrap_axis(o.axis, logits.dim(), op);
  auto C = static_cast<double>(logits.shape()[static_cast<size_t>(axis)]);
  double eps = o.label_smoothing;
  Tensor loss;
  if (is_floating(target.dtype())) {
    check_same_shape(logits, target, op, "logits", "target of probabilities");
    Tensor logp = log_softmax(logits, axis);
    Tensor t = cast(target, logits.dtype());
    if (eps > 0) t = t * (1.0 - eps) + eps / C;
    loss = neg(sum(t * logp, {axis}));
  } else {
    GLIA_CHECK(is_index_dtype(target.dtype()), DTypeError, op,
               ": target must be class indices (int32 or int64) or probabilities (floating point), got ",
               name(target.dtype()));
    check_index_target(logits, target, axis, op);
    Tensor logp = log_softmax(logits, axis);
    loss = pick_nll(logp, target, axis, op);
    // PyTorch's smoothing: (1 - eps) * nll + eps * (mean over classes of -log p).
    if (eps > 0) loss = loss * (1.0 - eps) + neg(sum(logp, {axis})) * (eps / C);
  }
  return reduce_loss(loss, o.reduction, op);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const std::string& reduction) {
  const char* op = "nll_loss";
  check_floating(log_probs, op, "log-probabilities");
  check_reduction(reduction, op);
  GLIA_CHECK(log_probs.dim() >= 1, ShapeError, op, ": log-probabilities must have a class axis, got a 0-d tensor");
  int64_t axis = log_probs.dim() - 1;
  check_index_target(log_probs, target, axis, op);
  return reduce_loss(pick_nll(log_probs, target, axis, op), reduction, op);
}

Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, const std::string& reduction) {
  const char* op = "binary_cross_entropy";
  check_floating(probs, op, "probabilities");
  check_reduction(reduction, op);
  GLIA_CHECK(is_floating(target.dtype()), DTypeError, op, ": target must be floating-point probabilities, got ",
             name(target.dtype()));
  check_same_shape(probs, target, op, "probabilities", "target");
  // The range check reads values, which a graph being built does not have: it is skipped there.
  if (probs.numel() > 0 && !probs.is_symbolic() && !graph_hook::current()) {
    double lo = amin(probs).item<double>(), hi = amax(probs).item<double>();
    GLIA_CHECK(lo >= 0.0 && hi <= 1.0, ValueError, op, ": probabilities must be in [0, 1], got values in [", lo, ", ",
               hi, "]");
  }
  Tensor t = cast(target, probs.dtype());
  // log clamped at -100 as PyTorch; the inner clamp keeps the gradient at p = 0 or 1 finite (0, not 0/0).
  auto clamped_log = [](const Tensor& p) { return clamp_min(log(clamp_min(p, 1e-44)), -100.0); };
  Tensor loss = neg(t * clamped_log(probs) + (1.0 - t) * clamped_log(1.0 - probs));
  return reduce_loss(loss, reduction, op);
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const std::string& reduction) {
  const char* op = "binary_cross_entropy_with_logits";
  check_floating(logits, op, "logits");
  check_reduction(reduction, op);
  GLIA_CHECK(is_floating(target.dtype()), DTypeError, op, ": target must be floating-point probabilities, got ",
             name(target.dtype()));
  check_same_shape(logits, target, op, "logits", "target");
  Tensor t = cast(target, logits.dtype());
  // max(x, 0) - x t + log1p(exp(-|x|)), with max and |x| as where() so that at x = 0 both
  // take the x >= 0 branch and the gradient is sigmoid(0) - t exactly.
  Tensor pos = logits >= 0.0;
  Tensor relu_x = where(pos, logits, 0.0);
  Tensor abs_x = where(pos, logits, neg(logits));
  Tensor loss = relu_x - logits * t + log1p(exp(neg(abs_x)));
  return reduce_loss(loss, reduction, op);
}

Tensor mse_loss(const Tensor& pred, const Tensor& target, const std::string& reduction) {
  Tensor t = regression_target(pred, target, reduction, "mse_loss");
  return reduce_loss(square(pred - t), reduction, "mse_loss");
}

Tensor l1_loss(const Tensor& pred, const Tensor& target, const std::string& reduction) {
  Tensor t = regression_target(pred, target, reduction, "l1_loss");
  return reduce_loss(abs(pred - t), reduction, "l1_loss");
}

Tensor huber_loss(const Tensor& pred, const Tensor& target, double delta, const std::string& reduction) {
  GLIA_CHECK(delta > 0, ValueError, "huber_loss: delta must be positive, got ", delta);
  Tensor t = regression_target(pred, target, reduction, "huber_loss");
  Tensor d = pred - t;
  Tensor a = abs(d);
  Tensor loss = where(a <= delta, square(d) * 0.5, (a - 0.5 * delta) * delta);
  return reduce_loss(loss, reduction, "huber_loss");
}

}  // namespace glia
