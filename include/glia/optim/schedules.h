// Learning-rate schedules (keras.optimizers.schedules): the rate as a function of the step.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "glia/nn/config.h"

namespace glia::optimizers::schedules {

class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  /// The learning rate at optimizer step `step` (0-based).
  virtual double operator()(int64_t step) const = 0;
  virtual std::string class_name() const = 0;
  /// Keras's get_config() keys (including "name").
  virtual Config config() const = 0;
};
using SchedulePtr = std::shared_ptr<LearningRateSchedule>;

/// initial * decay_rate ^ (step / decay_steps), the exponent floored when staircase.
class ExponentialDecay : public LearningRateSchedule {
 public:
  ExponentialDecay(double initial_learning_rate, int64_t decay_steps, double decay_rate, bool staircase = false);
  double operator()(int64_t step) const override;
  std::string class_name() const override { return "ExponentialDecay"; }
  Config config() const override;

 private:
  double initial_, rate_;
  int64_t steps_;
  bool staircase_;
};

struct CosineDecayOptions {
  double alpha = 0.0;  // the floor, as a fraction of the rate the decay starts from
  int64_t warmup_steps = 0;
  std::optional<double> warmup_target = std::nullopt;  // rate reached after warm-up; none: no warm-up
};
/// Optional linear warm-up from initial_learning_rate to warmup_target over warmup_steps,
/// then cosine decay over decay_steps down to alpha * (the rate at its start), as keras
/// CosineDecay.
class CosineDecay : public LearningRateSchedule {
 public:
  CosineDecay(double initial_learning_rate, int64_t decay_steps, CosineDecayOptions o = {});
  double operator()(int64_t step) const override;
  std::string class_name() const override { return "CosineDecay"; }
  Config config() const override;

 private:
  double initial_;
  int64_t steps_;
  CosineDecayOptions o_;
};

/// values[i] while step <= boundaries[i] (values has one more entry than boundaries, which
/// increase strictly).
class PiecewiseConstantDecay : public LearningRateSchedule {
 public:
  PiecewiseConstantDecay(std::vector<int64_t> boundaries, std::vector<double> values);
  double operator()(int64_t step) const override;
  std::string class_name() const override { return "PiecewiseConstantDecay"; }
  Config config() const override;

 private:
  std::vector<int64_t> boundaries_;
  std::vector<double> values_;
};

/// From {"class_name": ..., "config": {...}}; ValueError listing the known classes otherwise.
SchedulePtr from_config(const Config& c);
/// {"module": "keras.optimizers.schedules", "class_name": ..., "config": ..., "registered_name": null}.
Config to_config(const SchedulePtr& s);

}  // namespace glia::optimizers::schedules
