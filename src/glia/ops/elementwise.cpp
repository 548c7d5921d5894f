// Element-wise op definitions: schema, inference and gradient rules.
#include "glia/ops/elementwise.h"

#include <cmath>

#include "glia/autograd/autograd.h"
#include "glia/core/cuda_hooks.h"
#include "glia/ops/op.h"
#include "glia/ops/reduce.h"
#include "glia/ops/shape_ops.h"

namespace glia {
namespace {

Tensor num(const Scalar& s) { return scalar_tensor(s); }

/// Broadcast shape and promoted dtype; `float_result` turns integer results into float32.
InferFn binary_infer(bool float_result = false, bool bool_result = false) {
  return [=](InferContext& c) {
    Shape s = broadcast_shapes(c.shape(0), c.shape(1), c.name());
    DType t = result_type(std::span<const Tensor>(&c.input(0), 2));
    if (float_result && !is_floating(t)) t = DType::f32;
    c.set_output(std::move(s), bool_result ? DType::b8 : t);
  };
}

/// Same shape; floating inputs only (exp of an int tensor is a DTypeError, by design:
/// convert explicitly).
InferFn float_unary_infer() {
  return [](InferContext& c) {
    check_floating(c.input(0), c.name());
    c.set_output(c.shape(0), c.dtype(0));
  };
}

}  // namespace

// --- arithmetic

GLIA_OP(add).inputs({"a", "b"}).infer(binary_infer()).save_inputs({}).grad([](GradContext& c) {
  return grads{c.sum_to_input(c.grad_out(), 0), c.sum_to_input(c.grad_out(), 1)};
});

GLIA_OP(sub).inputs({"a", "b"}).infer(binary_infer()).save_inputs({}).grad([](GradContext& c) {
  return grads{c.sum_to_input(c.grad_out(), 0), c.sum_to_input(neg(c.grad_out()), 1)};
});

GLIA_OP(mul).inputs({"a", "b"}).infer(binary_infer()).grad([](GradContext& c) {
  const Tensor& g = c.grad_out();
  Tensor ga, gb;
  if (c.needs_grad(0)) ga = c.sum_to_input(g * c.input(1), 0);
  if (c.needs_grad(1)) gb = c.sum_to_input(g * c.input(0), 1);
  return grads{ga, gb};
});

GLIA_OP(div).inputs({"a", "b"}).infer(binary_infer(true)).grad([](GradContext& c) {
  const Tensor& g = c.grad_out();
  Tensor b = c.input(1);
  Tensor ga, gb;
  if (c.needs_grad(0)) ga = c.sum_to_input(g / b, 0);
  if (c.needs_grad(1)) gb = c.sum_to_input(neg(g) * c.input(0) / (b * b), 1);
  return grads{ga, gb};
});

GLIA_OP(pow).inputs({"a", "b"}).infer(binary_infer()).save_outputs({0}).grad([](GradContext& c) {
  const Tensor& g = c.grad_out();
  Tensor a = c.input(0), b = c.input(1);
  Tensor ga, gb;
  if (c.needs_grad(0)) ga = c.sum_to_input(g * b * pow(a, b - 1), 0);
  if (c.needs_grad(1)) {
    // d/db a^b = a^b log a; defined as 0 where a == 0 (as PyTorch).
    Tensor y = c.output(0);
    gb = c.sum_to_input(where(a == 0, num(0.0), g * y * log(a)), 1);
  }
  return grads{ga, gb};
});

GLIA_OP(pow_scalar).inputs({"x"}).infer(same_as_input(0)).grad([](GradContext& c) {
  double e = c.attr<double>("exponent");
  if (e == 0.0) return grads{zeros_like(c.grad_out())};
  return grads{c.grad_out() * e * pow(c.input(0), e - 1.0)};
});

GLIA_OP(maximum).inputs({"a", "b"}).infer(binary_infer()).grad([](GradContext& c) {
  // Ties split the gradient evenly, as PyTorch does.
  const Tensor& g = c.grad_out();
  Tensor a = c.input(0), b = c.input(1);
  Tensor half = g * 0.5;
  return grads{c.sum_to_input(where(a > b, g, where(a == b, half, num(0.0))), 0),
               c.sum_to_input(where(b > a, g, where(a == b, half, num(0.0))), 1)};
});

GLIA_OP(minimum).inputs({"a", "b"}).infer(binary_infer()).grad([](GradContext& c) {
  const Tensor& g = c.grad_out();
  Tensor a = c.input(0), b = c.input(1);
  Tensor half = g * 0.5;
  return grads{c.sum_to_input(where(a < b, g, where(a == b, half, num(0.0))), 0),
               c.sum_to_input(where(b < a, g, where(a == b, half, num(0.0))), 1)};
});

GLIA_OP(neg).inputs({"x"}).infer(same_as_input(0)).save_inputs({}).grad([](GradContext& c) {
  return grads{neg(c.grad_out())};
});

GLIA_OP(abs).inputs({"x"}).infer(same_as_input(0)).grad([](GradContext& c) {
  return grads{c.grad_out() * sign(c.input(0))};
});

GLIA_OP(sign).inputs({"x"}).infer(same_as_input(0)).save_inputs({}).grad([](GradContext& c) {
  return grads{zeros_like(c.grad_out())};
});

GLIA_OP(square).inputs({"x"}).infer(same_as_input(0)).grad([](GradContext& c) {
  return grads{c.grad_out() * c.input(0) * 2.0};
});

GLIA_OP(clamp).inputs({"x"}).infer(same_as_input(0)).grad([](GradContext& c) {
  Tensor x = c.input(0);
  Tensor inside = ones_like(x).to(DType::b8);
  if (c.attrs().has("min")) inside = inside & (x >= num(c.attr<Scalar>("min")));
  if (c.attrs().has("max")) inside = inside & (x <= num(c.attr<Scalar>("max")));
  return grads{where(inside, c.grad_out(), num(0.0))};
});

// --- comparisons and logic

#define GLIA_COMPARE_OP(name) GLIA_OP(name).inputs({"a", "b"}).infer(binary_infer(false, true)).non_differentiable()
GLIA_COMPARE_OP(eq);
GLIA_COMPARE_OP(ne);
GLIA_COMPARE_OP(lt);
GLIA_COMPARE_OP(le);
GLIA_COMPARE_OP(gt);
GLIA_COMPARE_OP(ge);
GLIA_COMPARE_OP(logical_and);
GLIA_COMPARE_OP(logical_or);
GLIA_COMPARE_OP(logical_xor);
#undef GLIA_COMPARE_OP

GLIA_OP(logical_not).inputs({"x"}).non_differentiable().infer([](InferContext& c) {
  c.set_output(c.shape(0), DType::b8);
});
GLIA_OP(isnan).inputs({"x"}).non_differentiable().infer([](InferContext& c) { c.set_output(c.shape(0), DType::b8); });
GLIA_OP(isfinite).inputs({"x"}).non_differentiable().infer([](InferContext& c) {
  c.set_output(c.shape(0), DType::b8);
});

GLIA_OP(where)
    .inputs({"cond", "a", "b"})
    .infer([](InferContext& c) {
      GLIA_CHECK(c.dtype(0) == DType::b8, DTypeError, "where: the condition must be a bool tensor, got ",
                 name(c.dtype(0)));
      Shape s = broadcast_shapes(broadcast_shapes(c.shape(0), c.shape(1), "where"), c.shape(2), "where");
      c.set_output(std::move(s), result_type(std::span<const Tensor>(&c.input(1), 2)));
    })
    .save_inputs({0})
    .grad([](GradContext& c) {
      Tensor cond = c.input(0);
      const Tensor& g = c.grad_out();
      Tensor ga, gb;
      if (c.needs_grad(1)) ga = c.sum_to_input(where(cond, g, num(0.0)), 1);
      if (c.needs_grad(2)) gb = c.sum_to_input(where(cond, num(0.0), g), 2);
      return grads{Tensor(), ga, gb};
    });

// --- math

GLIA_OP(exp).inputs({"x"}).infer(float_unary_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  return grads{c.grad_out() * c.output(0)};
});
GLIA_OP(expm1).inputs({"x"}).infer(float_unary_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  return grads{c.grad_out() * (c.output(0) + 1.0)};
});
GLIA_OP(log).inputs({"x"}).infer(float_unary_infer()).grad([](GradContext& c) {
  return grads{c.grad_out() / c.input(0)};
});
GLIA_OP(log1p).inputs({"x"}).infer(float_unary_infer()).grad([](GradContext& c) {
  return grads{c.grad_out() / (c.input(0) + 1.0)};
});
GLIA_OP(sqrt).inputs({"x"}).infer(float_unary_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  return grads{c.grad_out() / (c.output(0) * 2.0)};
});
GLIA_OP(rsqrt).inputs({"x"}).infer(float_unary_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  Tensor y = c.output(0);
  return grads{c.grad_out() * y * y * y * -0.5};
});
GLIA_OP(reciprocal).inputs({"x"}).infer(float_unary_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  Tensor y = c.output(0);
  return grads{neg(c.grad_out()) * y * y};
});
GLIA_OP(sin).inputs({"x"}).infer(float_unary_infer()).grad([](GradContext& c) {
  return grads{c.grad_out() * cos(c.input(0))};
});
GLIA_OP(cos).inputs({"x"}).infer(float_unary_infer()).grad([](GradContext& c) {
  return grads{neg(c.grad_out()) * sin(c.input(0))};
});
GLIA_OP(tanh).inputs({"x"}).infer(float_unary_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  return grads{tanh_backward(c.grad_out(), c.output(0))};
});
GLIA_OP(sigmoid).inputs({"x"}).infer(float_unary_infer()).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  return grads{sigmoid_backward(c.grad_out(), c.output(0))};
});
GLIA_OP(erf).inputs({"x"}).infer(float_unary_infer()).grad([](GradContext& c) {
  Tensor x = c.input(0);
  return grads{c.grad_out() * exp(neg(x * x)) * (2.0 / std::sqrt(M_PI))};
});

// --- activations

GLIA_OP(relu).inputs({"x"}).infer(same_as_input(0)).save_inputs({}).save_outputs({0}).grad([](GradContext& c) {
  return grads{relu_backward(c.grad_out(), c.output(0))};
});
GLIA_OP(leaky_relu).inputs({"x"}).infer(float_unary_infer()).grad([](GradContext& c) {
  const Tensor& g = c.grad_out();
  return grads{where(c.input(0) > 0.0, g, g * c.attr<double>("negative_slope"))};
});
GLIA_OP(elu).inputs({"x"}).infer(float_unary_infer()).save_outputs({0}).grad([](GradContext& c) {
  const Tensor& g = c.grad_out();
  double alpha = c.attr<double>("alpha");
  return grads{where(c.input(0) > 0.0, g, g * (c.output(0) + alpha))};
});
GLIA_OP(gelu).inputs({"x"}).infer(float_unary_infer()).grad([](GradContext& c) {
  Tensor x = c.input(0);
  const Tensor& g = c.grad_out();
  if (c.attr<bool>("approximate")) {
    const double k = std::sqrt(2.0 / M_PI), a = 0.044715;
    Tensor t = tanh((x + x * x * x * a) * k);
    Tensor d = (t + 1.0) * 0.5 + x * 0.5 * (1.0 - t * t) * k * (x * x * (3.0 * a) + 1.0);
    return grads{g * d};
  }
  Tensor cdf = (erf(x * M_SQRT1_2) + 1.0) * 0.5;
  Tensor pdf = exp(x * x * -0.5) * (1.0 / std::sqrt(2.0 * M_PI));
  return grads{g * (cdf + x * pdf)};
});
GLIA_OP(softplus).inputs({"x"}).infer(float_unary_infer()).grad([](GradContext& c) {
  double beta = c.attr<double>("beta"), threshold = c.attr<double>("threshold");
  Tensor bx = c.input(0) * beta;
  return grads{where(bx > threshold, c.grad_out(), c.grad_out() * sigmoid(bx))};
});

GLIA_OP(relu_backward).inputs({"grad", "y"}).infer(same_as_input(0)).save_inputs({1}).grad([](GradContext& c) {
  return grads{relu_backward(c.grad_out(), c.input(1)), Tensor()};
});
GLIA_OP(sigmoid_backward).inputs({"grad", "y"}).infer(same_as_input(0)).grad([](GradContext& c) {
  Tensor g = c.input(0), y = c.input(1);
  const Tensor& gg = c.grad_out();
  Tensor dg, dy;
  if (c.needs_grad(0)) dg = sigmoid_backward(gg, y);
  if (c.needs_grad(1)) dy = gg * g * (1.0 - y * 2.0);
  return grads{dg, dy};
});
GLIA_OP(tanh_backward).inputs({"grad", "y"}).infer(same_as_input(0)).grad([](GradContext& c) {
  Tensor g = c.input(0), y = c.input(1);
  const Tensor& gg = c.grad_out();
  Tensor dg, dy;
  if (c.needs_grad(0)) dg = tanh_backward(gg, y);
  if (c.needs_grad(1)) dy = gg * g * y * -2.0;
  return grads{dg, dy};
});

GLIA_OP(cast)
    .inputs({"x"})
    .infer([](InferContext& c) { c.set_output(c.shape(0), c.attr<DType>("dtype")); })
    .save_inputs({})
    .grad([](GradContext& c) {
      if (!is_floating(c.input_dtype(0))) return grads{Tensor()};
      return grads{cast(c.grad_out(), c.input_dtype(0))};
    });

// In-place only: copy_ and fill_ (not recorded by autograd).
GLIA_OP(copy).inputs({"self", "src"}).non_differentiable().infer([](InferContext& c) {
  broadcast_shapes(c.shape(0), c.shape(1), "copy_");
  GLIA_CHECK(broadcast_shapes(c.shape(0), c.shape(1), "copy_") == c.shape(0), ShapeError, "copy_: source of shape ",
             to_string(c.shape(1)), " does not broadcast to destination shape ", to_string(c.shape(0)));
  c.set_output(c.shape(0), c.dtype(0));
});
GLIA_OP(fill).inputs({"self"}).non_differentiable().infer(same_as_input(0));
// A tensor like x filled with `value` (x's values are not read): for graphs whose shapes are
// known only when they run.
GLIA_OP(full_like).inputs({"x"}).non_differentiable().infer(same_as_input(0));

// --- public functions

Tensor add(const Tensor& a, const Tensor& b) { return call(op_add, {a, b}); }
Tensor sub(const Tensor& a, const Tensor& b) { return call(op_sub, {a, b}); }
Tensor mul(const Tensor& a, const Tensor& b) { return call(op_mul, {a, b}); }
Tensor div(const Tensor& a, const Tensor& b) { return call(op_div, {a, b}); }
Tensor pow(const Tensor& a, const Tensor& b) { return call(op_pow, {a, b}); }
Tensor pow(const Tensor& a, const Scalar& e) {
  // As PyTorch: a float exponent makes an integer tensor float32; integer powers stay integers.
  if (!is_floating(a.dtype()) && e.is_float()) return pow(a.to(DType::f32), e);
  GLIA_CHECK(is_floating(a.dtype()) || a.dtype() == DType::b8 || e.to_double() >= 0, ValueError,
             "pow: integers to negative integer powers are not allowed (exponent ", e, " on a ", name(a.dtype()),
             " tensor); convert to float first");
  return call(op_pow_scalar, {a}, {{"exponent", e.to_double()}});
}
Tensor maximum(const Tensor& a, const Tensor& b) { return call(op_maximum, {a, b}); }
Tensor minimum(const Tensor& a, const Tensor& b) { return call(op_minimum, {a, b}); }
Tensor neg(const Tensor& x) { return call(op_neg, {x}); }
Tensor abs(const Tensor& x) { return call(op_abs, {x}); }
Tensor sign(const Tensor& x) { return call(op_sign, {x}); }
Tensor square(const Tensor& x) { return call(op_square, {x}); }
// Float bounds on an integer tensor give a float32 result, as PyTorch's type promotion does.
Tensor clamp(const Tensor& x, const Scalar& lo, const Scalar& hi) {
  GLIA_CHECK(lo.to_double() <= hi.to_double(), ValueError, "clamp: min ", lo, " is greater than max ", hi);
  if (!is_floating(x.dtype()) && (lo.is_float() || hi.is_float())) return clamp(x.to(DType::f32), lo, hi);
  return call(op_clamp, {x}, {{"min", lo}, {"max", hi}});
}
Tensor clamp_min(const Tensor& x, const Scalar& lo) {
  if (!is_floating(x.dtype()) && lo.is_float()) return clamp_min(x.to(DType::f32), lo);
  return call(op_clamp, {x}, {{"min", lo}});
}
Tensor clamp_max(const Tensor& x, const Scalar& hi) {
  if (!is_floating(x.dtype()) && hi.is_float()) return clamp_max(x.to(DType::f32), hi);
  return call(op_clamp, {x}, {{"max", hi}});
}

Tensor eq(const Tensor& a, const Tensor& b) { return call(op_eq, {a, b}); }
Tensor ne(const Tensor& a, const Tensor& b) { return call(op_ne, {a, b}); }
Tensor lt(const Tensor& a, const Tensor& b) { return call(op_lt, {a, b}); }
Tensor le(const Tensor& a, const Tensor& b) { return call(op_le, {a, b}); }
Tensor gt(const Tensor& a, const Tensor& b) { return call(op_gt, {a, b}); }
Tensor ge(const Tensor& a, const Tensor& b) { return call(op_ge, {a, b}); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return call(op_logical_and, {a, b}); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return call(op_logical_or, {a, b}); }
Tensor logical_xor(const Tensor& a, const Tensor& b) { return call(op_logical_xor, {a, b}); }
Tensor logical_not(const Tensor& x) { return call(op_logical_not, {x}); }
Tensor isnan(const Tensor& x) { return call(op_isnan, {x}); }
Tensor isfinite(const Tensor& x) { return call(op_isfinite, {x}); }
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) { return call(op_where, {cond, a, b}); }
Tensor where(const Tensor& cond, const Tensor& a, const Scalar& b) { return where(cond, a, num(b)); }
Tensor where(const Tensor& cond, const Scalar& a, const Tensor& b) { return where(cond, num(a), b); }

Tensor exp(const Tensor& x) { return call(op_exp, {x}); }
Tensor expm1(const Tensor& x) { return call(op_expm1, {x}); }
Tensor log(const Tensor& x) { return call(op_log, {x}); }
Tensor log1p(const Tensor& x) { return call(op_log1p, {x}); }
Tensor sqrt(const Tensor& x) { return call(op_sqrt, {x}); }
Tensor rsqrt(const Tensor& x) { return call(op_rsqrt, {x}); }
Tensor reciprocal(const Tensor& x) { return call(op_reciprocal, {x}); }
Tensor sin(const Tensor& x) { return call(op_sin, {x}); }
Tensor cos(const Tensor& x) { return call(op_cos, {x}); }
Tensor tanh(const Tensor& x) { return call(op_tanh, {x}); }
Tensor sigmoid(const Tensor& x) { return call(op_sigmoid, {x}); }
Tensor erf(const Tensor& x) { return call(op_erf, {x}); }

Tensor relu(const Tensor& x) { return call(op_relu, {x}); }
Tensor leaky_relu(const Tensor& x, double slope) { return call(op_leaky_relu, {x}, {{"negative_slope", slope}}); }
Tensor elu(const Tensor& x, double alpha) { return call(op_elu, {x}, {{"alpha", alpha}}); }
Tensor gelu(const Tensor& x, bool approximate) { return call(op_gelu, {x}, {{"approximate", approximate}}); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  GLIA_CHECK(beta > 0, ValueError, "softplus: beta must be positive, got ", beta);
  return call(op_softplus, {x}, {{"beta", beta}, {"threshold", threshold}});
}
Tensor silu(const Tensor& x) { return x * sigmoid(x); }

Tensor relu_backward(const Tensor& grad, const Tensor& y) { return call(op_relu_backward, {grad, y}); }
Tensor sigmoid_backward(const Tensor& grad, const Tensor& y) { return call(op_sigmoid_backward, {grad, y}); }
Tensor tanh_backward(const Tensor& grad, const Tensor& y) { return call(op_tanh_backward, {grad, y}); }

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  return call(op_cast, {x}, {{"dtype", dtype}});
}

// --- operators

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Scalar& b) { return add(a, num(b)); }
Tensor operator-(const Tensor& a, const Scalar& b) { return sub(a, num(b)); }
Tensor operator*(const Tensor& a, const Scalar& b) { return mul(a, num(b)); }
Tensor operator/(const Tensor& a, const Scalar& b) { return div(a, num(b)); }
Tensor operator+(const Scalar& a, const Tensor& b) { return add(num(a), b); }
Tensor operator-(const Scalar& a, const Tensor& b) { return sub(num(a), b); }
Tensor operator*(const Scalar& a, const Tensor& b) { return mul(num(a), b); }
Tensor operator/(const Scalar& a, const Tensor& b) { return div(num(a), b); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator==(const Tensor& a, const Scalar& b) { return eq(a, num(b)); }
Tensor operator!=(const Tensor& a, const Scalar& b) { return ne(a, num(b)); }
Tensor operator<(const Tensor& a, const Scalar& b) { return lt(a, num(b)); }
Tensor operator<=(const Tensor& a, const Scalar& b) { return le(a, num(b)); }
Tensor operator>(const Tensor& a, const Scalar& b) { return gt(a, num(b)); }
Tensor operator>=(const Tensor& a, const Scalar& b) { return ge(a, num(b)); }
Tensor operator&(const Tensor& a, const Tensor& b) { return logical_and(a, b); }
Tensor operator|(const Tensor& a, const Tensor& b) { return logical_or(a, b); }
Tensor operator^(const Tensor& a, const Tensor& b) { return logical_xor(a, b); }
Tensor operator~(const Tensor& x) { return logical_not(x); }

// --- in-place methods

namespace {
void inplace(const OpDef& op, const Tensor& self, std::initializer_list<Tensor> others, Attrs attrs = {}) {
  dispatch_inplace(op, self, std::span<const Tensor>(others.begin(), others.size()), std::move(attrs));
}
}  // namespace

const Tensor& Tensor::add_(const Tensor& o, const Scalar& alpha) const {
  if (alpha.to_double() == 1.0) {
    inplace(op_add, *this, {o});
  } else {
    inplace(op_add, *this, {o * alpha});
  }
  return *this;
}
const Tensor& Tensor::add_(const Scalar& s) const {
  inplace(op_add, *this, {num(s)});
  return *this;
}
const Tensor& Tensor::sub_(const Tensor& o) const {
  inplace(op_sub, *this, {o});
  return *this;
}
const Tensor& Tensor::sub_(const Scalar& s) const {
  inplace(op_sub, *this, {num(s)});
  return *this;
}
const Tensor& Tensor::mul_(const Tensor& o) const {
  inplace(op_mul, *this, {o});
  return *this;
}
const Tensor& Tensor::mul_(const Scalar& s) const {
  inplace(op_mul, *this, {num(s)});
  return *this;
}
const Tensor& Tensor::div_(const Tensor& o) const {
  inplace(op_div, *this, {o});
  return *this;
}
const Tensor& Tensor::div_(const Scalar& s) const {
  inplace(op_div, *this, {num(s)});
  return *this;
}
const Tensor& Tensor::clamp_(const Scalar& lo, const Scalar& hi) const {
  inplace(op_clamp, *this, {}, {{"min", lo}, {"max", hi}});
  return *this;
}
const Tensor& Tensor::copy_(const Tensor& src) const {
  GLIA_CHECK(src.defined(), ValueError, "copy_: the source is an undefined tensor");
  check_no_internal_overlap(*this, "copy_");
  if (GradMode::is_enabled())
    GLIA_CHECK(!requires_grad(), ValueError,
               "copy_: in-place copy into a tensor that requires grad; run it under glia::no_grad");
  // copy_ converts dtypes freely, so it does not go through the promotion check.
  Tensor s = src;
  if (s.storage() && s.storage() == storage() && (s.strides() != strides() || s.offset() != offset())) s = src.clone();
  Tensor self = *this;
  Tensor ins[2] = {self, s};
  if (graph_hook::intercepts(ins)) [[unlikely]] {
    graph_hook::record(op_copy, ins, Attrs{}, true);
    return *this;
  }
  InferContext ic(op_copy, ins, Attrs{});
  op_copy.infer_fn()(ic);
  if (s.device() != device()) {
    detail::cross_device_copy(self, s);
    storage()->bump_version();
    return *this;
  }
  const KernelFn* k = op_copy.kernel_for(device().type);
  GLIA_CHECK(k != nullptr, DeviceError, "copy_: no kernel for device ", device().str());
  Attrs none;
  KernelContext kc(op_copy, ins, std::span<Tensor>(&self, 1), none);
  (*k)(kc);
  storage()->bump_version();
  return *this;
}
const Tensor& Tensor::fill_(const Scalar& v) const {
  inplace(op_fill, *this, {}, {{"value", v}});
  return *this;
}
const Tensor& Tensor::zero_() const { return fill_(0); }

}  // namespace glia

namespace glia {
Tensor Tensor::exp() const { return glia::exp(*this); }
Tensor Tensor::log() const { return glia::log(*this); }
Tensor Tensor::abs() const { return glia::abs(*this); }
Tensor Tensor::sqrt() const { return glia::sqrt(*this); }
Tensor Tensor::relu() const { return glia::relu(*this); }
Tensor Tensor::tanh() const { return glia::tanh(*this); }
Tensor Tensor::sigmoid() const { return glia::sigmoid(*this); }
Tensor Tensor::pow(const Scalar& e) const { return glia::pow(*this, e); }
}  // namespace glia
