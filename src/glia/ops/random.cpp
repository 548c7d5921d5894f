// Random tensors as ops: eager calls draw at once; inside a graph, each run draws anew.
#include "glia/ops/device_attrs.h"
#include "glia/ops/op.h"

namespace glia {
namespace {
void random_infer(InferContext& c) {
  const auto& s = c.attr<std::vector<int64_t>>("shape");
  for (int64_t d : s) GLIA_CHECK(d >= 0, ShapeError, c.name(), ": negative dimension in shape ", to_string(s));
  // Drawn on the device the caller asked for (TensorOptions::device), else on the CPU.
  if (c.attrs().has("device_type"))
    c.set_output(Shape(s.begin(), s.end()), c.attr<DType>("dtype"),
                 detail::device_from_attrs(c.attrs(), "device_type", "device_index"));
  else
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
