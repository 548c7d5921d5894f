// Model: Functional graphs, subclassed models, compile and the train/test steps.
#include "glia/model/model.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "glia/autograd/autograd.h"
#include "glia/core/cuda.h"
#include "glia/nn/activations.h"
#include "glia/nn/layers.h"
#include "glia/ops/functions.h"

namespace glia {

// --- argument holders

OptimizerArg::OptimizerArg(const char* name) : ptr_(optimizers::get(name)) {}
OptimizerArg::OptimizerArg(const std::string& name) : ptr_(optimizers::get(name)) {}
LossArg::LossArg(const char* name) : ptr_(losses::get(name)), name_(name) {}
LossArg::LossArg(const std::string& name) : ptr_(losses::get(name)), name_(name) {}

// --- construction

Model::Model(std::string name) : Layer(std::move(name)) {}

Model::Model(const KerasTensor& input, const KerasTensor& output, std::string name)
    : Model(std::vector<KerasTensor>{input}, std::vector<KerasTensor>{output}, std::move(name)) {}

Model::Model(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs, std::string name)
    : Layer(std::move(name)), inputs_(std::move(inputs)), outputs_(std::move(outputs)) {
  GLIA_CHECK(!inputs_.empty() && !outputs_.empty(), ValueError, "Model: needs at least one input and one output");
  std::unordered_set<KerasTensor::Node*> input_set;
  for (auto& i : inputs_) {
    GLIA_CHECK(i.defined() && i.inputs().empty() && i.layer()->class_name() == "InputLayer", ValueError,
               "Model: inputs must come from glia::Input(...)");
    input_set.insert(i.node().get());
  }
  // Depth-first post-order from the outputs gives an execution order.
  std::unordered_set<KerasTensor::Node*> done, active;
  std::function<void(const std::shared_ptr<KerasTensor::Node>&)> visit =
      [&](const std::shared_ptr<KerasTensor::Node>& n) {
        if (done.count(n.get())) return;
        if (n->inputs.empty()) {
          GLIA_CHECK(input_set.count(n.get()), ValueError,
                     "Model: graph disconnected: the output depends on an Input "
                     "(shape ",
                     to_string(n->shape), ") that is not among the model's inputs");
        }
        active.insert(n.get());
        for (auto& in : n->inputs) visit(in.node());
        active.erase(n.get());
        done.insert(n.get());
        order_.push_back(n);
      };
  for (auto& o : outputs_) {
    GLIA_CHECK(o.defined(), ValueError, "Model: an output is an undefined KerasTensor");
    visit(o.node());
  }
  for (auto& n : order_)
    if (!n->inputs.empty()) track_layer(n->layer);
  std::vector<Shape> shapes;
  for (auto& i : inputs_) shapes.emplace_back(i.shape().begin() + 1, i.shape().end());
  ensure_built(shapes);
}

std::string Model::class_name() const { return is_functional() ? "Functional" : "Model"; }

void Model::build(const std::vector<Shape>&) {}

int Model::num_inputs() const { return inputs_.size() > 1 ? -1 : 1; }

Config Model::config() const {
  Config c = Layer::config();
  if (!is_functional()) return c;
  // The graph: every layer once, with the nodes that call it.
  Config layers = Config::array();
  std::vector<Layer*> seen;
  std::unordered_map<KerasTensor::Node*, std::pair<std::string, int>> node_ref;
  std::map<Layer*, int> calls;
  for (auto& n : order_) {
    Layer* l = n->layer.get();
    int idx = calls[l]++;
    node_ref[n.get()] = {l->name(), idx};
    if (std::find(seen.begin(), seen.end(), l) == seen.end()) {
      seen.push_back(l);
      Config lc = layer_to_config(*l);
      lc["name"] = l->name();
      lc["inbound_nodes"] = Config::array();
      layers.push_back(lc);
    }
    Config inbound = Config::array();
    for (auto& in : n->inputs) {
      auto [ln, li] = node_ref.at(in.node().get());
      inbound.push_back(Config::array({ln, li}));
    }
    for (auto& lc : layers)
      if (lc["name"] == l->name()) lc["inbound_nodes"].push_back(inbound);
  }
  c["layers"] = layers;
  auto refs = [&](const std::vector<KerasTensor>& ts) {
    Config a = Config::array();
    for (auto& t : ts) {
      auto [ln, li] = node_ref.at(t.node().get());
      a.push_back(Config::array({ln, li}));
    }
    return a;
  };
  c["input_layers"] = refs(inputs_);
  c["output_layers"] = refs(outputs_);
  return c;
}

// --- forward

std::vector<Tensor> Model::forward(const std::vector<Tensor>& inputs, bool training, bool logits) {
  if (!is_functional()) {
    // Through operator() so that a subclassed model is built (and its input shapes checked) as
    // when called directly.
    Tensor y = inputs.size() == 1 ? (*this)(inputs[0], training) : call(inputs, training);
    return {y};
  }
  GLIA_CHECK(inputs.size() == inputs_.size(), ValueError, "model \"", name(), "\" expects ", inputs_.size(),
             " inputs, got ", inputs.size());
  std::unordered_map<KerasTensor::Node*, Tensor> values;
  for (size_t i = 0; i < inputs_.size(); ++i) values[inputs_[i].node().get()] = (*inputs_[i].layer())(inputs[i]);
  std::unordered_map<KerasTensor::Node*, size_t> output_index;
  for (size_t i = 0; i < outputs_.size(); ++i) output_index.emplace(outputs_[i].node().get(), i);
  for (auto& n : order_) {
    if (n->inputs.empty()) continue;
    std::vector<Tensor> in;
    for (auto& k : n->inputs) in.push_back(values.at(k.node().get()));
    Layer& l = *n->layer;
    bool want_logits = false;
    if (logits) {
      auto it = output_index.find(n.get());
      want_logits = it != output_index.end() && it->second < logit_losses_.size() && logit_losses_[it->second];
    }
    if (want_logits) {
      values[n.get()] = l.call_logits(in[0], training);
    } else {
      values[n.get()] = l.num_inputs() == 1 ? l(in[0], training) : l(in, training);
    }
  }
  std::vector<Tensor> out;
  for (auto& o : outputs_) out.push_back(values.at(o.node().get()));
  return out;
}

Tensor Model::call(const Tensor& x, bool training) {
  GLIA_CHECK(is_functional(), InternalError, "model \"", name(), "\" (", class_name(),
             ") is subclassed but does not override call()");
  auto out = forward({x}, training);
  GLIA_CHECK(out.size() == 1, ValueError, "model \"", name(), "\" has ", out.size(),
             " outputs; use forward() or predict() for all of them");
  return out[0];
}

Tensor Model::call(const std::vector<Tensor>& xs, bool training) {
  if (xs.size() == 1) return call(xs[0], training);
  auto out = forward(xs, training);
  GLIA_CHECK(out.size() == 1, ValueError, "model \"", name(), "\" has ", out.size(),
             " outputs; use forward() or predict() for all of them");
  return out[0];
}

// --- structure

std::vector<LayerPtr> Model::layers() const {
  if (!is_functional()) return sublayers();
  std::vector<LayerPtr> out;
  for (auto& n : order_)
    if (std::find(out.begin(), out.end(), n->layer) == out.end()) out.push_back(n->layer);
  return out;
}

LayerPtr Model::get_layer(const std::string& name) const {
  for (auto& l : layers())
    if (l->name() == name) return l;
  throw ValueError("get_layer: no layer named '" + name + "' in model \"" + this->name() + "\"");
}

std::vector<std::string> Model::output_names() const {
  std::vector<std::string> names;
  if (is_functional()) {
    for (auto& o : outputs_) names.push_back(o.layer()->name());
  } else {
    names.push_back("output");
  }
  return names;
}

// --- compile

void Model::compile(OptimizerArg optimizer, LossArg loss, std::vector<MetricArg> metrics) {
  compile(CompileOptions{.optimizer = std::move(optimizer), .loss = std::move(loss), .metrics = std::move(metrics)});
}

void Model::compile(CompileOptions o) {
  GLIA_CHECK(o.optimizer.get() != nullptr, ValueError, "compile: no optimizer");
  size_t n_out = is_functional() ? outputs_.size() : 1;
  losses_.clear();
  if (!o.losses.empty()) {
    GLIA_CHECK(o.losses.size() == n_out, ValueError, "compile: got ", o.losses.size(), " losses for ", n_out,
               " outputs");
    for (auto& l : o.losses) losses_.push_back(l.get());
  } else {
    GLIA_CHECK(o.loss.get() != nullptr, ValueError,
               "compile: no loss; pass loss = \"sparse_categorical_crossentropy\" (or another name or a Loss)");
    losses_.assign(n_out, o.loss.get());
  }
  if (!o.loss_weights.empty())
    GLIA_CHECK(o.loss_weights.size() == n_out, ValueError, "compile: got ", o.loss_weights.size(), " loss weights for ",
               n_out, " outputs");
  // Metric names are resolved against the data at the first batch ("accuracy" depends on the
  // shapes); check the others now so that a typo fails here rather than inside fit.
  for (auto& m : o.metrics)
    if (!m.get() && m.name() != "accuracy" && m.name() != "acc") metrics::get(m.name());
  GLIA_CHECK(o.steps_per_execution >= 1, ValueError, "compile: steps_per_execution must be at least 1, got ",
             o.steps_per_execution);
  // The weights built so far move first: a device that cannot be used leaves the model as it was.
  if (o.device) Layer::to(*o.device);
  optimizer_ = o.optimizer.get();
  compile_opts_ = std::move(o);
  reset_compiled_steps();
  graph_failed_ = false;
  metrics_.clear();
  metrics_resolved_ = false;
  // Pair cross-entropy with a softmax / sigmoid output as logits, as Keras does.
  logit_losses_.assign(n_out, nullptr);
  // Only where forward() can run the output layer without its activation: a subclassed model's
  // call() decides its output itself, whatever layer it tracked last.
  std::vector<std::string> acts;
  if (is_functional()) {
    for (auto& out : outputs_) acts.push_back(out.layer()->activation_name());
  } else if (auto ls = layers(); !ls.empty() && dynamic_cast<const Sequential*>(this) != nullptr) {
    acts.push_back(ls.back()->activation_name());
  }
  for (size_t i = 0; i < n_out && i < acts.size(); ++i) {
    std::string want = losses_[i]->pairs_with_activation();
    if (!want.empty() && want == acts[i]) logit_losses_[i] = losses_[i]->with_logits();
  }
}

void Model::require_compiled(const char* what) const {
  GLIA_CHECK(compiled(), ValueError, what,
             ": the model must be compiled first: call compile() with an optimizer "
             "and a loss");
}

bool Model::use_logits() const {
  return std::any_of(logit_losses_.begin(), logit_losses_.end(), [](const losses::LossPtr& l) { return l != nullptr; });
}

std::vector<metrics::MetricPtr> Model::metrics() const {
  std::vector<metrics::MetricPtr> out;
  for (auto& per : metrics_) out.insert(out.end(), per.begin(), per.end());
  return out;
}

// --- steps

Tensor Model::compute_loss(const std::vector<Tensor>& y, const std::vector<Tensor>& out, const Tensor& sw,
                           bool logits) {
  GLIA_CHECK(y.size() == out.size(), ValueError, "the model has ", out.size(), " outputs but ", y.size(),
             " targets were given");
  Tensor total;
  for (size_t i = 0; i < out.size(); ++i) {
    const losses::LossPtr& l = logits && logit_losses_[i] ? logit_losses_[i] : losses_[i];
    Tensor li = (*l)(y[i], out[i], sw);
    if (!compile_opts_.loss_weights.empty()) li = li * compile_opts_.loss_weights[i];
    total = total.defined() ? total + li : li;
  }
  return total;
}

void Model::update_metrics(const std::vector<Tensor>& y, const std::vector<Tensor>& out, const Tensor& sw,
                           bool logits) {
  no_grad g;
  if (!metrics_resolved_) {
    metrics_.assign(out.size(), {});
    auto names = output_names();
    for (size_t i = 0; i < out.size(); ++i)
      for (auto& m : compile_opts_.metrics) {
        metrics::MetricPtr mp =
            m.get() ? m.get() : metrics::resolve(m.name(), losses_[i]->class_name(), y[i].shape(), out[i].shape());
        if (out.size() > 1 && !m.get()) mp->set_name(names[i] + "_" + mp->name());
        metrics_[i].push_back(mp);
      }
    metrics_resolved_ = true;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (metrics_[i].empty()) continue;
    Tensor pred = out[i];
    if (logits && logit_losses_[i]) pred = activations::get(losses_[i]->pairs_with_activation())(pred);
    for (auto& m : metrics_[i]) m->update_state(y[i], pred, sw);
  }
}

Logs Model::metric_logs(const std::string& prefix) const {
  Logs logs;
  logs[prefix + "loss"] = loss_tracker_.result();
  for (auto& per : metrics_)
    for (auto& m : per) logs[prefix + m->name()] = m->result();
  return logs;
}

void Model::reset_metrics() {
  deferred_losses_.clear();
  loss_tracker_.reset_state();
  for (auto& per : metrics_)
    for (auto& m : per) m->reset_state();
}

namespace {
int64_t batch_size_of(const std::vector<Tensor>& x) { return x.empty() || x[0].dim() == 0 ? 1 : x[0].shape()[0]; }
}  // namespace

// --- steps: compiled by default, eager with run_eagerly

namespace {
bool has_regularizers(Model& m) {
  for (Variable* v : m.weights())
    if (v->regularizer) return true;
  return false;
}
std::vector<Tensor> values_of(const std::vector<Variable*>& vars) {
  std::vector<Tensor> out;
  for (Variable* v : vars) out.push_back(v->value);
  return out;
}
std::vector<Tensor> join(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const Tensor& c = {}) {
  std::vector<Tensor> out = a;
  out.insert(out.end(), b.begin(), b.end());
  if (c.defined()) out.push_back(c);
  return out;
}
}  // namespace

void Model::reset_compiled_steps() {
  train_fn_.reset();
  test_fn_.reset();
  predict_fn_.reset();
  train_feeds_.clear();  // the recorded graphs' input buffers
  test_feeds_.clear();
  stager_.reset();  // its staging buffers are on the device the steps ran on
}

void Model::make_compiled_steps() {
  size_t n_in = is_functional() ? inputs_.size() : 1;
  auto split = [n_in](const std::vector<Tensor>& in, size_t n_out) {
    std::vector<Tensor> x(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n_in));
    std::vector<Tensor> y(in.begin() + static_cast<std::ptrdiff_t>(n_in),
                          in.begin() + static_cast<std::ptrdiff_t>(n_in + n_out));
    Tensor sw = in.size() > n_in + n_out ? in.back() : Tensor();
    return std::make_tuple(x, y, sw);
  };
  size_t n_out = losses_.size();
  // Outputs alias the plans' memory: each step's results are read before the next step runs.
  FunctionOptions fo{.name = name() + ".train_step", .copy_outputs = false};
  train_fn_ = std::make_unique<Function>(
      [this, split, n_out](const std::vector<Tensor>& in) {
        auto [x, y, sw] = split(in, n_out);
        bool logits = use_logits();
        std::vector<Tensor> out = forward(x, true, logits);
        Tensor loss = compute_loss(y, out, sw, logits);
        if (has_regularizers(*this)) loss = loss + regularization_loss();
        std::vector<Variable*> vars = trainable_weights();
        if (!vars.empty()) {
          // A non-finite loss skips the update, as the eager step does by checking first. (The
          // check comes before the gradients, so that updates can run as soon as their own
          // gradient is ready: see graph::schedule_updates.)
          Tensor finite = isfinite(loss);
          std::vector<Tensor> grads = grad({loss}, values_of(vars), {.allow_unused = true});
          optimizer_->apply_gradients(grads, vars, finite);
        }
        std::vector<Tensor> r = {loss};
        r.insert(r.end(), out.begin(), out.end());
        return r;
      },
      fo);
  fo.name = name() + ".test_step";
  test_fn_ = std::make_unique<Function>(
      [this, split, n_out](const std::vector<Tensor>& in) {
        auto [x, y, sw] = split(in, n_out);
        bool logits = use_logits();
        std::vector<Tensor> out = forward(x, false, logits);
        Tensor loss = compute_loss(y, out, sw, logits);
        if (has_regularizers(*this)) loss = loss + regularization_loss();
        std::vector<Tensor> r = {loss};
        r.insert(r.end(), out.begin(), out.end());
        return r;
      },
      fo);
  fo.name = name() + ".predict_step";
  predict_fn_ = std::make_unique<Function>([this](const std::vector<Tensor>& in) { return forward(in, false); }, fo);
}

Function& Model::step_function(const std::string& which) {
  GLIA_CHECK(which == "train" || which == "test" || which == "predict", ValueError, "step_function: unknown step '",
             which, "' (expected train, test or predict)");
  if (which != "predict") require_compiled("step_function");
  GLIA_CHECK(built() || is_functional(), ValueError, "step_function: model \"", name(),
             "\" is not built yet: call it on data (or give it an InputLayer) first");
  if (!train_fn_) make_compiled_steps();
  return which == "train" ? *train_fn_ : which == "test" ? *test_fn_ : *predict_fn_;
}

bool Model::trace_or_fall_back(Function& f, const std::vector<Tensor>& inputs) {
  try {
    f.graph_for(inputs);
    return true;
  } catch (const Error& e) {
    // Code that reads tensor values while tracing, or an optimizer without fused kernels for
    // these weights, cannot be compiled: run eagerly from now on.
    std::cerr << "glia: model \"" << name() << "\" runs eagerly: its step could not be compiled (" << e.what() << ")\n";
    graph_failed_ = true;
    return false;
  }
}

// --- the device of CompileOptions::device

bool Model::to(Device d) {
  if (!Layer::to(d)) return false;
  reset_compiled_steps();  // they captured the weights where they were
  return true;
}

void Model::place_weights(const std::vector<Tensor>& x) {
  if (!compile_opts_.device) return;
  if (!built() && !is_functional()) {
    no_grad g;
    forward(x, false);  // lazy build, on the CPU where the initializers run
  }
  to(*compile_opts_.device);
}

std::vector<Tensor> Model::on_device(const std::vector<Tensor>& batch) const {
  if (!compile_opts_.device) return batch;
  std::vector<Tensor> out;
  for (const Tensor& t : batch) out.push_back(on_device(t));
  return out;
}

Tensor Model::on_device(const Tensor& t) const {
  if (!compile_opts_.device || !t.defined()) return t;
  return t.to(*compile_opts_.device);
}

std::pair<int64_t, double> Model::read_deferred_losses(bool stop_at_non_finite) {
  std::vector<std::pair<Tensor, double>> d;
  d.swap(deferred_losses_);
  if (d.empty()) return {-1, 0.0};
  no_grad g;
  bool alike = true;
  for (const auto& e : d)
    alike = alike && e.first.device() == d[0].first.device() && e.first.dtype() == d[0].first.dtype();
  std::vector<double> v;
  if (alike) {  // one copy to the host, so one wait, for the whole execution
    std::vector<Tensor> parts;
    for (const auto& e : d) parts.push_back(e.first.reshape({1}));
    v = concat(parts).to(Device::cpu()).to(DType::f64).contiguous().to_vector<double>();
  } else {
    for (const auto& e : d) v.push_back(e.first.item<double>());
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) && stop_at_non_finite) return {static_cast<int64_t>(i), v[i]};
    loss_tracker_.update(v[i], d[i].second);
  }
  return {-1, 0.0};
}

std::vector<Tensor> Model::replay_feeds(Function& f, const std::vector<Tensor>& in) {
  if (!compile_opts_.device || !compile_opts_.device->is_cuda()) return {};
  const graph::Plan& p = f.plan_for(in);
  return p.replays_cuda_graph() ? p.static_feeds() : std::vector<Tensor>{};
}

std::vector<Tensor> Model::step_batch(Function* f, const std::vector<Tensor>& last, const std::vector<Tensor>& x_in,
                                      const std::vector<Tensor>& y_in, const Tensor& sw_in, std::vector<Tensor>& x,
                                      std::vector<Tensor>& y, Tensor& sw) {
  std::vector<Tensor> host = join(x_in, y_in, sw_in), feeds;
  bool direct = f && use_graph() && !last.empty() && last.size() == host.size() && compile_opts_.device &&
                compile_opts_.device->is_cuda();
  for (size_t i = 0; direct && i < host.size(); ++i)
    direct = host[i].device().is_cpu() && host[i].dtype() == last[i].dtype() && host[i].shape() == last[i].shape();
  // (The plan for last's signature has input buffers of that signature.)
  const graph::Plan* plan = direct ? &f->plan_for(last) : nullptr;
  if (plan && plan->replays_cuda_graph()) {
    feeds = plan->static_feeds();
    no_grad g;
    // Queued after the previous replay, which read these buffers last: one stream orders them.
    if (!stager_ || !stager_->take(host, feeds))
      for (size_t i = 0; i < host.size(); ++i) feeds[i].copy_(host[i]);
    auto nx = static_cast<std::ptrdiff_t>(x_in.size()), ny = static_cast<std::ptrdiff_t>(y_in.size());
    x.assign(feeds.begin(), feeds.begin() + nx);
    y.assign(feeds.begin() + nx, feeds.begin() + nx + ny);
    sw = sw_in.defined() ? feeds.back() : Tensor();
  } else {
    x = on_device(x_in), y = on_device(y_in);
    sw = on_device(sw_in);
  }
  return feeds;
}

Logs Model::train_step(const std::vector<Tensor>& x_in, const std::vector<Tensor>& y_in, const Tensor& sw_in,
                       bool defer_loss, const std::function<std::vector<Tensor>()>& next) {
  place_weights(x_in);
  // A replayed step: the batch goes straight into the recorded graph's inputs.
  std::vector<Tensor> x, y;
  Tensor sw;
  std::vector<Tensor> in = step_batch(train_fn_.get(), train_feeds_, x_in, y_in, sw_in, x, y, sw);
  const bool replay = !in.empty();
  if (use_graph()) {
    // Weights are made on first use: build them eagerly, outside any graph.
    if (!built() && !is_functional()) {
      no_grad g;
      forward(x, false);
    }
    if (!train_fn_) make_compiled_steps();
    if (in.empty()) in = join(x, y, sw);
    if (trace_or_fall_back(*train_fn_, in)) {
      optimizer_->begin_step();
      std::vector<Tensor> r = (*train_fn_)(in);
      train_feeds_ = replay_feeds(*train_fn_, in);
      // While the GPU runs this replayed step, the next batch goes to the device.
      if (replay && next) {
        std::vector<Tensor> ahead = next();
        if (!ahead.empty()) {
          if (!stager_) stager_ = std::make_shared<cuda::BatchStager>(*compile_opts_.device);
          stager_->upload(ahead);
        }
      }
      if (defer_loss) {
        // The outputs live in the plan's memory, which the next run overwrites: keep a copy. The
        // graph itself skips the update when this loss is not finite.
        no_grad g;
        deferred_losses_.emplace_back(r[0].clone(), static_cast<double>(batch_size_of(x)));
        optimizer_->end_step();
        update_metrics(y, std::vector<Tensor>(r.begin() + 1, r.end()), sw, use_logits());
        return {};
      }
      double lv = r[0].item<double>();
      if (!std::isfinite(lv)) return {{"loss", lv}};  // the graph skipped the update; the caller reports it
      optimizer_->end_step();
      loss_tracker_.update(lv, static_cast<double>(batch_size_of(x)));
      update_metrics(y, std::vector<Tensor>(r.begin() + 1, r.end()), sw, use_logits());
      return metric_logs();
    }
  }
  bool logits = use_logits();
  std::vector<Tensor> out = forward(x, true, logits);
  Tensor loss = compute_loss(y, out, sw, logits);
  std::vector<Variable*> vars = trainable_weights();
  if (has_regularizers(*this)) loss = loss + regularization_loss();
  double lv = loss.item<double>();
  if (defer_loss) deferred_losses_.emplace_back(scalar_tensor(lv), static_cast<double>(batch_size_of(x)));
  if (!std::isfinite(lv)) {
    if (defer_loss) return {};
    Logs l{{"loss", lv}};
    return l;  // the caller stops training and reports where
  }
  if (!vars.empty()) {
    std::vector<Tensor> grads = grad({loss}, values_of(vars), {.allow_unused = true});
    optimizer_->apply_gradients(grads, vars);
  }
  update_metrics(y, out, sw, logits);
  if (defer_loss) return {};
  loss_tracker_.update(lv, static_cast<double>(batch_size_of(x)));
  return metric_logs();
}

Logs Model::test_step(const std::vector<Tensor>& x_in, const std::vector<Tensor>& y_in, const Tensor& sw_in,
                      bool defer_loss) {
  no_grad g;
  place_weights(x_in);
  std::vector<Tensor> x, y;
  Tensor sw;
  std::vector<Tensor> in = step_batch(test_fn_.get(), test_feeds_, x_in, y_in, sw_in, x, y, sw);
  bool logits = use_logits();
  if (use_graph() && (built() || is_functional())) {
    if (!test_fn_) make_compiled_steps();
    if (in.empty()) in = join(x, y, sw);
    if (trace_or_fall_back(*test_fn_, in)) {
      std::vector<Tensor> r = (*test_fn_)(in);
      test_feeds_ = replay_feeds(*test_fn_, in);
      if (defer_loss)  // a copy: the next run overwrites the plan's outputs
        deferred_losses_.emplace_back(r[0].clone(), static_cast<double>(batch_size_of(x)));
      else
        loss_tracker_.update(r[0].item<double>(), static_cast<double>(batch_size_of(x)));
      update_metrics(y, std::vector<Tensor>(r.begin() + 1, r.end()), sw, logits);
      return defer_loss ? Logs{} : metric_logs();  // reading the metrics would wait for the step
    }
  }
  std::vector<Tensor> out = forward(x, false, logits);
  Tensor loss = compute_loss(y, out, sw, logits);
  if (has_regularizers(*this)) loss = loss + regularization_loss();
  if (defer_loss)
    deferred_losses_.emplace_back(loss, static_cast<double>(batch_size_of(x)));
  else
    loss_tracker_.update(loss.item<double>(), static_cast<double>(batch_size_of(x)));
  update_metrics(y, out, sw, logits);
  return defer_loss ? Logs{} : metric_logs();
}

std::vector<Tensor> Model::predict_step(const std::vector<Tensor>& x_in) {
  no_grad g;
  place_weights(x_in);
  std::vector<Tensor> x = on_device(x_in);
  // predict keeps every batch's result (a copy: compiled outputs alias the plan's memory), on the CPU.
  auto keep = [](std::vector<Tensor> r) {
    for (auto& t : r) t = t.device().is_cpu() ? t.clone() : t.to(Device::cpu());
    return r;
  };
  if (compiled() && use_graph() && (built() || is_functional())) {
    if (!predict_fn_) make_compiled_steps();
    if (trace_or_fall_back(*predict_fn_, x)) return keep((*predict_fn_)(x));
  }
  std::vector<Tensor> r = forward(x, false);
  return compile_opts_.device ? keep(r) : r;
}

Logs Model::train_on_batch(const Tensor& x, const Tensor& y, const Tensor& sample_weight) {
  require_compiled("train_on_batch");
  reset_metrics();
  Logs l = train_step({x}, {y}, sample_weight);
  GLIA_CHECK(std::isfinite(l.at("loss")), ValueError, "train_on_batch: the loss is ", l.at("loss"),
             "; the weights were not updated");
  return l;
}

Logs Model::test_on_batch(const Tensor& x, const Tensor& y, const Tensor& sample_weight) {
  require_compiled("test_on_batch");
  reset_metrics();
  return test_step({x}, {y}, sample_weight);
}

}  // namespace glia
