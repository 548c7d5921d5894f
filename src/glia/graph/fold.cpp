// Constant folding: op nodes whose inputs are all constants run once, now, and become constants.
#include <algorithm>
#include <string>

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

/// Whether every reader of a number (a wrapped float64 scalar constant) is float32 arithmetic,
/// whose kernel converts the number to float32 at each run (into a new tensor).
bool read_as_float32(const detail::GraphInfo& info, const Node& c) {
  static const char* const arith[] = {"add", "sub", "mul", "div", "maximum", "minimum"};
  const auto& readers = info.consumers(c.outputs[0]);
  if (readers.empty() || info.is_output(c.outputs[0])) return false;
  for (const Node* r : readers) {
    if (r->kind != NodeKind::Op || r->outputs.size() != 1 || r->outputs[0]->dtype != DType::f32) return false;
    if (std::none_of(std::begin(arith), std::end(arith), [&](const char* a) { return r->op->name() == a; }))
      return false;
  }
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
      // A view (an expanded gradient seed, a transpose) would be copied by every kernel that
      // needs its input contiguous, at every run: store it contiguous once.
      if (!result.is_contiguous()) result = result.contiguous();
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
  // Numbers read by float32 arithmetic are stored as float32 numbers: the same value the kernels
  // would convert them to at each run (not counted: no node is computed). Only numbers that
  // nothing outside the graph holds: one still held could be recorded again, into float64 math.
  detail::GraphInfo after(g);
  for (auto& np : g.nodes()) {
    Node& n = *np;
    if (n.kind != NodeKind::Constant || !n.tensor.defined() || n.tensor.is_symbolic() ||
        !n.tensor.impl()->wrapped_number || n.tensor.dtype() != DType::f64 || n.tensor.impl_ptr().use_count() != 1 ||
        after.written(n.outputs[0]) || !read_as_float32(after, n))
      continue;
    graph_hook::Suspend eager;
    no_grad ng;
    Tensor t = n.tensor.to(DType::f32);
    t.impl()->wrapped_number = true;
    n.tensor = t;
    n.outputs[0]->dtype = DType::f32;
  }
  return folded;
}

}  // namespace glia::graph
