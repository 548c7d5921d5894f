#include "glia/nn/initializers.h"

#include <cmath>

#include "glia/autograd/autograd.h"
#include "glia/ops/functions.h"

namespace glia::initializers {

std::pair<double, double> compute_fans(const Shape& s) {
  if (s.empty()) return {1, 1};
  if (s.size() == 1) return {static_cast<double>(s[0]), static_cast<double>(s[0])};
  if (s.size() == 2) return {static_cast<double>(s[0]), static_cast<double>(s[1])};
  double receptive = 1;
  for (size_t i = 0; i + 2 < s.size(); ++i) receptive *= static_cast<double>(s[i]);
  return {static_cast<double>(s[s.size() - 2]) * receptive, static_cast<double>(s.back()) * receptive};
}

Tensor Zeros::operator()(const Shape& shape, DType dtype) const { return zeros(shape, {.dtype = dtype}); }
Tensor Ones::operator()(const Shape& shape, DType dtype) const { return ones(shape, {.dtype = dtype}); }
Tensor Constant::operator()(const Shape& shape, DType dtype) const { return full(shape, value_, {.dtype = dtype}); }
Tensor RandomNormal::operator()(const Shape& shape, DType dtype) const {
  return randn(shape, {.dtype = dtype}, mean_, stddev_);
}
Tensor RandomUniform::operator()(const Shape& shape, DType dtype) const {
  return rand(shape, {.dtype = dtype}, min_, max_);
}

VarianceScaling::VarianceScaling(double scale, std::string mode, std::string distribution, std::string class_name)
    : scale_(scale),
      mode_(std::move(mode)),
      distribution_(std::move(distribution)),
      class_name_(std::move(class_name)) {
  GLIA_CHECK(scale_ > 0, ValueError, "VarianceScaling: scale must be positive, got ", scale_);
  GLIA_CHECK(mode_ == "fan_in" || mode_ == "fan_out" || mode_ == "fan_avg", ValueError,
             "VarianceScaling: mode must be fan_in, fan_out or fan_avg, got '", mode_, "'");
  GLIA_CHECK(distribution_ == "truncated_normal" || distribution_ == "untruncated_normal" || distribution_ == "uniform",
             ValueError, "VarianceScaling: distribution must be truncated_normal, untruncated_normal or uniform, got '",
             distribution_, "'");
}

Tensor VarianceScaling::operator()(const Shape& shape, DType dtype) const {
  auto [fan_in, fan_out] = compute_fans(shape);
  double n = mode_ == "fan_in" ? fan_in : mode_ == "fan_out" ? fan_out : (fan_in + fan_out) / 2;
  double scale = scale_ / std::max(1.0, n);
  no_grad g;
  if (distribution_ == "uniform") {
    double limit = std::sqrt(3.0 * scale);
    return rand(shape, {.dtype = dtype}, -limit, limit);
  }
  if (distribution_ == "untruncated_normal") return randn(shape, {.dtype = dtype}, 0.0, std::sqrt(scale));
  // Truncated at two standard deviations; 0.8796... is the stddev of a unit normal truncated so.
  double stddev = std::sqrt(scale) / 0.87962566103423978;
  Tensor t = randn(shape, {.dtype = DType::f64});
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i)
    while (std::abs(p[i]) > 2.0) p[i] = randn({1}, {.dtype = DType::f64}).item<double>();
  return (t * stddev).to(dtype);
}

Config VarianceScaling::config() const { return {{"scale", scale_}, {"mode", mode_}, {"distribution", distribution_}}; }

InitializerPtr glorot_uniform() {
  return std::make_shared<VarianceScaling>(1.0, "fan_avg", "uniform", "GlorotUniform");
}
InitializerPtr glorot_normal() {
  return std::make_shared<VarianceScaling>(1.0, "fan_avg", "truncated_normal", "GlorotNormal");
}
InitializerPtr he_normal() { return std::make_shared<VarianceScaling>(2.0, "fan_in", "truncated_normal", "HeNormal"); }
InitializerPtr he_uniform() { return std::make_shared<VarianceScaling>(2.0, "fan_in", "uniform", "HeUniform"); }
InitializerPtr lecun_normal() {
  return std::make_shared<VarianceScaling>(1.0, "fan_in", "truncated_normal", "LecunNormal");
}
InitializerPtr lecun_uniform() { return std::make_shared<VarianceScaling>(1.0, "fan_in", "uniform", "LecunUniform"); }

InitializerPtr get(const std::string& name) {
  if (name == "glorot_uniform" || name == "GlorotUniform") return glorot_uniform();
  if (name == "glorot_normal" || name == "GlorotNormal") return glorot_normal();
  if (name == "he_normal" || name == "HeNormal") return he_normal();
  if (name == "he_uniform" || name == "HeUniform") return he_uniform();
  if (name == "lecun_normal" || name == "LecunNormal") return lecun_normal();
  if (name == "lecun_uniform" || name == "LecunUniform") return lecun_uniform();
  if (name == "zeros" || name == "Zeros") return std::make_shared<Zeros>();
  if (name == "ones" || name == "Ones") return std::make_shared<Ones>();
  if (name == "random_normal" || name == "normal" || name == "RandomNormal") return std::make_shared<RandomNormal>();
  if (name == "random_uniform" || name == "uniform" || name == "RandomUniform")
    return std::make_shared<RandomUniform>();
  throw ValueError("unknown initializer '" + name +
                   "': expected one of glorot_uniform, glorot_normal, he_normal, he_uniform, lecun_normal, "
                   "lecun_uniform, zeros, ones, random_normal, random_uniform");
}

InitializerPtr from_config(const Config& c) {
  std::string cls = c.at("class_name").get<std::string>();
  const Config& a = c.contains("config") ? c["config"] : Config::object();
  auto num = [&](const char* k, double d) { return a.contains(k) ? a[k].get<double>() : d; };
  auto str = [&](const char* k, const char* d) { return a.contains(k) ? a[k].get<std::string>() : std::string(d); };
  if (cls == "Constant") return std::make_shared<Constant>(num("value", 0.0));
  if (cls == "RandomNormal") return std::make_shared<RandomNormal>(num("mean", 0.0), num("stddev", 0.05));
  if (cls == "RandomUniform") return std::make_shared<RandomUniform>(num("minval", -0.05), num("maxval", 0.05));
  if (cls == "VarianceScaling" || cls == "GlorotUniform" || cls == "GlorotNormal" || cls == "HeNormal" ||
      cls == "HeUniform" || cls == "LecunNormal" || cls == "LecunUniform") {
    if (!a.contains("scale")) return get(cls);
    return std::make_shared<VarianceScaling>(num("scale", 1.0), str("mode", "fan_in"),
                                             str("distribution", "truncated_normal"), cls);
  }
  return get(cls);
}

Config to_config(const InitializerPtr& init) {
  return {{"class_name", init->class_name()}, {"config", init->config()}};
}

}  // namespace glia::initializers
