// Graph passes on hand-built graphs: each pass removes, folds, merges or fuses exactly the nodes
// it should (op counts before and after), and the rewritten graph computes the same numbers as
// a naive reference or the eager ops.
#include <gmock/gmock.h>

#include <cmath>
#include <limits>

#include "graph/graph_testing.h"

using namespace glia;
using glia::graph::Graph;
using glia::graph::GraphScope;
using glia::graph::NodeKind;
using glia::testing::all_close;
using glia::testing::count;
using glia::testing::count_kind;
using glia::testing::f32;
using glia::testing::map_naive;
using glia::testing::matmul_naive;
using glia::testing::num_ops;
using glia::testing::run_outputs;
using glia::testing::set_outputs;
using glia::testing::uniform;
using glia::testing::values;

namespace {

using Counts = std::map<std::string, int>;

int count_inplace(const Graph& g) {
  int n = 0;
  for (auto& node : g.nodes()) n += node->inplace;
  return n;
}

// --- dead-code elimination

TEST(GraphDce, RemovesUnusedBranchesKeepsSideEffectsAndOutputs) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {2, 3}, "x", false);
  Tensor v = g.variable(zeros({2, 3}), "v");
  Tensor y, upd;
  {
    GraphScope scope(g);
    Tensor a = exp(x);
    y = a * 2.0;
    Tensor unused = sin(x) + cos(a);  // sin, cos, add: nothing reads them
    (void)unused;
    upd = graph::assign_add(v, sqrt(abs(x)));  // abs and sqrt feed an in-place update: kept
  }
  set_outputs(g, {y});
  EXPECT_EQ(g.op_counts(),
            (Counts{{"abs", 1}, {"add", 2}, {"cos", 1}, {"exp", 1}, {"mul", 1}, {"sin", 1}, {"sqrt", 1}}));
  EXPECT_EQ(graph::eliminate_dead_code(g), 3);
  EXPECT_EQ(g.op_counts(), (Counts{{"abs", 1}, {"add", 1}, {"exp", 1}, {"mul", 1}, {"sqrt", 1}}));
  EXPECT_EQ(count_inplace(g), 1);
  EXPECT_EQ(count_kind(g, NodeKind::Placeholder), 1);
  EXPECT_EQ(count_kind(g, NodeKind::Variable), 1);
  EXPECT_EQ(graph::eliminate_dead_code(g), 0);  // nothing left to remove

  Tensor xv = f32({2, 3});
  graph::Session s(g);
  auto r = s.run({glia::testing::outputs(g)[0], upd}, {{x, xv}});
  EXPECT_TRUE(all_close(r[0], map_naive(xv, [](double t) { return 2 * std::exp(t); }), 1e-6, 1e-7));
  EXPECT_TRUE(all_close(r[1], map_naive(xv, [](double t) { return std::sqrt(std::abs(t)); }), 1e-6, 1e-7));
}

TEST(GraphDce, KeepsEveryNodeAnOutputNeedsAndRemovesTheRest) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {4}, "x", false);
  Tensor a, b;
  {
    GraphScope scope(g);
    a = exp(x);
    b = log(a + 1.0);  // only a is an output: add and log are dead
  }
  set_outputs(g, {a});
  EXPECT_EQ(graph::eliminate_dead_code(g), 2);
  EXPECT_EQ(g.op_counts(), (Counts{{"exp", 1}}));
  Tensor xv = f32({4});
  EXPECT_TRUE(all_close(run_outputs(g, {{x, xv}})[0], map_naive(xv, [](double t) { return std::exp(t); }), 1e-6));
}

// --- constant folding

TEST(GraphFold, FoldsOpsOverConstantsIntoOneConstant) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  // Made after the graph: constants of it (state made before would be captures).
  Tensor c1 = tensor({1.f, 2.f, 3.f}), c2 = tensor({4.f, 5.f, 6.f});
  Tensor y;
  {
    GraphScope scope(g);
    y = (c1 + c2) * x;
  }
  set_outputs(g, {y});
  EXPECT_EQ(g.op_counts(), (Counts{{"add", 1}, {"mul", 1}}));
  EXPECT_EQ(graph::fold_constants(g), 1);
  EXPECT_EQ(g.op_counts(), (Counts{{"mul", 1}}));
  graph::eliminate_dead_code(g);
  EXPECT_EQ(count_kind(g, NodeKind::Constant), 1);  // the folded sum; c1 and c2 are gone
  Tensor xv = tensor({0.5f, -2.f, 3.f});
  EXPECT_TRUE(all_close(run_outputs(g, {{x, xv}})[0], std::vector<double>{2.5, -14, 27}, 0, 0));
}

TEST(GraphFold, FoldsChainsInOnePass) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {2, 3}, "x", false);
  Tensor c1 = f32({2, 3}), c2 = f32({3});
  Tensor y;
  {
    GraphScope scope(g);
    y = exp(c1) * sum(c2) + x;  // exp, sum, mul fold; add reads x
  }
  set_outputs(g, {y});
  EXPECT_EQ(graph::fold_constants(g), 3);
  EXPECT_EQ(g.op_counts(), (Counts{{"add", 1}}));
  Tensor xv = f32({2, 3});
  double s = 0;
  for (double t : values(c2)) s += t;
  std::vector<double> want, cv = values(c1), xs = values(xv);
  for (size_t i = 0; i < cv.size(); ++i) want.push_back(std::exp(cv[i]) * s + xs[i]);
  EXPECT_TRUE(all_close(run_outputs(g, {{x, xv}})[0], want, 1e-5, 1e-6));
}

TEST(GraphFold, DoesNotFoldRandomOps) {
  Graph g;
  Tensor c = f32({64});
  Tensor r, d;
  {
    GraphScope scope(g);
    r = rand({64}) + c;         // random_uniform draws anew at every run
    d = dropout(c, 0.5, true);  // dropout is random too
  }
  set_outputs(g, {r, d});
  Counts before = g.op_counts();
  EXPECT_EQ(before, (Counts{{"add", 1}, {"dropout", 1}, {"random_uniform", 1}}));
  EXPECT_EQ(graph::fold_constants(g), 0);
  EXPECT_EQ(g.op_counts(), before);
  graph::Session s(g);
  auto a = s.run(glia::testing::outputs(g)), b = s.run(glia::testing::outputs(g));
  EXPECT_NE(values(a[0]), values(b[0]));
  EXPECT_NE(values(a[1]), values(b[1]));
}

TEST(GraphFold, DoesNotFoldOpsThatReadPlaceholdersOrCaptures) {
  Tensor cap = tensor({1.f, 2.f, 3.f});  // made before the graph: state, read at every run
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  Tensor c = tensor({0.f, 1.f, 2.f});
  Tensor y;
  {
    GraphScope scope(g);
    y = exp(cap) + exp(c) * sqrt(abs(x));  // only exp(c) folds
  }
  set_outputs(g, {y});
  EXPECT_EQ(count_kind(g, NodeKind::Capture), 1);
  EXPECT_EQ(graph::fold_constants(g), 1);
  EXPECT_EQ(g.op_counts(), (Counts{{"abs", 1}, {"add", 1}, {"exp", 1}, {"mul", 1}, {"sqrt", 1}}));
  Tensor xv = tensor({4.f, 9.f, 16.f});
  graph::Session s(g);
  auto ref = [&](const std::vector<double>& cv) {
    std::vector<double> out;
    for (size_t i = 0; i < 3; ++i)
      out.push_back(std::exp(cv[i]) + std::exp(static_cast<double>(i)) * std::sqrt(values(xv)[i]));
    return out;
  };
  EXPECT_TRUE(all_close(s.run(glia::testing::outputs(g), {{x, xv}})[0], ref(std::vector<double>{1, 2, 3}), 1e-6));
  // The capture is read by reference: a new value shows in the next run.
  cap.copy_(tensor({-1.f, 0.f, 0.5f}));
  EXPECT_TRUE(all_close(s.run(glia::testing::outputs(g), {{x, xv}})[0], ref(std::vector<double>{-1, 0, 0.5}), 1e-6));
}

TEST(GraphFold, RespectsTheSizeLimit) {
  // Folded results stay in the graph, so results above 2^22 elements are computed at run time.
  Graph g;
  Tensor at_limit = ones({2048, 2048}), above = ones({2049, 2048});
  Tensor a, b;
  {
    GraphScope scope(g);
    a = at_limit * 2.0;
    b = above * 2.0;
  }
  set_outputs(g, {a, b});
  EXPECT_EQ(graph::fold_constants(g), 1);
  EXPECT_EQ(g.op_counts(), (Counts{{"mul", 1}}));
  for (auto& n : g.nodes()) {
    if (n->kind == NodeKind::Op) {
      EXPECT_EQ(n->outputs[0]->shape, (Shape{2049, 2048}));
    }
  }
}

TEST(GraphFold, DoesNotFoldAResultThatIsWrittenInPlaceLater) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  Tensor c1 = tensor({1.f, 2.f, 3.f}), c2 = tensor({10.f, 20.f, 30.f});
  Tensor y;
  {
    GraphScope scope(g);
    Tensor t = c1 + c2;
    t.add_(x);  // t must be a fresh buffer at every run
    y = t * 2.0;
  }
  set_outputs(g, {y});
  EXPECT_EQ(graph::fold_constants(g), 0);
  EXPECT_EQ(g.op_counts(), (Counts{{"add", 2}, {"mul", 1}}));
  // As a traced function runs it: every in-place update, in program order.
  graph::Plan plan(g, {g.value_of(x)}, {Shape{3}}, g.outputs(), {}, {.run_all_side_effects = true});
  Tensor xv = tensor({1.f, 1.f, 1.f});
  for (int run = 0; run < 3; ++run)
    EXPECT_TRUE(all_close(plan.run({xv})[0], std::vector<double>{24, 46, 68}, 0, 0)) << "run " << run;
}

TEST(GraphFold, NumbersFoldedWithNumbersKeepTheirDtypeRules) {
  // 2.0 * 3.0 is a number: folded, it must not widen the float32 tensor it multiplies.
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  Tensor y;
  {
    GraphScope scope(g);
    y = x * (scalar_tensor(2.0) * scalar_tensor(3.0));
  }
  set_outputs(g, {y});
  DType recorded = g.value_of(y)->dtype;
  EXPECT_EQ(graph::fold_constants(g), 1);
  Tensor xv = tensor({1.f, 2.f, 3.f});
  Tensor eager = xv * (scalar_tensor(2.0) * scalar_tensor(3.0));
  Tensor got = run_outputs(g, {{x, xv}})[0];
  EXPECT_EQ(got.dtype(), recorded);
  EXPECT_EQ(got.dtype(), eager.dtype());
  EXPECT_TRUE(all_close(got, eager, 0, 0));
}

TEST(GraphFold, FoldedViewsAreStoredContiguous) {
  // An expanded constant (the seed of a gradient) folded as a view would be copied by every
  // kernel that needs contiguous inputs, at every run.
  Graph g;
  Tensor x = g.placeholder(DType::f32, {4, 3}, "x", false);
  Tensor one = ones({});
  Tensor y;
  {
    GraphScope scope(g);
    y = exp(x) * expand(one, {4, 3}) + permute(ones({3, 4}) * 2.0, {1, 0});
  }
  set_outputs(g, {y});
  EXPECT_EQ(graph::fold_constants(g), 3);  // expand, ones * 2.0 and its permute
  for (auto& n : g.nodes())
    if (n->kind == NodeKind::Constant && n->name == "folded") {
      EXPECT_TRUE(n->tensor.is_contiguous()) << to_string(n->tensor.shape());
    }
  Tensor xv = f32({4, 3});
  EXPECT_TRUE(all_close(run_outputs(g, {{x, xv}})[0], map_naive(xv, [](double t) { return std::exp(t) + 2; }), 1e-6));
}

TEST(GraphFold, NumbersReadByFloat32ArithmeticBecomeFloat32Numbers) {
  // The kernels would convert the number to float32 at every run (into a new tensor); stored as
  // float32, it gives the same results without that.
  Graph g;
  Tensor x = g.placeholder(DType::f32, {5}, "x", false);
  Tensor x64 = g.placeholder(DType::f64, {5}, "x64", false);
  Tensor held = scalar_tensor(0.3);  // could be recorded again later, into float64 math
  Tensor a, b, c, d;
  {
    GraphScope scope(g);
    a = sum(x) / 7.0;
    b = 0.1 - x;
    c = x64 * 0.1;  // float64 arithmetic: the number stays float64
    d = x * held;
  }
  set_outputs(g, {a, b, c, d});
  graph::fold_constants(g);
  std::vector<DType> numbers;
  for (auto& n : g.nodes())
    if (n->kind == NodeKind::Constant) numbers.push_back(n->tensor.dtype());
  EXPECT_EQ(numbers, (std::vector<DType>{DType::f32, DType::f32, DType::f64, DType::f64}));
  for (auto& n : g.nodes())
    if (n->kind == NodeKind::Constant) {
      EXPECT_TRUE(n->tensor.impl()->wrapped_number);
      EXPECT_EQ(n->outputs[0]->dtype, n->tensor.dtype());
    }
  Tensor xv = f32({5}), xv64 = uniform({5});
  auto r = run_outputs(g, {{x, xv}, {x64, xv64}});
  EXPECT_EQ(r[0].dtype(), DType::f32);
  EXPECT_EQ(r[1].dtype(), DType::f32);
  EXPECT_EQ(r[2].dtype(), DType::f64);
  EXPECT_TRUE(all_close(r[0], sum(xv) / 7.0, 0, 0));
  EXPECT_TRUE(all_close(r[1], 0.1 - xv, 0, 0));
  EXPECT_TRUE(all_close(r[2], xv64 * 0.1, 0, 0));
  EXPECT_TRUE(all_close(r[3], xv * held, 0, 0));
}

// --- common-subexpression elimination

TEST(GraphCse, MergesDuplicateCalls) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {4, 5}, "x", false);
  Tensor y;
  {
    GraphScope scope(g);
    y = exp(x) + exp(x);
  }
  set_outputs(g, {y});
  EXPECT_EQ(count(g, "exp"), 2);
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 1);
  EXPECT_EQ(g.op_counts(), (Counts{{"add", 1}, {"exp", 1}}));
  Tensor xv = f32({4, 5});
  EXPECT_TRUE(
      all_close(run_outputs(g, {{x, xv}})[0], map_naive(xv, [](double t) { return 2 * std::exp(t); }), 1e-6, 1e-7));
}

TEST(GraphCse, MergesCommutativeCallsWithSwappedInputs) {
  Tensor w = f32({4, 5});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {4, 5}, "x", false);
  Tensor y;
  {
    GraphScope scope(g);
    // x * w and w * x merge; x - w and w - x do not.
    y = (x * w) / (w * x) + (x - w) * (w - x) + maximum(x, w) - maximum(w, x);
  }
  set_outputs(g, {y});
  EXPECT_EQ(g.op_counts(), (Counts{{"add", 2}, {"div", 1}, {"maximum", 2}, {"mul", 3}, {"sub", 3}}));
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 2);
  EXPECT_EQ(g.op_counts(), (Counts{{"add", 2}, {"div", 1}, {"maximum", 1}, {"mul", 2}, {"sub", 3}}));
  Tensor xv = f32({4, 5}, 0.5, 1);
  std::vector<double> xs = values(xv), ws = values(w), want;
  for (size_t i = 0; i < xs.size(); ++i) want.push_back(1.0 - (xs[i] - ws[i]) * (xs[i] - ws[i]));
  EXPECT_TRUE(all_close(run_outputs(g, {{x, xv}})[0], want, 1e-5, 1e-6));
}

TEST(GraphCse, DoesNotMergeCallsWithDifferentAttributes) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {4, 5}, "x", false);
  Tensor a, b, c, d;
  {
    GraphScope scope(g);
    a = sum(x, {0});
    b = sum(x, {1});
    c = leaky_relu(x, 0.1);
    d = leaky_relu(x, 0.2);
  }
  set_outputs(g, {a, b, c, d});
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 0);
  EXPECT_EQ(num_ops(g), 4);
}

TEST(GraphCse, DoesNotMergeAcrossAnInPlaceWrite) {
  Graph g;
  Tensor v = g.variable(tensor({1.f, 2.f}), "v");
  Tensor r1, r2, upd;
  {
    GraphScope scope(g);
    r1 = v * 2.0;
    upd = graph::assign_add(v, tensor({1.f, 1.f}));
    r2 = v * 2.0;  // reads v after the update
  }
  set_outputs(g, {r1, r2});
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 0);
  EXPECT_EQ(count(g, "mul"), 2);
  auto r = run_outputs(g, {}, {upd});
  EXPECT_TRUE(all_close(r[0], std::vector<double>{2, 4}, 0, 0));
  EXPECT_TRUE(all_close(r[1], std::vector<double>{4, 6}, 0, 0));
}

TEST(GraphCse, MergesAgainWhenTheWriteIsNotInBetween) {
  Graph g;
  Tensor v = g.variable(tensor({1.f, 2.f}), "v");
  Tensor r1, r2, upd;
  {
    GraphScope scope(g);
    r1 = v * 2.0;
    r2 = v * 2.0;
    upd = graph::assign_add(v, tensor({1.f, 1.f}));
  }
  set_outputs(g, {r1, r2});
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 1);
  EXPECT_EQ(count(g, "mul"), 1);
}

TEST(GraphCse, DoesNotMergeFreshResultsThatAreWrittenLater) {
  // Two clones are two buffers: merged, the write into one would show in the other.
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  Tensor a, b;
  {
    GraphScope scope(g);
    a = clone(x);
    b = clone(x);
    a.add_(1.0);
  }
  set_outputs(g, {a, b});
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 0);
  EXPECT_EQ(count(g, "clone"), 2);
  graph::Plan plan(g, {g.value_of(x)}, {Shape{3}}, g.outputs(), {}, {.run_all_side_effects = true});
  auto r = plan.run({tensor({1.f, 2.f, 3.f})});
  EXPECT_TRUE(all_close(r[0], std::vector<double>{2, 3, 4}, 0, 0));
  EXPECT_TRUE(all_close(r[1], std::vector<double>{1, 2, 3}, 0, 0));
}

TEST(GraphCse, DoesNotMergeRandomOps) {
  Graph g;
  Tensor y;
  {
    GraphScope scope(g);
    y = rand({16}) - rand({16});
  }
  set_outputs(g, {y});
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 0);
  EXPECT_EQ(count(g, "random_uniform"), 2);
  Tensor r = run_outputs(g)[0];
  double nonzero = 0;
  for (double t : values(r)) nonzero += t != 0;
  EXPECT_GT(nonzero, 0);
}

TEST(GraphCse, MergesEqualSmallConstantsAndTheCallsThatUseThem) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  Tensor a, b, c;
  {
    GraphScope scope(g);
    a = x * 2.0;  // each 2.0 is a constant node of its own
    b = x * 2.0;
    c = x * 3.0;  // a different number: not merged
  }
  set_outputs(g, {a, b, c});
  EXPECT_EQ(count_kind(g, NodeKind::Constant), 3);
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 1);
  EXPECT_EQ(count(g, "mul"), 2);
  EXPECT_EQ(count_kind(g, NodeKind::Constant), 2);
  Tensor xv = tensor({1.f, -2.f, 0.5f});
  auto r = run_outputs(g, {{x, xv}});
  EXPECT_TRUE(all_close(r[0], std::vector<double>{2, -4, 1}, 0, 0));
  EXPECT_TRUE(all_close(r[1], std::vector<double>{2, -4, 1}, 0, 0));
  EXPECT_TRUE(all_close(r[2], std::vector<double>{3, -6, 1.5}, 0, 0));
}

TEST(GraphCse, ConstantsOfDifferentDtypeOrKindStaySeparate) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  Tensor a, b, c;
  {
    GraphScope scope(g);
    a = x * 2.0;                                        // a number (float64, wrapped)
    b = x * scalar_tensor(2.0, {});                     // a float32 0-d tensor
    c = x * scalar_tensor(2.0, {.dtype = DType::f64});  // a float64 0-d tensor: widens
  }
  set_outputs(g, {a, b, c});
  EXPECT_EQ(graph::eliminate_common_subexpressions(g), 0);
  EXPECT_EQ(count(g, "mul"), 3);
}

// --- algebraic simplification

TEST(GraphSimplify, RemovesArithmeticIdentities) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {4, 5}, "x", false);
  Tensor c_ones = ones({4, 5}), c_zeros = zeros({5});
  std::vector<Tensor> ys;
  {
    GraphScope scope(g);
    Tensor e = exp(x);
    ys = {e * 1.0, 1.0 * e, e + 0.0, 0.0 + e, e - 0.0, e / 1.0, e * c_ones, e + c_zeros};
  }
  set_outputs(g, ys);
  EXPECT_EQ(graph::simplify_algebra(g), 8);
  graph::eliminate_dead_code(g);
  EXPECT_EQ(g.op_counts(), (Counts{{"exp", 1}}));
  Tensor xv = f32({4, 5});
  Tensor want = map_naive(xv, [](double t) { return std::exp(t); });
  for (const Tensor& r : run_outputs(g, {{x, xv}})) EXPECT_TRUE(all_close(r, want, 1e-6, 1e-7));
}

TEST(GraphSimplify, KeepsOpsThatChangeShapeDtypeOrValue) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {4, 5}, "x", false);
  Tensor big_ones = ones({3, 4, 5}), ones64 = ones({4, 5}, {.dtype = DType::f64});
  std::vector<Tensor> ys;
  {
    GraphScope scope(g);
    Tensor e = exp(x);
    ys = {e * big_ones,                              // broadcasts to [3, 4, 5]
          e * ones64,                                // float64
          0.0 - e,      1.0 / e, e * 2.0, e * 0.0};  // NaN * 0 and inf * 0 are NaN: not 0, not e
  }
  set_outputs(g, ys);
  Counts before = g.op_counts();
  EXPECT_EQ(graph::simplify_algebra(g), 0);
  EXPECT_EQ(g.op_counts(), before);
  Tensor xv = f32({4, 5});
  auto r = run_outputs(g, {{x, xv}});
  EXPECT_EQ(r[0].shape(), (Shape{3, 4, 5}));
  EXPECT_EQ(r[1].dtype(), DType::f64);
}

TEST(GraphSimplify, RemovesACastToTheSameDtype) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  const OpDef& cast_op = OpRegistry::instance().get("cast");
  Tensor same, wider;
  {
    GraphScope scope(g);
    Tensor e = exp(x);
    // cast() itself returns its input for the same dtype; traced code can still hold the op.
    same = call(cast_op, {e}, {{"dtype", DType::f32}});
    wider = call(cast_op, {e}, {{"dtype", DType::f64}});
  }
  set_outputs(g, {same, wider});
  EXPECT_EQ(count(g, "cast"), 2);
  EXPECT_EQ(graph::simplify_algebra(g), 1);
  graph::eliminate_dead_code(g);
  EXPECT_EQ(count(g, "cast"), 1);
  Tensor xv = tensor({0.f, 1.f, -1.f});
  auto r = run_outputs(g, {{x, xv}});
  EXPECT_EQ(r[0].dtype(), DType::f32);
  EXPECT_EQ(r[1].dtype(), DType::f64);
  EXPECT_TRUE(all_close(r[0], map_naive(xv, [](double t) { return std::exp(t); }), 1e-6));
}

TEST(GraphSimplify, PermuteOfPermute) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {2, 3, 4}, "x", false);
  Tensor undo, composed, ident;
  {
    GraphScope scope(g);
    Tensor e = exp(x);
    undo = permute(permute(e, {1, 0, 2}), {1, 0, 2}) * 3.0;      // identity: both go
    composed = permute(permute(e, {1, 2, 0}), {1, 2, 0}) * 3.0;  // one permute {2, 0, 1}
    ident = permute(e, {0, 1, 2}) * 3.0;                         // identity: goes
  }
  set_outputs(g, {undo, composed, ident});
  EXPECT_EQ(count(g, "permute"), 5);
  EXPECT_EQ(graph::simplify_algebra(g), 3);
  graph::eliminate_dead_code(g);
  EXPECT_EQ(count(g, "permute"), 1);
  for (auto& n : g.nodes())
    if (n->kind == NodeKind::Op && n->op->name() == "permute") {
      EXPECT_EQ(n->attrs.get<std::vector<int64_t>>("dims"), (std::vector<int64_t>{2, 0, 1}));
    }

  Tensor xv = f32({2, 3, 4});
  auto r = run_outputs(g, {{x, xv}});
  Tensor e3 = map_naive(xv, [](double t) { return 3 * std::exp(t); });
  EXPECT_TRUE(all_close(r[0], e3, 1e-6, 1e-7));
  EXPECT_TRUE(all_close(r[2], e3, 1e-6, 1e-7));
  ASSERT_EQ(r[1].shape(), (Shape{4, 2, 3}));
  glia::testing::for_each_index(r[1].shape(), [&](const std::vector<int64_t>& i) {
    EXPECT_NEAR(r[1].at<double>({i[0], i[1], i[2]}), e3.at<double>({i[1], i[2], i[0]}), 1e-5);
  });
}

TEST(GraphSimplify, ReshapeOfReshape) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {2, 3, 4}, "x", false);
  Tensor collapsed, undone;
  {
    GraphScope scope(g);
    Tensor e = exp(x);
    collapsed = reshape(reshape(e, {24}), {4, 6}) * 3.0;    // one reshape of e
    undone = reshape(reshape(e, {6, 4}), {2, 3, 4}) * 3.0;  // back to e's shape: none
  }
  set_outputs(g, {collapsed, undone});
  EXPECT_EQ(count(g, "reshape"), 4);
  EXPECT_EQ(graph::simplify_algebra(g), 2);
  graph::eliminate_dead_code(g);
  EXPECT_EQ(count(g, "reshape"), 1);
  for (auto& n : g.nodes())
    if (n->kind == NodeKind::Op && n->op->name() == "reshape") {
      EXPECT_EQ(n->inputs[0]->producer->op->name(), "exp");
    }

  Tensor xv = f32({2, 3, 4});
  auto r = run_outputs(g, {{x, xv}});
  Tensor e3 = map_naive(xv, [](double t) { return 3 * std::exp(t); });
  EXPECT_TRUE(all_close(r[0], e3.reshape({4, 6}), 1e-6, 1e-7));
  EXPECT_TRUE(all_close(r[1], e3, 1e-6, 1e-7));
}

TEST(GraphSimplify, KeepsAnIdentityOverAValueUpdatedLater) {
  // y = v * 1 must be v's value before the update, not after.
  Graph g;
  Tensor v = g.variable(tensor({1.f, 2.f}), "v");
  Tensor y, upd;
  {
    GraphScope scope(g);
    y = v * 1.0;
    upd = graph::assign_add(v, tensor({10.f, 10.f}));
  }
  set_outputs(g, {y});
  EXPECT_EQ(graph::simplify_algebra(g), 0);
  EXPECT_TRUE(all_close(run_outputs(g, {}, {upd})[0], std::vector<double>{1, 2}, 0, 0));
}

TEST(GraphSimplify, KeepsAnIdentityWhoseResultIsWrittenInPlace) {
  // y = x * 1 is a new buffer; turned into x, the write into y would change the caller's feed.
  Graph g;
  Tensor x = g.placeholder(DType::f32, {3}, "x", false);
  Tensor y;
  {
    GraphScope scope(g);
    y = x * 1.0;
    y.add_(5.0);
  }
  set_outputs(g, {y});
  EXPECT_EQ(graph::simplify_algebra(g), 0);
  graph::Plan plan(g, {g.value_of(x)}, {Shape{3}}, g.outputs(), {}, {.run_all_side_effects = true});
  Tensor xv = tensor({1.f, 2.f, 3.f});
  EXPECT_TRUE(all_close(plan.run({xv})[0], std::vector<double>{6, 7, 8}, 0, 0));
  EXPECT_TRUE(all_close(xv, std::vector<double>{1, 2, 3}, 0, 0));
}

// --- fusion

TEST(GraphFusion, FusesAnElementwiseChainIntoOneNode) {
  Tensor b = f32({16});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {8, 16}, "x", false);
  Tensor y;
  {
    GraphScope scope(g);
    y = relu(sigmoid(x) * x + b) / 3.0;
  }
  set_outputs(g, {y});
  EXPECT_EQ(g.op_counts(), (Counts{{"add", 1}, {"div", 1}, {"mul", 1}, {"relu", 1}, {"sigmoid", 1}}));
  EXPECT_EQ(graph::fuse_elementwise(g), 4);
  EXPECT_EQ(g.op_counts(), (Counts{{"fused_elementwise", 1}}));

  Tensor xv = f32({8, 16}, -3, 3);
  Tensor got = run_outputs(g, {{x, xv}})[0];
  std::vector<double> xs = values(xv), bs = values(b), want;
  for (size_t i = 0; i < xs.size(); ++i) {
    double t = xs[i] / (1 + std::exp(-xs[i])) + bs[i % 16];
    want.push_back(std::max(t, 0.0) / 3);
  }
  EXPECT_TRUE(all_close(got, want, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(got, relu(sigmoid(xv) * xv + b) / 3.0, 1e-6, 1e-7));
}

TEST(GraphFusion, ALongChainOfUnaryAndBinaryOps) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {33, 17}, "x", false);  // not a multiple of any block
  Tensor z = g.placeholder(DType::f32, {33, 17}, "z", false);
  Tensor y;
  auto chain = [](const Tensor& a, const Tensor& c) {
    return tanh(a * c) - square(a) + gelu(c, true) * elu(a) + leaky_relu(c, 0.2) * abs(a) + softplus(a - c);
  };
  {
    GraphScope scope(g);
    y = chain(x, z);
  }
  set_outputs(g, {y});
  int before = num_ops(g);
  EXPECT_EQ(graph::fuse_elementwise(g), before - 1);
  EXPECT_EQ(g.op_counts(), (Counts{{"fused_elementwise", 1}}));
  Tensor xv = f32({33, 17}, -2, 2), zv = f32({33, 17}, -2, 2);
  EXPECT_TRUE(all_close(run_outputs(g, {{x, xv}, {z, zv}})[0], chain(xv, zv), 1e-5, 1e-6));
}

TEST(GraphFusion, DoesNotSwallowAValueReadOutsideTheChain) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {6, 7}, "x", false);
  Tensor c, s;
  {
    GraphScope scope(g);
    Tensor a = exp(x);
    c = sin(a * 2.0);
    s = sum(a);  // a is read by a reduction too
  }
  set_outputs(g, {c, s});
  EXPECT_EQ(graph::fuse_elementwise(g), 1);  // mul into sin; exp stays
  EXPECT_EQ(g.op_counts(), (Counts{{"exp", 1}, {"fused_elementwise", 1}, {"sum", 1}}));
  Tensor xv = f32({6, 7});
  auto r = run_outputs(g, {{x, xv}});
  EXPECT_TRUE(all_close(r[0], map_naive(xv, [](double t) { return std::sin(2 * std::exp(t)); }), 1e-5, 1e-6));
  double total = 0;
  for (double t : values(xv)) total += std::exp(t);
  EXPECT_NEAR(r[1].item<double>(), total, 1e-4);
}

TEST(GraphFusion, DoesNotSwallowAFetchedValue) {
  Graph g;
  Tensor x = g.placeholder(DType::f32, {6, 7}, "x", false);
  Tensor a, c;
  {
    GraphScope scope(g);
    a = exp(x);
    c = sin(a * 2.0);
  }
  set_outputs(g, {c, a});
  EXPECT_EQ(graph::fuse_elementwise(g), 1);
  EXPECT_EQ(g.op_counts(), (Counts{{"exp", 1}, {"fused_elementwise", 1}}));
  Tensor xv = f32({6, 7});
  auto r = run_outputs(g, {{x, xv}});
  EXPECT_TRUE(all_close(r[0], map_naive(xv, [](double t) { return std::sin(2 * std::exp(t)); }), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(r[1], map_naive(xv, [](double t) { return std::exp(t); }), 1e-6, 1e-7));
}

TEST(GraphFusion, MatmulBiasActivation) {
  Tensor w = f32({4, 3}), b = f32({3});
  Tensor xv = f32({5, 4}, -2, 2);
  std::vector<double> pre = values(matmul_naive(xv, w)), bs = values(b);
  for (size_t i = 0; i < pre.size(); ++i) pre[i] += bs[i % 3];

  struct Case {
    std::string name;
    std::function<Tensor(const Tensor&)> act;
    std::function<double(double)> ref;
  };
  std::vector<Case> cases{
      {"relu", [](const Tensor& t) { return relu(t); }, [](double t) { return std::max(t, 0.0); }},
      {"gelu", [](const Tensor& t) { return gelu(t); },
       [](double t) { return 0.5 * t * (1 + std::erf(t / std::sqrt(2.0))); }},
      {"gelu_tanh", [](const Tensor& t) { return gelu(t, true); },
       [](double t) {
         return 0.5 * t * (1 + std::tanh(std::sqrt(2 / 3.141592653589793) * (t + 0.044715 * t * t * t)));
       }},
      {"tanh", [](const Tensor& t) { return tanh(t); }, [](double t) { return std::tanh(t); }},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }, [](double t) { return 1 / (1 + std::exp(-t)); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Graph g;
    Tensor x = g.placeholder(DType::f32, {5, 4}, "x", false);
    Tensor y;
    {
      GraphScope scope(g);
      y = c.act(matmul(x, w) + b);
    }
    set_outputs(g, {y});
    EXPECT_EQ(graph::fuse_elementwise(g), 2);
    EXPECT_EQ(g.op_counts(), (Counts{{"matmul_fused", 1}}));
    std::vector<double> want;
    for (double t : pre) want.push_back(c.ref(t));
    Tensor got = run_outputs(g, {{x, xv}})[0];
    EXPECT_TRUE(all_close(got, want, 1e-5, 1e-5));
    EXPECT_TRUE(all_close(got, c.act(matmul(xv, w) + b), 1e-5, 1e-6));
  }
}

TEST(GraphFusion, MatmulWithBiasOnlyOrActivationOnly) {
  Tensor w = f32({4, 3}), b = f32({1, 3});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {5, 4}, "x", false);
  Tensor y1, y2;
  {
    GraphScope scope(g);
    y1 = b + matmul(x, w);  // the bias on the left, as [1, N]
    y2 = relu(matmul(x, w));
  }
  set_outputs(g, {y1, y2});
  EXPECT_EQ(graph::fuse_elementwise(g), 2);
  EXPECT_EQ(g.op_counts(), (Counts{{"matmul_fused", 2}}));
  Tensor xv = f32({5, 4});
  auto r = run_outputs(g, {{x, xv}});
  EXPECT_TRUE(all_close(r[0], matmul(xv, w) + b, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(r[1], relu(matmul(xv, w)), 1e-5, 1e-6));
}

TEST(GraphFusion, MatmulWhoseResultIsFetchedIsNotFused) {
  Tensor w = f32({4, 3}), b = f32({3});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {5, 4}, "x", false);
  Tensor m, y;
  {
    GraphScope scope(g);
    m = matmul(x, w);
    y = relu(m + b);
  }
  set_outputs(g, {y, m});
  graph::fuse_elementwise(g);
  EXPECT_EQ(count(g, "matmul"), 1);
  EXPECT_EQ(count(g, "matmul_fused"), 0);
  EXPECT_EQ(count(g, "fused_elementwise"), 1);  // add and relu still fuse with each other
  Tensor xv = f32({5, 4});
  auto r = run_outputs(g, {{x, xv}});
  EXPECT_TRUE(all_close(r[0], relu(matmul(xv, w) + b), 1e-6, 1e-7));
  EXPECT_TRUE(all_close(r[1], matmul(xv, w), 0, 0));
}

TEST(GraphFusion, ConvBiasRelu) {
  Tensor w = f32({3, 3, 3, 4}), b = f32({4});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {2, 6, 6, 3}, "x", false);
  Tensor y1, y2;
  {
    GraphScope scope(g);
    y1 = relu(conv2d(x, w, b, {.padding = Padding2d::same()}));
    y2 = relu(conv2d(x, w));
  }
  set_outputs(g, {y1, y2});
  EXPECT_EQ(g.op_counts(), (Counts{{"conv2d", 1}, {"conv2d_bias", 1}, {"relu", 2}}));
  EXPECT_EQ(graph::fuse_elementwise(g), 2);
  EXPECT_EQ(g.op_counts(), (Counts{{"conv2d_fused", 2}}));
  Tensor xv = f32({2, 6, 6, 3});
  auto r = run_outputs(g, {{x, xv}});
  EXPECT_TRUE(all_close(r[0], relu(conv2d(xv, w, b, {.padding = Padding2d::same()})), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(r[1], relu(conv2d(xv, w)), 1e-5, 1e-6));
  // Against a naive convolution too (valid padding, no bias).
  ASSERT_EQ(r[1].shape(), (Shape{2, 4, 4, 4}));
  glia::testing::for_each_index(r[1].shape(), [&](const std::vector<int64_t>& i) {
    double s = 0;
    for (int64_t kh = 0; kh < 3; ++kh)
      for (int64_t kw = 0; kw < 3; ++kw)
        for (int64_t ci = 0; ci < 3; ++ci)
          s += xv.at<double>({i[0], i[1] + kh, i[2] + kw, ci}) * w.at<double>({kh, kw, ci, i[3]});
    EXPECT_NEAR(r[1].at<double>({i[0], i[1], i[2], i[3]}), std::max(s, 0.0), 1e-5);
  });
}

TEST(GraphFusion, ConvWhoseResultIsReadElsewhereIsNotFused) {
  Tensor w = f32({3, 3, 3, 4});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {1, 5, 5, 3}, "x", false);
  Tensor y, s;
  {
    GraphScope scope(g);
    Tensor c = conv2d(x, w);
    y = relu(c);
    s = sum(c);
  }
  set_outputs(g, {y, s});
  graph::fuse_elementwise(g);
  EXPECT_EQ(count(g, "conv2d_fused"), 0);
  EXPECT_EQ(count(g, "conv2d"), 1);
  EXPECT_EQ(count(g, "relu"), 1);
}

TEST(GraphFusion, NanPropagatesThroughFusedRelu) {
  // relu(NaN) is NaN in the eager op; fused kernels must agree (a NaN loss has to show).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor w = f32({4, 3}), b = f32({3}), cw = f32({1, 1, 2, 3});
  Tensor xv = f32({5, 4});
  xv.select(0, 1).select(0, 2).fill_(nan);
  Tensor iv = f32({1, 3, 3, 2});
  iv.select(1, 1).select(1, 1).select(1, 0).fill_(nan);  // one pixel
  Tensor ev = f32({4, 8});
  ev.select(0, 3).select(0, 5).fill_(nan);

  Graph g;
  Tensor x = g.placeholder(DType::f32, {5, 4}, "x", false);
  Tensor im = g.placeholder(DType::f32, {1, 3, 3, 2}, "im", false);
  Tensor e = g.placeholder(DType::f32, {4, 8}, "e", false);
  Tensor y1, y2, y3;
  {
    GraphScope scope(g);
    y1 = relu(matmul(x, w) + b);
    y2 = relu(conv2d(im, cw));
    y3 = relu(e * 2.0 + 1.0);
  }
  set_outputs(g, {y1, y2, y3});
  graph::fuse_elementwise(g);
  EXPECT_EQ(g.op_counts(), (Counts{{"conv2d_fused", 1}, {"fused_elementwise", 1}, {"matmul_fused", 1}}));
  auto r = run_outputs(g, {{x, xv}, {im, iv}, {e, ev}});
  Tensor eager1 = relu(matmul(xv, w) + b), eager2 = relu(conv2d(iv, cw)), eager3 = relu(ev * 2.0 + 1.0);
  ASSERT_TRUE(glia::testing::has_nan(eager1));
  ASSERT_TRUE(glia::testing::has_nan(eager2));
  ASSERT_TRUE(glia::testing::has_nan(eager3));
  EXPECT_TRUE(all_close(r[0], eager1, 1e-5, 1e-6));  // NaNs must match too
  EXPECT_TRUE(all_close(r[1], eager2, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(r[2], eager3, 0, 0));
}

// --- the pipeline

/// A two-layer MLP training step as an explicit graph: returns {loss, updated variables...}.
struct MlpStep {
  Graph g;
  Tensor x, y;
  std::vector<Tensor> vars;
  explicit MlpStep(const std::vector<Tensor>& init) {
    x = g.placeholder(DType::f32, {8, 4}, "x");
    y = g.placeholder(DType::f32, {8, 2}, "y");
    const char* names[] = {"w1", "b1", "w2", "b2"};
    for (size_t i = 0; i < init.size(); ++i) vars.push_back(g.variable(init[i], names[i]));
    Tensor h = relu(matmul(x, vars[0]) + vars[1]);
    Tensor out = matmul(h, vars[2]) + vars[3];
    Tensor loss = mean(square(out - y));
    std::vector<Tensor> gs = graph::gradients({loss}, vars);
    std::vector<Tensor> outs{loss};
    for (size_t i = 0; i < vars.size(); ++i) outs.push_back(graph::assign_sub(vars[i], gs[i] * 0.1));
    set_outputs(g, outs);
  }
};

TEST(GraphOptimize, MlpTrainingStep) {
  std::vector<Tensor> init{f32({4, 16}), f32({16}), f32({16, 2}), f32({2})};
  MlpStep plain(init), opt(init);
  int ops_before = num_ops(opt.g);
  graph::PassStats st = graph::optimize(opt.g);
  EXPECT_EQ(count(opt.g, "matmul_fused"), 2) << "the two forward layers";
  EXPECT_GE(st.fused, 3);   // at least both bias adds and the relu
  EXPECT_GE(st.folded, 1);  // the gradient's seed and what reads only it
  EXPECT_GE(st.dead, 1);
  EXPECT_LT(num_ops(opt.g), ops_before);
  EXPECT_EQ(ops_before - num_ops(opt.g), st.dead + st.merged + st.folded + st.fused)
      << "each removed op is counted once: dead " << st.dead << ", merged " << st.merged << ", folded " << st.folded
      << ", fused " << st.fused << ", simplified " << st.simplified;
  EXPECT_EQ(count_inplace(opt.g), 4);  // the four updates survive
  // A second optimize finds nothing more.
  graph::PassStats again = graph::optimize(opt.g);
  EXPECT_EQ(again.dead + again.merged + again.folded + again.fused + again.simplified, 0);

  graph::Session sp(plain.g), so(opt.g);
  for (int step = 0; step < 3; ++step) {
    Tensor xv = f32({8, 4}), yv = f32({8, 2});
    auto a = sp.run(glia::testing::outputs(plain.g), {{plain.x, xv}, {plain.y, yv}});
    auto b = so.run(glia::testing::outputs(opt.g), {{opt.x, xv}, {opt.y, yv}});
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TRUE(all_close(b[i], a[i], 1e-5, 1e-6)) << "step " << step << " output " << i;
  }
  for (size_t i = 0; i < init.size(); ++i)
    EXPECT_TRUE(all_close(so.value(opt.vars[i]), sp.value(plain.vars[i]), 1e-5, 1e-6));
}

TEST(GraphOptimize, FusedGraphWithAnUnknownBatchDim) {
  Tensor w1 = f32({4, 8}), b1 = f32({8}), w2 = f32({8, 3}), cw = f32({3, 3, 2, 4}), cb = f32({4});
  Graph g;
  Tensor x = g.placeholder(DType::f32, {-1, 4}, "x");
  Tensor im = g.placeholder(DType::f32, {-1, 5, 5, 2}, "im");
  auto net = [&](const Tensor& xi, const Tensor& imi) {
    return std::vector<Tensor>{sigmoid(matmul(tanh(matmul(xi, w1) + b1), w2)), relu(conv2d(imi, cw, cb))};
  };
  std::vector<Tensor> ys;
  {
    GraphScope scope(g);
    ys = net(x, im);
  }
  set_outputs(g, ys);
  graph::optimize(g);
  EXPECT_EQ(g.op_counts(), (Counts{{"conv2d_fused", 1}, {"matmul_fused", 2}}));
  graph::Session s(g);
  for (int64_t batch : {3, 1, 5}) {
    Tensor xv = f32({batch, 4}), iv = f32({batch, 5, 5, 2});
    auto r = s.run(glia::testing::outputs(g), {{x, xv}, {im, iv}});
    auto want = net(xv, iv);
    EXPECT_TRUE(all_close(r[0], want[0], 1e-5, 1e-6)) << "batch " << batch;
    EXPECT_TRUE(all_close(r[1], want[1], 1e-5, 1e-6)) << "batch " << batch;
  }
  EXPECT_EQ(s.num_plans(), 3u);
}

TEST(GraphOptimize, OptionsTurnPassesOff) {
  std::vector<Tensor> init{f32({4, 16}), f32({16}), f32({16, 2}), f32({2})};
  MlpStep s(init);
  int before = num_ops(s.g);
  graph::PassStats st = graph::optimize(
      s.g, {.dead_code = false, .constant_folding = false, .cse = false, .simplify = false, .fusion = false});
  EXPECT_EQ(st.dead + st.merged + st.folded + st.fused + st.simplified, 0);
  EXPECT_EQ(num_ops(s.g), before);
  st = graph::optimize(s.g, {.fusion = false});
  EXPECT_EQ(st.fused, 0);
  EXPECT_EQ(count(s.g, "matmul_fused") + count(s.g, "fused_elementwise"), 0);
}

}  // namespace
