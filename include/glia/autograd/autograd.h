// Eager autograd: grad mode, the backward engine, glia::grad.
#pragma once

#include <vector>

#include "glia/core/tensor.h"

namespace glia {

/// Whether ops record the tape on this thread.
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool on);
};

/// Turns recording off for a scope, like torch.no_grad(): `{ glia::no_grad guard; ... }`.
class no_grad {
 public:
  no_grad() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~no_grad() { GradMode::set_enabled(prev_); }
  no_grad(const no_grad&) = delete;
  no_grad& operator=(const no_grad&) = delete;

 private:
  bool prev_;
};

/// Turns recording on for a scope (inside a no_grad one).
class enable_grad {
 public:
  enable_grad() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(true); }
  ~enable_grad() { GradMode::set_enabled(prev_); }
  enable_grad(const enable_grad&) = delete;
  enable_grad& operator=(const enable_grad&) = delete;

 private:
  bool prev_;
};

struct BackwardOptions {
  /// Keep the saved tensors so that backward can run through the graph again.
  bool retain_graph = false;
  /// Record the backward pass itself, for gradients of gradients. Implies retain_graph.
  bool create_graph = false;
};

/// Accumulates d(sum of outputs[i] * grad_outputs[i]) into the .grad of every leaf.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {}, BackwardOptions o = {});

struct GradOptions {
  /// Gradients of the outputs; empty means ones for one-element outputs.
  std::vector<Tensor> grad_outputs = {};
  bool retain_graph = false;
  /// Make the returned gradients differentiable (higher-order gradients).
  bool create_graph = false;
  /// Return an undefined tensor for an input the outputs do not depend on, instead of throwing.
  bool allow_unused = false;
};

/// The gradients of outputs with respect to inputs, without touching any .grad.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs, GradOptions o = {});
inline Tensor grad(const Tensor& output, const Tensor& input, GradOptions o = {}) {
  return grad(std::vector<Tensor>{output}, std::vector<Tensor>{input}, std::move(o))[0];
}

}  // namespace glia
