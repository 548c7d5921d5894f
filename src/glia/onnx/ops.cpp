// The ONNX form of each glia op (opset 17), keyed by op name. An op without an entry here cannot
// be exported (export names it and its layer). Glia images are NHWC; ONNX Conv and the pools are
// NCHW, so those are wrapped in Transposes.
#include <cmath>
#include <limits>

#include "glia/onnx/context.h"

namespace glia::onnx {
namespace {

using I64s = std::vector<int64_t>;

void unary(OnnxContext& c, const char* op) { c.add_node(op, {c.input(0)}, {c.output(0)}); }

/// An element-wise op of two inputs, both taken in the output's dtype (glia promotes; ONNX wants one type).
void binary(OnnxContext& c, const char* op) {
  DType t = c.output_dtype();
  c.add_node(op, {c.input_as(0, t), c.input_as(1, t)}, {c.output(0)});
}

std::string to_nchw(OnnxContext& c, const std::string& x) {
  std::string y = c.fresh_name(x + "_nchw");
  c.add_node("Transpose", {x}, {y}, {{"perm", I64s{0, 3, 1, 2}}});
  return y;
}

void from_nchw(OnnxContext& c, const std::string& y_nchw, const std::string& out) {
  c.add_node("Transpose", {y_nchw}, {out}, {{"perm", I64s{0, 2, 3, 1}}});
}

/// glia's pads {top, bottom, left, right} in ONNX's order {top, left, bottom, right}.
I64s onnx_pads(const I64s& p) { return {p[0], p[2], p[1], p[3]}; }

void conv(OnnxContext& c) {
  // Keras kernel [KH, KW, Cin/groups, Cout] -> ONNX [Cout, Cin/groups, KH, KW].
  std::string w;
  Tensor k = c.constant_input(1);
  if (k.defined()) {
    w = c.add_initializer(k.permute({3, 2, 0, 1}).contiguous(), "kernel");
  } else {
    w = c.fresh_name(c.input(1) + "_oihw");
    c.add_node("Transpose", {c.input(1)}, {w}, {{"perm", I64s{3, 2, 0, 1}}});
  }
  std::vector<std::string> in = {to_nchw(c, c.input(0)), w};
  if (c.num_inputs() == 3) in.push_back(c.input_as(2, c.output_dtype()));
  const Shape& ks = c.input_shape(1);
  std::string y = c.fresh_name(c.output(0) + "_nchw");
  c.add_node("Conv", in, {y},
             {{"kernel_shape", I64s{ks[0], ks[1]}},
              {"strides", c.attr<I64s>("stride")},
              {"dilations", c.attr<I64s>("dilation")},
              {"pads", onnx_pads(c.attr<I64s>("pads"))},
              {"group", c.attr<int64_t>("groups")}});
  from_nchw(c, y, c.output(0));
}

void pool(OnnxContext& c, const char* op, OnnxAttrs extra) {
  std::string y = c.fresh_name(c.output(0) + "_nchw");
  OnnxAttrs a = {{"kernel_shape", c.attr<I64s>("kernel")},
                 {"strides", c.attr<I64s>("stride")},
                 {"pads", onnx_pads(c.attr<I64s>("pads"))}};
  a.insert(a.end(), extra.begin(), extra.end());
  c.add_node(op, {to_nchw(c, c.input(0))}, {y}, a);
  from_nchw(c, y, c.output(0));
}

/// The target of a Reshape to the output's shape: one unknown dim stays -1; with more, the batch
/// (dim 0, unknown in and out) is copied from the input with 0, so that any batch works.
void reshape(OnnxContext& c) {
  I64s target(c.output_shape().begin(), c.output_shape().end());
  int unknown = 0;
  bool zero = false;
  for (int64_t d : target) {
    unknown += d < 0;
    zero = zero || d == 0;
  }
  bool copy_batch = false;
  if (unknown > 1 && !c.input_shape(0).empty() && c.input_shape(0)[0] < 0 && target[0] < 0) {
    target[0] = 0;
    copy_batch = true;
    --unknown;
  }
  if (unknown > 1) c.unsupported("reshapes to " + to_string(c.output_shape()) + " with several unknown dims");
  GLIA_CHECK(!(zero && copy_batch), ValueError, "ONNX export: op '", c.op_name(), "' reshapes to an empty shape ",
             to_string(c.output_shape()), " with an unknown batch");
  OnnxAttrs a;
  if (zero) a.push_back({"allowzero", int64_t(1)});
  c.add_node("Reshape", {c.input(0), c.ints(target)}, {c.output(0)}, a);
}

void gelu(OnnxContext& c) {
  DType t = c.output_dtype();
  const std::string& x = c.input(0);
  auto tmp = [&](const char* h) { return c.fresh_name(c.output(0) + "_" + h); };
  std::string inner = tmp("inner"), act = tmp("act"), one_plus = tmp("one_plus"), half_x = tmp("half_x");
  if (c.attr<bool>("approximate")) {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    std::string x3 = tmp("x3"), sum = tmp("sum");
    c.add_node("Pow", {x, c.scalar(3.0, t)}, {x3});
    std::string ax3 = tmp("ax3");
    c.add_node("Mul", {x3, c.scalar(0.044715, t)}, {ax3});
    c.add_node("Add", {x, ax3}, {sum});
    c.add_node("Mul", {sum, c.scalar(std::sqrt(2.0 / M_PI), t)}, {inner});
    c.add_node("Tanh", {inner}, {act});
  } else {
    // 0.5 x (1 + erf(x / sqrt(2)))
    c.add_node("Mul", {x, c.scalar(M_SQRT1_2, t)}, {inner});
    c.add_node("Erf", {inner}, {act});
  }
  c.add_node("Add", {act, c.scalar(1.0, t)}, {one_plus});
  c.add_node("Mul", {x, c.scalar(0.5, t)}, {half_x});
  c.add_node("Mul", {half_x, one_plus}, {c.output(0)});
}

void softplus(OnnxContext& c) {
  // softplus(beta x) / beta, and x itself where beta x > threshold (as glia and PyTorch).
  DType t = c.output_dtype();
  double beta = c.attr<double>("beta"), threshold = c.attr<double>("threshold");
  const std::string& x = c.input(0);
  std::string bx = x;
  if (beta != 1.0) {
    bx = c.fresh_name(c.output(0) + "_bx");
    c.add_node("Mul", {x, c.scalar(beta, t)}, {bx});
  }
  std::string sp = c.fresh_name(c.output(0) + "_sp");
  c.add_node("Softplus", {bx}, {sp});
  if (beta != 1.0) {
    std::string d = c.fresh_name(c.output(0) + "_div");
    c.add_node("Div", {sp, c.scalar(beta, t)}, {d});
    sp = d;
  }
  std::string big = c.fresh_name(c.output(0) + "_linear");
  c.add_node("Greater", {bx, c.scalar(threshold, t)}, {big});
  c.add_node("Where", {big, x, sp}, {c.output(0)});
}

void clamp(OnnxContext& c) {
  DType t = c.output_dtype();
  std::string lo = c.attrs().has("min") ? c.scalar(c.attr<Scalar>("min").to_double(), t) : "";
  std::string hi = c.attrs().has("max") ? c.scalar(c.attr<Scalar>("max").to_double(), t) : "";
  c.add_node("Clip", {c.input(0), lo, hi}, {c.output(0)});
}

void reduce_sum(OnnxContext& c) {
  std::string x = c.input_as(0, c.output_dtype());
  const I64s& dims = c.attr<I64s>("dims");
  std::vector<std::string> in = {x};
  if (!dims.empty()) in.push_back(c.ints(dims));
  c.add_node("ReduceSum", in, {c.output(0)}, {{"keepdims", int64_t(c.attr<bool>("keepdim"))}});
}

void count_like(OnnxContext& c) {
  // The product of x's dims over `dims`, read from its shape when the graph runs.
  std::string shape = c.fresh_name(c.output(0) + "_shape"), picked = c.fresh_name(c.output(0) + "_dims"),
              n = c.fresh_name(c.output(0) + "_count");
  c.add_node("Shape", {c.input(0)}, {shape});
  c.add_node("Gather", {shape, c.ints(c.attr<I64s>("dims"))}, {picked}, {{"axis", int64_t(0)}});
  c.add_node("ReduceProd", {picked}, {n}, {{"keepdims", int64_t(0)}});
  c.add_node("Cast", {n}, {c.output(0)}, {{"to", onnx_type(c.output_dtype())}});
}

void flip(OnnxContext& c) {
  const I64s& dims = c.attr<I64s>("dims");
  I64s starts(dims.size(), -1), ends(dims.size(), std::numeric_limits<int64_t>::min()), steps(dims.size(), -1);
  c.add_node("Slice", {c.input(0), c.ints(starts), c.ints(ends), c.ints(dims), c.ints(steps)}, {c.output(0)});
}

}  // namespace

// --- element-wise

GLIA_ONNX_OP(add, [](OnnxContext& c) { binary(c, "Add"); });
GLIA_ONNX_OP(sub, [](OnnxContext& c) { binary(c, "Sub"); });
GLIA_ONNX_OP(mul, [](OnnxContext& c) { binary(c, "Mul"); });
GLIA_ONNX_OP(div, [](OnnxContext& c) { binary(c, "Div"); });
GLIA_ONNX_OP(pow, [](OnnxContext& c) { binary(c, "Pow"); });
GLIA_ONNX_OP(maximum, [](OnnxContext& c) { binary(c, "Max"); });
GLIA_ONNX_OP(minimum, [](OnnxContext& c) { binary(c, "Min"); });
GLIA_ONNX_OP(pow_scalar, [](OnnxContext& c) {
  c.add_node("Pow", {c.input(0), c.scalar(c.attr<double>("exponent"), c.output_dtype())}, {c.output(0)});
});
GLIA_ONNX_OP(neg, [](OnnxContext& c) { unary(c, "Neg"); });
GLIA_ONNX_OP(abs, [](OnnxContext& c) { unary(c, "Abs"); });
GLIA_ONNX_OP(sign, [](OnnxContext& c) { unary(c, "Sign"); });
GLIA_ONNX_OP(square, [](OnnxContext& c) { c.add_node("Mul", {c.input(0), c.input(0)}, {c.output(0)}); });
GLIA_ONNX_OP(clamp, clamp);
GLIA_ONNX_OP(exp, [](OnnxContext& c) { unary(c, "Exp"); });
GLIA_ONNX_OP(expm1, [](OnnxContext& c) {
  std::string e = c.fresh_name(c.output(0) + "_exp");
  c.add_node("Exp", {c.input(0)}, {e});
  c.add_node("Sub", {e, c.scalar(1.0, c.output_dtype())}, {c.output(0)});
});
GLIA_ONNX_OP(log, [](OnnxContext& c) { unary(c, "Log"); });
GLIA_ONNX_OP(log1p, [](OnnxContext& c) {
  std::string p = c.fresh_name(c.output(0) + "_plus1");
  c.add_node("Add", {c.input(0), c.scalar(1.0, c.output_dtype())}, {p});
  c.add_node("Log", {p}, {c.output(0)});
});
GLIA_ONNX_OP(sqrt, [](OnnxContext& c) { unary(c, "Sqrt"); });
GLIA_ONNX_OP(rsqrt, [](OnnxContext& c) {
  std::string s = c.fresh_name(c.output(0) + "_sqrt");
  c.add_node("Sqrt", {c.input(0)}, {s});
  c.add_node("Reciprocal", {s}, {c.output(0)});
});
GLIA_ONNX_OP(reciprocal, [](OnnxContext& c) { unary(c, "Reciprocal"); });
GLIA_ONNX_OP(sin, [](OnnxContext& c) { unary(c, "Sin"); });
GLIA_ONNX_OP(cos, [](OnnxContext& c) { unary(c, "Cos"); });
GLIA_ONNX_OP(erf, [](OnnxContext& c) { unary(c, "Erf"); });
GLIA_ONNX_OP(where, [](OnnxContext& c) {
  DType t = c.output_dtype();
  c.add_node("Where", {c.input(0), c.input_as(1, t), c.input_as(2, t)}, {c.output(0)});
});
GLIA_ONNX_OP(cast, [](OnnxContext& c) {
  c.add_node("Cast", {c.input(0)}, {c.output(0)}, {{"to", onnx_type(c.output_dtype())}});
});
GLIA_ONNX_OP(clone, [](OnnxContext& c) { unary(c, "Identity"); });

// --- activations

GLIA_ONNX_OP(relu, [](OnnxContext& c) { unary(c, "Relu"); });
GLIA_ONNX_OP(sigmoid, [](OnnxContext& c) { unary(c, "Sigmoid"); });
GLIA_ONNX_OP(tanh, [](OnnxContext& c) { unary(c, "Tanh"); });
GLIA_ONNX_OP(leaky_relu, [](OnnxContext& c) {
  c.add_node("LeakyRelu", {c.input(0)}, {c.output(0)}, {{"alpha", c.attr<double>("negative_slope")}});
});
GLIA_ONNX_OP(elu, [](OnnxContext& c) {
  c.add_node("Elu", {c.input(0)}, {c.output(0)}, {{"alpha", c.attr<double>("alpha")}});
});
GLIA_ONNX_OP(gelu, gelu);
GLIA_ONNX_OP(softplus, softplus);
GLIA_ONNX_OP(softmax, [](OnnxContext& c) {
  c.add_node("Softmax", {c.input(0)}, {c.output(0)}, {{"axis", c.attr<int64_t>("axis")}});
});
GLIA_ONNX_OP(log_softmax, [](OnnxContext& c) {
  c.add_node("LogSoftmax", {c.input(0)}, {c.output(0)}, {{"axis", c.attr<int64_t>("axis")}});
});

// --- linear algebra, convolution, pooling

GLIA_ONNX_OP(matmul, [](OnnxContext& c) { c.add_node("MatMul", {c.input(0), c.input(1)}, {c.output(0)}); });
GLIA_ONNX_OP(conv2d, conv);
GLIA_ONNX_OP(conv2d_bias, conv);
GLIA_ONNX_OP(max_pool2d, [](OnnxContext& c) {
  // Output 1 (the argmax within each window) serves the gradient only.
  if (!c.output(1).empty()) c.unsupported("is used for its window indices, which ONNX's MaxPool numbers otherwise");
  pool(c, "MaxPool", {});
});
GLIA_ONNX_OP(avg_pool2d, [](OnnxContext& c) { pool(c, "AveragePool", {{"count_include_pad", int64_t(0)}}); });

// --- reductions

GLIA_ONNX_OP(sum, reduce_sum);
GLIA_ONNX_OP(count_like, count_like);

// --- normalization

GLIA_ONNX_OP(batch_norm_apply, [](OnnxContext& c) {
  DType t = c.output_dtype();
  std::string scaled = c.fresh_name(c.output(0) + "_scaled");
  c.add_node("Mul", {c.input(0), c.input_as(1, t)}, {scaled});
  c.add_node("Add", {scaled, c.input_as(2, t)}, {c.output(0)});
});
GLIA_ONNX_OP(layer_norm_fwd, [](OnnxContext& c) {
  DType t = c.input_dtype(0);
  c.add_node("LayerNormalization", {c.input(0), c.input_as(1, t), c.input_as(2, t)},
             {c.output(0), c.output(1), c.output(2)}, {{"axis", int64_t(-1)}, {"epsilon", c.attr<double>("eps")}});
});

// --- movement and indexing

GLIA_ONNX_OP(reshape, reshape);
GLIA_ONNX_OP(view, reshape);
GLIA_ONNX_OP(permute, [](OnnxContext& c) {
  c.add_node("Transpose", {c.input(0)}, {c.output(0)}, {{"perm", c.attr<I64s>("dims")}});
});
GLIA_ONNX_OP(expand, [](OnnxContext& c) {
  // A 1 keeps the input's size in ONNX's broadcasting, which covers dims known only at run time.
  I64s s(c.output_shape().begin(), c.output_shape().end());
  for (int64_t& d : s)
    if (d < 0) d = 1;
  c.add_node("Expand", {c.input(0), c.ints(s)}, {c.output(0)});
});
GLIA_ONNX_OP(slice, [](OnnxContext& c) {
  c.add_node("Slice",
             {c.input(0), c.ints({c.attr<int64_t>("start")}), c.ints({c.attr<int64_t>("end")}),
              c.ints({c.attr<int64_t>("dim")}), c.ints({c.attr<int64_t>("step")})},
             {c.output(0)});
});
GLIA_ONNX_OP(concat, [](OnnxContext& c) {
  std::vector<std::string> in;
  for (size_t i = 0; i < c.num_inputs(); ++i) in.push_back(c.input_as(i, c.output_dtype()));
  c.add_node("Concat", in, {c.output(0)}, {{"axis", c.attr<int64_t>("dim")}});
});
GLIA_ONNX_OP(flip, flip);
GLIA_ONNX_OP(index_select, [](OnnxContext& c) {
  c.add_node("Gather", {c.input(0), c.input_as(1, DType::i64)}, {c.output(0)}, {{"axis", c.attr<int64_t>("dim")}});
});

}  // namespace glia::onnx
