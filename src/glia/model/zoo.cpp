#include "glia/model/zoo.h"

#include "glia/nn/layers.h"

namespace glia::zoo {

using namespace layers;

std::shared_ptr<Sequential> default_cnn(const Shape& input_shape, int64_t classes) {
  return std::make_shared<Sequential>(
      std::vector<LayerPtr>{
          InputLayer(input_shape),
          Conv2D(32, 3, {.padding = "same", .use_bias = false}),
          BatchNormalization(),
          Activation("relu"),
          MaxPooling2D(2),
          Conv2D(64, 3, {.padding = "same", .use_bias = false}),
          BatchNormalization(),
          Activation("relu"),
          MaxPooling2D(2),
          Flatten(),
          Dropout(0.3),
          Dense(128, {.activation = "relu"}),
          Dropout(0.3),
          Dense(classes, {.activation = "softmax"}),
      },
      "default_cnn");
}

std::shared_ptr<Sequential> tutorial_cnn(const Shape& input_shape, int64_t classes) {
  return std::make_shared<Sequential>(
      std::vector<LayerPtr>{
          InputLayer(input_shape),
          Conv2D(32, 3, {.activation = "relu"}),
          MaxPooling2D(2),
          Conv2D(64, 3, {.activation = "relu"}),
          MaxPooling2D(2),
          Conv2D(64, 3, {.activation = "relu"}),
          Flatten(),
          Dense(64, {.activation = "relu"}),
          Dense(classes, {.activation = "softmax"}),
      },
      "tutorial_cnn");
}

std::shared_ptr<Sequential> tutorial_mlp(const Shape& input_shape, int64_t classes) {
  return std::make_shared<Sequential>(
      std::vector<LayerPtr>{
          InputLayer(input_shape),
          Flatten(),
          Dense(64, {.activation = "relu"}),
          Dense(64, {.activation = "relu"}),
          Dense(classes, {.activation = "softmax"}),
      },
      "tutorial_mlp");
}

}  // namespace glia::zoo
