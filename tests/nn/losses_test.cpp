// Keras losses (glia::losses): each against a double reference for probabilities and logits,
// label smoothing, sample weights and the three reductions; label shapes; errors; the pairing
// of probability losses with their activation (the stable from-logits path); configs.
#include <cmath>
#include <functional>

#include "nn/nn_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;
namespace LS = glia::losses;

namespace {

constexpr double kEps = 1e-7;  // Keras's backend epsilon

double clip(double p) { return std::clamp(p, kEps, 1 - kEps); }

/// Per-sample references over rows of length C (the last axis).
std::vector<double> ref_cce(const std::vector<double>& y, const std::vector<double>& p, size_t C, bool logits,
                            double ls) {
  std::vector<double> out;
  for (size_t r = 0; r < y.size() / C; ++r) {
    double total = 0, mx = -INFINITY, lse = 0;
    for (size_t c = 0; c < C; ++c) {
      total += p[r * C + c];
      mx = std::max(mx, p[r * C + c]);
    }
    for (size_t c = 0; c < C; ++c) lse += std::exp(p[r * C + c] - mx);
    lse = mx + std::log(lse);
    double l = 0;
    for (size_t c = 0; c < C; ++c) {
      double t = y[r * C + c] * (1 - ls) + ls / static_cast<double>(C);
      double logq = logits ? p[r * C + c] - lse : std::log(clip(p[r * C + c] / total));  // normalize, then clip
      l -= t * logq;
    }
    out.push_back(l);
  }
  return out;
}

std::vector<double> ref_sparse_cce(const std::vector<int64_t>& labels, const std::vector<double>& p, size_t C,
                                   bool logits, double ls) {
  std::vector<double> out;
  for (size_t r = 0; r < labels.size(); ++r) {
    // From probabilities: log of the clipped probabilities, renormalized (Keras's TensorFlow path).
    std::vector<double> z(C);
    for (size_t c = 0; c < C; ++c) z[c] = logits ? p[r * C + c] : std::log(clip(p[r * C + c]));
    double mx = *std::max_element(z.begin(), z.end()), lse = 0;
    for (double v : z) lse += std::exp(v - mx);
    lse = mx + std::log(lse);
    double l = 0;
    for (size_t c = 0; c < C; ++c) {
      double t = (static_cast<int64_t>(c) == labels[r] ? 1.0 : 0.0) * (1 - ls) + ls / static_cast<double>(C);
      l -= t * (z[c] - lse);
    }
    out.push_back(l);
  }
  return out;
}

std::vector<double> ref_bce(const std::vector<double>& y, const std::vector<double>& p, size_t D, bool logits,
                            double ls) {
  std::vector<double> out;
  for (size_t r = 0; r < y.size() / D; ++r) {
    double l = 0;
    for (size_t d = 0; d < D; ++d) {
      double t = y[r * D + d] * (1 - ls) + 0.5 * ls, v = p[r * D + d];
      if (logits)  // -t log(sigmoid(v)) - (1 - t) log(1 - sigmoid(v)), written stably
        l += std::max(v, 0.0) - v * t + std::log1p(std::exp(-std::abs(v)));
      else
        l -= t * std::log(clip(v)) + (1 - t) * std::log(clip(1 - v));
    }
    out.push_back(l / static_cast<double>(D));
  }
  return out;
}

std::vector<double> ref_regression(const std::vector<double>& y, const std::vector<double>& p, size_t D,
                                   const std::function<double(double)>& f) {
  std::vector<double> out;
  for (size_t r = 0; r < y.size() / D; ++r) {
    double l = 0;
    for (size_t d = 0; d < D; ++d) l += f(p[r * D + d] - y[r * D + d]);
    out.push_back(l / static_cast<double>(D));
  }
  return out;
}

double huber(double e, double delta) {
  return std::abs(e) <= delta ? 0.5 * e * e : delta * std::abs(e) - 0.5 * delta * delta;
}

using Make = std::function<LS::LossPtr(const std::string& reduction)>;

/// Checks the loss of every reduction, with and without sample weights [batch], against the
/// per-sample reference (shape [batch] or [batch, ...]).
void check_reductions(const Make& make, const Tensor& y_true, const Tensor& y_pred, const std::vector<double>& per,
                      const Shape& per_shape, double rtol) {
  int64_t batch = per_shape[0];
  size_t inner = per.size() / static_cast<size_t>(batch);
  Tensor sw = uniform({batch}, 0, 2, DType::f32);
  std::vector<double> swv = values(sw);
  for (bool weighted : {false, true}) {
    std::vector<double> w = per;
    if (weighted)
      for (size_t i = 0; i < w.size(); ++i) w[i] *= swv[i / inner];
    double total = 0;
    for (double v : w) total += v;
    SCOPED_TRACE(weighted ? "weighted" : "unweighted");
    Tensor none = (*make("none"))(y_true, y_pred, weighted ? sw : Tensor());
    EXPECT_EQ(none.shape(), per_shape);
    EXPECT_TRUE(all_close(none, w, rtol, 1e-6));
    Tensor s = (*make("sum"))(y_true, y_pred, weighted ? sw : Tensor());
    EXPECT_EQ(s.dim(), 0);
    EXPECT_NEAR(values(s)[0], total, rtol * std::abs(total) + 1e-6);
    // Keras's default divides by the number of loss values, not by the sum of the weights.
    Tensor m = (*make("sum_over_batch_size"))(y_true, y_pred, weighted ? sw : Tensor());
    EXPECT_EQ(m.dim(), 0);
    double mean = total / static_cast<double>(w.size());
    EXPECT_NEAR(values(m)[0], mean, rtol * std::abs(mean) + 1e-6);
  }
}

Tensor softmax_rows(const Tensor& z) { return softmax(z, -1); }

Tensor one_hot_of(const std::vector<int64_t>& labels, int64_t C) {
  std::vector<float> v(labels.size() * static_cast<size_t>(C), 0.0f);
  for (size_t i = 0; i < labels.size(); ++i) v[i * static_cast<size_t>(C) + static_cast<size_t>(labels[i])] = 1.0f;
  return tensor<float>(v, {static_cast<int64_t>(labels.size()), C});
}

}  // namespace

TEST(Losses, CategoricalCrossentropy) {
  const int64_t N = 6, C = 4;
  std::vector<int64_t> labels = {0, 3, 1, 1, 2, 3};
  Tensor y = one_hot_of(labels, C);
  Tensor soft = softmax_rows(uniform({N, C}, -1, 1, DType::f32));  // soft targets work too
  Tensor z = uniform({N, C}, -3, 3, DType::f32);
  Tensor p = softmax_rows(z) * 1.3;  // unnormalized probabilities are renormalized, as Keras does
  for (const Tensor& target : {y, soft})
    for (bool logits : {false, true})
      for (double ls : {0.0, 0.1}) {
        SCOPED_TRACE(std::string(logits ? "logits" : "probs") + " ls=" + std::to_string(ls));
        const Tensor& pred = logits ? z : p;
        std::vector<double> per = ref_cce(values(target), values(pred), C, logits, ls);
        Make make = [&](const std::string& r) {
          return std::make_shared<LS::CategoricalCrossentropy>(
              LS::LossOptions{.from_logits = logits, .label_smoothing = ls, .reduction = r});
        };
        check_reductions(make, target, pred, per, {N}, 1e-5);
      }
  // Sequences: [N, T, C] gives a loss per step; sample weights [N] cover all steps.
  Tensor zs = uniform({3, 5, C}, -2, 2, DType::f32);
  Tensor ys = softmax_rows(uniform({3, 5, C}, -2, 2, DType::f32));
  Make make = [](const std::string& r) {
    return std::make_shared<LS::CategoricalCrossentropy>(LS::LossOptions{.from_logits = true, .reduction = r});
  };
  check_reductions(make, ys, zs, ref_cce(values(ys), values(zs), C, true, 0), {3, 5}, 1e-5);
}

TEST(Losses, SparseCategoricalCrossentropy) {
  const int64_t N = 7, C = 5;
  std::vector<int64_t> labels = {4, 0, 2, 2, 1, 3, 0};
  Tensor z = uniform({N, C}, -3, 3, DType::f32);
  Tensor p = softmax_rows(z);
  for (bool logits : {false, true})
    for (double ls : {0.0, 0.2}) {
      SCOPED_TRACE(std::string(logits ? "logits" : "probs") + " ls=" + std::to_string(ls));
      const Tensor& pred = logits ? z : p;
      std::vector<double> per = ref_sparse_cce(labels, values(pred), C, logits, ls);
      // Labels as [N] int64, [N, 1] int32 and float: all the same.
      std::vector<Tensor> forms = {tensor<int64_t>(labels, {N}),
                                   tensor<int64_t>(labels, {N}).to(DType::i32).reshape({N, 1}),
                                   tensor<int64_t>(labels, {N}).to(DType::f32)};
      for (const Tensor& yt : forms) {
        Make make = [&](const std::string& r) {
          return std::make_shared<LS::SparseCategoricalCrossentropy>(
              LS::LossOptions{.from_logits = logits, .label_smoothing = ls, .reduction = r});
        };
        check_reductions(make, yt, pred, per, {N}, 1e-5);
      }
      // The same as categorical cross-entropy on one-hot targets.
      LS::CategoricalCrossentropy cce({.from_logits = logits, .label_smoothing = ls});
      LS::SparseCategoricalCrossentropy scce({.from_logits = logits, .label_smoothing = ls});
      if (logits) {  // (from probabilities the two clip in a different order, as in Keras)
        EXPECT_NEAR(values(scce(tensor<int64_t>(labels, {N}), pred))[0], values(cce(one_hot_of(labels, C), pred))[0],
                    1e-5);
      }
    }
  // Per-step labels [N, T] for predictions [N, T, C].
  Tensor zs = uniform({2, 3, C}, -2, 2, DType::f32);
  std::vector<int64_t> ls2 = {0, 4, 1, 3, 3, 2};
  Make make = [](const std::string& r) {
    return std::make_shared<LS::SparseCategoricalCrossentropy>(LS::LossOptions{.from_logits = true, .reduction = r});
  };
  check_reductions(make, tensor<int64_t>(ls2, {2, 3}), zs, ref_sparse_cce(ls2, values(zs), C, true, 0), {2, 3}, 1e-5);
}

TEST(Losses, BinaryCrossentropy) {
  const int64_t N = 8, D = 3;
  Tensor y = (uniform({N, D}, 0, 1, DType::f32) > 0.5).to(DType::f32);
  Tensor soft = uniform({N, D}, 0, 1, DType::f32);
  Tensor z = uniform({N, D}, -4, 4, DType::f32);
  Tensor p = sigmoid(z);
  for (const Tensor& target : {y, soft})
    for (bool logits : {false, true})
      for (double ls : {0.0, 0.15}) {
        SCOPED_TRACE(std::string(logits ? "logits" : "probs") + " ls=" + std::to_string(ls));
        const Tensor& pred = logits ? z : p;
        Make make = [&](const std::string& r) {
          return std::make_shared<LS::BinaryCrossentropy>(
              LS::LossOptions{.from_logits = logits, .label_smoothing = ls, .reduction = r});
        };
        check_reductions(make, target, pred, ref_bce(values(target), values(pred), D, logits, ls), {N}, 1e-5);
      }
  // One output column: y_true [N] and [N, 1] are the same.
  Tensor p1 = uniform({N, 1}, 0.05, 0.95, DType::f32);
  Tensor y1 = (uniform({N}, 0, 1, DType::f32) > 0.5).to(DType::f32);
  std::vector<double> per = ref_bce(values(y1), values(p1), 1, false, 0);
  for (const Tensor& yt : {y1, y1.reshape({N, 1}), y1.to(DType::i64)}) {
    Make make = [](const std::string& r) {
      return std::make_shared<LS::BinaryCrossentropy>(LS::LossOptions{.reduction = r});
    };
    check_reductions(make, yt, p1, per, {N}, 1e-5);
  }
  // Saturated probabilities are clipped to [eps, 1 - eps]: finite losses.
  Tensor sat =
      LS::BinaryCrossentropy({.reduction = "none"})(tensor<float>({1, 0}, {2, 1}), tensor<float>({0, 1}, {2, 1}));
  EXPECT_TRUE(all_close(sat, {-std::log(kEps), -std::log(kEps)}, 1e-3));
}

TEST(Losses, Regression) {
  const int64_t N = 5, D = 4;
  Tensor y = uniform({N, D}, -2, 2, DType::f32), p = make_input({N, D}, Layout::Permuted, -2, 2, DType::f32);
  std::vector<double> yv = values(y), pv = values(p);
  struct Case {
    std::string name;
    std::function<LS::LossPtr(LS::LossOptions)> make;
    std::function<double(double)> f;
  };
  std::vector<Case> cases = {
      {"mse", [](LS::LossOptions o) { return std::make_shared<LS::MeanSquaredError>(o); },
       [](double e) { return e * e; }},
      {"mae", [](LS::LossOptions o) { return std::make_shared<LS::MeanAbsoluteError>(o); },
       [](double e) { return std::abs(e); }},
      {"huber", [](LS::LossOptions o) { return std::make_shared<LS::Huber>(1.0, o); },
       [](double e) { return huber(e, 1.0); }},
      {"huber(0.3)", [](LS::LossOptions o) { return std::make_shared<LS::Huber>(0.3, o); },
       [](double e) { return huber(e, 0.3); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Make make = [&](const std::string& r) { return c.make({.reduction = r}); };
    check_reductions(make, y, p, ref_regression(yv, pv, D, c.f), {N}, 1e-5);
    // One output column: y_true [N] next to y_pred [N, 1].
    Tensor p1 = p.slice(1, 0, 1), y1 = y.select(1, 0);
    std::vector<double> per1 = ref_regression(values(y1), values(p1), 1, c.f);
    check_reductions(make, y1, p1, per1, {N}, 1e-5);
    check_reductions(make, y1.reshape({N, 1}), p1, per1, {N}, 1e-5);
  }
}

TEST(Losses, GradientsMatchFiniteDifferences) {
  Tensor z = uniform({4, 3}, -2, 2);
  z.requires_grad_(true);
  Tensor soft = softmax(uniform({4, 3}), -1);
  Tensor labels = tensor<int64_t>({2, 0, 1, 1}, {4});
  Tensor y01 = (uniform({4, 3}, 0, 1) > 0.5).to(DType::f64);
  Tensor target = uniform({4, 3}, -2, 2);
  std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> fs = {
      {"cce logits",
       [&](const Tensor& x) {
         return LS::CategoricalCrossentropy({.from_logits = true, .label_smoothing = 0.1})(soft, x);
       }},
      {"cce probs", [&](const Tensor& x) { return LS::CategoricalCrossentropy()(soft, softmax(x, -1)); }},
      {"scce logits",
       [&](const Tensor& x) { return LS::SparseCategoricalCrossentropy({.from_logits = true})(labels, x); }},
      {"bce logits", [&](const Tensor& x) { return LS::BinaryCrossentropy({.from_logits = true})(y01, x); }},
      {"bce probs", [&](const Tensor& x) { return LS::BinaryCrossentropy({.label_smoothing = 0.2})(y01, sigmoid(x)); }},
      {"mse", [&](const Tensor& x) { return LS::MeanSquaredError()(target, x); }},
      {"huber", [&](const Tensor& x) { return LS::Huber(0.5)(target, x); }},
  };
  for (auto& [name, f] : fs) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return f(in[0]); }, {z}));
  }
}

TEST(Losses, PairsWithActivationAndTheStableLogitsPath) {
  EXPECT_EQ(LS::CategoricalCrossentropy().pairs_with_activation(), "softmax");
  EXPECT_EQ(LS::SparseCategoricalCrossentropy().pairs_with_activation(), "softmax");
  EXPECT_EQ(LS::BinaryCrossentropy().pairs_with_activation(), "sigmoid");
  EXPECT_EQ(LS::CategoricalCrossentropy({.from_logits = true}).pairs_with_activation(), "");
  EXPECT_EQ(LS::BinaryCrossentropy({.from_logits = true}).pairs_with_activation(), "");
  EXPECT_EQ(LS::MeanSquaredError().pairs_with_activation(), "");
  EXPECT_EQ(LS::MeanSquaredError().with_logits(), nullptr);
  EXPECT_EQ(LS::Huber().with_logits(), nullptr);

  // with_logits keeps the other options and reads logits: CE of softmax(z) == CE from logits z.
  const int64_t N = 6, C = 5;
  Tensor z = uniform({N, C}, -4, 4, DType::f32);
  Tensor y = softmax(uniform({N, C}, -1, 1, DType::f32), -1);
  std::vector<int64_t> labels = {1, 0, 4, 2, 2, 3};
  Tensor sw = uniform({N}, 0, 1, DType::f32);
  for (std::string reduction : {"sum_over_batch_size", "sum", "none"}) {
    SCOPED_TRACE(reduction);
    LS::LossOptions o{.label_smoothing = 0.1, .reduction = reduction};
    LS::CategoricalCrossentropy cce(o);
    LS::LossPtr cl = cce.with_logits();
    ASSERT_NE(cl, nullptr);
    EXPECT_TRUE(cl->options().from_logits);
    EXPECT_EQ(cl->options().label_smoothing, 0.1);
    EXPECT_EQ(cl->options().reduction, reduction);
    EXPECT_EQ(cl->class_name(), "CategoricalCrossentropy");
    EXPECT_TRUE(all_close((*cl)(y, z, sw), cce(y, softmax(z, -1), sw), 1e-5, 1e-6));
    LS::SparseCategoricalCrossentropy scce(o);
    Tensor lt = tensor<int64_t>(labels, {N});
    EXPECT_TRUE(all_close((*scce.with_logits())(lt, z, sw), scce(lt, softmax(z, -1), sw), 1e-5, 1e-6));
    LS::BinaryCrossentropy bce(o);
    Tensor yb = (uniform({N, C}, 0, 1, DType::f32) > 0.5).to(DType::f32);
    EXPECT_TRUE(all_close((*bce.with_logits())(yb, z, sw), bce(yb, sigmoid(z), sw), 1e-5, 1e-6));
  }
  // Where softmax saturates, the probability path is clipped at -log(eps) while the logits path
  // stays exact: why a softmax output is paired with cross-entropy from logits.
  Tensor big = tensor<float>({0, 60, 0}, {1, 3});
  Tensor first = tensor<float>({1, 0, 0}, {1, 3});
  EXPECT_NEAR(values(LS::CategoricalCrossentropy({.from_logits = true})(first, big))[0], 60.0, 1e-3);
  EXPECT_NEAR(values(LS::CategoricalCrossentropy()(first, softmax(big, -1)))[0], -std::log(kEps), 1e-3);
}

TEST(Losses, Errors) {
  Tensor p = softmax(uniform({4, 3}, -1, 1, DType::f32), -1);
  std::string msg = error_of<ShapeError>([&] { LS::CategoricalCrossentropy()(zeros({4, 2}), p); });
  EXPECT_THAT(msg, HasSubstr("categorical_crossentropy"));
  EXPECT_THAT(msg, HasSubstr("[4, 2]"));
  EXPECT_THAT(msg, HasSubstr("[4, 3]"));
  msg = error_of<ShapeError>([&] { LS::MeanSquaredError()(zeros({4, 2}), p); });
  EXPECT_THAT(msg, HasSubstr("mean_squared_error"));
  EXPECT_THAT(msg, HasSubstr("[4, 2]"));
  EXPECT_THROW(LS::BinaryCrossentropy()(zeros({5, 3}), p), ShapeError);
  EXPECT_THROW(LS::SparseCategoricalCrossentropy()(tensor<int64_t>({0, 1, 2}, {3}), p), ShapeError);
  EXPECT_THROW(LS::SparseCategoricalCrossentropy()(zeros({4, 3}, {.dtype = DType::i64}), p), ShapeError);
  // Labels out of range name the label.
  msg = error_of<ValueError>([&] { LS::SparseCategoricalCrossentropy()(tensor<int64_t>({0, 1, 7, 2}, {4}), p); });
  EXPECT_THAT(msg, HasSubstr("7"));
  msg = error_of<ValueError>([&] {
    LS::SparseCategoricalCrossentropy({.from_logits = true})(tensor<int64_t>({0, -1, 1, 2}, {4}), p);
  });
  EXPECT_THAT(msg, HasSubstr("-1"));
  EXPECT_THROW(LS::SparseCategoricalCrossentropy()(tensor<int64_t>({0, 3, 1, 2}, {4}), p), ValueError);
  // Integer predictions, bad reductions and sample weights, unknown names.
  EXPECT_THROW(LS::MeanSquaredError()(zeros({4, 3}), zeros({4, 3}, {.dtype = DType::i64})), DTypeError);
  EXPECT_THAT(error_of<ValueError>([&] { LS::MeanSquaredError({.reduction = "avg"})(p, p); }), HasSubstr("avg"));
  EXPECT_THROW(LS::MeanSquaredError()(p, p, ones({5})), ShapeError);
  msg = error_of<ValueError>([] { LS::get("cross_entropy_loss"); });
  EXPECT_THAT(msg, HasSubstr("cross_entropy_loss"));
  EXPECT_THAT(msg, HasSubstr("sparse_categorical_crossentropy"));
  EXPECT_THROW(LS::Huber(0.0), ValueError);
  EXPECT_THROW(LS::from_config(Config::parse(R"({"class_name": "Hinge", "config": {}})")), ValueError);
}

TEST(Losses, NamesAndConfigs) {
  std::vector<std::pair<std::string, std::string>> names = {
      {"categorical_crossentropy", "CategoricalCrossentropy"},
      {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"},
      {"binary_crossentropy", "BinaryCrossentropy"},
      {"mse", "MeanSquaredError"},
      {"mean_squared_error", "MeanSquaredError"},
      {"mae", "MeanAbsoluteError"},
      {"mean_absolute_error", "MeanAbsoluteError"},
      {"huber", "Huber"},
      {"CategoricalCrossentropy", "CategoricalCrossentropy"},
  };
  for (auto& [name, cls] : names) {
    LS::LossPtr l = LS::get(name);
    EXPECT_EQ(l->class_name(), cls) << name;
    EXPECT_EQ(l->options().reduction, "sum_over_batch_size");
    EXPECT_FALSE(l->options().from_logits);
  }
  EXPECT_EQ(LS::get("sparse_categorical_crossentropy")->name(), "sparse_categorical_crossentropy");
  EXPECT_EQ(LS::get("huber")->name(), "huber_loss");

  std::vector<LS::LossPtr> losses = {
      std::make_shared<LS::CategoricalCrossentropy>(LS::LossOptions{.from_logits = true, .label_smoothing = 0.1}),
      std::make_shared<LS::SparseCategoricalCrossentropy>(LS::LossOptions{.reduction = "sum"}),
      std::make_shared<LS::BinaryCrossentropy>(LS::LossOptions{.label_smoothing = 0.05, .reduction = "none"}),
      std::make_shared<LS::MeanSquaredError>(),
      std::make_shared<LS::MeanAbsoluteError>(),
      std::make_shared<LS::Huber>(2.5, LS::LossOptions{.reduction = "sum"}),
  };
  Tensor y = softmax(uniform({3, 4}, -1, 1, DType::f32), -1), z = uniform({3, 4}, -1, 1, DType::f32);
  Tensor labels = tensor<int64_t>({3, 0, 1}, {3});
  for (const LS::LossPtr& l : losses) {
    SCOPED_TRACE(l->class_name());
    Config c = LS::to_config(*l);
    EXPECT_EQ(c["class_name"], l->class_name());
    for (const char* k : {"name", "reduction", "from_logits", "label_smoothing"})
      EXPECT_TRUE(c["config"].contains(k)) << k;
    LS::LossPtr back = LS::from_config(Config::parse(c.dump()));
    EXPECT_EQ(LS::to_config(*back), c);
    const Tensor& yt = l->class_name() == "SparseCategoricalCrossentropy" ? labels : y;
    Tensor yp = l->class_name() == "BinaryCrossentropy" ? sigmoid(z) : z;
    EXPECT_TRUE(all_close((*back)(yt, yp), (*l)(yt, yp), 0, 0));
  }
  EXPECT_DOUBLE_EQ(LS::to_config(*losses[5])["config"]["delta"].get<double>(), 2.5);
}
