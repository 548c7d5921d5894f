#include "glia/nn/activations.h"

#include <map>

#include "glia/ops/functions.h"

namespace glia::activations {

Tensor linear(const Tensor& x) { return x; }
Tensor swish(const Tensor& x) { return silu(x); }
Tensor hard_sigmoid(const Tensor& x) { return clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0); }
Tensor softsign(const Tensor& x) { return x / (abs(x) + 1.0); }

namespace {
const std::map<std::string, Activation>& table() {
  static const std::map<std::string, Activation> t = {
      {"linear", linear},
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"relu6", [](const Tensor& x) { return clamp(x, 0.0, 6.0); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"softmax", [](const Tensor& x) { return softmax(x, -1); }},
      {"log_softmax", [](const Tensor& x) { return log_softmax(x, -1); }},
      {"gelu", [](const Tensor& x) { return gelu(x, false); }},
      {"elu", [](const Tensor& x) { return elu(x); }},
      {"selu",
       [](const Tensor& x) {
         const double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
         return elu(x, alpha) * scale;
       }},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); }},  // Keras's default slope
      {"softplus", [](const Tensor& x) { return softplus(x); }},
      {"softsign", softsign},
      {"silu", swish},
      {"swish", swish},
      {"hard_sigmoid", hard_sigmoid},
      {"exponential", [](const Tensor& x) { return exp(x); }},
  };
  return t;
}
}  // namespace

Activation get(const std::string& name) {
  if (name.empty()) return linear;
  auto it = table().find(name);
  if (it != table().end()) return it->second;
  std::string known;
  for (auto& [k, v] : table()) known += (known.empty() ? "" : ", ") + k;
  throw ValueError("unknown activation '" + name + "': expected one of " + known);
}

std::vector<std::string> names() {
  std::vector<std::string> n;
  for (auto& [k, v] : table()) n.push_back(k);
  return n;
}

}  // namespace glia::activations
