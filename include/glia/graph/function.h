// glia::function: traces eager code into a graph once per input signature and runs the
// optimized, planned graph on later calls (TensorFlow's tf.function).
//
//   auto step = glia::function([&](const std::vector<Tensor>& in) {
//     Tensor loss = mean(square(model(in[0]) - in[1]));
//     auto g = grad({loss}, params);
//     opt.apply(g, params);               // the update becomes part of the graph
//     return std::vector<Tensor>{loss};
//   });
//   Tensor loss = step({x, y})[0];
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "glia/graph/executor.h"
#include "glia/graph/graph.h"
#include "glia/graph/passes.h"

namespace glia {

struct FunctionOptions {
  /// Shown in messages (retracing warnings) and in DOT output.
  std::string name = "function";
  /// Run the optimization passes on each traced graph.
  bool optimize = true;
  graph::PassOptions passes = {};
  /// Return fresh tensors (true) or tensors that alias the plan's memory and stay valid until the
  /// next call (false: no allocation at all per call).
  bool copy_outputs = true;
  /// After this many traces, each new trace warns on stderr (varying shapes cause retracing).
  int warn_after_traces = 5;
  /// On a GPU, replay each signature's run as one CUDA Graph from its third call on (see
  /// graph::PlanOptions::cuda_graph); GLIA_CUDA_GRAPHS=0 in the environment turns it off.
  bool cuda_graph = true;
};

/// A traced, compiled function of tensors.
class Function {
 public:
  using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
  explicit Function(Fn f, FunctionOptions o = {});
  ~Function();
  Function(Function&&) noexcept;
  Function& operator=(Function&&) noexcept;

  /// Runs the graph for the inputs' signature (shapes, dtypes and `key`), tracing it first if new.
  std::vector<Tensor> operator()(const std::vector<Tensor>& inputs, const std::string& key = "");

  /// Number of traces so far (one per signature seen).
  int64_t traces() const;
  /// The optimized graph for a signature (traced now if needed).
  graph::Graph& graph_for(const std::vector<Tensor>& inputs, const std::string& key = "");
  /// The graph as traced, before the passes: its DOT text and its op counts.
  const std::string& dot_before_passes(const std::vector<Tensor>& inputs, const std::string& key = "");
  const std::map<std::string, int>& op_counts_before_passes(const std::vector<Tensor>& inputs,
                                                            const std::string& key = "");
  /// What the passes did on the graph of this signature.
  const graph::PassStats& pass_stats(const std::vector<Tensor>& inputs, const std::string& key = "");
  /// The plan of this signature (for its memory statistics).
  const graph::Plan& plan_for(const std::vector<Tensor>& inputs, const std::string& key = "");

 private:
  struct Traced;
  Traced& get(const std::vector<Tensor>& inputs, const std::string& key);
  Fn fn_;
  FunctionOptions o_;
  std::map<std::string, std::unique_ptr<Traced>> cache_;
  int64_t traces_ = 0;
  std::shared_ptr<graph::Arena> arena_;  // one for the plans of all signatures: they never run at once
};

/// Wraps f as a traced, compiled Function.
inline Function function(Function::Fn f, FunctionOptions o = {}) { return Function(std::move(f), std::move(o)); }

}  // namespace glia
