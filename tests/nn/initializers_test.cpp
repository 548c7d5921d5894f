// Initializers (keras.initializers): shapes, the variance-scaling statistics on large tensors
// against Keras's formulas, truncation, constants, seeding, fans, names and configs.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "nn/nn_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;
namespace I = glia::initializers;

namespace {

struct Stats {
  double mean = 0, var = 0, min = INFINITY, max = -INFINITY;
  double frac_beyond = 0;  // fraction with |v| > the given bound
};
Stats stats(const Tensor& t, double bound = INFINITY) {
  std::vector<double> v = values(t);
  Stats s;
  for (double x : v) {
    s.mean += x;
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    if (std::abs(x) > bound) s.frac_beyond += 1;
  }
  auto n = static_cast<double>(v.size());
  s.mean /= n;
  for (double x : v) s.var += (x - s.mean) * (x - s.mean);
  s.var /= n - 1;
  s.frac_beyond /= n;
  return s;
}

/// Keras's variance-scaling target: scale / max(1, fan) for the mode.
double target_variance(const Shape& shape, double scale, const std::string& mode) {
  // Fans written out here: receptive field (all but the last two dims) times channels.
  double receptive = 1;
  for (size_t i = 0; i + 2 < shape.size(); ++i) receptive *= static_cast<double>(shape[i]);
  double fan_in = static_cast<double>(shape[shape.size() - 2]) * receptive;
  double fan_out = static_cast<double>(shape.back()) * receptive;
  double fan = mode == "fan_in" ? fan_in : mode == "fan_out" ? fan_out : (fan_in + fan_out) / 2;
  return scale / std::max(1.0, fan);
}

}  // namespace

TEST(Initializers, ComputeFansAsKeras) {
  EXPECT_EQ(I::compute_fans({}), (std::pair<double, double>{1, 1}));
  EXPECT_EQ(I::compute_fans({7}), (std::pair<double, double>{7, 7}));
  EXPECT_EQ(I::compute_fans({3, 5}), (std::pair<double, double>{3, 5}));              // Dense [in, out]
  EXPECT_EQ(I::compute_fans({3, 3, 16, 32}), (std::pair<double, double>{144, 288}));  // Conv2D
  EXPECT_EQ(I::compute_fans({5, 4, 8}), (std::pair<double, double>{20, 40}));         // Conv1D
  EXPECT_EQ(I::compute_fans({2, 3, 3, 4, 6}), (std::pair<double, double>{72, 108}));  // Conv3D
}

TEST(Initializers, VarianceScalingStatisticsMatchKerasFormulas) {
  struct Case {
    const char* name;
    Shape shape;
    double scale;
    const char* mode;
    bool uniform;
  };
  std::vector<Case> cases = {
      {"glorot_uniform", {300, 200}, 1.0, "fan_avg", true},   {"glorot_normal", {300, 200}, 1.0, "fan_avg", false},
      {"he_normal", {400, 150}, 2.0, "fan_in", false},        {"he_uniform", {3, 3, 32, 64}, 2.0, "fan_in", true},
      {"lecun_normal", {3, 3, 32, 64}, 1.0, "fan_in", false}, {"lecun_uniform", {250, 240}, 1.0, "fan_in", true},
  };
  manual_seed(1234);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor w = (*I::get(c.name))(c.shape, DType::f32);
    EXPECT_EQ(w.shape(), c.shape);
    EXPECT_EQ(w.dtype(), DType::f32);
    double var = target_variance(c.shape, c.scale, c.mode), sd = std::sqrt(var);
    auto n = static_cast<double>(w.numel());
    if (c.uniform) {
      double limit = std::sqrt(3 * var);  // U(-limit, limit) has variance limit^2 / 3
      Stats s = stats(w);
      EXPECT_LE(s.max, limit);
      EXPECT_GE(s.min, -limit);
      EXPECT_GT(s.max, 0.99 * limit);
      EXPECT_LT(s.min, -0.99 * limit);
      EXPECT_NEAR(s.var, var, 0.03 * var);
      EXPECT_NEAR(s.mean, 0, 5 * sd / std::sqrt(n));
    } else {
      // Truncated at two standard deviations of the underlying normal, whose stddev is raised so
      // that the truncated values have the target variance.
      double stddev = sd / 0.87962566103423978;
      Stats s = stats(w, 1.5 * stddev);
      EXPECT_LE(s.max, 2 * stddev * (1 + 1e-6));
      EXPECT_GE(s.min, -2 * stddev * (1 + 1e-6));
      EXPECT_GT(s.max, 1.95 * stddev);
      EXPECT_LT(s.min, -1.95 * stddev);
      EXPECT_NEAR(s.var, var, 0.04 * var);
      EXPECT_NEAR(s.mean, 0, 5 * sd / std::sqrt(n));
      // Shaped like a normal: P(1.5 < |Z| < 2) / P(|Z| < 2) = 9.23% lies beyond 1.5 stddev
      // (a uniform on the same range would put 25% there).
      EXPECT_NEAR(s.frac_beyond, 0.0923, 0.01);
    }
  }
}

TEST(Initializers, VarianceScalingModesAndDistributions) {
  manual_seed(99);
  Shape shape{120, 400};
  for (const char* mode : {"fan_in", "fan_out", "fan_avg"}) {
    SCOPED_TRACE(mode);
    double var = target_variance(shape, 3.0, mode);
    Stats u = stats(I::VarianceScaling(3.0, mode, "uniform")(shape, DType::f64));
    EXPECT_NEAR(u.var, var, 0.03 * var);
    EXPECT_LE(u.max, std::sqrt(3 * var));
    // Untruncated: about 4.55% of the values lie beyond two standard deviations.
    Stats n = stats(I::VarianceScaling(3.0, mode, "untruncated_normal")(shape, DType::f64), 2 * std::sqrt(var));
    EXPECT_NEAR(n.var, var, 0.03 * var);
    EXPECT_NEAR(n.frac_beyond, 0.0455, 0.006);
  }
  EXPECT_THROW(I::VarianceScaling(0.0), ValueError);
  EXPECT_THROW(I::VarianceScaling(1.0, "fan_sideways"), ValueError);
  EXPECT_THROW(I::VarianceScaling(1.0, "fan_in", "cauchy"), ValueError);
  // A small fan is not divided by less than one.
  EXPECT_NEAR(stats(I::VarianceScaling(1.0, "fan_in", "uniform")({1, 20000}, DType::f64)).var, 1.0, 0.03);
}

TEST(Initializers, ConstantsAndPlainDistributions) {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor z = (*I::get("zeros"))({2, 3}, dt), o = (*I::get("ones"))({4}, dt);
    EXPECT_EQ(z.dtype(), dt);
    EXPECT_EQ(values(z), std::vector<double>(6, 0.0));
    EXPECT_EQ(values(o), std::vector<double>(4, 1.0));
    EXPECT_EQ(values(I::Constant(3.5)({3, 1}, dt)), std::vector<double>(3, 3.5));
  }
  EXPECT_EQ(I::Zeros()({0, 5}, DType::f32).numel(), 0);
  manual_seed(5);
  Stats n = stats(I::RandomNormal(1.0, 0.5)({200, 200}, DType::f64));
  EXPECT_NEAR(n.mean, 1.0, 0.01);
  EXPECT_NEAR(std::sqrt(n.var), 0.5, 0.01);
  Stats u = stats(I::RandomUniform(-0.2, 0.3)({200, 200}, DType::f64));
  EXPECT_GE(u.min, -0.2);
  EXPECT_LT(u.max, 0.3);
  EXPECT_NEAR(u.mean, 0.05, 0.005);
  EXPECT_NEAR(u.var, 0.25 / 12, 0.03 * 0.25 / 12);
  // Keras's defaults: RandomNormal(0, 0.05), RandomUniform(-0.05, 0.05) ("uniform" for Embedding).
  Stats d = stats((*I::get("uniform"))({100, 100}, DType::f64));
  EXPECT_GE(d.min, -0.05);
  EXPECT_LT(d.max, 0.05);
  EXPECT_NEAR(std::sqrt(stats((*I::get("random_normal"))({100, 100}, DType::f64)).var), 0.05, 0.002);
}

TEST(Initializers, SeededDrawsRepeat) {
  for (const char* name : {"glorot_uniform", "he_normal", "lecun_normal", "random_normal", "random_uniform"}) {
    SCOPED_TRACE(name);
    I::InitializerPtr init = I::get(name);
    manual_seed(2024);
    std::vector<double> a = values((*init)({30, 40}, DType::f32));
    std::vector<double> b = values((*init)({30, 40}, DType::f32));
    manual_seed(2024);
    std::vector<double> c = values((*init)({30, 40}, DType::f32));
    manual_seed(2025);
    std::vector<double> d = values((*init)({30, 40}, DType::f32));
    EXPECT_EQ(a, c);
    EXPECT_NE(a, b);
    EXPECT_NE(a, d);
  }
  // Layers draw their weights from the same generator.
  manual_seed(7);
  layers::Dense d1(4);
  d1(zeros({1, 3}));
  manual_seed(7);
  layers::Dense d2(4);
  d2(zeros({1, 3}));
  EXPECT_EQ(values(d1->kernel->value), values(d2->kernel->value));
}

TEST(Initializers, ByNameAndConfigs) {
  std::vector<std::pair<std::string, std::string>> names = {
      {"glorot_uniform", "GlorotUniform"},
      {"glorot_normal", "GlorotNormal"},
      {"he_normal", "HeNormal"},
      {"he_uniform", "HeUniform"},
      {"lecun_normal", "LecunNormal"},
      {"lecun_uniform", "LecunUniform"},
      {"zeros", "Zeros"},
      {"ones", "Ones"},
      {"random_normal", "RandomNormal"},
      {"random_uniform", "RandomUniform"},
  };
  for (auto& [snake, camel] : names) {
    SCOPED_TRACE(snake);
    EXPECT_EQ(I::get(snake)->class_name(), camel);
    EXPECT_EQ(I::get(camel)->class_name(), camel);
    Config c = I::to_config(I::get(snake));
    EXPECT_EQ(c["class_name"], camel);
    EXPECT_TRUE(c["config"].is_object());
    I::InitializerPtr back = I::from_config(Config::parse(c.dump()));
    EXPECT_EQ(I::to_config(back), c);
    manual_seed(11);
    std::vector<double> a = values((*I::get(snake))({6, 7}, DType::f32));
    manual_seed(11);
    EXPECT_EQ(values((*back)({6, 7}, DType::f32)), a);
  }
  // Arguments survive the round trip and change the draws.
  std::vector<I::InitializerPtr> custom = {
      std::make_shared<I::Constant>(-2.5), std::make_shared<I::RandomNormal>(0.5, 2.0),
      std::make_shared<I::RandomUniform>(1.0, 4.0), std::make_shared<I::VarianceScaling>(0.3, "fan_out", "uniform")};
  for (const auto& init : custom) {
    SCOPED_TRACE(init->class_name());
    Config c = I::to_config(init);
    I::InitializerPtr back = I::from_config(c);
    EXPECT_EQ(back->class_name(), init->class_name());
    EXPECT_EQ(I::to_config(back), c);
    manual_seed(3);
    std::vector<double> a = values((*init)({50, 20}, DType::f32));
    manual_seed(3);
    EXPECT_EQ(values((*back)({50, 20}, DType::f32)), a);
  }
  Config vs = I::to_config(custom[3]);
  EXPECT_DOUBLE_EQ(vs["config"]["scale"].get<double>(), 0.3);
  EXPECT_EQ(vs["config"]["mode"], "fan_out");
  EXPECT_EQ(vs["config"]["distribution"], "uniform");
  // A Keras file may give the class with an empty config: Keras's defaults.
  Config keras_style = Config::parse(R"({"class_name": "HeNormal", "config": {"seed": null}})");
  EXPECT_EQ(I::to_config(I::from_config(keras_style)), I::to_config(I::he_normal()));

  std::string msg = error_of<ValueError>([] { I::get("xavier"); });
  EXPECT_THAT(msg, HasSubstr("xavier"));
  EXPECT_THAT(msg, HasSubstr("glorot_uniform"));
  EXPECT_THROW(I::from_config(Config::parse(R"({"class_name": "Orthogonal2"})")), ValueError);
}
