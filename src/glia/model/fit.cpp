// fit / evaluate / predict: data preparation, the epoch loop, callbacks.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>

#include "glia/autograd/autograd.h"
#include "glia/core/cuda.h"
#include "glia/model/model.h"
#include "glia/ops/functions.h"

namespace glia {
namespace {

using callbacks::CallbackPtr;

int64_t samples_of(const std::vector<Tensor>& ts, const char* what) {
  GLIA_CHECK(!ts.empty(), ValueError, what, ": no data given");
  int64_t n = -1;
  for (size_t i = 0; i < ts.size(); ++i) {
    GLIA_CHECK(ts[i].defined() && ts[i].dim() >= 1, ValueError, what, ": data tensor ", i,
               " must have a batch dimension, got ", ts[i].defined() ? to_string(ts[i].shape()) : "undefined");
    if (n < 0) n = ts[i].shape()[0];
    GLIA_CHECK(ts[i].shape()[0] == n, ValueError, what, ": x and y must have the same number of samples, got ", n,
               " and ", ts[i].shape()[0], " (shapes ", to_string(ts[0].shape()), " and ", to_string(ts[i].shape()),
               ")");
  }
  return n;
}

/// Per-sample weights from class_weight (integer labels, or the argmax of one-hot rows).
Tensor class_weights(const Tensor& y, const std::map<int64_t, double>& cw) {
  Tensor labels = is_floating(y.dtype()) && y.dim() >= 2 && y.shape().back() > 1
                      ? argmax(y, -1)
                      : (is_floating(y.dtype()) ? y.reshape({y.shape()[0], -1}).select(1, 0).to(DType::i64)
                                                : y.reshape({y.shape()[0], -1}).select(1, 0).to(DType::i64));
  auto lv = labels.to_vector<int64_t>();
  std::vector<float> w(lv.size(), 1.0f);
  for (size_t i = 0; i < lv.size(); ++i) {
    auto it = cw.find(lv[i]);
    if (it != cw.end()) w[i] = static_cast<float>(it->second);
  }
  return tensor(w);
}

/// The batches fit, evaluate and predict make of tensors, produced on a background thread; for a
/// model on a GPU, gathered straight into page-locked memory, so that each step's copy to the
/// device is asynchronous and neither thread copies a batch twice.
data::Dataset batches(const data::Dataset& ds, int64_t batch_size, const std::optional<Device>& device) {
  return ds.batch(batch_size, false, device && device->is_cuda()).prefetch(2);
}

/// Whether fit copies the next batch to the GPU while a replayed step runs (cuda::BatchStager);
/// GLIA_STAGE_BATCHES=0 turns it off (then each step copies its own batch first), for comparisons.
bool stage_batches() {
  static const bool on = [] {
    const char* e = std::getenv("GLIA_STAGE_BATCHES");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

/// Splits a dataset element into inputs, targets and an optional sample weight.
struct Split {
  std::vector<Tensor> x, y;
  Tensor sw;
};
Split split_element(const data::Element& e, size_t n_in, size_t n_out, const char* what) {
  GLIA_CHECK(e.size() == n_in + n_out || e.size() == n_in + n_out + 1, ValueError, what, ": dataset elements have ",
             e.size(), " tensors; expected ", n_in, " input(s) and ", n_out,
             " target(s), optionally followed by a sample weight");
  Split s;
  s.x.assign(e.begin(), e.begin() + static_cast<std::ptrdiff_t>(n_in));
  s.y.assign(e.begin() + static_cast<std::ptrdiff_t>(n_in), e.begin() + static_cast<std::ptrdiff_t>(n_in + n_out));
  if (e.size() == n_in + n_out + 1) s.sw = e.back();
  return s;
}

class CallbackList {
 public:
  CallbackList(std::vector<CallbackPtr> cbs, Model* m) : cbs_(std::move(cbs)) {
    for (auto& c : cbs_) c->set_model(m);
  }
  template <class F>
  void each(F f) {
    for (auto& c : cbs_) f(*c);
  }
  void set_params(const std::map<std::string, int64_t>& p) {
    for (auto& c : cbs_) c->params = p;
  }
  void set_fit_state(callbacks::FitState* s) {
    for (auto& c : cbs_) c->fit_state = s;
  }
  bool has_terminate_on_nan() const {
    for (auto& c : cbs_)
      if (dynamic_cast<callbacks::TerminateOnNaN*>(c.get())) return true;
    return false;
  }

 private:
  std::vector<CallbackPtr> cbs_;
};

size_t model_inputs(const Model& m) { return m.is_functional() ? m.inputs().size() : 1; }
size_t model_outputs(const Model& m) { return m.is_functional() ? m.outputs().size() : 1; }

}  // namespace

/// The test loop (evaluate, and fit's validation) with the caller's callbacks: fit passes its
/// own, so that they see on_test_* during validation with fit's parameters left in place.
struct FitLoop {
  static Logs test(Model& m, const data::Dataset& ds, int64_t steps, CallbackList& list) {
    size_t n_in = model_inputs(m), n_out = model_outputs(m);
    m.reset_metrics();
    list.each([](callbacks::Callback& c) { c.on_test_begin({}); });
    int64_t step = 0;
    // Executions of steps_per_execution steps, as in fit.
    const int64_t per_exec = m.compile_opts_.steps_per_execution;
    int64_t exec_first = -1;
    Logs logs;
    auto end_execution = [&](int64_t last) {
      if (per_exec > 1) {
        m.read_deferred_losses(false);
        logs = m.metric_logs();
      }
      exec_first = -1;
      list.each([&](callbacks::Callback& c) { c.on_test_batch_end(last, logs); });
    };
    for (auto it = ds.begin(); it != ds.end() && (steps <= 0 || step < steps); ++it, ++step) {
      Split s = split_element(*it, n_in, n_out, "evaluate");
      if (exec_first < 0) {
        exec_first = step;
        list.each([&](callbacks::Callback& c) { c.on_test_batch_begin(step, {}); });
      }
      logs = m.test_step(s.x, s.y, s.sw, per_exec > 1);
      if (step + 1 - exec_first == per_exec) end_execution(step);
    }
    if (exec_first >= 0) end_execution(step - 1);
    GLIA_CHECK(step > 0, ValueError, "evaluate: the dataset produced no batches");
    logs = m.metric_logs();
    list.each([&](callbacks::Callback& c) { c.on_test_end(logs); });
    return logs;
  }
};

callbacks::History Model::fit(const Tensor& x, const Tensor& y, FitOptions o) {
  return fit(std::vector<Tensor>{x}, std::vector<Tensor>{y}, std::move(o));
}

callbacks::History Model::fit(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, FitOptions o) {
  require_compiled("fit");
  GLIA_CHECK(xs.size() == model_inputs(*this), ValueError, "fit: the model takes ", model_inputs(*this),
             " input(s), got ", xs.size());
  GLIA_CHECK(ys.size() == model_outputs(*this), ValueError, "fit: the model has ", model_outputs(*this),
             " output(s), got ", ys.size(), " target(s)");
  std::vector<Tensor> all = xs;
  all.insert(all.end(), ys.begin(), ys.end());
  int64_t n = samples_of(all, "fit");
  GLIA_CHECK(o.batch_size > 0, ValueError, "fit: batch_size must be positive, got ", o.batch_size);
  Tensor sw = o.sample_weight;
  if (sw.defined())
    GLIA_CHECK(sw.shape() == Shape{n}, ShapeError, "fit: sample_weight must have shape [", n, "], got ",
               to_string(sw.shape()));
  if (!o.class_weight.empty()) {
    Tensor cw = class_weights(ys[0], o.class_weight);
    sw = sw.defined() ? sw.to(DType::f32) * cw : cw;
  }
  if (sw.defined()) all.push_back(sw.to(DType::f32));

  // Validation split: the last fraction, before shuffling (as Keras).
  GLIA_CHECK(o.validation_split >= 0.0 && o.validation_split < 1.0, ValueError,
             "fit: validation_split must be in [0, 1), got ", o.validation_split);
  int64_t n_val = 0;
  if (o.validation_split > 0) {
    // Keras's split point: the first floor(n * (1 - split)) samples train.
    auto split_at = static_cast<int64_t>(std::floor(static_cast<double>(n) * (1.0 - o.validation_split)));
    GLIA_CHECK(split_at > 0 && split_at < n, ValueError, "fit: ", n,
               " samples are not enough to split into training and validation sets with validation_split = ",
               o.validation_split, "; give more data or another validation_split");
    n_val = n - split_at;
  }
  if (n_val > 0) {
    GLIA_CHECK(o.validation_data.empty() && !o.validation_dataset, ValueError,
               "fit: give validation_split or validation_data, not both");
    std::vector<Tensor> train, val;
    for (const Tensor& t : all) {
      train.push_back(t.narrow(0, 0, n - n_val));
      val.push_back(t.narrow(0, n - n_val, n_val));
    }
    all = train;
    n -= n_val;
    int64_t vbs = o.validation_batch_size > 0 ? o.validation_batch_size : o.batch_size;
    o.validation_dataset = batches(data::Dataset::from_tensors(val), vbs, compile_opts_.device);
  } else if (!o.validation_data.empty()) {
    GLIA_CHECK(
        o.validation_data.size() == xs.size() + ys.size() || o.validation_data.size() == xs.size() + ys.size() + 1,
        ValueError, "fit: validation_data must hold ", xs.size(), " input(s) then ", ys.size(), " target(s)");
    samples_of(o.validation_data, "fit (validation_data)");
    int64_t vbs = o.validation_batch_size > 0 ? o.validation_batch_size : o.batch_size;
    o.validation_dataset = batches(data::Dataset::from_tensors(o.validation_data), vbs, compile_opts_.device);
  }
  GLIA_CHECK(n > 0, ValueError, "fit: no training samples");
  data::Dataset ds = data::Dataset::from_tensors(all);
  if (o.shuffle) ds = ds.shuffle(n);
  return fit(batches(ds, o.batch_size, compile_opts_.device), std::move(o));
}

callbacks::History Model::fit(const data::Dataset& ds, FitOptions o) {
  require_compiled("fit");
  GLIA_CHECK(o.epochs >= 0 && o.initial_epoch >= 0, ValueError, "fit: epochs and initial_epoch must be >= 0");
  auto history = std::make_shared<callbacks::History>();
  std::vector<CallbackPtr> cbs = {history};
  cbs.insert(cbs.end(), o.callbacks.begin(), o.callbacks.end());
  if (o.verbose > 0) cbs.push_back(std::make_shared<callbacks::ProgbarLogger>(o.verbose));
  CallbackList list(cbs, this);
  std::optional<int64_t> card = ds.cardinality();
  int64_t steps = o.steps_per_epoch > 0 ? o.steps_per_epoch : (card && *card >= 0 ? *card : -1);
  list.set_params({{"epochs", o.epochs}, {"steps", steps}, {"verbose", o.verbose}});
  size_t n_in = model_inputs(*this), n_out = model_outputs(*this);

  stop_training = false;
  callbacks::FitState state;
  state.here = {o.initial_epoch, 0, 0, ds.shuffle_state()};
  list.set_fit_state(&state);
  // Clears the callbacks' pointer to `state` however fit ends.
  struct Unset {
    CallbackList& l;
    ~Unset() { l.set_fit_state(nullptr); }
  } unset{list};
  list.each([](callbacks::Callback& c) { c.on_train_begin({}); });
  int64_t first_epoch = o.initial_epoch, first_step = 0;
  std::optional<data::Dataset::iterator> it;
  bool resumed_pass = false;
  if (state.resume) {
    // Continue a run that stopped (BackupAndRestore): the pass it was in, in the same order, at
    // the batch it reached.
    const callbacks::ResumePoint& r = *state.resume;
    first_epoch = r.epoch;
    first_step = r.step;
    ds.set_shuffle_state(r.shuffle_state);
    it = ds.begin();
    for (int64_t i = 0; i < r.pass_step; ++i) {
      GLIA_CHECK(*it != ds.end(), ValueError, "fit: cannot resume at batch ", r.pass_step,
                 " of a pass: the dataset has only ", i, " batches (is it the data the backup was taken with?)");
      ++*it;
    }
    resumed_pass = true;
    state.here = r;
  }
  // A pass that runs out early ends the epoch; steps_per_epoch on a repeating dataset continues it.
  for (int64_t epoch = first_epoch; epoch < o.epochs && !stop_training; ++epoch) {
    reset_metrics();
    list.each([&](callbacks::Callback& c) { c.on_epoch_begin(epoch, {}); });
    int64_t step = epoch == first_epoch ? first_step : 0;
    if (!it || (o.steps_per_epoch <= 0 && !resumed_pass)) {
      state.here.shuffle_state = ds.shuffle_state();
      it = ds.begin();
      state.here.pass_step = 0;
    }
    resumed_pass = false;
    Logs logs;
    // Steps run in executions of steps_per_execution (see CompileOptions): the batch-level
    // callbacks see the first and the last step of each, and its logs are read at its end.
    const int64_t per_exec = compile_opts_.steps_per_execution;
    int64_t exec_first = -1;
    // Ends the execution whose last step is `last`; false when training stops.
    auto end_execution = [&](int64_t last) {
      int64_t bad = -1;
      double bad_loss = 0;
      if (per_exec > 1) {
        auto [i, v] = read_deferred_losses();
        logs = metric_logs();
        if (i >= 0) bad = exec_first + i, bad_loss = v;
      } else if (!std::isfinite(logs.at("loss"))) {
        bad = last, bad_loss = logs.at("loss");
      }
      exec_first = -1;
      if (bad >= 0) {
        logs["loss"] = bad_loss;
        if (list.has_terminate_on_nan()) {
          list.each([&](callbacks::Callback& c) { c.on_train_batch_end(bad, logs); });
          stop_training = true;
          return false;
        }
        throw ValueError(
            detail::str("fit: the loss became ", bad_loss, " at epoch ", epoch + 1, ", step ", bad + 1,
                        "; training stopped before this step's update",
                        per_exec > 1 ? detail::str(" (with steps_per_execution = ", per_exec,
                                                   " the later steps of its execution ran, up to step ", last + 1, ")")
                                     : std::string(),
                        " (lower the learning rate, check the data for NaN, or add callbacks::TerminateOnNaN to stop "
                        "without an error)"));
      }
      list.each([&](callbacks::Callback& c) { c.on_train_batch_end(last, logs); });
      return !stop_training;
    };
    // The batch after the current one, when a replayed GPU step took it early (`next` below).
    std::optional<Split> ahead;
    for (; *it != ds.end() && (o.steps_per_epoch <= 0 || step < o.steps_per_epoch); ++step) {
      Split s = ahead ? std::move(*ahead) : split_element(**it, n_in, n_out, "fit");
      ahead.reset();
      bool advanced = false;  // by `next`: then this step does not move the iterator on itself
      if (exec_first < 0) {
        exec_first = step;
        list.each([&](callbacks::Callback& c) { c.on_train_batch_begin(step, {}); });
      }
      // Called by a replayed GPU step while the GPU runs it: moves on to the next batch (as the loop
      // would after this step), whose copy to the device then overlaps the step.
      // An error getting that batch is raised once this step is complete.
      std::exception_ptr ahead_error;
      auto next = [&]() -> std::vector<Tensor> {
        try {
          advanced = true;
          ++*it;
          if (*it == ds.end() || (o.steps_per_epoch > 0 && step + 1 >= o.steps_per_epoch)) return {};
          ahead = split_element(**it, n_in, n_out, "fit");
          std::vector<Tensor> all = ahead->x;
          all.insert(all.end(), ahead->y.begin(), ahead->y.end());
          if (ahead->sw.defined()) all.push_back(ahead->sw);
          return all;
        } catch (...) {
          ahead_error = std::current_exception();
          ahead.reset();
          return {};
        }
      };
      logs = train_step(s.x, s.y, s.sw, per_exec > 1, stage_batches() ? next : std::function<std::vector<Tensor>()>());
      if (ahead_error) std::rethrow_exception(ahead_error);
      // Without deferring, a non-finite loss stops training before this step counts.
      if (per_exec == 1 && !std::isfinite(logs.at("loss")) && !end_execution(step)) break;
      state.here.epoch = epoch;
      state.here.step = step + 1;
      ++state.here.pass_step;
      if (step + 1 - exec_first == per_exec && !end_execution(step)) break;
      if (!advanced) ++*it;
    }
    if (exec_first >= 0) end_execution(step - 1);  // the data ended inside an execution
    if (o.steps_per_epoch > 0 && *it == ds.end()) it.reset();
    if (step == 0 && !stop_training)
      throw ValueError("fit: the dataset produced no batches" +
                       std::string(o.steps_per_epoch > 0 ? " (it ran out: use repeat() with steps_per_epoch)" : ""));
    Logs epoch_logs = metric_logs();
    if (o.validation_dataset && (epoch + 1 - o.initial_epoch) % std::max<int64_t>(o.validation_freq, 1) == 0) {
      Logs val = FitLoop::test(*this, *o.validation_dataset, o.validation_steps, list);
      for (auto& [k, v] : val) epoch_logs["val_" + k] = v;
    }
    // The next epoch starts a new pass unless steps_per_epoch continues this one.
    state.here.epoch = epoch + 1;
    state.here.step = 0;
    if (!it || o.steps_per_epoch <= 0) {
      state.here.shuffle_state = ds.shuffle_state();
      state.here.pass_step = 0;
    }
    list.each([&](callbacks::Callback& c) { c.on_epoch_end(epoch, epoch_logs); });
  }
  list.each([&](callbacks::Callback& c) { c.on_train_end(history->logs.empty() ? Logs{} : history->logs.back()); });
  return *history;
}

Logs Model::evaluate(const Tensor& x, const Tensor& y, EvaluateOptions o) {
  return evaluate(std::vector<Tensor>{x}, std::vector<Tensor>{y}, std::move(o));
}

Logs Model::evaluate(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, EvaluateOptions o) {
  require_compiled("evaluate");
  GLIA_CHECK(xs.size() == model_inputs(*this) && ys.size() == model_outputs(*this), ValueError,
             "evaluate: the model takes ", model_inputs(*this), " input(s) and ", model_outputs(*this),
             " target(s), got ", xs.size(), " and ", ys.size());
  std::vector<Tensor> all = xs;
  all.insert(all.end(), ys.begin(), ys.end());
  int64_t n = samples_of(all, "evaluate");
  if (o.sample_weight.defined()) {
    GLIA_CHECK(o.sample_weight.shape() == Shape{n}, ShapeError, "evaluate: sample_weight must have shape [", n,
               "], got ", to_string(o.sample_weight.shape()));
    all.push_back(o.sample_weight.to(DType::f32));
  }
  GLIA_CHECK(o.batch_size > 0, ValueError, "evaluate: batch_size must be positive, got ", o.batch_size);
  return evaluate(batches(data::Dataset::from_tensors(all), o.batch_size, compile_opts_.device), std::move(o));
}

Logs Model::evaluate(const data::Dataset& ds, EvaluateOptions o) {
  require_compiled("evaluate");
  std::vector<CallbackPtr> cbs = o.callbacks;
  if (o.verbose > 0) cbs.push_back(std::make_shared<callbacks::ProgbarLogger>(o.verbose));
  CallbackList list(cbs, this);
  std::optional<int64_t> card = ds.cardinality();
  list.set_params({{"steps", o.steps > 0 ? o.steps : (card && *card >= 0 ? *card : -1)}, {"verbose", o.verbose}});
  return FitLoop::test(*this, ds, o.steps, list);
}

Tensor Model::predict(const Tensor& x, PredictOptions o) {
  auto out = predict(std::vector<Tensor>{x}, std::move(o));
  GLIA_CHECK(out.size() == 1, ValueError, "predict: the model has ", out.size(),
             " outputs; use the predict overload that returns all of them");
  return out[0];
}

std::vector<Tensor> Model::predict(const std::vector<Tensor>& xs, PredictOptions o) {
  GLIA_CHECK(xs.size() == model_inputs(*this), ValueError, "predict: the model takes ", model_inputs(*this),
             " input(s), got ", xs.size());
  samples_of(xs, "predict");
  GLIA_CHECK(o.batch_size > 0, ValueError, "predict: batch_size must be positive, got ", o.batch_size);
  data::Dataset ds = batches(data::Dataset::from_tensors(xs), o.batch_size, compile_opts_.device);
  std::vector<CallbackPtr> cbs = o.callbacks;
  if (o.verbose > 0) cbs.push_back(std::make_shared<callbacks::ProgbarLogger>(o.verbose));
  CallbackList list(cbs, this);
  list.set_params({{"steps", ds.cardinality().value_or(-1)}, {"verbose", o.verbose}});
  list.each([](callbacks::Callback& c) { c.on_predict_begin({}); });
  std::vector<std::vector<Tensor>> parts;
  int64_t step = 0;
  no_grad g;
  for (auto it = ds.begin(); it != ds.end() && (o.steps <= 0 || step < o.steps); ++it, ++step) {
    list.each([&](callbacks::Callback& c) { c.on_predict_batch_begin(step, {}); });
    auto out = predict_step(*it);
    if (parts.empty()) parts.resize(out.size());
    for (size_t i = 0; i < out.size(); ++i) parts[i].push_back(out[i]);
    list.each([&](callbacks::Callback& c) { c.on_predict_batch_end(step, {}); });
  }
  list.each([](callbacks::Callback& c) { c.on_predict_end({}); });
  std::vector<Tensor> result;
  for (auto& p : parts) result.push_back(concat(p, 0));
  return result;
}

}  // namespace glia
