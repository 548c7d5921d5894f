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

namespace {

KerasTensor conv_bn(const KerasTensor& x, int64_t filters, int64_t kernel, int64_t stride) {
  KerasTensor h = Conv2D(filters, kernel, {.strides = stride, .padding = "same", .use_bias = false})(x);
  return BatchNormalization()(h);
}

// conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (identity, or 1x1 conv + BN where the shape
// changes), then ReLU.
KerasTensor basic_block(const KerasTensor& x, int64_t filters, int64_t stride) {
  KerasTensor h = Activation("relu")(conv_bn(x, filters, 3, stride));
  h = conv_bn(h, filters, 3, 1);
  const bool project = stride != 1 || x.shape().back() != filters;
  KerasTensor shortcut = project ? conv_bn(x, filters, 1, stride) : x;
  return Activation("relu")(Add()({h, shortcut}));
}

}  // namespace

std::shared_ptr<Model> resnet18_cifar(const Shape& input_shape, int64_t classes) {
  KerasTensor in = Input(input_shape);
  KerasTensor h = Activation("relu")(conv_bn(in, 64, 3, 1));
  const int64_t filters[] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; ++stage) {
    h = basic_block(h, filters[stage], stage == 0 ? 1 : 2);
    h = basic_block(h, filters[stage], 1);
  }
  h = GlobalAveragePooling2D()(h);
  KerasTensor out = Dense(classes, {.activation = "softmax"})(h);
  return std::make_shared<Model>(in, out, "resnet18_cifar");
}

}  // namespace glia::zoo
