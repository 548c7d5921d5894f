// Indexing ops: gather / scatter_add and index_select / index_add (each the
// other's gradient), embedding, one_hot and dropout.
#include "glia/ops/index.h"

#include "glia/ops/elementwise.h"
#include "glia/ops/op.h"
#include "glia/ops/shape_ops.h"

namespace glia {
namespace {

void check_index_dtype(const Tensor& index, const char* op, const char* what = "index") {
  GLIA_CHECK(index.dtype() == DType::i32 || index.dtype() == DType::i64, DTypeError, op, ": ", what,
             " must be int32 or int64, got ", name(index.dtype()));
}

void check_same_dtype(const Tensor& base, const Tensor& src, const char* op) {
  GLIA_CHECK(base.dtype() == src.dtype(), DTypeError, op, ": src has dtype ", name(src.dtype()),
             ", expected the dtype of the input (", name(base.dtype()), ")");
}

/// torch.gather / scatter shape rules: same rank, index no larger than `other` outside dim
/// (and no larger than `src` anywhere, when given).
void check_gather_shapes(const Shape& x, const Shape& index, int64_t dim, const char* op, const Shape* src = nullptr) {
  GLIA_CHECK(index.size() == x.size(), ShapeError, op, ": index of shape ", to_string(index),
             " must have the rank of the input of shape ", to_string(x));
  for (size_t d = 0; d < x.size(); ++d) {
    GLIA_CHECK(static_cast<int64_t>(d) == dim || index[d] <= x[d], ShapeError, op, ": index of shape ",
               to_string(index), " is larger than the input of shape ", to_string(x), " in dimension ", d);
    if (src)
      GLIA_CHECK(src->size() == x.size() && index[d] <= (*src)[d], ShapeError, op, ": index of shape ",
                 to_string(index), " does not fit in src of shape ", to_string(*src));
  }
}

Shape index_add_src_shape(const Shape& base, int64_t dim, int64_t n) {
  Shape s = base;
  s[static_cast<size_t>(dim)] = n;
  return s;
}

}  // namespace

GLIA_OP(gather)
    .inputs({"x", "index"})
    .infer([](InferContext& c) {
      check_index_dtype(c.input(1), "gather");
      check_gather_shapes(c.shape(0), c.shape(1), c.attr<int64_t>("dim"), "gather");
      c.set_output(c.shape(1), c.dtype(0));
    })
    .save_inputs({1})
    .grad([](GradContext& c) {
      int64_t dim = c.attr<int64_t>("dim");
      return grads{scatter_add(c.zeros_like_input(0, c.grad_out().dtype()), dim, c.input(1), c.grad_out()), Tensor()};
    });

GLIA_OP(scatter_add)
    .inputs({"base", "index", "src"})
    .infer([](InferContext& c) {
      check_index_dtype(c.input(1), "scatter_add");
      check_same_dtype(c.input(0), c.input(2), "scatter_add");
      check_gather_shapes(c.shape(0), c.shape(1), c.attr<int64_t>("dim"), "scatter_add", &c.shape(2));
      c.set_output(c.shape(0), c.dtype(0));
    })
    .save_inputs({1})
    .grad([](GradContext& c) {
      int64_t dim = c.attr<int64_t>("dim");
      Tensor gsrc;
      if (c.needs_grad(2)) {
        Tensor index = c.input(1);
        gsrc = gather(c.grad_out(), dim, index);
        const Shape& src = c.input_shape(2);
        if (gsrc.shape() != src) {  // src larger than index: the rest of src was not used
          std::vector<int64_t> pads;
          for (size_t d = src.size(); d-- > 0;) pads.insert(pads.end(), {0, src[d] - index.shape()[d]});
          gsrc = pad(gsrc, pads);
        }
      }
      return grads{c.grad_out(), Tensor(), gsrc};
    });

GLIA_OP(index_select)
    .inputs({"x", "index"})
    .infer([](InferContext& c) {
      check_index_dtype(c.input(1), "index_select");
      GLIA_CHECK(c.input(1).dim() == 1, ShapeError, "index_select: index must be 1-D, got shape ",
                 to_string(c.shape(1)));
      c.set_output(index_add_src_shape(c.shape(0), c.attr<int64_t>("dim"), c.shape(1)[0]), c.dtype(0));
    })
    .save_inputs({1})
    .grad([](GradContext& c) {
      int64_t dim = c.attr<int64_t>("dim");
      return grads{index_add(c.zeros_like_input(0, c.grad_out().dtype()), dim, c.input(1), c.grad_out()), Tensor()};
    });

GLIA_OP(index_add)
    .inputs({"base", "index", "src"})
    .infer([](InferContext& c) {
      check_index_dtype(c.input(1), "index_add");
      check_same_dtype(c.input(0), c.input(2), "index_add");
      GLIA_CHECK(c.input(1).dim() == 1, ShapeError, "index_add: index must be 1-D, got shape ", to_string(c.shape(1)));
      Shape want = index_add_src_shape(c.shape(0), c.attr<int64_t>("dim"), c.shape(1)[0]);
      GLIA_CHECK(c.shape(2) == want, ShapeError, "index_add: src of shape ", to_string(c.shape(2)),
                 " does not fit; expected ", to_string(want), " (the input's shape with ", c.shape(1)[0],
                 " index entries along dimension ", c.attr<int64_t>("dim"), ")");
      c.set_output(c.shape(0), c.dtype(0));
    })
    .save_inputs({1})
    .grad([](GradContext& c) {
      Tensor gsrc;
      if (c.needs_grad(2)) gsrc = index_select(c.grad_out(), c.attr<int64_t>("dim"), c.input(1));
      return grads{c.grad_out(), Tensor(), gsrc};
    });

GLIA_OP(one_hot).inputs({"labels"}).non_differentiable().infer([](InferContext& c) {
  Shape s = c.shape(0);
  s.push_back(c.attr<int64_t>("num_classes"));
  c.set_output(std::move(s), c.attr<DType>("dtype"));
});

// Outputs: the result and the keep-mask (bool), which the gradient reads.
GLIA_OP(dropout)
    .inputs({"x"})
    .random()
    .num_outputs(2)
    .infer([](InferContext& c) {
      check_floating(c.input(0), "dropout");
      c.set_output(c.shape(0), c.dtype(0));
      c.set_output(c.shape(0), DType::b8);
    })
    .save_inputs({})
    .save_outputs({1})
    .grad([](GradContext& c) {
      double p = c.attr<double>("p");
      double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
      return grads{c.grad_out(0) * c.output(1) * scale};
    });

// --- public functions

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  GLIA_CHECK(x.dim() >= 1, ShapeError, "gather: expected an input with at least one dimension, got a 0-d tensor");
  return call(op_gather, {x, index}, {{"dim", wrap_axis(dim, x.dim(), "gather")}});
}

Tensor scatter_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src) {
  GLIA_CHECK(base.dim() >= 1, ShapeError, "scatter_add: expected an input with at least one dimension, got 0-d");
  return call(op_scatter_add, {base, index, src}, {{"dim", wrap_axis(dim, base.dim(), "scatter_add")}});
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  GLIA_CHECK(x.dim() >= 1, ShapeError, "index_select: expected an input with at least one dimension, got 0-d");
  return call(op_index_select, {x, index}, {{"dim", wrap_axis(dim, x.dim(), "index_select")}});
}

Tensor index_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src) {
  GLIA_CHECK(base.dim() >= 1, ShapeError, "index_add: expected an input with at least one dimension, got 0-d");
  return call(op_index_add, {base, index, src}, {{"dim", wrap_axis(dim, base.dim(), "index_add")}});
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  GLIA_CHECK(weight.dim() == 2, ShapeError, "embedding: weight must be 2-D [vocabulary, dim], got shape ",
             to_string(weight.shape()));
  check_index_dtype(ids, "embedding", "ids");
  Shape out = ids.shape();
  out.push_back(weight.shape()[1]);
  // The kernel checks the ids (no host round trip), with a message about ids.
  Attrs a = {{"dim", int64_t(0)},
             {"index_error",
              std::string("embedding: id {index} is out of range for a vocabulary of {size} rows (ids must be in "
                          "[0, {size}))")}};
  return reshape(call(op_index_select, {weight, reshape(ids, {-1})}, std::move(a)), out);
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  check_index_dtype(labels, "one_hot", "labels");
  GLIA_CHECK(num_classes > 0, ValueError, "one_hot: num_classes must be positive, got ", num_classes);
  return call(op_one_hot, {labels}, {{"num_classes", num_classes}, {"dtype", dtype}});
}

Tensor dropout(const Tensor& x, double p, bool training) {
  check_floating(x, "dropout");
  GLIA_CHECK(p >= 0.0 && p <= 1.0, ValueError, "dropout: p must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  return std::move(dispatch(op_dropout, {x}, {{"p", p}})[0]);
}

}  // namespace glia
