// The backward engine: runs the tape from the roots, in reverse creation
// order, each node once all gradients for it have arrived.
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "glia/autograd/autograd.h"
#include "glia/autograd/node.h"
#include "glia/ops/functions.h"

namespace glia {
namespace {

struct Capture {
  Node* node;
  uint32_t slot;
};

/// Runs backward. With `captures`, returns the gradient arriving at each captured
/// (node, slot) instead of accumulating into leaves, and runs only the nodes needed.
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads,
                                 bool keep_graph, bool create_graph, const std::vector<Capture>* captures) {
  GLIA_CHECK(root_grads.empty() || root_grads.size() == roots.size(), ValueError, "backward: got ", roots.size(),
             " outputs but ", root_grads.size(), " gradients");
  std::vector<Edge> root_edges;
  std::vector<Tensor> grads0;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    GLIA_CHECK(r.defined(), ValueError, "backward: output ", i, " is an undefined tensor");
    GLIA_CHECK(r.requires_grad(), ValueError, "backward: output ", i,
               " does not require grad and has no grad_fn (was it computed under no_grad, or from tensors "
               "without requires_grad?)");
    Tensor g = root_grads.empty() ? Tensor() : root_grads[i];
    if (!g.defined()) {
      GLIA_CHECK(r.numel() == 1, ValueError,
                 "backward: a gradient can be implied only for one-element outputs; "
                 "output ",
                 i, " has shape ", to_string(r.shape()), ", so pass its gradient");
      g = ones_like(r);
    } else {
      GLIA_CHECK(g.shape() == r.shape(), ShapeError, "backward: gradient of shape ", to_string(g.shape()),
                 " for output ", i, " of shape ", to_string(r.shape()));
    }
    root_edges.push_back(autograd::gradient_edge(r));
    grads0.push_back(g);
  }

  // Dependencies: how many edges from reachable nodes enter each node.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  for (auto& e : root_edges)
    if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
  std::vector<Node*> order;  // discovery order, for the needed-set pass
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (auto& e : n->next_edges) {
      if (!e.valid()) continue;
      ++deps[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }

  // With captures, a node runs only if a captured slot lies behind it.
  std::unordered_set<Node*> needed;
  std::unordered_map<Node*, std::vector<std::pair<uint32_t, size_t>>> capture_at;
  if (captures) {
    for (size_t i = 0; i < captures->size(); ++i) capture_at[(*captures)[i].node].push_back({(*captures)[i].slot, i});
    // Fixed point over the reachable graph: needed if it leads to a needed node or capture target.
    bool changed = true;
    while (changed) {
      changed = false;
      for (auto it = order.rbegin(); it != order.rend(); ++it) {  // children tend to come later
        Node* n = *it;
        if (needed.count(n)) continue;
        for (auto& e : n->next_edges)
          if (e.valid() && (needed.count(e.fn.get()) || capture_at.count(e.fn.get()))) {
            if (dynamic_cast<AccumulateGrad*>(n)) break;
            needed.insert(n);
            changed = true;
            break;
          }
      }
    }
  }

  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  auto accumulate = [&](const Edge& e, Tensor g) {
    auto& buf = buffers[e.fn.get()];
    if (buf.empty()) buf.resize(e.fn->outputs.size());
    Tensor& slot = buf[e.input_nr];
    slot = slot.defined() ? slot + g : std::move(g);
  };
  auto cmp = [](Node* a, Node* b) { return a->sequence_nr < b->sequence_nr; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(cmp)> ready(cmp);
  std::unordered_map<Node*, std::shared_ptr<Node>> keep;  // nodes stay alive while queued

  std::vector<Tensor> captured(captures ? captures->size() : 0);
  {
    GradMode::set_enabled(create_graph);
    struct Restore {
      bool prev = true;
      ~Restore() { GradMode::set_enabled(prev); }
    } restore;
    for (size_t i = 0; i < root_edges.size(); ++i) {
      accumulate(root_edges[i], grads0[i]);
      keep[root_edges[i].fn.get()] = root_edges[i].fn;
    }
    for (auto& [n, sp] : keep)
      if (deps[n] == 0) ready.push(n);

    while (!ready.empty()) {
      Node* n = ready.top();
      ready.pop();
      std::shared_ptr<Node> hold = keep[n];
      keep.erase(n);
      std::vector<Tensor> in = std::move(buffers[n]);
      buffers.erase(n);
      in.resize(n->outputs.size());
      if (captures) {
        auto it = capture_at.find(n);
        if (it != capture_at.end())
          for (auto [slot, idx] : it->second) captured[idx] = in[slot];
      }
      for (auto& [slot, weak] : n->retained)
        if (auto impl = weak.lock(); impl && in[slot].defined()) {
          Tensor t(impl);
          Tensor old = t.grad();
          t.set_grad(old.defined() ? old + in[slot] : (create_graph ? in[slot] : in[slot].detach()));
        }
      bool run = captures ? needed.count(n) > 0 : true;
      std::vector<Tensor> out;
      if (run) {
        out = n->apply(std::move(in));
        if (!keep_graph) n->release();
      }
      for (size_t i = 0; i < n->next_edges.size(); ++i) {
        const Edge& e = n->next_edges[i];
        if (!e.valid()) continue;
        if (run && i < out.size() && out[i].defined()) accumulate(e, std::move(out[i]));
        keep.emplace(e.fn.get(), e.fn);
        if (--deps[e.fn.get()] == 0) ready.push(e.fn.get());
      }
    }
  }
  return captured;
}

}  // namespace

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, BackwardOptions o) {
  run_backward(outputs, grad_outputs, o.retain_graph || o.create_graph, o.create_graph, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs, GradOptions o) {
  std::vector<Capture> caps;
  // gradient_edge may have just created an accumulator: keep it alive for the run, so that the
  // captured node is the one the outputs reach (also when an output is an input itself).
  std::vector<std::shared_ptr<Node>> hold;
  for (size_t i = 0; i < inputs.size(); ++i) {
    GLIA_CHECK(inputs[i].defined() && inputs[i].requires_grad(), ValueError, "grad: input ", i,
               " does not require grad");
    Edge e = autograd::gradient_edge(inputs[i]);
    caps.push_back({e.fn.get(), e.input_nr});
    hold.push_back(e.fn);
  }
  std::vector<Tensor> g =
      run_backward(outputs, o.grad_outputs, o.retain_graph || o.create_graph, o.create_graph, &caps);
  for (size_t i = 0; i < g.size(); ++i) {
    if (g[i].defined()) {
      if (!o.create_graph) g[i] = g[i].detach();
      continue;
    }
    GLIA_CHECK(o.allow_unused, ValueError, "grad: input ", i,
               " was not used to compute the outputs (pass allow_unused=true to get an undefined gradient)");
  }
  return g;
}

}  // namespace glia
