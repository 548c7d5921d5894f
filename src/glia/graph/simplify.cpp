// Algebraic simplification: identities that turn an op into one of its inputs (x * 1, x + 0,
// a cast to the same dtype, a permute that undoes another) and chains of views that compose
// (permute of permute, reshape of reshape).
#include <unordered_map>

#include "glia/graph/pass_utils.h"
#include "glia/graph/passes.h"

namespace glia::graph {
namespace {

using I64s = std::vector<int64_t>;

bool same_value_type(const Value* a, const Value* b) {
  if (a->dtype != b->dtype || a->shape != b->shape) return false;
  // Two unknown dims may differ at run time; one is fixed by the element count (reshape keeps it).
  int unknown = 0;
  for (int64_t d : a->shape) unknown += d < 0;
  return unknown <= 1;
}

bool is_op(const Node* n, const char* name) { return n->kind == NodeKind::Op && !n->inplace && n->op->name() == name; }

/// For x (op) c with c a constant of all `value`: the index of x, else -1.
int identity_operand(const detail::GraphInfo& info, const Node& n, double value, bool either_side) {
  for (int i = 1; i >= (either_side ? 0 : 1); --i) {
    Tensor c = detail::unwritten_constant(info, n.inputs[static_cast<size_t>(i)]);
    if (c.defined() && detail::all_equal(c, value)) return 1 - i;
  }
  return -1;
}

}  // namespace

int simplify_algebra(Graph& g) {
  detail::GraphInfo info(g);
  std::unordered_map<Value*, Value*> replaced;
  int changed = 0;
  for (auto& np : g.nodes()) {
    Node& n = *np;
    if (n.kind != NodeKind::Op || n.has_side_effects() || n.outputs.size() != 1) continue;
    Value* out = n.outputs[0];
    // Uses of a result written in place later must keep their own buffer.
    if (!n.op->is_view() && info.written(out)) continue;
    const std::string& op = n.op->name();
    Value* to = nullptr;  // the value out becomes
    if (op == "mul" || op == "add" || op == "sub" || op == "div") {
      bool either = op == "mul" || op == "add";
      int x = identity_operand(info, n, op == "mul" || op == "div" ? 1.0 : 0.0, either);
      if (x >= 0 && same_value_type(n.inputs[static_cast<size_t>(x)], out)) to = n.inputs[static_cast<size_t>(x)];
    } else if (op == "cast") {
      if (n.inputs[0]->dtype == n.attrs.get<DType>("dtype")) to = n.inputs[0];
    } else if (op == "permute") {
      const I64s& outer = n.attrs.get<I64s>("dims");
      Node* p = n.inputs[0]->producer;
      bool identity = true;
      for (size_t i = 0; i < outer.size(); ++i) identity = identity && outer[i] == static_cast<int64_t>(i);
      if (identity) {
        to = n.inputs[0];
      } else if (is_op(p, "permute")) {
        const I64s& inner = p->attrs.get<I64s>("dims");
        I64s dims(outer.size());
        bool id = true;
        for (size_t i = 0; i < outer.size(); ++i) {
          dims[i] = inner[static_cast<size_t>(outer[i])];
          id = id && dims[i] == static_cast<int64_t>(i);
        }
        if (id) {
          to = p->inputs[0];
        } else {
          n.inputs[0] = p->inputs[0];
          n.attrs.set("dims", dims);
          ++changed;
          continue;
        }
      }
    } else if (op == "reshape") {
      Node* p = n.inputs[0]->producer;
      Value* src = is_op(p, "reshape") ? p->inputs[0] : n.inputs[0];
      if (same_value_type(src, out)) {
        to = src;
      } else if (src != n.inputs[0]) {
        n.inputs[0] = src;
        ++changed;
        continue;
      }
    }
    if (!to) continue;
    // The value must still hold what `out` would have held wherever out is read.
    if (info.written_between(to, info.pos(&n), static_cast<int>(g.nodes().size()))) continue;
    replaced[out] = to;
    ++changed;
  }
  detail::replace_all(g, replaced);
  return changed;
}

}  // namespace glia::graph
