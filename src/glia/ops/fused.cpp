// Ops made by graph fusion (src/glia/graph/fuse.cpp), not by user code: a chain of element-wise
// ops run as one program, and a matmul or convolution with its bias and activation in the same
// primitive. Graphs hold their gradients as nodes already, so these ops have no gradient rule.
#include "glia/ops/fused.h"

#include "glia/ops/op.h"

namespace glia {
namespace {

using I64s = std::vector<int64_t>;

grads no_gradient(GradContext& c) {
  throw ValueError(detail::str(c.attrs().has("program") ? "fused_elementwise" : "fused op",
                               ": fused ops are made by graph optimization and have no gradient; take gradients "
                               "before optimizing (glia::grad inside the traced function)"));
}

bool is_one(const Shape& s, size_t upto) {
  for (size_t i = 0; i < upto; ++i)
    if (s[i] != 1) return false;
  return true;
}

/// Output specs of op `name` for the first `n` inputs of c, with c's attributes.
SmallVec<TensorSpec, 2> infer_as(const InferContext& c, const char* name, size_t n) {
  const OpDef& op = OpRegistry::instance().get(name);
  InferContext ic(op, std::span<const Tensor>(&c.input(0), n), c.attrs());
  op.infer_fn()(ic);
  return ic.outputs();
}

void check_activation(const InferContext& c) {
  const auto& a = c.attr<std::string>("activation");
  GLIA_CHECK(a.empty() || a == "relu" || a == "gelu" || a == "tanh" || a == "sigmoid", ValueError, c.name(),
             ": unknown activation '", a, "' (expected relu, gelu, tanh or sigmoid)");
}

}  // namespace

// Inputs of kinds "kinds" (fused::InputKind); output float32 of the shape of input "shape_from"
// (or "shape" when no input has the full shape); "program" is a fused::encode()d program.
GLIA_OP(fused_elementwise)
    .inputs({"xs"})
    .variadic()
    .infer([](InferContext& c) {
      const char* op = c.name();
      const auto& kinds = c.attr<I64s>("kinds");
      auto n = static_cast<int64_t>(c.num_inputs());
      GLIA_CHECK(static_cast<int64_t>(kinds.size()) == n, ValueError, op, ": ", kinds.size(), " input kinds for ", n,
                 " inputs");
      int64_t regs = 0;
      std::vector<fused::Instr> prog;
      GLIA_CHECK(fused::decode(c.attr<I64s>("program"), n, regs, prog), ValueError, op, ": malformed program");
      int64_t from = c.attr<int64_t>("shape_from");
      GLIA_CHECK(from >= -1 && from < n, ValueError, op, ": shape_from ", from, " is not an input");
      Shape out;
      if (from >= 0) {
        out = c.shape(static_cast<size_t>(from));
      } else {
        const auto& s = c.attr<I64s>("shape");
        out = Shape(s.begin(), s.end());
      }
      int bias = 0;
      for (int64_t i = 0; i < n; ++i) {
        const Shape& s = c.shape(static_cast<size_t>(i));
        DType dt = c.dtype(static_cast<size_t>(i));
        switch (static_cast<fused::InputKind>(kinds[static_cast<size_t>(i)])) {
          case fused::InputKind::Full:
            GLIA_CHECK(s == out && dt == DType::f32, ShapeError, op, ": input ", i, " (", to_string(s), ", ", name(dt),
                       ") must be float32 of the output shape ", to_string(out));
            break;
          case fused::InputKind::Scalar:
            GLIA_CHECK(numel(s) == 1 && s.size() <= out.size() && is_floating(dt), ShapeError, op, ": input ", i,
                       " must be one floating-point number, got shape ", to_string(s));
            break;
          case fused::InputKind::Bias:
            ++bias;
            GLIA_CHECK(!s.empty() && !out.empty() && s.size() <= out.size() && s.back() == out.back() &&
                           is_one(s, s.size() - 1) && dt == DType::f32,
                       ShapeError, op, ": input ", i, " must be a float32 vector along the last axis of ",
                       to_string(out), ", got ", to_string(s));
            break;
          default:
            throw ValueError(detail::str(op, ": input ", i, " has unknown kind ", kinds[static_cast<size_t>(i)]));
        }
      }
      GLIA_CHECK(bias <= fused::kMaxBiasInputs, ValueError, op, ": at most ", fused::kMaxBiasInputs,
                 " bias inputs, got ", bias);
      auto scalar = [&](int64_t slot) {
        return slot < n && kinds[static_cast<size_t>(slot)] == static_cast<int64_t>(fused::InputKind::Scalar);
      };
      for (const auto& i : prog)
        GLIA_CHECK(fused::is_binary(i.code) ? !(scalar(i.a) && scalar(i.b)) : !scalar(i.a), ValueError, op,
                   ": an instruction has only scalar operands");
      c.set_output(std::move(out), DType::f32);
    })
    .grad(no_gradient);

// a @ b (+ bias) then an activation ("", relu, gelu with bool "approximate", tanh, sigmoid);
// a [M, K], b [K, N], bias [N] or [1, N], all float32.
GLIA_OP(matmul_fused)
    .inputs({"a", "b", "bias"})
    .variadic()
    .infer([](InferContext& c) {
      const char* op = c.name();
      GLIA_CHECK(c.num_inputs() == 2 || c.num_inputs() == 3, ValueError, op, ": expected 2 or 3 inputs, got ",
                 c.num_inputs());
      GLIA_CHECK(c.shape(0).size() == 2 && c.shape(1).size() == 2 && c.dtype(0) == DType::f32, ShapeError, op,
                 ": operands must be float32 matrices, got ", to_string(c.shape(0)), " and ", to_string(c.shape(1)));
      check_activation(c);
      auto specs = infer_as(c, "matmul", 2);
      const Shape& y = specs[0].shape;
      if (c.num_inputs() == 3) {
        const Shape& b = c.shape(2);
        GLIA_CHECK((b == Shape{y[1]} || b == Shape{1, y[1]}) && c.dtype(2) == DType::f32, ShapeError, op,
                   ": bias must be float32 of shape [", y[1], "], got ", to_string(b));
      }
      c.set_output(y, DType::f32);
    })
    .grad(no_gradient);

// conv2d (inputs x, w) or conv2d_bias (x, w, b) with the conv attributes, then "activation" (relu).
GLIA_OP(conv2d_fused)
    .inputs({"x", "w", "b"})
    .variadic()
    .infer([](InferContext& c) {
      GLIA_CHECK(c.num_inputs() == 2 || c.num_inputs() == 3, ValueError, c.name(), ": expected 2 or 3 inputs, got ",
                 c.num_inputs());
      const auto& a = c.attr<std::string>("activation");
      GLIA_CHECK(a == "relu", ValueError, c.name(), ": unknown activation '", a, "' (expected relu)");
      auto specs = infer_as(c, c.num_inputs() == 3 ? "conv2d_bias" : "conv2d", c.num_inputs());
      c.set_output(specs[0].shape, specs[0].dtype);
    })
    .grad(no_gradient);

}  // namespace glia
