// Batch and layer normalization: forward against double loops, the fused
// batch-norm kernels against the composite of primitives (forward, first and
// second order gradients), running statistics, errors and PyTorch agreement.
#include <cmath>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

struct BnRef {
  std::vector<double> y, mean, var;  // var is biased
};

/// Batch norm over the last axis by plain loops in double; gamma / beta may be empty (1 / 0).
BnRef ref_bn(const std::vector<double>& x, int64_t C, const std::vector<double>& gamma, const std::vector<double>& beta,
             double eps, const std::vector<double>* rm = nullptr, const std::vector<double>* rv = nullptr) {
  auto M = static_cast<int64_t>(x.size()) / C;
  BnRef r;
  r.mean.assign(static_cast<size_t>(C), 0.0);
  r.var.assign(static_cast<size_t>(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    auto cc = static_cast<size_t>(c);
    for (int64_t m = 0; m < M; ++m) r.mean[cc] += x[static_cast<size_t>(m * C + c)];
    r.mean[cc] /= static_cast<double>(M);
    for (int64_t m = 0; m < M; ++m) {
      double d = x[static_cast<size_t>(m * C + c)] - r.mean[cc];
      r.var[cc] += d * d;
    }
    r.var[cc] /= static_cast<double>(M);
  }
  r.y.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    size_t c = i % static_cast<size_t>(C);
    double mu = rm ? (*rm)[c] : r.mean[c], var = rv ? (*rv)[c] : r.var[c];
    double g = gamma.empty() ? 1.0 : gamma[c], b = beta.empty() ? 0.0 : beta[c];
    r.y[i] = (x[i] - mu) / std::sqrt(var + eps) * g + b;
  }
  return r;
}

/// Layer norm of rows of length H without scale and offset (eps 1e-5), in double.
std::vector<double> ref_ln_rows(const std::vector<double>& x, int64_t H) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / static_cast<size_t>(H); ++r) {
    const double* p = x.data() + r * static_cast<size_t>(H);
    double m = 0, v = 0;
    for (int64_t i = 0; i < H; ++i) m += p[i] / static_cast<double>(H);
    for (int64_t i = 0; i < H; ++i) v += (p[i] - m) * (p[i] - m) / static_cast<double>(H);
    for (int64_t i = 0; i < H; ++i)
      y[r * static_cast<size_t>(H) + static_cast<size_t>(i)] = (p[i] - m) / std::sqrt(v + 1e-5);
  }
  return y;
}

/// The composite batch-norm training forward (the reference for the fused ops).
Tensor composite_bn(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) dims.push_back(d);
  Tensor mu = mean(x, IntList(dims), true);
  Tensor var = mean(square(x - mu), IntList(dims), true);
  return (x - mu) * rsqrt(var + eps) * gamma + beta;
}

Tensor train_bn(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps = 1e-3) {
  return batch_norm(x, {}, {}, gamma, beta, {.training = true, .eps = eps});
}

}  // namespace

// --- batch norm

TEST(BatchNorm, TrainingForwardMatchesNaiveLoops) {
  for (DType dt : {DType::f64, DType::f32}) {
    for (Layout layout : kLayouts) {
      for (std::vector<int64_t> shape : {std::vector<int64_t>{6, 5}, {3, 4, 5, 19}, {2, 3, 3, 32}}) {
        Tensor x = make_input(shape, layout, -2, 3, dt);
        int64_t C = shape.back();
        Tensor gamma = uniform({C}, 0.5, 1.5, dt), beta = uniform({C}, -1, 1, dt);
        double eps = 1e-3;
        BnRef r = ref_bn(read(x), C, read(gamma), read(beta), eps);
        double tol = dt == DType::f64 ? 1e-12 : 2e-5;
        EXPECT_TRUE(matches(train_bn(x, gamma, beta, eps), shape, r.y, tol, tol))
            << name(dt) << " " << layout_name(layout) << " " << to_string(IntList(shape));
        BnRef plain = ref_bn(read(x), C, {}, {}, eps);
        EXPECT_TRUE(matches(train_bn(x, {}, {}, eps), shape, plain.y, tol, tol)) << name(dt);
      }
    }
  }
}

TEST(BatchNorm, RunningStatisticsFollowKerasMomentum) {
  for (double momentum : {0.99, 0.9, 0.0}) {
    Tensor x = uniform({4, 3, 5}, -1, 4);
    Tensor rm = uniform({5}), rv = uniform({5}, 0.5, 2);
    auto rm0 = values(rm), rv0 = values(rv);
    batch_norm(x, rm, rv, {}, {}, {.training = true, .momentum = momentum, .eps = 1e-5});
    BnRef r = ref_bn(read(x), 5, {}, {}, 1e-5);
    std::vector<double> want_m, want_v;
    for (size_t c = 0; c < 5; ++c) {
      want_m.push_back(momentum * rm0[c] + (1 - momentum) * r.mean[c]);
      want_v.push_back(momentum * rv0[c] + (1 - momentum) * r.var[c] * 12.0 / 11.0);  // unbiased: M = 12
    }
    EXPECT_TRUE(all_close(rm, want_m, 1e-12, 1e-14)) << momentum;
    EXPECT_TRUE(all_close(rv, want_v, 1e-12, 1e-14)) << momentum;
  }
  // float32 running stats with a float32 input; the update is not recorded by autograd.
  Tensor x = uniform({8, 4}, -1, 1, DType::f32).requires_grad_();
  Tensor rm = zeros({4}, {.dtype = DType::f32}), rv = ones({4}, {.dtype = DType::f32});
  auto v0 = rm.version();
  Tensor y = batch_norm(x, rm, rv, {}, {}, {.training = true, .momentum = 0.5});
  EXPECT_GT(rm.version(), v0);
  EXPECT_FALSE(rm.requires_grad());
  EXPECT_TRUE(y.requires_grad());
}

TEST(BatchNorm, InferenceUsesRunningStatistics) {
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor x = make_input({3, 2, 2, 7}, Layout::Permuted, -2, 2, dt);
    Tensor rm = uniform({7}, -1, 1, dt), rv = uniform({7}, 0.5, 2, dt);
    Tensor gamma = uniform({7}, 0.5, 1.5, dt), beta = uniform({7}, -1, 1, dt);
    auto rmv = read(rm), rvv = read(rv);
    BnRef r = ref_bn(read(x), 7, read(gamma), read(beta), 1e-3, &rmv, &rvv);
    double tol = dt == DType::f64 ? 1e-12 : 1e-5;
    Tensor rm_before = rm.clone();
    EXPECT_TRUE(matches(batch_norm(x, rm, rv, gamma, beta), {3, 2, 2, 7}, r.y, tol, tol)) << name(dt);
    EXPECT_TRUE(all_close(rm, rm_before, 0, 0));  // inference leaves the statistics alone
  }
  Tensor x = uniform({4, 3}).requires_grad_();
  Tensor gamma = uniform({3}, 0.5, 1.5).requires_grad_(), beta = uniform({3}).requires_grad_();
  Tensor rm = uniform({3}), rv = uniform({3}, 0.5, 2);
  auto f = [&](const std::vector<Tensor>& in) { return batch_norm(in[0], rm, rv, in[1], in[2]); };
  EXPECT_TRUE(gradcheck(f, {x, gamma, beta}));
  EXPECT_TRUE(gradgradcheck([&](const std::vector<Tensor>& in) { return square(f(in)); }, {x, gamma, beta}));
}

TEST(BatchNorm, LargeMeanKeepsVarianceAccurateInFloat32) {
  // Sums of squares in float32 would lose the variance under a mean of 1000.
  Tensor x = (uniform({64, 8, 8, 16}, -1, 1) + 1000.0).to(DType::f32);
  Tensor rm = zeros({16}, {.dtype = DType::f32}), rv = zeros({16}, {.dtype = DType::f32});
  Tensor y = batch_norm(x, rm, rv, {}, {}, {.training = true, .momentum = 0.0});
  BnRef r = ref_bn(read(x), 16, {}, {}, 1e-3);
  double M = 64 * 8 * 8;
  std::vector<double> unbiased;
  for (double v : r.var) unbiased.push_back(v * M / (M - 1));
  EXPECT_TRUE(all_close(rm, r.mean, 1e-7, 0));
  EXPECT_TRUE(all_close(rv, unbiased, 1e-4, 0));
  EXPECT_TRUE(matches(y, {64, 8, 8, 16}, r.y, 1e-3, 1e-3));
}

TEST(BatchNorm, FusedMatchesCompositeForwardAndGradients) {
  // Shapes large enough for the threaded path, channels below, at and above the SIMD width.
  for (DType dt : {DType::f32, DType::f64}) {
    for (std::vector<int64_t> shape : {std::vector<int64_t>{64, 8, 8, 64}, {16, 9, 7, 19}, {300, 3}}) {
      int64_t C = shape.back();
      Tensor x0 = uniform(IntList(shape), -2, 3, dt);
      Tensor g0 = uniform({C}, 0.5, 1.5, dt), b0 = uniform({C}, -1, 1, dt);
      Tensor w = uniform(IntList(shape), -1, 1, dt);
      Tensor x1 = x0.clone().requires_grad_(), g1 = g0.clone().requires_grad_(), b1 = b0.clone().requires_grad_();
      Tensor x2 = x0.clone().requires_grad_(), g2 = g0.clone().requires_grad_(), b2 = b0.clone().requires_grad_();
      Tensor fused = train_bn(x1, g1, b1), comp = composite_bn(x2, g2, b2, 1e-3);
      double tol = dt == DType::f32 ? 2e-5 : 1e-12;
      EXPECT_TRUE(all_close(fused, comp, tol, tol)) << name(dt) << to_string(IntList(shape));
      (fused * w).sum().backward();
      (comp * w).sum().backward();
      double gt = dt == DType::f32 ? 1e-4 : 1e-10;
      EXPECT_TRUE(all_close(x1.grad(), x2.grad(), gt, gt)) << name(dt) << to_string(IntList(shape));
      EXPECT_TRUE(all_close(g1.grad(), g2.grad(), gt, gt * 100)) << name(dt) << to_string(IntList(shape));
      EXPECT_TRUE(all_close(b1.grad(), b2.grad(), gt, gt * 100)) << name(dt) << to_string(IntList(shape));
    }
  }
}

TEST(BatchNorm, TrainingGradcheck) {
  Tensor x = make_input({3, 2, 4}, Layout::Permuted, -1, 2).requires_grad_();
  Tensor gamma = uniform({4}, 0.5, 1.5).requires_grad_(), beta = uniform({4}).requires_grad_();
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return train_bn(in[0], in[1], in[2]); }, {x, gamma, beta}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return train_bn(in[0], {}, {}); }, {x}));
}

TEST(BatchNorm, SecondOrderGradients) {
  Tensor x = uniform({4, 3}, -1, 2).requires_grad_();
  Tensor gamma = uniform({3}, 0.5, 1.5).requires_grad_(), beta = uniform({3}).requires_grad_();
  auto f = [](const std::vector<Tensor>& in) { return train_bn(in[0], in[1], in[2]); };
  EXPECT_TRUE(gradgradcheck(f, {x, gamma, beta}));
  // Through a nonlinearity the incoming gradient depends on the inputs too.
  EXPECT_TRUE(gradgradcheck([](const std::vector<Tensor>& in) { return square(train_bn(in[0], in[1], in[2])); },
                            {x, gamma, beta}));
  EXPECT_TRUE(gradgradcheck([](const std::vector<Tensor>& in) { return square(train_bn(in[0], {}, {})); }, {x}));
  // The backward op's own gradient, against the composite's second derivatives on a larger input.
  Tensor x0 = uniform({5, 3, 6}, -1, 2), g0 = uniform({6}, 0.5, 1.5), b0 = uniform({6});
  Tensor w = uniform({5, 3, 6}), v = uniform({5, 3, 6});
  std::vector<std::vector<Tensor>> second(2);
  for (int k = 0; k < 2; ++k) {
    Tensor xx = x0.clone().requires_grad_(), gg = g0.clone().requires_grad_(), bb = b0.clone().requires_grad_();
    Tensor y = k == 0 ? train_bn(xx, gg, bb) : composite_bn(xx, gg, bb, 1e-3);
    auto g1 = grad({(y * w).sum()}, {xx, gg}, {.create_graph = true});
    Tensor s = (g1[0] * v).sum() + (g1[1] * g1[1]).sum();
    second[static_cast<size_t>(k)] = grad({s}, {xx, gg, bb}, {.allow_unused = true});
  }
  EXPECT_TRUE(all_close(second[0][0], second[1][0], 1e-9, 1e-10));
  EXPECT_TRUE(all_close(second[0][1], second[1][1], 1e-9, 1e-10));
}

TEST(BatchNorm, HalfPrecisionInputKeepsFloat32Statistics) {
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor x = uniform({6, 3, 10}, -2, 2, dt);
    Tensor rm = zeros({10}, {.dtype = DType::f32}), rv = ones({10}, {.dtype = DType::f32});
    Tensor xr = x.clone().requires_grad_();
    Tensor y = batch_norm(xr, rm, rv, {}, {}, {.training = true, .momentum = 0.0});
    EXPECT_EQ(y.dtype(), dt);
    BnRef r = ref_bn(read(x), 10, {}, {}, 1e-3);
    EXPECT_TRUE(matches(y, {6, 3, 10}, r.y, 2e-2, 2e-2)) << name(dt);
    EXPECT_TRUE(all_close(rm, r.mean, 1e-5, 1e-6)) << name(dt);  // statistics from the exact inputs, in float32
    y.sum().backward();
    EXPECT_EQ(xr.grad().dtype(), dt);
    EXPECT_TRUE(all_close(xr.grad(), std::vector<double>(180, 0.0), 0, 2e-2)) << name(dt);  // d sum(y) / dx = 0
    Tensor l = layer_norm(x, 1);
    EXPECT_EQ(l.dtype(), dt);
    EXPECT_TRUE(matches(l, {6, 3, 10}, ref_ln_rows(read(x), 10), 2e-2, 2e-2)) << name(dt);
    EXPECT_TRUE(matches(batch_norm(x, rm, rv, {}, {}), {6, 3, 10}, r.y, 3e-2, 3e-2)) << name(dt);
  }
}

TEST(BatchNorm, Errors) {
  Tensor rm = zeros({3}), rv = ones({3});
  std::string m = error_of<ShapeError>([&] { batch_norm(uniform({3}), rm, rv, {}, {}); });
  EXPECT_TRUE(contains(m, "batch_norm") && contains(m, "[3]")) << m;
  m = error_of<ShapeError>([&] { batch_norm(uniform({2, 4}), rm, rv, {}, {}); });
  EXPECT_TRUE(contains(m, "running_mean") && contains(m, "[4]")) << m;
  m = error_of<ShapeError>([&] { batch_norm(uniform({2, 3}), rm, rv, uniform({2}), {}); });
  EXPECT_TRUE(contains(m, "gamma")) << m;
  m = error_of<DTypeError>([&] { batch_norm(tensor({1, 2, 3}).reshape({1, 3}), rm, rv, {}, {}); });
  EXPECT_TRUE(contains(m, "batch_norm")) << m;
  m = error_of<ValueError>([&] { batch_norm(uniform({1, 1, 3}), rm, rv, {}, {}, {.training = true}); });
  EXPECT_TRUE(contains(m, "more than one value per channel")) << m;
  m = error_of<ValueError>([&] { batch_norm(uniform({2, 3}), {}, {}, {}, {}); });
  EXPECT_TRUE(contains(m, "running_mean and running_var")) << m;
}

TEST(BatchNorm, MatchesPyTorchTrainingForwardGradientsAndRunningStats) {
  if (!have_torch()) GTEST_SKIP() << "PyTorch not available";
  std::string dir = temp_dir();
  Tensor x = uniform({4, 5, 6, 8}, -2, 3, DType::f32);
  Tensor gamma = uniform({8}, 0.5, 1.5, DType::f32), beta = uniform({8}, -1, 1, DType::f32);
  Tensor gy = uniform({4, 5, 6, 8}, -1, 1, DType::f32);
  Tensor rm = uniform({8}, -1, 1, DType::f32), rv = uniform({8}, 0.5, 2, DType::f32);
  for (auto [n, t] : {std::pair{"x", x}, {"gamma", gamma}, {"beta", beta}, {"gy", gy}, {"rm", rm}, {"rv", rv}})
    save_npy(dir + "/" + n + ".npy", t);
  double momentum = 0.9, eps = 1e-3;
  std::string out;
  ASSERT_EQ(run_python(std::string(GLIA_SOURCE_DIR) + "/tests/python/torch_norm_loss.py",
                       {"batch_norm", dir, std::to_string(momentum), std::to_string(eps)}, &out),
            0)
      << out;
  Tensor xr = x.clone().requires_grad_(), gr = gamma.clone().requires_grad_(), br = beta.clone().requires_grad_();
  Tensor y = batch_norm(xr, rm, rv, gr, br, {.training = true, .momentum = momentum, .eps = eps});
  y.backward(gy);
  EXPECT_TRUE(all_close(y, load_npy(dir + "/y.npy"), 1e-4, 1e-5));
  EXPECT_TRUE(all_close(xr.grad(), load_npy(dir + "/dx.npy"), 1e-3, 1e-5));
  EXPECT_TRUE(all_close(gr.grad(), load_npy(dir + "/dgamma.npy"), 1e-4, 1e-4));
  EXPECT_TRUE(all_close(br.grad(), load_npy(dir + "/dbeta.npy"), 1e-4, 1e-4));
  EXPECT_TRUE(all_close(rm, load_npy(dir + "/rm_out.npy"), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(rv, load_npy(dir + "/rv_out.npy"), 1e-5, 1e-6));
}

// --- layer norm

namespace {
std::vector<double> ref_ln(const std::vector<double>& x, int64_t H, const std::vector<double>& gamma,
                           const std::vector<double>& beta, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / static_cast<size_t>(H); ++r) {
    const double* p = x.data() + r * static_cast<size_t>(H);
    double m = 0, v = 0;
    for (int64_t i = 0; i < H; ++i) m += p[i];
    m /= static_cast<double>(H);
    for (int64_t i = 0; i < H; ++i) v += (p[i] - m) * (p[i] - m);
    v /= static_cast<double>(H);
    for (int64_t i = 0; i < H; ++i) {
      auto ii = static_cast<size_t>(i);
      y[r * static_cast<size_t>(H) + ii] =
          (p[i] - m) / std::sqrt(v + eps) * (gamma.empty() ? 1.0 : gamma[ii]) + (beta.empty() ? 0.0 : beta[ii]);
    }
  }
  return y;
}
}  // namespace

TEST(LayerNorm, MatchesNaiveLoops) {
  for (DType dt : {DType::f64, DType::f32}) {
    for (Layout layout : kLayouts) {
      Tensor x = make_input({3, 4, 6}, layout, -2, 3, dt);
      double tol = dt == DType::f64 ? 1e-12 : 1e-5;
      Tensor g1 = uniform({6}, 0.5, 1.5, dt), b1 = uniform({6}, -1, 1, dt);
      EXPECT_TRUE(matches(layer_norm(x, 1, g1, b1), {3, 4, 6}, ref_ln(read(x), 6, read(g1), read(b1), 1e-5), tol, tol))
          << name(dt) << layout_name(layout);
      Tensor g2 = uniform({4, 6}, 0.5, 1.5, dt);
      EXPECT_TRUE(matches(layer_norm(x, 2, g2, {}, 1e-3), {3, 4, 6}, ref_ln(read(x), 24, read(g2), {}, 1e-3), tol, tol))
          << name(dt) << layout_name(layout);
      EXPECT_TRUE(matches(layer_norm(x, 3), {3, 4, 6}, ref_ln(read(x), 72, {}, {}, 1e-5), tol, tol));
    }
  }
}

namespace {
Tensor composite_ln(const Tensor& x, int64_t k, const Tensor& gamma, const Tensor& beta, double eps) {
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - k; d < x.dim(); ++d) dims.push_back(d);
  Tensor mu = mean(x, IntList(dims), true);
  Tensor xc = x - mu;
  return xc * rsqrt(mean(square(xc), IntList(dims), true) + eps) * gamma + beta;
}
}  // namespace

TEST(LayerNorm, FusedMatchesCompositeForwardAndGradients) {
  // Rows long enough for the SIMD loops (with tails), and enough rows for several threads.
  for (DType dt : {DType::f32, DType::f64}) {
    for (auto [shape, k] : {std::pair{std::vector<int64_t>{64, 128, 96}, int64_t(1)}, {{37, 5, 7}, 2}, {{300, 3}, 1}}) {
      Shape ns(shape.end() - k, shape.end());
      Tensor x0 = uniform(IntList(shape), -2, 3, dt), g0 = uniform(ns, 0.5, 1.5, dt), b0 = uniform(ns, -1, 1, dt);
      Tensor w = uniform(IntList(shape), -1, 1, dt);
      Tensor x1 = x0.clone().requires_grad_(), g1 = g0.clone().requires_grad_(), b1 = b0.clone().requires_grad_();
      Tensor x2 = x0.clone().requires_grad_(), g2 = g0.clone().requires_grad_(), b2 = b0.clone().requires_grad_();
      Tensor fused = layer_norm(x1, k, g1, b1), comp = composite_ln(x2, k, g2, b2, 1e-5);
      double tol = dt == DType::f32 ? 2e-5 : 1e-12;
      EXPECT_TRUE(all_close(fused, comp, tol, tol)) << name(dt) << to_string(IntList(shape));
      (fused * w).sum().backward();
      (comp * w).sum().backward();
      double gt = dt == DType::f32 ? 1e-4 : 1e-10;
      EXPECT_TRUE(all_close(x1.grad(), x2.grad(), gt, gt)) << name(dt) << to_string(IntList(shape));
      EXPECT_TRUE(all_close(g1.grad(), g2.grad(), gt, gt * 100)) << name(dt) << to_string(IntList(shape));
      EXPECT_TRUE(all_close(b1.grad(), b2.grad(), gt, gt * 100)) << name(dt) << to_string(IntList(shape));
    }
  }
  // Second order against the composite.
  Tensor x0 = uniform({4, 3, 5}, -1, 2), g0 = uniform({5}, 0.5, 1.5), b0 = uniform({5});
  Tensor w = uniform({4, 3, 5}), v = uniform({4, 3, 5});
  std::vector<std::vector<Tensor>> second(2);
  for (int j = 0; j < 2; ++j) {
    Tensor xx = x0.clone().requires_grad_(), gg = g0.clone().requires_grad_(), bb = b0.clone().requires_grad_();
    Tensor y = j == 0 ? layer_norm(xx, 1, gg, bb) : composite_ln(xx, 1, gg, bb, 1e-5);
    auto g1 = grad({(square(y) * w).sum()}, {xx, gg, bb}, {.create_graph = true});
    Tensor s = (g1[0] * v).sum() + (g1[1] * g1[1]).sum() + (g1[2] * g1[0].sum({0, 1})).sum();
    second[static_cast<size_t>(j)] = grad({s}, {xx, gg, bb});
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(all_close(second[0][i], second[1][i], 1e-9, 1e-10)) << i;
}

TEST(LayerNorm, GradientsFirstAndSecondOrder) {
  Tensor x = uniform({3, 2, 4}, -1, 2).requires_grad_();
  Tensor g = uniform({2, 4}, 0.5, 1.5).requires_grad_(), b = uniform({2, 4}).requires_grad_();
  auto f = [](const std::vector<Tensor>& in) { return layer_norm(in[0], 2, in[1], in[2]); };
  EXPECT_TRUE(gradcheck(f, {x, g, b}));
  EXPECT_TRUE(gradgradcheck(f, {x, g, b}));
  EXPECT_TRUE(gradgradcheck([](const std::vector<Tensor>& in) { return square(layer_norm(in[0], 2, in[1], in[2])); },
                            {x, g, b}));
  Tensor xp = make_input({3, 5}, Layout::Permuted).requires_grad_();
  EXPECT_TRUE(gradgradcheck([](const std::vector<Tensor>& in) { return square(layer_norm(in[0], 1)); }, {xp}));
  Tensor g1 = uniform({4}, 0.5, 1.5).requires_grad_();
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], 1, in[1]); }, {x, g1}));
}

TEST(LayerNorm, Errors) {
  Tensor x = uniform({2, 3, 4});
  std::string m = error_of<ValueError>([&] { layer_norm(x, 4); });
  EXPECT_TRUE(contains(m, "layer_norm") && contains(m, "normalized_ndim")) << m;
  m = error_of<ShapeError>([&] { layer_norm(x, 2, uniform({4})); });
  EXPECT_TRUE(contains(m, "layer_norm") && contains(m, "[3, 4]")) << m;
  m = error_of<ShapeError>([&] { layer_norm(x, 1, {}, uniform({3})); });
  EXPECT_TRUE(contains(m, "beta")) << m;
  m = error_of<DTypeError>([&] { layer_norm(tensor({1, 2}), 1); });
  EXPECT_TRUE(contains(m, "layer_norm")) << m;
}
