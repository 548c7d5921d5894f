// Convolution and pooling: op definitions, gradient rules, public functions.
//
// The ops carry resolved geometry only (stride, dilation, explicit pads
// {top, bottom, left, right}, groups); "same" and "causal" are turned into
// pads by the public functions. Each backward is an op of its own whose
// gradient is again one of these ops, so gradients of any order work.
#include "glia/ops/conv.h"

#include "glia/ops/elementwise.h"
#include "glia/ops/op.h"
#include "glia/ops/reduce.h"
#include "glia/ops/shape_ops.h"

namespace glia {
namespace {

std::vector<int64_t> vec(IntList l) { return {l.begin(), l.end()}; }
using I64s = std::vector<int64_t>;

/// Output size of one spatial dim (no checks: the public functions did them).
int64_t conv_out(int64_t in, int64_t k, int64_t stride, int64_t dilation, int64_t before, int64_t after) {
  int64_t span = (k - 1) * dilation + 1;
  return (in + before + after - span) / stride + 1;
}

/// Output shape of a conv2d from attrs; input [N,H,W,C], weight [KH,KW,Cg,Cout].
Shape conv_out_shape(IntList x, IntList w, const Attrs& a) {
  const auto& s = a.get<I64s>("stride");
  const auto& d = a.get<I64s>("dilation");
  const auto& p = a.get<I64s>("pads");
  return {x[0], conv_out(x[1], w[0], s[0], d[0], p[0], p[1]), conv_out(x[2], w[1], s[1], d[1], p[2], p[3]), w[3]};
}

void check_same_dtype(const InferContext& c) {
  for (size_t i = 1; i < c.num_inputs(); ++i)
    GLIA_CHECK(c.dtype(i) == c.dtype(0), DTypeError, c.name(), ": all operands must have one dtype, got ",
               name(c.dtype(0)), " and ", name(c.dtype(i)));
  check_floating(c.input(0), c.name());
}

/// The output shape of a conv2d on x and w, after checking that the shapes fit together
/// (the public functions check with friendlier messages; this guards direct op calls).
Shape checked_conv_out(const InferContext& c, IntList x, IntList w) {
  GLIA_CHECK(x.size() == 4 && w.size() == 4 && w[2] * c.attr<int64_t>("groups") == x[3], ShapeError, c.name(),
             ": input ", to_string(x), " and weight ", to_string(w), " do not fit");
  Shape y = conv_out_shape(x, w, c.attrs());
  GLIA_CHECK(y[1] > 0 && y[2] > 0, ShapeError, c.name(), ": empty output for input ", to_string(x), " and weight ",
             to_string(w));
  return y;
}

Attrs with(const Attrs& a, const char* key, IntList v) {
  Attrs r = a;
  r.set(key, vec(v));
  return r;
}

const OpDef& op(const char* name) { return OpRegistry::instance().get(name); }

/// The "input_shape" attr of a backward op. In a graph with an unknown batch it holds -1 there
/// (the input's shape when the gradient was built); the batch is the gradient's (input `from`).
Shape input_shape_attr(const InferContext& c, size_t from = 0) {
  const auto& a = c.attr<I64s>("input_shape");
  Shape s(a.begin(), a.end());
  if (!s.empty() && s[0] < 0 && !c.shape(from).empty()) s[0] = c.shape(from)[0];
  return s;
}

grads conv_grads(GradContext& c) {
  const Tensor& g = c.grad_out();
  Tensor gx, gw, gb;
  if (c.needs_grad(0))
    gx = call(op("conv2d_input_grad"), {g, c.input(1)}, with(c.attrs(), "input_shape", c.input_shape(0)));
  if (c.needs_grad(1))
    gw = call(op("conv2d_weight_grad"), {c.input(0), g}, with(c.attrs(), "weight_shape", c.input_shape(1)));
  if (c.num_inputs() == 2) return {gx, gw};
  if (c.needs_grad(2)) gb = sum(g, {0, 1, 2});
  return {gx, gw, gb};
}

}  // namespace

// --- convolution

GLIA_OP(conv2d)
    .inputs({"x", "w"})
    .infer([](InferContext& c) {
      check_same_dtype(c);
      c.set_output(checked_conv_out(c, c.shape(0), c.shape(1)), c.dtype(0));
    })
    .grad(conv_grads);

// conv2d with the bias added in the same pass.
GLIA_OP(conv2d_bias)
    .inputs({"x", "w", "b"})
    .infer([](InferContext& c) {
      check_same_dtype(c);
      Shape y = checked_conv_out(c, c.shape(0), c.shape(1));
      GLIA_CHECK(c.shape(2) == Shape{y[3]}, ShapeError, c.name(), ": bias ", to_string(c.shape(2)), " does not match ",
                 y[3], " output channels");
      c.set_output(y, c.dtype(0));
    })
    .save_inputs({0, 1})
    .grad(conv_grads);

// d conv2d / d x: a bilinear function of (grad, w), so its gradients are a conv2d and a weight gradient.
GLIA_OP(conv2d_input_grad)
    .inputs({"grad", "w"})
    .infer([](InferContext& c) {
      check_same_dtype(c);
      Shape s = input_shape_attr(c);
      GLIA_CHECK(checked_conv_out(c, s, c.shape(1)) == c.shape(0), ShapeError, c.name(), ": grad ",
                 to_string(c.shape(0)), " is not the output shape for input ", to_string(s));
      c.set_output(s, c.dtype(0));
    })
    .grad([](GradContext& c) {
      const Tensor& gg = c.grad_out();  // shaped like the conv input
      Tensor dgrad, dw;
      if (c.needs_grad(0)) dgrad = call(op_conv2d, {gg, c.input(1)}, Attrs(c.attrs()));
      if (c.needs_grad(1))
        dw = call(op("conv2d_weight_grad"), {gg, c.input(0)}, with(c.attrs(), "weight_shape", c.input_shape(1)));
      return grads{dgrad, dw};
    });

// d conv2d / d w, bilinear in (x, grad).
GLIA_OP(conv2d_weight_grad)
    .inputs({"x", "grad"})
    .infer([](InferContext& c) {
      check_same_dtype(c);
      const auto& s = c.attr<I64s>("weight_shape");
      GLIA_CHECK(checked_conv_out(c, c.shape(0), s) == c.shape(1), ShapeError, c.name(), ": grad ",
                 to_string(c.shape(1)), " is not the output shape for input ", to_string(c.shape(0)));
      c.set_output(Shape(s.begin(), s.end()), c.dtype(0));
    })
    .grad([](GradContext& c) {
      const Tensor& gg = c.grad_out();  // shaped like the weight
      Tensor dx, dgrad;
      if (c.needs_grad(0))
        dx = call(op_conv2d_input_grad, {c.input(1), gg}, with(c.attrs(), "input_shape", c.input_shape(0)));
      if (c.needs_grad(1)) dgrad = call(op_conv2d, {c.input(0), gg}, Attrs(c.attrs()));
      return grads{dx, dgrad};
    });

// --- pooling

namespace {

Shape pool_out_shape(IntList x, const Attrs& a) {
  const auto& k = a.get<I64s>("kernel");
  const auto& s = a.get<I64s>("stride");
  const auto& p = a.get<I64s>("pads");
  return {x[0], conv_out(x[1], k[0], s[0], 1, p[0], p[1]), conv_out(x[2], k[1], s[1], 1, p[2], p[3]), x[3]};
}

/// Window positions fit in uint8 for all but huge kernels.
DType pool_index_dtype(const Attrs& a) {
  const auto& k = a.get<I64s>("kernel");
  return k[0] * k[1] <= 256 ? DType::u8 : DType::i32;
}

/// Guards direct calls of the pooling backward ops: the pooled shape and the index must fit the input.
void check_pool_grad(const InferContext& c, IntList x, const Shape& pooled, const Shape& index) {
  GLIA_CHECK(x.size() == 4 && pool_out_shape(x, c.attrs()) == pooled && index == pooled, ShapeError, c.name(),
             ": pooled shape ", to_string(pooled), " and index shape ", to_string(index), " do not fit input ",
             to_string(x));
}

}  // namespace

// Outputs {values, index of the max within its window (kh * KW + kw)}.
GLIA_OP(max_pool2d)
    .inputs({"x"})
    .num_outputs(2)
    .infer([](InferContext& c) {
      check_floating(c.input(0), "max_pool2d");
      Shape s = pool_out_shape(c.shape(0), c.attrs());
      c.set_output(s, c.dtype(0));
      c.set_output(s, pool_index_dtype(c.attrs()));
    })
    .save_inputs({})
    .save_outputs({1})
    .grad([](GradContext& c) {
      return grads{call(op("max_pool2d_backward"), {c.grad_out(0), c.output(1)},
                        with(c.attrs(), "input_shape", c.input_shape(0)))};
    });

// Scatters grad to the window positions of the maxima: a linear map of grad whose adjoint is a gather.
GLIA_OP(max_pool2d_backward)
    .inputs({"grad", "index"})
    .infer([](InferContext& c) {
      Shape s = input_shape_attr(c);
      check_pool_grad(c, s, c.shape(0), c.shape(1));
      c.set_output(s, c.dtype(0));
    })
    .save_inputs({1})
    .grad([](GradContext& c) {
      return grads{call(op("max_pool2d_gather"), {c.grad_out(), c.input(1)}, Attrs(c.attrs())), Tensor()};
    });

// Picks, for each output cell, the input cell its index names (the adjoint of max_pool2d_backward).
GLIA_OP(max_pool2d_gather)
    .inputs({"x", "index"})
    .infer([](InferContext& c) {
      check_pool_grad(c, c.shape(0), c.shape(1), c.shape(1));
      c.set_output(c.shape(1), c.dtype(0));
    })
    .save_inputs({1})
    .grad([](GradContext& c) {
      return grads{
          call(op_max_pool2d_backward, {c.grad_out(), c.input(1)}, with(c.attrs(), "input_shape", c.input_shape(0))),
          Tensor()};
    });

GLIA_OP(avg_pool2d)
    .inputs({"x"})
    .infer([](InferContext& c) {
      check_floating(c.input(0), "avg_pool2d");
      c.set_output(pool_out_shape(c.shape(0), c.attrs()), c.dtype(0));
    })
    .save_inputs({})
    .grad([](GradContext& c) {
      return grads{call(op("avg_pool2d_backward"), {c.grad_out()}, with(c.attrs(), "input_shape", c.input_shape(0)))};
    });

// The adjoint of avg_pool2d (linear), whose own adjoint is avg_pool2d.
GLIA_OP(avg_pool2d_backward)
    .inputs({"grad"})
    .infer([](InferContext& c) {
      Shape s = input_shape_attr(c);
      check_pool_grad(c, s, c.shape(0), c.shape(0));
      c.set_output(s, c.dtype(0));
    })
    .save_inputs({})
    .grad([](GradContext& c) { return grads{call(op_avg_pool2d, {c.grad_out()}, Attrs(c.attrs()))}; });

// --- public functions

namespace {

/// Resolves the padding of one spatial dim to (before, after); checks that the kernel fits.
std::pair<int64_t, int64_t> resolve_pad(const char* op, const std::string& mode, int64_t in, int64_t span,
                                        int64_t stride, int64_t before, int64_t after) {
  if (mode == "valid") return {0, 0};
  if (mode == "same") {
    int64_t out = (in + stride - 1) / stride;
    int64_t total = std::max<int64_t>((out - 1) * stride + span - in, 0);
    return {total / 2, total - total / 2};
  }
  if (mode == "explicit") {
    GLIA_CHECK(before >= 0 && after >= 0, ValueError, op, ": explicit padding must be non-negative, got (", before,
               ", ", after, ")");
    return {before, after};
  }
  throw ValueError(detail::str(op, ": padding must be 'valid', 'same' or 'explicit', got '", mode, "'"));
}

void check_pair(const char* op, const char* what, const std::array<int64_t, 2>& v, int64_t min) {
  GLIA_CHECK(v[0] >= min && v[1] >= min, ValueError, op, ": ", what, " must be >= ", min, ", got (", v[0], ", ", v[1],
             ")");
}

/// Validates a conv2d call on shapes x [N,H,W,C] and w [KH,KW,C/g,O]; returns the op attrs.
/// `op` names the function in errors; `xs` / `ws` are the shapes the user passed (they
/// differ from x / w for conv1d).
Attrs conv_attrs(const char* op, const Shape& x, const Shape& w, const Conv2dOptions& o, const Shape& xs,
                 const Shape& ws) {
  check_pair(op, "stride", o.stride, 1);
  check_pair(op, "dilation", o.dilation, 1);
  GLIA_CHECK(o.groups >= 1, ValueError, op, ": groups must be positive, got ", o.groups);
  GLIA_CHECK(w[0] >= 1 && w[1] >= 1, ShapeError, op, ": kernel size must be positive, got weight shape ",
             to_string(ws));
  int64_t cin = x[3], cout = w[3];
  GLIA_CHECK(cin % o.groups == 0, ValueError, op, ": input channels (", cin, ") must be divisible by groups (",
             o.groups, "), input shape ", to_string(xs));
  GLIA_CHECK(cout % o.groups == 0, ValueError, op, ": output channels (", cout, ") must be divisible by groups (",
             o.groups, "), weight shape ", to_string(ws));
  GLIA_CHECK(w[2] * o.groups == cin, ShapeError, op, ": weight of shape ", to_string(ws),
             " does not match input of shape ", to_string(xs), ": expected ", cin, " / ", o.groups, " = ",
             cin / o.groups, " input channels per group, got ", w[2]);
  int64_t span_h = (w[0] - 1) * o.dilation[0] + 1, span_w = (w[1] - 1) * o.dilation[1] + 1;
  const Padding2d& p = o.padding;
  auto [t, b] = resolve_pad(op, p.mode, x[1], span_h, o.stride[0], p.top, p.bottom);
  auto [l, r] = resolve_pad(op, p.mode, x[2], span_w, o.stride[1], p.left, p.right);
  GLIA_CHECK(x[1] + t + b >= span_h && x[2] + l + r >= span_w, ShapeError, op, ": kernel of shape ", to_string(ws),
             " (spanning ", span_h, "x", span_w, " with dilation) is larger than the padded input (", x[1] + t + b, "x",
             x[2] + l + r, ") of shape ", to_string(xs));
  return {{"stride", I64s{o.stride[0], o.stride[1]}},
          {"dilation", I64s{o.dilation[0], o.dilation[1]}},
          {"pads", I64s{t, b, l, r}},
          {"groups", o.groups}};
}

void check_conv_tensors(const char* op, const Tensor& x, const Tensor& w, const char* xname = "input") {
  GLIA_CHECK(x.dim() == 4, ShapeError, op, ": ", xname, " must be 4-D NHWC [N, H, W, C], got shape ",
             to_string(x.shape()));
  GLIA_CHECK(w.dim() == 4, ShapeError, op, ": weight must be 4-D [KH, KW, C_in / groups, C_out], got shape ",
             to_string(w.shape()));
  check_floating(x, op, xname);
  GLIA_CHECK(x.dtype() == w.dtype(), DTypeError, op, ": ", xname, " and weight must have one dtype, got ",
             name(x.dtype()), " and ", name(w.dtype()));
}

Tensor conv_call(const char* opname, const Tensor& x, const Tensor& w, const Tensor& bias, Attrs a, const Shape& xs,
                 const Shape& ws) {
  if (!bias.defined()) return call(op_conv2d, {x, w}, std::move(a));
  GLIA_CHECK(bias.dim() == 1 && bias.size(0) == w.size(3), ShapeError, opname, ": bias must have shape [", w.size(3),
             "] for a weight of shape ", to_string(ws), ", got ", to_string(bias.shape()), " (input ", to_string(xs),
             ")");
  GLIA_CHECK(bias.dtype() == x.dtype(), DTypeError, opname, ": bias must have the input's dtype ", name(x.dtype()),
             ", got ", name(bias.dtype()));
  return call(op_conv2d_bias, {x, w, bias}, std::move(a));
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  check_conv_tensors("conv2d", input, weight);
  Attrs a = conv_attrs("conv2d", input.shape(), weight.shape(), o, input.shape(), weight.shape());
  return conv_call("conv2d", input, weight, bias, std::move(a), input.shape(), weight.shape());
}

Tensor conv2d_input_grad(const Tensor& grad_out, const Tensor& weight, IntList input_shape, const Conv2dOptions& o) {
  const char* op = "conv2d_input_grad";
  check_conv_tensors(op, grad_out, weight, "grad_out");
  GLIA_CHECK(input_shape.size() == 4, ShapeError, op, ": input_shape must be 4-D NHWC, got ", to_string(input_shape));
  Shape xs(input_shape.begin(), input_shape.end());
  Attrs a = conv_attrs(op, xs, weight.shape(), o, xs, weight.shape());
  Shape want = conv_out_shape(xs, weight.shape(), a);
  GLIA_CHECK(grad_out.shape() == want, ShapeError, op, ": grad_out must have the conv2d output shape ", to_string(want),
             " for input shape ", to_string(xs), " and weight shape ", to_string(weight.shape()), ", got ",
             to_string(grad_out.shape()));
  a.set("input_shape", vec(input_shape));
  return call(op_conv2d_input_grad, {grad_out, weight}, std::move(a));
}

Tensor conv2d_weight_grad(const Tensor& input, const Tensor& grad_out, IntList weight_shape, const Conv2dOptions& o) {
  const char* op = "conv2d_weight_grad";
  GLIA_CHECK(weight_shape.size() == 4, ShapeError, op,
             ": weight_shape must be 4-D [KH, KW, C_in / groups, C_out], got ", to_string(weight_shape));
  GLIA_CHECK(input.dim() == 4 && grad_out.dim() == 4, ShapeError, op,
             ": input and grad_out must be 4-D NHWC, got shapes ", to_string(input.shape()), " and ",
             to_string(grad_out.shape()));
  check_floating(input, op);
  GLIA_CHECK(input.dtype() == grad_out.dtype(), DTypeError, op, ": input and grad_out must have one dtype, got ",
             name(input.dtype()), " and ", name(grad_out.dtype()));
  Shape ws(weight_shape.begin(), weight_shape.end());
  Attrs a = conv_attrs(op, input.shape(), ws, o, input.shape(), ws);
  Shape want = conv_out_shape(input.shape(), ws, a);
  GLIA_CHECK(grad_out.shape() == want, ShapeError, op, ": grad_out must have the conv2d output shape ", to_string(want),
             " for input shape ", to_string(input.shape()), " and weight shape ", to_string(ws), ", got ",
             to_string(grad_out.shape()));
  a.set("weight_shape", vec(weight_shape));
  return call(op_conv2d_weight_grad, {input, grad_out}, std::move(a));
}

Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv1dOptions& o) {
  const char* op = "conv1d";
  GLIA_CHECK(input.dim() == 3, ShapeError, op, ": input must be 3-D NWC [N, W, C], got shape ",
             to_string(input.shape()));
  GLIA_CHECK(weight.dim() == 3, ShapeError, op, ": weight must be 3-D [K, C_in / groups, C_out], got shape ",
             to_string(weight.shape()));
  check_floating(input, op);
  GLIA_CHECK(input.dtype() == weight.dtype(), DTypeError, op, ": input and weight must have one dtype, got ",
             name(input.dtype()), " and ", name(weight.dtype()));
  Conv2dOptions o2{.stride = {1, o.stride}, .dilation = {1, o.dilation}, .groups = o.groups};
  if (o.padding == "causal") {
    o2.padding = Padding2d::explicit_(0, 0, (weight.size(0) - 1) * o.dilation, 0);
  } else if (o.padding == "valid" || o.padding == "same") {
    o2.padding.mode = o.padding;
  } else {
    throw ValueError(detail::str(op, ": padding must be 'valid', 'same' or 'causal', got '", o.padding, "'"));
  }
  GLIA_CHECK(o.dilation >= 1, ValueError, op, ": dilation must be >= 1, got ", o.dilation);
  Tensor x4 = unsqueeze(input, 1), w4 = unsqueeze(weight, 0);
  Attrs a = conv_attrs(op, x4.shape(), w4.shape(), o2, input.shape(), weight.shape());
  return squeeze(conv_call(op, x4, w4, bias, std::move(a), input.shape(), weight.shape()), 1);
}

namespace {

Attrs pool_attrs(const char* op, const Tensor& x, const Pool2dOptions& o) {
  GLIA_CHECK(x.dim() == 4, ShapeError, op, ": input must be 4-D NHWC [N, H, W, C], got shape ", to_string(x.shape()));
  check_floating(x, op);
  check_pair(op, "kernel size", o.kernel, 1);
  check_pair(op, "stride", o.stride, 0);
  int64_t kh = o.kernel[0], kw = o.kernel[1];
  int64_t sh = o.stride[0] ? o.stride[0] : kh, sw = o.stride[1] ? o.stride[1] : kw;
  const Padding2d& p = o.padding;
  auto [t, b] = resolve_pad(op, p.mode, x.size(1), kh, sh, p.top, p.bottom);
  auto [l, r] = resolve_pad(op, p.mode, x.size(2), kw, sw, p.left, p.right);
  // Every window then holds at least one real cell.
  GLIA_CHECK(t < kh && b < kh && l < kw && r < kw, ValueError, op, ": padding (", t, ", ", b, ", ", l, ", ", r,
             ") must be smaller than the kernel ", kh, "x", kw);
  GLIA_CHECK(x.size(1) + t + b >= kh && x.size(2) + l + r >= kw, ShapeError, op, ": pooling window ", kh, "x", kw,
             " is larger than the padded input (", x.size(1) + t + b, "x", x.size(2) + l + r, ") of shape ",
             to_string(x.shape()));
  return {{"kernel", I64s{kh, kw}}, {"stride", I64s{sh, sw}}, {"pads", I64s{t, b, l, r}}};
}

}  // namespace

Tensor max_pool2d(const Tensor& input, const Pool2dOptions& o) {
  return dispatch(op_max_pool2d, {input}, pool_attrs("max_pool2d", input, o))[0];
}

Tensor avg_pool2d(const Tensor& input, const Pool2dOptions& o) {
  return call(op_avg_pool2d, {input}, pool_attrs("avg_pool2d", input, o));
}

Tensor global_avg_pool2d(const Tensor& input, bool keepdims) {
  GLIA_CHECK(input.dim() == 4, ShapeError, "global_avg_pool2d: input must be 4-D NHWC [N, H, W, C], got shape ",
             to_string(input.shape()));
  check_floating(input, "global_avg_pool2d");
  return mean(input, {1, 2}, keepdims);
}

}  // namespace glia
