// The tape: nodes of the backward graph and the tensors they save.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "glia/core/tensor.h"
#include "glia/ops/op.h"

namespace glia {

class Node;

/// Where a gradient goes: input `input_nr` of node `fn`.
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

/// Shape, dtype and device of a tensor, kept to build zero gradients and check shapes.
struct TensorMetaInfo {
  Shape shape;
  DType dtype = DType::f32;
  Device device;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  Node();
  virtual ~Node() = default;
  /// Gradients w.r.t. this node's outputs in, gradients w.r.t. its inputs out
  /// (one per next edge; undefined where none).
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grads_out) = 0;
  virtual std::string name() const = 0;
  /// Drops saved tensors after a backward pass without retain_graph.
  virtual void release() {}

  std::vector<Edge> next_edges;  // one per input of the forward op
  /// Non-leaf outputs whose gradient is kept (Tensor::retain_grad), by output index.
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>> retained;
  std::vector<TensorMetaInfo> outputs;  // one per forward output
  uint64_t sequence_nr;                 // creation order; later nodes run first
};

/// A tensor saved for backward. Outputs are kept without their grad_fn (no
/// reference cycle) and get it back when unpacked for a double backward.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t, bool is_output);
  /// Throws ValueError if the tensor was modified in place after it was saved,
  /// or if the graph was already freed.
  Tensor unpack(const std::shared_ptr<Node>& owner, const char* op) const;
  void reset() {
    data_ = Tensor();
    released_ = true;
  }
  bool defined() const { return data_.defined() || released_; }

 private:
  Tensor data_;
  uint32_t version_ = 0;
  uint32_t output_nr_ = 0;
  bool is_output_ = false;
  bool requires_grad_ = false;
  bool released_ = false;
};

/// The node recorded by dispatch for one op call.
class OpNode final : public Node {
 public:
  OpNode(const OpDef& op, Attrs attrs) : op_(op), attrs_(std::move(attrs)) {}
  std::vector<Tensor> apply(std::vector<Tensor>&& grads_out) override;
  std::string name() const override { return op_.name(); }
  void release() override;

  const OpDef& op() const { return op_; }
  const Attrs& attrs() const { return attrs_; }
  std::vector<SavedTensor> saved_inputs;   // by input index (empty entries where not saved)
  std::vector<SavedTensor> saved_outputs;  // by output index
  std::vector<TensorMetaInfo> input_meta;
  /// Inputs whose shapes are known only at run time (symbolic, with -1 dims), kept without
  /// their data or autograd state, so that gradient rules can take their shapes when a graph runs.
  std::vector<Tensor> shape_refs;
  /// Likewise for outputs, so that a missing output gradient becomes zeros of the runtime shape.
  std::vector<Tensor> output_shape_refs;

 private:
  friend class GradContext;
  const OpDef& op_;
  Attrs attrs_;
};

/// The sink for a leaf tensor: adds the incoming gradient to its .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(Tensor variable);
  std::vector<Tensor> apply(std::vector<Tensor>&& grads_out) override;
  std::string name() const override { return "AccumulateGrad"; }
  const Tensor& variable() const { return variable_; }

 private:
  Tensor variable_;
};

namespace autograd {
/// Deletes a node and then, iteratively, every node only it kept alive: dropping a graph of
/// any depth never recurses (a chain of 100k ops would overflow the stack otherwise).
void delete_node(Node* node);
/// Makes a node owned by a shared_ptr that deletes through delete_node.
template <class T, class... A>
std::shared_ptr<T> make_node(A&&... args) {
  return std::shared_ptr<T>(new T(std::forward<A>(args)...), [](T* n) { delete_node(n); });
}
/// The edge a gradient for t should flow into (its grad_fn, or its accumulator for a leaf).
Edge gradient_edge(const Tensor& t);
/// Makes the outputs of an op call part of the graph under `node` (called by dispatch).
void record(const OpDef& op, std::span<const Tensor> inputs, std::span<Tensor> outputs, Attrs&& attrs);
/// True if grad mode is on and any of the tensors requires grad.
bool any_requires_grad(std::span<const Tensor> ts);
}  // namespace autograd

}  // namespace glia
