// Common-subexpression elimination: a call that repeats an earlier one (same op, attributes and
// inputs, nothing written in between) reuses the earlier result.
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "glia/graph/pass_utils.h"
#include "glia/graph/passes.h"

namespace glia::graph {
namespace {

// Constants up to this size are compared by value, so that equal numbers written twice in the
// program (x * 2 and y * 2) let the calls that use them merge too.
constexpr int64_t kMaxComparedConstant = 64;

bool commutative(const std::string& op) {
  return op == "add" || op == "mul" || op == "maximum" || op == "minimum" || op == "logical_and" ||
         op == "logical_or" || op == "logical_xor" || op == "eq" || op == "ne";
}

/// The key of a small constant: device, dtype, shape, number flag and bytes (read on the host: a
/// constant on a GPU is copied, as its memory is not the host's).
std::string constant_key(const Tensor& t) {
  graph_hook::Suspend eager;
  std::string k =
      t.device().str() + std::string(name(t.dtype())) + to_string(t.shape()) + (t.impl()->wrapped_number ? "w" : "t");
  Tensor c = t.contiguous().to(Device::cpu());
  k.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  return k;
}

}  // namespace

int eliminate_common_subexpressions(Graph& g) {
  detail::GraphInfo info(g);
  std::unordered_map<Value*, Value*> replaced;
  auto canon = [&](Value* v) {
    for (auto it = replaced.find(v); it != replaced.end(); it = replaced.find(v)) v = it->second;
    return v;
  };
  std::unordered_map<std::string, Node*> seen_const;
  std::unordered_map<std::string, std::vector<Node*>> seen;
  std::vector<const Node*> dead;
  int merged = 0;
  for (auto& np : g.nodes()) {
    Node& n = *np;
    if (n.kind == NodeKind::Constant) {
      const Tensor& t = n.tensor;
      if (!t.defined() || t.numel() > kMaxComparedConstant || info.written(n.outputs[0]) || t.is_symbolic()) continue;
      auto [it, fresh] = seen_const.emplace(constant_key(t), &n);
      if (!fresh) {
        replaced[n.outputs[0]] = it->second->outputs[0];
        dead.push_back(&n);
      }
      continue;
    }
    if (n.kind != NodeKind::Op || n.has_side_effects() || n.op->is_random()) continue;
    std::vector<Value*> in;
    for (Value* v : n.inputs) in.push_back(canon(v));
    std::string key = n.op->name() + "|" + detail::attrs_key(n.attrs) + "|";
    std::vector<int64_t> ids;
    for (Value* v : in) ids.push_back(v->id);
    if (ids.size() == 2 && commutative(n.op->name()) && ids[0] > ids[1]) std::swap(ids[0], ids[1]);
    for (int64_t id : ids) key += std::to_string(id) + ",";
    // Fresh results that are written in place later are distinct buffers, not copies of each other.
    bool fresh_written = false;
    for (Value* v : n.outputs) fresh_written = fresh_written || (!n.op->is_view() && info.written(v));
    if (fresh_written) continue;
    auto& candidates = seen[key];
    Node* match = nullptr;
    for (Node* m : candidates) {
      bool ok = true;
      for (Value* v : in) ok = ok && !info.written_between(v, info.pos(m), info.pos(&n));
      if (ok) {
        match = m;
        break;
      }
    }
    if (!match) {
      candidates.push_back(&n);
      continue;
    }
    for (size_t i = 0; i < n.outputs.size(); ++i) replaced[n.outputs[i]] = match->outputs[i];
    dead.push_back(&n);
    ++merged;
  }
  detail::replace_all(g, replaced);
  std::unordered_set<const Node*> gone(dead.begin(), dead.end());
  if (!gone.empty()) g.erase_if([&](const Node& n) { return gone.count(&n) > 0; });
  return merged;
}

}  // namespace glia::graph
