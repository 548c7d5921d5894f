// Layer: the Keras building block. Holds weights, builds itself lazily from
// the shape of its first input, runs eagerly on tensors or symbolically on
// KerasTensors (the Functional API), and describes itself as a config.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "glia/core/tensor.h"
#include "glia/nn/config.h"
#include "glia/nn/initializers.h"
#include "glia/nn/regularizers.h"

namespace glia {

class Layer;
using LayerPtr = std::shared_ptr<Layer>;

/// A weight of a layer. Trainable weights require grad; non-trainable ones
/// (BatchNormalization's moving statistics) are updated by the layer itself.
struct Variable {
  std::string name;  // "kernel", "bias", "moving_mean", ...
  Tensor value;
  bool trainable = true;
  regularizers::RegularizerPtr regularizer;
  /// Replaces the values (shape must match), keeping the tensor's identity.
  void assign(const Tensor& v);
};

/// A symbolic tensor of the Functional API: the output of Input() or of a layer
/// called on KerasTensors. Its shape has -1 for the batch dimension.
class KerasTensor {
 public:
  struct Node {
    LayerPtr layer;                   // the layer that produced it (an InputLayer for inputs)
    std::vector<KerasTensor> inputs;  // what the layer was called on
    Shape shape;                      // with the batch dimension (-1)
    DType dtype = DType::f32;
    int64_t id = 0;
  };
  KerasTensor() = default;
  explicit KerasTensor(std::shared_ptr<Node> n) : node_(std::move(n)) {}
  bool defined() const { return node_ != nullptr; }
  const Shape& shape() const { return node_->shape; }
  DType dtype() const { return node_->dtype; }
  const LayerPtr& layer() const { return node_->layer; }
  const std::vector<KerasTensor>& inputs() const { return node_->inputs; }
  const std::shared_ptr<Node>& node() const { return node_; }
  int64_t id() const { return node_->id; }

 private:
  std::shared_ptr<Node> node_;
};

/// A symbolic input of a Functional model: shape without the batch dimension.
KerasTensor Input(const Shape& shape, DType dtype = DType::f32, const std::string& name = "");

class Layer : public std::enable_shared_from_this<Layer> {
 public:
  explicit Layer(std::string name = "");
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // --- calling (builds on the first call)
  Tensor operator()(const Tensor& x, bool training = false);
  Tensor operator()(const std::vector<Tensor>& xs, bool training = false);
  KerasTensor operator()(const KerasTensor& x);
  KerasTensor operator()(const std::vector<KerasTensor>& xs);

  // --- what subclasses implement
  /// The Keras class name ("Dense"), used in summaries and configs.
  virtual std::string class_name() const = 0;
  /// Creates the weights for inputs of these shapes (each without the batch dimension).
  virtual void build(const std::vector<Shape>& input_shapes);
  /// The forward pass of a single-input layer.
  virtual Tensor call(const Tensor& x, bool training);
  /// The forward pass of a layer with several inputs (Add, Concatenate, ...).
  virtual Tensor call(const std::vector<Tensor>& xs, bool training);
  /// 1 for single-input layers, -1 for merge layers that take two or more.
  virtual int num_inputs() const { return 1; }
  /// The layer's arguments; the base adds name, trainable and dtype.
  virtual Config config() const;
  /// The final activation's name ("" if none) and the forward pass without it, so that a
  /// softmax / sigmoid output can be paired with cross-entropy from logits (as Keras does).
  virtual std::string activation_name() const { return ""; }
  virtual Tensor call_without_activation(const Tensor& x, bool training) { return call(x, training); }
  /// Like operator() (builds, checks and casts the input) but without the final activation.
  Tensor call_logits(const Tensor& x, bool training = false);
  /// Whether the built weights fix the inputs' rank and last axis, so that a later input that
  /// changes them is an error. False for layers that take any shape (Embedding's ids).
  virtual bool input_shape_fixed() const { return true; }

  // --- weights
  /// Adds a weight (call from build()). Initial values come from `init`.
  Variable& add_weight(const std::string& name, const Shape& shape, const initializers::InitializerPtr& init,
                       bool trainable = true, regularizers::RegularizerPtr regularizer = nullptr);
  /// This layer's own weights then its sublayers', in creation order.
  std::vector<Variable*> weights();
  /// Weights updated by the optimizer (empty when the layer is frozen).
  std::vector<Variable*> trainable_weights();
  std::vector<Variable*> non_trainable_weights();
  std::vector<Tensor> get_weights();
  /// Moves every weight to device d (a trainable one stays a leaf that requires grad). Returns
  /// whether anything moved. Weights made later (lazy builds) are made on the CPU.
  bool to(Device d);
  /// Sets all weights from a list in the order of weights(); shapes must match.
  void set_weights(const std::vector<Tensor>& values);
  int64_t count_params();
  /// The sum of the regularization penalties of all weights (a scalar; zero if none).
  Tensor regularization_loss();

  // --- sublayers (for subclassed models and composite layers)
  /// Registers a sublayer so that its weights belong to this layer; returns it.
  template <class L>
  L track(L layer) {
    track_layer(LayerPtr(layer));
    return layer;
  }
  void track_layer(LayerPtr layer);
  /// Unregisters a sublayer (Sequential::pop): its weights no longer belong to this layer.
  void untrack_layer(const LayerPtr& layer);
  const std::vector<LayerPtr>& sublayers() const { return sublayers_; }

  // --- state
  const std::string& name() const { return name_; }
  void set_name(const std::string& n) { name_ = n; }
  bool trainable() const { return trainable_; }
  /// Freezes (false) or unfreezes the layer and its sublayers, like Keras's `layer.trainable = False`.
  virtual void set_trainable(bool t);
  bool built() const { return built_; }
  /// Builds the layer (once) for inputs of these shapes, without the batch dimension (Keras's
  /// layer.build((None, ...))): its weights exist afterwards (a subclassed model's sublayers, though,
  /// are built by its first call). ShapeError if built for other shapes.
  void build_for(const std::vector<Shape>& input_shapes) { ensure_built(input_shapes); }
  /// Input shapes seen at build time (without the batch dimension).
  const std::vector<Shape>& built_input_shapes() const { return input_shapes_; }
  /// Shape of the output (with -1 for the batch) for these input shapes, found by running the
  /// layer once on a batch of zeros.
  virtual Shape compute_output_shape(const std::vector<Shape>& input_shapes);
  /// Glia's and Keras's default name: the class name in snake_case with a counter ("dense_1").
  static std::string unique_name(const std::string& class_name);

 protected:
  /// Builds (once) for these inputs and checks their shapes against the built ones.
  void ensure_built(const std::vector<Shape>& shapes);
  /// Validates, builds on first use and casts one input, as every call does before call().
  Tensor prepare(const Tensor& x);

 private:
  std::string name_;
  bool trainable_ = true;
  bool built_ = false;
  std::vector<Shape> input_shapes_;
  std::vector<std::unique_ptr<Variable>> weights_;
  std::vector<LayerPtr> sublayers_;
};

/// A Layer held by shared pointer with call syntax: `layers::Dense(64)(x)`.
/// Each built-in layer `X` is a holder of `XImpl` (like libtorch's modules).
template <class Impl>
class LayerHolder {
 public:
  using impl_type = Impl;
  explicit LayerHolder(std::shared_ptr<Impl> p) : impl_(std::move(p)) {}
  LayerHolder(std::nullptr_t) {}  // NOLINT: an empty holder, to be assigned later

  Impl* operator->() const { return impl_.get(); }
  Impl& operator*() const { return *impl_; }
  const std::shared_ptr<Impl>& ptr() const { return impl_; }
  operator LayerPtr() const { return impl_; }               // NOLINT: holders go where layers are expected
  operator std::shared_ptr<Impl>() const { return impl_; }  // NOLINT

  Tensor operator()(const Tensor& x, bool training = false) const { return (*impl_)(x, training); }
  Tensor operator()(const std::vector<Tensor>& xs, bool training = false) const { return (*impl_)(xs, training); }
  KerasTensor operator()(const KerasTensor& x) const { return (*impl_)(x); }
  KerasTensor operator()(const std::vector<KerasTensor>& xs) const { return (*impl_)(xs); }

 private:
  std::shared_ptr<Impl> impl_;
};

/// Defines the holder `Name` for `NameImpl` with one constructor: PARAMS is its parameter
/// list in parentheses, ARGS the arguments passed on to NameImpl's constructor. The
/// constructors are spelled out (not forwarded by a template) so that brace arguments work:
/// `Conv2D(32, {3, 3})`.
#define GLIA_LAYER_HOLDER(Name, PARAMS, ARGS)                                \
  class Name : public ::glia::LayerHolder<Name##Impl> {                      \
   public:                                                                   \
    using LayerHolder::LayerHolder;                                          \
    explicit Name PARAMS : LayerHolder(std::make_shared<Name##Impl> ARGS) {} \
  }

// --- the layer registry: from_config by class name (built-ins and GLIA_REGISTER_LAYER)

using LayerFactory = std::function<LayerPtr(const Config& config)>;
void register_layer(const std::string& class_name, LayerFactory factory);
/// A new layer of class config["class_name"] from config["config"]; ValueError naming the class
/// and how to register it if unknown.
LayerPtr layer_from_config(const Config& config);
/// {"class_name": ..., "config": ...} for a layer.
Config layer_to_config(const Layer& layer);

}  // namespace glia

#define GLIA_LAYER_CAT_(a, b) a##b
#define GLIA_LAYER_CAT(a, b) GLIA_LAYER_CAT_(a, b)
/// Registers a custom layer class once, so that saved models using it load by name. The class
/// needs `static glia::LayerPtr from_config(const glia::Config&)` and a class_name() of #Class.
#define GLIA_REGISTER_LAYER(Class)                                                                                \
  [[maybe_unused]] static const bool GLIA_LAYER_CAT(glia_layer_registered_, __LINE__) =                           \
      (::glia::register_layer(#Class,                                                                             \
                              [](const ::glia::Config& c) -> ::glia::LayerPtr { return Class::from_config(c); }), \
       true)
