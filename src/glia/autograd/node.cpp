// Tape recording, saved tensors and the two node kinds.
#include "glia/autograd/node.h"

#include <algorithm>

#include "glia/autograd/autograd.h"
#include "glia/ops/functions.h"

namespace glia {
namespace {

thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_next_sequence{0};

/// A new handle on the same data and layout, without autograd state.
Tensor alias_of(const Tensor& t) {
  auto impl = std::make_shared<TensorImpl>();
  const TensorImpl* s = t.impl();
  impl->storage = s->storage;
  impl->shape = s->shape;
  impl->strides = s->strides;
  impl->offset = s->offset;
  impl->numel = s->numel;
  impl->dtype = s->dtype;
  impl->wrapped_number = s->wrapped_number;
  impl->symbolic = s->symbolic;
  return Tensor(std::move(impl));
}

}  // namespace

bool GradMode::is_enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool on) { t_grad_enabled = on; }

Node::Node() : sequence_nr(g_next_sequence.fetch_add(1, std::memory_order_relaxed)) {}

// --- SavedTensor

SavedTensor::SavedTensor(const Tensor& t, bool is_output)
    : version_(t.version()), is_output_(is_output), requires_grad_(t.requires_grad()) {
  if (is_output) {
    data_ = alias_of(t);
    output_nr_ = t.output_nr();
  } else {
    data_ = t;
  }
}

Tensor SavedTensor::unpack(const std::shared_ptr<Node>& owner, const char* op) const {
  GLIA_CHECK(!released_, ValueError, op,
             ": trying to run backward through the graph a second time, but its saved tensors were freed; pass "
             "retain_graph=true to the first backward");
  if (!data_.defined()) return data_;
  GLIA_CHECK(data_.version() == version_, ValueError, op,
             ": a tensor needed to compute the gradient was modified by an in-place operation after it was saved "
             "(its version is ",
             data_.version(), ", expected ", version_, ")");
  if (!is_output_ || !requires_grad_ || !GradMode::is_enabled()) return data_;
  // Double backward: the output must again lead to the node that made it.
  Tensor t = alias_of(data_);
  auto meta = std::make_unique<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = owner;
  meta->output_nr = output_nr_;
  t.impl()->autograd = std::move(meta);
  return t;
}

// --- GradContext

Tensor GradContext::input(size_t i) const {
  if (!node_.op().saves_input(i))
    throw InternalError(detail::str("the gradient of ", node_.name(), " reads input ", i, ", which it does not save"));
  return node_.saved_inputs[i].unpack(node_.shared_from_this(), node_.name().c_str());
}

Tensor GradContext::output(size_t i) const {
  if (!node_.op().saves_output(i))
    throw InternalError(detail::str("the gradient of ", node_.name(), " reads output ", i, ", which it does not save"));
  return node_.saved_outputs[i].unpack(node_.shared_from_this(), node_.name().c_str());
}

const Shape& GradContext::input_shape(size_t i) const { return node_.input_meta[i].shape; }
DType GradContext::input_dtype(size_t i) const { return node_.input_meta[i].dtype; }
size_t GradContext::num_inputs() const { return node_.input_meta.size(); }
bool GradContext::needs_grad(size_t i) const { return node_.next_edges[i].valid(); }

namespace {
bool known(const Shape& s) {
  for (int64_t d : s)
    if (d < 0) return false;
  return true;
}
}  // namespace

Tensor GradContext::sum_to_input(const Tensor& g, size_t i) const {
  if (known(input_shape(i))) return sum_to(g, input_shape(i));
  return call(OpRegistry::instance().get("sum_to_like"), {g, node_.shape_refs[i]});
}

Tensor GradContext::expand_to_input(const Tensor& g, size_t i) const {
  if (known(input_shape(i))) return expand(g, input_shape(i));
  return call(OpRegistry::instance().get("expand_like"), {g, node_.shape_refs[i]});
}

Tensor GradContext::reshape_to_input(const Tensor& g, size_t i) const {
  // reshape infers one -1 from the element count, which is all a runtime batch needs.
  return reshape(g, input_shape(i));
}

Tensor GradContext::zeros_like_input(size_t i, DType dtype) const {
  if (known(input_shape(i))) return zeros(input_shape(i), {.dtype = dtype, .device = node_.input_meta[i].device});
  return full_like(node_.shape_refs[i].to(dtype), 0);
}
const Attrs& GradContext::attrs() const { return node_.attrs_; }

// --- OpNode

std::vector<Tensor> OpNode::apply(std::vector<Tensor>&& grads_out) {
  for (size_t j = 0; j < grads_out.size(); ++j) {
    if (grads_out[j].defined()) continue;
    if (j < output_shape_refs.size() && output_shape_refs[j].defined())
      grads_out[j] = full_like(output_shape_refs[j], 0);
    else
      grads_out[j] = zeros(outputs[j].shape, {.dtype = outputs[j].dtype, .device = outputs[j].device});
  }
  GradContext ctx(*this, std::span<const Tensor>(grads_out.data(), grads_out.size()));
  std::vector<Tensor> g = op_.grad_fn()(ctx);
  if (g.size() < next_edges.size()) g.resize(next_edges.size());
  if (g.size() != next_edges.size())
    throw InternalError(detail::str("the gradient of ", name(), " returned ", g.size(), " gradients for ",
                                    next_edges.size(), " inputs"));
  for (size_t i = 0; i < g.size(); ++i) {
    if (!next_edges[i].valid()) {
      g[i] = Tensor();
      continue;
    }
    if (!g[i].defined()) continue;
    const TensorMetaInfo& m = input_meta[i];
    if (g[i].shape() != m.shape)
      throw InternalError(detail::str("the gradient of ", name(), " for input ", i, " has shape ",
                                      to_string(g[i].shape()), ", expected ", to_string(m.shape)));
    if (g[i].dtype() != m.dtype) g[i] = g[i].to(m.dtype);
  }
  return g;
}

void OpNode::release() {
  for (auto& s : saved_inputs)
    if (s.defined()) s.reset();
  for (auto& s : saved_outputs)
    if (s.defined()) s.reset();
}

// --- AccumulateGrad

AccumulateGrad::AccumulateGrad(Tensor variable) : variable_(std::move(variable)) {
  outputs.push_back({variable_.shape(), variable_.dtype(), variable_.device()});
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grads_out) {
  Tensor& g = grads_out[0];
  if (!g.defined()) return {};
  GLIA_CHECK(!g.is_symbolic() || variable_.is_symbolic(), ValueError,
             "backward() inside a graph being built or traced would store symbolic gradients in .grad; use "
             "glia::grad(loss, params) (or graph::gradients) there");
  Tensor old = variable_.grad();
  if (GradMode::is_enabled()) {  // create_graph: keep the gradient differentiable
    variable_.set_grad(old.defined() ? old + g : g);
  } else if (!old.defined()) {
    // Steal the incoming buffer only if nobody else can see it.
    bool owned = g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.is_contiguous();
    variable_.set_grad(owned ? g.detach() : g.detach().clone());
  } else if (old.requires_grad()) {
    variable_.set_grad(old.detach() + g);
  } else {
    old.add_(g);
  }
  return {};
}

// --- recording

namespace autograd {

bool any_requires_grad(std::span<const Tensor> ts) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : ts)
    if (t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  AutogradMeta* m = t.impl()->autograd.get();
  if (!m || !m->requires_grad) return {};
  if (m->grad_fn) return {m->grad_fn, m->output_nr};
  std::shared_ptr<Node> acc = m->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    m->grad_accumulator = acc;
  }
  return {acc, 0};
}

namespace {
// Frees n's saved tensors (which may hold the only other references to the nodes before it),
// then moves the edges it holds the last reference to onto the stack.
void gather(Node* n, std::vector<std::shared_ptr<Node>>& stack) {
  n->release();
  for (auto& e : n->next_edges) {
    if (e.fn.use_count() == 1)
      stack.push_back(std::move(e.fn));
    else
      e.fn.reset();
  }
}
}  // namespace

void delete_node(Node* node) {
  std::vector<std::shared_ptr<Node>> stack;
  gather(node, stack);
  delete node;
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    gather(n.get(), stack);
  }  // n is deleted here, with no edges left to recurse into
}

void record(const OpDef& op, std::span<const Tensor> in, std::span<Tensor> out, Attrs&& attrs) {
  auto node = make_node<OpNode>(op, std::move(attrs));
  size_t n = in.size();
  node->next_edges.resize(n);
  node->input_meta.resize(n);
  node->saved_inputs.resize(n);
  for (size_t i = 0; i < n; ++i) {
    node->input_meta[i] = {in[i].shape(), in[i].dtype(), in[i].device()};
    if (in[i].is_symbolic() &&
        std::any_of(in[i].shape().begin(), in[i].shape().end(), [](int64_t d) { return d < 0; })) {
      if (node->shape_refs.empty()) node->shape_refs.resize(n);
      node->shape_refs[i] = in[i].detach();
    }
    if (in[i].requires_grad()) node->next_edges[i] = gradient_edge(in[i]);
    if (op.saves_input(i)) node->saved_inputs[i] = SavedTensor(in[i], false);
  }
  node->saved_outputs.resize(out.size());
  for (size_t j = 0; j < out.size(); ++j) {
    node->outputs.push_back({out[j].shape(), out[j].dtype(), out[j].device()});
    if (out[j].is_symbolic() &&
        std::any_of(out[j].shape().begin(), out[j].shape().end(), [](int64_t d) { return d < 0; })) {
      if (node->output_shape_refs.empty()) node->output_shape_refs.resize(out.size());
      node->output_shape_refs[j] = out[j].detach();
    }
    if (!is_floating(out[j].dtype())) continue;
    auto meta = std::make_unique<AutogradMeta>();
    meta->requires_grad = true;
    meta->grad_fn = node;
    meta->output_nr = static_cast<uint32_t>(j);
    out[j].impl()->autograd = std::move(meta);
  }
  for (size_t j = 0; j < out.size(); ++j)
    if (op.saves_output(j)) node->saved_outputs[j] = SavedTensor(out[j], true);
}

}  // namespace autograd
}  // namespace glia
