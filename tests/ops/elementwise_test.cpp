// Element-wise ops: forward against naive double references (broadcasting,
// views, empty and 0-d tensors, every dtype), dtype promotion, the SIMD and
// threaded float32 paths on large inputs with edge values, and gradients.
#include <cfloat>
#include <cmath>
#include <random>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

using F1 = std::function<double(double)>;
using F2 = std::function<double(double, double)>;

double sigmoid_d(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double gelu_d(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_d(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }
double softplus_d(double x, double beta, double th) {
  return beta * x > th ? x : std::log1p(std::exp(beta * x)) / beta;
}

struct UnaryCase {
  std::string name;
  std::function<Tensor(const Tensor&)> f;
  F1 ref;
  double lo, hi;   // domain for random inputs
  bool any_dtype;  // also defined for integer tensors
  bool differentiable;
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, -3, 3, true, true},
      {"operator-", [](const Tensor& x) { return -x; }, [](double x) { return -x; }, -3, 3, true, true},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::abs(x); }, -3, 3, true, true},
      {"sign", [](const Tensor& x) { return sign(x); }, [](double x) { return double((x > 0) - (x < 0)); }, -3, 3, true,
       true},
      {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; }, -3, 3, true, true},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }, -5, 5, false, true},
      {"expm1", [](const Tensor& x) { return expm1(x); }, [](double x) { return std::expm1(x); }, -2, 2, false, true},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, 0.1, 5, false, true},
      {"log1p", [](const Tensor& x) { return log1p(x); }, [](double x) { return std::log1p(x); }, -0.9, 5, false, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, 0.1, 5, false, true},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1 / std::sqrt(x); }, 0.1, 5, false,
       true},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, [](double x) { return 1 / x; }, 0.2, 3, false,
       true},
      {"sin", [](const Tensor& x) { return sin(x); }, [](double x) { return std::sin(x); }, -6, 6, false, true},
      {"cos", [](const Tensor& x) { return cos(x); }, [](double x) { return std::cos(x); }, -6, 6, false, true},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, -4, 4, false, true},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_d, -8, 8, false, true},
      {"erf", [](const Tensor& x) { return erf(x); }, [](double x) { return std::erf(x); }, -3, 3, false, true},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; }, -3, 3, true, true},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.1); }, [](double x) { return x > 0 ? x : 0.1 * x; },
       -3, 3, false, true},
      {"elu", [](const Tensor& x) { return elu(x, 0.7); }, [](double x) { return x > 0 ? x : 0.7 * std::expm1(x); }, -3,
       3, false, true},
      {"gelu", [](const Tensor& x) { return gelu(x); }, gelu_d, -4, 4, false, true},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, true); }, gelu_tanh_d, -4, 4, false, true},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 5.0); },
       [](double x) { return softplus_d(x, 2.0, 5.0); }, -4, 4, false, true},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double x) { return x * sigmoid_d(x); }, -5, 5, false, true},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.3, 0.4); },
       [](double x) { return std::min(std::max(x, -0.3), 0.4); }, -1, 1, false, true},
      {"clamp_min", [](const Tensor& x) { return clamp_min(x, 0.2); }, [](double x) { return std::max(x, 0.2); }, -1, 1,
       false, true},
      {"clamp_max", [](const Tensor& x) { return clamp_max(x, -0.1); }, [](double x) { return std::min(x, -0.1); }, -1,
       1, false, true},
      {"pow3", [](const Tensor& x) { return pow(x, 3.0); }, [](double x) { return x * x * x; }, -2, 2, false, true},
      {"pow2", [](const Tensor& x) { return pow(x, 2.0); }, [](double x) { return x * x; }, -2, 2, false, true},
      {"pow_half", [](const Tensor& x) { return pow(x, 0.5); }, [](double x) { return std::sqrt(x); }, 0.1, 4, false,
       true},
      {"pow_neg", [](const Tensor& x) { return pow(x, -1.5); }, [](double x) { return std::pow(x, -1.5); }, 0.2, 3,
       false, true},
      {"pow0", [](const Tensor& x) { return pow(x, 0.0); }, [](double) { return 1.0; }, -2, 2, false, true},
      {"x.exp()", [](const Tensor& x) { return x.exp(); }, [](double x) { return std::exp(x); }, -2, 2, false, true},
      {"x.pow(3)", [](const Tensor& x) { return x.pow(3); }, [](double x) { return x * x * x; }, -2, 2, true, true},
  };
}

const std::vector<std::vector<int64_t>> kUnaryShapes = {{3, 4, 5}, {7}, {2, 1, 3}, {1}, {0, 3}, {4, 0}, {}, {33}};

}  // namespace

// --- unary forward

TEST(Elementwise, UnaryMatchesReferenceFloat64AllLayouts) {
  manual_seed(1);
  for (auto& c : unary_cases())
    for (auto& shape : kUnaryShapes)
      for (Layout l : kLayouts) {
        Tensor x = make_input(shape, l, c.lo, c.hi);
        Tensor y = c.f(x);
        EXPECT_EQ(y.dtype(), DType::f64) << c.name;
        auto want = ref_map({x}, shape, [&](const std::vector<double>& a) { return c.ref(a[0]); });
        EXPECT_TRUE(matches(y, shape, want, 1e-12, 1e-14))
            << c.name << " shape " << to_string(IntList(shape)) << " " << layout_name(l);
      }
}

TEST(Elementwise, UnaryMatchesReferenceFloat32AndHalfTypes) {
  manual_seed(2);
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (auto& c : unary_cases())
      for (auto& shape : {std::vector<int64_t>{5, 37}, std::vector<int64_t>{3, 1, 4}, std::vector<int64_t>{}})
        for (Layout l : kLayouts) {
          Tensor x = make_input(shape, l, c.lo, c.hi, dt);
          Tensor y = c.f(x);
          EXPECT_EQ(y.dtype(), dt) << c.name;
          // The reference starts from the input as stored (already rounded to dt).
          auto want = ref_map({x}, shape, [&](const std::vector<double>& a) { return c.ref(a[0]); });
          double atol = atol_for(dt) * (c.name == "pow_neg" || c.name == "exp" ? 10 : 1);
          EXPECT_TRUE(matches(y, shape, want, rtol_for(dt), atol))
              << c.name << " " << name(dt) << " shape " << to_string(IntList(shape)) << " " << layout_name(l);
        }
}

TEST(Elementwise, UnaryOnIntegerTensors) {
  Tensor x = tensor({-3, -1, 0, 2, 5});
  for (auto& c : unary_cases()) {
    bool promotes = c.name.starts_with("clamp") || c.name.starts_with("pow") || c.name.starts_with("x.pow");
    if (promotes && c.name != "x.pow(3)") {  // float bounds / exponents: float32, as PyTorch
      Tensor y = c.f(x);
      EXPECT_EQ(y.dtype(), DType::f32) << c.name;
      EXPECT_TRUE(matches(y, {5}, ref_map({x}, {5}, [&](auto& a) { return c.ref(a[0]); }), 1e-6, 0)) << c.name;
      continue;
    }
    if (!c.any_dtype && c.name != "x.pow(3)") {
      std::string msg = error_of<DTypeError>([&] { c.f(x); });
      EXPECT_NE(msg.find("int64"), std::string::npos) << c.name << ": " << msg;
      continue;
    }
    Tensor y = c.f(x);
    EXPECT_EQ(y.dtype(), DType::i64) << c.name;
    EXPECT_TRUE(matches(y, {5}, ref_map({x}, {5}, [&](auto& a) { return c.ref(a[0]); }), 0, 0)) << c.name;
  }
  Tensor i32 = tensor(std::vector<int32_t>{-4, 7});
  EXPECT_EQ(abs(i32).dtype(), DType::i32);
  EXPECT_TRUE(matches(abs(i32), {2}, {4, 7}, 0, 0));
  EXPECT_TRUE(matches(pow(i32, 2), {2}, {16, 49}, 0, 0));
  EXPECT_EQ(pow(i32, 2).dtype(), DType::i32);
  EXPECT_TRUE(matches(clamp(tensor({-5, 0, 9}), -2, 3), {3}, {-2, 0, 3}, 0, 0));
  Tensor u = tensor(std::vector<uint8_t>{0, 3, 255});
  EXPECT_TRUE(matches(relu(u), {3}, {0, 3, 255}, 0, 0));
  EXPECT_TRUE(matches(abs(u), {3}, {0, 3, 255}, 0, 0));
}

TEST(Elementwise, IntegerPowerWithFloatExponentGivesFloat) {
  // As PyTorch: int tensor ** 0.5 is float32; integers to negative integer powers are an error.
  Tensor x = tensor({1, 4, 9});
  Tensor y = pow(x, 0.5);
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_TRUE(matches(y, {3}, {1, 2, 3}, 1e-6, 0));
  EXPECT_EQ(pow(x, 2.0).dtype(), DType::f32);
  EXPECT_EQ(pow(x, 2).dtype(), DType::i64);
  EXPECT_THROW(pow(x, -1), ValueError);
  EXPECT_TRUE(matches(pow(x, 0), {3}, {1, 1, 1}, 0, 0));
}

TEST(Elementwise, ClampOfIntegersWithFloatBoundsGivesFloat) {
  Tensor y = clamp(tensor({-2, 1, 3}), -0.5, 2.5);
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_TRUE(matches(y, {3}, {-0.5, 1, 2.5}, 0, 0));
  EXPECT_EQ(clamp_min(tensor({-2, 1}), 0).dtype(), DType::i64);
  EXPECT_THROW(clamp(tensor({1.f}), 2, 1), ValueError);
}

TEST(Elementwise, PredicatesAndLogicalNot) {
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    Tensor x = tensor(std::vector<double>{1.0, NAN, INFINITY, -INFINITY, 0.0, -2.5}).to(dt);
    Tensor n = isnan(x), f = isfinite(x);
    EXPECT_EQ(n.dtype(), DType::b8);
    EXPECT_TRUE(matches(n, {6}, {0, 1, 0, 0, 0, 0}, 0, 0)) << name(dt);
    EXPECT_TRUE(matches(f, {6}, {1, 0, 0, 0, 1, 1}, 0, 0)) << name(dt);
    EXPECT_TRUE(matches(logical_not(x), {6}, {0, 0, 0, 0, 1, 0}, 0, 0)) << name(dt);
  }
  Tensor i = tensor({0, 3, -1});
  EXPECT_TRUE(matches(isnan(i), {3}, {0, 0, 0}, 0, 0));
  EXPECT_TRUE(matches(isfinite(i), {3}, {1, 1, 1}, 0, 0));
  EXPECT_TRUE(matches(~(i > 0), {3}, {1, 0, 1}, 0, 0));
  Tensor v = make_input({4, 5}, Layout::Strided);
  EXPECT_TRUE(matches(isnan(v), {4, 5}, std::vector<double>(20, 0.0), 0, 0));
  EXPECT_TRUE(matches(isfinite(zeros({0, 2})), {0, 2}, {}, 0, 0));
}

// --- binary forward

namespace {

struct BinaryCase {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> f;
  F2 ref;
  double alo, ahi, blo, bhi;
  bool bool_result;
};

std::vector<BinaryCase> binary_cases() {
  auto b = [](double v) { return v ? 1.0 : 0.0; };
  return {
      {"add", [](auto& a, auto& c) { return add(a, c); }, [](double a, double c) { return a + c; }, -2, 2, -2, 2,
       false},
      {"operator+", [](auto& a, auto& c) { return a + c; }, [](double a, double c) { return a + c; }, -2, 2, -2, 2,
       false},
      {"sub", [](auto& a, auto& c) { return a - c; }, [](double a, double c) { return a - c; }, -2, 2, -2, 2, false},
      {"mul", [](auto& a, auto& c) { return a * c; }, [](double a, double c) { return a * c; }, -2, 2, -2, 2, false},
      {"div", [](auto& a, auto& c) { return a / c; }, [](double a, double c) { return a / c; }, -2, 2, 0.5, 2, false},
      {"pow", [](auto& a, auto& c) { return pow(a, c); }, [](double a, double c) { return std::pow(a, c); }, 0.5, 2, -2,
       2, false},
      {"maximum", [](auto& a, auto& c) { return maximum(a, c); }, [](double a, double c) { return std::max(a, c); }, -2,
       2, -2, 2, false},
      {"minimum", [](auto& a, auto& c) { return minimum(a, c); }, [](double a, double c) { return std::min(a, c); }, -2,
       2, -2, 2, false},
      {"eq", [](auto& a, auto& c) { return a == c; }, [=](double a, double c) { return b(a == c); }, -2, 2, -2, 2,
       true},
      {"ne", [](auto& a, auto& c) { return a != c; }, [=](double a, double c) { return b(a != c); }, -2, 2, -2, 2,
       true},
      {"lt", [](auto& a, auto& c) { return a < c; }, [=](double a, double c) { return b(a < c); }, -2, 2, -2, 2, true},
      {"le", [](auto& a, auto& c) { return le(a, c); }, [=](double a, double c) { return b(a <= c); }, -2, 2, -2, 2,
       true},
      {"gt", [](auto& a, auto& c) { return gt(a, c); }, [=](double a, double c) { return b(a > c); }, -2, 2, -2, 2,
       true},
      {"ge", [](auto& a, auto& c) { return a >= c; }, [=](double a, double c) { return b(a >= c); }, -2, 2, -2, 2,
       true},
      {"logical_and", [](auto& a, auto& c) { return (a > 0) & (c > 0); },
       [=](double a, double c) { return b(a > 0 && c > 0); }, -2, 2, -2, 2, true},
      {"logical_or", [](auto& a, auto& c) { return logical_or(a > 0, c > 0); },
       [=](double a, double c) { return b(a > 0 || c > 0); }, -2, 2, -2, 2, true},
      {"logical_xor", [](auto& a, auto& c) { return (a > 0) ^ (c > 0); },
       [=](double a, double c) { return b((a > 0) != (c > 0)); }, -2, 2, -2, 2, true},
      {"logical_and_numbers", [](auto& a, auto& c) { return logical_and(a, c); },
       [=](double a, double c) { return b(a != 0 && c != 0); }, -2, 2, -2, 2, true},
  };
}

const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> kBroadcastPairs = {
    {{3, 1, 5}, {4, 1}}, {{2, 3, 4}, {2, 3, 4}}, {{5}, {}},     {{}, {}},         {{0, 3}, {1, 3}},
    {{2, 0, 1}, {3}},    {{1}, {4, 1, 2}},       {{1, 1}, {1}}, {{6, 1}, {1, 35}}};

}  // namespace

TEST(Elementwise, BinaryBroadcastsLikeNumPy) {
  manual_seed(3);
  for (auto& c : binary_cases())
    for (auto& [sa, sb] : kBroadcastPairs)
      for (auto [la, lb] :
           {std::pair{Layout::Contiguous, Layout::Contiguous}, std::pair{Layout::Permuted, Layout::Strided},
            std::pair{Layout::Strided, Layout::Permuted}}) {
        Tensor a = make_input(sa, la, c.alo, c.ahi), b = make_input(sb, lb, c.blo, c.bhi);
        if (c.name == "eq" || c.name == "ne" || c.name == "le" || c.name == "ge") {
          // Give the comparisons some equal elements.
          no_grad g;
          a = make_input(sa, la, 0, 3).to(DType::i64).to(DType::f64);
          b = make_input(sb, lb, 0, 3).to(DType::i64).to(DType::f64);
        }
        auto shape = bshape(sa, sb);
        Tensor y = c.f(a, b);
        EXPECT_EQ(y.dtype(), c.bool_result ? DType::b8 : DType::f64) << c.name;
        auto want = ref_map({a, b}, shape, [&](auto& v) { return c.ref(v[0], v[1]); });
        EXPECT_TRUE(matches(y, shape, want, 1e-12, 1e-14))
            << c.name << " " << to_string(IntList(sa)) << " with " << to_string(IntList(sb)) << " (" << layout_name(la)
            << ", " << layout_name(lb) << ")";
        // Swapped operands broadcast the same way.
        Tensor y2 = c.f(b, a);
        auto want2 = ref_map({b, a}, shape, [&](auto& v) { return c.ref(v[0], v[1]); });
        if (c.name != "pow" && c.name != "div") {
          EXPECT_TRUE(matches(y2, shape, want2, 1e-12, 1e-14)) << c.name << " swapped";
        }
      }
}

TEST(Elementwise, BinaryInFloat32AndHalfTypes) {
  manual_seed(4);
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (auto& c : binary_cases())
      for (auto& [sa, sb] : {std::pair{std::vector<int64_t>{3, 1, 37}, std::vector<int64_t>{4, 1}},
                             std::pair{std::vector<int64_t>{6, 40}, std::vector<int64_t>{6, 40}},
                             std::pair{std::vector<int64_t>{45}, std::vector<int64_t>{}}})
        for (Layout l : kLayouts) {
          Tensor a = make_input(sa, l, c.alo, c.ahi, dt), b = make_input(sb, Layout::Contiguous, c.blo, c.bhi, dt);
          auto shape = bshape(sa, sb);
          Tensor y = c.f(a, b);
          EXPECT_EQ(y.dtype(), c.bool_result ? DType::b8 : dt) << c.name;
          auto want = ref_map({a, b}, shape, [&](auto& v) { return c.ref(v[0], v[1]); });
          EXPECT_TRUE(matches(y, shape, want, rtol_for(dt), atol_for(dt)))
              << c.name << " " << name(dt) << " " << layout_name(l);
          // Scalar operand on the left (the SIMD kernels' other broadcast mode).
          Tensor y2 = c.f(b, a);
          auto want2 = ref_map({b, a}, shape, [&](auto& v) { return c.ref(v[0], v[1]); });
          if (c.name != "pow" && c.name != "div") {
            EXPECT_TRUE(matches(y2, shape, want2, rtol_for(dt), atol_for(dt))) << c.name << " " << name(dt);
          }
        }
}

TEST(Elementwise, IntegerArithmetic) {
  Tensor a = tensor({7, -7, 3, 0}), b = tensor({2, 3, -4, 5});
  EXPECT_TRUE(matches(a + b, {4}, {9, -4, -1, 5}, 0, 0));
  EXPECT_TRUE(matches(a - b, {4}, {5, -10, 7, -5}, 0, 0));
  EXPECT_TRUE(matches(a * b, {4}, {14, -21, -12, 0}, 0, 0));
  EXPECT_TRUE(matches(maximum(a, b), {4}, {7, 3, 3, 5}, 0, 0));
  EXPECT_TRUE(matches(minimum(a, b), {4}, {2, -7, -4, 0}, 0, 0));
  EXPECT_TRUE(matches(pow(tensor({2, 3, -2}), tensor({10, 3, 3})), {3}, {1024, 27, -8}, 0, 0));
  EXPECT_EQ((a * b).dtype(), DType::i64);
  // True division: float32, like PyTorch's /.
  Tensor q = a / b;
  EXPECT_EQ(q.dtype(), DType::f32);
  EXPECT_TRUE(matches(q, {4}, {3.5, -7.0 / 3, -0.75, 0}, 1e-6, 0));
  EXPECT_EQ(div(tensor(std::vector<int32_t>{1}), tensor(std::vector<int32_t>{2})).dtype(), DType::f32);
  auto inf = div(tensor({1, -1, 0}), tensor({0, 0, 0}));
  EXPECT_TRUE(matches(inf, {3}, {INFINITY, -INFINITY, NAN}, 0, 0));
  // Big int64 values stay exact (no round trip through double).
  int64_t big = (int64_t(1) << 53) + 1;
  EXPECT_EQ((tensor({big}) + tensor({int64_t(2)})).item<int64_t>(), big + 2);
  // bool + bool is logical or, bool * bool logical and (as PyTorch).
  Tensor t = tensor({true, true, false}), f = tensor({true, false, false});
  EXPECT_EQ((t + f).dtype(), DType::b8);
  EXPECT_TRUE(matches(t + f, {3}, {1, 1, 0}, 0, 0));
  EXPECT_TRUE(matches(t * f, {3}, {1, 0, 0}, 0, 0));
  EXPECT_THROW(t - f, DTypeError);
  EXPECT_THROW(-t, DTypeError);
}

TEST(Elementwise, WhereBroadcastsAllThree) {
  manual_seed(5);
  for (auto& [sc, sa, sb] :
       {std::tuple{std::vector<int64_t>{3, 1, 4}, std::vector<int64_t>{2, 1}, std::vector<int64_t>{4}},
        std::tuple{std::vector<int64_t>{5}, std::vector<int64_t>{}, std::vector<int64_t>{5}},
        std::tuple{std::vector<int64_t>{0, 2}, std::vector<int64_t>{2}, std::vector<int64_t>{}}})
    for (Layout l : kLayouts) {
      Tensor cond = make_input(sc, l) > 0.0;
      Tensor a = make_input(sa, l), b = make_input(sb, Layout::Contiguous);
      auto shape = bshape(bshape(sc, sa), sb);
      Tensor y = where(cond, a, b);
      auto want = ref_map({cond, a, b}, shape, [](auto& v) { return v[0] != 0 ? v[1] : v[2]; });
      EXPECT_TRUE(matches(y, shape, want, 0, 0)) << layout_name(l);
    }
  Tensor c = tensor({true, false, true});
  Tensor y = where(c, tensor({1, 2, 3}), tensor({1.5f, 2.5f, 3.5f}));
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_TRUE(matches(y, {3}, {1, 2.5, 3}, 0, 0));
  EXPECT_TRUE(matches(where(c, tensor({1.f, 2.f, 3.f}), 0.5), {3}, {1, 0.5, 3}, 0, 0));
  EXPECT_EQ(where(c, tensor({1.f, 2.f, 3.f}), 0.5).dtype(), DType::f32);
  EXPECT_TRUE(matches(where(c, -1, tensor({4, 5, 6})), {3}, {-1, 5, -1}, 0, 0));
  EXPECT_EQ(where(c, -1, tensor({4, 5, 6})).dtype(), DType::i64);
  EXPECT_THROW(where(tensor({1, 0, 1}), tensor({1, 2, 3}), tensor({1, 2, 3})), DTypeError);
  EXPECT_THROW(where(c, ones({2}), ones({3})), ShapeError);
}

TEST(Elementwise, NumbersMixWithTensors) {
  manual_seed(6);
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::i32}) {
    Tensor x = make_input({3, 4}, Layout::Permuted, 1, 5, DType::f64).to(dt);
    auto shape = vshape(x);
    auto check = [&](const Tensor& y, DType want_dt, const std::function<double(double)>& f, const char* what) {
      EXPECT_EQ(y.dtype(), want_dt) << what << " on " << name(dt);
      EXPECT_TRUE(matches(y, shape, ref_map({x}, shape, [&](auto& v) { return f(v[0]); }), 1e-6, 1e-6))
          << what << " on " << name(dt);
    };
    DType fl = is_floating(dt) ? dt : DType::f32;
    check(
        x * 2, dt, [](double v) { return v * 2; }, "x * 2");
    check(
        2 * x, dt, [](double v) { return 2 * v; }, "2 * x");
    check(
        x + 3, dt, [](double v) { return v + 3; }, "x + 3");
    check(
        3 + x, dt, [](double v) { return 3 + v; }, "3 + x");
    check(
        x - 2, dt, [](double v) { return v - 2; }, "x - 2");
    check(
        2 - x, dt, [](double v) { return 2 - v; }, "2 - x");
    check(
        x / 2, fl, [](double v) { return v / 2; }, "x / 2");
    check(
        2 / x, fl, [](double v) { return 2 / v; }, "2 / x");
    check(
        x * 2.5, fl, [](double v) { return v * 2.5; }, "x * 2.5");
    check(
        0.5 - x, fl, [](double v) { return 0.5 - v; }, "0.5 - x");
    check(
        x > 2.5, DType::b8, [](double v) { return v > 2.5 ? 1.0 : 0.0; }, "x > 2.5");
    check(
        x <= 3, DType::b8, [](double v) { return v <= 3 ? 1.0 : 0.0; }, "x <= 3");
    check(
        x == 2, DType::b8, [](double v) { return v == 2 ? 1.0 : 0.0; }, "x == 2");
    check(
        x != 2, DType::b8, [](double v) { return v != 2 ? 1.0 : 0.0; }, "x != 2");
  }
  // 0-d with 0-d stays 0-d.
  Tensor s = scalar_tensor(3.0, {.dtype = DType::f64});
  Tensor r = s * scalar_tensor(2.0, {.dtype = DType::f64}) - 1;
  EXPECT_EQ(r.dim(), 0);
  EXPECT_DOUBLE_EQ(r.item<double>(), 5.0);
  // A wrapped number keeps full precision: float32 x * (1 + 2^-30) is computed on the double factor,
  // then rounded, as PyTorch does.
  Tensor big = tensor({16777216.f});
  EXPECT_EQ((big + 1.0).item<float>(), 16777216.f);  // float32 result
}

TEST(Elementwise, DtypePromotion) {
  auto t = [](DType d) { return ones({2}, {.dtype = d}); };
  auto z = [](DType d) { return ones({}, {.dtype = d}); };  // 0-d tensor (not a wrapped number)
  struct P {
    Tensor a, b;
    DType want;
    const char* what;
  };
  std::vector<P> cases = {
      {t(DType::f32), t(DType::i64), DType::f32, "f32 + i64"},
      {t(DType::i32), t(DType::i64), DType::i64, "i32 + i64"},
      {t(DType::u8), t(DType::i32), DType::i32, "u8 + i32"},
      {t(DType::b8), t(DType::i32), DType::i32, "bool + i32"},
      {t(DType::b8), t(DType::f16), DType::f16, "bool + f16"},
      {t(DType::f32), t(DType::f64), DType::f64, "f32 + f64"},
      {t(DType::bf16), t(DType::f16), DType::f32, "bf16 + f16"},
      {t(DType::bf16), t(DType::f32), DType::f32, "bf16 + f32"},
      {t(DType::f16), t(DType::i64), DType::f16, "f16 + i64"},
      {t(DType::f32), z(DType::f64), DType::f32, "f32 + 0-d f64"},
      {t(DType::i64), z(DType::f64), DType::f64, "i64 + 0-d f64"},
      {t(DType::i32), z(DType::i64), DType::i32, "i32 + 0-d i64"},
      {t(DType::b8), z(DType::i32), DType::i32, "bool + 0-d i32"},
      {z(DType::f32), z(DType::f64), DType::f64, "0-d f32 + 0-d f64"},
      {t(DType::f32), scalar_tensor(2.5), DType::f32, "f32 + 2.5"},
      {t(DType::f16), scalar_tensor(2.5), DType::f16, "f16 + 2.5"},
      {t(DType::bf16), scalar_tensor(2), DType::bf16, "bf16 + 2"},
      {t(DType::i64), scalar_tensor(2.5), DType::f32, "i64 + 2.5"},
      {t(DType::i32), scalar_tensor(2), DType::i32, "i32 + 2"},
      {t(DType::u8), scalar_tensor(2), DType::u8, "u8 + 2"},
      {t(DType::b8), scalar_tensor(2), DType::i64, "bool + 2"},
      {t(DType::b8), scalar_tensor(2.5), DType::f32, "bool + 2.5"},
      {t(DType::b8), scalar_tensor(true), DType::b8, "bool + true"},
      {z(DType::i32), scalar_tensor(2.5), DType::f32, "0-d i32 + 2.5"},
      {scalar_tensor(2), scalar_tensor(2.5), DType::f32, "2 + 2.5"},
  };
  for (auto& c : cases) {
    EXPECT_EQ((c.a + c.b).dtype(), c.want) << c.what;
    EXPECT_EQ((c.b + c.a).dtype(), c.want) << c.what << " (swapped)";
    EXPECT_EQ(maximum(c.a, c.b).dtype(), c.want) << c.what;
    EXPECT_EQ((c.a < c.b).dtype(), DType::b8) << c.what;
    DType dd = is_floating(c.want) ? c.want : DType::f32;
    EXPECT_EQ((c.a / c.b).dtype(), dd) << c.what << " division";
  }
  // Values are computed in the promoted type: 2 (int) < 2.5 is true, 3 == 2.5 false.
  EXPECT_TRUE(matches(tensor({2, 3}) < 2.5, {2}, {1, 0}, 0, 0));
  EXPECT_TRUE(matches(tensor({2, 3}) == 2.5, {2}, {0, 0}, 0, 0));
  EXPECT_TRUE(matches(tensor(std::vector<uint8_t>{250}) + tensor(std::vector<int32_t>{10}), {1}, {260}, 0, 0));
  EXPECT_TRUE(matches(ones({1}, {.dtype = DType::f32}) + ones({1}, {.dtype = DType::f64}) * 1e-10, {1}, {1.0 + 1e-10},
                      1e-15, 0));
}

TEST(Elementwise, OutputsAreFreshContiguousTensors) {
  Tensor x = make_input({4, 6}, Layout::Permuted);
  Tensor y = exp(x);
  EXPECT_TRUE(y.is_contiguous());
  EXPECT_NE(y.storage(), x.storage());
  Tensor z = x + make_input({6}, Layout::Strided);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(z.shape(), (Shape{4, 6}));
}

// --- NaN and infinities

TEST(Elementwise, NaNPropagates) {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (int64_t n : {1, 5, 17, 40}) {  // SIMD body and tail, and the scalar loop
      Tensor x = full({n}, NAN, {.dtype = dt});
      Tensor one = ones({n}, {.dtype = dt});
      for (auto* f : {+[](const Tensor& v) { return relu(v); }, +[](const Tensor& v) { return leaky_relu(v); },
                      +[](const Tensor& v) { return elu(v); }, +[](const Tensor& v) { return gelu(v); },
                      +[](const Tensor& v) { return gelu(v, true); }, +[](const Tensor& v) { return softplus(v); },
                      +[](const Tensor& v) { return sigmoid(v); }, +[](const Tensor& v) { return tanh(v); },
                      +[](const Tensor& v) { return erf(v); }, +[](const Tensor& v) { return exp(v); },
                      +[](const Tensor& v) { return log(v); }, +[](const Tensor& v) { return sin(v); },
                      +[](const Tensor& v) { return clamp(v, -1, 1); }, +[](const Tensor& v) { return abs(v); },
                      +[](const Tensor& v) { return sign(v); }, +[](const Tensor& v) { return log1p(v); },
                      +[](const Tensor& v) { return expm1(v); }, +[](const Tensor& v) { return silu(v); }}) {
        auto v = read(f(x));
        for (double e : v) EXPECT_TRUE(std::isnan(e)) << name(dt) << " n=" << n;
      }
      for (auto& y : {maximum(x, one), maximum(one, x), minimum(x, one), minimum(one, x), maximum(x, 2.0 * one)}) {
        for (double e : read(y)) EXPECT_TRUE(std::isnan(e)) << "maximum/minimum " << name(dt) << " n=" << n;
      }
    }
  }
  // Broadcast scalar NaN in maximum (the SIMD scalar-vector modes).
  Tensor big = linspace(-1, 1, 100);
  for (double e : read(maximum(big, full({}, NAN)))) EXPECT_TRUE(std::isnan(e));
  for (double e : read(minimum(full({1}, NAN), big))) EXPECT_TRUE(std::isnan(e));
}

// --- large float32 inputs: the SIMD kernels and the threaded loop

namespace {

/// Edge values every large test sprinkles into its input.
std::vector<float> edge_values() {
  const float inf = std::numeric_limits<float>::infinity();
  return {NAN,       inf,      -inf,  0.f,       -0.f,     1e-30f,  -1e-30f,  1e-40f,      -1e-40f,    FLT_MIN,
          FLT_MAX,   -FLT_MAX, 1.f,   -1.f,      0.5f,     -0.5f,   -0.999f,  -0.9999999f, -1.f,       -2.f,
          1e-8f,     -1e-8f,   88.7f, 88.72283f, 88.7229f, 89.f,    -87.f,    -88.f,       -100.f,     -103.f,
          -110.f,    50.f,     -50.f, 20.f,      -20.f,    9.f,     -9.f,     15.f,        -15.f,      40.f,
          -40.f,     1e4f,     -1e4f, 38999.f,   -38999.f, 39001.f, -39001.f, 40000.f,     -40000.f,   123456.7f,
          -98765.4f, 1e6f,     -1e6f, 1e10f,     -1e10f,   1e30f,   -1e30f,   3.14159265f, 1.5707964f, 6.2831855f};
}

/// A large contiguous float32 input: random values over several scales, the edge
/// values at random places, in the SIMD tail and around thread boundaries.
std::vector<float> large_input(int64_t n, uint32_t seed, double lo, double hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    double r = u(gen);
    if (r < 0.6)
      x = static_cast<float>(lo + (hi - lo) * u(gen));
    else if (r < 0.8)
      x = static_cast<float>((u(gen) < 0.5 ? -1 : 1) * std::pow(10.0, -30 + 35 * u(gen)));  // 1e-30 .. 1e5
    else
      x = static_cast<float>(-3 + 6 * u(gen));
  }
  auto edges = edge_values();
  std::uniform_int_distribution<int64_t> pos(0, n - 1);
  for (int rep = 0; rep < 20; ++rep)
    for (float e : edges) v[static_cast<size_t>(pos(gen))] = e;
  for (size_t i = 0; i < edges.size() && i < 40; ++i) {
    v[static_cast<size_t>(n) - 1 - i] = edges[i];
    v[static_cast<size_t>(n / 2) + i - 20] = edges[edges.size() - 1 - i];
  }
  return v;
}

Tensor from_floats(const std::vector<float>& v) { return tensor(v); }

/// Distance in float ulps between got and the double reference (0 when both NaN or equal infinities).
double ulps(float got, double want) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got) ? 0 : 1e30;
  float w = static_cast<float>(want);
  if (std::isinf(w) || std::isinf(got)) return w == got ? 0 : 1e30;
  double ulp = std::nextafter(std::abs(w), INFINITY) - std::abs(w);
  return std::abs(static_cast<double>(got) - want) / ulp;
}

/// Every element within max_ulps of the reference, or within atol (for values near
/// zero, where ulps shrink past any accuracy that matters).
::testing::AssertionResult accurate(const std::vector<float>& x, const float* y, const F1& ref, double max_ulps,
                                    double atol, double rtol = 0) {
  int bad = 0;
  std::ostringstream msg;
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double want = ref(static_cast<double>(x[i]));
    double u = ulps(y[i], want);
    bool ok = u <= max_ulps ||
              (std::isfinite(want) && std::isfinite(y[i]) && std::abs(y[i] - want) <= atol + rtol * std::abs(want));
    if (!ok) {
      worst = std::max(worst, u);
      if (bad++ < 6) msg << "\n  x=" << x[i] << " (i=" << i << "): got " << y[i] << ", expected " << want;
    }
  }
  if (bad)
    return ::testing::AssertionFailure() << bad << " of " << x.size() << " bad (worst " << worst << " ulp)"
                                         << msg.str();
  return ::testing::AssertionSuccess();
}

struct LargeCase {
  std::string name;
  std::function<Tensor(const Tensor&)> f;
  F1 ref;
  double lo, hi, max_ulps, atol, rtol = 0;
};

/// softplus with beta * x rounded to float32 first, as any float32 kernel computes it
/// (exp then magnifies that rounding by |beta x|, which no kernel can undo).
double softplus_f32(double x, double beta, double th) {
  double bx = static_cast<float>(beta * x);
  return bx > th ? x : std::log1p(std::exp(bx)) / beta;
}

std::vector<LargeCase> large_cases() {
  return {
      {"neg", [](auto& x) { return neg(x); }, [](double x) { return -x; }, -10, 10, 0, 0},
      {"abs", [](auto& x) { return abs(x); }, [](double x) { return std::abs(x); }, -10, 10, 0, 0},
      {"square", [](auto& x) { return square(x); }, [](double x) { return x * x; }, -10, 10, 0.5, 0},
      {"pow2", [](auto& x) { return pow(x, 2); }, [](double x) { return x * x; }, -10, 10, 0.5, 0},
      {"relu", [](auto& x) { return relu(x); }, [](double x) { return std::isnan(x) ? x
                                                                      : x > 0       ? x
                                                                                    : 0.0; }, -10, 10,
       0, 0},
      {"leaky_relu", [](auto& x) { return leaky_relu(x, 0.01); }, [](double x) { return x > 0 ? x : 0.01 * x; }, -10,
       10, 1, 1e-44},
      {"exp", [](auto& x) { return exp(x); }, [](double x) { return std::exp(x); }, -110, 90, 2, 1e-38},
      {"expm1", [](auto& x) { return expm1(x); }, [](double x) { return std::expm1(x); }, -20, 90, 4, 1e-38},
      {"log", [](auto& x) { return log(x); }, [](double x) { return std::log(x); }, -1, 1e4, 4, 1e-38},
      {"log1p", [](auto& x) { return log1p(x); }, [](double x) { return std::log1p(x); }, -1.5, 10, 4, 1e-38},
      {"sqrt", [](auto& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, -1, 1e4, 0.5, 0},
      {"rsqrt", [](auto& x) { return rsqrt(x); }, [](double x) { return 1 / std::sqrt(x); }, -1, 1e4, 1.5, 0},
      {"reciprocal", [](auto& x) { return reciprocal(x); }, [](double x) { return 1 / x; }, -10, 10, 0.5, 0},
      {"sin", [](auto& x) { return sin(x); }, [](double x) { return std::sin(x); }, -1e5, 1e5, 4, 2e-7},
      {"cos", [](auto& x) { return cos(x); }, [](double x) { return std::cos(x); }, -1e5, 1e5, 4, 2e-7},
      {"tanh", [](auto& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, -20, 20, 4, 1e-38},
      {"sigmoid", [](auto& x) { return sigmoid(x); }, sigmoid_d, -110, 110, 4, 1e-38},
      // A rational approximation (as PyTorch's vectorized erf): 1e-6 relative.
      {"erf", [](auto& x) { return erf(x); }, [](double x) { return std::erf(x); }, -6, 6, 4, 1e-38, 1e-6},
      {"elu", [](auto& x) { return elu(x, 1.0); }, [](double x) { return x > 0 ? x : std::expm1(x); }, -20, 20, 3,
       1e-38},
      // 1 + erf(x) cancels for negative x, as in PyTorch's kernels: absolute accuracy there.
      {"gelu", [](auto& x) { return gelu(x); }, gelu_d, -10, 10, 8, 1e-6},
      {"gelu_tanh", [](auto& x) { return gelu(x, true); }, gelu_tanh_d, -10, 10, 8, 1e-6},
      {"softplus", [](auto& x) { return softplus(x); }, [](double x) { return softplus_d(x, 1, 20); }, -110, 40, 4,
       1e-38},
      {"softplus_beta", [](auto& x) { return softplus(x, 3.0, 10.0); }, [](double x) { return softplus_f32(x, 3, 10); },
       -40, 10, 4, 1e-38},
  };
}

}  // namespace

TEST(Elementwise, LargeFloat32UnaryIsAccurateWithEdgeValues) {
  const int64_t n = 100003;  // odd: a SIMD tail, and two threads
  uint32_t seed = 10;
  for (auto& c : large_cases()) {
    auto x = large_input(n, seed++, c.lo, c.hi);
    Tensor y = c.f(from_floats(x));
    ASSERT_EQ(y.dtype(), DType::f32);
    ASSERT_EQ(y.numel(), n);
    EXPECT_TRUE(accurate(x, y.data<float>(), c.ref, c.max_ulps, c.atol, c.rtol)) << c.name;
  }
}

TEST(Elementwise, LargeFloat32NonContiguousUsesTheScalarPathAccurately) {
  // A transposed input takes the strided loop (no SIMD) on threads; same accuracy rules.
  auto x = large_input(200 * 150, 77, -30, 30);
  Tensor xt = from_floats(x).reshape({200, 150}).t();  // [150, 200] view
  for (auto& c : large_cases()) {
    if (c.name == "softplus_beta") c.ref = [](double x) { return softplus_d(x, 3, 10); };  // beta x in double here
    Tensor y = c.f(xt);
    Tensor back = y.t().contiguous();  // back in x's order
    EXPECT_TRUE(accurate(x, back.data<float>(), c.ref, std::max(c.max_ulps, 1.0), c.atol, c.rtol))
        << c.name << " (strided)";
  }
}

TEST(Elementwise, LargeFloat32BinaryIsExactWithEdgeValues) {
  // +, -, *, / are correctly rounded in float32, so they must equal the double result rounded.
  const int64_t n = 100003;
  auto a = large_input(n, 101, -100, 100), b = large_input(n, 102, -100, 100);
  Tensor ta = from_floats(a), tb = from_floats(b);
  struct C {
    const char* name;
    Tensor y;
    F2 ref;
  };
  auto fmax = [](double x, double y) { return std::isnan(x) || std::isnan(y) ? NAN : std::max(x, y); };
  auto fmin = [](double x, double y) { return std::isnan(x) || std::isnan(y) ? NAN : std::min(x, y); };
  std::vector<C> cases = {
      {"add", ta + tb, [](double x, double y) { return x + y; }},
      {"sub", ta - tb, [](double x, double y) { return x - y; }},
      {"mul", ta * tb, [](double x, double y) { return x * y; }},
      {"div", ta / tb, [](double x, double y) { return x / y; }},
      {"maximum", maximum(ta, tb), fmax},
      {"minimum", minimum(ta, tb), fmin},
  };
  for (auto& c : cases) {
    const float* y = c.y.data<float>();
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      float want = static_cast<float>(c.ref(a[static_cast<size_t>(i)], b[static_cast<size_t>(i)]));
      bool ok = (std::isnan(want) && std::isnan(y[i])) || want == y[i];
      if (!ok && bad++ < 5)
        ADD_FAILURE() << c.name << " at " << i << ": " << a[static_cast<size_t>(i)] << ", " << b[static_cast<size_t>(i)]
                      << " gave " << y[i] << ", expected " << want;
    }
    EXPECT_EQ(bad, 0) << c.name;
  }
  // Scalar-vector and vector-scalar modes, with a NaN and an infinity as the scalar.
  for (float s : {2.5f, -0.f, NAN, INFINITY}) {
    Tensor ts = full({}, s);
    Tensor l = ts - ta, r = ta / ts, m = maximum(ta, ts), m2 = minimum(ts, ta);
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      float x = a[static_cast<size_t>(i)];
      float w[4] = {s - x, x / s, static_cast<float>(fmax(x, s)), static_cast<float>(fmin(s, x))};
      float g[4] = {l.data<float>()[i], r.data<float>()[i], m.data<float>()[i], m2.data<float>()[i]};
      for (int k = 0; k < 4; ++k)
        if (!((std::isnan(w[k]) && std::isnan(g[k])) || w[k] == g[k]) && bad++ < 5)
          ADD_FAILURE() << "scalar " << s << " op " << k << " x=" << x << ": got " << g[k] << ", expected " << w[k];
    }
  }
}

TEST(Elementwise, LargeFloat32GradientHelpersMatchReference) {
  const int64_t n = 100003;
  // Outputs of sigmoid / tanh / relu are in [-1, 1]; the incoming gradient has edge values.
  auto g = large_input(n, 201, -3, 3);
  std::vector<float> y(static_cast<size_t>(n));
  std::mt19937 gen(202);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& v : y) v = u(gen);
  Tensor tg = from_floats(g), ty = from_floats(y);
  struct C {
    const char* name;
    Tensor out;
    F2 ref;
  };
  std::vector<C> cases = {
      {"relu_backward", relu_backward(tg, ty), [](double a, double b) { return b > 0 ? a : 0.0; }},
      {"sigmoid_backward", sigmoid_backward(tg, ty), [](double a, double b) { return a * b * (1 - b); }},
      {"tanh_backward", tanh_backward(tg, ty), [](double a, double b) { return a * (1 - b * b); }},
  };
  for (auto& c : cases) {
    const float* o = c.out.data<float>();
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      double want = c.ref(g[static_cast<size_t>(i)], y[static_cast<size_t>(i)]);
      double u = ulps(o[i], want);
      if (u > 4 && !(std::isfinite(want) && std::abs(o[i] - want) <= 1e-30 + 1e-6 * std::abs(want)) && bad++ < 5)
        ADD_FAILURE() << c.name << " g=" << g[static_cast<size_t>(i)] << " y=" << y[static_cast<size_t>(i)] << ": got "
                      << o[i] << ", expected " << want;
    }
  }
}

TEST(Elementwise, LargeThreadedOpsWithoutSimdKernels) {
  // clamp, where, sign, comparisons, isnan and casts run the generic threaded loop.
  const int64_t n = 100003;
  auto a = large_input(n, 301, -5, 5), b = large_input(n, 302, -5, 5);
  Tensor ta = from_floats(a), tb = from_floats(b);
  Tensor cl = clamp(ta, -1.5, 2.5), wh = where(ta > tb, ta, tb), sg = sign(ta), lt = ta < tb, nan = isnan(ta);
  Tensor h = ta.to(DType::f16), bf = ta.to(DType::bf16), d = ta.to(DType::f64);
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 5; ++i) {
    float x = a[static_cast<size_t>(i)], y = b[static_cast<size_t>(i)];
    float want_cl = std::isnan(x) ? x : std::min(std::max(x, -1.5f), 2.5f);
    float want_wh = x > y ? x : y;
    float want_sg = std::isnan(x) ? x : static_cast<float>((x > 0) - (x < 0));
    auto same = [](float u, float v) { return (std::isnan(u) && std::isnan(v)) || u == v; };
    bool ok = same(cl.data<float>()[i], want_cl) && same(wh.data<float>()[i], want_wh) &&
              same(sg.data<float>()[i], want_sg) && lt.data<bool>()[i] == (x < y) &&
              nan.data<bool>()[i] == std::isnan(x) && same(static_cast<float>(h.data<Float16>()[i]), Float16(x)) &&
              same(static_cast<float>(bf.data<BFloat16>()[i]), BFloat16(x)) && same(d.data<double>()[i], x);
    if (!ok && bad++ < 5) ADD_FAILURE() << "element " << i << ": x=" << x << " y=" << y;
  }
  EXPECT_EQ(bad, 0);
}

TEST(Elementwise, SpecialValuesOfMathFunctions) {
  const float inf = INFINITY;
  auto one = [](const Tensor& t) { return t.item<float>(); };
  for (DType dt : {DType::f32, DType::f64}) {
    auto v = [&](float x) { return full({}, x, {.dtype = dt}); };
    auto vec = [&](float x) { return full({19}, x, {.dtype = dt}); };  // SIMD path too for f32
    for (auto make : {std::function<Tensor(float)>(v), std::function<Tensor(float)>(vec)}) {
      auto first = [&](const Tensor& t) { return static_cast<float>(read(t)[0]); };
      EXPECT_EQ(first(exp(make(-inf))), 0.f);
      EXPECT_EQ(first(exp(make(inf))), inf);
      EXPECT_EQ(first(log(make(0.f))), -inf);
      EXPECT_EQ(first(log(make(-0.f))), -inf);
      EXPECT_TRUE(std::isnan(first(log(make(-1.f)))));
      EXPECT_EQ(first(log(make(inf))), inf);
      EXPECT_EQ(first(log1p(make(-1.f))), -inf);
      EXPECT_TRUE(std::isnan(first(log1p(make(-2.f)))));
      EXPECT_TRUE(std::isnan(first(sqrt(make(-1.f)))));
      EXPECT_EQ(first(rsqrt(make(0.f))), inf);
      EXPECT_EQ(first(tanh(make(inf))), 1.f);
      EXPECT_EQ(first(tanh(make(-inf))), -1.f);
      EXPECT_EQ(first(sigmoid(make(inf))), 1.f);
      EXPECT_EQ(first(sigmoid(make(-inf))), 0.f);
      EXPECT_EQ(first(erf(make(inf))), 1.f);
      EXPECT_EQ(first(erf(make(-inf))), -1.f);
      EXPECT_EQ(first(expm1(make(-inf))), -1.f);
      EXPECT_EQ(first(softplus(make(-inf))), 0.f);
      EXPECT_EQ(first(softplus(make(inf))), inf);
      EXPECT_EQ(first(relu(make(-inf))), 0.f);
      EXPECT_EQ(first(elu(make(-inf))), -1.f);
      EXPECT_EQ(first(gelu(make(inf))), inf);
      EXPECT_TRUE(std::isnan(first(sin(make(inf)))));
      EXPECT_TRUE(std::isnan(first(cos(make(-inf)))));
      EXPECT_EQ(first(exp(make(88.72283f))), static_cast<float>(std::exp(88.72283f)));
      EXPECT_TRUE(std::signbit(first(neg(make(0.f)))));
      EXPECT_TRUE(std::signbit(first(sqrt(make(-0.f)))));
    }
  }
  EXPECT_EQ(one(maximum(full({}, -0.f), full({}, 0.f))) == 0.f, true);
}

TEST(Elementwise, CastBetweenDtypes) {
  Tensor x = tensor(std::vector<double>{-2.7, -0.5, 0.0, 0.5, 2.7, 300.6});
  EXPECT_TRUE(matches(cast(x, DType::i64), {6}, {-2, 0, 0, 0, 2, 300}, 0, 0));  // toward zero, as C and PyTorch
  EXPECT_TRUE(matches(x.to(DType::i32), {6}, {-2, 0, 0, 0, 2, 300}, 0, 0));
  EXPECT_TRUE(matches(x.to(DType::b8), {6}, {1, 1, 0, 1, 1, 1}, 0, 0));
  EXPECT_TRUE(matches(tensor(std::vector<double>{NAN, -0.0}).to(DType::b8), {2}, {1, 0}, 0, 0));
  EXPECT_TRUE(matches(tensor({true, false}).to(DType::f32), {2}, {1, 0}, 0, 0));
  EXPECT_TRUE(matches(tensor({true, false}).to(DType::i64), {2}, {1, 0}, 0, 0));
  EXPECT_TRUE(matches(tensor({3, 0, -1}).to(DType::b8), {3}, {1, 0, 1}, 0, 0));
  EXPECT_TRUE(matches(tensor(std::vector<uint8_t>{0, 200, 255}).to(DType::f16), {3}, {0, 200, 255}, 0, 0));
  EXPECT_TRUE(matches(x.to(DType::bf16), {6}, {-2.703125, -0.5, 0, 0.5, 2.703125, 300}, 0, 0));
  EXPECT_TRUE(cast(x, DType::f64).is_same(x));
  // On views, and from a view to every dtype.
  Tensor v = make_input({3, 4}, Layout::Strided, -100, 100);
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64}) {
    Tensor c = v.to(dt);
    EXPECT_TRUE(c.is_contiguous());
    auto want = ref_map({v}, {3, 4}, [&](auto& a) {
      double e = a[0];
      switch (dt) {
        case DType::f32:
          return static_cast<double>(static_cast<float>(e));
        case DType::bf16:
          return static_cast<double>(static_cast<float>(BFloat16(static_cast<float>(e))));
        case DType::f16:
          return static_cast<double>(static_cast<float>(Float16(static_cast<float>(e))));
        default:
          return std::trunc(e);
      }
    });
    EXPECT_TRUE(matches(c, {3, 4}, want, 0, 0)) << name(dt);
  }
}

// --- bf16 / f16 compute through float

TEST(Elementwise, HalfTypesComputeInFloat) {
  // bfloat16 keeps 8 significant bits: 1 + 2^-7 is exact, 1 + 2^-8 rounds (to even) back to 1.
  Tensor a = full({3}, 1.0, {.dtype = DType::bf16});
  EXPECT_EQ((a + full({3}, 0.0078125, {.dtype = DType::bf16})).dtype(), DType::bf16);
  EXPECT_TRUE(matches(a + full({3}, 0.0078125, {.dtype = DType::bf16}), {3}, {1.0078125, 1.0078125, 1.0078125}, 0, 0));
  EXPECT_TRUE(matches(a + full({3}, 0.00390625, {.dtype = DType::bf16}), {3}, {1, 1, 1}, 0, 0));
  // 3 * (1/3 in bf16) computed in float and rounded once.
  Tensor third = full({1}, 1.0 / 3, {.dtype = DType::bf16});
  double t = static_cast<float>(BFloat16(1.0f / 3));
  EXPECT_TRUE(matches(third * 3, {1}, {static_cast<float>(BFloat16(static_cast<float>(3 * t)))}, 0, 0));
  Tensor h = full({2}, 1000.0, {.dtype = DType::f16});
  EXPECT_TRUE(matches(h * h, {2}, {INFINITY, INFINITY}, 0, 0));  // past float16's max 65504
  EXPECT_TRUE(matches(exp(full({2}, 1.0, {.dtype = DType::f16})), {2}, {2.71875, 2.71875}, 0, 0));
  // A number mixed with a 16-bit tensor keeps float precision: 1e5 is past float16's range, but
  // x / 1e5 and x * 1e5 are not (PyTorch computes these in float too).
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor x = full({5}, 2000.0, {.dtype = dt});
    EXPECT_TRUE(matches(x / 1e5, {5}, std::vector<double>(5, 0.02), 1e-2, 0)) << name(dt);
    EXPECT_TRUE(matches(x * 1e-5, {5}, std::vector<double>(5, 0.02), 1e-2, 0)) << name(dt);
    EXPECT_TRUE(matches(1e5 / x, {5}, std::vector<double>(5, 50), 1e-2, 0)) << name(dt);
    EXPECT_TRUE(matches(maximum(x, full({}, 1e-9, {.dtype = DType::f64})), {5}, std::vector<double>(5, 2000), 0, 0));
    Tensor y = full({5}, 2000.0, {.dtype = dt});
    y.div_(1e5);
    EXPECT_TRUE(matches(y, {5}, std::vector<double>(5, 0.02), 1e-2, 0)) << name(dt);
    EXPECT_EQ((x / 1e5).dtype(), dt);
    // Comparisons round the number to the tensor's type, as PyTorch does.
    EXPECT_TRUE((full({1}, 0.1, {.dtype = dt}) == 0.1).item<bool>()) << name(dt);
  }
  Tensor m = maximum(tensor({1.f, 5.f}).to(DType::bf16), tensor({3.f, 2.f}).to(DType::f16));
  EXPECT_EQ(m.dtype(), DType::f32);
  EXPECT_TRUE(matches(m, {2}, {3, 5}, 0, 0));
}

// --- in-place ops (dispatch_inplace)

TEST(Elementwise, InPlaceOps) {
  Tensor x = tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).reshape({2, 3});
  x.add_(tensor({10.f, 20.f, 30.f}));
  EXPECT_TRUE(matches(x, {2, 3}, {11, 22, 33, 14, 25, 36}, 0, 0));
  x.add_(ones({3}), 2.5);
  EXPECT_TRUE(matches(x, {2, 3}, {13.5, 24.5, 35.5, 16.5, 27.5, 38.5}, 0, 0));
  x.mul_(2).sub_(1).div_(tensor({1.f, 2.f, 4.f}));
  EXPECT_TRUE(matches(x, {2, 3}, {26, 24, 17.5, 32, 27, 19}, 0, 0));
  // Through a strided view: only the viewed elements change.
  Tensor base = zeros({4, 5}, {.dtype = DType::f64});
  Tensor v = base.slice(0, 1, 4, 2).slice(1, 0, 5, 2);  // rows 1,3; cols 0,2,4
  v.add_(1.5);
  auto bv = read(base);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_EQ(bv[static_cast<size_t>(i * 5 + j)], (i % 2 == 1 && j % 2 == 0) ? 1.5 : 0.0);
  // Overlapping operand with another layout: x += x.t() reads the old values.
  Tensor sq = tensor({{1, 2}, {3, 4}}, {.dtype = DType::f64});
  sq.add_(sq.t());
  EXPECT_TRUE(matches(sq, {2, 2}, {2, 5, 5, 8}, 0, 0));
  // A float32 tensor takes a float64 operand (cast on the way in); an int tensor does not take floats.
  Tensor f = ones({2});
  f.add_(full({2}, 0.25, {.dtype = DType::f64}));
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_TRUE(matches(f, {2}, {1.25, 1.25}, 0, 0));
  Tensor i = tensor({1, 2});
  i.mul_(3);
  EXPECT_TRUE(matches(i, {2}, {3, 6}, 0, 0));
  EXPECT_THROW(i.div_(2), DTypeError);
  EXPECT_THROW(i.add_(0.5), DTypeError);
  EXPECT_THROW(ones({3}).add_(ones({2, 3})), ShapeError);
  Tensor c = tensor({-2.0, 0.5, 3.0});
  c.clamp_(-1, 1);
  EXPECT_TRUE(matches(c, {3}, {-1, 0.5, 1}, 0, 0));
  c.fill_(7).zero_();
  EXPECT_TRUE(matches(c, {3}, {0, 0, 0}, 0, 0));
  Tensor d = zeros({2, 3});
  d.copy_(tensor({1, 2, 3}));  // broadcast and convert
  EXPECT_TRUE(matches(d, {2, 3}, {1, 2, 3, 1, 2, 3}, 0, 0));
  EXPECT_THROW(d.copy_(ones({2})), ShapeError);
  // Writing into an expanded view would write one element several times: refused, as in PyTorch.
  Tensor e = zeros({3, 1}).expand({3, 4});
  std::string msg = error_of<ValueError>([&] { e.add_(tensor({1.f, 2.f, 3.f, 4.f})); });
  EXPECT_NE(msg.find("add_"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 4]"), std::string::npos) << msg;
  EXPECT_THROW(e.copy_(ones({3, 4})), ValueError);
  EXPECT_THROW(e.fill_(1), ValueError);
  Tensor ok = zeros({3}).expand({1, 3});  // stride 0 on a size-1 dim is fine
  EXPECT_EQ(ok.stride(0), 0);
  ok.add_(1);
  EXPECT_TRUE(matches(ok, {1, 3}, {1, 1, 1}, 0, 0));
}

// --- gradients

namespace {
std::vector<Tensor> leaves(std::initializer_list<Tensor> ts) {
  std::vector<Tensor> v;
  for (auto& t : ts) v.push_back(t.detach().requires_grad_(true));
  return v;
}
/// Uniform values in [lo, hi] kept at least `gap` away from each of `avoid` (kinks of the op).
Tensor away_from(IntList shape, double lo, double hi, std::vector<double> avoid, double gap = 0.05) {
  Tensor t = uniform(shape, lo, hi);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i)
    for (double a : avoid)
      if (std::abs(p[i] - a) < gap) p[i] = a + (p[i] < a ? -gap : gap);
  return t;
}
}  // namespace

TEST(Elementwise, GradcheckUnary) {
  manual_seed(7);
  for (auto& c : unary_cases()) {
    if (!c.differentiable) continue;
    std::vector<double> kinks = {0.0, -0.3, 0.4, 0.2, -0.1};
    Tensor x = away_from({2, 3}, c.lo, c.hi, kinks);
    if (c.name == "softplus") x = away_from({2, 3}, c.lo, c.hi, {2.5});  // threshold: beta x = 5
    EXPECT_TRUE(gradcheck([&](auto& in) { return c.f(in[0]); }, leaves({x}))) << c.name;
  }
  // Both sides of the softplus threshold, and large inputs where it is linear.
  EXPECT_TRUE(gradcheck([](auto& in) { return softplus(in[0], 1.0, 20.0); },
                        leaves({tensor({-30.0, -2.0, 0.0, 19.0, 21.0, 40.0}, {}, {.dtype = DType::f64})})));
}

TEST(Elementwise, GradcheckBinaryWithBroadcasting) {
  manual_seed(8);
  for (auto& [sa, sb] : {std::pair{std::vector<int64_t>{3, 1, 2}, std::vector<int64_t>{2, 1}},
                         std::pair{std::vector<int64_t>{2, 3}, std::vector<int64_t>{}},
                         std::pair{std::vector<int64_t>{2, 2}, std::vector<int64_t>{2, 2}}}) {
    Tensor a = uniform(IntList(sa), -2, 2), b = uniform(IntList(sb), -2, 2);
    Tensor bpos = uniform(IntList(sb), 0.5, 2), apos = uniform(IntList(sa), 0.5, 2);
    EXPECT_TRUE(gradcheck([](auto& in) { return in[0] + in[1]; }, leaves({a, b})));
    EXPECT_TRUE(gradcheck([](auto& in) { return in[0] - in[1]; }, leaves({a, b})));
    EXPECT_TRUE(gradcheck([](auto& in) { return in[0] * in[1]; }, leaves({a, b})));
    EXPECT_TRUE(gradcheck([](auto& in) { return in[0] / in[1]; }, leaves({a, bpos})));
    EXPECT_TRUE(gradcheck([](auto& in) { return in[1] / in[0]; }, leaves({apos, b})));
    EXPECT_TRUE(gradcheck([](auto& in) { return pow(in[0], in[1]); }, leaves({apos, b})));
    EXPECT_TRUE(gradcheck([](auto& in) { return pow(in[1], in[0]); }, leaves({a, bpos})));
  }
  // maximum / minimum (no ties), also with broadcasting.
  Tensor a = tensor({0.5, -1.0, 2.0, 0.1, -0.7, 1.3}, {}, {.dtype = DType::f64}).reshape({2, 3});
  Tensor b = tensor({0.2, -0.5, 1.5}, {}, {.dtype = DType::f64});
  EXPECT_TRUE(gradcheck([](auto& in) { return maximum(in[0], in[1]); }, leaves({a, b})));
  EXPECT_TRUE(gradcheck([](auto& in) { return minimum(in[0], in[1]); }, leaves({a, b})));
  EXPECT_TRUE(gradcheck([](auto& in) { return maximum(in[1], in[0]); }, leaves({a, b})));
  // pow with a tensor exponent at base 0: d/db is defined as 0 (no NaN).
  Tensor base = tensor({0.0, 2.0}, {}, {.dtype = DType::f64}).requires_grad_(true);
  Tensor ex = tensor({2.0, 3.0}, {}, {.dtype = DType::f64}).requires_grad_(true);
  auto g = grad({pow(base, ex).sum()}, {base, ex});
  EXPECT_TRUE(matches(g[0], {2}, {0.0, 12.0}, 1e-12, 0));
  EXPECT_TRUE(matches(g[1], {2}, {0.0, 8.0 * std::log(2.0)}, 1e-12, 0));
}

TEST(Elementwise, MaximumTiesSplitTheGradient) {
  Tensor a = tensor({1.0, 2.0, 3.0}, {}, {.dtype = DType::f64}).requires_grad_(true);
  Tensor b = tensor({1.0, 5.0, 0.0}, {}, {.dtype = DType::f64}).requires_grad_(true);
  auto g = grad({maximum(a, b).sum()}, {a, b});
  EXPECT_TRUE(matches(g[0], {3}, {0.5, 0, 1}, 0, 0));
  EXPECT_TRUE(matches(g[1], {3}, {0.5, 1, 0}, 0, 0));
  auto h = grad({minimum(a, b).sum()}, {a, b});
  EXPECT_TRUE(matches(h[0], {3}, {0.5, 1, 0}, 0, 0));
  EXPECT_TRUE(matches(h[1], {3}, {0.5, 0, 1}, 0, 0));
}

TEST(Elementwise, GradcheckWhereClampAndHelpers) {
  manual_seed(9);
  Tensor cond = uniform({3, 1, 4}) > 0.0;
  Tensor a = uniform({2, 4}), b = uniform({4});
  EXPECT_TRUE(gradcheck([&](auto& in) { return where(cond, in[0], in[1]); }, leaves({a, b})));
  EXPECT_TRUE(gradcheck([&](auto& in) { return where(cond, in[0], 2.0); }, leaves({a})));
  Tensor x = away_from({3, 4}, -1, 1, {-0.3, 0.4});
  EXPECT_TRUE(gradcheck([](auto& in) { return clamp(in[0], -0.3, 0.4); }, leaves({x})));
  // relu_backward: linear in the incoming gradient; y only selects.
  Tensor g = uniform({3, 4}), y = relu(uniform({3, 4}));
  EXPECT_TRUE(gradcheck([&](auto& in) { return relu_backward(in[0], y); }, leaves({g})));
  Tensor ys = uniform({3, 4}, 0.1, 0.9), yt = uniform({3, 4}, -0.9, 0.9);
  // Forward of the helpers in float64.
  auto gv = read(g), yv = read(y), ysv = read(ys), ytv = read(yt);
  std::vector<double> wr, wsig, wt;
  for (size_t i = 0; i < gv.size(); ++i) {
    wr.push_back(yv[i] > 0 ? gv[i] : 0.0);
    wsig.push_back(gv[i] * ysv[i] * (1 - ysv[i]));
    wt.push_back(gv[i] * (1 - ytv[i] * ytv[i]));
  }
  EXPECT_TRUE(matches(relu_backward(g, y), {3, 4}, wr, 1e-15, 0));
  EXPECT_TRUE(matches(sigmoid_backward(g, ys), {3, 4}, wsig, 1e-15, 1e-16));
  EXPECT_TRUE(matches(tanh_backward(g, yt), {3, 4}, wt, 1e-15, 1e-16));
  EXPECT_TRUE(gradcheck([](auto& in) { return sigmoid_backward(in[0], in[1]); }, leaves({g, ys})));
  EXPECT_TRUE(gradcheck([](auto& in) { return tanh_backward(in[0], in[1]); }, leaves({g, yt})));
  // A chain through a float32 cast and back keeps the dtypes of the gradient.
  Tensor f = ones({3}, {.requires_grad = true});
  (cast(f, DType::f64) * 2.0).sum().backward();
  EXPECT_EQ(f.grad().dtype(), DType::f32);
  EXPECT_TRUE(matches(f.grad(), {3}, {2, 2, 2}, 0, 0));
}

TEST(Elementwise, GradgradcheckSmoothOps) {
  manual_seed(10);
  Tensor x = uniform({2, 3}, -2, 2), y = uniform({2, 3}, 0.5, 2), z = uniform({3}, -1, 1);
  EXPECT_TRUE(gradgradcheck([](auto& in) { return tanh(in[0]); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return sigmoid(in[0]); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return exp(in[0]); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return gelu(in[0]); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return gelu(in[0], true); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return in[0] * in[1]; }, leaves({x, z})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return in[0] / in[1]; }, leaves({x, y})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return pow(in[1], in[0]); }, leaves({x, y})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return pow(in[0], 3.0); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return log(in[0]); }, leaves({y})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return rsqrt(in[0]); }, leaves({y})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return sin(in[0]) * cos(in[0]); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return softplus(in[0]); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return erf(in[0]); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return elu(in[0]); }, leaves({away_from({2, 3}, -2, 2, {0.0})})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return silu(in[0]); }, leaves({x})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return sigmoid_backward(in[0], in[1]); }, leaves({x, y})));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return tanh_backward(in[0], in[1]); }, leaves({x, y})));
}
