#include "glia/graph/function.h"

#include <iostream>
#include <sstream>

#include "glia/autograd/autograd.h"

namespace glia {

struct Function::Traced {
  std::string raw_dot;                       // the graph as traced, before the passes
  std::map<std::string, int> raw_op_counts;  // likewise
  std::unique_ptr<graph::Graph> graph;
  graph::PassStats stats;
  std::unique_ptr<graph::Plan> plan;
  std::vector<graph::Value*> inputs;
};

Function::Function(Fn f, FunctionOptions o)
    : fn_(std::move(f)), o_(std::move(o)), arena_(std::make_shared<graph::Arena>()) {}
Function::~Function() = default;
Function::Function(Function&&) noexcept = default;
Function& Function::operator=(Function&&) noexcept = default;

namespace {

std::string signature(const std::vector<Tensor>& inputs, const std::string& key) {
  std::ostringstream os;
  for (const Tensor& t : inputs) {
    GLIA_CHECK(t.defined() && !t.is_symbolic(), ValueError, "function: inputs must be tensors with data");
    os << name(t.dtype()) << to_string(t.shape()) << (t.device().is_cpu() ? "" : t.device().str()) << ";";
  }
  os << "|" << key;
  return os.str();
}

/// Traces fn on placeholders shaped like `inputs` into a new graph.
std::unique_ptr<graph::Graph> trace(const Function::Fn& fn, const std::vector<Tensor>& inputs,
                                    std::vector<graph::Value*>& input_values) {
  auto g = std::make_unique<graph::Graph>();
  std::vector<Tensor> ph;
  for (size_t i = 0; i < inputs.size(); ++i)
    ph.push_back(g->placeholder(inputs[i].dtype(), inputs[i].shape(), "input_" + std::to_string(i), false));
  std::vector<Tensor> outs;
  {
    graph::GraphScope scope(*g);
    outs = fn(ph);
  }
  input_values.clear();
  for (const Tensor& p : ph) input_values.push_back(g->value_of(p));
  std::vector<graph::Value*> out_values;
  for (const Tensor& t : outs) {
    GLIA_CHECK(t.defined(), ValueError, "function: the traced function returned an undefined tensor");
    out_values.push_back(t.is_symbolic() ? g->value_of(t) : g->input_value(t));
  }
  g->set_outputs(out_values);
  return g;
}
}  // namespace

Function::Traced& Function::get(const std::vector<Tensor>& inputs, const std::string& key) {
  std::string sig = signature(inputs, key);
  auto it = cache_.find(sig);
  if (it != cache_.end()) return *it->second;
  auto t = std::make_unique<Traced>();
  ++traces_;
  if (traces_ > o_.warn_after_traces)
    std::cerr << "glia: function '" << o_.name << "' was traced " << traces_
              << " times; each new input signature (shapes, dtypes) traces and compiles it again. Last signature: "
              << sig << " (keep shapes fixed, e.g. with drop_remainder, to avoid this)\n";
  t->graph = trace(fn_, inputs, t->inputs);
  t->raw_dot = t->graph->to_dot();
  t->raw_op_counts = t->graph->op_counts();
  if (o_.optimize) t->stats = graph::optimize(*t->graph, o_.passes);
  std::vector<Shape> shapes;
  std::optional<Device> device;
  for (const Tensor& x : inputs) {
    shapes.push_back(x.shape());
    if (!device && !x.device().is_cpu()) device = x.device();
  }
  t->plan = std::make_unique<graph::Plan>(
      *t->graph, t->inputs, shapes, t->graph->outputs(), std::vector<graph::Value*>{},
      graph::PlanOptions{.run_all_side_effects = true, .arena = arena_, .device = device, .cuda_graph = o_.cuda_graph});
  return *cache_.emplace(sig, std::move(t)).first->second;
}

std::vector<Tensor> Function::operator()(const std::vector<Tensor>& inputs, const std::string& key) {
  Traced& t = get(inputs, key);
  return t.plan->run(inputs, {}, o_.copy_outputs);
}

int64_t Function::traces() const { return traces_; }
graph::Graph& Function::graph_for(const std::vector<Tensor>& inputs, const std::string& key) {
  return *get(inputs, key).graph;
}
const std::string& Function::dot_before_passes(const std::vector<Tensor>& inputs, const std::string& key) {
  return get(inputs, key).raw_dot;
}
const std::map<std::string, int>& Function::op_counts_before_passes(const std::vector<Tensor>& inputs,
                                                                    const std::string& key) {
  return get(inputs, key).raw_op_counts;
}
const graph::PassStats& Function::pass_stats(const std::vector<Tensor>& inputs, const std::string& key) {
  return get(inputs, key).stats;
}
const graph::Plan& Function::plan_for(const std::vector<Tensor>& inputs, const std::string& key) {
  return *get(inputs, key).plan;
}

}  // namespace glia
