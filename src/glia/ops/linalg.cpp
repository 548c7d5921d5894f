// Matrix products.
#include "glia/ops/linalg.h"

#include <algorithm>

#include "glia/ops/elementwise.h"
#include "glia/ops/op.h"
#include "glia/ops/reduce.h"
#include "glia/ops/shape_ops.h"

namespace glia {

// Operands of rank >= 2; batch dims broadcast. The public matmul handles 1-D operands.
GLIA_OP(matmul)
    .inputs({"a", "b"})
    .infer([](InferContext& c) {
      const Shape &a = c.shape(0), &b = c.shape(1);
      GLIA_CHECK(c.dtype(0) == c.dtype(1), DTypeError, "matmul: operands must have the same dtype, got ",
                 name(c.dtype(0)), " and ", name(c.dtype(1)));
      check_floating(c.input(0), "matmul", "operand");
      int64_t k1 = a.back(), k2 = b[b.size() - 2];
      GLIA_CHECK(k1 == k2, ShapeError, "matmul: inner dimensions do not match: ", to_string(a), " @ ", to_string(b),
                 " (", k1, " != ", k2, ")");
      Shape batch = broadcast_shapes(IntList(a.data(), a.size() - 2), IntList(b.data(), b.size() - 2), "matmul");
      batch.push_back(a[a.size() - 2]);
      batch.push_back(b.back());
      c.set_output(std::move(batch), c.dtype(0));
    })
    .grad([](GradContext& c) {
      const Tensor& g = c.grad_out();
      Tensor ga, gb;
      if (c.needs_grad(0)) ga = c.sum_to_input(matmul(g, c.input(1).transpose(-1, -2)), 0);
      if (c.needs_grad(1)) gb = c.sum_to_input(matmul(c.input(0).transpose(-1, -2), g), 1);
      return grads{ga, gb};
    });

Tensor matmul(const Tensor& a, const Tensor& b) {
  GLIA_CHECK(a.dim() >= 1 && b.dim() >= 1, ShapeError, "matmul: operands must have at least one dimension, got ",
             to_string(a.shape()), " and ", to_string(b.shape()));
  // Checked here too, so that the message shows the shapes the caller passed, not the promoted ones.
  int64_t ka = a.shape().back(), kb = b.shape()[static_cast<size_t>(std::max<int64_t>(b.dim() - 2, 0))];
  GLIA_CHECK(ka == kb, ShapeError, "matmul: inner dimensions do not match: ", to_string(a.shape()), " @ ",
             to_string(b.shape()), " (", ka, " != ", kb, ")");
  if (a.dim() >= 2 && b.dim() >= 2) return call(op_matmul, {a, b});
  Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
  Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
  Tensor r = call(op_matmul, {a2, b2});
  if (b.dim() == 1) r = r.squeeze(-1);
  if (a.dim() == 1) r = r.squeeze(a.dim() == 1 && b.dim() == 1 ? 0 : -2);
  return r;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  GLIA_CHECK(weight.dim() == 2, ShapeError, "linear: weight must be 2-D [in, out], got shape ",
             to_string(weight.shape()));
  GLIA_CHECK(x.dim() >= 1 && x.shape().back() == weight.shape()[0], ShapeError, "linear: input of shape ",
             to_string(x.shape()), " does not match weight of shape ", to_string(weight.shape()),
             " (expected last dimension ", weight.shape()[0], ")");
  Tensor y = matmul(x, weight);
  if (bias.defined()) {
    GLIA_CHECK(bias.dim() == 1 && bias.shape()[0] == weight.shape()[1], ShapeError, "linear: bias of shape ",
               to_string(bias.shape()), " does not match ", weight.shape()[1], " outputs");
    y = y + bias;
  }
  return y;
}

Tensor Tensor::matmul(const Tensor& o) const { return glia::matmul(*this, o); }

}  // namespace glia
