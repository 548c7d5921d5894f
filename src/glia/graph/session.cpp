#include "glia/graph/session.h"

#include <sstream>

#include "glia/autograd/autograd.h"
#include "glia/ops/functions.h"

namespace glia::graph {

Session::Session(Graph& g) : graph_(g), arena_(std::make_shared<Arena>()) { initialize(); }
Session::~Session() = default;

void Session::initialize() {
  graph_hook::Suspend eager;
  no_grad ng;
  vars_.clear();
  for (Node* n : graph_.variables()) vars_[n] = n->tensor.clone();
}

const Node* Session::variable_node(const Tensor& v) const {
  Value* val = graph_.value_of(v);
  GLIA_CHECK(val->producer->kind == NodeKind::Variable, ValueError, "session: expected a variable, got the output of ",
             val->producer->op ? val->producer->op->name() : val->producer->name);
  return val->producer;
}

Tensor Session::value(const Tensor& variable) const {
  graph_hook::Suspend eager;
  const Node* n = variable_node(variable);
  auto it = vars_.find(n);
  GLIA_CHECK(it != vars_.end(), ValueError, "variable '", n->name, "' was added after this session started");
  return it->second.clone();
}

void Session::assign(const Tensor& variable, const Tensor& value) {
  graph_hook::Suspend eager;
  no_grad ng;
  const Node* n = variable_node(variable);
  GLIA_CHECK(value.shape() == n->tensor.shape(), ShapeError, "assign: variable '", n->name, "' has shape ",
             to_string(n->tensor.shape()), ", got a value of shape ", to_string(value.shape()));
  vars_[n] = value.to(n->tensor.dtype()).contiguous().clone();
}

std::vector<Tensor> Session::run(const std::vector<Tensor>& fetches,
                                 const std::vector<std::pair<Tensor, Tensor>>& feeds,
                                 const std::vector<Tensor>& targets) {
  GLIA_CHECK(!fetches.empty() || !targets.empty(), ValueError, "session.run: nothing to fetch");
  // Variables added after the session started get their initial values now.
  {
    graph_hook::Suspend eager;
    for (Node* n : graph_.variables())
      if (!vars_.count(n)) vars_[n] = n->tensor.clone();
  }
  std::vector<Value*> fetch_values, target_values, feed_values;
  std::vector<Tensor> feed_tensors;
  std::vector<Shape> feed_shapes;
  std::ostringstream key;
  key << graph_.version() << "|";
  for (const Tensor& f : fetches) {
    GLIA_CHECK(f.defined() && f.is_symbolic(), ValueError,
               "session.run: fetches must be symbolic tensors of the graph");
    fetch_values.push_back(graph_.value_of(f));
    key << fetch_values.back()->id << ",";
  }
  key << "|";
  for (const Tensor& t : targets) {
    target_values.push_back(graph_.value_of(t));
    key << target_values.back()->id << ",";
  }
  key << "|";
  for (auto& [ph, value] : feeds) {
    GLIA_CHECK(ph.defined() && ph.is_symbolic(), ValueError, "session.run: feed keys must be placeholders");
    Value* v = graph_.value_of(ph);
    GLIA_CHECK(v->producer->kind == NodeKind::Placeholder, ValueError, "session.run: feed key '",
               v->producer->op ? v->producer->op->name() : v->producer->name, "' is not a placeholder");
    GLIA_CHECK(value.defined() && !value.is_symbolic(), ValueError, "placeholder '", v->producer->name,
               "': the fed value must be a tensor with data");
    feed_values.push_back(v);
    feed_tensors.push_back(value);
    feed_shapes.push_back(value.shape());
    key << v->id << ":" << to_string(value.shape()) << ",";
  }
  auto& plan = plans_[key.str()];
  if (!plan)
    plan = std::make_unique<Plan>(graph_, feed_values, feed_shapes, fetch_values, target_values,
                                  PlanOptions{.arena = arena_});
  return plan->run(feed_tensors, vars_, true);
}

Tensor Session::run(const Tensor& fetch, const std::vector<std::pair<Tensor, Tensor>>& feeds) {
  return run(std::vector<Tensor>{fetch}, feeds)[0];
}

namespace {
Tensor assign_op(const char* op, const Tensor& variable, const Tensor& value) {
  GLIA_CHECK(variable.is_symbolic(), ValueError, "assign: expected a variable of a graph");
  Tensor ins[2] = {variable, value};
  return graph_hook::record(OpRegistry::instance().get(op), ins, Attrs{}, true)[0];
}
}  // namespace

Tensor assign(const Tensor& variable, const Tensor& value) { return assign_op("copy", variable, value); }
Tensor assign_add(const Tensor& variable, const Tensor& value) { return assign_op("add", variable, value); }
Tensor assign_sub(const Tensor& variable, const Tensor& value) { return assign_op("sub", variable, value); }

}  // namespace glia::graph
