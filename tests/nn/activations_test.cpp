// Activations by name (keras.activations): every registered name against a std:: reference,
// gradients by finite differences, unknown names, and ActivationArg with a function.
#include <cmath>
#include <functional>
#include <map>

#include "nn/nn_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

double sigmoid_ref(double v) { return 1 / (1 + std::exp(-v)); }

/// Element-wise references, as Keras 3 defines them.
const std::map<std::string, std::function<double(double)>>& elementwise_refs() {
  static const std::map<std::string, std::function<double(double)>> m = {
      {"linear", [](double v) { return v; }},
      {"relu", [](double v) { return std::max(v, 0.0); }},
      {"relu6", [](double v) { return std::clamp(v, 0.0, 6.0); }},
      {"sigmoid", sigmoid_ref},
      {"tanh", [](double v) { return std::tanh(v); }},
      {"gelu", [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},  // approximate=False
      {"elu", [](double v) { return v > 0 ? v : std::expm1(v); }},
      {"selu",
       [](double v) {
         const double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
         return scale * (v > 0 ? v : alpha * std::expm1(v));
       }},
      {"leaky_relu", [](double v) { return v > 0 ? v : 0.2 * v; }},  // Keras's negative_slope=0.2
      {"softplus", [](double v) { return std::log1p(std::exp(v)); }},
      {"softsign", [](double v) { return v / (1 + std::abs(v)); }},
      {"silu", [](double v) { return v * sigmoid_ref(v); }},
      {"swish", [](double v) { return v * sigmoid_ref(v); }},
      {"hard_sigmoid", [](double v) { return std::clamp(v / 6 + 0.5, 0.0, 1.0); }},  // relu6(x + 3) / 6
      {"exponential", [](double v) { return std::exp(v); }},
  };
  return m;
}

/// Softmax / log-softmax over the last axis of rows of length n.
std::vector<double> softmax_rows(const std::vector<double>& x, size_t n, bool log) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / n; ++r) {
    double mx = -INFINITY, s = 0;
    for (size_t i = 0; i < n; ++i) mx = std::max(mx, x[r * n + i]);
    for (size_t i = 0; i < n; ++i) s += std::exp(x[r * n + i] - mx);
    for (size_t i = 0; i < n; ++i)
      y[r * n + i] = log ? x[r * n + i] - mx - std::log(s) : std::exp(x[r * n + i] - mx) / s;
  }
  return y;
}

std::vector<double> reference(const std::string& name, const std::vector<double>& x, size_t row) {
  if (name == "softmax" || name == "log_softmax") return softmax_rows(x, row, name == "log_softmax");
  auto it = elementwise_refs().find(name);
  if (it == elementwise_refs().end()) return {};
  std::vector<double> y;
  for (double v : x) y.push_back(it->second(v));
  return y;
}

}  // namespace

TEST(Activations, KerasNamesAreRegistered) {
  std::vector<std::string> names = activations::names();
  for (const char* n : {"linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax", "gelu", "elu", "selu",
                        "leaky_relu", "softplus", "softsign", "silu", "swish", "hard_sigmoid", "exponential"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
}

TEST(Activations, EveryNameMatchesItsReference) {
  for (const std::string& name : activations::names()) {
    SCOPED_TRACE(name);
    activations::Activation f = activations::get(name);
    Tensor x = make_input({4, 7}, Layout::Permuted, -8, 8);  // float64, a non-contiguous view
    std::vector<double> want = reference(name, values(x), 7);
    ASSERT_FALSE(want.empty()) << "no reference for activation '" << name << "': add one to this test";
    Tensor y = f(x);
    EXPECT_EQ(y.dtype(), DType::f64);
    EXPECT_TRUE(all_close(y, want, 1e-10, 1e-12));
    // Float32 (what layers compute in) keeps its dtype and agrees to float precision.
    Tensor y32 = f(x.to(DType::f32));
    EXPECT_EQ(y32.dtype(), DType::f32);
    EXPECT_TRUE(all_close(y32, reference(name, values(x.to(DType::f32)), 7), 2e-5, 2e-6));
    // Size-1 and empty batches.
    EXPECT_EQ(f(zeros({0, 3}, {.dtype = DType::f64})).shape(), (Shape{0, 3}));
    Tensor one = uniform({1, 1}, -2, 2);
    EXPECT_TRUE(all_close(f(one), reference(name, values(one), 1), 1e-10, 1e-12));
  }
}

TEST(Activations, GradientsMatchFiniteDifferences) {
  for (const std::string& name : activations::names()) {
    SCOPED_TRACE(name);
    activations::Activation f = activations::get(name);
    Tensor x = uniform({3, 5}, -4, 4);  // kinks (0, +-3, 6) are hit with probability zero
    x.requires_grad_(true);
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return f(in[0]); }, {x}));
  }
}

TEST(Activations, EmptyNameIsLinearAndUnknownNamesListTheKnownOnes) {
  Tensor x = uniform({2, 3});
  EXPECT_TRUE(activations::get("")(x).is_same(x));
  EXPECT_TRUE(activations::get("linear")(x).is_same(x));
  std::string msg = error_of<ValueError>([] { activations::get("rleu"); });
  EXPECT_THAT(msg, HasSubstr("rleu"));
  for (const std::string& n : activations::names()) EXPECT_THAT(msg, HasSubstr(n));
  EXPECT_THROW(activations::get("Relu"), ValueError);  // names are case-sensitive, as in Keras 3
}

TEST(Activations, ActivationArgTakesANameOrAFunction) {
  Tensor x = uniform({2, 4}, -3, 3);
  ActivationArg none;
  EXPECT_EQ(none.name(), "");
  EXPECT_TRUE(all_close(none.fn()(x), x, 0, 0));
  ActivationArg by_name = "tanh";
  EXPECT_EQ(by_name.name(), "tanh");
  EXPECT_TRUE(all_close(by_name.fn()(x), reference("tanh", values(x), 4), 1e-12, 1e-12));
  ActivationArg by_string = std::string("softplus");
  EXPECT_TRUE(all_close(by_string.fn()(x), reference("softplus", values(x), 4), 1e-12, 1e-12));

  ActivationArg custom = activations::Activation([](const Tensor& t) { return t * t + 1.0; });
  EXPECT_EQ(custom.name(), "custom");
  std::vector<double> want;
  for (double v : values(x)) want.push_back(v * v + 1);
  EXPECT_TRUE(all_close(custom.fn()(x), want, 1e-12, 1e-12));

  // In a layer: Dense with a function applies it after the affine map, and reports its name.
  layers::Dense d(3, {.activation = activations::Activation([](const Tensor& t) { return t * 2.0; })});
  Tensor xi = uniform({2, 4}, -1, 1, DType::f32);
  Tensor y = d(xi);
  EXPECT_EQ(d->activation_name(), "custom");
  std::vector<double> lin = values(d->call_without_activation(xi, false)), yv = values(y);
  ASSERT_EQ(lin.size(), yv.size());
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_FLOAT_EQ(yv[i], 2 * lin[i]);
}
