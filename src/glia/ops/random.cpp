// Random tensors as ops: eager calls draw at once; inside a graph, each run draws anew.
#include "glia/ops/op.h"

namespace glia {
namespace {
void random_infer(InferContext& c) {
  const auto& s = c.attr<std::vector<int64_t>>("shape");
  for (int64_t d : s) GLIA_CHECK(d >= 0, ShapeError, c.name(), ": negative dimension in shape ", to_string(s));
  c.set_output(Shape(s.begin(), s.end()), c.attr<DType>("dtype"));
}
}  // namespace

GLIA_OP(random_uniform).inputs({}).non_differentiable().random().infer(random_infer).doc("Uniform in [low, high).");
GLIA_OP(random_normal).inputs({}).non_differentiable().random().infer(random_infer).doc("Normal(mean, std).");
GLIA_OP(random_int)
    .inputs({})
    .non_differentiable()
    .random()
    .infer(random_infer)
    .doc("Integers uniform in [low, high).");

}  // namespace glia
