// Optimizers: three steps of every rule and option against a plain double reference
// (fused kernels and the tensor-op path, float32 and float64, strided tensors, large
// threaded tensors), a quadratic minimized by each, exact state round trips, configs,
// names and errors.
#include <gmock/gmock.h>

#include <cmath>
#include <functional>
#include <map>
#include <optional>

#include "glia/nn/layer.h"
#include "testing.h"

using namespace glia;
using namespace glia::optimizers;
using glia::testing::all_close;
using glia::testing::error_of;
using glia::testing::uniform;
using glia::testing::values;
using ::testing::HasSubstr;

namespace {

// --- the reference: Keras 3's rules written out element by element in double

struct RefSpec {
  std::string kind;  // "sgd", "adam", "rmsprop", "adagrad"
  std::function<double(int64_t)> lr;
  double momentum = 0;
  bool nesterov = false;
  double beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7;
  bool amsgrad = false;
  double rho = 0.9;
  bool centered = false;
  double initial_accumulator_value = 0.1;
  double weight_decay = 0, clipnorm = 0, clipvalue = 0, global_clipnorm = 0;
};

using Grads = std::vector<std::optional<std::vector<double>>>;

struct Ref {
  RefSpec s;
  std::vector<std::vector<double>> w;
  std::map<std::string, std::map<size_t, std::vector<double>>> slots;
  int64_t t = 0;

  std::vector<double>& slot(const std::string& name, size_t i, double init = 0) {
    auto& m = slots[name];
    if (!m.count(i)) m[i] = std::vector<double>(w[i].size(), init);
    return m[i];
  }

  void step(Grads grads) {
    double lr = s.lr(t);
    if (s.clipnorm > 0) {
      for (auto& g : grads) {
        if (!g) continue;
        double n = 0;
        for (double x : *g) n += x * x;
        n = std::sqrt(n);
        for (double& x : *g) x = x * s.clipnorm / std::max(n, s.clipnorm);
      }
    } else if (s.global_clipnorm > 0) {
      double n = 0;
      for (auto& g : grads)
        if (g)
          for (double x : *g) n += x * x;
      n = std::sqrt(n);
      if (n > s.global_clipnorm)
        for (auto& g : grads)
          if (g)
            for (double& x : *g) x *= s.global_clipnorm / n;
    } else if (s.clipvalue > 0) {
      for (auto& g : grads)
        if (g)
          for (double& x : *g) x = std::min(std::max(x, -s.clipvalue), s.clipvalue);
    }
    for (size_t i = 0; i < w.size(); ++i) {
      if (!grads[i]) continue;
      const std::vector<double>& g = *grads[i];
      std::vector<double>& p = w[i];
      size_t n = p.size();
      for (size_t k = 0; k < n; ++k) p[k] -= lr * s.weight_decay * p[k];
      if (s.kind == "sgd") {
        if (s.momentum > 0) {
          auto& m = slot("momentum", i);
          for (size_t k = 0; k < n; ++k) {
            m[k] = s.momentum * m[k] - lr * g[k];
            p[k] += s.nesterov ? s.momentum * m[k] - lr * g[k] : m[k];
          }
        } else {
          for (size_t k = 0; k < n; ++k) p[k] -= lr * g[k];
        }
      } else if (s.kind == "adam") {
        auto& m = slot("momentum", i);
        auto& v = slot("velocity", i);
        double tt = static_cast<double>(t + 1);
        double lr_t = lr * std::sqrt(1 - std::pow(s.beta_2, tt)) / (1 - std::pow(s.beta_1, tt));
        auto* vh = s.amsgrad ? &slot("velocity_hat", i) : nullptr;
        for (size_t k = 0; k < n; ++k) {
          m[k] = s.beta_1 * m[k] + (1 - s.beta_1) * g[k];
          v[k] = s.beta_2 * v[k] + (1 - s.beta_2) * g[k] * g[k];
          double denom = v[k];
          if (vh) {
            (*vh)[k] = std::max((*vh)[k], v[k]);
            denom = (*vh)[k];
          }
          p[k] -= lr_t * m[k] / (std::sqrt(denom) + s.epsilon);
        }
      } else if (s.kind == "rmsprop") {
        auto& v = slot("velocity", i);
        auto* mg = s.centered ? &slot("average_gradient", i) : nullptr;
        auto* mom = s.momentum > 0 ? &slot("momentum", i) : nullptr;
        for (size_t k = 0; k < n; ++k) {
          v[k] = s.rho * v[k] + (1 - s.rho) * g[k] * g[k];
          double denom = v[k];
          if (mg) {
            (*mg)[k] = s.rho * (*mg)[k] + (1 - s.rho) * g[k];
            denom = v[k] - (*mg)[k] * (*mg)[k];
          }
          double inc = lr * g[k] / std::sqrt(denom + s.epsilon);
          if (mom) {
            (*mom)[k] = s.momentum * (*mom)[k] + inc;
            p[k] -= (*mom)[k];
          } else {
            p[k] -= inc;
          }
        }
      } else if (s.kind == "adagrad") {
        auto& acc = slot("accumulator", i, s.initial_accumulator_value);
        for (size_t k = 0; k < n; ++k) {
          acc[k] += g[k] * g[k];
          p[k] -= lr * g[k] / std::sqrt(acc[k] + s.epsilon);
        }
      }
    }
    ++t;
  }
};

struct Case {
  std::string name;
  RefSpec ref;
  std::function<OptimizerPtr(bool fused)> make;
};

std::function<double(int64_t)> constant(double lr) {
  return [lr](int64_t) { return lr; };
}

OptimizerOptions opts(bool fused, double wd = 0, double clipnorm = 0, double clipvalue = 0, double global = 0) {
  return {.weight_decay = wd, .clipnorm = clipnorm, .clipvalue = clipvalue, .global_clipnorm = global, .fused = fused};
}

// Clip thresholds are chosen so that clipping takes effect on gradients uniform in [-1, 1].
std::vector<Case> cases() {
  auto decay = std::make_shared<schedules::ExponentialDecay>(0.1, 2, 0.5);
  return {
      {"sgd",
       {.kind = "sgd", .lr = constant(0.1)},
       [](bool f) { return std::make_shared<SGD>(0.1, SGDOptions{}, opts(f)); }},
      {"sgd_momentum",
       {.kind = "sgd", .lr = constant(0.1), .momentum = 0.9},
       [](bool f) { return std::make_shared<SGD>(0.1, SGDOptions{.momentum = 0.9}, opts(f)); }},
      {"sgd_nesterov",
       {.kind = "sgd", .lr = constant(0.05), .momentum = 0.8, .nesterov = true},
       [](bool f) { return std::make_shared<SGD>(0.05, SGDOptions{.momentum = 0.8, .nesterov = true}, opts(f)); }},
      {"sgd_momentum_decay_clipnorm",
       {.kind = "sgd", .lr = constant(0.1), .momentum = 0.5, .weight_decay = 0.2, .clipnorm = 0.5},
       [](bool f) { return std::make_shared<SGD>(0.1, SGDOptions{.momentum = 0.5}, opts(f, 0.2, 0.5)); }},
      {"sgd_clipvalue",
       {.kind = "sgd", .lr = constant(0.1), .clipvalue = 0.3},
       [](bool f) { return std::make_shared<SGD>(0.1, SGDOptions{}, opts(f, 0, 0, 0.3)); }},
      {"adam",
       {.kind = "adam", .lr = constant(0.05)},
       [](bool f) { return std::make_shared<Adam>(0.05, AdamOptions{}, opts(f)); }},
      {"adam_betas_eps",
       {.kind = "adam", .lr = constant(0.02), .beta_1 = 0.5, .beta_2 = 0.9, .epsilon = 0.1},
       [](bool f) {
         return std::make_shared<Adam>(0.02, AdamOptions{.beta_1 = 0.5, .beta_2 = 0.9, .epsilon = 0.1}, opts(f));
       }},
      {"adam_amsgrad_clipvalue",
       {.kind = "adam", .lr = constant(0.05), .amsgrad = true, .clipvalue = 0.3},
       [](bool f) { return std::make_shared<Adam>(0.05, AdamOptions{.amsgrad = true}, opts(f, 0, 0, 0.3)); }},
      {"adam_schedule_clipnorm",
       {.kind = "adam", .lr = [decay](int64_t s) { return (*decay)(s); }, .clipnorm = 0.7},
       [decay](bool f) { return std::make_shared<Adam>(decay, AdamOptions{}, opts(f, 0, 0.7)); }},
      {"adamw_global_clipnorm",
       {.kind = "adam", .lr = constant(0.05), .weight_decay = 0.1, .global_clipnorm = 1.0},
       [](bool f) { return std::make_shared<AdamW>(0.05, 0.1, AdamOptions{}, opts(f, 0, 0, 0, 1.0)); }},
      {"rmsprop",
       {.kind = "rmsprop", .lr = constant(0.01)},
       [](bool f) { return std::make_shared<RMSprop>(0.01, RMSpropOptions{}, opts(f)); }},
      {"rmsprop_centered_momentum",
       {.kind = "rmsprop", .lr = constant(0.01), .momentum = 0.5, .rho = 0.8, .centered = true},
       [](bool f) {
         return std::make_shared<RMSprop>(0.01, RMSpropOptions{.rho = 0.8, .momentum = 0.5, .centered = true}, opts(f));
       }},
      {"rmsprop_centered_clipvalue",
       {.kind = "rmsprop", .lr = constant(0.01), .centered = true, .clipvalue = 0.4},
       [](bool f) { return std::make_shared<RMSprop>(0.01, RMSpropOptions{.centered = true}, opts(f, 0, 0, 0.4)); }},
      {"rmsprop_momentum_decay",
       {.kind = "rmsprop", .lr = constant(0.01), .momentum = 0.9, .weight_decay = 0.3},
       [](bool f) { return std::make_shared<RMSprop>(0.01, RMSpropOptions{.momentum = 0.9}, opts(f, 0.3)); }},
      {"adagrad",
       {.kind = "adagrad", .lr = constant(0.1)},
       [](bool f) { return std::make_shared<Adagrad>(0.1, AdagradOptions{}, opts(f)); }},
      {"adagrad_init_global_clipnorm",
       {.kind = "adagrad", .lr = constant(0.2), .initial_accumulator_value = 0.5, .global_clipnorm = 1.0},
       [](bool f) {
         return std::make_shared<Adagrad>(0.2, AdagradOptions{.initial_accumulator_value = 0.5}, opts(f, 0, 0, 0, 1.0));
       }},
  };
}

struct Mode {
  DType dtype;
  bool fused;
  double rtol, atol;
};

std::string mode_name(const Mode& m) { return std::string(name(m.dtype)) + (m.fused ? " fused" : " tensor-ops"); }

/// The parameters as leaves that require grad; `strided` makes them transposed views.
std::vector<Tensor> make_params(const std::vector<Shape>& shapes, DType dtype, bool strided) {
  std::vector<Tensor> ps;
  for (const Shape& s : shapes) {
    Tensor p;
    if (strided && s.size() == 2) {
      p = uniform({s[1], s[0]}, -1, 1, dtype).t();
    } else {
      p = uniform(IntList(s), -1, 1, dtype);
    }
    ps.push_back(p.requires_grad_());
  }
  return ps;
}

Tensor make_grad(const Shape& s, DType dtype, bool strided) {
  if (strided && s.size() == 2) return uniform({s[1], s[0]}, -1, 1, dtype).t();
  return uniform(IntList(s), -1, 1, dtype);
}

/// Runs `steps` steps of the case on fresh parameters and checks parameters and slots against
/// the reference after each.
void check_case(const Case& c, const Mode& m, const std::vector<Shape>& shapes, int steps = 3, bool strided = false,
                bool skip_one = false) {
  SCOPED_TRACE(c.name + " / " + mode_name(m) + (strided ? " / strided" : ""));
  manual_seed(1234);
  OptimizerPtr opt = c.make(m.fused);
  std::vector<Tensor> ps = make_params(shapes, m.dtype, strided);
  Ref ref{c.ref, {}, {}, 0};
  for (const Tensor& p : ps) ref.w.push_back(values(p));
  for (int step = 0; step < steps; ++step) {
    std::vector<Tensor> gs;
    Grads rg;
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (skip_one && i == 1 && step == 1) {
        gs.emplace_back();
        rg.emplace_back();
        continue;
      }
      gs.push_back(make_grad(shapes[i], m.dtype, strided));
      rg.push_back(values(gs.back()));
    }
    opt->apply(gs, ps);
    ref.step(rg);
    ASSERT_EQ(opt->iterations(), step + 1);
    for (size_t i = 0; i < ps.size(); ++i)
      ASSERT_TRUE(all_close(ps[i], ref.w[i], m.rtol, m.atol)) << "parameter " << i << " after step " << step;
  }
  auto state = opt->state();
  ASSERT_EQ(state.at("iterations").item<int64_t>(), steps);
  size_t nslots = 0;
  for (auto& [name, by_index] : ref.slots)
    for (auto& [i, v] : by_index) {
      std::string key = name + "/" + std::to_string(i);
      ASSERT_TRUE(state.count(key)) << key;
      EXPECT_TRUE(all_close(state.at(key), v, m.rtol, m.atol)) << key;
      ++nslots;
    }
  // No slots beyond the reference's (Keras creates momentum only with momentum > 0, etc.).
  EXPECT_EQ(state.size(), nslots + 1 + (state.count("learning_rate") ? 1 : 0));
}

const std::vector<Mode> kModes = {
    {DType::f64, true, 1e-12, 1e-13},
    {DType::f64, false, 1e-12, 1e-13},
    {DType::f32, true, 2e-5, 2e-6},
    {DType::f32, false, 2e-5, 2e-6},
};

}  // namespace

TEST(Optimizers, ThreeStepsMatchReference) {
  for (const Case& c : cases())
    for (const Mode& m : kModes) check_case(c, m, {{4, 5}, {7}, {3, 1, 2}, {}});
}

TEST(Optimizers, StridedParametersAndGradients) {
  // Transposed leaves and gradients: the fused kernels go through contiguous copies and write
  // back into the parameter's own storage.
  for (const Case& c : cases())
    for (const Mode& m : kModes) check_case(c, m, {{6, 3}, {5, 9}}, 3, /*strided=*/true);
}

TEST(Optimizers, LargeTensorsAcrossThreads) {
  // Large enough for parallel_for to split, with a tail that is not a multiple of any vector width.
  for (const Case& c : cases())
    for (const Mode& m : {kModes[0], kModes[2]}) check_case(c, m, {{70001}}, 2);
}

TEST(Optimizers, EmptyTensors) {
  for (const Case& c : cases())
    for (const Mode& m : kModes) check_case(c, m, {{0, 3}, {2}}, 2);
}

TEST(Optimizers, UndefinedGradientIsSkipped) {
  // Variable 1 has no gradient at step 1: it is neither updated nor decayed, and its slots do
  // not move (the reference skips it the same way).
  for (const Case& c : cases())
    for (const Mode& m : kModes) check_case(c, m, {{3, 2}, {4}}, 3, false, /*skip_one=*/true);
}

TEST(Optimizers, UnusedVariableGetsNoSlots) {
  Adam opt(0.1);
  Tensor a = ones({3}).requires_grad_(), b = ones({2}).requires_grad_();
  opt.apply({ones({3}), Tensor()}, {a, b});
  auto s = opt.state();
  EXPECT_TRUE(s.count("momentum/0"));
  EXPECT_FALSE(s.count("momentum/1"));
  EXPECT_EQ(values(b), (std::vector<double>{1, 1}));
}

TEST(Optimizers, LowPrecisionParametersUseTensorOps) {
  // bfloat16 has no fused kernel: the tensor-op path runs in bfloat16 (about 3 significant digits).
  for (const Case& c : cases()) {
    if (c.name != "sgd_momentum" && c.name != "adam" && c.name != "rmsprop" && c.name != "adagrad") continue;
    check_case(c, {DType::bf16, true, 3e-2, 3e-2}, {{4, 3}}, 3);
  }
}

TEST(Optimizers, MinimizeQuadratic) {
  // f(w) = sum(a (w - t)^2) from w = 0; every optimizer must get close to t.
  struct Q {
    std::string name;
    OptimizerPtr opt;
    double tol;
  };
  std::vector<Q> qs = {
      {"sgd", std::make_shared<SGD>(0.1), 1e-6},
      {"sgd_momentum", std::make_shared<SGD>(0.05, SGDOptions{.momentum = 0.9}), 1e-6},
      {"sgd_nesterov", std::make_shared<SGD>(0.05, SGDOptions{.momentum = 0.9, .nesterov = true}), 1e-6},
      {"adam", std::make_shared<Adam>(0.05), 1e-4},
      {"adam_amsgrad", std::make_shared<Adam>(0.05, AdamOptions{.amsgrad = true}), 1e-4},
      {"adamw", std::make_shared<AdamW>(0.05, 1e-4), 1e-3},
      {"rmsprop", std::make_shared<RMSprop>(0.01), 1e-3},
      {"rmsprop_centered", std::make_shared<RMSprop>(0.01, RMSpropOptions{.momentum = 0.5, .centered = true}), 1e-3},
      {"adagrad", std::make_shared<Adagrad>(0.5), 1e-4},
      {"sgd_clipnorm", std::make_shared<SGD>(0.1, SGDOptions{}, OptimizerOptions{.clipnorm = 1.0}), 1e-6},
  };
  manual_seed(7);
  Tensor a = uniform({12}, 0.5, 2.0, DType::f32);
  Tensor target = uniform({12}, -2, 2, DType::f32);
  for (auto& q : qs) {
    SCOPED_TRACE(q.name);
    Variable w{"w", zeros({12}, {.requires_grad = true}), true, nullptr};
    auto loss_of = [&] { return sum(a * square(w.value - target)); };
    double initial = loss_of().item<double>();
    for (int step = 0; step < 600; ++step) {
      Tensor loss = loss_of();
      Tensor g = glia::grad(loss, w.value);
      q.opt->apply_gradients({g}, {&w});
    }
    double final_loss = loss_of().item<double>();
    EXPECT_LT(final_loss, q.tol * initial) << "from " << initial << " to " << final_loss;
    EXPECT_EQ(q.opt->iterations(), 600);
  }
}

TEST(Optimizers, KerasDocumentedExamples) {
  // keras.optimizers.RMSprop's docstring: lr 0.1, var 10, loss var^2 / 2, one step gives 9.683772.
  Tensor v = full({}, 10.0).requires_grad_();
  RMSprop(0.1).apply({v.detach().clone()}, {v});
  EXPECT_FLOAT_EQ(v.item<float>(), 9.683772f);
  // SGD with momentum 0.9, lr 0.1, var 1, loss var^2 / 2: 0.9 after one step, then 0.72.
  Tensor w = full({}, 1.0).requires_grad_();
  SGD sgd(0.1, {.momentum = 0.9});
  sgd.apply({w.detach().clone()}, {w});
  EXPECT_FLOAT_EQ(w.item<float>(), 0.9f);
  sgd.apply({w.detach().clone()}, {w});
  EXPECT_FLOAT_EQ(w.item<float>(), 0.72f);
}

TEST(Optimizers, StateRoundTripContinuesBitIdentically) {
  for (const Case& c : cases()) {
    for (const Mode& m : {kModes[0], kModes[1], kModes[2]}) {
      SCOPED_TRACE(c.name + " / " + mode_name(m));
      manual_seed(99);
      std::vector<Shape> shapes = {{5, 4}, {33}};
      OptimizerPtr a = c.make(m.fused);
      std::vector<Tensor> pa = make_params(shapes, m.dtype, false);
      auto grads = [&] {
        std::vector<Tensor> gs;
        for (auto& s : shapes) gs.push_back(make_grad(s, m.dtype, false));
        return gs;
      };
      for (int i = 0; i < 2; ++i) a->apply(grads(), pa);

      auto saved = a->state();
      std::map<std::string, std::vector<double>> saved_values;
      for (auto& [k, t] : saved) saved_values[k] = values(t);
      EXPECT_EQ(saved.at("iterations").dtype(), DType::i64);
      EXPECT_EQ(saved.at("iterations").dim(), 0);

      // A new optimizer from the config, with the state loaded, on copies of the parameters.
      OptimizerPtr b = from_config(to_config(*a));
      if (!m.fused) b = c.make(false);
      b->load_state(saved);
      EXPECT_EQ(b->iterations(), 2);
      EXPECT_EQ(b->learning_rate(), a->learning_rate());
      std::vector<Tensor> pb;
      for (auto& p : pa) pb.push_back(p.detach().clone().requires_grad_());

      for (int i = 0; i < 3; ++i) {
        auto gs = grads();
        a->apply(gs, pa);
        b->apply(gs, pb);
      }
      for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(values(pa[i]), values(pb[i])) << "parameter " << i;
      auto sa = a->state(), sb = b->state();
      ASSERT_EQ(sa.size(), sb.size());
      for (auto& [k, t] : sa) EXPECT_EQ(values(t), values(sb.at(k))) << k;
      // state() returned copies: the steps since did not change them.
      for (auto& [k, t] : saved) EXPECT_EQ(values(t), saved_values[k]) << k;
    }
  }
}

TEST(Optimizers, GradientOfAnotherDtypeIsCast) {
  // A float64 gradient for a float32 parameter updates it as the float32 gradient would.
  Tensor a = ones({5}).requires_grad_(), b = ones({5}).requires_grad_();
  manual_seed(3);
  Tensor g = uniform({5}, -1, 1, DType::f64);
  Adam oa(0.1), ob(0.1);
  oa.apply({g}, {a});
  ob.apply({g.to(DType::f32)}, {b});
  EXPECT_EQ(a.dtype(), DType::f32);
  EXPECT_EQ(values(a), values(b));
}

TEST(Optimizers, LoadedStateFollowsTheParameterDtype) {
  // A state saved from float64 parameters continues float32 ones (the slots are converted).
  Tensor w64 = ones({4}, {.dtype = DType::f64}).requires_grad_();
  Tensor g64 = full({4}, 0.5, {.dtype = DType::f64});
  RMSprop a(0.1, {.momentum = 0.5});
  a.apply({g64}, {w64});
  RMSprop b(0.1, {.momentum = 0.5});
  b.load_state(a.state());
  Tensor w32 = w64.detach().to(DType::f32).requires_grad_();
  a.apply({g64}, {w64});
  b.apply({g64.to(DType::f32)}, {w32});
  EXPECT_TRUE(all_close(w32, values(w64), 1e-6, 1e-7));
  EXPECT_EQ(b.state().at("velocity/0").dtype(), DType::f32);
}

TEST(Optimizers, LoadStateReplacesEverything) {
  SGD a(0.1, {.momentum = 0.9});
  Tensor w = ones({3}).requires_grad_();
  a.apply({ones({3})}, {w});
  auto s = a.state();
  SGD b(0.1, {.momentum = 0.9});
  Tensor v = ones({3}).requires_grad_(), u = ones({2}).requires_grad_();
  b.apply({ones({3}), ones({2})}, {v, u});
  b.apply({ones({3}), ones({2})}, {v, u});
  b.load_state(s);
  auto s2 = b.state();
  EXPECT_EQ(s2.size(), s.size());  // momentum/1 is gone
  EXPECT_EQ(b.iterations(), 1);
}

TEST(Optimizers, LearningRateSetAndSaved) {
  auto sched = std::make_shared<schedules::ExponentialDecay>(0.1, 1, 0.5);
  Adam opt(sched);
  Tensor w = ones({2}).requires_grad_();
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.1);
  opt.apply({ones({2})}, {w});
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.05);
  EXPECT_FALSE(opt.state().count("learning_rate"));
  EXPECT_TRUE(opt.config()["learning_rate"].is_object());
  opt.set_learning_rate(0.003);  // replaces the schedule, as ReduceLROnPlateau does
  EXPECT_EQ(opt.learning_rate(), 0.003);
  EXPECT_EQ(opt.config()["learning_rate"], 0.003);
  EXPECT_EQ(opt.learning_rate_spec().schedule(), nullptr);
  auto s = opt.state();
  ASSERT_TRUE(s.count("learning_rate"));
  Adam other(0.5);
  other.load_state(s);
  EXPECT_EQ(other.learning_rate(), 0.003);
  // A constant rate cannot be loaded into an optimizer that follows a schedule.
  Adam scheduled(sched);
  EXPECT_THAT(error_of<ValueError>([&] { scheduled.load_state(s); }), HasSubstr("schedule"));
}

TEST(Optimizers, UpdateBumpsVersion) {
  // Tapes that saved a parameter must see it changed.
  for (bool fused : {true, false}) {
    Tensor w = ones({4}).requires_grad_();
    Tensor y = w * w;  // saves w
    uint32_t v0 = w.version();
    Adam(0.1, {}, {.fused = fused}).apply({ones({4})}, {w});
    EXPECT_GT(w.version(), v0);
    EXPECT_ANY_THROW(y.sum().backward());
  }
}

TEST(Optimizers, ConfigHasKerasKeys) {
  Adam adam(0.002, {.beta_1 = 0.8, .amsgrad = true}, {.clipnorm = 1.5});
  Config c = adam.config();
  EXPECT_EQ(c["name"], "adam");
  EXPECT_EQ(c["learning_rate"], 0.002);
  EXPECT_TRUE(c["weight_decay"].is_null());
  EXPECT_EQ(c["clipnorm"], 1.5);
  EXPECT_TRUE(c["clipvalue"].is_null());
  EXPECT_TRUE(c["global_clipnorm"].is_null());
  EXPECT_EQ(c["beta_1"], 0.8);
  EXPECT_EQ(c["beta_2"], 0.999);
  EXPECT_EQ(c["epsilon"], 1e-7);
  EXPECT_EQ(c["amsgrad"], true);
  EXPECT_EQ(c["use_ema"], false);

  EXPECT_EQ(SGD().config()["name"], "SGD");
  EXPECT_EQ(SGD(0.1, {.momentum = 0.3, .nesterov = true}).config()["nesterov"], true);
  EXPECT_EQ(AdamW().config()["weight_decay"], 0.004);
  EXPECT_EQ(AdamW().config()["name"], "adamw");
  EXPECT_EQ(RMSprop(0.1, {.centered = true}).config()["centered"], true);
  EXPECT_EQ(Adagrad().config()["initial_accumulator_value"], 0.1);
  EXPECT_EQ(SGD(0.1, {}, {.name = "mine"}).config()["name"], "mine");

  Config wrapped = to_config(adam);
  EXPECT_EQ(wrapped["class_name"], "Adam");
  EXPECT_EQ(wrapped["module"], "keras.optimizers");
  EXPECT_EQ(wrapped["config"], c);
}

TEST(Optimizers, ConfigRoundTrip) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    OptimizerPtr o = c.make(true);
    Config text = Config::parse(to_config(*o).dump());
    OptimizerPtr r = from_config(text);
    EXPECT_EQ(r->class_name(), o->class_name());
    EXPECT_EQ(r->config(), o->config());
  }
  // AdamW with weight_decay 0 stays at 0 (not the default 0.004).
  OptimizerPtr w = from_config(to_config(AdamW(0.001, 0.0)));
  EXPECT_EQ(w->config()["weight_decay"], 0.0);
}

TEST(Optimizers, FromKerasConfig) {
  // Written by Keras 3 (float32 values, every base key).
  Config c = Config::parse(R"({"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam",
      "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null,
      "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null,
      "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999,
      "epsilon": 1e-07, "amsgrad": false}, "registered_name": null})");
  OptimizerPtr o = from_config(c);
  EXPECT_EQ(o->class_name(), "Adam");
  EXPECT_NEAR(o->learning_rate(), 0.001, 1e-10);

  Config sched = Config::parse(R"({"class_name": "SGD", "config": {"learning_rate": {"module":
      "keras.optimizers.schedules", "class_name": "PiecewiseConstantDecay", "config": {"boundaries": [2],
      "values": [0.5, 0.1], "name": "PiecewiseConstant"}, "registered_name": null}, "momentum": 0.9}})");
  OptimizerPtr s = from_config(sched);
  EXPECT_EQ(s->learning_rate(), 0.5);
  ASSERT_NE(s->learning_rate_spec().schedule(), nullptr);
  EXPECT_EQ(s->config()["momentum"], 0.9);
  EXPECT_EQ(from_config(Config("rmsprop"))->class_name(), "RMSprop");
}

TEST(Optimizers, GetByName) {
  std::map<std::string, std::string> names = {{"sgd", "SGD"},         {"adam", "Adam"},       {"adamw", "AdamW"},
                                              {"rmsprop", "RMSprop"}, {"adagrad", "Adagrad"}, {"Adam", "Adam"},
                                              {"RMSprop", "RMSprop"}, {"SGD", "SGD"}};
  for (auto& [n, cls] : names) EXPECT_EQ(get(n)->class_name(), cls) << n;
  EXPECT_EQ(get("sgd")->learning_rate(), 0.01);
  EXPECT_EQ(get("adam")->learning_rate(), 0.001);
  EXPECT_EQ(get("rmsprop")->learning_rate(), 0.001);
  EXPECT_EQ(get("adamw")->config()["weight_decay"], 0.004);
  EXPECT_EQ(get("adagrad")->config()["initial_accumulator_value"], 0.1);
  std::string msg = error_of<ValueError>([] { get("adamx"); });
  EXPECT_THAT(msg, HasSubstr("adamx"));
  for (const char* n : {"adagrad", "adam", "adamw", "rmsprop", "sgd"}) EXPECT_THAT(msg, HasSubstr(n));
}

TEST(Optimizers, ConstructionErrors) {
  EXPECT_THAT(error_of<ValueError>([] { SGD(-0.1); }), HasSubstr("SGD: learning_rate"));
  EXPECT_THAT(error_of<ValueError>([] { Adam(std::nan("")); }), HasSubstr("learning_rate"));
  EXPECT_THAT(error_of<ValueError>([] { AdamW(0.1, -1.0); }), HasSubstr("AdamW: weight_decay"));
  EXPECT_THAT(error_of<ValueError>([] { Adam(0.1, {}, {.clipnorm = 1, .clipvalue = 1}); }),
              HasSubstr("only one of clipnorm, clipvalue and global_clipnorm"));
  EXPECT_THAT(error_of<ValueError>([] { SGD(0.1, {.momentum = 1.5}); }), HasSubstr("momentum"));
  EXPECT_THAT(error_of<ValueError>([] { Adam(0.1, {.beta_1 = 1.0}); }), HasSubstr("beta_1"));
  EXPECT_THAT(error_of<ValueError>([] { RMSprop(0.1, {.rho = -0.1}); }), HasSubstr("rho"));
  EXPECT_THAT(error_of<ValueError>([] { Adagrad(0.1, {.initial_accumulator_value = -1}); }),
              HasSubstr("initial_accumulator_value"));
  Adam a;
  EXPECT_THAT(error_of<ValueError>([&] { a.set_learning_rate(-1); }), HasSubstr("learning_rate"));
}

TEST(Optimizers, ApplyErrors) {
  Adam opt(0.1);
  Tensor w = ones({3}).requires_grad_(), v = ones({2}).requires_grad_();
  EXPECT_THAT(error_of<ValueError>([&] {
                opt.apply({ones({3})}, {w, v});
              }),
              HasSubstr("Adam.apply: got 1 gradients for 2 variables"));
  EXPECT_THAT(error_of<ValueError>([&] {
                opt.apply_gradients({ones({3}), ones({2})}, {nullptr, nullptr});
              }),
              HasSubstr("Adam.apply_gradients"));
  EXPECT_THAT(error_of<ShapeError>([&] { opt.apply({ones({4})}, {w}); }), HasSubstr("gradient 0 has shape [4]"));
  Tensor iw = zeros({3}, {.dtype = DType::i64});
  EXPECT_THAT(error_of<DTypeError>([&] { opt.apply({ones({3})}, {iw}); }), HasSubstr("int64"));
  Tensor nonleaf = w * 2;
  EXPECT_THAT(error_of<ValueError>([&] { opt.apply({ones({3})}, {nonleaf}); }), HasSubstr("leaf"));
  EXPECT_THAT(error_of<ValueError>([&] {
                opt.apply({Tensor(), Tensor()}, {w, v});
              }),
              HasSubstr("no gradients provided"));
  EXPECT_EQ(opt.iterations(), 0);
  opt.apply({}, {});  // nothing to do, as in Keras: not counted
  EXPECT_EQ(opt.iterations(), 0);

  // The optimizer serves one list of variables: a slot from variable 0 does not fit another shape.
  opt.apply({ones({3})}, {w});
  EXPECT_THAT(error_of<ShapeError>([&] { opt.apply({ones({2})}, {v}); }), HasSubstr("momentum/0"));
}

TEST(Optimizers, LoadStateErrors) {
  Adam opt(0.1);
  Tensor it = scalar_tensor(int64_t(3), {.dtype = DType::i64});
  std::string msg = error_of<ValueError>([&] { opt.load_state({{"iterations", it}, {"bogus/0", ones({2})}}); });
  EXPECT_THAT(msg, HasSubstr("bogus/0"));
  EXPECT_THAT(msg, HasSubstr("velocity_hat"));  // lists the slot names
  EXPECT_THAT(error_of<ValueError>([&] { opt.load_state({{"momentum/0", ones({2})}}); }), HasSubstr("iterations"));
  EXPECT_THAT(error_of<ValueError>([&] {
                opt.load_state({{"iterations", it}, {"momentum/x", ones({2})}});
              }),
              HasSubstr("momentum/x"));
  EXPECT_THROW(opt.load_state({{"iterations", ones({2})}}), ShapeError);
  EXPECT_THROW(opt.load_state({{"iterations", scalar_tensor(1.5, {.dtype = DType::f32})}}), DTypeError);
  EXPECT_EQ(opt.iterations(), 0);  // nothing was half-loaded

  // A loaded slot of the wrong shape is caught when its variable comes.
  opt.load_state({{"iterations", it}, {"momentum/0", ones({2})}, {"velocity/0", ones({2})}});
  Tensor w = ones({3}).requires_grad_();
  EXPECT_THROW(opt.apply({ones({3})}, {w}), ShapeError);
}

TEST(Optimizers, FromConfigErrors) {
  std::string msg = error_of<ValueError>([] { from_config(Config{{"class_name", "Lion"}, {"config", {}}}); });
  EXPECT_THAT(msg, HasSubstr("Lion"));
  EXPECT_THAT(msg, HasSubstr("adam"));
  EXPECT_THAT(error_of<ValueError>([] {
                from_config(Config{{"class_name", "Adam"}, {"config", {{"beta_3", 1}}}});
              }),
              HasSubstr("beta_3"));
  EXPECT_THAT(error_of<ValueError>([] {
                from_config(Config{{"class_name", "Adam"}, {"config", {{"use_ema", true}}}});
              }),
              HasSubstr("use_ema"));
  EXPECT_THAT(error_of<ValueError>([] {
                from_config(Config{{"class_name", "SGD"}, {"config", {{"learning_rate", "fast"}}}});
              }),
              HasSubstr("learning_rate"));
  EXPECT_THAT(error_of<ValueError>([] {
                from_config(Config{{"class_name", "SGD"}, {"config", {{"learning_rate", -1.0}}}});
              }),
              HasSubstr("learning_rate"));
  EXPECT_THROW(from_config(Config(42)), ValueError);
}
