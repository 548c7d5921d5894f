// Reductions: definitions and gradient rules.
#include "glia/ops/reduce.h"

#include <algorithm>

#include "glia/ops/elementwise.h"
#include "glia/ops/op.h"
#include "glia/ops/shape_ops.h"

namespace glia {
namespace {

/// Sorted, unique, wrapped dims; empty means all.
std::vector<int64_t> norm_dims(IntList dims, int64_t ndim, const char* op) {
  std::vector<int64_t> d;
  if (dims.empty()) {
    for (int64_t i = 0; i < ndim; ++i) d.push_back(i);
    return d;
  }
  for (int64_t v : dims) d.push_back(wrap_axis(v, ndim, op));
  std::sort(d.begin(), d.end());
  GLIA_CHECK(std::adjacent_find(d.begin(), d.end()) == d.end(), ValueError, op, ": dimension repeated in ",
             to_string(dims));
  return d;
}

Shape reduced_shape(const Shape& s, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (size_t i = 0; i < s.size(); ++i) {
    bool r = std::binary_search(dims.begin(), dims.end(), static_cast<int64_t>(i));
    if (!r)
      out.push_back(s[i]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

InferFn reduce_infer(bool int_to_i64, bool float_only = false) {
  return [=](InferContext& c) {
    if (float_only) check_floating(c.input(0), c.name());
    const auto& dims = c.attr<std::vector<int64_t>>("dims");
    DType t = c.dtype(0);
    if (int_to_i64 && !is_floating(t)) t = DType::i64;
    c.set_output(reduced_shape(c.shape(0), dims, c.attr<bool>("keepdim")), t);
  };
}

/// The gradient of a reduction output, reshaped with kept dims and expanded to the input.
Tensor expand_back(const Tensor& g, const GradContext& c) {
  const auto& dims = c.attr<std::vector<int64_t>>("dims");
  Shape keep = reduced_shape(c.input_shape(0), dims, true);
  return c.expand_to_input(reshape(g, keep), 0);
}

Attrs rattrs(const std::vector<int64_t>& dims, bool keepdim) { return {{"dims", dims}, {"keepdim", keepdim}}; }

int64_t count(const Shape& s, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= s[static_cast<size_t>(d)];
  return n;
}

}  // namespace

GLIA_OP(sum)
    .inputs({"x"})
    .infer([](InferContext& c) {
      reduce_infer(true)(c);
      // Optional "dtype": mean sums 16-bit floats into float32, where a large sum cannot overflow.
      if (c.attrs().has("dtype")) c.outputs()[0].dtype = c.attr<DType>("dtype");
    })
    .save_inputs({})
    .grad([](GradContext& c) { return grads{expand_back(c.grad_out(), c)}; });

GLIA_OP(prod).inputs({"x"}).infer(reduce_infer(true)).grad([](GradContext& c) {
  // d prod / d x_i is the product of the others, written without dividing by zeros. With
  // p = product of the nonzero elements of a group and z = the sum of its zero elements
  // (0, but it carries the derivative with respect to them), the product of the others is
  //   no zeros: p / x_i;   one zero: p at the zero, p * z / x_i elsewhere;
  //   two zeros: p * (z - x_i) at the zeros, 0 elsewhere;   more: 0.
  // The z factors keep the second derivatives right too.
  Tensor x = c.input(0);
  const auto& dims = c.attr<std::vector<int64_t>>("dims");
  IntList d(dims.data(), dims.size());
  Tensor iszero = x == 0.0;
  Tensor nz = sum(iszero.to(x.dtype()), d, true);
  Tensor safe = where(iszero, ones_like(x), x);
  Tensor p = prod(safe, d, true);
  Tensor z = sum(where(iszero, x, zeros_like(x)), d, true);
  Tensor at_nonzero = where(nz == 0.0, p / safe, where(nz == 1.0, p * z / safe, zeros_like(x)));
  Tensor at_zero = where(nz == 1.0, expand(p, x.shape()), where(nz == 2.0, p * (z - x), zeros_like(x)));
  return grads{expand_back(c.grad_out(), c) * where(iszero, at_zero, at_nonzero)};
});

GLIA_OP(amax).inputs({"x"}).infer(reduce_infer(false)).save_outputs({0}).grad([](GradContext& c) {
  Tensor x = c.input(0);
  const auto& dims = c.attr<std::vector<int64_t>>("dims");
  Tensor y = reshape(c.output(0), reduced_shape(x.shape(), dims, true));
  Tensor mask = (x == y).to(x.dtype());
  Tensor n = sum(mask, IntList(dims.data(), dims.size()), true);
  return grads{expand_back(c.grad_out(), c) * mask / n};
});

GLIA_OP(amin).inputs({"x"}).infer(reduce_infer(false)).save_outputs({0}).grad([](GradContext& c) {
  Tensor x = c.input(0);
  const auto& dims = c.attr<std::vector<int64_t>>("dims");
  Tensor y = reshape(c.output(0), reduced_shape(x.shape(), dims, true));
  Tensor mask = (x == y).to(x.dtype());
  Tensor n = sum(mask, IntList(dims.data(), dims.size()), true);
  return grads{expand_back(c.grad_out(), c) * mask / n};
});

namespace {
// Max / min along one dim with indices: outputs {values, indices}.
InferFn arg_infer(bool with_values) {
  return [=](InferContext& c) {
    int64_t d = c.attr<int64_t>("dim");
    bool keep = c.attr<bool>("keepdim");
    GLIA_CHECK(c.input(0).numel() > 0, ValueError, c.name(), ": cannot reduce an empty tensor of shape ",
               to_string(c.shape(0)));
    GLIA_CHECK(c.dtype(0) != DType::b8, DTypeError, c.name(), ": not supported for bool tensors");
    Shape s = reduced_shape(c.shape(0), {d}, keep);
    if (with_values) c.set_output(s, c.dtype(0));
    c.set_output(s, DType::i64);
  };
}

grads arg_grad(GradContext& c) {
  int64_t d = c.attr<int64_t>("dim");
  const Shape& s = c.input_shape(0);
  Tensor idx = c.output(1);
  Shape keep = reduced_shape(s, {d}, true);
  Shape pos(s.size(), 1);
  pos[static_cast<size_t>(d)] = s[static_cast<size_t>(d)];
  Tensor positions = reshape(arange(0, s[static_cast<size_t>(d)], 1, {.device = idx.device()}), pos);
  Tensor mask = positions == reshape(idx, keep);
  return grads{where(mask, expand(reshape(c.grad_out(0), keep), s), 0.0)};
}
}  // namespace

GLIA_OP(max_dim).inputs({"x"}).num_outputs(2).infer(arg_infer(true)).save_inputs({}).save_outputs({1}).grad(arg_grad);
GLIA_OP(min_dim).inputs({"x"}).num_outputs(2).infer(arg_infer(true)).save_inputs({}).save_outputs({1}).grad(arg_grad);
GLIA_OP(argmax).inputs({"x"}).infer(arg_infer(false)).non_differentiable();
GLIA_OP(argmin).inputs({"x"}).infer(arg_infer(false)).non_differentiable();

GLIA_OP(var).inputs({"x"}).infer(reduce_infer(false, true)).grad([](GradContext& c) {
  Tensor x = c.input(0);
  const auto& dims = c.attr<std::vector<int64_t>>("dims");
  int64_t correction = c.attr<int64_t>("correction");
  Tensor m = mean(x, IntList(dims.data(), dims.size()), true);
  Tensor d = expand_back(c.grad_out(), c) * (x - m);
  bool unknown = false;
  for (int64_t i : dims) unknown = unknown || x.shape()[static_cast<size_t>(i)] < 0;
  if (unknown)  // a graph's runtime dim: count when it runs
    return grads{d * (2.0 / (call(define_op("count_like"), {x.detach()}, {{"dims", dims}}) - correction))};
  return grads{d * (2.0 / static_cast<double>(count(x.shape(), dims) - correction))};
});

// --- shapes known only when a graph runs (a placeholder's -1 batch)

// x summed down to the shape of `like` (whose values are not read).
GLIA_OP(sum_to_like)
    .inputs({"x", "like"})
    .infer([](InferContext& c) { c.set_output(c.shape(1), c.dtype(0)); })
    .grad([](GradContext& c) {
      return grads{call(define_op("expand_like"), {c.grad_out(), c.input(0).detach()}), Tensor()};
    });
// x broadcast to the shape of `like`.
GLIA_OP(expand_like)
    .inputs({"x", "like"})
    .infer([](InferContext& c) { c.set_output(c.shape(1), c.dtype(0)); })
    .grad([](GradContext& c) {
      return grads{call(op_sum_to_like, {c.grad_out(), c.input(0).detach()}), Tensor()};
    });
// The number of elements of x over dims, as a 0-d tensor of x's dtype.
GLIA_OP(count_like).inputs({"x"}).non_differentiable().infer([](InferContext& c) {
  c.set_output(Shape{}, c.dtype(0));
});

// --- public functions

Tensor sum(const Tensor& x, IntList dims, bool keepdim) {
  return call(op_sum, {x}, rattrs(norm_dims(dims, x.dim(), "sum"), keepdim));
}

Tensor mean(const Tensor& x, IntList dims, bool keepdim) {
  check_floating(x, "mean");
  auto d = norm_dims(dims, x.dim(), "mean");
  for (int64_t i : d)
    if (x.shape()[static_cast<size_t>(i)] < 0)  // a graph's runtime dim: count when it runs
      return sum(x, dims, keepdim) / call(op_count_like, {x.detach()}, {{"dims", d}});
  auto n = static_cast<double>(count(x.shape(), d));
  if (is_16bit(x.dtype())) {  // sum and divide in float32, as PyTorch
    Attrs a = rattrs(d, keepdim);
    a.set("dtype", DType::f32);
    return cast(call(op_sum, {x}, std::move(a)) / n, x.dtype());
  }
  return sum(x, dims, keepdim) / n;
}

Tensor prod(const Tensor& x, IntList dims, bool keepdim) {
  return call(op_prod, {x}, rattrs(norm_dims(dims, x.dim(), "prod"), keepdim));
}

Tensor amax(const Tensor& x, IntList dims, bool keepdim) {
  auto d = norm_dims(dims, x.dim(), "amax");
  for (int64_t i : d)
    GLIA_CHECK(x.shape()[static_cast<size_t>(i)] != 0, ValueError, "amax: cannot reduce over empty dimension ", i,
               " (shape ", to_string(x.shape()), ")");
  return call(op_amax, {x}, rattrs(d, keepdim));
}

Tensor amin(const Tensor& x, IntList dims, bool keepdim) {
  auto d = norm_dims(dims, x.dim(), "amin");
  for (int64_t i : d)
    GLIA_CHECK(x.shape()[static_cast<size_t>(i)] != 0, ValueError, "amin: cannot reduce over empty dimension ", i,
               " (shape ", to_string(x.shape()), ")");
  return call(op_amin, {x}, rattrs(d, keepdim));
}

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  dim = wrap_axis(dim, x.dim(), "max");
  GLIA_CHECK(x.numel() != 0, ValueError, "max: cannot reduce an empty tensor of shape ", to_string(x.shape()));
  auto r = dispatch(op_max_dim, {x}, {{"dim", dim}, {"keepdim", keepdim}});
  return {r[0], r[1]};
}
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  dim = wrap_axis(dim, x.dim(), "min");
  GLIA_CHECK(x.numel() != 0, ValueError, "min: cannot reduce an empty tensor of shape ", to_string(x.shape()));
  auto r = dispatch(op_min_dim, {x}, {{"dim", dim}, {"keepdim", keepdim}});
  return {r[0], r[1]};
}
Tensor max(const Tensor& x) { return amax(x); }
Tensor min(const Tensor& x) { return amin(x); }

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return call(op_argmax, {x}, {{"dim", wrap_axis(dim, x.dim(), "argmax")}, {"keepdim", keepdim}});
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return call(op_argmin, {x}, {{"dim", wrap_axis(dim, x.dim(), "argmin")}, {"keepdim", keepdim}});
}
Tensor argmax(const Tensor& x) {
  GLIA_CHECK(x.numel() > 0, ValueError, "argmax: cannot reduce an empty tensor of shape ", to_string(x.shape()));
  return argmax(reshape(x, {-1}), 0);
}
Tensor argmin(const Tensor& x) {
  GLIA_CHECK(x.numel() > 0, ValueError, "argmin: cannot reduce an empty tensor of shape ", to_string(x.shape()));
  return argmin(reshape(x, {-1}), 0);
}

Tensor var(const Tensor& x, IntList dims, int64_t correction, bool keepdim) {
  auto d = norm_dims(dims, x.dim(), "var");
  Attrs a = rattrs(d, keepdim);
  a.set("correction", correction);
  return call(op_var, {x}, std::move(a));
}

Tensor std(const Tensor& x, IntList dims, int64_t correction, bool keepdim) {
  return sqrt(var(x, dims, correction, keepdim));
}

Tensor logsumexp(const Tensor& x, IntList dims, bool keepdim) {
  check_floating(x, "logsumexp");
  if (is_16bit(x.dtype()))  // in float32: a 16-bit sum of exps overflows
    return cast(logsumexp(cast(x, DType::f32), dims, keepdim), x.dtype());
  if (x.numel() == 0) return log(sum(exp(x), dims, keepdim));  // log(0) = -inf, as PyTorch; no max to shift by
  Tensor m = amax(x, dims, true).detach();
  // Rows that are all -inf would give nan from (-inf) - (-inf); shift by 0 there.
  m = where(isfinite(m), m, zeros_like(m));
  Tensor r = log(sum(exp(x - m), dims, true)) + m;
  if (!keepdim) {
    auto d = norm_dims(dims, x.dim(), "logsumexp");
    r = reshape(r, reduced_shape(x.shape(), d, false));
  }
  return r;
}

Tensor sum_to(const Tensor& x, IntList shape) {
  if (x.shape() == Shape(shape.begin(), shape.end())) return x;
  int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  GLIA_CHECK(lead >= 0, ShapeError, "sum_to: cannot sum shape ", to_string(x.shape()), " to the larger shape ",
             to_string(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
      continue;
    }
    int64_t want = shape[static_cast<size_t>(i - lead)];
    int64_t have = x.shape()[static_cast<size_t>(i)];
    if (want == 1 && have != 1) {
      dims.push_back(i);
    } else {
      GLIA_CHECK(want == have, ShapeError, "sum_to: shape ", to_string(x.shape()), " does not broadcast from ",
                 to_string(shape));
    }
  }
  Tensor r = dims.empty() ? x : call(op_sum, {x}, rattrs(dims, true));
  return reshape(r, shape);
}

// Empty tensors: all is true and any is false (vacuous truth), as in NumPy and PyTorch.
Tensor all(const Tensor& x) {
  if (x.numel() == 0) return full({}, true, {.dtype = DType::b8, .device = x.device()});
  return amin(x.to(DType::b8).to(DType::u8)) == 1;
}
Tensor any(const Tensor& x) {
  if (x.numel() == 0) return full({}, false, {.dtype = DType::b8, .device = x.device()});
  return amax(x.to(DType::b8).to(DType::u8)) == 1;
}

Tensor Tensor::sum() const { return glia::sum(*this); }
Tensor Tensor::sum(IntList d, bool k) const { return glia::sum(*this, d, k); }
Tensor Tensor::mean() const { return glia::mean(*this); }
Tensor Tensor::mean(IntList d, bool k) const { return glia::mean(*this, d, k); }
Tensor Tensor::argmax(int64_t d, bool k) const { return glia::argmax(*this, d, k); }

}  // namespace glia
