// The graph IR, the builder API and the recorder behind dispatch's graph hook.
#include "glia/graph/graph.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "glia/autograd/autograd.h"
#include "glia/autograd/node.h"
#include "glia/graph/infer.h"
#include "glia/ops/functions.h"

namespace glia::graph {
namespace {

thread_local Graph* t_current = nullptr;

Graph* graph_of(const Tensor& t) {
  const auto& ref = t.impl()->symbolic;
  GLIA_CHECK(ref->alive.lock() != nullptr, ValueError,
             "a symbolic tensor of a graph that no longer exists was used (shape ", to_string(t.shape()), ")");
  return static_cast<Graph*>(ref->graph);
}

TensorList record_hook(const OpDef& op, std::span<const Tensor> in, const Attrs& attrs, bool inplace);

void run_hooks(const Tensor& t, std::function<void()> before, std::function<void()> after) {
  graph_of(t)->add_run_hooks(std::move(before), std::move(after));
}

const bool hook_installed = [] {
  graph_hook::install(&record_hook);
  graph_hook::install_run_hooks(&run_hooks);
  return true;
}();

}  // namespace

// --- Graph

Graph::Graph() : alive_(std::make_shared<int>(0)) {
  (void)hook_installed;
  birth_mark_ = next_tensor_id();
}

Graph::~Graph() = default;

Node* Graph::add_node(NodeKind kind, const OpDef* op, Attrs attrs, std::vector<Value*> inputs,
                      const std::vector<TensorSpec>& outputs, std::string name) {
  auto n = std::make_unique<Node>();
  n->id = next_id_++;
  n->kind = kind;
  n->op = op;
  n->attrs = std::move(attrs);
  n->inputs = std::move(inputs);
  n->name = std::move(name);
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto v = std::make_unique<Value>();
    v->id = next_id_++;
    v->shape = outputs[i].shape;
    v->dtype = outputs[i].dtype;
    v->producer = n.get();
    v->output_index = static_cast<int>(i);
    n->outputs.push_back(v.get());
    values_.push_back(std::move(v));
  }
  nodes_.push_back(std::move(n));
  ++version_;
  return nodes_.back().get();
}

Tensor Graph::tensor_of(Value* v) {
  Shape strides = contiguous_strides(v->shape);
  Tensor t = Tensor::make_view(nullptr, v->shape, strides, 0, v->dtype);
  t.impl()->numel = known_numel(v->shape);
  auto ref = std::make_shared<SymbolicRef>();
  ref->graph = this;
  ref->value = v;
  ref->alive = std::weak_ptr<int>(alive_);
  ref->device = v->producer && v->producer->tensor.defined() ? v->producer->tensor.device() : Device::cpu();
  t.impl()->symbolic = std::move(ref);
  return t;
}

Value* Graph::value_of(const Tensor& t) const {
  GLIA_CHECK(t.is_symbolic(), ValueError, "expected a symbolic tensor of a graph, got a tensor with data");
  GLIA_CHECK(t.impl()->symbolic->graph == this, ValueError,
             "a symbolic tensor of another graph was used (each graph is separate)");
  return static_cast<Value*>(t.impl()->symbolic->value);
}

Value* Graph::input_value(const Tensor& t) {
  auto it = captures_.find(t.impl());
  if (it != captures_.end()) return it->second;
  bool state = t.impl()->id < birth_mark_;
  Node* n = add_node(state ? NodeKind::Capture : NodeKind::Constant, nullptr, {}, {}, {{t.shape(), t.dtype()}},
                     state ? "capture" : "constant");
  n->tensor = t;
  captures_.emplace(t.impl(), n->outputs[0]);
  return n->outputs[0];
}

Tensor Graph::placeholder(DType dtype, const Shape& shape, const std::string& name, bool requires_grad) {
  for (int64_t d : shape)
    GLIA_CHECK(d >= -1, ShapeError, "placeholder '", name, "': dimensions must be >= 0, or -1 for unknown; got ",
               to_string(shape));
  Node* n = add_node(NodeKind::Placeholder, nullptr, {}, {}, {{shape, dtype}},
                     name.empty() ? "placeholder_" + std::to_string(placeholders().size()) : name);
  Tensor t = tensor_of(n->outputs[0]);
  if (requires_grad && is_floating(dtype)) t.requires_grad_(true);
  return t;
}

Tensor Graph::variable(const Tensor& initial, const std::string& name) {
  GLIA_CHECK(initial.defined() && !initial.is_symbolic(), ValueError, "variable '", name,
             "': the initial value must be a tensor with data");
  Node* n = add_node(NodeKind::Variable, nullptr, {}, {}, {{initial.shape(), initial.dtype()}},
                     name.empty() ? "variable_" + std::to_string(variables().size()) : name);
  {
    graph_hook::Suspend eager;
    n->tensor = initial.detach().clone();
  }
  Tensor t = tensor_of(n->outputs[0]);
  if (is_floating(t.dtype())) t.requires_grad_(true);
  return t;
}

Tensor Graph::constant(const Tensor& value, const std::string& name) {
  GLIA_CHECK(value.defined() && !value.is_symbolic(), ValueError, "constant '", name,
             "': the value must be a tensor with data");
  Node* n =
      add_node(NodeKind::Constant, nullptr, {}, {}, {{value.shape(), value.dtype()}}, name.empty() ? "constant" : name);
  n->tensor = value;
  return tensor_of(n->outputs[0]);
}

std::vector<Tensor> Graph::update_ops() {
  std::vector<Tensor> out;
  for (auto& n : nodes_) {
    if (n->kind != NodeKind::Op || !n->inplace || n->inputs.empty()) continue;
    // Real tensors written in place (captures, constants made after the graph) and variables.
    if (n->inputs[0]->producer->kind != NodeKind::Placeholder) out.push_back(tensor_of(n->outputs[0]));
  }
  return out;
}

std::vector<Node*> Graph::placeholders() const {
  std::vector<Node*> out;
  for (auto& n : nodes_)
    if (n->kind == NodeKind::Placeholder) out.push_back(n.get());
  return out;
}

std::vector<Node*> Graph::variables() const {
  std::vector<Node*> out;
  for (auto& n : nodes_)
    if (n->kind == NodeKind::Variable) out.push_back(n.get());
  return out;
}

std::map<std::string, int> Graph::op_counts() const {
  std::map<std::string, int> c;
  for (auto& n : nodes_)
    if (n->kind == NodeKind::Op) ++c[n->op->name()];
  return c;
}

void Graph::erase_if(const std::function<bool(const Node&)>& dead) {
  std::unordered_set<const Value*> gone;
  std::vector<std::unique_ptr<Node>> keep;
  for (auto& n : nodes_) {
    if (dead(*n)) {
      for (Value* v : n->outputs) gone.insert(v);
      for (auto it = captures_.begin(); it != captures_.end();)
        it = it->second->producer == n.get() ? captures_.erase(it) : std::next(it);
    } else {
      keep.push_back(std::move(n));
    }
  }
  nodes_ = std::move(keep);
  for (auto& n : nodes_)
    for (Value* v : n->inputs)
      GLIA_CHECK(!gone.count(v), InternalError, "graph: erased a node whose output is still used by ",
                 n->op ? n->op->name() : n->name);
  values_.erase(std::remove_if(values_.begin(), values_.end(), [&](auto& v) { return gone.count(v.get()) > 0; }),
                values_.end());
  ++version_;
}

void Graph::add_run_hooks(std::function<void()> before, std::function<void()> after) {
  if (before) before_run_.push_back(std::move(before));
  if (after) after_run_.push_back(std::move(after));
}

void Graph::reorder(const std::vector<Node*>& order) {
  GLIA_CHECK(order.size() == nodes_.size(), InternalError, "graph: reorder with ", order.size(), " nodes for ",
             nodes_.size());
  std::unordered_map<const Node*, std::unique_ptr<Node>> owned;
  for (auto& n : nodes_) owned.emplace(n.get(), std::move(n));
  nodes_.clear();
  for (Node* n : order) {
    auto it = owned.find(n);
    GLIA_CHECK(it != owned.end() && it->second, InternalError, "graph: reorder lists a node twice or a stranger");
    nodes_.push_back(std::move(it->second));
  }
  ++version_;
}

void Graph::replace_uses(Value* from, Value* to) {
  for (auto& n : nodes_)
    for (Value*& v : n->inputs)
      if (v == from) v = to;
  for (Value*& v : outputs_)
    if (v == from) v = to;
  ++version_;
}

std::string Graph::to_dot(const std::vector<Tensor>& fetches) const {
  // With fetches, draw only what computes them.
  std::unordered_set<const Node*> wanted;
  if (!fetches.empty()) {
    std::vector<const Node*> stack;
    for (const Tensor& f : fetches) stack.push_back(value_of(f)->producer);
    while (!stack.empty()) {
      const Node* n = stack.back();
      stack.pop_back();
      if (!wanted.insert(n).second) continue;
      for (Value* v : n->inputs) stack.push_back(v->producer);
    }
  }
  auto shape_str = [](const Value* v) {
    std::ostringstream s;
    for (size_t i = 0; i < v->shape.size(); ++i) {
      if (i) s << "x";
      if (v->shape[i] < 0)
        s << "?";
      else
        s << v->shape[i];
    }
    return v->shape.empty() ? std::string("scalar") : s.str();
  };
  // Constants that a node writes (optimizer slots made while tracing) are state, not constants.
  std::unordered_set<const Node*> written;
  for (auto& n : nodes_) {
    if (n->kind != NodeKind::Op) continue;
    for (size_t i = 0; i < n->inputs.size(); ++i)
      if ((n->inplace && i == 0) || n->op->writes_input(i, n->inputs.size(), n->attrs))
        written.insert(n->inputs[i]->producer);
  }
  std::ostringstream os;
  os << "digraph glia {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  for (auto& n : nodes_) {
    if (!wanted.empty() && !wanted.count(n.get())) continue;
    std::string label, style;
    switch (n->kind) {
      case NodeKind::Op:
        label = n->op->name();
        style = n->inplace ? "shape=box, style=\"rounded,filled\", fillcolor=\"#f4cccc\"" : "shape=box, style=rounded";
        break;
      case NodeKind::Placeholder:
        label = "placeholder " + n->name;
        style = "shape=ellipse, style=filled, fillcolor=\"#cfe2f3\"";
        break;
      case NodeKind::Variable:
        label = "variable " + n->name;
        style = "shape=ellipse, style=filled, fillcolor=\"#d9ead3\"";
        break;
      case NodeKind::Capture:
        label = "state";
        style = "shape=ellipse, style=filled, fillcolor=\"#fff2cc\"";
        break;
      case NodeKind::Constant:
        label = written.count(n.get()) ? "state" : "const";
        style = written.count(n.get()) ? "shape=ellipse, style=filled, fillcolor=\"#fff2cc\"" : "shape=plaintext";
        break;
    }
    if (!n->outputs.empty()) label += "\\n" + shape_str(n->outputs[0]);
    os << "  n" << n->id << " [label=\"" << label << "\", " << style << "];\n";
  }
  for (auto& n : nodes_) {
    if (!wanted.empty() && !wanted.count(n.get())) continue;
    for (Value* v : n->inputs) os << "  n" << v->producer->id << " -> n" << n->id << ";\n";
  }
  os << "}\n";
  return os.str();
}

// --- scopes

GraphScope::GraphScope(Graph& g) : prev_(t_current) {
  t_current = &g;
  graph_hook::set_current(&g);
}

GraphScope::~GraphScope() {
  t_current = prev_;
  graph_hook::set_current(prev_);
}

Graph* current_graph() { return t_current; }

namespace {
thread_local const std::string* t_name_scope = nullptr;
}  // namespace

NameScope::NameScope(const std::string& name) : prev_(t_name_scope) { t_name_scope = &name; }
NameScope::~NameScope() { t_name_scope = prev_; }

bool is_symbolic(const Tensor& t) { return t.is_symbolic(); }

// --- the recorder

namespace {

TensorList record_hook(const OpDef& op, std::span<const Tensor> in, const Attrs& attrs, bool inplace) {
  // The graph: the one being built on this thread, else the one the symbolic inputs belong to.
  Graph* g = static_cast<Graph*>(graph_hook::current());
  for (const Tensor& t : in) {
    if (!t.is_symbolic()) continue;
    Graph* tg = graph_of(t);
    if (!g) g = tg;
    GLIA_CHECK(tg == g, ValueError, op.name(), ": inputs come from different graphs");
  }
  GLIA_CHECK(g != nullptr, InternalError, op.name(), ": recorded without a graph");
  std::vector<Value*> inputs;
  for (const Tensor& t : in) inputs.push_back(t.is_symbolic() ? g->value_of(t) : g->input_value(t));
  std::vector<TensorSpec> specs;
  if (inplace) {
    // The op writes into input 0; its result (for fetching) is input 0 after the write.
    specs = infer_op(op, in, attrs);
    GLIA_CHECK(specs.size() == 1, InternalError, op.name(), ": in-place op with ", specs.size(), " outputs");
    specs[0] = {in[0].shape(), in[0].dtype()};
  } else {
    specs = infer_op(op, in, attrs);
  }
  Node* n = g->add_node(NodeKind::Op, &op, attrs, std::move(inputs), specs, t_name_scope ? *t_name_scope : "");
  n->inplace = inplace;
  TensorList out;
  for (Value* v : n->outputs) out.push_back(g->tensor_of(v));
  return out;
}

}  // namespace

// --- symbolic gradients (tf.gradients)

std::vector<Tensor> gradients(const std::vector<Tensor>& ys, const std::vector<Tensor>& xs) {
  for (size_t i = 0; i < ys.size(); ++i)
    GLIA_CHECK(ys[i].is_symbolic(), ValueError, "gradients: output ", i, " is not a symbolic tensor of a graph");
  Graph* g = graph_of(ys[0]);
  GraphScope scope(*g);
  enable_grad eg;
  std::vector<Tensor> gs = grad(ys, xs, {.allow_unused = true});
  return gs;
}

}  // namespace glia::graph
