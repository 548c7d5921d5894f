// Constant folding: op nodes whose inputs are all constants run once, now, and become constants.
#include "glia/autograd/autograd.h"
#include "glia/graph/pass_utils.h"
#include "glia/graph/passes.h"

namespace glia::graph {
namespace {

// Folded results are kept in the graph: bigger ones cost more memory than they save time.
constexpr int64_t kMaxFoldedElements = int64_t(1) << 22;

bool foldable(const Node& n, const detail::GraphInfo& info) {
  if (n.kind != NodeKind::Op || n.has_side_effects() || n.op->is_random() || n.outputs.size() != 1) return false;
  const Value* out = n.outputs[0];
  int64_t numel = detail::known(out->shape) ? known_numel(out->shape) : -1;
  if (numel < 0 || numel > kMaxFoldedElements) return false;
  // A result that is written in place later must stay a fresh buffer per run.
  if (info.written(out)) return false;
  for (const Value* v : n.inputs)
    if (!detail::unwritten_constant(info, v).defined()) return false;
  return true;
}

}  // namespace

int fold_constants(Graph& g) {
  detail::GraphInfo info(g);
  int folded = 0;
  for (auto& np : g.nodes()) {
    Node& n = *np;
    if (!foldable(n, info)) continue;
    std::vector<Tensor> in;
    bool all_wrapped = !n.inputs.empty();
    for (const Value* v : n.inputs) {
      in.push_back(v->producer->tensor);
      all_wrapped = all_wrapped && v->producer->tensor.impl()->wrapped_number;
    }
    Tensor result;
    {
      graph_hook::Suspend eager;
      no_grad ng;
      result = dispatch(*n.op, std::span<const Tensor>(in.data(), in.size()), n.attrs)[0];
    }
    const Value* out = n.outputs[0];
    if (result.shape() != out->shape || result.dtype() != out->dtype) continue;
    // Numbers combined with numbers stay numbers (they must not widen the dtype of what they meet).
    if (all_wrapped && result.dim() == 0) result.impl()->wrapped_number = true;
    n.kind = NodeKind::Constant;
    n.op = nullptr;
    n.attrs = Attrs();
    n.inputs.clear();
    n.inplace = false;
    n.tensor = result;
    n.name = "folded";
    ++folded;
  }
  return folded;
}

}  // namespace glia::graph
