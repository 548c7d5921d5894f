// Optimizers (keras.optimizers). State (slots and step count) is a set of named
// tensors, so that it can be saved and restored exactly.
#pragma once

#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "glia/core/tensor.h"
#include "glia/nn/config.h"
#include "glia/ops/op.h"
#include "glia/optim/schedules.h"

namespace glia {
struct Variable;
class OpDef;
}  // namespace glia

namespace glia::optimizers {

/// A learning rate: a number or a schedule.
class LearningRate {
 public:
  LearningRate(double v) : value_(v) {}                                // NOLINT
  LearningRate(schedules::SchedulePtr s) : schedule_(std::move(s)) {}  // NOLINT
  template <class S, class = std::enable_if_t<std::is_base_of_v<schedules::LearningRateSchedule, S>>>
  LearningRate(std::shared_ptr<S> s) : schedule_(std::move(s)) {}  // NOLINT
  double at(int64_t step) const { return schedule_ ? (*schedule_)(step) : value_; }
  const schedules::SchedulePtr& schedule() const { return schedule_; }
  double value() const { return value_; }

 private:
  double value_ = 0.0;
  schedules::SchedulePtr schedule_;
};

/// Options every optimizer takes (Keras names; 0 turns an option off). At most one of the
/// three clipping options may be set, as in Keras.
struct OptimizerOptions {
  double weight_decay = 0.0;     // decoupled: w -= lr * wd * w before the update (Keras's weight_decay)
  double clipnorm = 0.0;         // clip each gradient to this L2 norm
  double clipvalue = 0.0;        // clip each gradient element to [-v, v]
  double global_clipnorm = 0.0;  // clip all gradients together to this norm
  std::string name = "";         // "" gives Keras's default ("adam", "sgd", ...)
  /// Use the fused one-pass update kernels where the device has them (float32 / float64);
  /// false runs the same rule as a chain of tensor ops (a reference, and for other dtypes).
  bool fused = true;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  /// One step: clips the gradients, applies weight decay and the update rule to each
  /// variable (in place, without recording autograd), then counts the step. Variables with
  /// an undefined gradient are left alone; empty lists are a no-op that does not count.
  void apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable*>& vars);
  /// Inside a compiled step: the update happens only where `apply_if` (a bool 0-d tensor, e.g.
  /// isfinite(loss)) is true when the graph runs.
  void apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable*>& vars, const Tensor& apply_if);
  /// The same for bare tensors (each must be a leaf; updated in place).
  void apply(const std::vector<Tensor>& grads, const std::vector<Tensor>& params);

  // --- inside compiled graphs (glia::function)
  // Called while a graph is being traced, apply_gradients records the update kernels; they read
  // this step's learning rate and iteration count from a small state tensor the optimizer owns.
  // Around each run of such a graph, call begin_step() (writes the current rate and count into
  // that tensor) and end_step() (counts the step). Eager calls do both themselves.
  void begin_step();
  void end_step();
  /// Whether apply_gradients on these parameters can be recorded into a graph (fused kernels for
  /// their dtype and device, and the option fused on).
  bool can_run_in_graph(const std::vector<Tensor>& params) const;

  /// The learning rate the next step uses.
  double learning_rate() const;
  /// Sets a constant learning rate (replacing a schedule), as ReduceLROnPlateau does.
  void set_learning_rate(double lr);
  /// The learning rate as given: a number or a schedule.
  const LearningRate& learning_rate_spec() const { return lr_; }
  int64_t iterations() const { return iterations_; }
  /// The optimizer's name (config key "name").
  std::string name() const;

  virtual std::string class_name() const = 0;
  /// Hyper-parameters (learning rate or schedule, options, and the subclass's).
  virtual Config config() const;
  /// The names of the per-variable state slots this optimizer may create ("momentum", ...).
  virtual std::vector<std::string> slot_names() const = 0;

  /// Copies of the slots by "<slot>/<index of variable>", plus "iterations" (int64, 0-d) and,
  /// for a constant rate, "learning_rate" (float64, 0-d); load_state restores them exactly.
  std::map<std::string, Tensor> state() const;
  void load_state(const std::map<std::string, Tensor>& s);

 protected:
  /// Checks the learning rate and options; `cls` names the class in error messages.
  Optimizer(const char* cls, LearningRate lr, OptimizerOptions o);
  /// What one step passes to update() besides the parameter and its gradient.
  struct StepContext {
    double lr;            // the learning rate of this step
    int64_t step;         // iterations before this step (Adam's t is step + 1)
    double grad_scale;    // factor from clipnorm / global_clipnorm for this gradient (1: none)
    double clipvalue;     // element-wise clip of the scaled gradient (0: none)
    double weight_decay;  // w -= lr * weight_decay * w before the update (0: none)
  };
  /// The update of parameter `index` (a floating leaf; `grad` has its shape and dtype).
  /// The clipping and weight decay in `c` are the update's to apply: the fused kernels
  /// fold them into their single pass, the tensor-op path uses prepare().
  virtual void update(const Tensor& param, const Tensor& grad, size_t index, const StepContext& c) = 0;
  /// Slot `name` of parameter `index`, created filled with `init` like `like` on first use.
  Tensor& slot(const std::string& name, size_t index, const Tensor& like, double init = 0.0);
  /// Whether the fused update op `op` takes `param` (option `fused`, dtype, device kernel).
  bool use_fused(const OpDef& op, const Tensor& param) const;
  /// The fused update op of this optimizer.
  virtual const OpDef& fused_op() const = 0;
  /// Runs fused update op `op` on (param, grad, slots...) with the step's clip / decay attrs.
  void run_fused(const OpDef& op, const Tensor& param, const Tensor& grad, const std::vector<Tensor>& slots,
                 const StepContext& c, std::initializer_list<std::pair<const char*, double>> hyper,
                 std::initializer_list<std::pair<const char*, bool>> flags = {}) const;
  /// Tensor-op path: applies the step's weight decay to param and returns the clipped gradient.
  Tensor prepare(const Tensor& param, const Tensor& grad, const StepContext& c) const;
  int64_t step() const { return iterations_; }
  OptimizerOptions opts_;

 private:
  void step_all(const std::vector<Tensor>& grads, const std::vector<Tensor>& params, const char* fn);
  /// The guard of the step being recorded (see apply_gradients with apply_if), or undefined.
  Tensor guard_;
  LearningRate lr_;
  int64_t iterations_ = 0;
  std::map<std::string, std::map<size_t, Tensor>> slots_;
  /// [learning rate, iterations] of the current step (float64), read by the fused kernels.
  Tensor step_state_;
  /// Its copy on the GPU for variables there (made on first use, refreshed by begin_step with an
  /// asynchronous copy, so a compiled step on the GPU reads the current values without a sync).
  mutable Tensor step_state_device_;
};
using OptimizerPtr = std::shared_ptr<Optimizer>;

struct SGDOptions {
  double momentum = 0.0;
  bool nesterov = false;
};
/// velocity = momentum * velocity - lr * g; w += velocity (nesterov: w += momentum * velocity - lr * g).
class SGD : public Optimizer {
 public:
  explicit SGD(LearningRate lr = 0.01, SGDOptions s = {}, OptimizerOptions o = {});
  std::string class_name() const override { return "SGD"; }
  Config config() const override;
  std::vector<std::string> slot_names() const override { return {"momentum"}; }

 protected:
  void update(const Tensor& p, const Tensor& g, size_t i, const StepContext& c) override;
  const OpDef& fused_op() const override;

 private:
  SGDOptions s_;
};

struct AdamOptions {
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  bool amsgrad = false;
};
/// Adam as Keras 3: w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), t = iterations + 1.
class Adam : public Optimizer {
 public:
  explicit Adam(LearningRate lr = 0.001, AdamOptions a = {}, OptimizerOptions o = {});
  std::string class_name() const override { return "Adam"; }
  Config config() const override;
  std::vector<std::string> slot_names() const override { return {"momentum", "velocity", "velocity_hat"}; }

 protected:
  Adam(const char* cls, LearningRate lr, AdamOptions a, OptimizerOptions o);
  void update(const Tensor& p, const Tensor& g, size_t i, const StepContext& c) override;
  const OpDef& fused_op() const override;
  AdamOptions a_;
};

/// Adam with decoupled weight decay (default 0.004, as Keras).
class AdamW : public Adam {
 public:
  explicit AdamW(LearningRate lr = 0.001, double weight_decay = 0.004, AdamOptions a = {}, OptimizerOptions o = {});
  std::string class_name() const override { return "AdamW"; }
  Config config() const override;
};

struct RMSpropOptions {
  double rho = 0.9;
  double momentum = 0.0;
  double epsilon = 1e-7;
  bool centered = false;
};
class RMSprop : public Optimizer {
 public:
  explicit RMSprop(LearningRate lr = 0.001, RMSpropOptions r = {}, OptimizerOptions o = {});
  std::string class_name() const override { return "RMSprop"; }
  Config config() const override;
  std::vector<std::string> slot_names() const override { return {"velocity", "momentum", "average_gradient"}; }

 protected:
  void update(const Tensor& p, const Tensor& g, size_t i, const StepContext& c) override;
  const OpDef& fused_op() const override;

 private:
  RMSpropOptions r_;
};

struct AdagradOptions {
  double initial_accumulator_value = 0.1;
  double epsilon = 1e-7;
};
class Adagrad : public Optimizer {
 public:
  explicit Adagrad(LearningRate lr = 0.001, AdagradOptions a = {}, OptimizerOptions o = {});
  std::string class_name() const override { return "Adagrad"; }
  Config config() const override;
  std::vector<std::string> slot_names() const override { return {"accumulator"}; }

 protected:
  void update(const Tensor& p, const Tensor& g, size_t i, const StepContext& c) override;
  const OpDef& fused_op() const override;

 private:
  AdagradOptions a_;
};

/// An optimizer by Keras name ("adam", "sgd", "rmsprop", "adamw", "adagrad"; the class names
/// too, any case) with default hyper-parameters; ValueError listing the known names otherwise.
OptimizerPtr get(const std::string& name);
/// From {"class_name": ..., "config": {...}} (Keras's serialized form) or a bare name.
OptimizerPtr from_config(const Config& c);
/// {"module": "keras.optimizers", "class_name": ..., "config": ..., "registered_name": null}.
Config to_config(const Optimizer& o);

}  // namespace glia::optimizers
