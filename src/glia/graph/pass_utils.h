// What the optimization passes need to know about a graph (internal to the graph layer):
// node positions, the consumers of each value, and where buffers are written in place.
#pragma once

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "glia/graph/graph.h"
#include "glia/graph/infer.h"

namespace glia::graph::detail {

/// A snapshot of a graph's structure; rebuild it after changing the graph.
class GraphInfo {
 public:
  explicit GraphInfo(const Graph& g);

  /// Position of a node in execution order.
  int pos(const Node* n) const { return pos_.at(n); }
  /// The nodes that read v (a node that reads it twice is listed twice).
  const std::vector<Node*>& consumers(const Value* v) const;
  /// Whether v is one of the graph's outputs (fetched).
  bool is_output(const Value* v) const { return outputs_.count(v) > 0; }

  /// The buffer v lives in: views and in-place results share their input's buffer; captures
  /// and constants are told apart by their storage (two captures of one storage are one buffer).
  const void* buffer(const Value* v) const;
  /// Whether any node writes v's buffer in place (an in-place op's input 0, any input of a
  /// mutating op).
  bool written(const Value* v) const { return writes_.count(buffer(v)) > 0; }
  /// Whether a node at a position in (lo, hi) writes v's buffer.
  bool written_between(const Value* v, int lo, int hi) const;

 private:
  std::unordered_map<const Node*, int> pos_;
  std::unordered_map<const Value*, std::vector<Node*>> consumers_;
  std::unordered_set<const Value*> outputs_;
  std::unordered_map<const void*, std::vector<int>> writes_;  // buffer -> sorted positions
};

/// A canonical text of attributes (sorted by name, values spelled exactly), for comparing calls.
std::string attrs_key(const Attrs& a);

/// The tensor of a constant node that no node writes, else an undefined tensor.
Tensor unwritten_constant(const GraphInfo& info, const Value* v);

/// Whether every element of t equals x (t small enough to read; false otherwise).
bool all_equal(const Tensor& t, double x);

/// Whether the shape has no unknown dims.
bool known(const Shape& s);

/// Replaces uses of values by others in one walk over the graph (a chain a -> b -> c resolves to c).
void replace_all(Graph& g, const std::unordered_map<Value*, Value*>& with);

}  // namespace glia::graph::detail
