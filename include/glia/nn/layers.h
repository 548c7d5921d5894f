// The built-in layers (keras.layers), channels-last. Each `X` is a holder of
// `XImpl` with call syntax: `auto y = layers::Dense(64, {.activation = "relu"})(x);`
#pragma once

#include <array>
#include <optional>
#include <string>

#include "glia/nn/activations.h"
#include "glia/nn/layer.h"

namespace glia {

// --- argument types that take a name or an object, like Keras arguments do

/// An activation given by name ("relu") or as a function.
class ActivationArg {
 public:
  ActivationArg() = default;
  ActivationArg(const char* name) : name_(name) {}                                    // NOLINT
  ActivationArg(std::string name) : name_(std::move(name)) {}                         // NOLINT
  ActivationArg(activations::Activation fn) : fn_(std::move(fn)), name_("custom") {}  // NOLINT
  const std::string& name() const { return name_; }
  /// The function (identity for "" / "linear").
  activations::Activation fn() const { return fn_ ? fn_ : activations::get(name_); }

 private:
  activations::Activation fn_;
  std::string name_;
};

class InitializerArg {
 public:
  InitializerArg(const char* name) : ptr_(initializers::get(name)) {}         // NOLINT
  InitializerArg(const std::string& name) : ptr_(initializers::get(name)) {}  // NOLINT
  InitializerArg(initializers::InitializerPtr p) : ptr_(std::move(p)) {}      // NOLINT
  const initializers::InitializerPtr& get() const { return ptr_; }

 private:
  initializers::InitializerPtr ptr_;
};

class RegularizerArg {
 public:
  RegularizerArg() = default;
  RegularizerArg(std::nullptr_t) {}                                       // NOLINT
  RegularizerArg(const char* name) : ptr_(regularizers::get(name)) {}     // NOLINT
  RegularizerArg(regularizers::RegularizerPtr p) : ptr_(std::move(p)) {}  // NOLINT
  const regularizers::RegularizerPtr& get() const { return ptr_; }

 private:
  regularizers::RegularizerPtr ptr_;
};

/// A 2-D size written as one number (3 -> 3x3) or two ({3, 5}).
struct Size2 {
  int64_t h = 1, w = 1;
  Size2() = default;
  Size2(int64_t s) : h(s), w(s) {}  // NOLINT
  Size2(int64_t a, int64_t b) : h(a), w(b) {}
  Size2(std::initializer_list<int64_t> l);  // NOLINT
  std::array<int64_t, 2> arr() const { return {h, w}; }
};

namespace layers {

// --- core

struct DenseOptions {
  ActivationArg activation = {};
  bool use_bias = true;
  InitializerArg kernel_initializer = "glorot_uniform";
  InitializerArg bias_initializer = "zeros";
  RegularizerArg kernel_regularizer = {};
  RegularizerArg bias_regularizer = {};
};
/// y = activation(x @ kernel + bias) over the last axis; kernel [in, units].
class DenseImpl : public Layer {
 public:
  explicit DenseImpl(int64_t units, DenseOptions o = {});
  std::string class_name() const override { return "Dense"; }
  void build(const std::vector<Shape>& s) override;
  Tensor call(const Tensor& x, bool training) override;
  Tensor call_without_activation(const Tensor& x, bool training) override;
  std::string activation_name() const override { return o_.activation.name(); }
  Config config() const override;
  int64_t units() const { return units_; }
  Variable* kernel = nullptr;
  Variable* bias = nullptr;

 private:
  int64_t units_;
  DenseOptions o_;
};
GLIA_LAYER_HOLDER(Dense, (int64_t units, DenseOptions o = {}), (units, std::move(o)));

/// Applies an activation by name or function.
class ActivationImpl : public Layer {
 public:
  explicit ActivationImpl(ActivationArg activation);
  std::string class_name() const override { return "Activation"; }
  Tensor call(const Tensor& x, bool training) override;
  Tensor call_without_activation(const Tensor& x, bool) override { return x; }
  std::string activation_name() const override { return a_.name(); }
  Config config() const override;

 private:
  ActivationArg a_;
};
GLIA_LAYER_HOLDER(Activation, (ActivationArg activation), (std::move(activation)));

/// The input of a Sequential model: `layers::InputLayer({28, 28, 1})` (shape without the batch).
class InputLayerImpl : public Layer {
 public:
  explicit InputLayerImpl(Shape shape, DType dtype = DType::f32, std::string name = "");
  std::string class_name() const override { return "InputLayer"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }

 private:
  Shape shape_;
  DType dtype_;
};
GLIA_LAYER_HOLDER(InputLayer, (Shape shape, DType dtype = DType::f32, std::string name = ""),
                  (std::move(shape), dtype, std::move(name)));

// --- convolution and pooling

struct Conv2DOptions {
  Size2 strides = 1;
  std::string padding = "valid";  // "valid" or "same"
  Size2 dilation_rate = 1;
  int64_t groups = 1;
  ActivationArg activation = {};
  bool use_bias = true;
  InitializerArg kernel_initializer = "glorot_uniform";
  InitializerArg bias_initializer = "zeros";
  RegularizerArg kernel_regularizer = {};
  RegularizerArg bias_regularizer = {};
};
/// 2-D convolution over NHWC; kernel [kh, kw, in / groups, filters].
class Conv2DImpl : public Layer {
 public:
  Conv2DImpl(int64_t filters, Size2 kernel_size, Conv2DOptions o = {});
  std::string class_name() const override { return "Conv2D"; }
  void build(const std::vector<Shape>& s) override;
  Tensor call(const Tensor& x, bool training) override;
  Tensor call_without_activation(const Tensor& x, bool training) override;
  std::string activation_name() const override { return o_.activation.name(); }
  Config config() const override;
  Variable* kernel = nullptr;
  Variable* bias = nullptr;

 private:
  int64_t filters_;
  Size2 k_;
  Conv2DOptions o_;
};
GLIA_LAYER_HOLDER(Conv2D, (int64_t filters, Size2 kernel_size, Conv2DOptions o = {}),
                  (filters, kernel_size, std::move(o)));

struct Conv1DOptions {
  int64_t strides = 1;
  std::string padding = "valid";  // "valid", "same" or "causal"
  int64_t dilation_rate = 1;
  int64_t groups = 1;
  ActivationArg activation = {};
  bool use_bias = true;
  InitializerArg kernel_initializer = "glorot_uniform";
  InitializerArg bias_initializer = "zeros";
  RegularizerArg kernel_regularizer = {};
  RegularizerArg bias_regularizer = {};
};
/// 1-D convolution over [batch, steps, channels]; kernel [k, in / groups, filters].
class Conv1DImpl : public Layer {
 public:
  Conv1DImpl(int64_t filters, int64_t kernel_size, Conv1DOptions o = {});
  std::string class_name() const override { return "Conv1D"; }
  void build(const std::vector<Shape>& s) override;
  Tensor call(const Tensor& x, bool training) override;
  Tensor call_without_activation(const Tensor& x, bool training) override;
  std::string activation_name() const override { return o_.activation.name(); }
  Config config() const override;
  Variable* kernel = nullptr;
  Variable* bias = nullptr;

 private:
  int64_t filters_, k_;
  Conv1DOptions o_;
};
GLIA_LAYER_HOLDER(Conv1D, (int64_t filters, int64_t kernel_size, Conv1DOptions o = {}),
                  (filters, kernel_size, std::move(o)));

struct DepthwiseConv2DOptions {
  Size2 strides = 1;
  std::string padding = "valid";
  int64_t depth_multiplier = 1;
  Size2 dilation_rate = 1;
  ActivationArg activation = {};
  bool use_bias = true;
  InitializerArg depthwise_initializer = "glorot_uniform";
  InitializerArg bias_initializer = "zeros";
  RegularizerArg depthwise_regularizer = {};
  RegularizerArg bias_regularizer = {};
};
/// One filter (or depth_multiplier filters) per input channel; kernel [kh, kw, in, depth_multiplier].
class DepthwiseConv2DImpl : public Layer {
 public:
  explicit DepthwiseConv2DImpl(Size2 kernel_size, DepthwiseConv2DOptions o = {});
  std::string class_name() const override { return "DepthwiseConv2D"; }
  void build(const std::vector<Shape>& s) override;
  Tensor call(const Tensor& x, bool training) override;
  Tensor call_without_activation(const Tensor& x, bool training) override;
  std::string activation_name() const override { return o_.activation.name(); }
  Config config() const override;
  Variable* kernel = nullptr;
  Variable* bias = nullptr;

 private:
  Size2 k_;
  DepthwiseConv2DOptions o_;
};
GLIA_LAYER_HOLDER(DepthwiseConv2D, (Size2 kernel_size, DepthwiseConv2DOptions o = {}), (kernel_size, std::move(o)));

struct Pooling2DOptions {
  std::optional<Size2> strides = {};  // default: pool_size
  std::string padding = "valid";
};
class MaxPooling2DImpl : public Layer {
 public:
  explicit MaxPooling2DImpl(Size2 pool_size = 2, Pooling2DOptions o = {});
  std::string class_name() const override { return "MaxPooling2D"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  Size2 pool_;
  Pooling2DOptions o_;
};
GLIA_LAYER_HOLDER(MaxPooling2D, (Size2 pool_size = 2, Pooling2DOptions o = {}), (pool_size, std::move(o)));

class AveragePooling2DImpl : public Layer {
 public:
  explicit AveragePooling2DImpl(Size2 pool_size = 2, Pooling2DOptions o = {});
  std::string class_name() const override { return "AveragePooling2D"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  Size2 pool_;
  Pooling2DOptions o_;
};
GLIA_LAYER_HOLDER(AveragePooling2D, (Size2 pool_size = 2, Pooling2DOptions o = {}), (pool_size, std::move(o)));

class GlobalAveragePooling2DImpl : public Layer {
 public:
  explicit GlobalAveragePooling2DImpl(bool keepdims = false);
  std::string class_name() const override { return "GlobalAveragePooling2D"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  bool keepdims_;
};
GLIA_LAYER_HOLDER(GlobalAveragePooling2D, (bool keepdims = false), (keepdims));

// --- reshaping

class FlattenImpl : public Layer {
 public:
  FlattenImpl();
  std::string class_name() const override { return "Flatten"; }
  Tensor call(const Tensor& x, bool training) override;
};
GLIA_LAYER_HOLDER(Flatten, (), ());

/// Reshapes to target_shape (without the batch; one -1 allowed).
class ReshapeImpl : public Layer {
 public:
  explicit ReshapeImpl(Shape target_shape);
  std::string class_name() const override { return "Reshape"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  Shape target_;
};
GLIA_LAYER_HOLDER(Reshape, (Shape target_shape), (std::move(target_shape)));

/// Permutes the non-batch axes; dims are 1-based as in Keras: Permute({2, 1}).
class PermuteImpl : public Layer {
 public:
  explicit PermuteImpl(Shape dims);
  std::string class_name() const override { return "Permute"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  Shape dims_;
};
GLIA_LAYER_HOLDER(Permute, (Shape dims), (std::move(dims)));

// --- regularization and normalization

/// Drops inputs with probability `rate` in training (scaled by 1 / (1 - rate)).
class DropoutImpl : public Layer {
 public:
  explicit DropoutImpl(double rate);
  std::string class_name() const override { return "Dropout"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  double rate_;
};
GLIA_LAYER_HOLDER(Dropout, (double rate), (rate));

struct BatchNormalizationOptions {
  int64_t axis = -1;
  double momentum = 0.99;
  double epsilon = 1e-3;
  bool center = true;
  bool scale = true;
  InitializerArg beta_initializer = "zeros";
  InitializerArg gamma_initializer = "ones";
  InitializerArg moving_mean_initializer = "zeros";
  InitializerArg moving_variance_initializer = "ones";
};
/// Normalizes over the channel axis with batch statistics in training and the moving
/// averages otherwise; a frozen layer (trainable false) always runs in inference mode, as in Keras.
class BatchNormalizationImpl : public Layer {
 public:
  explicit BatchNormalizationImpl(BatchNormalizationOptions o = {});
  std::string class_name() const override { return "BatchNormalization"; }
  void build(const std::vector<Shape>& s) override;
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;
  Variable *gamma = nullptr, *beta = nullptr, *moving_mean = nullptr, *moving_variance = nullptr;

 private:
  BatchNormalizationOptions o_;
};
GLIA_LAYER_HOLDER(BatchNormalization, (BatchNormalizationOptions o = {}), (std::move(o)));

struct LayerNormalizationOptions {
  int64_t axis = -1;  // only the last axis is supported
  double epsilon = 1e-3;
  bool center = true;
  bool scale = true;
  InitializerArg beta_initializer = "zeros";
  InitializerArg gamma_initializer = "ones";
};
class LayerNormalizationImpl : public Layer {
 public:
  explicit LayerNormalizationImpl(LayerNormalizationOptions o = {});
  std::string class_name() const override { return "LayerNormalization"; }
  void build(const std::vector<Shape>& s) override;
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;
  Variable *gamma = nullptr, *beta = nullptr;

 private:
  LayerNormalizationOptions o_;
};
GLIA_LAYER_HOLDER(LayerNormalization, (LayerNormalizationOptions o = {}), (std::move(o)));

struct EmbeddingOptions {
  InitializerArg embeddings_initializer = "uniform";
  RegularizerArg embeddings_regularizer = {};
};
/// Integer ids [batch, ...] to vectors [batch, ..., output_dim].
class EmbeddingImpl : public Layer {
 public:
  EmbeddingImpl(int64_t input_dim, int64_t output_dim, EmbeddingOptions o = {});
  std::string class_name() const override { return "Embedding"; }
  void build(const std::vector<Shape>& s) override;
  bool input_shape_fixed() const override { return false; }  // ids of any shape
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;
  Variable* embeddings = nullptr;

 private:
  int64_t input_dim_, output_dim_;
  EmbeddingOptions o_;
};
GLIA_LAYER_HOLDER(Embedding, (int64_t input_dim, int64_t output_dim, EmbeddingOptions o = {}),
                  (input_dim, output_dim, std::move(o)));

/// x * scale + offset (e.g. Rescaling(1.0 / 255) for images).
class RescalingImpl : public Layer {
 public:
  explicit RescalingImpl(double scale, double offset = 0.0);
  std::string class_name() const override { return "Rescaling"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  double scale_, offset_;
};
GLIA_LAYER_HOLDER(Rescaling, (double scale, double offset = 0.0), (scale, offset));

// --- merging (two or more inputs of the same shape, or along an axis for Concatenate)

class AddImpl : public Layer {
 public:
  AddImpl();
  std::string class_name() const override { return "Add"; }
  int num_inputs() const override { return -1; }
  using Layer::call;
  Tensor call(const std::vector<Tensor>& xs, bool training) override;
};
GLIA_LAYER_HOLDER(Add, (), ());

class MultiplyImpl : public Layer {
 public:
  MultiplyImpl();
  std::string class_name() const override { return "Multiply"; }
  int num_inputs() const override { return -1; }
  using Layer::call;
  Tensor call(const std::vector<Tensor>& xs, bool training) override;
};
GLIA_LAYER_HOLDER(Multiply, (), ());

class ConcatenateImpl : public Layer {
 public:
  explicit ConcatenateImpl(int64_t axis = -1);
  std::string class_name() const override { return "Concatenate"; }
  int num_inputs() const override { return -1; }
  using Layer::call;
  Tensor call(const std::vector<Tensor>& xs, bool training) override;
  Config config() const override;

 private:
  int64_t axis_;
};
GLIA_LAYER_HOLDER(Concatenate, (int64_t axis = -1), (axis));

// --- augmentation (active only in training)

/// Flips images [batch, h, w, c] at random: "horizontal", "vertical" or "horizontal_and_vertical".
class RandomFlipImpl : public Layer {
 public:
  explicit RandomFlipImpl(std::string mode = "horizontal_and_vertical");
  std::string class_name() const override { return "RandomFlip"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  std::string mode_;
};
GLIA_LAYER_HOLDER(RandomFlip, (std::string mode = "horizontal_and_vertical"), (std::move(mode)));

struct RandomTranslationOptions {
  std::string fill_mode = "reflect";       // "reflect", "wrap", "nearest" or "constant"
  std::string interpolation = "bilinear";  // "bilinear" or "nearest"
  double fill_value = 0.0;
};
/// Shifts images by a random fraction of their height / width in [-factor, factor].
class RandomTranslationImpl : public Layer {
 public:
  RandomTranslationImpl(double height_factor, double width_factor, RandomTranslationOptions o = {});
  std::string class_name() const override { return "RandomTranslation"; }
  Tensor call(const Tensor& x, bool training) override;
  Config config() const override;

 private:
  double hf_, wf_;
  RandomTranslationOptions o_;
};
GLIA_LAYER_HOLDER(RandomTranslation, (double height_factor, double width_factor, RandomTranslationOptions o = {}),
                  (height_factor, width_factor, std::move(o)));

}  // namespace layers
}  // namespace glia
