// glia::function: traced results against the eager code they trace (forward, gradients,
// optimizer steps), retracing per signature and its warning, DOT output, and the memory plan:
// a compiled training step allocates nothing once warmed up.
#include <gmock/gmock.h>

#include <cmath>
#include <limits>
#include <regex>
#include <set>
#include <sstream>

#include "graph/graph_testing.h"

using namespace glia;
using glia::testing::all_close;
using glia::testing::f32;
using glia::testing::uniform;
using glia::testing::values;
using ::testing::HasSubstr;

namespace {

Tensor leaf(const Tensor& t) {
  Tensor p = t.clone();
  p.requires_grad_(true);
  return p;
}

std::vector<Tensor> leaves(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(leaf(t));
  return out;
}

/// A two-layer MLP's mean squared error; p = {w1, b1, w2, b2}.
Tensor mlp_loss(const std::vector<Tensor>& p, const Tensor& x, const Tensor& y) {
  Tensor h = relu(matmul(x, p[0]) + p[1]);
  Tensor out = matmul(h, p[2]) + p[3];
  return mean(square(out - y));
}

std::vector<Tensor> mlp_init(int64_t in, int64_t hidden, int64_t out) {
  return {f32({in, hidden}, -0.5, 0.5), f32({hidden}, -0.1, 0.1), f32({hidden, out}, -0.5, 0.5), f32({out}, -0.1, 0.1)};
}

TEST(GraphFunction, TracedEqualsEagerForwardAndGradients) {
  std::vector<Tensor> p = leaves(mlp_init(4, 8, 3));
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor loss = mlp_loss(p, in[0], in[1]);
    std::vector<Tensor> gs = grad({loss}, p);
    std::vector<Tensor> out{loss, tanh(in[0]) * 2.0};
    out.insert(out.end(), gs.begin(), gs.end());
    return out;
  };
  Function optimized = function(fn);
  Function plain = function(fn, {.optimize = false});
  for (int call = 0; call < 2; ++call) {
    Tensor xv = f32({6, 4}), yv = f32({6, 3});
    std::vector<Tensor> eager = fn({xv, yv});
    std::vector<Tensor> a = plain({xv, yv}), b = optimized({xv, yv});
    ASSERT_EQ(a.size(), eager.size());
    ASSERT_EQ(b.size(), eager.size());
    for (size_t i = 0; i < eager.size(); ++i) {
      // Unoptimized, the graph runs the eager kernels on the same inputs: the same numbers.
      EXPECT_TRUE(all_close(a[i], eager[i], 0, 0)) << "output " << i;
      // Fused kernels round differently.
      EXPECT_TRUE(all_close(b[i], eager[i], 1e-5, 1e-6)) << "output " << i;
    }
  }
  EXPECT_EQ(plain.traces(), 1);
  EXPECT_EQ(optimized.traces(), 1);
  EXPECT_GT(optimized.pass_stats({f32({6, 4}), f32({6, 3})}).fused, 0);
}

TEST(GraphFunction, ANewSignatureRetracesTheSameDoesNot) {
  int runs_of_body = 0;
  Function f = function([&](const std::vector<Tensor>& in) {
    ++runs_of_body;
    return std::vector<Tensor>{in[0] * 2.0 + 1.0};
  });
  auto check = [&](const Tensor& x, const std::string& key, int64_t traces) {
    Tensor y = f({x}, key)[0];
    EXPECT_EQ(f.traces(), traces);
    EXPECT_EQ(y.dtype(), x.dtype());
    EXPECT_TRUE(all_close(y, glia::testing::map_naive(x, [](double t) { return 2 * t + 1; }), 1e-6, 1e-7));
  };
  check(f32({3, 4}), "", 1);
  check(f32({3, 4}), "", 1);  // new values, same signature
  check(f32({5, 4}), "", 2);
  check(uniform({3, 4}), "", 3);  // float64
  check(f32({3, 4}), "training", 4);
  check(f32({5, 4}), "", 4);
  check(uniform({3, 4}), "", 4);
  EXPECT_EQ(runs_of_body, 4);  // the body runs only when tracing
}

TEST(GraphFunction, WarnsOnStderrAfterTooManyTraces) {
  Function f = function([](const std::vector<Tensor>& in) { return std::vector<Tensor>{exp(in[0])}; },
                        {.name = "my_step", .warn_after_traces = 2});
  ::testing::internal::CaptureStderr();
  f({f32({1})});
  f({f32({2})});
  f({f32({2})});
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  ::testing::internal::CaptureStderr();
  f({f32({3})});
  std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(warning, HasSubstr("'my_step'"));
  EXPECT_THAT(warning, HasSubstr("traced 3 times"));
  EXPECT_THAT(warning, HasSubstr("[3]"));
  ::testing::internal::CaptureStderr();
  f({f32({3})});  // cached: no new trace, no warning
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(GraphFunction, AnInputTheFunctionDoesNotUse) {
  // Model steps pass inputs that a graph may not read (sample weights of an unweighted loss).
  Function f = function([](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] * 2.0}; });
  Tensor y = f({tensor({1.f, 2.f}), tensor({7.f})})[0];
  EXPECT_TRUE(all_close(y, std::vector<double>{2, 4}, 0, 0));
}

TEST(GraphFunction, RandomOpsDrawAnewAtEveryCall) {
  Function f = function([](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] + rand({8})}; });
  Tensor x = zeros({8});
  Tensor a = f({x})[0], b = f({x})[0];
  EXPECT_NE(values(a), values(b));
  for (double t : values(a)) {
    EXPECT_GE(t, 0);
    EXPECT_LT(t, 1);
  }
}

TEST(GraphFunction, ReturningACapturedTensorOrAnInput) {
  Tensor state = tensor({1.f, 2.f});
  Function f = function([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{state, in[0]}; });
  Tensor x = tensor({3.f, 4.f});
  auto r = f({x});
  EXPECT_TRUE(all_close(r[0], state, 0, 0));
  EXPECT_TRUE(all_close(r[1], x, 0, 0));
  state.add_(1.0);  // read by reference
  EXPECT_TRUE(all_close(f({x})[0], std::vector<double>{2, 3}, 0, 0));
}

TEST(GraphFunction, InPlaceUpdatesOfStateRunAtEveryCall) {
  // A traced function that updates state it captured (as a metric or a counter does).
  Tensor counter = zeros({1});
  Function f = function([&](const std::vector<Tensor>& in) {
    counter.add_(sum(in[0]));
    return std::vector<Tensor>{in[0] * 2.0};  // the update is not an output: it runs anyway
  });
  for (int i = 0; i < 3; ++i) f({ones({4})});
  EXPECT_EQ(counter.item<double>(), 12);
}

/// Trains the same MLP with a traced step and eagerly, with two copies of an optimizer. The
/// traced step counts its own steps (the graph runs the optimizer's begin_step / end_step).
void check_optimizer_in_graph(const std::function<optimizers::OptimizerPtr()>& make) {
  std::vector<Tensor> init = mlp_init(4, 8, 2);
  std::vector<Tensor> pt = leaves(init), pe = leaves(init);
  optimizers::OptimizerPtr ot = make(), oe = make();
  Function step = function([&](const std::vector<Tensor>& in) {
    Tensor loss = mlp_loss(pt, in[0], in[1]);
    ot->apply(grad({loss}, pt), pt);
    return std::vector<Tensor>{loss};
  });
  for (int it = 0; it < 5; ++it) {
    Tensor xv = f32({16, 4}), yv = f32({16, 2});
    Tensor lt = step({xv, yv})[0];
    Tensor le = mlp_loss(pe, xv, yv);
    oe->apply(grad({le}, pe), pe);
    EXPECT_TRUE(all_close(lt, le.detach(), 1e-5, 1e-6)) << "iteration " << it;
  }
  EXPECT_EQ(step.traces(), 1);
  EXPECT_EQ(ot->iterations(), 5);
  EXPECT_EQ(oe->iterations(), 5);
  for (size_t i = 0; i < pt.size(); ++i) {
    EXPECT_TRUE(all_close(pt[i], pe[i], 1e-5, 1e-6)) << "parameter " << i;
    EXPECT_FALSE(all_close(pt[i], init[i], 0, 1e-6)) << "parameter " << i << " did not move";
  }
  // Every slot of the optimizer state matches too.
  auto st = ot->state(), se = oe->state();
  ASSERT_EQ(st.size(), se.size());
  for (auto& [k, v] : st) EXPECT_TRUE(all_close(v, se.at(k), 1e-5, 1e-6)) << k;
}

TEST(GraphFunction, SgdWithMomentumStepMatchesEager) {
  check_optimizer_in_graph(
      [] { return std::make_shared<optimizers::SGD>(0.1, optimizers::SGDOptions{.momentum = 0.9}); });
}

TEST(GraphFunction, AdamStepMatchesEager) {
  check_optimizer_in_graph([] { return std::make_shared<optimizers::Adam>(0.01); });
}

TEST(GraphFunction, AdamWithScheduleAndClippingMatchesEager) {
  check_optimizer_in_graph([] {
    return std::make_shared<optimizers::Adam>(std::make_shared<optimizers::schedules::ExponentialDecay>(0.02, 2, 0.5),
                                              optimizers::AdamOptions{},
                                              optimizers::OptimizerOptions{.global_clipnorm = 0.5});
  });
}

TEST(GraphFunction, GuardedStepAsModelRunsIt) {
  // Model's compiled train_step: apply_gradients with apply_if = isfinite(loss), the caller runs
  // begin_step before each call and end_step only after a finite loss. A NaN batch updates nothing.
  std::vector<Tensor> init = mlp_init(4, 8, 2);
  std::vector<Tensor> pt = leaves(init), pe = leaves(init);
  std::vector<Variable> vars;
  for (const Tensor& p : pt) {
    Variable v;
    v.value = p;
    vars.push_back(v);
  }
  std::vector<Variable*> var_ptrs;
  for (auto& v : vars) var_ptrs.push_back(&v);
  optimizers::Adam ot(0.01), oe(0.01);
  Function step = function([&](const std::vector<Tensor>& in) {
    Tensor loss = mlp_loss(pt, in[0], in[1]);
    Tensor finite = isfinite(loss);
    ot.apply_gradients(grad({loss}, pt), var_ptrs, finite);
    return std::vector<Tensor>{loss};
  });
  for (int it = 0; it < 4; ++it) {
    Tensor xv = f32({16, 4}), yv = f32({16, 2});
    if (it == 2) yv.select(0, 3).select(0, 1).fill_(std::numeric_limits<float>::quiet_NaN());
    std::vector<Tensor> before;
    for (const Tensor& p : pt) before.push_back(p.clone());
    ot.begin_step();
    double lt = step({xv, yv})[0].item<double>();
    if (it == 2) {
      EXPECT_TRUE(std::isnan(lt));
      for (size_t i = 0; i < pt.size(); ++i) EXPECT_TRUE(all_close(pt[i], before[i], 0, 0)) << "parameter " << i;
      continue;
    }
    ot.end_step();
    Tensor le = mlp_loss(pe, xv, yv);
    oe.apply(grad({le}, pe), pe);
    EXPECT_NEAR(lt, le.item<double>(), 1e-5 * std::abs(le.item<double>()) + 1e-6) << "iteration " << it;
  }
  EXPECT_EQ(ot.iterations(), 3);
  for (size_t i = 0; i < pt.size(); ++i) EXPECT_TRUE(all_close(pt[i], pe[i], 1e-5, 1e-6)) << "parameter " << i;
}

TEST(GraphFunction, ToDotIsValidDotWithTheOpNames) {
  std::vector<Tensor> p = leaves(mlp_init(4, 8, 2));
  Function f = function(
      [&](const std::vector<Tensor>& in) {
        Tensor loss = mlp_loss(p, in[0], in[1]);
        return std::vector<Tensor>{loss, grad({loss}, p)[0]};
      },
      {.name = "dot_step"});
  std::vector<Tensor> in{f32({5, 4}), f32({5, 2})};
  std::string before = f.dot_before_passes(in);
  std::string after = f.graph_for(in).to_dot();
  for (const char* op : {"matmul", "relu", "add", "square", "sum"})
    EXPECT_THAT(before, HasSubstr(std::string("label=\"") + op + "\\n")) << op;
  EXPECT_THAT(after, HasSubstr("label=\"matmul_fused\\n"));
  EXPECT_THAT(after, HasSubstr("placeholder input_0"));
  EXPECT_EQ(f.op_counts_before_passes(in).at("matmul"), 5);  // forward 2, backward 3 (none for the input)

  for (const std::string& dot : {before, after}) {
    // Header, node and edge statements, closing brace; every edge joins declared nodes.
    std::istringstream is(dot);
    std::string line;
    std::getline(is, line);
    EXPECT_EQ(line, "digraph glia {");
    std::regex node(R"re(  (n\d+) \[label="([^"]*)", [^\]]*\];)re"), edge(R"(  (n\d+) -> (n\d+);)"),
        attr(R"(  (rankdir=\w+|node \[.*\]);)");
    std::set<std::string> declared, ops, targets;
    bool closed = false;
    while (std::getline(is, line)) {
      std::smatch m;
      ASSERT_FALSE(closed) << "text after the closing brace: " << line;
      if (line == "}") {
        closed = true;
      } else if (std::regex_match(line, m, node)) {
        EXPECT_TRUE(declared.insert(m[1]).second) << "declared twice: " << line;
        std::string label = m[2];
        bool source = label.rfind("placeholder ", 0) == 0 || label.rfind("state", 0) == 0 ||
                      label.rfind("const", 0) == 0 || label.rfind("folded", 0) == 0;
        if (!source) ops.insert(m[1]);
      } else if (std::regex_match(line, m, edge)) {
        EXPECT_TRUE(declared.count(m[1]) && declared.count(m[2])) << "edge to an undeclared node: " << line;
        targets.insert(m[2]);
      } else {
        EXPECT_TRUE(std::regex_match(line, attr)) << "not a DOT statement: " << line;
      }
    }
    EXPECT_TRUE(closed);
    EXPECT_GT(ops.size(), 5u);
    for (const std::string& n : ops) EXPECT_TRUE(targets.count(n)) << "op node " << n << " has no inputs";
  }
}

TEST(GraphFunction, ToDotOfFetchesDrawsOnlyWhatComputesThem) {
  graph::Graph g;
  Tensor x = g.placeholder(DType::f32, {2}, "x");
  Tensor z = g.placeholder(DType::f32, {2}, "z");
  Tensor a = exp(x);
  Tensor b = sin(z);
  std::string all = g.to_dot(), only_a = g.to_dot({a});
  EXPECT_THAT(all, HasSubstr("sin"));
  EXPECT_THAT(all, HasSubstr("placeholder z"));
  EXPECT_THAT(only_a, HasSubstr("exp"));
  EXPECT_THAT(only_a, HasSubstr("placeholder x"));
  EXPECT_THAT(only_a, ::testing::Not(HasSubstr("sin")));
  EXPECT_THAT(only_a, ::testing::Not(HasSubstr("placeholder z")));
  (void)b;
}

TEST(GraphFunction, CompiledTrainingStepAllocatesNothingAfterWarmUp) {
  std::vector<Tensor> p = leaves(mlp_init(8, 32, 4));
  optimizers::Adam opt(0.01);
  Function step = function(
      [&](const std::vector<Tensor>& in) {
        Tensor loss = mlp_loss(p, in[0], in[1]);
        opt.apply(grad({loss}, p), p);
        return std::vector<Tensor>{loss};
      },
      {.copy_outputs = false});
  Tensor xv = f32({16, 8}), yv = f32({16, 4});
  auto call = [&] { return step({xv, yv})[0]; };
  double first = call().item<double>();
  for (int i = 0; i < 2; ++i) call();
  const AllocatorStats before = memory_stats();
  Tensor last;
  for (int i = 0; i < 5; ++i) last = call();
  const AllocatorStats after = memory_stats();
  EXPECT_EQ(after.alloc_calls, before.alloc_calls) << "allocations in 5 warmed-up steps";
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_LT(last.item<double>(), first);  // and it trained
  EXPECT_EQ(step.traces(), 1);
  EXPECT_EQ(opt.iterations(), 8);
  const graph::Plan& plan = step.plan_for({xv, yv});
  EXPECT_LT(plan.arena_bytes(), plan.unshared_bytes());
}

TEST(GraphFunction, CopiedOutputsAreFreshAliasedOutputsAreReused) {
  Function copying = function([](const std::vector<Tensor>& in) { return std::vector<Tensor>{exp(in[0]) + 1.0}; });
  Function aliasing = function([](const std::vector<Tensor>& in) { return std::vector<Tensor>{exp(in[0]) + 1.0}; },
                               {.copy_outputs = false});
  Tensor x1 = zeros({4}), x2 = ones({4});
  Tensor c1 = copying({x1})[0], c2 = copying({x2})[0];
  EXPECT_TRUE(all_close(c1, std::vector<double>(4, 2.0), 0, 0));  // not overwritten by the second call
  Tensor a1 = aliasing({x1})[0];
  EXPECT_TRUE(all_close(a1, std::vector<double>(4, 2.0), 0, 0));
  Tensor a2 = aliasing({x2})[0];
  EXPECT_EQ(a1.data_ptr(), a2.data_ptr());  // the same arena slot, valid until the next call
  EXPECT_TRUE(all_close(a2, c2, 0, 0));
}

TEST(GraphFunction, TheMemoryPlanSharesSlotsBetweenLayers) {
  std::vector<Tensor> ws;
  for (int i = 0; i < 6; ++i) ws.push_back(f32({64, 64}, -0.2, 0.2));
  auto forward = [&](const std::vector<Tensor>& in) {
    Tensor h = in[0];
    for (const Tensor& w : ws) h = tanh(matmul(h, w)) * 0.5;
    return std::vector<Tensor>{h};
  };
  Function f = function(forward, {.optimize = false});
  std::vector<Tensor> in{f32({32, 64})};
  const graph::Plan& plan = f.plan_for(in);
  const int64_t layer = 32 * 64 * 4;
  EXPECT_EQ(plan.unshared_bytes(), 6 * 3 * layer);  // matmul, tanh and mul outputs per layer
  EXPECT_GT(plan.arena_bytes(), 0);
  EXPECT_LT(plan.arena_bytes(), plan.unshared_bytes());
  EXPECT_LE(plan.arena_bytes(), 3 * layer);  // a few live values at a time
  EXPECT_TRUE(all_close(f(in)[0], forward(in)[0], 0, 0));
}

}  // namespace
