// The pass pipeline and dead-code elimination.
#include "glia/graph/passes.h"

#include <set>

namespace glia::graph {

int eliminate_dead_code(Graph& g) {
  std::set<const Node*> live;
  std::vector<const Node*> stack;
  for (Value* v : g.outputs()) stack.push_back(v->producer);
  for (auto& n : g.nodes())
    if (n->has_side_effects() || n->kind == NodeKind::Placeholder || n->kind == NodeKind::Variable)
      stack.push_back(n.get());
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!live.insert(n).second) continue;
    for (Value* v : n->inputs) stack.push_back(v->producer);
  }
  int removed = 0;
  for (auto& n : g.nodes())
    if (!live.count(n.get()) && n->kind == NodeKind::Op) ++removed;
  g.erase_if([&](const Node& n) { return !live.count(&n); });
  return removed;
}

PassStats optimize(Graph& g, const PassOptions& o) {
  PassStats s;
  for (int round = 0; round < 8; ++round) {
    PassStats before = s;
    if (o.simplify) s.simplified += simplify_algebra(g);
    if (o.constant_folding) s.folded += fold_constants(g);
    if (o.cse) s.merged += eliminate_common_subexpressions(g);
    if (o.dead_code) s.dead += eliminate_dead_code(g);
    bool changed = s.simplified != before.simplified || s.folded != before.folded || s.merged != before.merged ||
                   s.dead != before.dead;
    if (!changed) break;
  }
  if (o.fusion) {
    s.fused += fuse_elementwise(g);
    if (o.dead_code) s.dead += eliminate_dead_code(g);
  }
  return s;
}

}  // namespace glia::graph
