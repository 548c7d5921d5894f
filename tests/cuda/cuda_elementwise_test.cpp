// The CUDA kernels of comparisons, logic, where, clamp / sign / pow_scalar, the float math of
// activations and their backward ops, autograd's broadcast helpers and fused_elementwise, against
// the CPU kernels on the same inputs (dtypes, views, broadcasting, NaN / inf, empty), and their
// gradients on the GPU against the CPU. They need a GPU and skip without one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cuda/cuda_testing.h"
#include "glia/core/cuda.h"
#include "glia/glia.h"
#include "glia/ops/op.h"
#include "testing.h"

namespace glia {
namespace {

using ::testing::HasSubstr;
using namespace glia::cuda_testing;
using I64s = std::vector<int64_t>;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// Random values with NaN, +-inf and +-0 at every third element, in dtype dt.
Tensor specials(IntList shape, DType dt, double lo = -2.0, double hi = 2.0) {
  Tensor x = rnd(shape, DType::f64, lo, hi).contiguous();
  double* p = x.data<double>();
  const double sp[] = {kNaN, kInf, -kInf, 0.0, -0.0, 1.0};
  for (int64_t i = 0; i < x.numel(); i += 3) p[i] = sp[(i / 3) % 6];
  return x.to(dt);
}

/// f against the CPU on: a contiguous input, a permuted view, a strided slice, and an empty one.
/// `make` gives the input of a shape; f gets [4, 5, 6] tensors (or [0, 6]).
void check_views(const std::string& what, const std::function<Tensor(IntList)>& make, const Fn& f, double rtol,
                 double atol) {
  SCOPED_TRACE(what);
  EXPECT_TRUE(same_on_gpu(f, {make({4, 5, 6})}, rtol, atol)) << "contiguous";
  EXPECT_TRUE(same_on_gpu(
      [&](auto& v) {
        return f({v[0].permute({1, 2, 0})});
      },
      {make({6, 4, 5})}, rtol, atol))
      << "permuted";
  EXPECT_TRUE(same_on_gpu([&](auto& v) { return f({v[0].slice(2, 1, 13, 2)}); }, {make({4, 5, 13})}, rtol, atol))
      << "sliced";
  EXPECT_TRUE(same_on_gpu(f, {make({0, 6})}, rtol, atol)) << "empty";
}

double loose(DType dt) { return dt == DType::f32 ? 2e-5 : dt == DType::f64 ? 1e-12 : 2e-2; }

TEST(CudaCompare, EveryComparisonDTypesViewsBroadcastAndNumbers) {
  SKIP_WITHOUT_GPU();
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, const Tensor&)>>> ops = {
      {"eq", [](auto& a, auto& b) { return eq(a, b); }}, {"ne", [](auto& a, auto& b) { return ne(a, b); }},
      {"lt", [](auto& a, auto& b) { return lt(a, b); }}, {"le", [](auto& a, auto& b) { return le(a, b); }},
      {"gt", [](auto& a, auto& b) { return gt(a, b); }}, {"ge", [](auto& a, auto& b) { return ge(a, b); }}};
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64, DType::u8, DType::bf16, DType::f16, DType::b8}) {
    // Small integers make ties frequent; floats get NaN and infinities.
    auto make = [&](IntList s) {
      return is_floating(dt) ? specials(s, dt, -2, 2) : rnd(s, DType::f64, 0, 3).to(DType::i64).to(dt);
    };
    for (const auto& entry : ops) {
      const std::string& nm = entry.first;
      const auto& op = entry.second;
      SCOPED_TRACE(nm + " " + name(dt));
      Tensor a = make({6, 4, 5}), b = make({4, 1}), c = make({4, 5, 6});
      Tensor g = op(a.to(kGpu), b.to(kGpu));
      EXPECT_EQ(g.dtype(), DType::b8);
      EXPECT_TRUE(testing::all_close(g.to(Device::cpu()), op(a, b), 0, 0)) << "broadcast";
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return op(v[0].permute({1, 2, 0}), v[1]);
          },
          {a, c}, 0, 0))
          << "permuted view";
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return op(v[0].slice(1, 0, 5, 2), v[1]); }, {c, b.slice(0, 0, 3)}, 0, 0))
          << "sliced view";
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return op(v[0], v[1]); }, {make({0, 5}), make({5})}, 0, 0)) << "empty";
    }
  }
  // Mixed dtypes compare in the promoted type; numbers in code are 0-d CPU tensors.
  Tensor x = specials({7, 9}, DType::f32), n = rnd({7, 9}, DType::f64, -3, 3).to(DType::i64);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return lt(v[0], v[1]); }, {x, n}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] >= 0.5; }, {x}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] == 1; }, {n}, 0, 0));
}

TEST(CudaLogic, AndOrXorNotOnBoolAndNumbers) {
  SKIP_WITHOUT_GPU();
  Tensor a = rnd({4, 5, 6}, DType::f64, 0, 2).to(DType::i64).to(DType::b8);
  Tensor b = rnd({5, 1}, DType::f64, 0, 2).to(DType::i64).to(DType::b8);
  // Non-bool operands are read as bool: NaN and -0.0 included (NaN is true, -0.0 false).
  Tensor f = specials({4, 5, 6}, DType::f32);
  Tensor i = rnd({6}, DType::f64, -2, 2).to(DType::i32);
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, const Tensor&)>>> ops = {
      {"and", [](auto& x, auto& y) { return logical_and(x, y); }},
      {"or", [](auto& x, auto& y) { return logical_or(x, y); }},
      {"xor", [](auto& x, auto& y) { return logical_xor(x, y); }}};
  for (const auto& entry : ops) {
    const auto& op = entry.second;
    SCOPED_TRACE(entry.first);
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return op(v[0], v[1]); }, {a, b}, 0, 0));
    EXPECT_TRUE(same_on_gpu(
        [&](auto& v) {
          return op(v[0].permute({0, 2, 1}), v[1].t());
        },
        {a, b.expand({5, 6})}, 0, 0));
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return op(v[0], v[1]); }, {f, i}, 0, 0));
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return op(v[0], v[1]); }, {a.slice(0, 0, 0), b}, 0, 0));
  }
  EXPECT_TRUE(same_on_gpu([](auto& v) { return logical_not(v[0]); }, {a}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return logical_not(v[0].permute({2, 1, 0})); }, {a}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return logical_not(v[0]); }, {f}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return logical_not(v[0]); }, {i}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return logical_not(v[0]); }, {a.slice(1, 0, 0)}, 0, 0));
  EXPECT_EQ(logical_not(a.to(kGpu)).dtype(), DType::b8);
}

TEST(CudaFloatClass, IsnanAndIsfiniteOnSpecialsIntegersAndViews) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    auto make = [&](IntList s) { return specials(s, dt); };
    check_views(
        std::string("isnan ") + name(dt), make, [](auto& v) { return isnan(v[0]); }, 0, 0);
    check_views(
        std::string("isfinite ") + name(dt), make, [](auto& v) { return isfinite(v[0]); }, 0, 0);
  }
  for (DType dt : {DType::i32, DType::i64, DType::b8}) {
    Tensor x = rnd({3, 4}, DType::f64, -3, 3).to(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return isnan(v[0]); }, {x}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return isfinite(v[0]); }, {x}, 0, 0)) << name(dt);
  }
}

TEST(CudaWhere, BroadcastingPromotionDTypesViewsAndGradients) {
  SKIP_WITHOUT_GPU();
  Tensor c = rnd({4, 1, 6}, DType::f64, 0, 2).to(DType::i64).to(DType::b8);
  // Every element size: 1 (bool, uint8), 2 (bfloat16, float16), 4 (float32, int32), 8 (float64, int64).
  for (DType dt : {DType::b8, DType::u8, DType::bf16, DType::f16, DType::f32, DType::i32, DType::f64, DType::i64}) {
    SCOPED_TRACE(name(dt));
    Tensor a = specials({5, 6}, DType::f64, 0, 5).to(dt), b = rnd({4, 5, 1}, DType::f64, 0, 5).to(dt);
    if (!is_floating(dt)) a = rnd({5, 6}, DType::f64, 0, 5).to(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return where(v[0], v[1], v[2]); }, {c, a, b}, 0, 0));
    Tensor a4 = rnd({4, 5}, DType::f64, 0, 5).to(dt), b6 = rnd({6, 5, 1}, DType::f64, 0, 5).to(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return where(v[0].permute({2, 1, 0}), v[1].t(), v[2]); }, {c, a4, b6}, 0, 0));
    EXPECT_TRUE(same_on_gpu([](auto& v) { return where(v[0], v[1], 3); }, {c, a}, 0, 0));
    EXPECT_TRUE(
        same_on_gpu([](auto& v) { return where(v[0], v[1], v[2]); }, {c.slice(0, 0, 0), a, b.slice(0, 0, 0)}, 0, 0));
  }
  // Promotion: float32 with float64 gives float64; int32 with a float32 tensor gives float32.
  Tensor a = rnd({5, 6}, DType::f32), b = rnd({6}, DType::f64), n = rnd({4, 5, 6}, DType::f64, -9, 9).to(DType::i32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return where(v[0], v[1], v[2]); }, {c, a, b}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return where(v[0], v[1], v[2]); }, {c, n, a}, 0, 0));
  EXPECT_EQ(where(c.to(kGpu), a.to(kGpu), b.to(kGpu)).dtype(), DType::f64);

  Tensor x = rnd({4, 5, 6}, DType::f64), y = rnd({5, 1}, DType::f64);
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return where(v[0], v[1], v[2]); }, {c, x, y}, {1, 2}, 1e-12));
}

TEST(CudaClampSignPow, DTypesNaNViewsAndGradients) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    auto make = [&](IntList s) { return specials(s, dt); };
    double r = tol(dt);
    check_views(
        std::string("clamp ") + name(dt), make, [](auto& v) { return clamp(v[0], -0.5, 0.7); }, r, 0);
    check_views(
        std::string("clamp_min ") + name(dt), make, [](auto& v) { return clamp_min(v[0], -0.25); }, r, 0);
    check_views(
        std::string("clamp_max ") + name(dt), make, [](auto& v) { return clamp_max(v[0], 0.3); }, r, 0);
    check_views(
        std::string("sign ") + name(dt), make, [](auto& v) { return sign(v[0]); }, 0, 0);
    for (double e : {2.0, 3.0, -1.0, 0.5, 0.0}) {
      check_views(
          std::string("pow ") + std::to_string(e) + " " + name(dt), make, [e](auto& v) { return pow(v[0], e); },
          loose(dt), 1e-12);
    }
  }
  for (DType dt : {DType::i32, DType::i64, DType::u8}) {
    bool u = dt == DType::u8;
    auto make = [&](IntList s) { return rnd(s, DType::f64, u ? 0 : -9, 9).to(DType::i64).to(dt); };
    check_views(
        std::string("clamp ") + name(dt), make, [u](auto& v) { return clamp(v[0], u ? 2 : -3, 5); }, 0, 0);
    check_views(
        std::string("sign ") + name(dt), make, [](auto& v) { return sign(v[0]); }, 0, 0);
    check_views(
        std::string("pow ") + name(dt), make, [](auto& v) { return pow(v[0], 2); }, 0, 0);
  }
  // 16-bit floats compute in float, as on the CPU.
  for (DType dt : {DType::bf16, DType::f16}) {
    auto make = [&](IntList s) { return specials(s, dt); };
    check_views(
        std::string("clamp ") + name(dt), make, [](auto& v) { return clamp(v[0], -0.5, 0.7); }, 0, 0);
    check_views(
        std::string("sign ") + name(dt), make, [](auto& v) { return sign(v[0]); }, 0, 0);
    check_views(
        std::string("pow 3 ") + name(dt), make, [](auto& v) { return pow(v[0], 3.0); }, loose(dt), 1e-6);
  }
  Tensor flags = rnd({3, 4}, DType::f64, 0, 2).to(DType::i64).to(DType::b8);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return sign(v[0]); }, {flags}, 0, 0));
  // bool: the bounds become bool first, as on the CPU (-1 is true).
  EXPECT_TRUE(same_on_gpu([](auto& v) { return clamp_min(v[0], -1); }, {flags}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return clamp_max(v[0], -1); }, {flags}, 0, 0));

  Tensor x = rnd({4, 5}, DType::f64), p = rnd({4, 5}, DType::f64, 0.5, 2);
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return clamp(v[0], -0.5, 0.7); }, {x}, {0}, 1e-12));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return clamp_min(v[0].t(), 0.1); }, {x}, {0}, 1e-12));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return pow(v[0], 3.0); }, {x}, {0}, 1e-12));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return pow(v[0], 0.5); }, {p}, {0}, 1e-12));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return sign(v[0]) * v[0]; }, {x}, {0}, 1e-12));
}

struct UnaryCase {
  std::string name;
  std::function<Tensor(const Tensor&)> f;
  double lo, hi;  // input range for the gradient check
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"expm1", [](const Tensor& x) { return expm1(x); }, -2, 2},
      {"log1p", [](const Tensor& x) { return log1p(x); }, -0.9, 3},
      {"sin", [](const Tensor& x) { return sin(x); }, -3, 3},
      {"cos", [](const Tensor& x) { return cos(x); }, -3, 3},
      {"erf", [](const Tensor& x) { return erf(x); }, -2, 2},
      {"gelu", [](const Tensor& x) { return gelu(x); }, -3, 3},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, true); }, -3, 3},
      {"elu", [](const Tensor& x) { return elu(x); }, -2, 2},
      {"elu_0.3", [](const Tensor& x) { return elu(x, 0.3); }, -2, 2},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x); }, -2, 2},
      {"leaky_relu_0.2", [](const Tensor& x) { return leaky_relu(x, 0.2); }, -2, 2},
      {"softplus", [](const Tensor& x) { return softplus(x); }, -3, 3},
      {"softplus_b2_t1", [](const Tensor& x) { return softplus(x, 2.0, 1.0); }, -3, 3},
  };
}

TEST(CudaMath, UnaryOpsForwardOnDTypesSpecialsAndViews) {
  SKIP_WITHOUT_GPU();
  for (const UnaryCase& c : unary_cases()) {
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
      auto make = [&](IntList s) { return specials(s, dt, c.lo, c.hi); };
      check_views(
          c.name + " " + name(dt), make, [&](auto& v) { return c.f(v[0]); }, loose(dt), 1e-6);
      // Outside the usual range too: large magnitudes (overflow, thresholds) and log1p's domain edge.
      auto wide = [&](IntList s) { return specials(s, dt, -30, 30); };
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return c.f(v[0]); }, {wide({8, 33})}, loose(dt), 1e-6))
          << c.name << " " << name(dt) << " wide";
    }
  }
  Tensor one = full(Shape{}, 0.25, {.dtype = DType::f64});
  EXPECT_TRUE(same_on_gpu([](auto& v) { return gelu(v[0]); }, {one}, 1e-12));
}

TEST(CudaMath, UnaryOpsGradientsAndSecondOrder) {
  SKIP_WITHOUT_GPU();
  for (const UnaryCase& c : unary_cases()) {
    Tensor x = rnd({5, 7}, DType::f64, c.lo, c.hi);
    EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return c.f(v[0]); }, {x}, {0}, 1e-10, 1e-12)) << c.name;
    EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return c.f(v[0].t()); }, {x}, {0}, 1e-10, 1e-12)) << c.name << " view";
    // The gradient of the gradient: its rule runs these ops (and where, comparisons) on the GPU too.
    // Leaky ReLU's gradient is piecewise constant in x (no graph back to x): no second order.
    if (c.name.rfind("leaky_relu", 0) == 0) continue;
    Fn dx = [&](const std::vector<Tensor>& v) { return grad({sum(c.f(v[0]))}, {v[0]}, {.create_graph = true})[0]; };
    EXPECT_TRUE(same_grads_on_gpu(dx, {x}, {0}, 1e-9, 1e-11)) << c.name << " second order";
  }
}

TEST(CudaMath, ActivationBackwardOpsForwardAndGradients) {
  SKIP_WITHOUT_GPU();
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, const Tensor&)>>> ops = {
      {"relu_backward", [](auto& g, auto& y) { return relu_backward(g, y); }},
      {"sigmoid_backward", [](auto& g, auto& y) { return sigmoid_backward(g, y); }},
      {"tanh_backward", [](auto& g, auto& y) { return tanh_backward(g, y); }}};
  for (const auto& entry : ops) {
    const std::string& nm = entry.first;
    const auto& op = entry.second;
    for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
      SCOPED_TRACE(nm + " " + name(dt));
      Tensor g = specials({4, 5, 6}, dt), y = specials({4, 5, 6}, dt, -1, 1);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return op(v[0], v[1]); }, {g, y}, loose(dt), 1e-6));
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return op(v[0].permute({1, 2, 0}), v[1]);
          },
          {g.permute({2, 0, 1}).contiguous(), y}, loose(dt), 1e-6));
      EXPECT_TRUE(
          same_on_gpu([&](auto& v) { return op(v[0], v[1]); }, {g.slice(0, 0, 0), y.slice(0, 0, 0)}, loose(dt), 1e-6));
    }
    Tensor g = rnd({4, 5}, DType::f64), y = rnd({4, 5}, DType::f64, -0.9, 0.9);
    bool relu = nm == "relu_backward";
    EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return op(v[0], v[1]); }, {g, y},
                                  relu ? std::vector<size_t>{0} : std::vector<size_t>{0, 1}, 1e-12))
        << nm;
  }
  // Integers have no CUDA kernel for these: a clear DTypeError naming the op.
  Tensor gi = rnd({3}, DType::f64, -3, 3).to(DType::i32).to(kGpu);
  EXPECT_THAT(testing::error_of<DTypeError>([&] { (void)relu_backward(gi, gi); }), HasSubstr("relu_backward"));
}

TEST(CudaBroadcastHelpers, SumToLikeExpandLikeCountLike) {
  SKIP_WITHOUT_GPU();
  const OpDef& sum_to_like = OpRegistry::instance().get("sum_to_like");
  const OpDef& expand_like = OpRegistry::instance().get("expand_like");
  const OpDef& count_like = OpRegistry::instance().get("count_like");
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64}) {
    SCOPED_TRACE(name(dt));
    Tensor x = rnd({4, 5, 6}, DType::f64, -3, 3).to(dt);
    for (Shape like : {Shape{5, 1}, Shape{1, 6}, Shape{4, 1, 6}, Shape{}, Shape{4, 5, 6}}) {
      Tensor l = zeros(like, {.dtype = dt});
      double r = dt == DType::f32 ? 1e-5 : 1e-12;
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return call(sum_to_like, {v[0], v[1]});
          },
          {x, l}, r, 1e-6))
          << to_string(like);
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return call(sum_to_like, {v[0].permute({0, 2, 1}), v[1]});
          },
          {x.permute({0, 2, 1}).contiguous(), l}, r, 1e-6));
      Tensor small = rnd(like, DType::f64).to(dt);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return call(expand_like, {v[0], v[1]}); }, {small, x}, 0, 0));
    }
    EXPECT_TRUE(same_on_gpu(
        [&](auto& v) {
          return call(expand_like, {v[0].t(), v[1]});
        },
        {rnd({6, 5}, DType::f64).to(dt), x}, 0, 0));
    for (I64s dims : {I64s{}, I64s{0}, I64s{0, 2}, I64s{0, 1, 2}}) {
      Tensor g = call(count_like, {x.to(kGpu)}, {{"dims", dims}});
      EXPECT_EQ(g.device(), kGpu);
      EXPECT_TRUE(testing::all_close(g.to(Device::cpu()), call(count_like, {x}, {{"dims", dims}}), 0, 0));
    }
  }
  Tensor e = zeros({0, 3});
  EXPECT_TRUE(same_on_gpu([&](auto& v) { return call(sum_to_like, {v[0], v[1]}); }, {e, zeros({1, 3})}, 0, 0));
  EXPECT_TRUE(same_on_gpu([&](auto& v) { return call(expand_like, {v[0], v[1]}); }, {zeros({3}), e}, 0, 0));
  // Each is the other's gradient.
  Tensor x = rnd({4, 5, 6}, DType::f64), b = rnd({5, 1}, DType::f64);
  EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return call(sum_to_like, {v[0], v[1]}); }, {x, b}, {0}, 1e-12));
  EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return call(expand_like, {v[0], v[1]}); }, {b, x}, {0}, 1e-12));
}

// --- fused_elementwise, called directly with programs in the format of src/glia/ops/fused.h

// fused::Code values.
enum Code : int64_t {
  kNeg = 0,
  kAbs,
  kExp,
  kExpm1,
  kLog,
  kLog1p,
  kSqrt,
  kRsqrt,
  kReciprocal,
  kSin,
  kCos,
  kTanh,
  kSigmoid,
  kErf,
  kRelu,
  kLeakyRelu,
  kElu,
  kGelu,
  kGeluTanh,
  kSoftplus,
  kSquare,
  kAdd = 64,
  kSub,
  kMul,
  kDiv,
  kMaximum,
  kMinimum,
  kReluBackward,
  kSigmoidBackward,
  kTanhBackward,
};
constexpr int64_t kFull = 0, kScalar = 1, kBias = 2, kOut = -1;

struct Ins {
  int64_t code, dst, a, b;
  double p0 = 0, p1 = 0;
};

Tensor fused(const std::vector<Tensor>& in, const I64s& kinds, int64_t regs, const std::vector<Ins>& prog,
             int64_t shape_from = 0, const I64s& shape = {}) {
  I64s words{regs};
  for (const Ins& i : prog)
    words.insert(words.end(), {i.code, i.dst, i.a, i.b, std::bit_cast<int64_t>(i.p0), std::bit_cast<int64_t>(i.p1)});
  Attrs at{{"kinds", kinds}, {"program", words}, {"shape_from", shape_from}, {"shape", shape}};
  return call(OpRegistry::instance().get("fused_elementwise"), std::span<const Tensor>(in), at);
}

// relu(sigmoid(x) * x + bias) / s: the chain of GraphFusion.ChainWithBiasAndNumber.
std::vector<Ins> bias_chain() {
  // slots: 0 x (full), 1 bias, 2 s (scalar), registers 3 and 4
  return {{kSigmoid, 3, 0, -1}, {kMul, 3, 3, 0}, {kAdd, 4, 3, 1}, {kRelu, 4, 4, -1}, {kDiv, kOut, 4, 2}};
}

TEST(CudaFused, FullBiasAndScalarInputsContiguousStridedAndTails) {
  SKIP_WITHOUT_GPU();
  const I64s kinds{kFull, kBias, kScalar};
  for (Shape s : {Shape{8, 16}, Shape{33, 17}, Shape{3, 5, 7}, Shape{1, 1}, Shape{4, 1}, Shape{7}, Shape{0, 5}}) {
    SCOPED_TRACE(to_string(s));
    Shape bs(s.size(), 1);
    bs.back() = s.back();
    Tensor x = rnd(s, DType::f32, -3, 3), b = rnd({s.back()}, DType::f32), b2 = rnd(bs, DType::f32);
    Tensor three = full(Shape{}, 3.0, {.dtype = DType::f32});
    // The scalar as a tensor on the GPU (read there) and as a number in code (a 0-d CPU tensor).
    EXPECT_TRUE(same_on_gpu(
        [&](auto& v) {
          return fused({v[0], v[1], v[2]}, kinds, 2, bias_chain());
        },
        {x, b, three}, 1e-5, 1e-6));
    EXPECT_TRUE(same_on_gpu(
        [&](auto& v) {
          return fused({v[0], v[1], full(Shape{}, 3.0)}, kinds, 2, bias_chain());
        },
        {x, b2}, 1e-5, 1e-6));
    // A float64 scalar on the GPU.
    EXPECT_TRUE(same_on_gpu(
        [&](auto& v) {
          return fused({v[0], v[1], v[2]}, kinds, 2, bias_chain());
        },
        {x, b, full(Shape{}, 0.7, {.dtype = DType::f64})}, 1e-5, 1e-6));
  }
  // Strided full inputs and bias: a permuted x, a sliced bias.
  Tensor xt = rnd({17, 33}, DType::f32), bb = rnd({34}, DType::f32), three = full(Shape{}, 3.0, {.dtype = DType::f32});
  EXPECT_TRUE(same_on_gpu(
      [&](auto& v) {
        return fused({v[0].t(), v[1].slice(0, 0, 34, 2), v[2]}, kinds, 2, bias_chain());
      },
      {xt, bb, three}, 1e-5, 1e-6));
  // Contiguous but not 16-byte aligned (one float in): the scalar path, with the same results.
  Tensor flat = rnd({33 * 17 + 1}, DType::f32), b = rnd({17}, DType::f32);
  EXPECT_TRUE(same_on_gpu(
      [&](auto& v) {
        return fused({v[0].slice(0, 1, 33 * 17 + 1).reshape({33, 17}), v[1], v[2]}, kinds, 2, bias_chain());
      },
      {flat, b, three}, 1e-5, 1e-6));
  // No full input: the shape comes from the attribute; a bias plus a number.
  EXPECT_TRUE(same_on_gpu(
      [&](auto& v) {
        return fused({v[0], v[1]}, {kBias, kScalar}, 1, {{kMul, 2, 0, 1}, {kTanh, kOut, 2, -1}}, -1, {5, 3, 7});
      },
      {rnd({1, 7}, DType::f32), full(Shape{}, 1.5, {.dtype = DType::f32})}, 1e-5, 1e-6));
}

TEST(CudaFused, EveryOpcodeAgainstTheCpuKernel) {
  SKIP_WITHOUT_GPU();
  // slots: 0 x, 1 y (full), 2 bias, 3 s (scalar); 4 = |x| + s (positive), 5 = accumulator, 6 = scratch
  const I64s kinds{kFull, kFull, kBias, kScalar};
  struct Op {
    int64_t code;
    bool positive;  // needs a positive operand (log, sqrt, ...)
    double p0 = 0, p1 = 0;
  };
  const std::vector<Op> unary = {{kNeg, false},
                                 {kAbs, false},
                                 {kExp, false},
                                 {kExpm1, false},
                                 {kLog, true},
                                 {kLog1p, true},
                                 {kSqrt, true},
                                 {kRsqrt, true},
                                 {kReciprocal, true},
                                 {kSin, false},
                                 {kCos, false},
                                 {kTanh, false},
                                 {kSigmoid, false},
                                 {kErf, false},
                                 {kRelu, false},
                                 {kLeakyRelu, false, 0.2},
                                 {kElu, false, 0.7},
                                 {kGelu, false},
                                 {kGeluTanh, false},
                                 {kSoftplus, false, 1.0, 20.0},
                                 {kSoftplus, false, 2.0, 1.0},
                                 {kSquare, false}};
  const std::vector<int64_t> binary = {
      kAdd, kSub, kMul, kDiv, kMaximum, kMinimum, kReluBackward, kSigmoidBackward, kTanhBackward};
  auto run = [&](const std::vector<Ins>& body) {
    std::vector<Ins> prog = {{kAbs, 4, 0, -1}, {kAdd, 4, 4, 3}, {kMul, 5, 1, 3}};
    prog.insert(prog.end(), body.begin(), body.end());
    prog.push_back({kAdd, kOut, 5, 2});
    Tensor x = rnd({9, 13}, DType::f32, -3, 3), y = rnd({9, 13}, DType::f32, -1, 1);
    Tensor b = rnd({13}, DType::f32), s = full(Shape{}, 0.5, {.dtype = DType::f32});
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return fused(v, kinds, 3, prog); }, {x, y, b, s}, 1e-4, 1e-5));
    EXPECT_TRUE(same_on_gpu(
        [&](auto& v) {
          return fused({v[0].t(), v[1].t(), v[2], v[3]}, kinds, 3, prog);
        },
        {x.t().contiguous(), y.t().contiguous(), b, s}, 1e-4, 1e-5));
  };
  for (const Op& o : unary) {
    SCOPED_TRACE(o.code);
    run({{o.code, 6, o.positive ? 4 : 0, -1, o.p0, o.p1}, {kAdd, 5, 5, 6}});
  }
  for (int64_t c : binary) {
    SCOPED_TRACE(c);
    // register and full, full and scalar, scalar and full, bias and register
    run({{c, 6, 4, 1},
         {kAdd, 5, 5, 6},
         {c, 6, 0, 3},
         {kAdd, 5, 5, 6},
         {c, 6, 3, 1},
         {kSub, 5, 5, 6},
         {c, 6, 2, 5},
         {kAdd, 5, 5, 6}});
  }
  // Every instruction in one program: 3 + 2 * 22 + 2 * 9 + 1 = 66 is too many; split in two.
  std::vector<Ins> first, second;
  for (const Op& o : unary) {
    first.push_back({o.code, 6, o.positive ? 4 : 0, -1, o.p0, o.p1});
    first.push_back({kAdd, 5, 5, 6});
  }
  for (int64_t c : binary) {
    second.push_back({c, 6, 0, 1});
    second.push_back({kAdd, 5, 5, 6});
  }
  run(first);
  run(second);
}

TEST(CudaFused, ProgramLimitsAreClearErrors) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({4, 4}, DType::f32);
  std::vector<Ins> prog(64, Ins{kNeg, 1, 0, -1});
  prog.back().dst = kOut;
  // 64 instructions run; the CPU runs longer programs, and the GPU refuses them with a clear error.
  EXPECT_TRUE(same_on_gpu([&](auto& v) { return fused({v[0]}, {kFull}, 1, prog); }, {x}, 0, 0));
  prog.insert(prog.begin(), Ins{kNeg, 1, 0, -1});
  EXPECT_TRUE(testing::all_close(fused({x}, {kFull}, 1, prog), neg(x), 0, 0));
  EXPECT_THAT(testing::error_of<ValueError>([&] { (void)fused({x.to(kGpu)}, {kFull}, 1, prog); }),
              HasSubstr("fused_elementwise: the CUDA kernel runs programs of at most 64 instructions, got 65"));
}

}  // namespace
}  // namespace glia
