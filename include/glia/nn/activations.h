// Activations by name (keras.activations): "relu", "softmax", "gelu", ...
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "glia/core/tensor.h"

namespace glia::activations {

using Activation = std::function<Tensor(const Tensor&)>;

/// The activation named `name`; "linear" (or "") is the identity. Throws ValueError
/// listing the known names for an unknown one.
Activation get(const std::string& name);
std::vector<std::string> names();

Tensor linear(const Tensor& x);
Tensor swish(const Tensor& x);
Tensor hard_sigmoid(const Tensor& x);
Tensor softsign(const Tensor& x);

}  // namespace glia::activations
