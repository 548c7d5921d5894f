// Fusion: chains of float32 element-wise ops become one fused_elementwise node (one pass over
// memory), and a matmul or convolution absorbs the bias add and activation that follow it.
// The last node of each fused group turns into the fused node, so its output value and its
// place in the execution order stay; the other members are removed. Members move down to that
// place, which is allowed only when nothing in between writes what they read.
#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "glia/graph/pass_utils.h"
#include "glia/graph/passes.h"
#include "glia/ops/fused.h"

namespace glia::graph {
namespace {

using fused::Code;
using fused::InputKind;

// A group's size is bounded so that its program stays small enough to keep in registers.
constexpr size_t kMaxGroup = 24;

bool is_op(const Node* n, const char* name) {
  return n->kind == NodeKind::Op && !n->has_side_effects() && n->op->name() == name;
}

/// The only node that reads v, if v is read once, not fetched and not written in place.
Node* only_consumer(const detail::GraphInfo& info, const Value* v) {
  const auto& c = info.consumers(v);
  if (c.size() != 1 || info.is_output(v) || info.written(v)) return nullptr;
  return c[0];
}

/// Whether moving a read of v from position `from` to `to` sees the same data.
bool stable(const detail::GraphInfo& info, const Value* v, int from, int to) {
  return !info.written_between(v, from, to);
}

void retire(Node& n, std::vector<const Node*>& dead) { dead.push_back(&n); }

void erase(Graph& g, const std::vector<const Node*>& dead) {
  if (dead.empty()) return;
  std::unordered_set<const Node*> gone(dead.begin(), dead.end());
  g.erase_if([&](const Node& n) { return gone.count(&n) > 0; });
}

/// Turns node `last` into a call of `op` on `inputs`.
void become(Node& last, const char* op, std::vector<Value*> inputs, Attrs attrs) {
  last.op = &OpRegistry::instance().get(op);
  last.inputs = std::move(inputs);
  last.attrs = std::move(attrs);
  last.inplace = false;
}

// --- matmul (+ bias) (+ activation)

bool is_activation(const Node* n) {
  return is_op(n, "relu") || is_op(n, "gelu") || is_op(n, "tanh") || is_op(n, "sigmoid");
}

int fuse_matmul(Graph& g) {
  detail::GraphInfo info(g);
  std::vector<const Node*> dead;
  int absorbed = 0;
  for (auto& np : g.nodes()) {
    Node* m = np.get();
    if (!is_op(m, "matmul")) continue;
    Value *a = m->inputs[0], *b = m->inputs[1], *y = m->outputs[0];
    if (a->shape.size() != 2 || b->shape.size() != 2 || y->dtype != DType::f32 || y->shape[1] < 0) continue;
    Node* last = m;
    Node* add = nullptr;
    Value* bias = nullptr;
    Node* c = only_consumer(info, y);
    if (c && is_op(c, "add") && c->outputs[0]->shape == y->shape && c->outputs[0]->dtype == DType::f32 &&
        c->inputs[0] != c->inputs[1]) {
      Value* other = c->inputs[0] == y ? c->inputs[1] : c->inputs[0];
      int64_t N = y->shape[1];
      if (other->dtype == DType::f32 && (other->shape == Shape{N} || other->shape == Shape{1, N})) {
        bias = other;
        add = c;
        last = c;
        c = only_consumer(info, c->outputs[0]);
      }
    }
    std::string act;
    bool approximate = false;
    if (c && is_activation(c) && c->outputs[0]->dtype == DType::f32) {
      act = c->op->name();
      if (act == "gelu") approximate = c->attrs.get<bool>("approximate");
      last = c;
    }
    if (last == m) continue;
    int to = info.pos(last);
    if (!stable(info, a, info.pos(m), to) || !stable(info, b, info.pos(m), to) ||
        (bias && !stable(info, bias, info.pos(add), to)))
      continue;
    std::vector<Value*> in{a, b};
    if (bias) in.push_back(bias);
    if (add && add != last) retire(*add, dead);
    retire(*m, dead);
    absorbed += (add ? 1 : 0) + (act.empty() ? 0 : 1);
    become(*last, "matmul_fused", std::move(in), Attrs{{"activation", act}, {"approximate", approximate}});
  }
  erase(g, dead);
  return absorbed;
}

// --- conv2d (+ bias) + relu

int fuse_conv(Graph& g) {
  detail::GraphInfo info(g);
  std::vector<const Node*> dead;
  int absorbed = 0;
  for (auto& np : g.nodes()) {
    Node* cv = np.get();
    if (!is_op(cv, "conv2d") && !is_op(cv, "conv2d_bias")) continue;
    Node* r = only_consumer(info, cv->outputs[0]);
    if (!r || !is_op(r, "relu") || cv->outputs[0]->dtype != DType::f32) continue;
    bool ok = true;
    for (Value* v : cv->inputs) ok = ok && stable(info, v, info.pos(cv), info.pos(r));
    if (!ok) continue;
    Attrs a = cv->attrs;
    a.set("activation", std::string("relu"));
    become(*r, "conv2d_fused", cv->inputs, std::move(a));
    retire(*cv, dead);
    ++absorbed;
  }
  erase(g, dead);
  return absorbed;
}

// --- relu_backward after max_pool2d_backward
//
// conv -> relu -> max_pool2d differentiates to relu_backward(max_pool2d_backward(g, index), y),
// with y the relu output the pool read: a mask applied to the full-size map the pool's backward
// scattered into. The pool's output p holds y at the index, so masking g by p > 0 before the
// scatter gives the same map, and reads and writes a quarter of the memory:
//   max_pool2d_backward(relu_backward(g, p), index).

int fuse_pool_relu_backward(Graph& g) {
  detail::GraphInfo info(g);
  int rewritten = 0;
  for (auto& np : g.nodes()) {
    Node* r = np.get();
    if (!is_op(r, "relu_backward")) continue;
    Node* b = r->inputs[0]->producer;
    if (!is_op(b, "max_pool2d_backward") || only_consumer(info, b->outputs[0]) != r) continue;
    Node* pool = b->inputs[1]->producer;
    if (!is_op(pool, "max_pool2d") || b->inputs[1] != pool->outputs[1] || pool->inputs[0] != r->inputs[1]) continue;
    Value *grad = b->inputs[0], *index = b->inputs[1], *p = pool->outputs[0], *mid = b->outputs[0];
    if (grad->shape != p->shape || grad->dtype != p->dtype) continue;
    // p and the grad are read at b's place instead of r's: nothing may write them in between.
    if (!stable(info, p, info.pos(b), info.pos(r)) || !stable(info, index, info.pos(b), info.pos(r))) continue;
    Attrs pool_attrs = b->attrs;
    become(*b, "relu_backward", {grad, p}, Attrs());
    mid->shape = p->shape;
    become(*r, "max_pool2d_backward", {mid, index}, std::move(pool_attrs));
    ++rewritten;
  }
  return rewritten;
}

// --- element-wise chains

/// An element-wise node's instruction (operands and destination left to fill), if fusable.
std::optional<fused::Instr> instruction(const Node& n) {
  static const std::map<std::string, Code> simple{{"neg", Code::Neg},
                                                  {"abs", Code::Abs},
                                                  {"exp", Code::Exp},
                                                  {"expm1", Code::Expm1},
                                                  {"log", Code::Log},
                                                  {"log1p", Code::Log1p},
                                                  {"sqrt", Code::Sqrt},
                                                  {"rsqrt", Code::Rsqrt},
                                                  {"reciprocal", Code::Reciprocal},
                                                  {"sin", Code::Sin},
                                                  {"cos", Code::Cos},
                                                  {"tanh", Code::Tanh},
                                                  {"sigmoid", Code::Sigmoid},
                                                  {"erf", Code::Erf},
                                                  {"relu", Code::Relu},
                                                  {"square", Code::Square},
                                                  {"add", Code::Add},
                                                  {"sub", Code::Sub},
                                                  {"mul", Code::Mul},
                                                  {"div", Code::Div},
                                                  {"maximum", Code::Maximum},
                                                  {"minimum", Code::Minimum},
                                                  {"relu_backward", Code::ReluBackward},
                                                  {"sigmoid_backward", Code::SigmoidBackward},
                                                  {"tanh_backward", Code::TanhBackward}};
  const std::string& op = n.op->name();
  fused::Instr i{Code::Neg, 0, 0, -1};
  if (auto it = simple.find(op); it != simple.end()) {
    i.code = it->second;
  } else if (op == "leaky_relu") {
    i.code = Code::LeakyRelu;
    i.p0 = n.attrs.get<double>("negative_slope");
  } else if (op == "elu") {
    i.code = Code::Elu;
    i.p0 = n.attrs.get<double>("alpha");
  } else if (op == "gelu") {
    i.code = n.attrs.get<bool>("approximate") ? Code::GeluTanh : Code::Gelu;
  } else if (op == "softplus") {
    i.code = Code::Softplus;
    i.p0 = n.attrs.get<double>("beta");
    i.p1 = n.attrs.get<double>("threshold");
  } else if (op == "pow_scalar" && n.attrs.get<double>("exponent") == 2.0) {
    i.code = Code::Square;
  } else {
    return std::nullopt;
  }
  if (n.inputs.size() != (fused::is_binary(i.code) ? 2u : 1u)) return std::nullopt;
  return i;
}

/// How a group of shape s reads an input v from outside the group, if it can.
std::optional<InputKind> input_kind(const Value* v, const Shape& s) {
  if (v->shape == s) {
    if (v->dtype != DType::f32) return std::nullopt;
    return InputKind::Full;
  }
  if (!detail::known(v->shape) || v->shape.size() > s.size()) return std::nullopt;
  if (known_numel(v->shape) == 1) return InputKind::Scalar;
  bool bias = !v->shape.empty() && v->shape.back() == s.back() && v->dtype == DType::f32;
  for (size_t d = 0; bias && d + 1 < v->shape.size(); ++d) bias = v->shape[d] == 1;
  if (bias) return InputKind::Bias;
  return std::nullopt;
}

/// Whether n can be a member of a group of shape s.
bool member_candidate(const Node& n, const Shape& s) {
  if (n.kind != NodeKind::Op || n.has_side_effects() || n.outputs.size() != 1) return false;
  const Value* out = n.outputs[0];
  if (out->dtype != DType::f32 || out->shape != s) return false;
  auto ins = instruction(n);
  if (!ins) return false;
  if (!fused::is_binary(ins->code)) return n.inputs[0]->shape == s && n.inputs[0]->dtype == DType::f32;
  auto k0 = input_kind(n.inputs[0], s), k1 = input_kind(n.inputs[1], s);
  return k0 && k1 && !(*k0 == InputKind::Scalar && *k1 == InputKind::Scalar);
}

struct Group {
  std::vector<Node*> members;  // in execution order; the last is the root
  std::vector<Value*> inputs;
  std::vector<int64_t> kinds;
  std::vector<int64_t> program;
};

/// The program of a group, with registers reused after their last read; false if it needs more
/// registers or bias inputs than the kernel has.
bool compile(Group& grp, const Shape& s) {
  std::unordered_map<const Value*, int64_t> slot;
  int bias = 0;
  for (Node* m : grp.members)
    for (Value* v : m->inputs) {
      if (v->producer && std::find(grp.members.begin(), grp.members.end(), v->producer) != grp.members.end()) continue;
      if (slot.count(v)) continue;
      InputKind k = *input_kind(v, s);
      bias += k == InputKind::Bias;
      slot[v] = static_cast<int64_t>(grp.inputs.size());
      grp.inputs.push_back(v);
      grp.kinds.push_back(static_cast<int64_t>(k));
    }
  if (bias > fused::kMaxBiasInputs) return false;
  const auto n = static_cast<int64_t>(grp.inputs.size());
  std::unordered_map<const Value*, size_t> last_read;
  for (size_t i = 0; i < grp.members.size(); ++i)
    for (Value* v : grp.members[i]->inputs) last_read[v] = i;
  std::vector<int64_t> free_regs;
  int64_t regs = 0;
  std::vector<fused::Instr> prog;
  for (size_t i = 0; i < grp.members.size(); ++i) {
    Node* m = grp.members[i];
    fused::Instr ins = *instruction(*m);
    ins.a = slot.at(m->inputs[0]);
    if (fused::is_binary(ins.code)) ins.b = slot.at(m->inputs[1]);
    // Registers whose value is read for the last time here can take this result.
    for (Value* v : m->inputs) {
      auto it = slot.find(v);
      if (it->second >= n && last_read.at(v) == i &&
          std::find(free_regs.begin(), free_regs.end(), it->second) == free_regs.end())
        free_regs.push_back(it->second);
    }
    if (i + 1 == grp.members.size()) {
      ins.dst = fused::kOutput;
    } else if (!free_regs.empty()) {
      std::sort(free_regs.begin(), free_regs.end());
      ins.dst = free_regs.front();
      free_regs.erase(free_regs.begin());
    } else {
      if (regs == fused::kMaxRegisters) return false;
      ins.dst = n + regs++;
    }
    slot[m->outputs[0]] = ins.dst;
    prog.push_back(ins);
  }
  grp.program = fused::encode(regs, prog);
  return true;
}

std::string describe(const Group& grp) {
  std::string s;
  for (Node* m : grp.members) s += (s.empty() ? "" : ",") + m->op->name();
  return s;
}

int fuse_chains(Graph& g) {
  detail::GraphInfo info(g);
  std::vector<Node*> order;
  for (auto& n : g.nodes()) order.push_back(n.get());
  std::unordered_set<const Node*> taken;
  std::vector<const Node*> dead;
  int removed = 0;
  for (size_t idx = order.size(); idx-- > 0;) {
    Node* root = order[idx];
    if (taken.count(root) || root->kind != NodeKind::Op || root->outputs.size() != 1) continue;
    const Shape s = root->outputs[0]->shape;
    if (!detail::known(s) || known_numel(s) == 0 || !member_candidate(*root, s)) continue;
    const int to = info.pos(root);
    std::vector<Node*> members{root};
    std::unordered_set<const Node*> in_group{root};
    auto absorbable = [&](const Value* u) {
      Node* p = u->producer;
      if (in_group.count(p) || taken.count(p) || !member_candidate(*p, s)) return false;
      if (info.is_output(u) || info.written(u)) return false;
      for (Node* c : info.consumers(u))
        if (!in_group.count(c)) return false;
      for (Value* w : p->inputs)
        if (!stable(info, w, info.pos(p), to)) return false;
      return true;
    };
    for (bool grew = true; grew && members.size() < kMaxGroup;) {
      grew = false;
      for (size_t k = 0; k < members.size() && members.size() < kMaxGroup; ++k)
        for (Value* u : members[k]->inputs)
          if (members.size() < kMaxGroup && absorbable(u)) {
            members.push_back(u->producer);
            in_group.insert(u->producer);
            grew = true;
          }
    }
    for (Node* m : members) taken.insert(m);
    if (members.size() < 2) continue;
    std::sort(members.begin(), members.end(), [&](Node* x, Node* y) { return info.pos(x) < info.pos(y); });
    Group grp;
    grp.members = members;
    if (!compile(grp, s)) continue;
    int64_t from = -1;
    for (size_t i = 0; i < grp.kinds.size() && from < 0; ++i)
      if (grp.kinds[i] == static_cast<int64_t>(InputKind::Full)) from = static_cast<int64_t>(i);
    Attrs a{{"program", grp.program},
            {"kinds", grp.kinds},
            {"shape", std::vector<int64_t>(s.begin(), s.end())},
            {"shape_from", from},
            {"ops", describe(grp)}};
    for (Node* m : members)
      if (m != root) retire(*m, dead);
    become(*root, "fused_elementwise", grp.inputs, std::move(a));
    removed += static_cast<int>(members.size()) - 1;
  }
  erase(g, dead);
  return removed;
}

}  // namespace

int fuse_elementwise(Graph& g) {
  int n = fuse_pool_relu_backward(g);
  n += fuse_matmul(g);
  n += fuse_conv(g);
  n += fuse_chains(g);
  return n;
}

}  // namespace glia::graph
