// Softmax / log-softmax (fused kernel against naive loops and against the
// composite of primitives) and the losses: forward against double loops,
// gradients against finite differences, errors, and PyTorch agreement.
#include <cmath>
#include <limits>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// Softmax (or log-softmax) along `axis` of x, by plain loops in double; row-major result.
std::vector<double> ref_softmax(const Tensor& x, int64_t axis, bool log) {
  std::vector<int64_t> shape = vshape(x);
  std::vector<double> v = read(x);
  size_t nd = shape.size();
  auto a = static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(nd) : axis);
  int64_t inner = 1;
  for (size_t d = a + 1; d < nd; ++d) inner *= shape[d];
  int64_t R = shape[a], outer = static_cast<int64_t>(v.size()) / std::max<int64_t>(1, R * inner);
  std::vector<double> out(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      auto at = [&](int64_t r) { return static_cast<size_t>((o * R + r) * inner + j); };
      double m = -INFINITY;
      for (int64_t r = 0; r < R; ++r) m = std::max(m, v[at(r)]);
      double s = 0;
      for (int64_t r = 0; r < R; ++r) s += std::exp(v[at(r)] - m);
      for (int64_t r = 0; r < R; ++r) out[at(r)] = log ? v[at(r)] - m - std::log(s) : std::exp(v[at(r)] - m) / s;
    }
  return out;
}

/// The composite definition (the reference the fused kernel is tested against).
Tensor composite_softmax(const Tensor& x, int64_t axis) {
  Tensor e = exp(x - amax(x, {axis}, true));
  return e / sum(e, {axis}, true);
}
Tensor composite_log_softmax(const Tensor& x, int64_t axis) {
  Tensor s = x - amax(x, {axis}, true);
  return s - log(sum(exp(s), {axis}, true));
}

/// Per-sample cross-entropy of rows [N, C] (class axis last), in double.
std::vector<double> ref_ce_rows(const std::vector<double>& logits, int64_t N, int64_t C,
                                const std::vector<double>& target_probs, double eps) {
  std::vector<double> out(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    const double* x = logits.data() + n * C;
    double m = -INFINITY;
    for (int64_t c = 0; c < C; ++c) m = std::max(m, x[c]);
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += std::exp(x[c] - m);
    double lse = m + std::log(s), l = 0;
    for (int64_t c = 0; c < C; ++c) {
      double t = target_probs[static_cast<size_t>(n * C + c)] * (1 - eps) + eps / static_cast<double>(C);
      l -= t * (x[c] - lse);
    }
    out[static_cast<size_t>(n)] = l;
  }
  return out;
}

std::vector<double> one_hot_rows(const std::vector<double>& labels, int64_t C) {
  std::vector<double> t(labels.size() * static_cast<size_t>(C), 0.0);
  for (size_t n = 0; n < labels.size(); ++n) t[n * static_cast<size_t>(C) + static_cast<size_t>(labels[n])] = 1.0;
  return t;
}

double reduce(const std::vector<double>& v, const std::string& r) {
  double s = 0;
  for (double x : v) s += x;
  return r == "mean" ? s / static_cast<double>(v.size()) : s;
}

}  // namespace

// --- softmax

TEST(Softmax, MatchesNaiveLoopsOnEveryAxisAndLayout) {
  for (DType dt : {DType::f64, DType::f32}) {
    for (Layout layout : kLayouts) {
      for (int64_t axis : {0, 1, 2, -1}) {
        Tensor x = make_input({3, 17, 21}, layout, -3, 3, dt);
        double rtol = dt == DType::f64 ? 1e-12 : 2e-6, atol = dt == DType::f64 ? 1e-14 : 1e-7;
        EXPECT_TRUE(matches(softmax(x, axis), vshape(x), ref_softmax(x, axis, false), rtol, atol))
            << name(dt) << " " << layout_name(layout) << " axis " << axis;
        EXPECT_TRUE(matches(log_softmax(x, axis), vshape(x), ref_softmax(x, axis, true), rtol, 1e-6))
            << name(dt) << " " << layout_name(layout) << " axis " << axis;
      }
    }
  }
}

TEST(Softmax, StableForLargeValues) {
  // exp(1000) overflows in any float type: only a shifted computation gives finite results.
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t axis : {0, 1, -1}) {
      Tensor x = uniform({4, 6, 37}, -1000, 1000, dt);
      Tensor y = softmax(x, axis), l = log_softmax(x, axis);
      EXPECT_TRUE(matches(y, vshape(x), ref_softmax(x, axis, false), 1e-5, 1e-7)) << name(dt) << axis;
      EXPECT_TRUE(matches(l, vshape(x), ref_softmax(x, axis, true), 1e-6, 1e-4)) << name(dt) << axis;
    }
    Tensor big = tensor(std::vector<double>{1000, 1000, 999}, {3}).to(dt);
    double e = std::exp(-1.0);
    EXPECT_TRUE(all_close(softmax(big, 0), {1 / (2 + e), 1 / (2 + e), e / (2 + e)}, 1e-6, 1e-7));
  }
}

TEST(Softmax, LongRowsAndWideColumnsFloat32) {
  // Rows longer than a SIMD block, column blocks wider than one task, odd sizes for the tails.
  Tensor a = uniform({3, 5000}, -20, 20, DType::f32);
  EXPECT_TRUE(matches(softmax(a, 1), vshape(a), ref_softmax(a, 1, false), 1e-5, 1e-9));
  EXPECT_TRUE(matches(log_softmax(a, 1), vshape(a), ref_softmax(a, 1, true), 1e-5, 1e-5));
  Tensor b = uniform({2, 7, 600}, -20, 20, DType::f32);
  EXPECT_TRUE(matches(softmax(b, 1), vshape(b), ref_softmax(b, 1, false), 1e-5, 1e-9));
  EXPECT_TRUE(matches(log_softmax(b, 1), vshape(b), ref_softmax(b, 1, true), 1e-5, 1e-5));
}

TEST(Softmax, HalfTypesSizeOneAndEmpty) {
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor x = uniform({4, 9}, -4, 4, dt);
    EXPECT_TRUE(matches(softmax(x, -1), vshape(x), ref_softmax(x, -1, false), 1e-2, 1e-3)) << name(dt);
    EXPECT_EQ(softmax(x).dtype(), dt);
  }
  Tensor one = uniform({3, 1}, -1, 1);
  EXPECT_TRUE(all_close(softmax(one, 1), {1, 1, 1}));
  EXPECT_TRUE(all_close(log_softmax(one, 1), {0, 0, 0}));
  Tensor empty = uniform({0, 4});
  EXPECT_EQ(softmax(empty, 1).shape(), (Shape{0, 4}));
  EXPECT_EQ(softmax(uniform({3, 0}), 0).shape(), (Shape{3, 0}));
}

TEST(Softmax, NonFiniteInputsAsPyTorch) {
  float inf = std::numeric_limits<float>::infinity();
  Tensor x = tensor(std::vector<float>{-inf, 0.f, 1.f, NAN, 2.f, 3.f}, {2, 3});
  auto v = values(softmax(x, 1));
  EXPECT_EQ(v[0], 0.0);  // exp(-inf) = 0
  EXPECT_NEAR(v[2], std::exp(1.0) / (1 + std::exp(1.0)), 1e-6);
  for (int i = 3; i < 6; ++i) EXPECT_TRUE(std::isnan(v[static_cast<size_t>(i)]));  // NaN spreads over its row
}

TEST(Softmax, FusedKernelMatchesCompositeForwardAndGradient) {
  for (DType dt : {DType::f32, DType::f64}) {
    for (int64_t axis : {0, 1, 2}) {
      Tensor x0 = uniform({5, 6, 7}, -5, 5, dt);
      Tensor w = uniform({5, 6, 7}, -1, 1, dt);
      double tol = dt == DType::f32 ? 2e-6 : 1e-12;
      for (bool log : {false, true}) {
        Tensor x1 = x0.clone().requires_grad_(), x2 = x0.clone().requires_grad_();
        Tensor fused = log ? log_softmax(x1, axis) : softmax(x1, axis);
        Tensor comp = log ? composite_log_softmax(x2, axis) : composite_softmax(x2, axis);
        EXPECT_TRUE(all_close(fused, comp, tol, tol)) << log << axis;
        (fused * w).sum().backward();
        (comp * w).sum().backward();
        EXPECT_TRUE(all_close(x1.grad(), x2.grad(), 1e-5, tol * 10)) << log << axis;
      }
    }
  }
}

TEST(Softmax, Gradcheck) {
  for (int64_t axis : {0, 1, -1}) {
    Tensor x = uniform({3, 4, 5}, -2, 2).requires_grad_();
    EXPECT_TRUE(gradcheck([axis](const std::vector<Tensor>& in) { return softmax(in[0], axis); }, {x})) << axis;
    EXPECT_TRUE(gradcheck([axis](const std::vector<Tensor>& in) { return log_softmax(in[0], axis); }, {x})) << axis;
  }
  Tensor p = uniform({4, 3}, -2, 2).permute({1, 0}).requires_grad_();
  EXPECT_TRUE(gradgradcheck([](const std::vector<Tensor>& in) { return softmax(in[0], 1); }, {p}));
  EXPECT_TRUE(gradgradcheck([](const std::vector<Tensor>& in) { return log_softmax(in[0], 0); }, {p}));
}

TEST(Softmax, Errors) {
  std::string m = error_of<DTypeError>([] { softmax(tensor({1, 2, 3}), 0); });
  EXPECT_TRUE(contains(m, "softmax")) << m;
  m = error_of<ValueError>([] { log_softmax(uniform({2, 3}), 2); });
  EXPECT_TRUE(contains(m, "log_softmax")) << m;
}

// --- cross-entropy

TEST(CrossEntropy, IndicesMatchNaiveLoops) {
  int64_t N = 7, C = 5;
  for (DType dt : {DType::f64, DType::f32}) {
    for (DType it : {DType::i64, DType::i32}) {
      for (double eps : {0.0, 0.1}) {
        Tensor logits = uniform({N, C}, -4, 4, dt);
        Tensor target = randint(0, C, {N}).to(it);
        auto ref = ref_ce_rows(read(logits), N, C, one_hot_rows(read(target), C), eps);
        double tol = dt == DType::f64 ? 1e-12 : 1e-5;
        for (std::string r : {"mean", "sum", "none"}) {
          Tensor l = cross_entropy(logits, target, {.reduction = r, .label_smoothing = eps});
          if (r == "none")
            EXPECT_TRUE(matches(l, {N}, ref, tol, tol));
          else
            EXPECT_TRUE(matches(l, {}, {reduce(ref, r)}, tol, tol)) << r;
          EXPECT_EQ(l.dtype(), dt);
        }
      }
    }
  }
}

TEST(CrossEntropy, ClassAxisAnywhereAndHigherRank) {
  // [N, T, C] with the class axis last, and [N, C, T] with axis 1 (PyTorch's layout).
  int64_t N = 3, T = 4, C = 6;
  Tensor logits = uniform({N, T, C}, -3, 3);
  Tensor target = randint(0, C, {N, T});
  auto ref = ref_ce_rows(read(logits), N * T, C, one_hot_rows(read(target), C), 0.05);
  EXPECT_TRUE(matches(cross_entropy(logits, target, {.reduction = "none", .label_smoothing = 0.05}), {N, T}, ref, 1e-12,
                      1e-12));
  Tensor moved = logits.permute({0, 2, 1});  // [N, C, T], non-contiguous
  EXPECT_TRUE(matches(cross_entropy(moved, target, {.reduction = "none", .label_smoothing = 0.05, .axis = 1}), {N, T},
                      ref, 1e-12, 1e-12));
}

TEST(CrossEntropy, ProbabilityTargetsMatchNaiveLoops) {
  int64_t N = 6, C = 4;
  Tensor logits = uniform({N, C}, -3, 3);
  Tensor probs = softmax(uniform({N, C}, -2, 2), 1);
  for (double eps : {0.0, 0.2}) {
    auto ref = ref_ce_rows(read(logits), N, C, read(probs), eps);
    EXPECT_TRUE(
        matches(cross_entropy(logits, probs, {.reduction = "none", .label_smoothing = eps}), {N}, ref, 1e-12, 1e-12));
    EXPECT_TRUE(
        matches(cross_entropy(logits, probs, {.label_smoothing = eps}), {}, {reduce(ref, "mean")}, 1e-12, 1e-12));
  }
  // One-hot probabilities give the same loss as the indices.
  Tensor idx = randint(0, C, {N});
  EXPECT_TRUE(all_close(cross_entropy(logits, one_hot(idx, C, DType::f64), {.label_smoothing = 0.1}),
                        cross_entropy(logits, idx, {.label_smoothing = 0.1}), 1e-12, 1e-12));
}

TEST(CrossEntropy, SingleSampleWithZeroDimTarget) {
  Tensor logits = uniform({5}, -2, 2);
  Tensor target = tensor({3}).reshape({});
  auto ref = ref_ce_rows(read(logits), 1, 5, one_hot_rows({3.0}, 5), 0.0);
  EXPECT_TRUE(matches(cross_entropy(logits, target, {.reduction = "none"}), {}, ref, 1e-12, 1e-14));
  EXPECT_TRUE(matches(cross_entropy(logits, target), {}, ref, 1e-12, 1e-14));
}

TEST(CrossEntropy, StableForLargeLogits) {
  Tensor logits = tensor(std::vector<float>{1000.f, 0.f, -1000.f, 500.f, 600.f, 0.f}, {2, 3});
  Tensor target = tensor({2, 0});
  Tensor l = cross_entropy(logits, target, {.reduction = "none"});
  EXPECT_TRUE(all_close(l, {2000.0, 100.0}, 1e-6));
}

TEST(CrossEntropy, Gradcheck) {
  int64_t N = 4, C = 5;
  Tensor logits = uniform({N, C}, -2, 2).requires_grad_();
  Tensor idx = randint(0, C, {N});
  Tensor probs = softmax(uniform({N, C}), 1);
  for (double eps : {0.0, 0.15}) {
    for (std::string r : {"mean", "sum", "none"}) {
      EXPECT_TRUE(gradcheck(
          [&](const std::vector<Tensor>& in) {
            return cross_entropy(in[0], idx, {.reduction = r, .label_smoothing = eps});
          },
          {logits}))
          << r << eps;
    }
    Tensor p = probs.clone().requires_grad_();
    EXPECT_TRUE(
        gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], {.label_smoothing = eps}); },
                  {logits, p}))
        << eps;
  }
  Tensor l3 = uniform({2, C, 3}, -2, 2).requires_grad_();
  Tensor t3 = randint(0, C, {2, 3});
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t3, {.axis = 1}); }, {l3}));
}

TEST(CrossEntropy, SecondOrderGradients) {
  Tensor logits = uniform({3, 4}, -2, 2).requires_grad_();
  Tensor idx = randint(0, 4, {3});
  EXPECT_TRUE(gradgradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], idx); }, {logits}));
  EXPECT_TRUE(gradgradcheck(
      [&](const std::vector<Tensor>& in) {
        return cross_entropy(in[0], idx, {.reduction = "sum", .label_smoothing = 0.1});
      },
      {logits}));
  Tensor probs = softmax(uniform({3, 4}), 1);
  EXPECT_TRUE(gradgradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], probs); }, {logits}));
}

TEST(CrossEntropy, Errors) {
  Tensor logits = uniform({3, 4});
  std::string m = error_of<ValueError>([&] { cross_entropy(logits, tensor({0, 4, 1})); });
  EXPECT_TRUE(contains(m, "cross_entropy") && contains(m, "4 is out of range") && contains(m, "4 classes")) << m;
  m = error_of<ValueError>([&] { cross_entropy(logits, tensor({0, -1, 1})); });
  EXPECT_TRUE(contains(m, "-1")) << m;
  m = error_of<ShapeError>([&] { cross_entropy(logits, tensor({0, 1})); });
  EXPECT_TRUE(contains(m, "cross_entropy") && contains(m, "[3]")) << m;
  m = error_of<ShapeError>([&] { cross_entropy(logits, uniform({3, 5})); });
  EXPECT_TRUE(contains(m, "cross_entropy")) << m;
  m = error_of<DTypeError>([&] { cross_entropy(logits, tensor({0, 1, 1}).to(DType::u8)); });
  EXPECT_TRUE(contains(m, "cross_entropy") && contains(m, "uint8")) << m;
  m = error_of<DTypeError>([&] { cross_entropy(tensor({1, 2}), tensor({0})); });
  EXPECT_TRUE(contains(m, "cross_entropy")) << m;
  m = error_of<ValueError>([&] { cross_entropy(logits, tensor({0, 1, 1}), {.reduction = "avg"}); });
  EXPECT_TRUE(contains(m, "'avg'")) << m;
  m = error_of<ValueError>([&] { cross_entropy(logits, tensor({0, 1, 1}), {.label_smoothing = 1.5}); });
  EXPECT_TRUE(contains(m, "label_smoothing")) << m;
}

// --- nll

TEST(NllLoss, MatchesNaiveLoopsAndGradcheck) {
  int64_t N = 5, C = 3;
  Tensor lp = log_softmax(uniform({N, C}, -2, 2), 1);
  Tensor t = randint(0, C, {N});
  auto lpv = read(lp), tv = read(t);
  std::vector<double> ref;
  for (int64_t n = 0; n < N; ++n)
    ref.push_back(-lpv[static_cast<size_t>(n * C + static_cast<int64_t>(tv[static_cast<size_t>(n)]))]);
  EXPECT_TRUE(matches(nll_loss(lp, t, "none"), {N}, ref, 1e-15, 0));
  EXPECT_TRUE(matches(nll_loss(lp, t.to(DType::i32)), {}, {reduce(ref, "mean")}, 1e-14, 0));
  EXPECT_TRUE(matches(nll_loss(lp, t, "sum"), {}, {reduce(ref, "sum")}, 1e-14, 0));
  Tensor x = uniform({N, C}).requires_grad_();
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return nll_loss(in[0], t); }, {x}));
  // nll of log_softmax is cross-entropy.
  EXPECT_TRUE(all_close(nll_loss(log_softmax(x, 1), t), cross_entropy(x, t), 1e-12, 1e-12));
}

TEST(NllLoss, Errors) {
  std::string m = error_of<DTypeError>([] { nll_loss(uniform({2, 3}), uniform({2})); });
  EXPECT_TRUE(contains(m, "nll_loss") && contains(m, "int32 or int64")) << m;
  m = error_of<ValueError>([] { nll_loss(uniform({2, 3}), tensor({0, 3})); });
  EXPECT_TRUE(contains(m, "nll_loss") && contains(m, "3 is out of range for 3 classes")) << m;
  m = error_of<ShapeError>([] { nll_loss(uniform({2, 3}), tensor({0, 1, 2})); });
  EXPECT_TRUE(contains(m, "nll_loss")) << m;
}

// --- binary cross-entropy

TEST(BinaryCrossEntropy, MatchesNaiveLoopsWithClampedLog) {
  Tensor p = uniform({4, 5}, 0.01, 0.99);
  Tensor t = uniform({4, 5}, 0, 1);
  auto ref = ref_map({p, t}, {4, 5}, [](const std::vector<double>& a) {
    return -(a[1] * std::log(a[0]) + (1 - a[1]) * std::log(1 - a[0]));
  });
  EXPECT_TRUE(matches(binary_cross_entropy(p, t, "none"), {4, 5}, ref, 1e-12, 1e-14));
  EXPECT_TRUE(matches(binary_cross_entropy(p, t), {}, {reduce(ref, "mean")}, 1e-12, 1e-14));
  // p = 0 or 1 against the wrong target: the log is clamped at -100, and the gradient stays finite.
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor edge = tensor(std::vector<double>{0.0, 1.0, 0.0, 1.0}).to(dt).requires_grad_();
    Tensor et = tensor(std::vector<double>{1.0, 0.0, 0.0, 1.0}).to(dt);
    Tensor l = binary_cross_entropy(edge, et, "none");
    EXPECT_TRUE(all_close(l, {100, 100, 0, 0})) << name(dt);
    l.sum().backward();
    for (double g : values(edge.grad())) EXPECT_TRUE(std::isfinite(g)) << name(dt);
  }
}

TEST(BinaryCrossEntropy, Gradcheck) {
  Tensor p = uniform({3, 4}, 0.05, 0.95).requires_grad_();
  Tensor t = uniform({3, 4}, 0, 1).requires_grad_();
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return binary_cross_entropy(in[0], in[1]); }, {p, t}));
  EXPECT_TRUE(
      gradcheck([](const std::vector<Tensor>& in) { return binary_cross_entropy(in[0], in[1], "none"); }, {p, t}));
}

TEST(BinaryCrossEntropyWithLogits, MatchesNaiveLoopsAndIsStable) {
  Tensor x = uniform({5, 6}, -8, 8);
  Tensor t = uniform({5, 6}, 0, 1);
  auto ref = ref_map({x, t}, {5, 6}, [](const std::vector<double>& a) {
    double s = 1 / (1 + std::exp(-a[0]));
    return -(a[1] * std::log(s) + (1 - a[1]) * std::log(1 - s));
  });
  EXPECT_TRUE(matches(binary_cross_entropy_with_logits(x, t, "none"), {5, 6}, ref, 1e-10, 1e-12));
  EXPECT_TRUE(matches(binary_cross_entropy_with_logits(x, t, "sum"), {}, {reduce(ref, "sum")}, 1e-10, 1e-12));
  // Large logits: log(sigmoid) would overflow; the stable form gives |x| for the wrong target.
  Tensor big = tensor(std::vector<float>{100.f, -100.f, 100.f, -100.f});
  Tensor bt = tensor(std::vector<float>{0.f, 1.f, 1.f, 0.f});
  EXPECT_TRUE(all_close(binary_cross_entropy_with_logits(big, bt, "none"), {100, 100, 0, 0}, 1e-6, 1e-6));
  // At x = 0 exactly the gradient is sigmoid(0) - t.
  Tensor z = zeros({3}, {.dtype = DType::f64, .requires_grad = true});
  Tensor zt = tensor(std::vector<double>{0.0, 0.3, 1.0});
  binary_cross_entropy_with_logits(z, zt, "sum").backward();
  EXPECT_TRUE(all_close(z.grad(), {0.5, 0.2, -0.5}, 1e-12, 1e-15));
}

TEST(BinaryCrossEntropyWithLogits, GradcheckFirstAndSecondOrder) {
  Tensor x = uniform({3, 4}, -4, 4).requires_grad_();
  Tensor t = uniform({3, 4}, 0, 1).requires_grad_();
  auto f = [](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], in[1]); };
  EXPECT_TRUE(gradcheck(f, {x, t}));
  EXPECT_TRUE(gradgradcheck(f, {x, t}));
}

TEST(BinaryCrossEntropy, Errors) {
  std::string m = error_of<DTypeError>([] { binary_cross_entropy(uniform({3}, 0.1, 0.9), tensor({0, 1, 1})); });
  EXPECT_TRUE(contains(m, "binary_cross_entropy") && contains(m, "int64")) << m;
  m = error_of<DTypeError>([] { binary_cross_entropy_with_logits(uniform({3}), tensor({0, 1, 1})); });
  EXPECT_TRUE(contains(m, "binary_cross_entropy_with_logits")) << m;
  m = error_of<ShapeError>([] { binary_cross_entropy(uniform({3}, 0.1, 0.9), uniform({3, 1}, 0, 1)); });
  EXPECT_TRUE(contains(m, "binary_cross_entropy") && contains(m, "[3, 1]")) << m;
  m = error_of<ValueError>([] { binary_cross_entropy(tensor({0.5, 1.5}), tensor({0.0, 1.0})); });
  EXPECT_TRUE(contains(m, "[0, 1]")) << m;
}

// --- regression losses

TEST(RegressionLosses, MatchNaiveLoops) {
  Tensor p = make_input({4, 3}, Layout::Permuted, -2, 2);
  Tensor t = uniform({4, 3}, -2, 2);
  auto mse = ref_map({p, t}, {4, 3}, [](const std::vector<double>& a) { return (a[0] - a[1]) * (a[0] - a[1]); });
  auto l1 = ref_map({p, t}, {4, 3}, [](const std::vector<double>& a) { return std::abs(a[0] - a[1]); });
  double delta = 0.7;
  auto hub = ref_map({p, t}, {4, 3}, [&](const std::vector<double>& a) {
    double d = std::abs(a[0] - a[1]);
    return d <= delta ? 0.5 * d * d : delta * (d - 0.5 * delta);
  });
  for (std::string r : {"mean", "sum"}) {
    EXPECT_TRUE(matches(mse_loss(p, t, r), {}, {reduce(mse, r)}, 1e-12, 1e-14)) << r;
    EXPECT_TRUE(matches(l1_loss(p, t, r), {}, {reduce(l1, r)}, 1e-12, 1e-14)) << r;
    EXPECT_TRUE(matches(huber_loss(p, t, delta, r), {}, {reduce(hub, r)}, 1e-12, 1e-14)) << r;
  }
  EXPECT_TRUE(matches(mse_loss(p, t, "none"), {4, 3}, mse, 1e-12, 1e-14));
  EXPECT_TRUE(matches(l1_loss(p, t, "none"), {4, 3}, l1, 1e-12, 1e-14));
  EXPECT_TRUE(matches(huber_loss(p, t, delta, "none"), {4, 3}, hub, 1e-12, 1e-14));
  // Integer targets are converted to the prediction's dtype.
  Tensor pf = uniform({3}, -1, 1, DType::f32);
  EXPECT_EQ(mse_loss(pf, tensor({0, 1, 2})).dtype(), DType::f32);
}

TEST(RegressionLosses, Gradcheck) {
  // Differences kept away from the kinks: |p - t| in [0.3, 1.3] and away from delta = 1.6.
  Tensor t = uniform({3, 4}, -1, 1);
  Tensor p = (t + sign(uniform({3, 4})) * uniform({3, 4}, 0.3, 1.3)).detach().requires_grad_();
  Tensor tt = t.clone().requires_grad_();
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); }, {p, tt}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return l1_loss(in[0], in[1], "sum"); }, {p, tt}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return huber_loss(in[0], in[1], 0.8); }, {p, tt}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return huber_loss(in[0], in[1], 1.6, "none"); }, {p, tt}));
}

TEST(RegressionLosses, Errors) {
  std::string m = error_of<ShapeError>([] { mse_loss(uniform({3}), uniform({4})); });
  EXPECT_TRUE(contains(m, "mse_loss") && contains(m, "[4]")) << m;
  m = error_of<ShapeError>([] { l1_loss(uniform({3}), uniform({3, 1})); });
  EXPECT_TRUE(contains(m, "l1_loss")) << m;
  m = error_of<ValueError>([] { huber_loss(uniform({3}), uniform({3}), -1.0); });
  EXPECT_TRUE(contains(m, "huber_loss") && contains(m, "delta")) << m;
  m = error_of<DTypeError>([] { mse_loss(tensor({1, 2}), tensor({1, 2})); });
  EXPECT_TRUE(contains(m, "mse_loss")) << m;
  m = error_of<ValueError>([] { reduce_loss(uniform({3}), "max", "my_loss"); });
  EXPECT_TRUE(contains(m, "my_loss") && contains(m, "'max'")) << m;
}

// --- PyTorch agreement

TEST(CrossEntropy, MatchesPyTorchWithLabelSmoothing) {
  if (!have_torch()) GTEST_SKIP() << "PyTorch not available";
  std::string dir = temp_dir();
  Tensor logits = uniform({16, 10}, -5, 5, DType::f32);
  Tensor target = randint(0, 10, {16});
  save_npy(dir + "/logits.npy", logits);
  save_npy(dir + "/target.npy", target);
  std::string out;
  ASSERT_EQ(run_python(std::string(GLIA_SOURCE_DIR) + "/tests/python/torch_norm_loss.py", {"cross_entropy", dir}, &out),
            0)
      << out;
  for (double eps : {0.0, 0.1}) {
    std::string tag = eps == 0.0 ? "0" : "1";
    Tensor x = logits.clone().requires_grad_();
    Tensor l = cross_entropy(x, target, {.label_smoothing = eps});
    l.backward();
    EXPECT_TRUE(all_close(l.reshape({1}), load_npy(dir + "/loss" + tag + ".npy"), 1e-5, 1e-6)) << eps;
    EXPECT_TRUE(all_close(x.grad(), load_npy(dir + "/grad" + tag + ".npy"), 1e-4, 1e-7)) << eps;
  }
}
