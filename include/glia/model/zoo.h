// Reference models used by the command line, the examples and the benchmarks.
#pragma once

#include <memory>

#include "glia/model/model.h"

namespace glia::zoo {

/// Glia's default image classifier (`glia train`): two 3x3 convolutions with batch
/// normalization and max pooling, then dropout and a 128-unit dense layer; ~0.4M parameters
/// for 28x28x1 inputs.
std::shared_ptr<Sequential> default_cnn(const Shape& input_shape = {28, 28, 1}, int64_t classes = 10);

/// The CNN of the Keras CIFAR-10 tutorial: Conv2D(32) - MaxPool - Conv2D(64) - MaxPool - Conv2D(64)
/// - Flatten - Dense(64) - Dense(classes, softmax), all 3x3 "valid" convolutions with ReLU.
std::shared_ptr<Sequential> tutorial_cnn(const Shape& input_shape = {32, 32, 3}, int64_t classes = 10);

/// The tutorial MLP: Flatten - Dense(64, relu) - Dense(64, relu) - Dense(classes, softmax).
std::shared_ptr<Sequential> tutorial_mlp(const Shape& input_shape = {28, 28, 1}, int64_t classes = 10);

/// A ResNet-18-style CIFAR network (Functional API; the GPU benchmark's large model): a 3x3 conv
/// stem (64, no bias) + BN + ReLU, four stages of two BasicBlocks (64/128/256/512 filters; the first
/// block of stages 2-4 has stride 2 and a 1x1 conv + BN projection shortcut), global average
/// pooling and Dense(classes, softmax); ~11.2M parameters for 32x32x3 inputs.
std::shared_ptr<Model> resnet18_cifar(const Shape& input_shape = {32, 32, 3}, int64_t classes = 10);

}  // namespace glia::zoo
