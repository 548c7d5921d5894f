// Learning-rate schedules: values against their closed forms (Keras's formulas), edge
// steps (boundaries, the end of warm-up and decay), configs and their round trips, errors.
#include <gmock/gmock.h>

#include <cmath>
#include <numbers>

#include "testing.h"

using namespace glia;
using namespace glia::optimizers::schedules;
using glia::testing::error_of;
using ::testing::HasSubstr;

namespace {}  // namespace

TEST(Schedules, ExponentialDecayClosedForm) {
  ExponentialDecay s(0.1, 10, 0.5);
  for (int64_t step : {0, 1, 5, 10, 15, 20, 37, 1000})
    EXPECT_DOUBLE_EQ(s(step), 0.1 * std::pow(0.5, step / 10.0)) << step;
  EXPECT_DOUBLE_EQ(s(0), 0.1);
  EXPECT_DOUBLE_EQ(s(20), 0.025);
}

TEST(Schedules, ExponentialDecayStaircase) {
  ExponentialDecay s(0.2, 4, 0.1, /*staircase=*/true);
  for (int64_t step = 0; step < 20; ++step) EXPECT_DOUBLE_EQ(s(step), 0.2 * std::pow(0.1, step / 4)) << step;
  EXPECT_DOUBLE_EQ(s(3), 0.2);
  EXPECT_DOUBLE_EQ(s(4), 0.2 * 0.1);
}

TEST(Schedules, CosineDecayClosedForm) {
  const double init = 0.5, alpha = 0.1;
  const int64_t steps = 100;
  CosineDecay s(init, steps, {.alpha = alpha});
  for (int64_t step : {0, 1, 25, 50, 99, 100, 101, 500}) {
    double t = std::min<double>(step, steps) / steps;
    double expect = init * ((1 - alpha) * 0.5 * (1 + std::cos(std::numbers::pi * t)) + alpha);
    EXPECT_NEAR(s(step), expect, 1e-15) << step;
  }
  EXPECT_DOUBLE_EQ(s(0), init);
  EXPECT_NEAR(s(50), init * (1 + alpha) / 2, 1e-15);
  EXPECT_NEAR(s(100), init * alpha, 1e-15);
  EXPECT_NEAR(s(1000), init * alpha, 1e-15);  // stays at the floor
}

TEST(Schedules, CosineDecayWarmupIgnoredWithoutTarget) {
  // Keras: without warmup_target there is no warm-up, and warmup_steps does not shift the decay.
  CosineDecay a(0.3, 50, {.warmup_steps = 10});
  CosineDecay b(0.3, 50);
  for (int64_t step = 0; step < 70; step += 7) EXPECT_DOUBLE_EQ(a(step), b(step)) << step;
}

TEST(Schedules, CosineDecayWithWarmup) {
  const double init = 0.0, target = 1.0, alpha = 0.2;
  const int64_t warm = 10, steps = 40;
  CosineDecay s(init, steps, {.alpha = alpha, .warmup_steps = warm, .warmup_target = target});
  for (int64_t step = 0; step < warm; ++step)
    EXPECT_NEAR(s(step), init + (target - init) * static_cast<double>(step) / warm, 1e-15) << step;
  for (int64_t step = warm; step <= warm + steps + 5; ++step) {
    double t = std::min<double>(step - warm, steps) / steps;
    double expect = target * ((1 - alpha) * 0.5 * (1 + std::cos(std::numbers::pi * t)) + alpha);
    EXPECT_NEAR(s(step), expect, 1e-15) << step;
  }
  EXPECT_DOUBLE_EQ(s(0), init);
  EXPECT_DOUBLE_EQ(s(5), 0.5);
  EXPECT_DOUBLE_EQ(s(warm), target);  // warm-up ends exactly at the target
  EXPECT_NEAR(s(warm + steps), alpha * target, 1e-15);
  EXPECT_NEAR(s(warm + steps + 100), alpha * target, 1e-15);
}

TEST(Schedules, CosineDecayWarmupFromNonzero) {
  CosineDecay s(0.1, 20, {.warmup_steps = 4, .warmup_target = 0.5});
  EXPECT_DOUBLE_EQ(s(0), 0.1);
  EXPECT_DOUBLE_EQ(s(2), 0.3);
  EXPECT_DOUBLE_EQ(s(4), 0.5);
  EXPECT_NEAR(s(24), 0.0, 1e-15);
}

TEST(Schedules, PiecewiseConstant) {
  PiecewiseConstantDecay s({10, 20, 30}, {1.0, 0.5, 0.25, 0.125});
  // values[i] while step <= boundaries[i] (the boundary itself belongs to the earlier piece).
  EXPECT_EQ(s(0), 1.0);
  EXPECT_EQ(s(10), 1.0);
  EXPECT_EQ(s(11), 0.5);
  EXPECT_EQ(s(20), 0.5);
  EXPECT_EQ(s(21), 0.25);
  EXPECT_EQ(s(30), 0.25);
  EXPECT_EQ(s(31), 0.125);
  EXPECT_EQ(s(1000000), 0.125);
  PiecewiseConstantDecay constant({}, {0.7});
  EXPECT_EQ(constant(0), 0.7);
  EXPECT_EQ(constant(99), 0.7);
}

TEST(Schedules, ConfigsHaveKerasKeys) {
  Config e = ExponentialDecay(0.1, 10, 0.5, true).config();
  EXPECT_EQ(e["initial_learning_rate"], 0.1);
  EXPECT_EQ(e["decay_steps"], 10);
  EXPECT_EQ(e["decay_rate"], 0.5);
  EXPECT_EQ(e["staircase"], true);
  EXPECT_EQ(e["name"], "ExponentialDecay");

  Config c = CosineDecay(0.1, 100).config();
  EXPECT_TRUE(c["warmup_target"].is_null());
  EXPECT_EQ(c["warmup_steps"], 0);
  EXPECT_EQ(c["alpha"], 0.0);
  Config cw = CosineDecay(0.0, 100, {.alpha = 0.1, .warmup_steps = 5, .warmup_target = 0.3}).config();
  EXPECT_EQ(cw["warmup_target"], 0.3);
  EXPECT_EQ(cw["warmup_steps"], 5);

  Config p = PiecewiseConstantDecay({5, 9}, {3.0, 2.0, 1.0}).config();
  EXPECT_EQ(p["boundaries"], Config({5, 9}));
  EXPECT_EQ(p["values"], Config({3.0, 2.0, 1.0}));

  Config wrapped = to_config(std::make_shared<ExponentialDecay>(0.1, 10, 0.5));
  EXPECT_EQ(wrapped["class_name"], "ExponentialDecay");
  EXPECT_EQ(wrapped["module"], "keras.optimizers.schedules");
  EXPECT_EQ(wrapped["config"], ExponentialDecay(0.1, 10, 0.5).config());
}

TEST(Schedules, ConfigRoundTrip) {
  std::vector<SchedulePtr> all = {
      std::make_shared<ExponentialDecay>(0.1, 7, 0.3, true),
      std::make_shared<ExponentialDecay>(0.05, 3, 0.9),
      std::make_shared<CosineDecay>(0.4, 30, CosineDecayOptions{.alpha = 0.05}),
      std::make_shared<CosineDecay>(0.01, 30,
                                    CosineDecayOptions{.alpha = 0.1, .warmup_steps = 6, .warmup_target = 0.2}),
      std::make_shared<PiecewiseConstantDecay>(std::vector<int64_t>{3, 8}, std::vector<double>{0.3, 0.2, 0.1}),
  };
  for (auto& s : all) {
    // Through text too, as a model file would.
    Config c = Config::parse(to_config(s).dump());
    SchedulePtr r = from_config(c);
    EXPECT_EQ(r->class_name(), s->class_name());
    EXPECT_EQ(r->config(), s->config());
    for (int64_t step = 0; step < 50; ++step) EXPECT_EQ((*r)(step), (*s)(step)) << s->class_name() << " " << step;
  }
}

TEST(Schedules, FromKerasConfig) {
  // As Keras writes it (integers as floats, the wrapper keys).
  Config c = Config::parse(R"({"module": "keras.optimizers.schedules", "class_name": "CosineDecay",
      "config": {"initial_learning_rate": 0.001, "decay_steps": 1000.0, "alpha": 0.0, "name": "CosineDecay",
                 "warmup_target": null, "warmup_steps": 0}, "registered_name": null})");
  SchedulePtr s = from_config(c);
  EXPECT_DOUBLE_EQ((*s)(500), 0.001 * 0.5);
}

TEST(Schedules, Errors) {
  EXPECT_THAT(error_of<ValueError>([] { ExponentialDecay(0.1, 0, 0.5); }), HasSubstr("ExponentialDecay"));
  EXPECT_THAT(error_of<ValueError>([] { CosineDecay(0.1, -3); }), HasSubstr("decay_steps"));
  EXPECT_THAT(error_of<ValueError>([] { CosineDecay(0.1, 3, {.warmup_steps = -1}); }), HasSubstr("warmup_steps"));
  EXPECT_THAT(error_of<ValueError>([] { PiecewiseConstantDecay({1, 2}, {1.0, 2.0}); }), HasSubstr("one more entry"));
  EXPECT_THAT(error_of<ValueError>([] {
                PiecewiseConstantDecay({5, 5}, {1.0, 2.0, 3.0});
              }),
              HasSubstr("increase strictly"));
  std::string msg = error_of<ValueError>([] { from_config(Config{{"class_name", "Nope"}, {"config", {}}}); });
  EXPECT_THAT(msg, HasSubstr("Nope"));
  EXPECT_THAT(msg, HasSubstr("CosineDecay"));  // lists the known classes
  EXPECT_THAT(error_of<ValueError>([] {
                from_config(Config{{"class_name", "ExponentialDecay"},
                                   {"config", {{"initial_learning_rate", 0.1}, {"decay_rate", 0.5}}}});
              }),
              HasSubstr("decay_steps"));
  EXPECT_THAT(
      error_of<ValueError>([] {
        from_config(Config{
            {"class_name", "ExponentialDecay"},
            {"config", {{"initial_learning_rate", 0.1}, {"decay_steps", 3}, {"decay_rate", 0.5}, {"bogus", 1}}}});
      }),
      HasSubstr("bogus"));
  EXPECT_THROW(from_config(Config(3)), ValueError);
}

TEST(Schedules, DriveTheOptimizerLearningRate) {
  auto s = std::make_shared<PiecewiseConstantDecay>(std::vector<int64_t>{1}, std::vector<double>{0.5, 0.25});
  optimizers::SGD opt(s);
  Tensor w = tensor({1.0, 2.0}, {}, {.dtype = float64}).requires_grad_();
  Tensor g = tensor({1.0, 1.0}, {}, {.dtype = float64});
  std::vector<double> expect = {1.0, 2.0};
  for (int64_t step = 0; step < 4; ++step) {
    EXPECT_EQ(opt.learning_rate(), (*s)(step));
    opt.apply({g}, {w});
    for (double& e : expect) e -= (*s)(step);
    EXPECT_TRUE(glia::testing::all_close(w, expect, 0, 1e-15));
  }
  EXPECT_EQ(opt.iterations(), 4);
}
