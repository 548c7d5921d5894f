// Layer base: lazy build, weights, sublayers, symbolic calls, the registry.
#include "glia/nn/layer.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <mutex>

#include "glia/autograd/autograd.h"
#include "glia/graph/graph.h"
#include "glia/nn/layers.h"
#include "glia/ops/functions.h"

namespace glia {

void Variable::assign(const Tensor& v) {
  GLIA_CHECK(v.shape() == value.shape(), ShapeError, "assign: weight '", name, "' has shape ", to_string(value.shape()),
             ", got a value of shape ", to_string(v.shape()));
  no_grad g;
  value.copy_(v);
}

// --- KerasTensor

namespace {
std::atomic<int64_t> g_node_ids{0};
}

KerasTensor Input(const Shape& shape, DType dtype, const std::string& name) {
  for (int64_t d : shape)
    GLIA_CHECK(d > 0 || d == -1, ShapeError, "Input: dimensions must be positive (or -1 for unknown), got ",
               to_string(shape));
  auto layer = std::make_shared<layers::InputLayerImpl>(shape, dtype, name);
  auto n = std::make_shared<KerasTensor::Node>();
  n->layer = layer;
  n->shape.push_back(-1);
  for (int64_t d : shape) n->shape.push_back(d);
  n->dtype = dtype;
  n->id = g_node_ids++;
  return KerasTensor(n);
}

// --- Layer

Layer::Layer(std::string name) : name_(std::move(name)) {}

std::string Layer::unique_name(const std::string& class_name) {
  static std::mutex mu;
  static std::map<std::string, int> counts;
  // Keras's to_snake_case: "MaxPooling2D" -> "max_pooling2d", "Conv2D" -> "conv2d".
  auto lower = [](char c) { return std::islower(static_cast<unsigned char>(c)) != 0; };
  auto upper = [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; };
  std::string a;  // rule 1: (.)([A-Z][a-z]+) -> \1_\2
  for (size_t i = 0; i < class_name.size(); ++i) {
    if (i > 0 && upper(class_name[i]) && i + 1 < class_name.size() && lower(class_name[i + 1])) a += '_';
    a += class_name[i];
  }
  std::string snake;  // rule 2: ([a-z])([A-Z]) -> \1_\2, then lower case
  for (size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && upper(a[i]) && lower(a[i - 1])) snake += '_';
    snake += static_cast<char>(std::tolower(static_cast<unsigned char>(a[i])));
  }
  std::lock_guard<std::mutex> g(mu);
  int n = counts[snake]++;
  return n == 0 ? snake : snake + "_" + std::to_string(n);
}

void Layer::build(const std::vector<Shape>&) {}

Tensor Layer::call(const Tensor& x, bool training) {
  if (num_inputs() != 1) return call(std::vector<Tensor>{x}, training);
  throw InternalError(detail::str("layer '", name(), "' (", class_name(), ") does not implement call"));
}

Tensor Layer::call(const std::vector<Tensor>& xs, bool training) {
  GLIA_CHECK(xs.size() == 1, ValueError, "layer '", name(), "' (", class_name(), ") takes one input, got ", xs.size());
  return call(xs[0], training);
}

Config Layer::config() const {
  Config c;
  c["name"] = name_;
  c["trainable"] = trainable_;
  c["dtype"] = "float32";
  return c;
}

void Layer::ensure_built(const std::vector<Shape>& shapes) {
  if (name_.empty()) name_ = unique_name(class_name());
  if (!built_) {
    build(shapes);
    input_shapes_ = shapes;
    built_ = true;
    return;
  }
  // Later inputs must agree with the built shapes on rank and on the last (feature/channel) axis,
  // the axis that built weights depend on.
  if (shapes.size() != input_shapes_.size() || !input_shape_fixed()) return;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Shape &a = input_shapes_[i], &b = shapes[i];
    bool ok = a.size() == b.size() && (a.empty() || a.back() == b.back() || a.back() == -1);
    if (!ok && weights_.empty() && sublayers_.empty()) continue;  // weightless layers take any shape
    GLIA_CHECK(ok, ShapeError, "Input ", i, " of layer \"", name_, "\" (", class_name(),
               ") is incompatible with the layer: expected shape ", to_string(a), " (without the batch axis), got ",
               to_string(b));
  }
}

namespace {
/// Keras's autocast: floating inputs are computed in the layer's dtype (float32, the dtype of its
/// weights); integer inputs (Embedding's ids) pass unchanged.
Tensor autocast(const Tensor& x) {
  return x.defined() && is_floating(x.dtype()) && x.dtype() != DType::f32 ? x.to(DType::f32) : x;
}

std::vector<Shape> without_batch(const std::vector<Tensor>& xs) {
  std::vector<Shape> s;
  for (const Tensor& x : xs) {
    GLIA_CHECK(x.defined(), ValueError, "layer input is an undefined tensor");
    s.push_back(x.dim() == 0 ? Shape{} : Shape(x.shape().begin() + 1, x.shape().end()));
  }
  return s;
}
}  // namespace

Tensor Layer::prepare(const Tensor& x) {
  GLIA_CHECK(x.defined(), ValueError, "layer '", name_, "': input is an undefined tensor");
  GLIA_CHECK(num_inputs() == 1, ValueError, "layer '", name_.empty() ? class_name() : name_, "' (", class_name(),
             ") takes a list of at least two inputs, got one tensor");
  ensure_built(without_batch({x}));
  return autocast(x);
}

// The name scope tells graph nodes which layer made them (ONNX export names the layer in errors).
Tensor Layer::operator()(const Tensor& x, bool training) {
  graph::NameScope scope(name_);
  return call(prepare(x), training);
}

Tensor Layer::call_logits(const Tensor& x, bool training) {
  graph::NameScope scope(name_);
  return call_without_activation(prepare(x), training);
}

Tensor Layer::operator()(const std::vector<Tensor>& xs, bool training) {
  if (num_inputs() == 1) {
    GLIA_CHECK(xs.size() == 1, ValueError, "layer '", name_.empty() ? class_name() : name_, "' (", class_name(),
               ") takes one input, got ", xs.size());
    return (*this)(xs[0], training);
  }
  GLIA_CHECK(xs.size() >= 2, ValueError, "layer '", name_.empty() ? class_name() : name_, "' (", class_name(),
             ") takes at least two inputs, got ", xs.size());
  graph::NameScope scope(name_);
  ensure_built(without_batch(xs));
  std::vector<Tensor> cast;
  for (const Tensor& x : xs) cast.push_back(autocast(x));
  return call(cast, training);
}

Shape Layer::compute_output_shape(const std::vector<Shape>& input_shapes) {
  // Run once on a batch of one with unknown dims set to 1, in inference mode.
  no_grad g;
  std::vector<Tensor> xs;
  for (const Shape& s : input_shapes) {
    Shape full{1};
    for (int64_t d : s) full.push_back(d < 0 ? 1 : d);
    xs.push_back(zeros(full));
  }
  Tensor y = num_inputs() == 1 ? call(xs[0], false) : call(xs, false);
  Shape out = y.shape();
  if (!out.empty()) out[0] = -1;
  return out;
}

KerasTensor Layer::operator()(const KerasTensor& x) { return (*this)(std::vector<KerasTensor>{x}); }

KerasTensor Layer::operator()(const std::vector<KerasTensor>& xs) {
  GLIA_CHECK(!xs.empty(), ValueError, "layer call on an empty list of inputs");
  if (num_inputs() == 1)
    GLIA_CHECK(xs.size() == 1, ValueError, "layer '", name_.empty() ? class_name() : name_, "' (", class_name(),
               ") takes one input, got ", xs.size());
  else
    GLIA_CHECK(xs.size() >= 2, ValueError, "layer '", name_.empty() ? class_name() : name_, "' (", class_name(),
               ") takes at least two inputs, got ", xs.size());
  std::vector<Shape> shapes;
  for (auto& k : xs) {
    GLIA_CHECK(k.defined(), ValueError, "layer call on an undefined KerasTensor");
    shapes.push_back(Shape(k.shape().begin() + 1, k.shape().end()));
  }
  // Build from the symbolic shapes, then infer the output shape with a dummy batch of ones'
  // shape, using the input dtypes (integer ids for Embedding).
  ensure_built(shapes);
  Shape out;
  {
    no_grad g;
    std::vector<Tensor> dummies;
    for (auto& k : xs) {
      Shape full{1};
      for (size_t i = 1; i < k.shape().size(); ++i) full.push_back(k.shape()[i] < 0 ? 1 : k.shape()[i]);
      dummies.push_back(autocast(zeros(full, {.dtype = k.dtype()})));
    }
    Tensor y = num_inputs() == 1 ? call(dummies[0], false) : call(dummies, false);
    out = y.shape();
    if (!out.empty()) out[0] = -1;
    auto n = std::make_shared<KerasTensor::Node>();
    n->layer = shared_from_this();
    n->inputs = xs;
    n->shape = out;
    n->dtype = y.dtype();
    n->id = g_node_ids++;
    return KerasTensor(n);
  }
}

Variable& Layer::add_weight(const std::string& name, const Shape& shape, const initializers::InitializerPtr& init,
                            bool trainable, regularizers::RegularizerPtr regularizer) {
  GLIA_CHECK(init != nullptr, ValueError, "add_weight: weight '", name, "' of layer '", name_, "' has no initializer");
  auto v = std::make_unique<Variable>();
  v->name = name;
  {
    no_grad g;
    v->value = (*init)(shape, DType::f32);
  }
  v->trainable = trainable;
  v->regularizer = std::move(regularizer);
  if (trainable && trainable_) v->value.requires_grad_(true);
  weights_.push_back(std::move(v));
  return *weights_.back();
}

std::vector<Variable*> Layer::weights() {
  std::vector<Variable*> out;
  for (auto& w : weights_) out.push_back(w.get());
  for (auto& l : sublayers_)
    for (Variable* v : l->weights())
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);  // shared sublayers once
  return out;
}

bool Layer::to(Device d) {
  no_grad g;
  bool moved = false;
  for (Variable* v : weights()) {
    if (v->value.device() == d) continue;
    bool leaf = v->value.requires_grad();
    v->value = v->value.detach().to(d);
    if (leaf) v->value.requires_grad_(true);
    moved = true;
  }
  return moved;
}

std::vector<Variable*> Layer::trainable_weights() {
  std::vector<Variable*> out;
  if (!trainable_) return out;
  for (auto& w : weights_)
    if (w->trainable) out.push_back(w.get());
  for (auto& l : sublayers_)
    for (Variable* v : l->trainable_weights())
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  return out;
}

std::vector<Variable*> Layer::non_trainable_weights() {
  std::vector<Variable*> all = weights(), tr = trainable_weights(), out;
  for (Variable* v : all)
    if (std::find(tr.begin(), tr.end(), v) == tr.end()) out.push_back(v);
  return out;
}

std::vector<Tensor> Layer::get_weights() {
  std::vector<Tensor> out;
  for (Variable* v : weights()) out.push_back(v->value.detach().clone());
  return out;
}

void Layer::set_weights(const std::vector<Tensor>& values) {
  auto ws = weights();
  GLIA_CHECK(values.size() == ws.size(), ValueError, "set_weights: layer '", name_, "' has ", ws.size(),
             " weights, got ", values.size(), " values");
  for (size_t i = 0; i < ws.size(); ++i) ws[i]->assign(values[i]);
}

int64_t Layer::count_params() {
  int64_t n = 0;
  for (Variable* v : weights()) n += v->value.numel();
  return n;
}

Tensor Layer::regularization_loss() {
  Tensor total;
  for (Variable* v : weights()) {
    if (!v->regularizer) continue;
    Tensor p = (*v->regularizer)(v->value);
    total = total.defined() ? total + p : p;
  }
  return total.defined() ? total : zeros({});
}

void Layer::track_layer(LayerPtr layer) {
  GLIA_CHECK(layer != nullptr, ValueError, "track: null layer");
  GLIA_CHECK(layer.get() != this, ValueError, "track: a layer cannot contain itself");
  if (std::find(sublayers_.begin(), sublayers_.end(), layer) == sublayers_.end()) sublayers_.push_back(layer);
}

void Layer::untrack_layer(const LayerPtr& layer) {
  sublayers_.erase(std::remove(sublayers_.begin(), sublayers_.end(), layer), sublayers_.end());
}

void Layer::set_trainable(bool t) {
  trainable_ = t;
  for (auto& w : weights_)
    if (w->trainable) w->value.requires_grad_(t);
  for (auto& l : sublayers_) l->set_trainable(t);
}

// --- registry

namespace {
std::map<std::string, LayerFactory>& registry() {
  static std::map<std::string, LayerFactory> r;
  return r;
}
std::mutex& registry_mu() {
  static std::mutex m;
  return m;
}
}  // namespace

void register_layer(const std::string& class_name, LayerFactory factory) {
  std::lock_guard<std::mutex> g(registry_mu());
  registry()[class_name] = std::move(factory);
}

LayerPtr layer_from_config(const Config& config) {
  GLIA_CHECK(config.contains("class_name"), ValueError, "layer_from_config: the config has no class_name");
  std::string cls = config["class_name"].get<std::string>();
  LayerFactory f;
  {
    std::lock_guard<std::mutex> g(registry_mu());
    auto it = registry().find(cls);
    GLIA_CHECK(it != registry().end(), ValueError, "unknown layer class '", cls,
               "': register it with GLIA_REGISTER_LAYER(", cls, ") before loading");
    f = it->second;
  }
  Config c = config.contains("config") ? config["config"] : Config::object();
  LayerPtr l = f(c);
  if (c.contains("name")) l->set_name(c["name"].get<std::string>());
  if (c.contains("trainable") && !c["trainable"].get<bool>()) l->set_trainable(false);
  return l;
}

Config layer_to_config(const Layer& layer) {
  Config c;
  c["class_name"] = layer.class_name();
  c["config"] = layer.config();
  return c;
}

}  // namespace glia
