#include "glia/graph/infer.h"

namespace glia::graph {
namespace {

/// A tensor with a shape and dtype but no data, for the op's own inference code.
Tensor meta_tensor(const Shape& shape, DType dtype, bool wrapped, Device device) {
  Tensor t = Tensor::make_view(nullptr, shape, contiguous_strides(shape), 0, dtype);
  t.impl()->wrapped_number = wrapped;
  auto ref = std::make_shared<SymbolicRef>();
  ref->device = device;
  t.impl()->symbolic = std::move(ref);
  return t;
}

Shape with_probe(const Shape& s, int64_t probe) {
  Shape out = s;
  for (auto& d : out)
    if (d < 0) d = probe;
  return out;
}

std::vector<TensorSpec> infer_metas(const OpDef& op, std::span<const Tensor> metas, const Attrs& attrs) {
  std::vector<TensorSpec> specs;
  if (op.is_view()) {
    Tensor v = op.view_fn()(metas[0], attrs);
    specs.push_back({v.shape(), v.dtype()});
    return specs;
  }
  InferContext ic(op, metas, attrs);
  op.infer_fn()(ic);
  for (auto& s : ic.outputs()) specs.push_back(s);
  return specs;
}

std::vector<TensorSpec> infer_probe(const OpDef& op, std::span<const Tensor> in, const Attrs& attrs, int64_t probe) {
  std::vector<Tensor> metas;
  for (const Tensor& t : in)
    metas.push_back(meta_tensor(with_probe(t.shape(), probe), t.dtype(), t.impl()->wrapped_number, t.device()));
  return infer_metas(op, std::span<const Tensor>(metas.data(), metas.size()), attrs);
}

}  // namespace

int64_t known_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) return -1;
    n *= d;
  }
  return n;
}

std::vector<TensorSpec> infer_op(const OpDef& op, std::span<const Tensor> in, const Attrs& attrs) {
  bool unknown = false;
  for (const Tensor& t : in)
    for (int64_t d : t.shape()) unknown = unknown || d < 0;
  if (!unknown) return infer_probe(op, in, attrs, 1);
  // Unknown dims (a placeholder's batch) are probed with two sizes: what differs between the two
  // results depends on them and stays unknown until the graph runs with real feeds.
  auto probe_pair = [&](int64_t p, int64_t q) {
    std::vector<TensorSpec> a = infer_probe(op, in, attrs, p), b = infer_probe(op, in, attrs, q);
    for (size_t i = 0; i < a.size(); ++i)
      for (size_t d = 0; d < a[i].shape.size(); ++d)
        if (d >= b[i].shape.size() || a[i].shape[d] != b[i].shape[d]) a[i].shape[d] = -1;
    return a;
  };
  try {
    return probe_pair(7, 13);
  } catch (const Error&) {
    // An unknown dim may stand for a multiple of known sizes (a batch of 2x3 rows flattened, then
    // reshaped back to [-1, 2, 3]); sizes divisible by every number up to 12 (and 14, 15, 16) fit
    // those. If they fail too, the first error (with small sizes) is the clearer one.
    constexpr int64_t kSmooth = 55440;
    try {
      return probe_pair(7 * kSmooth, 13 * kSmooth);
    } catch (const Error&) {
    }
    throw;
  }
}

std::vector<TensorSpec> infer_node(const Node& n, const std::vector<Shape>& input_shapes) {
  std::vector<Tensor> metas;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const Value* v = n.inputs[i];
    const Tensor& src = v->producer->tensor;
    metas.push_back(meta_tensor(input_shapes[i], v->dtype, src.defined() && src.impl()->wrapped_number,
                                src.defined() ? src.device() : Device::cpu()));
  }
  return infer_metas(*n.op, std::span<const Tensor>(metas.data(), metas.size()), n.attrs);
}

}  // namespace glia::graph
