// Sequential: a stack of layers, built once its input shape is known.
#include <algorithm>

#include "glia/autograd/autograd.h"
#include "glia/model/model.h"
#include "glia/nn/layers.h"

namespace glia {

Sequential::Sequential(std::vector<LayerPtr> layers, std::string name) : Model(std::move(name)) {
  for (auto& l : layers) add(std::move(l));
}

void Sequential::add(LayerPtr layer) {
  GLIA_CHECK(layer != nullptr, ValueError, "Sequential.add: null layer");
  GLIA_CHECK(layer->num_inputs() == 1, ValueError, "Sequential.add: layer '", layer->name(), "' (", layer->class_name(),
             ") takes several inputs; use the Functional API");
  bool is_input = layer->class_name() == "InputLayer";
  GLIA_CHECK(!is_input || stack_.empty(), ValueError, "Sequential.add: an InputLayer can only come first");
  stack_.push_back(layer);
  if (!is_input) track_layer(layer);
  if (is_input) {
    auto* in = static_cast<layers::InputLayerImpl*>(layer.get());
    ensure_built({in->shape()});
  } else if (built()) {
    // Extend the known shapes through the new layer.
    Shape last = output_shapes_.empty() ? Shape() : output_shapes_.back();
    KerasTensor k = Input(Shape(last.begin() + 1, last.end()));
    KerasTensor out = (*layer)(k);
    output_shapes_.push_back(out.shape());
  }
}

void Sequential::pop() {
  // An InputLayer alone is not a layer to pop, as in Keras (it is not one of layers()).
  GLIA_CHECK(!stack_.empty() && stack_.back()->class_name() != "InputLayer", ValueError,
             "Sequential.pop: the model has no layers");
  LayerPtr last = stack_.back();
  stack_.pop_back();
  // The popped layer's weights leave the model, unless the layer is stacked twice.
  if (std::find(stack_.begin(), stack_.end(), last) == stack_.end()) untrack_layer(last);
  if (!output_shapes_.empty()) output_shapes_.pop_back();
}

void Sequential::build(const std::vector<Shape>& input_shapes) {
  GLIA_CHECK(input_shapes.size() == 1, ValueError, "Sequential: takes one input, got ", input_shapes.size());
  output_shapes_.clear();
  KerasTensor k = Input(input_shapes[0]);
  for (auto& l : stack_) {
    if (l->class_name() == "InputLayer") {
      output_shapes_.push_back(k.shape());
      continue;
    }
    k = (*l)(k);
    output_shapes_.push_back(k.shape());
  }
}

std::vector<Tensor> Sequential::forward(const std::vector<Tensor>& inputs, bool training, bool logits) {
  GLIA_CHECK(inputs.size() == 1, ValueError, "Sequential model \"", name(), "\" takes one input, got ", inputs.size());
  const Tensor& x0 = inputs[0];
  GLIA_CHECK(x0.defined() && x0.dim() >= 1, ValueError, "Sequential: the input needs a batch dimension, got ",
             x0.defined() ? to_string(x0.shape()) : "undefined");
  if (!built()) ensure_built({Shape(x0.shape().begin() + 1, x0.shape().end())});
  GLIA_CHECK(!stack_.empty(), ValueError, "Sequential model \"", name(), "\" has no layers");
  Tensor x = x0;
  for (size_t i = 0; i < stack_.size(); ++i) {
    Layer& l = *stack_[i];
    bool last = i + 1 == stack_.size();
    if (last && logits) {
      x = l.call_logits(x, training);
    } else {
      x = l(x, training);
    }
  }
  return {x};
}

Tensor Sequential::call(const Tensor& x, bool training) { return forward({x}, training)[0]; }

Config Sequential::config() const {
  Config c = Layer::config();
  Config ls = Config::array();
  for (auto& l : stack_) ls.push_back(layer_to_config(*l));
  c["layers"] = ls;
  // As Keras 3: the input shape it was built with, [null, ...], so that a model without an
  // InputLayer is built again (with its weights' shapes) when loaded.
  bool has_input = !stack_.empty() && stack_.front()->class_name() == "InputLayer";
  if (built() && !has_input && built_input_shapes().size() == 1) {
    Config shape = Config::array({nullptr});
    for (int64_t d : built_input_shapes()[0]) shape.push_back(d);
    c["build_input_shape"] = shape;
  }
  return c;
}

std::vector<LayerPtr> Sequential::layers() const {
  std::vector<LayerPtr> out;
  for (auto& l : stack_)
    if (l->class_name() != "InputLayer") out.push_back(l);
  return out;
}

}  // namespace glia
