// TF1-style graphs run by a Session: variable state across runs and sessions, placeholders with
// unknown dims, feeding errors that name the placeholder, symbolic gradients against eager ones,
// and a training loop that reaches a known solution.
#include <gmock/gmock.h>

#include <cmath>

#include "graph/graph_testing.h"

using namespace glia;
using glia::graph::Graph;
using glia::graph::GraphScope;
using glia::graph::Session;
using glia::testing::all_close;
using glia::testing::error_of;
using glia::testing::f32;
using glia::testing::map_naive;
using glia::testing::matmul_naive;
using glia::testing::uniform;
using glia::testing::values;
using ::testing::HasSubstr;

namespace {

TEST(GraphSession, VariablesPersistAcrossRuns) {
  Graph g;
  Tensor init = tensor({1.f, 2.f, 3.f}), delta = tensor({0.5f, -1.f, 0.25f});
  Tensor v = g.variable(init, "v");
  Tensor step = graph::assign_add(v, delta);
  Session s(g);
  Tensor last;
  for (int i = 0; i < 3; ++i) last = s.run(step);
  std::vector<double> want{1 + 3 * 0.5, 2 - 3 * 1.0, 3 + 3 * 0.25};
  EXPECT_TRUE(all_close(last, want, 0, 0));
  EXPECT_TRUE(all_close(s.value(v), want, 0, 0));
  // The initial value given to the graph is a copy: running changed neither it nor the node's.
  EXPECT_TRUE(all_close(init, std::vector<double>{1, 2, 3}, 0, 0));
}

TEST(GraphSession, AssignSubAndAssignAndReadingTheVariable) {
  Graph g;
  Tensor v = g.variable(tensor({4.f, 8.f}), "v");
  Tensor half = graph::assign_sub(v, v * 0.5);
  Tensor reset = graph::assign(v, tensor({1.f, 1.f}));
  Tensor doubled = v * 2.0;
  Session s(g);
  EXPECT_TRUE(all_close(s.run(doubled), std::vector<double>{8, 16}, 0, 0));
  EXPECT_TRUE(all_close(s.run(half), std::vector<double>{2, 4}, 0, 0));
  EXPECT_TRUE(all_close(s.run(half), std::vector<double>{1, 2}, 0, 0));
  EXPECT_TRUE(all_close(s.run(doubled), std::vector<double>{2, 4}, 0, 0));
  EXPECT_TRUE(all_close(s.run(reset), std::vector<double>{1, 1}, 0, 0));
  EXPECT_TRUE(all_close(s.value(v), std::vector<double>{1, 1}, 0, 0));
}

TEST(GraphSession, ValueAssignAndInitialize) {
  Graph g;
  Tensor v = g.variable(tensor({1.f, 2.f}), "weights");
  Tensor step = graph::assign_add(v, tensor({1.f, 1.f}));
  Session s(g);
  s.assign(v, tensor({10.f, 20.f}));
  EXPECT_TRUE(all_close(s.value(v), std::vector<double>{10, 20}, 0, 0));
  EXPECT_TRUE(all_close(s.run(step), std::vector<double>{11, 21}, 0, 0));
  // value() is a copy: changing it leaves the variable alone.
  Tensor copy = s.value(v);
  copy.fill_(0);
  EXPECT_TRUE(all_close(s.value(v), std::vector<double>{11, 21}, 0, 0));
  // assign converts the dtype to the variable's.
  s.assign(v, tensor({5.0, 6.0}));
  EXPECT_EQ(s.value(v).dtype(), DType::f32);
  EXPECT_TRUE(all_close(s.value(v), std::vector<double>{5, 6}, 0, 0));
  s.initialize();
  EXPECT_TRUE(all_close(s.value(v), std::vector<double>{1, 2}, 0, 0));
  EXPECT_TRUE(all_close(s.run(step), std::vector<double>{2, 3}, 0, 0));

  std::string msg = error_of<ShapeError>([&] { s.assign(v, tensor({1.f, 2.f, 3.f})); });
  EXPECT_THAT(msg, HasSubstr("'weights'"));
  EXPECT_THAT(msg, HasSubstr("[3]"));
  msg = error_of<ValueError>([&] { (void)s.value(step); });
  EXPECT_THAT(msg, HasSubstr("expected a variable"));
}

TEST(GraphSession, TwoSessionsKeepSeparateState) {
  Graph g;
  Tensor v = g.variable(tensor({0.f}), "counter");
  Tensor step = graph::assign_add(v, tensor({1.f}));
  Session a(g), b(g);
  a.run(step);
  a.run(step);
  b.run(step);
  EXPECT_EQ(a.value(v).item<double>(), 2);
  EXPECT_EQ(b.value(v).item<double>(), 1);
  b.assign(v, tensor({100.f}));
  EXPECT_EQ(a.value(v).item<double>(), 2);
  EXPECT_EQ(a.run(step).item<double>(), 3);
}

TEST(GraphSession, VariableAddedAfterTheSessionStarted) {
  Graph g;
  Tensor v = g.variable(tensor({1.f}), "v");
  Session s(g);
  s.run(graph::assign_add(v, tensor({1.f})));
  Tensor w = g.variable(tensor({5.f}), "w");
  EXPECT_EQ(s.run(v + w).item<double>(), 7);
  EXPECT_EQ(s.value(w).item<double>(), 5);
}

TEST(GraphSession, UnknownBatchDimPlansPerShape) {
  Tensor wv = f32({4, 3});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {-1, 4}, "x");
  Tensor w = g.variable(wv, "w");
  Tensor y = tanh(matmul(x, w)) + 1.0;
  EXPECT_EQ(y.shape(), (Shape{-1, 3}));
  Session s(g);
  auto check = [&](int64_t batch) {
    Tensor xv = f32({batch, 4});
    Tensor r = s.run(y, {{x, xv}});
    ASSERT_EQ(r.shape(), (Shape{batch, 3}));
    Tensor want = map_naive(matmul_naive(xv, wv), [](double t) { return std::tanh(t) + 1; });
    EXPECT_TRUE(all_close(r, want, 1e-5, 1e-6));
  };
  check(3);
  EXPECT_EQ(s.num_plans(), 1u);
  check(5);
  EXPECT_EQ(s.num_plans(), 2u);
  check(3);
  EXPECT_EQ(s.num_plans(), 2u);
  check(1);
  EXPECT_EQ(s.num_plans(), 3u);
}

TEST(GraphSession, ShapeOfAReductionOverTheUnknownDim) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {-1, 3}, "x");
  Tensor m = mean(x, {0});
  Tensor flat = reshape(x, {-1});
  EXPECT_EQ(m.shape(), (Shape{3}));
  EXPECT_EQ(flat.shape(), (Shape{-1}));
  Session s(g);
  Tensor xv = f32({4, 3});
  auto r = s.run({m, flat}, {{x, xv}});
  EXPECT_TRUE(all_close(r[0], mean(xv, {0}), 1e-6));
  EXPECT_EQ(r[1].shape(), (Shape{12}));
  EXPECT_TRUE(all_close(r[1], values(xv), 0, 0));
}

TEST(GraphSession, RunsOnlyWhatTheFetchesNeed) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {2}, "x");
  Tensor z = g.placeholder(DType::f32, {2}, "z");
  Tensor v = g.variable(tensor({0.f, 0.f}), "v");
  Tensor a = x * 2.0;
  Tensor b = z + 1.0;
  Tensor upd = graph::assign_add(v, x);
  Session s(g);
  // z is not needed for a, and the update is not run unless fetched or targeted.
  EXPECT_TRUE(all_close(s.run(a, {{x, tensor({1.f, 2.f})}}), std::vector<double>{2, 4}, 0, 0));
  EXPECT_TRUE(all_close(s.value(v), std::vector<double>{0, 0}, 0, 0));
  // As a target, the update runs; nothing needs z still.
  s.run({a}, {{x, tensor({1.f, 2.f})}}, {upd});
  EXPECT_TRUE(all_close(s.value(v), std::vector<double>{1, 2}, 0, 0));
  EXPECT_TRUE(all_close(s.run(b, {{z, tensor({5.f, 6.f})}}), std::vector<double>{6, 7}, 0, 0));
}

TEST(GraphSession, FeedingAPlaceholderTheFetchesDoNotNeed) {
  // As in TF1, extra feeds are allowed (a feed dict built once for several fetches).
  Graph g;
  Tensor x = g.placeholder(DType::f32, {2}, "x");
  Tensor z = g.placeholder(DType::f32, {2}, "z");
  Tensor a = x * 2.0;
  Tensor b = z + 1.0;
  Session s(g);
  std::vector<std::pair<Tensor, Tensor>> feeds{{x, tensor({1.f, 2.f})}, {z, tensor({5.f, 6.f})}};
  EXPECT_TRUE(all_close(s.run(a, feeds), std::vector<double>{2, 4}, 0, 0));
  EXPECT_TRUE(all_close(s.run(b, feeds), std::vector<double>{6, 7}, 0, 0));
}

TEST(GraphSession, MissingFeedNamesThePlaceholder) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {2}, "x");
  Tensor labels = g.placeholder(DType::f32, {-1, 2}, "labels");
  Tensor y = x + labels;
  Session s(g);
  std::string msg = error_of<ValueError>([&] { s.run(y, {{x, tensor({1.f, 2.f})}}); });
  EXPECT_THAT(msg, HasSubstr("'labels'"));
  EXPECT_THAT(msg, HasSubstr("[-1, 2]"));
}

TEST(GraphSession, WrongShapeFeedIsAShapeErrorNamingThePlaceholder) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {-1, 4}, "images");
  Tensor fixed = g.placeholder(DType::f32, {2, 3}, "fixed");
  Tensor y = sum(x);
  Tensor z = fixed * 2.0;
  Session s(g);
  for (Tensor bad : {f32({3, 5}), f32({4}), f32({2, 4, 1})}) {
    std::string msg = error_of<ShapeError>([&] { s.run(y, {{x, bad}}); });
    EXPECT_THAT(msg, HasSubstr("'images'"));
    EXPECT_THAT(msg, HasSubstr(to_string(bad.shape())));
  }
  std::string msg = error_of<ShapeError>([&] { s.run(z, {{fixed, f32({3, 3})}}); });
  EXPECT_THAT(msg, HasSubstr("'fixed'"));
  EXPECT_THAT(msg, HasSubstr("[2, 3]"));
  // The session still works with good feeds after the errors.
  EXPECT_TRUE(all_close(s.run(z, {{fixed, ones({2, 3})}}), std::vector<double>(6, 2.0), 0, 0));
}

TEST(GraphSession, WrongDtypeFeedIsADTypeErrorNamingThePlaceholder) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {-1, 4}, "images");
  Tensor y = sum(x);
  Session s(g);
  std::string msg = error_of<DTypeError>([&] { s.run(y, {{x, uniform({2, 4})}}); });  // float64
  EXPECT_THAT(msg, HasSubstr("'images'"));
  EXPECT_THAT(msg, HasSubstr("float64"));
  msg = error_of<DTypeError>([&] { s.run(y, {{x, zeros({2, 4}, {.dtype = DType::i64})}}); });
  EXPECT_THAT(msg, HasSubstr("'images'"));
  Tensor xv = f32({2, 4});
  EXPECT_NEAR(s.run(y, {{x, xv}}).item<double>(), sum(xv).item<double>(), 1e-5);
}

TEST(GraphSession, BadFetchesAndFeedKeys) {
  Graph g, other;
  Tensor x = g.placeholder(DType::f32, {2}, "x");
  Tensor y = x * 2.0;
  Tensor o = other.placeholder(DType::f32, {2}, "o");
  Session s(g);
  EXPECT_THROW(s.run(std::vector<Tensor>{}), ValueError);
  EXPECT_THROW(s.run(tensor({1.f})), ValueError);                       // not symbolic
  EXPECT_THROW(s.run(o * 2.0, {{o, tensor({1.f, 2.f})}}), ValueError);  // another graph
  std::string msg = error_of<ValueError>([&] { s.run(y, {{y, tensor({1.f, 2.f})}}); });
  EXPECT_THAT(msg, HasSubstr("not a placeholder"));
}

TEST(GraphSession, SymbolicGradientsEqualEagerGradients) {
  Tensor w0 = f32({4, 3}), b0 = f32({3}), xv = f32({5, 4}), c = f32({5, 3});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {5, 4}, "x");
  Tensor w = g.variable(w0, "w"), b = g.variable(b0, "b");
  Tensor loss = sum(tanh(matmul(x, w) + b) * c) + mean(square(w));
  std::vector<Tensor> gs = graph::gradients({loss}, {w, b, x});
  Session s(g);
  auto r = s.run({loss, gs[0], gs[1], gs[2]}, {{x, xv}});

  Tensor we = w0.clone().requires_grad_(), be = b0.clone().requires_grad_(), xe = xv.clone().requires_grad_();
  Tensor le = sum(tanh(matmul(xe, we) + be) * c) + mean(square(we));
  std::vector<Tensor> ge = grad({le}, {we, be, xe});
  EXPECT_TRUE(all_close(r[0], le, 1e-6, 1e-6));
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(all_close(r[i + 1], ge[i], 1e-6, 1e-7)) << "gradient " << i;
}

TEST(GraphSession, GradientOfAnUnrelatedVariableIsUndefined) {
  Graph g;
  Tensor w = g.variable(f32({3}), "w"), u = g.variable(f32({3}), "u");
  Tensor loss = sum(square(w));
  std::vector<Tensor> gs = graph::gradients({loss}, {w, u});
  EXPECT_TRUE(gs[0].defined());
  EXPECT_FALSE(gs[1].defined());
}

TEST(GraphSession, LinearRegressionTrainingLoopReachesTheSolution) {
  // y = X w* + b* exactly; gradient descent on the mean squared error converges to (w*, b*).
  Tensor X = f32({64, 3});
  Tensor w_true = tensor({1.5f, -2.f, 0.5f}, {3, 1});
  const double b_true = 0.75;
  Tensor Y = matmul(X, w_true) + b_true;

  Graph g;
  Tensor x = g.placeholder(DType::f32, {-1, 3}, "x");
  Tensor y = g.placeholder(DType::f32, {-1, 1}, "y");
  Tensor w = g.variable(zeros({3, 1}), "w");
  Tensor b = g.variable(zeros({1}), "b");
  Tensor loss = mean(square(matmul(x, w) + b - y));
  std::vector<Tensor> gs = graph::gradients({loss}, {w, b});
  Tensor train_w = graph::assign_sub(w, gs[0] * 0.5);
  Tensor train_b = graph::assign_sub(b, gs[1] * 0.5);
  Session s(g);
  double first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    double l = s.run({loss}, {{x, X}, {y, Y}}, {train_w, train_b})[0].item<double>();
    if (step == 0) first = l;
    last = l;
  }
  EXPECT_GT(first, 1.0);
  EXPECT_LT(last, 1e-8);
  EXPECT_TRUE(all_close(s.value(w), w_true, 0, 1e-4));
  EXPECT_NEAR(s.value(b).item<double>(), b_true, 1e-4);
  EXPECT_EQ(s.num_plans(), 1u);
}

TEST(GraphSession, TheSameGraphAfterOptimizeTrainsTheSame) {
  Tensor X = f32({32, 3});
  Tensor Y = matmul(X, tensor({1.f, 2.f, 3.f}, {3, 1}));
  auto build = [&](Graph& g, Tensor& x, Tensor& y, Tensor& w, Tensor& step, Tensor& loss) {
    x = g.placeholder(DType::f32, {32, 3}, "x");
    y = g.placeholder(DType::f32, {32, 1}, "y");
    w = g.variable(zeros({3, 1}), "w");
    loss = mean(square(matmul(x, w) - y));
    step = graph::assign_sub(w, graph::gradients(loss, w) * 0.3);
    glia::testing::set_outputs(g, {loss, step});
  };
  Graph g1, g2;
  Tensor x1, y1, w1, s1, l1, x2, y2, w2, s2, l2;
  build(g1, x1, y1, w1, s1, l1);
  build(g2, x2, y2, w2, s2, l2);
  graph::optimize(g2);
  Session a(g1), b(g2);
  for (int i = 0; i < 20; ++i) {
    auto ra = a.run(glia::testing::outputs(g1), {{x1, X}, {y1, Y}});
    auto rb = b.run(glia::testing::outputs(g2), {{x2, X}, {y2, Y}});
    EXPECT_TRUE(all_close(rb[0], ra[0], 1e-5, 1e-7)) << "step " << i;
  }
  EXPECT_TRUE(all_close(b.value(w2), a.value(w1), 1e-5, 1e-6));
}

}  // namespace

TEST(GraphSession, UpdateOpsRunBatchNormMovingStatistics) {
  // Built without a scope, as TF1 code is: the moving statistics change only when the session
  // runs the update ops (TF1's UPDATE_OPS), by exactly what eager batch_norm calls do.
  Graph g;
  Tensor x = g.placeholder(DType::f32, {-1, 3}, "x");
  Tensor mean = zeros({3}), var = ones({3});
  Tensor y = batch_norm(x, mean, var, {}, {}, {.training = true, .momentum = 0.5});
  auto updates = g.update_ops();
  ASSERT_EQ(updates.size(), 4u);  // mul_ and add_ into each statistic
  EXPECT_TRUE(all_close(mean, zeros({3}), 0, 0)) << "building the graph must not update the statistics";
  EXPECT_TRUE(all_close(var, ones({3}), 0, 0));
  Session s(g);
  Tensor a = f32({4, 3}), b = f32({6, 3});
  Tensor ref_mean = zeros({3}), ref_var = ones({3});
  s.run(std::vector<Tensor>{y}, {{x, a}});  // no targets: the statistics stay
  EXPECT_TRUE(all_close(mean, zeros({3}), 0, 0));
  for (const Tensor& batch : {a, b}) {
    s.run({y}, {{x, batch}}, updates);
    batch_norm(batch, ref_mean, ref_var, {}, {}, {.training = true, .momentum = 0.5});
    EXPECT_TRUE(all_close(mean, ref_mean, 1e-6, 1e-7));
    EXPECT_TRUE(all_close(var, ref_var, 1e-6, 1e-7));
  }
}
