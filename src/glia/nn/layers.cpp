// The built-in layers and their registration for from_config.
#include "glia/nn/layers.h"

#include <type_traits>

#include "glia/autograd/autograd.h"
#include "glia/nn/config_int.h"
#include "glia/ops/functions.h"
#include "glia/ops/image.h"

namespace glia {

Size2::Size2(std::initializer_list<int64_t> l) {
  GLIA_CHECK(l.size() == 1 || l.size() == 2, ValueError, "expected one or two sizes, got ", l.size());
  h = *l.begin();
  w = l.size() == 2 ? *(l.begin() + 1) : h;
}

namespace layers {
namespace {

Config size2(const Size2& s) { return Config::array({s.h, s.w}); }
Size2 size2(const Config& c) {
  if (c.is_number()) return Size2(detail::config_int(c, "a size"));
  return Size2(detail::config_int(c.at(0), "a size"), detail::config_int(c.at(1), "a size"));
}
Config init_cfg(const InitializerArg& a) { return initializers::to_config(a.get()); }
Config reg_cfg(const RegularizerArg& a) { return a.get() ? regularizers::to_config(a.get()) : Config(); }
InitializerArg init_of(const Config& c, const char* key, const char* def) {
  if (!c.contains(key)) return InitializerArg(def);
  const Config& v = c[key];
  return v.is_string() ? InitializerArg(v.get<std::string>()) : InitializerArg(initializers::from_config(v));
}
RegularizerArg reg_of(const Config& c, const char* key) {
  if (!c.contains(key) || c[key].is_null()) return {};
  const Config& v = c[key];
  return v.is_string() ? RegularizerArg(v.get<std::string>().c_str()) : RegularizerArg(regularizers::from_config(v));
}
template <class T>
T get_or(const Config& c, const char* key, T def) {
  if (!c.contains(key) || c[key].is_null()) return def;
  if constexpr (std::is_same_v<T, int64_t>)
    return detail::config_int(c[key], key);
  else
    return c[key].get<T>();
}
int64_t int_at(const Config& c, const char* key) { return detail::config_int(c.at(key), key); }
Shape shape_of(const Config& c, const char* key) {
  Shape s;
  for (auto& v : c.at(key)) s.push_back(detail::config_int(v, key));
  return s;
}
Config shape_cfg(const Shape& s) {
  Config a = Config::array();
  for (int64_t d : s) a.push_back(d);
  return a;
}
void check_rank(const Tensor& x, int64_t rank, const Layer& l, const char* what) {
  GLIA_CHECK(x.dim() == rank, ShapeError, "layer \"", l.name(), "\" (", l.class_name(), ") expects ", what, " of rank ",
             rank, " (with the batch axis), got shape ", to_string(x.shape()));
}
Padding2d padding2d(const std::string& p, const char* layer) {
  GLIA_CHECK(p == "valid" || p == "same", ValueError, layer, ": padding must be 'valid' or 'same', got '", p, "'");
  return p == "same" ? Padding2d::same() : Padding2d::valid();
}

}  // namespace

// --- Dense

DenseImpl::DenseImpl(int64_t units, DenseOptions o) : units_(units), o_(std::move(o)) {
  GLIA_CHECK(units > 0, ValueError, "Dense: units must be positive, got ", units);
  o_.activation.fn();  // validates the name now rather than at the first call
}

void DenseImpl::build(const std::vector<Shape>& s) {
  GLIA_CHECK(!s[0].empty() && s[0].back() > 0, ShapeError, "Dense: expected inputs with a known last axis, got ",
             to_string(s[0]), " (without the batch axis)");
  kernel = &add_weight("kernel", {s[0].back(), units_}, o_.kernel_initializer.get(), true, o_.kernel_regularizer.get());
  if (o_.use_bias) bias = &add_weight("bias", {units_}, o_.bias_initializer.get(), true, o_.bias_regularizer.get());
}

Tensor DenseImpl::call_without_activation(const Tensor& x, bool) {
  GLIA_CHECK(x.dim() >= 2 && x.shape().back() == kernel->value.shape()[0], ShapeError, "Input 0 of layer \"", name(),
             "\" (Dense) is incompatible with the layer: expected axis -1 of input shape to have value ",
             kernel->value.shape()[0], ", but received input with shape ", to_string(x.shape()));
  return linear(x, kernel->value, bias ? bias->value : Tensor());
}

Tensor DenseImpl::call(const Tensor& x, bool training) {
  return o_.activation.fn()(call_without_activation(x, training));
}

Config DenseImpl::config() const {
  Config c = Layer::config();
  c["units"] = units_;
  c["activation"] = o_.activation.name().empty() ? "linear" : o_.activation.name();
  c["use_bias"] = o_.use_bias;
  c["kernel_initializer"] = init_cfg(o_.kernel_initializer);
  c["bias_initializer"] = init_cfg(o_.bias_initializer);
  c["kernel_regularizer"] = reg_cfg(o_.kernel_regularizer);
  c["bias_regularizer"] = reg_cfg(o_.bias_regularizer);
  return c;
}

// --- Activation

ActivationImpl::ActivationImpl(ActivationArg a) : a_(std::move(a)) { a_.fn(); }
Tensor ActivationImpl::call(const Tensor& x, bool) { return a_.fn()(x); }
Config ActivationImpl::config() const {
  Config c = Layer::config();
  c["activation"] = a_.name().empty() ? "linear" : a_.name();
  return c;
}

// --- InputLayer

InputLayerImpl::InputLayerImpl(Shape shape, DType dtype, std::string name)
    : Layer(name.empty() ? unique_name("InputLayer") : std::move(name)), shape_(std::move(shape)), dtype_(dtype) {}

Tensor InputLayerImpl::call(const Tensor& x, bool) {
  bool ok = x.dim() == static_cast<int64_t>(shape_.size()) + 1;
  for (size_t i = 0; ok && i < shape_.size(); ++i) ok = shape_[i] == -1 || shape_[i] == x.shape()[i + 1];
  GLIA_CHECK(ok, ShapeError, "Input \"", name(), "\" expects shape ", to_string(shape_),
             " (without the batch axis), got a tensor of shape ", to_string(x.shape()));
  return x;
}

Config InputLayerImpl::config() const {
  Config c;
  c["name"] = name();
  Config s = Config::array({nullptr});
  for (int64_t d : shape_) s.push_back(d);
  c["batch_shape"] = s;
  c["dtype"] = glia::name(dtype_);
  return c;
}

// --- Conv2D

Conv2DImpl::Conv2DImpl(int64_t filters, Size2 k, Conv2DOptions o) : filters_(filters), k_(k), o_(std::move(o)) {
  GLIA_CHECK(filters > 0 && k.h > 0 && k.w > 0, ValueError, "Conv2D: filters and kernel size must be positive");
  padding2d(o_.padding, "Conv2D");
  o_.activation.fn();
}

void Conv2DImpl::build(const std::vector<Shape>& s) {
  GLIA_CHECK(s[0].size() == 3, ShapeError, "Conv2D expects inputs of shape [height, width, channels] (NHWC), got ",
             to_string(s[0]), " (without the batch axis)");
  int64_t cin = s[0][2];
  GLIA_CHECK(cin % o_.groups == 0 && filters_ % o_.groups == 0, ValueError, "Conv2D: groups ", o_.groups,
             " must divide the input channels ", cin, " and the filters ", filters_);
  kernel = &add_weight("kernel", {k_.h, k_.w, cin / o_.groups, filters_}, o_.kernel_initializer.get(), true,
                       o_.kernel_regularizer.get());
  if (o_.use_bias) bias = &add_weight("bias", {filters_}, o_.bias_initializer.get(), true, o_.bias_regularizer.get());
}

Tensor Conv2DImpl::call_without_activation(const Tensor& x, bool) {
  check_rank(x, 4, *this, "inputs [batch, height, width, channels]");
  return conv2d(x, kernel->value, bias ? bias->value : Tensor(),
                {.stride = o_.strides.arr(),
                 .padding = padding2d(o_.padding, "Conv2D"),
                 .dilation = o_.dilation_rate.arr(),
                 .groups = o_.groups});
}
Tensor Conv2DImpl::call(const Tensor& x, bool training) {
  return o_.activation.fn()(call_without_activation(x, training));
}

Config Conv2DImpl::config() const {
  Config c = Layer::config();
  c["filters"] = filters_;
  c["kernel_size"] = size2(k_);
  c["strides"] = size2(o_.strides);
  c["padding"] = o_.padding;
  c["dilation_rate"] = size2(o_.dilation_rate);
  c["groups"] = o_.groups;
  c["activation"] = o_.activation.name().empty() ? "linear" : o_.activation.name();
  c["use_bias"] = o_.use_bias;
  c["kernel_initializer"] = init_cfg(o_.kernel_initializer);
  c["bias_initializer"] = init_cfg(o_.bias_initializer);
  c["kernel_regularizer"] = reg_cfg(o_.kernel_regularizer);
  c["bias_regularizer"] = reg_cfg(o_.bias_regularizer);
  return c;
}

// --- Conv1D

Conv1DImpl::Conv1DImpl(int64_t filters, int64_t k, Conv1DOptions o) : filters_(filters), k_(k), o_(std::move(o)) {
  GLIA_CHECK(filters > 0 && k > 0, ValueError, "Conv1D: filters and kernel size must be positive");
  GLIA_CHECK(o_.padding == "valid" || o_.padding == "same" || o_.padding == "causal", ValueError,
             "Conv1D: padding must be 'valid', 'same' or 'causal', got '", o_.padding, "'");
  o_.activation.fn();
}

void Conv1DImpl::build(const std::vector<Shape>& s) {
  GLIA_CHECK(s[0].size() == 2, ShapeError, "Conv1D expects inputs of shape [steps, channels], got ", to_string(s[0]),
             " (without the batch axis)");
  int64_t cin = s[0][1];
  GLIA_CHECK(cin % o_.groups == 0 && filters_ % o_.groups == 0, ValueError, "Conv1D: groups ", o_.groups,
             " must divide the input channels ", cin, " and the filters ", filters_);
  kernel = &add_weight("kernel", {k_, cin / o_.groups, filters_}, o_.kernel_initializer.get(), true,
                       o_.kernel_regularizer.get());
  if (o_.use_bias) bias = &add_weight("bias", {filters_}, o_.bias_initializer.get(), true, o_.bias_regularizer.get());
}

Tensor Conv1DImpl::call_without_activation(const Tensor& x, bool) {
  check_rank(x, 3, *this, "inputs [batch, steps, channels]");
  return conv1d(x, kernel->value, bias ? bias->value : Tensor(),
                {.stride = o_.strides, .padding = o_.padding, .dilation = o_.dilation_rate, .groups = o_.groups});
}
Tensor Conv1DImpl::call(const Tensor& x, bool training) {
  return o_.activation.fn()(call_without_activation(x, training));
}

Config Conv1DImpl::config() const {
  Config c = Layer::config();
  c["filters"] = filters_;
  c["kernel_size"] = Config::array({k_});
  c["strides"] = Config::array({o_.strides});
  c["padding"] = o_.padding;
  c["dilation_rate"] = Config::array({o_.dilation_rate});
  c["groups"] = o_.groups;
  c["activation"] = o_.activation.name().empty() ? "linear" : o_.activation.name();
  c["use_bias"] = o_.use_bias;
  c["kernel_initializer"] = init_cfg(o_.kernel_initializer);
  c["bias_initializer"] = init_cfg(o_.bias_initializer);
  c["kernel_regularizer"] = reg_cfg(o_.kernel_regularizer);
  c["bias_regularizer"] = reg_cfg(o_.bias_regularizer);
  return c;
}

// --- DepthwiseConv2D

DepthwiseConv2DImpl::DepthwiseConv2DImpl(Size2 k, DepthwiseConv2DOptions o) : k_(k), o_(std::move(o)) {
  GLIA_CHECK(k.h > 0 && k.w > 0 && o_.depth_multiplier > 0, ValueError,
             "DepthwiseConv2D: kernel size and depth_multiplier must be positive");
  padding2d(o_.padding, "DepthwiseConv2D");
  o_.activation.fn();
}

void DepthwiseConv2DImpl::build(const std::vector<Shape>& s) {
  GLIA_CHECK(s[0].size() == 3, ShapeError, "DepthwiseConv2D expects inputs [height, width, channels], got ",
             to_string(s[0]));
  int64_t cin = s[0][2];
  kernel = &add_weight("kernel", {k_.h, k_.w, cin, o_.depth_multiplier}, o_.depthwise_initializer.get(), true,
                       o_.depthwise_regularizer.get());
  if (o_.use_bias)
    bias = &add_weight("bias", {cin * o_.depth_multiplier}, o_.bias_initializer.get(), true, o_.bias_regularizer.get());
}

Tensor DepthwiseConv2DImpl::call_without_activation(const Tensor& x, bool) {
  check_rank(x, 4, *this, "inputs [batch, height, width, channels]");
  const Shape& ks = kernel->value.shape();
  // [kh, kw, in, m] is the grouped kernel [kh, kw, 1, in * m] with one group per input channel.
  Tensor w = kernel->value.reshape({ks[0], ks[1], 1, ks[2] * ks[3]});
  return conv2d(x, w, bias ? bias->value : Tensor(),
                {.stride = o_.strides.arr(),
                 .padding = padding2d(o_.padding, "DepthwiseConv2D"),
                 .dilation = o_.dilation_rate.arr(),
                 .groups = ks[2]});
}
Tensor DepthwiseConv2DImpl::call(const Tensor& x, bool training) {
  return o_.activation.fn()(call_without_activation(x, training));
}

Config DepthwiseConv2DImpl::config() const {
  Config c = Layer::config();
  c["kernel_size"] = size2(k_);
  c["strides"] = size2(o_.strides);
  c["padding"] = o_.padding;
  c["depth_multiplier"] = o_.depth_multiplier;
  c["dilation_rate"] = size2(o_.dilation_rate);
  c["activation"] = o_.activation.name().empty() ? "linear" : o_.activation.name();
  c["use_bias"] = o_.use_bias;
  c["depthwise_initializer"] = init_cfg(o_.depthwise_initializer);
  c["bias_initializer"] = init_cfg(o_.bias_initializer);
  c["depthwise_regularizer"] = reg_cfg(o_.depthwise_regularizer);
  c["bias_regularizer"] = reg_cfg(o_.bias_regularizer);
  return c;
}

// --- pooling

MaxPooling2DImpl::MaxPooling2DImpl(Size2 pool, Pooling2DOptions o) : pool_(pool), o_(std::move(o)) {
  padding2d(o_.padding, "MaxPooling2D");
}
Tensor MaxPooling2DImpl::call(const Tensor& x, bool) {
  check_rank(x, 4, *this, "inputs [batch, height, width, channels]");
  Size2 st = o_.strides.value_or(pool_);
  return max_pool2d(x, {.kernel = pool_.arr(), .stride = st.arr(), .padding = padding2d(o_.padding, "MaxPooling2D")});
}
Config MaxPooling2DImpl::config() const {
  Config c = Layer::config();
  c["pool_size"] = size2(pool_);
  c["strides"] = size2(o_.strides.value_or(pool_));
  c["padding"] = o_.padding;
  return c;
}

AveragePooling2DImpl::AveragePooling2DImpl(Size2 pool, Pooling2DOptions o) : pool_(pool), o_(std::move(o)) {
  padding2d(o_.padding, "AveragePooling2D");
}
Tensor AveragePooling2DImpl::call(const Tensor& x, bool) {
  check_rank(x, 4, *this, "inputs [batch, height, width, channels]");
  Size2 st = o_.strides.value_or(pool_);
  return avg_pool2d(x,
                    {.kernel = pool_.arr(), .stride = st.arr(), .padding = padding2d(o_.padding, "AveragePooling2D")});
}
Config AveragePooling2DImpl::config() const {
  Config c = Layer::config();
  c["pool_size"] = size2(pool_);
  c["strides"] = size2(o_.strides.value_or(pool_));
  c["padding"] = o_.padding;
  return c;
}

GlobalAveragePooling2DImpl::GlobalAveragePooling2DImpl(bool keepdims) : keepdims_(keepdims) {}
Tensor GlobalAveragePooling2DImpl::call(const Tensor& x, bool) {
  check_rank(x, 4, *this, "inputs [batch, height, width, channels]");
  return global_avg_pool2d(x, keepdims_);
}
Config GlobalAveragePooling2DImpl::config() const {
  Config c = Layer::config();
  c["keepdims"] = keepdims_;
  return c;
}

// --- reshaping

FlattenImpl::FlattenImpl() = default;
Tensor FlattenImpl::call(const Tensor& x, bool) {
  GLIA_CHECK(x.dim() >= 1, ShapeError, "Flatten: expected a batch of inputs, got a 0-d tensor");
  // The size is counted, not inferred with -1, so that an empty batch flattens too.
  int64_t n = 1;
  for (int64_t d = 1; d < x.dim(); ++d) n *= x.shape()[static_cast<size_t>(d)];
  return x.reshape({x.shape()[0], n});
}

ReshapeImpl::ReshapeImpl(Shape target) : target_(std::move(target)) {}
Tensor ReshapeImpl::call(const Tensor& x, bool) {
  // A -1 is resolved from the size of one sample (as Keras), so that an empty batch reshapes too.
  int64_t per = 1, known = 1, unknown = 0;
  for (int64_t d = 1; d < x.dim(); ++d) per *= x.shape()[static_cast<size_t>(d)];
  for (int64_t d : target_) {
    if (d == -1)
      ++unknown;
    else
      known *= d;
  }
  bool ok = unknown == 0 ? per == known : unknown == 1 && known > 0 && per % known == 0;
  GLIA_CHECK(ok, ShapeError, "layer \"", name(), "\" (Reshape) cannot reshape inputs of shape ", to_string(x.shape()),
             " to target_shape ", to_string(target_), " (the size of a sample must stay ", per, ")");
  Shape s{x.shape()[0]};
  for (int64_t d : target_) s.push_back(d == -1 ? per / known : d);
  return x.reshape(s);
}
Config ReshapeImpl::config() const {
  Config c = Layer::config();
  c["target_shape"] = shape_cfg(target_);
  return c;
}

PermuteImpl::PermuteImpl(Shape dims) : dims_(std::move(dims)) {
  std::vector<bool> seen(dims_.size() + 1, false);
  for (int64_t d : dims_) {
    GLIA_CHECK(d >= 1 && d <= static_cast<int64_t>(dims_.size()) && !seen[static_cast<size_t>(d)], ValueError,
               "Permute: dims must be a permutation of 1..", dims_.size(), " (1-based, without the batch), got ",
               to_string(dims_));
    seen[static_cast<size_t>(d)] = true;
  }
}
Tensor PermuteImpl::call(const Tensor& x, bool) {
  GLIA_CHECK(x.dim() == static_cast<int64_t>(dims_.size()) + 1, ShapeError, "Permute: dims ", to_string(dims_),
             " do not fit an input of shape ", to_string(x.shape()));
  Shape p{0};
  for (int64_t d : dims_) p.push_back(d);
  return x.permute(p);
}
Config PermuteImpl::config() const {
  Config c = Layer::config();
  c["dims"] = shape_cfg(dims_);
  return c;
}

// --- Dropout, normalization, embedding, rescaling

DropoutImpl::DropoutImpl(double rate) : rate_(rate) {
  GLIA_CHECK(rate >= 0.0 && rate < 1.0, ValueError, "Dropout: rate must be in [0, 1), got ", rate);
}
Tensor DropoutImpl::call(const Tensor& x, bool training) { return dropout(x, rate_, training); }
Config DropoutImpl::config() const {
  Config c = Layer::config();
  c["rate"] = rate_;
  return c;
}

BatchNormalizationImpl::BatchNormalizationImpl(BatchNormalizationOptions o) : o_(std::move(o)) {}

void BatchNormalizationImpl::build(const std::vector<Shape>& s) {
  GLIA_CHECK(!s[0].empty(), ShapeError, "BatchNormalization: expected inputs with a channel axis");
  int64_t axis = wrap_axis(o_.axis, static_cast<int64_t>(s[0].size()) + 1, "BatchNormalization");
  GLIA_CHECK(axis == static_cast<int64_t>(s[0].size()), ValueError,
             "BatchNormalization: only the last (channel) axis is supported, got axis ", o_.axis);
  int64_t c = s[0].back();
  if (o_.scale) gamma = &add_weight("gamma", {c}, o_.gamma_initializer.get());
  if (o_.center) beta = &add_weight("beta", {c}, o_.beta_initializer.get());
  moving_mean = &add_weight("moving_mean", {c}, o_.moving_mean_initializer.get(), false);
  moving_variance = &add_weight("moving_variance", {c}, o_.moving_variance_initializer.get(), false);
}

Tensor BatchNormalizationImpl::call(const Tensor& x, bool training) {
  return batch_norm(x, moving_mean->value, moving_variance->value, gamma ? gamma->value : Tensor(),
                    beta ? beta->value : Tensor(),
                    {.training = training && trainable(), .momentum = o_.momentum, .eps = o_.epsilon});
}

Config BatchNormalizationImpl::config() const {
  Config c = Layer::config();
  c["axis"] = o_.axis;
  c["momentum"] = o_.momentum;
  c["epsilon"] = o_.epsilon;
  c["center"] = o_.center;
  c["scale"] = o_.scale;
  c["beta_initializer"] = init_cfg(o_.beta_initializer);
  c["gamma_initializer"] = init_cfg(o_.gamma_initializer);
  c["moving_mean_initializer"] = init_cfg(o_.moving_mean_initializer);
  c["moving_variance_initializer"] = init_cfg(o_.moving_variance_initializer);
  return c;
}

LayerNormalizationImpl::LayerNormalizationImpl(LayerNormalizationOptions o) : o_(std::move(o)) {}
void LayerNormalizationImpl::build(const std::vector<Shape>& s) {
  GLIA_CHECK(!s[0].empty(), ShapeError, "LayerNormalization: expected inputs with a feature axis");
  int64_t axis = wrap_axis(o_.axis, static_cast<int64_t>(s[0].size()) + 1, "LayerNormalization");
  GLIA_CHECK(axis == static_cast<int64_t>(s[0].size()), ValueError,
             "LayerNormalization: only the last axis is supported, got axis ", o_.axis);
  if (o_.scale) gamma = &add_weight("gamma", {s[0].back()}, o_.gamma_initializer.get());
  if (o_.center) beta = &add_weight("beta", {s[0].back()}, o_.beta_initializer.get());
}
Tensor LayerNormalizationImpl::call(const Tensor& x, bool) {
  return layer_norm(x, 1, gamma ? gamma->value : Tensor(), beta ? beta->value : Tensor(), o_.epsilon);
}
Config LayerNormalizationImpl::config() const {
  Config c = Layer::config();
  c["axis"] = o_.axis;
  c["epsilon"] = o_.epsilon;
  c["center"] = o_.center;
  c["scale"] = o_.scale;
  c["beta_initializer"] = init_cfg(o_.beta_initializer);
  c["gamma_initializer"] = init_cfg(o_.gamma_initializer);
  return c;
}

EmbeddingImpl::EmbeddingImpl(int64_t input_dim, int64_t output_dim, EmbeddingOptions o)
    : input_dim_(input_dim), output_dim_(output_dim), o_(std::move(o)) {
  GLIA_CHECK(input_dim > 0 && output_dim > 0, ValueError, "Embedding: input_dim and output_dim must be positive");
}
void EmbeddingImpl::build(const std::vector<Shape>&) {
  embeddings = &add_weight("embeddings", {input_dim_, output_dim_}, o_.embeddings_initializer.get(), true,
                           o_.embeddings_regularizer.get());
}
Tensor EmbeddingImpl::call(const Tensor& x, bool) {
  // Keras feeds ids as floats too; integral values are taken as ids.
  Tensor ids = is_floating(x.dtype()) ? x.to(DType::i64) : x;
  return embedding(embeddings->value, ids);
}
Config EmbeddingImpl::config() const {
  Config c = Layer::config();
  c["input_dim"] = input_dim_;
  c["output_dim"] = output_dim_;
  c["embeddings_initializer"] = init_cfg(o_.embeddings_initializer);
  c["embeddings_regularizer"] = reg_cfg(o_.embeddings_regularizer);
  return c;
}

RescalingImpl::RescalingImpl(double scale, double offset) : scale_(scale), offset_(offset) {}
Tensor RescalingImpl::call(const Tensor& x, bool) {
  Tensor xf = is_floating(x.dtype()) ? x : x.to(DType::f32);
  return offset_ == 0.0 ? xf * scale_ : xf * scale_ + offset_;
}
Config RescalingImpl::config() const {
  Config c = Layer::config();
  c["scale"] = scale_;
  c["offset"] = offset_;
  return c;
}

// --- merging

namespace {
void check_same_shapes(const std::vector<Tensor>& xs, const Layer& l) {
  for (size_t i = 1; i < xs.size(); ++i)
    GLIA_CHECK(xs[i].shape() == xs[0].shape(), ShapeError, "layer \"", l.name(), "\" (", l.class_name(),
               ") needs inputs of one shape, got ", to_string(xs[0].shape()), " and ", to_string(xs[i].shape()));
}
}  // namespace

AddImpl::AddImpl() = default;
Tensor AddImpl::call(const std::vector<Tensor>& xs, bool) {
  check_same_shapes(xs, *this);
  Tensor r = xs[0];
  for (size_t i = 1; i < xs.size(); ++i) r = r + xs[i];
  return r;
}

MultiplyImpl::MultiplyImpl() = default;
Tensor MultiplyImpl::call(const std::vector<Tensor>& xs, bool) {
  check_same_shapes(xs, *this);
  Tensor r = xs[0];
  for (size_t i = 1; i < xs.size(); ++i) r = r * xs[i];
  return r;
}

ConcatenateImpl::ConcatenateImpl(int64_t axis) : axis_(axis) {}
Tensor ConcatenateImpl::call(const std::vector<Tensor>& xs, bool) { return concat(xs, axis_); }
Config ConcatenateImpl::config() const {
  Config c = Layer::config();
  c["axis"] = axis_;
  return c;
}

// --- augmentation

RandomFlipImpl::RandomFlipImpl(std::string mode) : mode_(std::move(mode)) {
  GLIA_CHECK(mode_ == "horizontal" || mode_ == "vertical" || mode_ == "horizontal_and_vertical", ValueError,
             "RandomFlip: mode must be 'horizontal', 'vertical' or 'horizontal_and_vertical', got '", mode_, "'");
}

Tensor RandomFlipImpl::call(const Tensor& x, bool training) {
  if (!training) return x;
  check_rank(x, 4, *this, "images [batch, height, width, channels]");
  int64_t n = x.shape()[0];
  Tensor y = x;
  auto flip_some = [&](int64_t axis) {
    Tensor pick = (rand({n}) < 0.5).reshape({n, 1, 1, 1});
    y = where(pick, flip(y, {axis}), y);
  };
  if (mode_ != "vertical") flip_some(2);
  if (mode_ != "horizontal") flip_some(1);
  return y;
}
Config RandomFlipImpl::config() const {
  Config c = Layer::config();
  c["mode"] = mode_;
  return c;
}

RandomTranslationImpl::RandomTranslationImpl(double hf, double wf, RandomTranslationOptions o)
    : hf_(hf), wf_(wf), o_(std::move(o)) {
  GLIA_CHECK(hf >= 0 && hf <= 1 && wf >= 0 && wf <= 1, ValueError, "RandomTranslation: factors must be in [0, 1], got ",
             hf, " and ", wf);
  GLIA_CHECK(
      o_.fill_mode == "reflect" || o_.fill_mode == "wrap" || o_.fill_mode == "nearest" || o_.fill_mode == "constant",
      ValueError, "RandomTranslation: fill_mode must be reflect, wrap, nearest or constant, got '", o_.fill_mode, "'");
  GLIA_CHECK(o_.interpolation == "bilinear" || o_.interpolation == "nearest", ValueError,
             "RandomTranslation: interpolation must be bilinear or nearest, got '", o_.interpolation, "'");
}

Tensor RandomTranslationImpl::call(const Tensor& x, bool training) {
  if (!training) return x;
  check_rank(x, 4, *this, "images [batch, height, width, channels]");
  int64_t n = x.shape()[0];
  double h = static_cast<double>(x.shape()[1]), w = static_cast<double>(x.shape()[2]);
  Tensor dy = rand({n}, {.dtype = DType::f32}, -hf_, hf_) * h;
  Tensor dx = rand({n}, {.dtype = DType::f32}, -wf_, wf_) * w;
  Tensor xf = is_floating(x.dtype()) ? x : x.to(DType::f32);
  return translate_images(xf, dy, dx,
                          {.fill_mode = o_.fill_mode, .interpolation = o_.interpolation, .fill_value = o_.fill_value});
}
Config RandomTranslationImpl::config() const {
  Config c = Layer::config();
  c["height_factor"] = hf_;
  c["width_factor"] = wf_;
  c["fill_mode"] = o_.fill_mode;
  c["interpolation"] = o_.interpolation;
  c["fill_value"] = o_.fill_value;
  return c;
}

// --- registration of the built-ins for layer_from_config

namespace {
ActivationArg act_of(const Config& c) { return ActivationArg(get_or<std::string>(c, "activation", "linear")); }

const bool registered = [] {
  register_layer("Dense", [](const Config& c) -> LayerPtr {
    return std::make_shared<DenseImpl>(
        int_at(c, "units"), DenseOptions{.activation = act_of(c),
                                         .use_bias = get_or(c, "use_bias", true),
                                         .kernel_initializer = init_of(c, "kernel_initializer", "glorot_uniform"),
                                         .bias_initializer = init_of(c, "bias_initializer", "zeros"),
                                         .kernel_regularizer = reg_of(c, "kernel_regularizer"),
                                         .bias_regularizer = reg_of(c, "bias_regularizer")});
  });
  register_layer("Activation", [](const Config& c) -> LayerPtr { return std::make_shared<ActivationImpl>(act_of(c)); });
  register_layer("InputLayer", [](const Config& c) -> LayerPtr {
    Shape s;
    const Config& bs = c.at("batch_shape");
    for (size_t i = 1; i < bs.size(); ++i) s.push_back(bs[i].is_null() ? -1 : detail::config_int(bs[i], "batch_shape"));
    return std::make_shared<InputLayerImpl>(s, dtype_from_name(get_or<std::string>(c, "dtype", "float32")),
                                            get_or<std::string>(c, "name", ""));
  });
  register_layer("Conv2D", [](const Config& c) -> LayerPtr {
    return std::make_shared<Conv2DImpl>(
        int_at(c, "filters"), size2(c.at("kernel_size")),
        Conv2DOptions{.strides = size2(c.at("strides")),
                      .padding = get_or<std::string>(c, "padding", "valid"),
                      .dilation_rate = size2(c.at("dilation_rate")),
                      .groups = get_or<int64_t>(c, "groups", 1),
                      .activation = act_of(c),
                      .use_bias = get_or(c, "use_bias", true),
                      .kernel_initializer = init_of(c, "kernel_initializer", "glorot_uniform"),
                      .bias_initializer = init_of(c, "bias_initializer", "zeros"),
                      .kernel_regularizer = reg_of(c, "kernel_regularizer"),
                      .bias_regularizer = reg_of(c, "bias_regularizer")});
  });
  register_layer("Conv1D", [](const Config& c) -> LayerPtr {
    return std::make_shared<Conv1DImpl>(
        int_at(c, "filters"), detail::config_int(c.at("kernel_size").at(0), "kernel_size"),
        Conv1DOptions{.strides = detail::config_int(c.at("strides").at(0), "strides"),
                      .padding = get_or<std::string>(c, "padding", "valid"),
                      .dilation_rate = detail::config_int(c.at("dilation_rate").at(0), "dilation_rate"),
                      .groups = get_or<int64_t>(c, "groups", 1),
                      .activation = act_of(c),
                      .use_bias = get_or(c, "use_bias", true),
                      .kernel_initializer = init_of(c, "kernel_initializer", "glorot_uniform"),
                      .bias_initializer = init_of(c, "bias_initializer", "zeros"),
                      .kernel_regularizer = reg_of(c, "kernel_regularizer"),
                      .bias_regularizer = reg_of(c, "bias_regularizer")});
  });
  register_layer("DepthwiseConv2D", [](const Config& c) -> LayerPtr {
    return std::make_shared<DepthwiseConv2DImpl>(
        size2(c.at("kernel_size")),
        DepthwiseConv2DOptions{.strides = size2(c.at("strides")),
                               .padding = get_or<std::string>(c, "padding", "valid"),
                               .depth_multiplier = get_or<int64_t>(c, "depth_multiplier", 1),
                               .dilation_rate = size2(c.at("dilation_rate")),
                               .activation = act_of(c),
                               .use_bias = get_or(c, "use_bias", true),
                               .depthwise_initializer = init_of(c, "depthwise_initializer", "glorot_uniform"),
                               .bias_initializer = init_of(c, "bias_initializer", "zeros"),
                               .depthwise_regularizer = reg_of(c, "depthwise_regularizer"),
                               .bias_regularizer = reg_of(c, "bias_regularizer")});
  });
  register_layer("MaxPooling2D", [](const Config& c) -> LayerPtr {
    return std::make_shared<MaxPooling2DImpl>(
        size2(c.at("pool_size")),
        Pooling2DOptions{.strides = size2(c.at("strides")), .padding = get_or<std::string>(c, "padding", "valid")});
  });
  register_layer("AveragePooling2D", [](const Config& c) -> LayerPtr {
    return std::make_shared<AveragePooling2DImpl>(
        size2(c.at("pool_size")),
        Pooling2DOptions{.strides = size2(c.at("strides")), .padding = get_or<std::string>(c, "padding", "valid")});
  });
  register_layer("GlobalAveragePooling2D", [](const Config& c) -> LayerPtr {
    return std::make_shared<GlobalAveragePooling2DImpl>(get_or(c, "keepdims", false));
  });
  register_layer("Flatten", [](const Config&) -> LayerPtr { return std::make_shared<FlattenImpl>(); });
  register_layer("Reshape", [](const Config& c) -> LayerPtr {
    return std::make_shared<ReshapeImpl>(shape_of(c, "target_shape"));
  });
  register_layer("Permute",
                 [](const Config& c) -> LayerPtr { return std::make_shared<PermuteImpl>(shape_of(c, "dims")); });
  register_layer("Dropout",
                 [](const Config& c) -> LayerPtr { return std::make_shared<DropoutImpl>(c.at("rate").get<double>()); });
  register_layer("BatchNormalization", [](const Config& c) -> LayerPtr {
    return std::make_shared<BatchNormalizationImpl>(
        BatchNormalizationOptions{.axis = get_or<int64_t>(c, "axis", -1),
                                  .momentum = get_or(c, "momentum", 0.99),
                                  .epsilon = get_or(c, "epsilon", 1e-3),
                                  .center = get_or(c, "center", true),
                                  .scale = get_or(c, "scale", true),
                                  .beta_initializer = init_of(c, "beta_initializer", "zeros"),
                                  .gamma_initializer = init_of(c, "gamma_initializer", "ones"),
                                  .moving_mean_initializer = init_of(c, "moving_mean_initializer", "zeros"),
                                  .moving_variance_initializer = init_of(c, "moving_variance_initializer", "ones")});
  });
  register_layer("LayerNormalization", [](const Config& c) -> LayerPtr {
    return std::make_shared<LayerNormalizationImpl>(
        LayerNormalizationOptions{.axis = get_or<int64_t>(c, "axis", -1),
                                  .epsilon = get_or(c, "epsilon", 1e-3),
                                  .center = get_or(c, "center", true),
                                  .scale = get_or(c, "scale", true),
                                  .beta_initializer = init_of(c, "beta_initializer", "zeros"),
                                  .gamma_initializer = init_of(c, "gamma_initializer", "ones")});
  });
  register_layer("Embedding", [](const Config& c) -> LayerPtr {
    return std::make_shared<EmbeddingImpl>(
        int_at(c, "input_dim"), int_at(c, "output_dim"),
        EmbeddingOptions{.embeddings_initializer = init_of(c, "embeddings_initializer", "uniform"),
                         .embeddings_regularizer = reg_of(c, "embeddings_regularizer")});
  });
  register_layer("Rescaling", [](const Config& c) -> LayerPtr {
    return std::make_shared<RescalingImpl>(c.at("scale").get<double>(), get_or(c, "offset", 0.0));
  });
  register_layer("Add", [](const Config&) -> LayerPtr { return std::make_shared<AddImpl>(); });
  register_layer("Multiply", [](const Config&) -> LayerPtr { return std::make_shared<MultiplyImpl>(); });
  register_layer("Concatenate", [](const Config& c) -> LayerPtr {
    return std::make_shared<ConcatenateImpl>(get_or<int64_t>(c, "axis", -1));
  });
  register_layer("RandomFlip", [](const Config& c) -> LayerPtr {
    return std::make_shared<RandomFlipImpl>(get_or<std::string>(c, "mode", "horizontal_and_vertical"));
  });
  register_layer("RandomTranslation", [](const Config& c) -> LayerPtr {
    return std::make_shared<RandomTranslationImpl>(
        c.at("height_factor").get<double>(), c.at("width_factor").get<double>(),
        RandomTranslationOptions{.fill_mode = get_or<std::string>(c, "fill_mode", "reflect"),
                                 .interpolation = get_or<std::string>(c, "interpolation", "bilinear"),
                                 .fill_value = get_or(c, "fill_value", 0.0)});
  });
  return true;
}();
}  // namespace

}  // namespace layers
}  // namespace glia
