// Helpers for the graph-mode tests: op counts, fetching a graph's outputs after passes rewrote
// it, and naive references in double.
#pragma once

#include <glia/graph/executor.h>
#include <glia/graph/function.h>
#include <glia/graph/graph.h>
#include <glia/graph/passes.h>
#include <glia/graph/session.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "testing.h"

namespace glia::testing {

/// A float32 tensor with values uniform in [lo, hi).
inline Tensor f32(std::initializer_list<int64_t> shape, double lo = -1, double hi = 1) {
  return uniform(shape, lo, hi, DType::f32);
}

/// Number of op nodes named `op` in g.
inline int count(const graph::Graph& g, const std::string& op) {
  auto c = g.op_counts();
  auto it = c.find(op);
  return it == c.end() ? 0 : it->second;
}

/// Number of nodes of a kind (placeholders, constants, ...) in g.
inline int count_kind(const graph::Graph& g, graph::NodeKind k) {
  int n = 0;
  for (auto& node : g.nodes()) n += node->kind == k;
  return n;
}

/// Total number of op nodes in g.
inline int num_ops(const graph::Graph& g) { return count_kind(g, graph::NodeKind::Op); }

/// Marks symbolic tensors of g as its outputs.
inline void set_outputs(graph::Graph& g, const std::vector<Tensor>& outs) {
  std::vector<graph::Value*> v;
  for (const Tensor& t : outs) v.push_back(g.value_of(t));
  g.set_outputs(v);
}

/// Symbolic tensors for g's outputs as they are now (passes may have redirected them, and
/// the tensors the test made may name nodes that no longer exist).
inline std::vector<Tensor> outputs(graph::Graph& g) {
  std::vector<Tensor> out;
  for (graph::Value* v : g.outputs()) out.push_back(g.tensor_of(v));
  return out;
}

/// Runs g's outputs in a fresh Session (targets: symbolic tensors run for their side effects).
inline std::vector<Tensor> run_outputs(graph::Graph& g, const std::vector<std::pair<Tensor, Tensor>>& feeds = {},
                                       const std::vector<Tensor>& targets = {}) {
  graph::Session s(g);
  return s.run(outputs(g), feeds, targets);
}

/// f applied to every element of t, computed in double (shape of t, float64).
inline Tensor map_naive(const Tensor& t, const std::function<double(double)>& f) {
  std::vector<double> v = values(t);
  for (double& x : v) x = f(x);
  return tensor(v, t.shape(), {.dtype = DType::f64});
}

/// a [M, K] @ b [K, N] in double.
inline Tensor matmul_naive(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  std::vector<double> av = values(a), bv = values(b), y(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += av[static_cast<size_t>(i * K + k)] * bv[static_cast<size_t>(k * N + j)];
      y[static_cast<size_t>(i * N + j)] = s;
    }
  return tensor(y, {M, N}, {.dtype = DType::f64});
}

/// Whether any element of t is NaN.
inline bool has_nan(const Tensor& t) {
  for (double x : values(t))
    if (std::isnan(x)) return true;
  return false;
}

}  // namespace glia::testing
