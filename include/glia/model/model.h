// Models (keras.Model): Functional models from Input() and layer calls,
// Sequential stacks, and subclassed models that override call(); compiled
// with an optimizer, a loss and metrics, then fit / evaluate / predict.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "glia/data/dataset.h"
#include "glia/graph/function.h"
#include "glia/model/callbacks.h"
#include "glia/nn/layer.h"
#include "glia/nn/losses.h"
#include "glia/nn/metrics.h"
#include "glia/optim/optimizer.h"

namespace glia {
namespace cuda {
class BatchStager;
}

/// An optimizer by name ("adam") or object.
class OptimizerArg {
 public:
  OptimizerArg(const char* name);         // NOLINT
  OptimizerArg(const std::string& name);  // NOLINT
  template <class O, class = std::enable_if_t<std::is_base_of_v<optimizers::Optimizer, O>>>
  OptimizerArg(std::shared_ptr<O> o) : ptr_(std::move(o)) {}  // NOLINT
  const optimizers::OptimizerPtr& get() const { return ptr_; }

 private:
  optimizers::OptimizerPtr ptr_;
};

/// A loss by name ("sparse_categorical_crossentropy") or object.
class LossArg {
 public:
  LossArg() = default;
  LossArg(const char* name);         // NOLINT
  LossArg(const std::string& name);  // NOLINT
  template <class L, class = std::enable_if_t<std::is_base_of_v<losses::Loss, L>>>
  LossArg(std::shared_ptr<L> l) : ptr_(std::move(l)) {}  // NOLINT
  const losses::LossPtr& get() const { return ptr_; }
  const std::string& name() const { return name_; }

 private:
  losses::LossPtr ptr_;
  std::string name_;
};

/// A metric by name ("accuracy") or object.
class MetricArg {
 public:
  MetricArg(const char* name) : name_(name) {}             // NOLINT
  MetricArg(std::string name) : name_(std::move(name)) {}  // NOLINT
  template <class M, class = std::enable_if_t<std::is_base_of_v<metrics::Metric, M>>>
  MetricArg(std::shared_ptr<M> m) : ptr_(std::move(m)) {}  // NOLINT
  const metrics::MetricPtr& get() const { return ptr_; }
  const std::string& name() const { return name_; }

 private:
  metrics::MetricPtr ptr_;
  std::string name_;
};

struct CompileOptions {
  OptimizerArg optimizer = "rmsprop";
  /// One loss for all outputs, or one per output (losses).
  LossArg loss = {};
  std::vector<LossArg> losses = {};
  std::vector<MetricArg> metrics = {};
  std::vector<double> loss_weights = {};
  /// Run the steps op by op. By default fit / evaluate / predict trace each step once per input
  /// shape into a graph (glia::function), optimize it and run the compiled graph. Compile again
  /// after changing which layers are trainable, as in Keras.
  bool run_eagerly = false;
  /// Where to train and run (Device::cuda(0) for the first GPU). The weights move there (at once,
  /// or after the lazy build on the first batch), optimizer state follows them, each batch is
  /// copied there, and predict returns its results on the CPU. Unset: where the weights are.
  std::optional<Device> device = std::nullopt;
  /// Steps per readback, as Keras' steps_per_execution: fit and evaluate read the loss and
  /// metrics, and call the batch-level callbacks, once every N steps (and after the last step of a
  /// pass). In between the steps are only queued, so a GPU runs them back to back while the host
  /// prepares the next batches. A non-finite loss is then found at the end of its execution: its
  /// own update was skipped, but the later steps of that execution ran.
  int64_t steps_per_execution = 1;
};

struct FitOptions {
  int64_t epochs = 1;
  int64_t batch_size = 32;
  /// Fraction of the data (taken from the end, before shuffling) held out for validation.
  double validation_split = 0.0;
  /// {x_val, y_val} (or more tensors for several inputs and outputs: inputs first).
  std::vector<Tensor> validation_data = {};
  std::optional<data::Dataset> validation_dataset = {};
  bool shuffle = true;
  std::vector<callbacks::CallbackPtr> callbacks = {};
  /// 0 silent, 1 progress bar, 2 one line per epoch.
  int verbose = 1;
  int64_t initial_epoch = 0;
  /// Weight of each class in the loss (integer or one-hot targets).
  std::map<int64_t, double> class_weight = {};
  Tensor sample_weight = {};
  /// Batches per epoch for datasets without a known size (-1: until the dataset ends).
  int64_t steps_per_epoch = -1;
  int64_t validation_steps = -1;
  int64_t validation_batch_size = -1;
  int64_t validation_freq = 1;
};

struct EvaluateOptions {
  int64_t batch_size = 32;
  int verbose = 1;
  Tensor sample_weight = {};
  int64_t steps = -1;
  std::vector<callbacks::CallbackPtr> callbacks = {};
};

struct PredictOptions {
  int64_t batch_size = 32;
  int verbose = 1;
  int64_t steps = -1;
  std::vector<callbacks::CallbackPtr> callbacks = {};
};

class Model : public Layer {
 public:
  /// For subclassed models: override call() and track() the layers you use.
  explicit Model(std::string name = "");
  /// A Functional model from symbolic inputs to outputs.
  Model(const KerasTensor& input, const KerasTensor& output, std::string name = "");
  Model(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs, std::string name = "");

  std::string class_name() const override;
  void build(const std::vector<Shape>& input_shapes) override;
  Tensor call(const Tensor& x, bool training) override;
  Tensor call(const std::vector<Tensor>& xs, bool training) override;
  Config config() const override;
  int num_inputs() const override;

  /// All outputs for all inputs (the Functional graph, or call() for other models).
  /// With `logits`, outputs whose final activation pairs with the loss come without it.
  virtual std::vector<Tensor> forward(const std::vector<Tensor>& inputs, bool training, bool logits = false);

  // --- training
  void compile(CompileOptions o);
  void compile(OptimizerArg optimizer, LossArg loss, std::vector<MetricArg> metrics = {});
  bool compiled() const { return optimizer_ != nullptr; }
  callbacks::History fit(const Tensor& x, const Tensor& y, FitOptions o = {});
  callbacks::History fit(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, FitOptions o = {});
  /// A dataset of batches, each {x, y} (or inputs then outputs, or with a sample weight last).
  callbacks::History fit(const data::Dataset& ds, FitOptions o = {});
  /// Loss and metrics on the data: {"loss": ..., "accuracy": ...}.
  Logs evaluate(const Tensor& x, const Tensor& y, EvaluateOptions o = {});
  Logs evaluate(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, EvaluateOptions o = {});
  Logs evaluate(const data::Dataset& ds, EvaluateOptions o = {});
  /// Outputs for the inputs, in batches, in inference mode.
  Tensor predict(const Tensor& x, PredictOptions o = {});
  std::vector<Tensor> predict(const std::vector<Tensor>& xs, PredictOptions o = {});
  /// One gradient step on one batch; returns the batch's loss and metrics.
  Logs train_on_batch(const Tensor& x, const Tensor& y, const Tensor& sample_weight = {});
  Logs test_on_batch(const Tensor& x, const Tensor& y, const Tensor& sample_weight = {});

  /// Moves the weights to d (and the compiled steps are traced again there); see CompileOptions::device.
  bool to(Device d);

  /// Set by callbacks (EarlyStopping, TerminateOnNaN) to end fit after the current batch.
  bool stop_training = false;
  const optimizers::OptimizerPtr& optimizer() const { return optimizer_; }
  const std::vector<losses::LossPtr>& losses() const { return losses_; }
  std::vector<metrics::MetricPtr> metrics() const;
  const CompileOptions& compile_options() const { return compile_opts_; }
  /// The compiled step fit ("train"), evaluate ("test") or predict ("predict") runs, to inspect
  /// the graphs it traces: call graph_for / dot_before_passes / pass_stats / plan_for with the
  /// step's inputs (train and test: x..., y..., then an optional sample weight; predict: x...).
  Function& step_function(const std::string& which);

  // --- structure
  /// Keras's summary table: layer (type), output shape, param # (and connected-to for Functional).
  void summary(std::ostream& os) const;
  void summary() const;
  std::string summary_string() const;
  /// The layers in order (Functional: topological; Sequential: as added; subclassed: tracked).
  virtual std::vector<LayerPtr> layers() const;
  LayerPtr get_layer(const std::string& name) const;
  const std::vector<KerasTensor>& inputs() const { return inputs_; }
  const std::vector<KerasTensor>& outputs() const { return outputs_; }
  bool is_functional() const { return !outputs_.empty(); }
  /// Output names (the producing layers' names) for metric prefixes.
  std::vector<std::string> output_names() const;

  // --- weights files (src/glia/model/weights_io.cpp)
  /// Writes all weights to a safetensors file, named by their path in the model ("dense/kernel",
  /// "dense_1/bias": sublayers by class in snake case, numbered per parent as Keras 3 does), so
  /// that a model of the same architecture built elsewhere loads them. ValueError if not built.
  void save_weights(const std::string& path);
  /// Reads weights written by save_weights into this built model of the same architecture; every
  /// weight must be in the file with its shape, and the file must hold nothing else.
  void load_weights(const std::string& path);
  /// The whole model in one file (a zip): config.json (the architecture and the compile
  /// configuration), metadata.json, model.safetensors (the weights) and optimizer.safetensors (its
  /// slots and step count). glia::load_model reads it back. Written atomically.
  void save(const std::string& path);

 protected:
  /// Batch logs from one training step (used by fit and train_on_batch). With defer_loss the loss
  /// is not read (no wait for the step): it is kept, the logs are empty, and
  /// read_deferred_losses() folds it into the running loss later.
  /// `next`, when given, is called once a replayed GPU step has been launched, before its loss is
  /// read: it returns the next step's batch (x, y and sample weight joined; empty when there is none),
  /// whose copy to the GPU then overlaps this step (cuda::BatchStager).
  Logs train_step(const std::vector<Tensor>& x, const std::vector<Tensor>& y, const Tensor& sample_weight,
                  bool defer_loss = false, const std::function<std::vector<Tensor>()>& next = {});
  Logs test_step(const std::vector<Tensor>& x, const std::vector<Tensor>& y, const Tensor& sample_weight,
                 bool defer_loss = false);
  /// Outputs for one batch in inference mode.
  std::vector<Tensor> predict_step(const std::vector<Tensor>& x);
  /// Output shapes (with -1 batch) per layer for the summary; empty when not built.
  virtual std::vector<std::pair<LayerPtr, std::string>> summary_rows() const;

  std::vector<KerasTensor> inputs_, outputs_;
  std::vector<std::shared_ptr<KerasTensor::Node>> order_;  // Functional: nodes in execution order

 private:
  friend struct FitLoop;
  void require_compiled(const char* what) const;
  Tensor compute_loss(const std::vector<Tensor>& y, const std::vector<Tensor>& out, const Tensor& sw, bool logits);
  void update_metrics(const std::vector<Tensor>& y, const std::vector<Tensor>& out, const Tensor& sw, bool logits);
  Logs metric_logs(const std::string& prefix = "") const;
  void reset_metrics();
  bool use_logits() const;

  CompileOptions compile_opts_;
  optimizers::OptimizerPtr optimizer_;
  std::vector<losses::LossPtr> losses_;                   // one per output
  std::vector<losses::LossPtr> logit_losses_;             // the from-logits twin where the output activation allows
  std::vector<std::vector<metrics::MetricPtr>> metrics_;  // per output
  metrics::Mean loss_tracker_{"loss"};
  bool metrics_resolved_ = false;
  /// Losses of steps run with defer_loss, not read yet, with their batch sizes.
  std::vector<std::pair<Tensor, double>> deferred_losses_;
  /// Reads the deferred losses (one wait) into the running loss, in step order, up to the first
  /// non-finite one when training (evaluation counts them all): returns its index among them and
  /// its value, or -1 when all were finite.
  std::pair<int64_t, double> read_deferred_losses(bool stop_at_non_finite = true);

  // Compiled steps (see CompileOptions::run_eagerly).
  bool use_graph() const { return !compile_opts_.run_eagerly && !graph_failed_; }
  /// Traces f for these inputs; on failure (code that reads values while tracing, an optimizer
  /// that cannot run in a graph) warns once and returns false, and the model runs eagerly.
  bool trace_or_fall_back(Function& f, const std::vector<Tensor>& inputs);
  void make_compiled_steps();
  /// Drops the compiled steps (and the input buffers of their recorded graphs).
  void reset_compiled_steps();
  /// With CompileOptions::device: builds on the CPU inputs x if needed and moves the weights there.
  void place_weights(const std::vector<Tensor>& x);
  /// A batch there (as it is without CompileOptions::device).
  std::vector<Tensor> on_device(const std::vector<Tensor>& batch) const;
  Tensor on_device(const Tensor& t) const;
  /// The input buffers of f's plan for `in` when it replays a CUDA Graph (they have the signature of
  /// `in` and hold no batch of their own), else none: what step_batch gets as `last`.
  std::vector<Tensor> replay_feeds(Function& f, const std::vector<Tensor>& in);
  /// A step's inputs x, targets y and sample weight sw. When f's plan for the signature of `last`
  /// (replay_feeds of the previous step) replays a CUDA Graph and the host batch has that
  /// signature, the batch is copied straight into the graph's input buffers (one copy per tensor to
  /// the device, no batch-sized temporary there, none on the device; from the stager's device buffers
  /// when the previous step staged this very batch there), which are returned and of
  /// which x, y and sw are the parts. Otherwise nothing is returned and x, y and sw are the batch
  /// moved to the device.
  std::vector<Tensor> step_batch(Function* f, const std::vector<Tensor>& last, const std::vector<Tensor>& x_in,
                                 const std::vector<Tensor>& y_in, const Tensor& sw_in, std::vector<Tensor>& x,
                                 std::vector<Tensor>& y, Tensor& sw);
  std::unique_ptr<Function> train_fn_, test_fn_, predict_fn_;
  std::vector<Tensor> train_feeds_, test_feeds_;  // replay_feeds of the last compiled train / test step
  std::shared_ptr<cuda::BatchStager> stager_;     // the next training batch, copied to the GPU ahead
  bool graph_failed_ = false;
};
using ModelPtr = std::shared_ptr<Model>;

/// A linear stack of layers. Built when its input shape is known: from an InputLayer
/// first, or from the first data it sees.
class Sequential : public Model {
 public:
  explicit Sequential(std::vector<LayerPtr> layers = {}, std::string name = "");
  void add(LayerPtr layer);
  /// Removes the last layer.
  void pop();
  std::string class_name() const override { return "Sequential"; }
  void build(const std::vector<Shape>& input_shapes) override;
  Tensor call(const Tensor& x, bool training) override;
  std::vector<Tensor> forward(const std::vector<Tensor>& inputs, bool training, bool logits = false) override;
  Config config() const override;
  std::vector<LayerPtr> layers() const override;

 protected:
  std::vector<std::pair<LayerPtr, std::string>> summary_rows() const override;

 private:
  std::vector<LayerPtr> stack_;
  std::vector<Shape> output_shapes_;  // per layer, with -1 batch, once built
};

/// Rebuilds a model from Model::config() / Sequential::config(): a Sequential from its layer list,
/// a Functional model by replaying its layer calls (shared layers called several times stay
/// shared), a subclassed model by its registered class name (GLIA_REGISTER_LAYER). Weights are
/// fresh (load them with set_weights / load_weights). Errors (ValueError) name what is wrong:
/// an unregistered class name (say how to register it), a dangling inbound reference, a missing key.
/// Also takes the {"class_name": ..., "config": ...} form of layer_to_config(model), the only form
/// that names a subclassed model's class. Layers and models keep the names in the config.
ModelPtr model_from_config(const Config& config);

/// A model saved by Model::save: the architecture rebuilt (custom layers must be registered with
/// GLIA_REGISTER_LAYER), the weights loaded, and, when it was compiled, compiled again with its
/// optimizer's state restored, so that training continues exactly. IOError naming the file and
/// the problem for anything missing or malformed.
ModelPtr load_model(const std::string& path);

}  // namespace glia
