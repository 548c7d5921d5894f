// The graph IR: a dataflow graph of op calls over values with static shapes.
//
// Graphs are built two ways over the same IR: explicitly (TF1-style: a Graph,
// placeholders, variables, ops on symbolic tensors, a Session to run them), or
// by tracing eager code (glia::function). While a graph is being built, every
// op call goes through dispatch's graph hook instead of running: it adds a node
// and returns symbolic tensors. Gradients taken while building (glia::grad,
// glia::gradients) run the same gradient rules, so they become nodes too.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "glia/core/tensor.h"
#include "glia/ops/op.h"

namespace glia::graph {

class Graph;
struct Node;

/// A value: one output of a node. Shape dims are -1 where unknown (placeholder batch).
struct Value {
  int64_t id = 0;
  Shape shape;
  DType dtype = DType::f32;
  Node* producer = nullptr;
  int output_index = 0;
};

enum class NodeKind : uint8_t {
  Op,           // a call of `op`
  Placeholder,  // fed at run time
  Variable,     // state owned by a Session, initialized from `initial`
  Capture,      // a tensor that lives outside the graph, read by reference at run time
  Constant,     // a tensor made while building (folded freely)
};

struct Node {
  int64_t id = 0;
  NodeKind kind = NodeKind::Op;
  const OpDef* op = nullptr;
  Attrs attrs;
  std::vector<Value*> inputs;
  std::vector<Value*> outputs;
  std::string name;
  /// Recorded from an in-place call (x.add_(y), copy_): the op's result is written into input 0,
  /// which is also this node's output.
  bool inplace = false;
  /// Captures, constants and variable initial values.
  Tensor tensor;
  /// Writes memory it does not own: in-place calls, and ops that update their inputs (optimizer
  /// steps). Such nodes run in program order and are never removed, merged or folded.
  bool has_side_effects() const { return inplace || (op && op->mutates_inputs()); }
};

/// A dataflow graph. Nodes are kept in creation order, which is a valid execution order
/// (the order the program issued them, in-place updates included).
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // --- the TF1-style builder
  /// An input fed at run time; -1 marks unknown dims (e.g. the batch). Floating placeholders
  /// track gradients unless told otherwise, so that gradients() can differentiate w.r.t. them.
  Tensor placeholder(DType dtype, const Shape& shape, const std::string& name = "", bool requires_grad = true);
  /// A variable initialized to `initial` (copied) in each Session that runs this graph.
  Tensor variable(const Tensor& initial, const std::string& name = "");
  /// A constant node holding `value`.
  Tensor constant(const Tensor& value, const std::string& name = "");

  /// The in-place updates of state recorded in this graph (batch-norm moving statistics, ...),
  /// to pass as Session::run targets so that they run (TF1's UPDATE_OPS collection).
  std::vector<Tensor> update_ops();

  // --- structure
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  std::vector<Node*> placeholders() const;
  std::vector<Node*> variables() const;
  /// The node that produces a symbolic tensor of this graph (ValueError otherwise).
  Value* value_of(const Tensor& t) const;
  /// A symbolic tensor for a value.
  Tensor tensor_of(Value* v);
  /// Graphviz DOT text of the graph (or of the part that computes `fetches`).
  std::string to_dot(const std::vector<Tensor>& fetches = {}) const;
  /// Counts nodes per op name (for tests and summaries).
  std::map<std::string, int> op_counts() const;

  // --- used by the dispatch hook, passes and the executor
  Node* add_node(NodeKind kind, const OpDef* op, Attrs attrs, std::vector<Value*> inputs,
                 const std::vector<TensorSpec>& outputs, std::string name = "");
  /// The value that reads a real tensor: a Capture for tensors made before building began
  /// (state such as weights: read by reference at each run), else a Constant.
  Value* input_value(const Tensor& t);
  /// Removes nodes for which `dead(node)` is true (their outputs must be unused).
  void erase_if(const std::function<bool(const Node&)>& dead);
  /// Functions to call before and after each run of the graph (graph_hook::on_run).
  void add_run_hooks(std::function<void()> before, std::function<void()> after);
  const std::vector<std::function<void()>>& before_run() const { return before_run_; }
  const std::vector<std::function<void()>>& after_run() const { return after_run_; }
  /// Puts the nodes in a new execution order (a permutation of nodes(); the caller keeps it valid).
  void reorder(const std::vector<Node*>& order);
  /// Replaces every use of `from` by `to`.
  void replace_uses(Value* from, Value* to);
  /// Marks values the graph must keep (fetches and their producers survive dead-code elimination).
  void set_outputs(std::vector<Value*> outs) { outputs_ = std::move(outs); }
  const std::vector<Value*>& outputs() const { return outputs_; }
  /// Bumped by every structural change, so executors know to re-plan.
  uint64_t version() const { return version_; }
  /// TensorImpl ids below this were born before building began (see input_value).
  uint64_t birth_mark() const { return birth_mark_; }
  void set_birth_mark(uint64_t m) { birth_mark_ = m; }

 private:
  friend class GraphScope;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Value>> values_;
  std::map<const TensorImpl*, Value*> captures_;
  std::vector<Value*> outputs_;
  std::vector<std::function<void()>> before_run_, after_run_;
  int64_t next_id_ = 0;
  uint64_t version_ = 0;
  uint64_t birth_mark_ = 0;
  std::shared_ptr<int> alive_;  // symbolic tensors check this before touching the graph
};

/// While alive, op calls on this thread add nodes to `g` (real tensor inputs become captures or
/// constants). Scopes nest; the innermost builds.
class GraphScope {
 public:
  explicit GraphScope(Graph& g);
  ~GraphScope();
  GraphScope(const GraphScope&) = delete;
  GraphScope& operator=(const GraphScope&) = delete;

 private:
  Graph* prev_;
};

/// The graph being built on this thread, or null.
Graph* current_graph();

/// While alive, op nodes recorded on this thread get `name` as their Node::name, so that a node
/// tells which layer made it (Layer's call sets it; the innermost scope wins). `name` must outlive
/// the scope.
class NameScope {
 public:
  explicit NameScope(const std::string& name);
  ~NameScope();
  NameScope(const NameScope&) = delete;
  NameScope& operator=(const NameScope&) = delete;

 private:
  const std::string* prev_;
};

/// True if t is a symbolic tensor (a value of a graph, without data).
bool is_symbolic(const Tensor& t);

/// Symbolic gradients: nodes computing d(sum of ys)/d(xs) added to the graph of ys
/// (TF1's tf.gradients). xs may be variables, placeholders or any symbolic tensors.
std::vector<Tensor> gradients(const std::vector<Tensor>& ys, const std::vector<Tensor>& xs);
inline Tensor gradients(const Tensor& y, const Tensor& x) { return gradients(std::vector<Tensor>{y}, {x})[0]; }

}  // namespace glia::graph
