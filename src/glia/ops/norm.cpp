// Batch and layer normalization. Training batch norm and layer norm run as one
// fused op each (statistics + normalization) with a fused backward op; the
// backward ops' own gradient is written with public functions, so double
// backward works. The composites of primitives are the references in the tests.
#include "glia/ops/norm.h"

#include "glia/autograd/autograd.h"
#include "glia/ops/elementwise.h"
#include "glia/ops/op.h"
#include "glia/ops/reduce.h"
#include "glia/ops/shape_ops.h"

namespace glia {
namespace {

using detail::norm_stat_dtype;

/// All dims but the last (the rows a channel's statistics run over).
std::vector<int64_t> row_dims(int64_t ndim) {
  std::vector<int64_t> d;
  for (int64_t i = 0; i + 1 < ndim; ++i) d.push_back(i);
  return d;
}

void check_channel_vector(const Tensor& t, int64_t C, const char* what, const Shape& xs) {
  if (!t.defined()) return;
  GLIA_CHECK(t.dim() == 1 && t.shape()[0] == C, ShapeError, "batch_norm: ", what, " must have shape [", C,
             "] (the channels of input shape ", to_string(xs), "), got ", to_string(t.shape()));
  check_floating(t, "batch_norm", what);
}

}  // namespace

namespace {

/// The gradient rule of the fused normalization backward ops (batch_norm_backward,
/// layer_norm_backward), written with public functions so that it is differentiable too.
/// Inputs (g, x, mean, rstd, gamma) give dx = rstd (gh - avg(gh) - xhat avg(gh xhat)),
/// dgamma = sum(g xhat), dbeta = sum(g), with xhat = (x - mean) rstd, gh = g gamma and avg
/// over `stat` (the dims each mean / rstd runs over). mean and rstd are the statistics of x:
/// this rule differentiates through them as functions of x and returns none for them.
/// `param` are the dims dgamma / dbeta sum over.
grads norm_backward_rule(GradContext& c, IntList stat, IntList param) {
  Tensor g = c.input(0), x = c.input(1), mu = c.input(2), s = c.input(3), gamma = c.input(4);
  const Tensor &A = c.grad_out(0), &B = c.grad_out(1), &Cb = c.grad_out(2);
  double n = 1;
  for (int64_t d : stat) n *= static_cast<double>(x.shape()[static_cast<size_t>(d)]);
  auto avg = [&](const Tensor& t) { return mean(t, stat, true); };
  Tensor xhat = (x - mu) * s;
  Tensor Axh = avg(A * xhat);
  Tensor P;  // the gradient w.r.t. gh with xhat held
  if (c.needs_grad(0) || c.needs_grad(4)) P = s * (A - avg(A) - xhat * Axh);
  Tensor dg, dx, dgamma;
  if (c.needs_grad(0)) dg = P * gamma + B * xhat + Cb;
  if (c.needs_grad(1)) {
    Tensor gh = g * gamma;
    Tensor ghxh = avg(gh * xhat);
    Tensor Gx = B * g - s * (A * ghxh + gh * Axh);                  // d/dxhat with rstd held
    Tensor Gs = sum(A * (gh - avg(gh) - xhat * ghxh), stat, true);  // d/drstd with xhat held
    dx = s * (Gx - avg(Gx) - xhat * avg(Gx * xhat)) - xhat * (Gs * s * s / n);
  }
  if (c.needs_grad(4)) dgamma = sum(P * g, param);
  return grads{dg, dx, Tensor(), Tensor(), dgamma};
}

}  // namespace

// Inputs: the gradient of y, x, the saved batch mean / invstd of x, and gamma [C].
// Outputs: dx, dgamma, dbeta.
GLIA_OP(batch_norm_backward)
    .inputs({"grad", "x", "mean", "invstd", "gamma"})
    .num_outputs(3)
    .infer([](InferContext& c) {
      c.set_output(c.shape(1), c.dtype(1));
      c.set_output(c.shape(4), c.dtype(4));
      c.set_output(c.shape(4), c.dtype(4));
    })
    .grad([](GradContext& c) {
      std::vector<int64_t> rd = row_dims(static_cast<int64_t>(c.input_shape(1).size()));
      return norm_backward_rule(c, IntList(rd.data(), rd.size()), IntList(rd.data(), rd.size()));
    });

// y = x * scale + shift per channel (the last axis): batch norm in inference, in one pass.
GLIA_OP(batch_norm_apply)
    .inputs({"x", "scale", "shift"})
    .infer(same_as_input(0))
    .save_inputs({0, 1})
    .grad([](GradContext& c) {
      const Tensor& g = c.grad_out();
      Tensor dx, dscale, dshift;
      if (c.needs_grad(0)) dx = g * c.input(1);
      if (c.needs_grad(1)) dscale = c.sum_to_input(g * c.input(0), 1);
      if (c.needs_grad(2)) dshift = c.sum_to_input(g, 2);
      return grads{dx, dscale, dshift};
    });

// Outputs: y, the batch mean, the inverse standard deviation 1/sqrt(var + eps), and the
// biased batch variance (for the running statistics). Only y is differentiable.
GLIA_OP(batch_norm_train)
    .inputs({"x", "gamma", "beta"})
    .num_outputs(4)
    .infer([](InferContext& c) {
      check_floating(c.input(0), "batch_norm");
      Shape C = {c.shape(0).back()};
      DType sd = norm_stat_dtype(c.dtype(0));
      c.set_output(c.shape(0), c.dtype(0));
      c.set_output(C, sd);
      c.set_output(C, sd);
      c.set_output(C, sd);
    })
    .save_inputs({0, 1})
    .save_outputs({1, 2})
    .grad([](GradContext& c) {
      // The statistics enter the backward op as constants: its gradient rule accounts for
      // their dependence on x itself.
      TensorList r = dispatch(op_batch_norm_backward,
                              {c.grad_out(0), c.input(0), c.output(1).detach(), c.output(2).detach(), c.input(1)});
      return grads{r[0], c.needs_grad(1) ? r[1] : Tensor(), c.needs_grad(2) ? r[2] : Tensor()};
    });

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& gamma,
                  const Tensor& beta, const BatchNormOptions& o) {
  check_floating(x, "batch_norm");
  GLIA_CHECK(x.dim() >= 2, ShapeError,
             "batch_norm: input must be at least 2-D with channels last (NC, NHWC), got shape ", to_string(x.shape()));
  GLIA_CHECK(o.eps >= 0, ValueError, "batch_norm: eps must be non-negative, got ", o.eps);
  int64_t C = x.shape().back();
  check_channel_vector(running_mean, C, "running_mean", x.shape());
  check_channel_vector(running_var, C, "running_var", x.shape());
  check_channel_vector(gamma, C, "gamma", x.shape());
  check_channel_vector(beta, C, "beta", x.shape());
  DType sd = norm_stat_dtype(x.dtype());
  Tensor g = gamma.defined() ? cast(gamma, sd) : ones({C}, {.dtype = sd, .device = x.device()});
  Tensor b = beta.defined() ? cast(beta, sd) : zeros({C}, {.dtype = sd, .device = x.device()});
  if (o.training) {
    // A graph's unknown batch (numel -1) is counted when the graph runs.
    bool unknown = x.numel() < 0;
    int64_t M = C == 0 ? 0 : x.numel() / C;
    GLIA_CHECK(unknown || M > 1, ValueError,
               "batch_norm: training needs more than one value per channel, got input shape ", to_string(x.shape()));
    TensorList r = dispatch(op_batch_norm_train, {x, g, b}, {{"eps", o.eps}});
    no_grad guard;
    // In a graph built without a scope, the state alone is not symbolic: record the updates too.
    graph_hook::RecordInto record(r[1]);
    if (running_mean.defined()) running_mean.mul_(o.momentum).add_(r[1] * (1.0 - o.momentum));
    if (running_var.defined()) {
      if (unknown) {
        std::vector<int64_t> rows = row_dims(x.dim());
        Tensor m = call(OpRegistry::instance().get("count_like"), {x.detach()}, {{"dims", rows}}).to(sd);
        running_var.mul_(o.momentum).add_(r[3] * (m / (m - 1.0) * (1.0 - o.momentum)));
      } else {
        running_var.mul_(o.momentum)
            .add_(r[3] * (static_cast<double>(M) / static_cast<double>(M - 1) * (1.0 - o.momentum)));
      }
    }
    return r[0];
  }
  GLIA_CHECK(running_mean.defined() && running_var.defined(), ValueError,
             "batch_norm: inference (training = false) needs running_mean and running_var");
  Tensor scale = g * rsqrt(cast(running_var, sd) + o.eps);
  Tensor shift = b - cast(running_mean, sd) * scale;
  return call(op_batch_norm_apply, {x, scale, shift});
}

// Inputs: the gradient of y [R, H], x, the saved mean / rstd [R, 1] and gamma [H].
// Outputs: dx, dgamma, dbeta.
GLIA_OP(layer_norm_backward)
    .inputs({"grad", "x", "mean", "rstd", "gamma"})
    .num_outputs(3)
    .infer([](InferContext& c) {
      c.set_output(c.shape(1), c.dtype(1));
      c.set_output(c.shape(4), c.dtype(4));
      c.set_output(c.shape(4), c.dtype(4));
    })
    .grad([](GradContext& c) { return norm_backward_rule(c, {1}, {0}); });

// Layer norm of x viewed as [R, H] (H = the normalized elements): outputs y, and the mean
// and rstd = 1/sqrt(var + eps) of each row as [R, 1]. Only y is differentiable.
GLIA_OP(layer_norm_fwd)
    .inputs({"x", "gamma", "beta"})
    .num_outputs(3)
    .infer([](InferContext& c) {
      Shape stat = {c.shape(0)[0], 1};
      c.set_output(c.shape(0), c.dtype(0));
      c.set_output(stat, norm_stat_dtype(c.dtype(0)));
      c.set_output(stat, norm_stat_dtype(c.dtype(0)));
    })
    .save_inputs({0, 1})
    .save_outputs({1, 2})
    .grad([](GradContext& c) {
      TensorList r = dispatch(op_layer_norm_backward,
                              {c.grad_out(0), c.input(0), c.output(1).detach(), c.output(2).detach(), c.input(1)});
      return grads{r[0], c.needs_grad(1) ? r[1] : Tensor(), c.needs_grad(2) ? r[2] : Tensor()};
    });

Tensor layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& gamma, const Tensor& beta, double eps) {
  check_floating(x, "layer_norm");
  GLIA_CHECK(normalized_ndim >= 1 && normalized_ndim <= x.dim(), ValueError,
             "layer_norm: normalized_ndim must be in [1, ", x.dim(), "] for input shape ", to_string(x.shape()),
             ", got ", normalized_ndim);
  GLIA_CHECK(eps >= 0, ValueError, "layer_norm: eps must be non-negative, got ", eps);
  Shape norm_shape(x.shape().end() - normalized_ndim, x.shape().end());
  for (const Tensor* t : {&gamma, &beta}) {
    if (!t->defined()) continue;
    GLIA_CHECK(t->shape() == norm_shape, ShapeError, "layer_norm: ", t == &gamma ? "gamma" : "beta",
               " must have shape ", to_string(norm_shape), " (the last ", normalized_ndim, " dims of input shape ",
               to_string(x.shape()), "), got ", to_string(t->shape()));
    check_floating(*t, "layer_norm", t == &gamma ? "gamma" : "beta");
  }
  int64_t H = numel(norm_shape), R = H == 0 ? 0 : x.numel() / H;
  DType sd = norm_stat_dtype(x.dtype());
  Tensor g = gamma.defined() ? reshape(cast(gamma, sd), {H}) : ones({H}, {.dtype = sd, .device = x.device()});
  Tensor b = beta.defined() ? reshape(cast(beta, sd), {H}) : zeros({H}, {.dtype = sd, .device = x.device()});
  // A graph's unknown batch (numel -1): reshape infers the rows at run time.
  TensorList r = dispatch(op_layer_norm_fwd, {reshape(x, {x.numel() < 0 ? -1 : R, H}), g, b}, {{"eps", eps}});
  return reshape(r[0], x.shape());
}

}  // namespace glia
