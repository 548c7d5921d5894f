// The pass pipeline and dead-code elimination.
#include "glia/graph/passes.h"

#include <map>
#include <set>

#include "glia/graph/pass_utils.h"

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

int schedule_updates(Graph& g) {
  detail::GraphInfo info(g);
  std::vector<Node*> order;
  for (auto& n : g.nodes()) order.push_back(n.get());
  // Who reads or writes each buffer, by position.
  std::map<const void*, std::vector<int>> touch;
  for (size_t p = 0; p < order.size(); ++p)
    for (Value* v : order[p]->inputs) touch[info.buffer(v)].push_back(static_cast<int>(p));
  std::map<int, std::vector<Node*>> after;  // position -> updates to run right after it
  std::set<const Node*> moved;
  for (size_t p = 0; p < order.size(); ++p) {
    Node* n = order[p];
    if (n->kind != NodeKind::Op || n->inplace || !n->op->mutates_inputs()) continue;
    int earliest = -1;
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      Value* v = n->inputs[i];
      // Sources (captures, constants, placeholders, variables) all move to the front below.
      if (v->producer->kind == NodeKind::Op) earliest = std::max(earliest, info.pos(v->producer));
      if (n->op->writes_input(i, n->inputs.size(), n->attrs)) {
        // Every earlier reader or writer of what this node writes stays before it.
        for (int q : touch[info.buffer(v)])
          if (q < static_cast<int>(p)) earliest = std::max(earliest, q);
      } else {
        // What it reads must have been written already.
        for (int q = earliest + 1; q < static_cast<int>(p); ++q)
          if (info.written_between(v, q - 1, q + 1)) earliest = std::max(earliest, q);
      }
    }
    // Side effects keep their order among themselves: an update never passes an earlier one that
    // touches the same buffers (covered above) or any random op (the random stream stays as traced).
    for (int q = earliest + 1; q < static_cast<int>(p); ++q)
      if (order[static_cast<size_t>(q)]->kind == NodeKind::Op && order[static_cast<size_t>(q)]->op->is_random())
        earliest = q;
    if (earliest + 1 >= static_cast<int>(p)) continue;
    after[earliest].push_back(n);
    moved.insert(n);
  }
  if (moved.empty()) return 0;
  // Sources first (they compute nothing and depend on nothing), then the ops with the updates moved.
  std::vector<Node*> out;
  for (Node* n : order)
    if (n->kind != NodeKind::Op) out.push_back(n);
  for (size_t p = 0; p < order.size(); ++p) {
    if (order[p]->kind == NodeKind::Op && !moved.count(order[p])) out.push_back(order[p]);
    auto it = after.find(static_cast<int>(p));
    if (it != after.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  g.reorder(out);
  return static_cast<int>(moved.size());
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
  if (o.schedule_updates) s.scheduled += schedule_updates(g);
  return s;
}

}  // namespace glia::graph
