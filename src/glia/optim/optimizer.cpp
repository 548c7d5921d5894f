// Optimizers with Keras 3's update rules, gradient clipping and decoupled weight decay.
// Float32 / float64 updates run as fused ops (one pass over the parameter, its gradient
// and its slots; kernels per device in backends/*/optim.cpp); other dtypes, and devices
// without a kernel, run the same rule as tensor ops.
#include "glia/optim/optimizer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>

#include "glia/autograd/autograd.h"
#include "glia/nn/layer.h"
#include "glia/ops/elementwise.h"
#include "glia/ops/op.h"
#include "glia/ops/reduce.h"

namespace glia {

// --- the fused update ops
//
// Inputs: (param, grad, slots...), all of one shape and floating dtype. The kernel updates
// param and the slots in place and has no outputs. Every op takes the attrs lr (double),
// step (int64: iterations before this step), weight_decay, grad_scale and clipvalue (doubles):
// the gradient is first multiplied by grad_scale, then clipped to [-clipvalue, clipvalue]
// when clipvalue > 0; param -= lr * weight_decay * param comes before the rule.

namespace {

InferFn update_infer(size_t min_slots, size_t max_slots) {
  return [=](InferContext& c) {
    const Tensor& p = c.input(0);
    check_floating(p, c.name(), "parameter");
    size_t extra = (c.attrs().has("step_state") ? 1 : 0) + (c.attrs().has("guard") ? 1 : 0);
    size_t slots = c.num_inputs() - 2 - extra;
    GLIA_CHECK(slots >= min_slots && slots <= max_slots, InternalError, c.name(), ": expected ", min_slots, " to ",
               max_slots, " slots, got ", slots);
    for (size_t i = 1; i < c.num_inputs() - extra; ++i) {
      GLIA_CHECK(c.shape(i) == p.shape(), ShapeError, c.name(), ": ", i == 1 ? "gradient" : "slot", " of shape ",
                 to_string(c.shape(i)), " for a parameter of shape ", to_string(p.shape()));
      GLIA_CHECK(c.dtype(i) == p.dtype(), DTypeError, c.name(), ": ", i == 1 ? "gradient" : "slot", " of dtype ",
                 name(c.dtype(i)), " for a parameter of dtype ", name(p.dtype()));
    }
  };
}

/// Update ops write the parameter (input 0) and the slots; the gradient (input 1) and the step
/// state and guard at the end are read only.
bool writes_param_and_slots(size_t i, size_t n, const Attrs& a) {
  size_t extra = (a.has("step_state") ? 1 : 0) + (a.has("guard") ? 1 : 0);
  return i == 0 || (i >= 2 && i < n - extra);
}

}  // namespace

// slots: [momentum] (present when attr momentum > 0); bool attr nesterov.
GLIA_OP(optim_sgd_update)
    .inputs({"param", "grad", "slots"})
    .variadic()
    .mutating(writes_param_and_slots)
    .non_differentiable()
    .infer(update_infer(0, 1));
// slots: momentum, velocity, [velocity_hat] (amsgrad); attrs beta_1, beta_2, epsilon.
GLIA_OP(optim_adam_update)
    .inputs({"param", "grad", "slots"})
    .variadic()
    .mutating(writes_param_and_slots)
    .non_differentiable()
    .infer(update_infer(2, 3));
// slots: velocity, [momentum] (attr momentum > 0), [average_gradient] (bool attr centered);
// attrs rho, epsilon.
GLIA_OP(optim_rmsprop_update)
    .inputs({"param", "grad", "slots"})
    .variadic()
    .mutating(writes_param_and_slots)
    .non_differentiable()
    .infer(update_infer(1, 3));
// slots: accumulator; attr epsilon.
GLIA_OP(optim_adagrad_update)
    .inputs({"param", "grad", "slots"})
    .variadic()
    .mutating(writes_param_and_slots)
    .non_differentiable()
    .infer(update_infer(1, 1));

}  // namespace glia

namespace glia::optimizers {

namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

void check_nonneg(double v, const char* cls, const char* what) {
  GLIA_CHECK(v >= 0 && std::isfinite(v), ValueError, cls, ": ", what, " must be a finite number >= 0, got ", v);
}

void check_unit(double v, const char* cls, const char* what, bool closed) {
  bool ok = closed ? (v >= 0 && v <= 1) : (v >= 0 && v < 1);
  GLIA_CHECK(ok, ValueError, cls, ": ", what, " must be in [0, 1", closed ? "]" : ")", ", got ", v);
}

OptimizerOptions with_weight_decay(OptimizerOptions o, double wd) {
  o.weight_decay = wd;
  return o;
}

}  // namespace

// --- Optimizer

Optimizer::Optimizer(const char* cls, LearningRate lr, OptimizerOptions o) : opts_(std::move(o)), lr_(std::move(lr)) {
  // Made now, before any graph is traced, so that compiled steps read it as state (by reference).
  step_state_ = zeros({2}, {.dtype = DType::f64});
  if (lr_.schedule() == nullptr) check_nonneg(lr_.value(), cls, "learning_rate");
  check_nonneg(opts_.weight_decay, cls, "weight_decay");
  check_nonneg(opts_.clipnorm, cls, "clipnorm");
  check_nonneg(opts_.clipvalue, cls, "clipvalue");
  check_nonneg(opts_.global_clipnorm, cls, "global_clipnorm");
  int clips = (opts_.clipnorm > 0) + (opts_.clipvalue > 0) + (opts_.global_clipnorm > 0);
  GLIA_CHECK(clips <= 1, ValueError, cls,
             ": only one of clipnorm, clipvalue and global_clipnorm can be set, got clipnorm=", opts_.clipnorm,
             ", clipvalue=", opts_.clipvalue, ", global_clipnorm=", opts_.global_clipnorm);
}

double Optimizer::learning_rate() const { return lr_.at(iterations_); }

void Optimizer::set_learning_rate(double lr) {
  check_nonneg(lr, class_name().c_str(), "learning_rate");
  lr_ = LearningRate(lr);
}

std::string Optimizer::name() const {
  if (!opts_.name.empty()) return opts_.name;
  std::string cls = class_name();
  return cls == "SGD" ? cls : lower(cls);  // Keras's defaults: "SGD", "adam", "adamw", "rmsprop", "adagrad"
}

void Optimizer::apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable*>& vars) {
  std::string fn = class_name() + ".apply_gradients";
  std::vector<Tensor> params;
  params.reserve(vars.size());
  for (size_t i = 0; i < vars.size(); ++i) {
    GLIA_CHECK(vars[i] != nullptr, ValueError, fn, ": variable ", i, " is null");
    params.push_back(vars[i]->value);
  }
  step_all(grads, params, fn.c_str());
}

void Optimizer::apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable*>& vars,
                                const Tensor& apply_if) {
  GLIA_CHECK(!apply_if.defined() || (apply_if.dtype() == DType::b8 && apply_if.numel() == 1), ValueError, class_name(),
             ".apply_gradients: apply_if must be a bool tensor of one element");
  guard_ = apply_if;
  struct Reset {
    Tensor& g;
    ~Reset() { g = Tensor(); }
  } reset{guard_};
  apply_gradients(grads, vars);
}

void Optimizer::apply(const std::vector<Tensor>& grads, const std::vector<Tensor>& params) {
  std::string fn = class_name() + ".apply";
  step_all(grads, params, fn.c_str());
}

void Optimizer::step_all(const std::vector<Tensor>& grads, const std::vector<Tensor>& params, const char* fn) {
  GLIA_CHECK(grads.size() == params.size(), ValueError, fn, ": got ", grads.size(), " gradients for ", params.size(),
             " variables");
  if (params.empty()) return;
  bool any = false;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    GLIA_CHECK(p.defined(), ValueError, fn, ": variable ", i, " is an undefined tensor");
    GLIA_CHECK(p.is_floating_point(), DTypeError, fn, ": variable ", i, " has dtype ", glia::name(p.dtype()),
               "; only floating-point variables can be trained");
    GLIA_CHECK(p.is_leaf(), ValueError, fn, ": variable ", i,
               " is not a leaf tensor (it is the result of an op); optimizers update leaves in place");
    const Tensor& g = grads[i];
    if (!g.defined()) continue;
    any = true;
    GLIA_CHECK(g.shape() == p.shape(), ShapeError, fn, ": gradient ", i, " has shape ", to_string(g.shape()),
               " but its variable has shape ", to_string(p.shape()));
    GLIA_CHECK(g.is_floating_point(), DTypeError, fn, ": gradient ", i, " has dtype ", glia::name(g.dtype()),
               ", expected a floating dtype");
    // A traced gradient is symbolic and has no device of its own (the plan that runs the graph has).
    GLIA_CHECK(g.is_symbolic() || g.device() == p.device(), DeviceError, fn, ": gradient ", i, " is on ",
               g.device().str(), " but its variable is on ", p.device().str());
  }
  GLIA_CHECK(any, ValueError, fn, ": no gradients provided for any variable (all ", params.size(), " are undefined)");

  no_grad guard;
  // While a graph is traced, the update is recorded; the caller runs begin_step / end_step around
  // each run of the graph (see optimizer.h), so the rate and count are read at run time.
  bool tracing = graph_hook::intercepts(std::span<const Tensor>(grads.data(), grads.size()));
  if (tracing) {
    // Without a guard, each run of the graph is one step: the graph keeps the count. With one
    // (apply_gradients with apply_if), the caller decides after the run (see Model::train_step).
    if (!guard_.defined())
      for (const Tensor& g : grads)
        if (g.defined() && g.is_symbolic()) {
          graph_hook::on_run(
              g, [this] { begin_step(); }, [this] { end_step(); });
          break;
        }
    GLIA_CHECK(can_run_in_graph(params), ValueError, fn,
               ": this optimizer runs its update as tensor ops here (option fused off, or a dtype or device without "
               "a fused kernel), which cannot be recorded into a compiled step; compile the model with "
               "run_eagerly = true");
  } else {
    begin_step();
  }
  double lr = learning_rate();
  std::vector<double> scale(params.size(), 1.0);
  std::vector<Tensor> g_in = grads;
  if (tracing && (opts_.clipnorm > 0 || opts_.global_clipnorm > 0)) {
    // The norms are known only when the graph runs: scale the gradients with tensor ops.
    auto norm = [](const Tensor& g) { return sqrt(sum(square(g.to(DType::f32)))); };
    if (opts_.clipnorm > 0) {
      for (auto& g : g_in)
        if (g.defined()) g = g * (opts_.clipnorm / maximum(norm(g), scalar_tensor(opts_.clipnorm)));
    } else {
      Tensor total;
      for (auto& g : g_in)
        if (g.defined()) total = total.defined() ? total + square(norm(g)) : square(norm(g));
      total = sqrt(total);
      Tensor s = where(total > opts_.global_clipnorm, opts_.global_clipnorm / total, ones_like(total));
      for (auto& g : g_in)
        if (g.defined()) g = g * s;
    }
  } else if (opts_.clipnorm > 0) {
    auto norm_sq = [](const Tensor& g) { return sum(square(g)).item<double>(); };
    // g * clipnorm / max(|g|, clipnorm), as Keras (a NaN norm gives NaN).
    for (size_t i = 0; i < params.size(); ++i) {
      if (!grads[i].defined()) continue;
      double n = std::sqrt(norm_sq(grads[i]));
      scale[i] = std::isnan(n) ? n : opts_.clipnorm / std::max(n, opts_.clipnorm);
    }
  } else if (opts_.global_clipnorm > 0) {
    auto norm_sq = [](const Tensor& g) { return sum(square(g)).item<double>(); };
    double total = 0;
    for (const Tensor& g : grads)
      if (g.defined()) total += norm_sq(g);
    total = std::sqrt(total);
    // Keras turns a non-finite global norm into NaN gradients rather than skipping the step.
    double s = !std::isfinite(total)           ? std::numeric_limits<double>::quiet_NaN()
               : total > opts_.global_clipnorm ? opts_.global_clipnorm / total
                                               : 1.0;
    std::fill(scale.begin(), scale.end(), s);
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (!g_in[i].defined()) continue;
    const Tensor& p = params[i];
    Tensor g = g_in[i].dtype() == p.dtype() ? g_in[i] : g_in[i].to(p.dtype());
    StepContext c{lr, iterations_, scale[i], opts_.clipvalue, opts_.weight_decay};
    update(p, g, i, c);
  }
  if (!tracing) end_step();
}

void Optimizer::begin_step() {
  graph_hook::Suspend eager;
  if (!step_state_.defined()) step_state_ = zeros({2}, {.dtype = DType::f64});
  double* s = step_state_.data<double>();
  s[0] = learning_rate();
  s[1] = static_cast<double>(iterations_);
  if (step_state_device_.defined()) step_state_device_.copy_(step_state_);
}

void Optimizer::end_step() { ++iterations_; }

bool Optimizer::can_run_in_graph(const std::vector<Tensor>& params) const {
  for (const Tensor& p : params)
    if (!use_fused(fused_op(), p)) return false;
  return true;
}

Tensor& Optimizer::slot(const std::string& name, size_t index, const Tensor& like, double init) {
  auto& by_index = slots_[name];
  auto it = by_index.find(index);
  if (it == by_index.end()) {
    Tensor t = full(like.shape(), init, {.dtype = like.dtype(), .device = like.device()});
    return by_index.emplace(index, std::move(t)).first->second;
  }
  Tensor& s = it->second;
  GLIA_CHECK(s.shape() == like.shape(), ShapeError, class_name(), ": state '", name, "/", index, "' has shape ",
             to_string(s.shape()), " but variable ", index, " has shape ", to_string(like.shape()),
             " (an optimizer serves one list of variables, in one order)");
  // A state loaded from another dtype or device follows its variable.
  if (s.dtype() != like.dtype()) s = s.to(like.dtype());
  if (s.device() != like.device()) s = s.to(like.device());
  return s;
}

bool Optimizer::use_fused(const OpDef& op, const Tensor& param) const {
  if (!opts_.fused || (param.dtype() != DType::f32 && param.dtype() != DType::f64)) return false;
  return op.kernel_for(param.device().type) != nullptr;
}

void Optimizer::run_fused(const OpDef& op, const Tensor& param, const Tensor& grad, const std::vector<Tensor>& slots,
                          const StepContext& c, std::initializer_list<std::pair<const char*, double>> hyper,
                          std::initializer_list<std::pair<const char*, bool>> flags) const {
  std::vector<Tensor> in;
  in.reserve(2 + slots.size());
  in.push_back(param);
  in.push_back(grad);
  for (const Tensor& s : slots) in.push_back(s);
  // The step's rate and count come from the step-state tensor (an input, so that a compiled
  // graph reads them at run time); the attrs keep the values of this call for reference.
  if (param.device().is_cpu()) {
    in.push_back(step_state_);
  } else {
    graph_hook::Suspend eager;
    if (!step_state_device_.defined() || step_state_device_.device() != param.device())
      step_state_device_ = step_state_.to(param.device());
    in.push_back(step_state_device_);
  }
  if (guard_.defined()) in.push_back(guard_);
  Attrs attrs{{"lr", c.lr},
              {"step", c.step},
              {"weight_decay", c.weight_decay},
              {"grad_scale", c.grad_scale},
              {"clipvalue", c.clipvalue},
              {"step_state", true}};
  if (guard_.defined()) attrs.set("guard", true);
  for (auto& [k, v] : hyper) attrs.set(k, v);
  for (auto& [k, v] : flags) attrs.set(k, v);
  dispatch(op, std::span<const Tensor>(in.data(), in.size()), std::move(attrs));
  // The kernel wrote in place: saved copies of these tensors in a tape are now stale.
  if (param.storage()) param.storage()->bump_version();
  for (const Tensor& s : slots)
    if (s.storage()) s.storage()->bump_version();
}

Tensor Optimizer::prepare(const Tensor& param, const Tensor& grad, const StepContext& c) const {
  Tensor g = grad;
  if (c.grad_scale != 1.0) g = g * c.grad_scale;
  if (c.clipvalue > 0) g = clamp(g, -c.clipvalue, c.clipvalue);
  if (c.weight_decay > 0) param.sub_(param * (c.lr * c.weight_decay));
  return g;
}

Config Optimizer::config() const {
  auto opt = [](double v) { return v > 0 ? Config(v) : Config(nullptr); };
  Config c;
  c["name"] = name();
  if (lr_.schedule())
    c["learning_rate"] = schedules::to_config(lr_.schedule());
  else
    c["learning_rate"] = lr_.value();
  c["weight_decay"] = opt(opts_.weight_decay);
  c["clipnorm"] = opt(opts_.clipnorm);
  c["global_clipnorm"] = opt(opts_.global_clipnorm);
  c["clipvalue"] = opt(opts_.clipvalue);
  // Keras's remaining base keys, at the values Glia implements.
  c["use_ema"] = false;
  c["ema_momentum"] = 0.99;
  c["ema_overwrite_frequency"] = nullptr;
  c["loss_scale_factor"] = nullptr;
  c["gradient_accumulation_steps"] = nullptr;
  return c;
}

std::map<std::string, Tensor> Optimizer::state() const {
  std::map<std::string, Tensor> s;
  for (auto& [name, by_index] : slots_)
    for (auto& [index, t] : by_index) s.emplace(name + "/" + std::to_string(index), t.clone());
  s.emplace("iterations", scalar_tensor(iterations_, {.dtype = DType::i64}));
  if (!lr_.schedule()) s.emplace("learning_rate", scalar_tensor(lr_.value(), {.dtype = DType::f64}));
  return s;
}

void Optimizer::load_state(const std::map<std::string, Tensor>& s) {
  std::string fn = class_name() + ".load_state";
  std::vector<std::string> names = slot_names();
  std::map<std::string, std::map<size_t, Tensor>> slots;
  int64_t iterations = -1;
  std::optional<double> lr;
  for (auto& [key, t] : s) {
    GLIA_CHECK(t.defined(), ValueError, fn, ": '", key, "' is an undefined tensor");
    if (key == "iterations" || key == "learning_rate") {
      GLIA_CHECK(t.numel() == 1, ShapeError, fn, ": '", key, "' must hold one number, got shape ",
                 to_string(t.shape()));
      if (key == "iterations") {
        GLIA_CHECK(!t.is_floating_point() && t.dtype() != DType::b8, DTypeError, fn,
                   ": 'iterations' must be an integer tensor, got ", glia::name(t.dtype()));
        iterations = t.item<int64_t>();
        GLIA_CHECK(iterations >= 0, ValueError, fn, ": 'iterations' must be >= 0, got ", iterations);
      } else {
        lr = t.item<double>();
        check_nonneg(*lr, fn.c_str(), "learning_rate");
      }
      continue;
    }
    size_t slash = key.rfind('/');
    std::string slot = slash == std::string::npos ? key : key.substr(0, slash);
    std::string index = slash == std::string::npos ? "" : key.substr(slash + 1);
    bool ok = !index.empty() && index.size() < 10 &&
              std::all_of(index.begin(), index.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) &&
              std::find(names.begin(), names.end(), slot) != names.end();
    if (!ok) {
      std::string known;
      for (auto& n : names) known += (known.empty() ? "" : ", ") + n;
      throw ValueError(detail::str(
          fn, ": unexpected entry '", key,
          "'; expected 'iterations', 'learning_rate' or '<slot>/<variable index>' with slot one of ", known));
    }
    GLIA_CHECK(t.is_floating_point(), DTypeError, fn, ": '", key, "' has dtype ", glia::name(t.dtype()),
               ", expected a floating dtype");
    slots[slot][static_cast<size_t>(std::stoul(index))] = t.clone();
  }
  GLIA_CHECK(iterations >= 0, ValueError, fn, ": the state has no 'iterations' entry");
  GLIA_CHECK(!(lr && lr_.schedule()), ValueError, fn,
             ": the state holds a constant learning_rate but this optimizer uses a schedule (",
             lr_.schedule() ? lr_.schedule()->class_name() : "", ")");
  // Slots that exist already are overwritten in place: a compiled step traced before the restore
  // reads them by reference and must see the restored values.
  for (auto& [slot, per_var] : slots)
    for (auto& [i, t] : per_var) {
      auto s_it = slots_.find(slot);
      if (s_it == slots_.end()) continue;
      auto v_it = s_it->second.find(i);
      if (v_it == s_it->second.end()) continue;
      Tensor& old = v_it->second;
      if (old.shape() == t.shape() && old.dtype() == t.dtype()) {
        old.detach().copy_(t);
        t = old;
      }
    }
  slots_ = std::move(slots);
  iterations_ = iterations;
  if (lr) lr_ = LearningRate(*lr);
}

// --- SGD

SGD::SGD(LearningRate lr, SGDOptions s, OptimizerOptions o) : Optimizer("SGD", std::move(lr), std::move(o)), s_(s) {
  check_unit(s.momentum, "SGD", "momentum", true);
}

void SGD::update(const Tensor& p, const Tensor& g, size_t i, const StepContext& c) {
  bool mom = s_.momentum > 0;
  if (use_fused(op_optim_sgd_update, p)) {
    std::vector<Tensor> slots;
    if (mom) slots.push_back(slot("momentum", i, p));
    run_fused(op_optim_sgd_update, p, g, slots, c, {{"momentum", s_.momentum}}, {{"nesterov", s_.nesterov}});
    return;
  }
  Tensor gg = prepare(p, g, c);
  Tensor lrg = gg * c.lr;
  if (!mom) {
    p.sub_(lrg);
    return;
  }
  Tensor& m = slot("momentum", i, p);
  m.mul_(s_.momentum).sub_(lrg);
  if (s_.nesterov)
    p.add_(m * s_.momentum - lrg);
  else
    p.add_(m);
}

const OpDef& SGD::fused_op() const { return op_optim_sgd_update; }

Config SGD::config() const {
  Config c = Optimizer::config();
  c["momentum"] = s_.momentum;
  c["nesterov"] = s_.nesterov;
  return c;
}

// --- Adam, AdamW

Adam::Adam(LearningRate lr, AdamOptions a, OptimizerOptions o) : Adam("Adam", std::move(lr), a, std::move(o)) {}

Adam::Adam(const char* cls, LearningRate lr, AdamOptions a, OptimizerOptions o)
    : Optimizer(cls, std::move(lr), std::move(o)), a_(a) {
  check_unit(a.beta_1, cls, "beta_1", false);
  check_unit(a.beta_2, cls, "beta_2", false);
  check_nonneg(a.epsilon, cls, "epsilon");
}

void Adam::update(const Tensor& p, const Tensor& g, size_t i, const StepContext& c) {
  Tensor& m = slot("momentum", i, p);
  Tensor& v = slot("velocity", i, p);
  if (use_fused(op_optim_adam_update, p)) {
    std::vector<Tensor> slots{m, v};
    if (a_.amsgrad) slots.push_back(slot("velocity_hat", i, p));
    run_fused(op_optim_adam_update, p, g, slots, c,
              {{"beta_1", a_.beta_1}, {"beta_2", a_.beta_2}, {"epsilon", a_.epsilon}});
    return;
  }
  Tensor gg = prepare(p, g, c);
  double t = static_cast<double>(c.step + 1);
  double alpha = c.lr * std::sqrt(1 - std::pow(a_.beta_2, t)) / (1 - std::pow(a_.beta_1, t));
  m.add_((gg - m) * (1 - a_.beta_1));
  v.add_((gg * gg - v) * (1 - a_.beta_2));
  Tensor denom = v;
  if (a_.amsgrad) {
    Tensor& vhat = slot("velocity_hat", i, p);
    vhat.copy_(maximum(vhat, v));
    denom = vhat;
  }
  p.sub_(m * alpha / (sqrt(denom) + a_.epsilon));
}

const OpDef& Adam::fused_op() const { return op_optim_adam_update; }

Config Adam::config() const {
  Config c = Optimizer::config();
  c["beta_1"] = a_.beta_1;
  c["beta_2"] = a_.beta_2;
  c["epsilon"] = a_.epsilon;
  c["amsgrad"] = a_.amsgrad;
  return c;
}

AdamW::AdamW(LearningRate lr, double weight_decay, AdamOptions a, OptimizerOptions o)
    : Adam("AdamW", std::move(lr), a, with_weight_decay(std::move(o), weight_decay)) {}

Config AdamW::config() const {
  // AdamW's weight_decay is a number even at 0 (null would read back as the default 0.004).
  Config c = Adam::config();
  c["weight_decay"] = opts_.weight_decay;
  return c;
}

// --- RMSprop

RMSprop::RMSprop(LearningRate lr, RMSpropOptions r, OptimizerOptions o)
    : Optimizer("RMSprop", std::move(lr), std::move(o)), r_(r) {
  check_unit(r.rho, "RMSprop", "rho", true);
  check_nonneg(r.momentum, "RMSprop", "momentum");
  check_nonneg(r.epsilon, "RMSprop", "epsilon");
}

void RMSprop::update(const Tensor& p, const Tensor& g, size_t i, const StepContext& c) {
  bool mom = r_.momentum > 0;
  Tensor& vel = slot("velocity", i, p);
  if (use_fused(op_optim_rmsprop_update, p)) {
    std::vector<Tensor> slots{vel};
    if (mom) slots.push_back(slot("momentum", i, p));
    if (r_.centered) slots.push_back(slot("average_gradient", i, p));
    run_fused(op_optim_rmsprop_update, p, g, slots, c,
              {{"rho", r_.rho}, {"momentum", r_.momentum}, {"epsilon", r_.epsilon}}, {{"centered", r_.centered}});
    return;
  }
  Tensor gg = prepare(p, g, c);
  vel.copy_(vel * r_.rho + gg * gg * (1 - r_.rho));
  Tensor denom;
  if (r_.centered) {
    Tensor& avg = slot("average_gradient", i, p);
    avg.copy_(avg * r_.rho + gg * (1 - r_.rho));
    denom = vel - avg * avg + r_.epsilon;
  } else {
    denom = vel + r_.epsilon;
  }
  Tensor inc = gg * c.lr / sqrt(denom);
  if (mom) {
    Tensor& m = slot("momentum", i, p);
    m.copy_(m * r_.momentum + inc);
    p.sub_(m);
  } else {
    p.sub_(inc);
  }
}

const OpDef& RMSprop::fused_op() const { return op_optim_rmsprop_update; }

Config RMSprop::config() const {
  Config c = Optimizer::config();
  c["rho"] = r_.rho;
  c["momentum"] = r_.momentum;
  c["epsilon"] = r_.epsilon;
  c["centered"] = r_.centered;
  return c;
}

// --- Adagrad

Adagrad::Adagrad(LearningRate lr, AdagradOptions a, OptimizerOptions o)
    : Optimizer("Adagrad", std::move(lr), std::move(o)), a_(a) {
  check_nonneg(a.initial_accumulator_value, "Adagrad", "initial_accumulator_value");
  check_nonneg(a.epsilon, "Adagrad", "epsilon");
}

void Adagrad::update(const Tensor& p, const Tensor& g, size_t i, const StepContext& c) {
  Tensor& acc = slot("accumulator", i, p, a_.initial_accumulator_value);
  if (use_fused(op_optim_adagrad_update, p)) {
    run_fused(op_optim_adagrad_update, p, g, {acc}, c, {{"epsilon", a_.epsilon}});
    return;
  }
  Tensor gg = prepare(p, g, c);
  acc.add_(gg * gg);
  p.sub_(gg * c.lr / sqrt(acc + a_.epsilon));
}

const OpDef& Adagrad::fused_op() const { return op_optim_adagrad_update; }

Config Adagrad::config() const {
  Config c = Optimizer::config();
  c["initial_accumulator_value"] = a_.initial_accumulator_value;
  c["epsilon"] = a_.epsilon;
  return c;
}

// --- by name and config

namespace {

struct Reader {
  const Config& c;
  std::string cls;
  std::vector<std::string> seen;

  const Config* find(const char* key) {
    seen.emplace_back(key);
    auto it = c.find(key);
    return it == c.end() || it->is_null() ? nullptr : &*it;
  }
  double number(const char* key, double def) {
    const Config* v = find(key);
    if (!v) return def;
    GLIA_CHECK(v->is_number(), ValueError, cls, ".from_config: '", key, "' must be a number, got ", v->dump());
    return v->get<double>();
  }
  bool boolean(const char* key, bool def) {
    const Config* v = find(key);
    if (!v) return def;
    GLIA_CHECK(v->is_boolean(), ValueError, cls, ".from_config: '", key, "' must be true or false, got ", v->dump());
    return v->get<bool>();
  }
  LearningRate learning_rate(double def) {
    const Config* v = find("learning_rate");
    if (!v) return def;
    if (v->is_object()) return schedules::from_config(*v);
    GLIA_CHECK(v->is_number(), ValueError, cls, ".from_config: 'learning_rate' must be a number or a schedule, got ",
               v->dump());
    return v->get<double>();
  }
  OptimizerOptions options(double wd_default = 0.0) {
    OptimizerOptions o;
    if (const Config* n = find("name")) {
      GLIA_CHECK(n->is_string(), ValueError, cls, ".from_config: 'name' must be a string, got ", n->dump());
      o.name = n->get<std::string>();
    }
    o.weight_decay = number("weight_decay", wd_default);
    o.clipnorm = number("clipnorm", 0.0);
    o.global_clipnorm = number("global_clipnorm", 0.0);
    o.clipvalue = number("clipvalue", 0.0);
    GLIA_CHECK(!boolean("use_ema", false), ValueError, cls,
               ".from_config: use_ema=true is not supported (Glia keeps no moving average of the weights)");
    number("ema_momentum", 0.99);  // only meaningful with use_ema
    GLIA_CHECK(!find("ema_overwrite_frequency"), ValueError, cls,
               ".from_config: ema_overwrite_frequency is not supported");
    GLIA_CHECK(!find("loss_scale_factor"), ValueError, cls, ".from_config: loss_scale_factor is not supported");
    GLIA_CHECK(!find("gradient_accumulation_steps"), ValueError, cls,
               ".from_config: gradient_accumulation_steps is not supported");
    find("decay");  // Keras 3 ignores the legacy `decay` argument too
    return o;
  }
  void done() {
    for (auto it = c.begin(); it != c.end(); ++it) {
      if (std::find(seen.begin(), seen.end(), it.key()) != seen.end()) continue;
      std::string known;
      for (auto& s : seen) known += (known.empty() ? "" : ", ") + s;
      throw ValueError(detail::str(cls, ".from_config: unknown argument '", it.key(), "' (known: ", known, ")"));
    }
  }
};

using Factory = std::function<OptimizerPtr(const Config&)>;

// Keras's lower-case names; lookups ignore case, so the class names work too.
const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> f = {
      {"sgd",
       [](const Config& c) -> OptimizerPtr {
         Reader r{c, "SGD", {}};
         LearningRate lr = r.learning_rate(0.01);
         SGDOptions s{r.number("momentum", 0.0), r.boolean("nesterov", false)};
         OptimizerOptions o = r.options();
         r.done();
         return std::make_shared<SGD>(lr, s, o);
       }},
      {"adam",
       [](const Config& c) -> OptimizerPtr {
         Reader r{c, "Adam", {}};
         LearningRate lr = r.learning_rate(0.001);
         AdamOptions a{r.number("beta_1", 0.9), r.number("beta_2", 0.999), r.number("epsilon", 1e-7),
                       r.boolean("amsgrad", false)};
         OptimizerOptions o = r.options();
         r.done();
         return std::make_shared<Adam>(lr, a, o);
       }},
      {"adamw",
       [](const Config& c) -> OptimizerPtr {
         Reader r{c, "AdamW", {}};
         LearningRate lr = r.learning_rate(0.001);
         AdamOptions a{r.number("beta_1", 0.9), r.number("beta_2", 0.999), r.number("epsilon", 1e-7),
                       r.boolean("amsgrad", false)};
         OptimizerOptions o = r.options(0.004);
         r.done();
         return std::make_shared<AdamW>(lr, o.weight_decay, a, o);
       }},
      {"rmsprop",
       [](const Config& c) -> OptimizerPtr {
         Reader r{c, "RMSprop", {}};
         LearningRate lr = r.learning_rate(0.001);
         RMSpropOptions p{r.number("rho", 0.9), r.number("momentum", 0.0), r.number("epsilon", 1e-7),
                          r.boolean("centered", false)};
         OptimizerOptions o = r.options();
         r.done();
         return std::make_shared<RMSprop>(lr, p, o);
       }},
      {"adagrad",
       [](const Config& c) -> OptimizerPtr {
         Reader r{c, "Adagrad", {}};
         LearningRate lr = r.learning_rate(0.001);
         AdagradOptions a{r.number("initial_accumulator_value", 0.1), r.number("epsilon", 1e-7)};
         OptimizerOptions o = r.options();
         r.done();
         return std::make_shared<Adagrad>(lr, a, o);
       }},
  };
  return f;
}

const Factory& factory(const std::string& name, const char* fn) {
  auto& f = factories();
  auto it = f.find(lower(name));
  if (it == f.end()) {
    std::string known;
    for (auto& [k, v] : f) known += (known.empty() ? "" : ", ") + k;
    throw ValueError(detail::str(fn, ": unknown optimizer '", name, "' (known: ", known, ")"));
  }
  return it->second;
}

}  // namespace

OptimizerPtr get(const std::string& name) { return factory(name, "optimizers::get")(Config::object()); }

OptimizerPtr from_config(const Config& c) {
  if (c.is_string()) return factory(c.get<std::string>(), "optimizers::from_config")(Config::object());
  GLIA_CHECK(c.is_object() && c.contains("class_name") && c["class_name"].is_string(), ValueError,
             "optimizers::from_config: expected {\"class_name\": ..., \"config\": {...}} or a name, got ", c.dump());
  const Factory& f = factory(c["class_name"].get<std::string>(), "optimizers::from_config");
  Config cfg = c.contains("config") ? c["config"] : Config::object();
  GLIA_CHECK(cfg.is_object(), ValueError, "optimizers::from_config: 'config' must be an object, got ", cfg.dump());
  return f(cfg);
}

Config to_config(const Optimizer& o) {
  return {{"module", "keras.optimizers"},
          {"class_name", o.class_name()},
          {"config", o.config()},
          {"registered_name", nullptr}};
}

}  // namespace glia::optimizers
