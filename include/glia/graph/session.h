// Session: runs an explicit Graph (TF1 style), holding the values of its variables.
//
//   graph::Graph g;
//   Tensor x = g.placeholder(float32, {-1, 784}, "x");
//   Tensor w = g.variable(randn({784, 10}) * 0.01, "w");
//   Tensor loss = mean(square(matmul(x, w)));
//   Tensor step = graph::assign_sub(w, graph::gradients(loss, w) * 0.1);
//   graph::Session s(g);
//   auto out = s.run({loss, step}, {{x, batch}});
#pragma once

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "glia/graph/executor.h"
#include "glia/graph/graph.h"

namespace glia::graph {

class Session {
 public:
  /// A session over g; every variable starts at its initial value.
  explicit Session(Graph& g);
  ~Session();

  /// Computes `fetches` for the given placeholder values, running only the nodes they need
  /// (and the nodes of `targets`, for their side effects). Plans are cached per feed shapes.
  std::vector<Tensor> run(const std::vector<Tensor>& fetches, const std::vector<std::pair<Tensor, Tensor>>& feeds = {},
                          const std::vector<Tensor>& targets = {});
  Tensor run(const Tensor& fetch, const std::vector<std::pair<Tensor, Tensor>>& feeds = {});

  /// The current value of a variable (a copy).
  Tensor value(const Tensor& variable) const;
  /// Sets a variable's value (shape and dtype must match).
  void assign(const Tensor& variable, const Tensor& value);
  /// Resets every variable to its initial value.
  void initialize();
  /// Plans made so far (one per distinct feed signature).
  size_t num_plans() const { return plans_.size(); }

 private:
  const Node* variable_node(const Tensor& v) const;
  Graph& graph_;
  std::map<const Node*, Tensor> vars_;
  std::map<std::string, std::unique_ptr<Plan>> plans_;
  std::shared_ptr<Arena> arena_;  // shared by the plans: one runs at a time
};

/// variable <- value, variable <- variable + value, variable <- variable - value, as graph nodes
/// whose result is the variable after the update (fetch or target it to run the update).
Tensor assign(const Tensor& variable, const Tensor& value);
Tensor assign_add(const Tensor& variable, const Tensor& value);
Tensor assign_sub(const Tensor& variable, const Tensor& value);

}  // namespace glia::graph
