// Helpers for the model tests: small synthetic data sets, plain-double references for
// Dense layers and cross-entropy, bit-exact weight comparison, and probe layers and
// metrics that let a test see or script what fit does.
#pragma once

#include <gmock/gmock.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "testing.h"

namespace glia::testing {

struct XY {
  Tensor x, y;
};

/// Two Gaussian blobs (unit variance) whose means are `sep` apart along (1, 1, ..., 1):
/// linearly separable up to a Bayes error of Phi(-sep / 2). Labels int64 in {0, 1}, balanced.
inline XY blobs(int64_t n, int64_t features, uint32_t seed, double sep = 6.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * features));
  std::vector<int64_t> y(static_cast<size_t>(n));
  double shift = sep / 2 / std::sqrt(static_cast<double>(features));
  for (int64_t i = 0; i < n; ++i) {
    int64_t label = (i * 7919 + seed) % 2;
    y[static_cast<size_t>(i)] = label;
    for (int64_t j = 0; j < features; ++j)
      x[static_cast<size_t>(i * features + j)] = nd(gen) + static_cast<float>(label ? shift : -shift);
  }
  return {tensor(x, {n, features}), tensor(y, {n})};
}

/// Random float32 features in [-1, 1) and int64 labels in [0, classes), from std::mt19937.
inline XY random_classification(int64_t n, int64_t features, int64_t classes, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * features));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (auto& v : x) v = ud(gen);
  for (auto& v : y) v = static_cast<int64_t>(gen() % static_cast<uint32_t>(classes));
  return {tensor(x, {n, features}), tensor(y, {n})};
}

/// x @ kernel + bias in double for x [n, in], kernel [in, out], bias [out]; row-major result.
inline std::vector<double> dense_ref(const std::vector<double>& x, int64_t n, const Tensor& kernel,
                                     const Tensor& bias) {
  auto k = values(kernel), b = values(bias);
  int64_t in = kernel.shape()[0], out = kernel.shape()[1];
  std::vector<double> y(static_cast<size_t>(n * out));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[static_cast<size_t>(o)];
      for (int64_t j = 0; j < in; ++j) s += x[static_cast<size_t>(i * in + j)] * k[static_cast<size_t>(j * out + o)];
      y[static_cast<size_t>(i * out + o)] = s;
    }
  return y;
}

inline std::vector<double> relu_ref(std::vector<double> v) {
  for (auto& e : v) e = std::max(e, 0.0);
  return v;
}

inline std::vector<double> softmax_ref(const std::vector<double>& z, int64_t n, int64_t c) {
  std::vector<double> p(z.size());
  for (int64_t i = 0; i < n; ++i) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < c; ++j) m = std::max(m, z[static_cast<size_t>(i * c + j)]);
    for (int64_t j = 0; j < c; ++j) s += std::exp(z[static_cast<size_t>(i * c + j)] - m);
    for (int64_t j = 0; j < c; ++j)
      p[static_cast<size_t>(i * c + j)] = std::exp(z[static_cast<size_t>(i * c + j)] - m) / s;
  }
  return p;
}

/// Per-sample cross-entropy from probabilities, clipped to [1e-7, 1 - 1e-7] as Keras does.
inline std::vector<double> sparse_ce_ref(const std::vector<double>& p, const std::vector<double>& labels, int64_t c) {
  std::vector<double> l(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    double q = p[i * static_cast<size_t>(c) + static_cast<size_t>(labels[i])];
    q = std::min(std::max(q, 1e-7), 1 - 1e-7);
    l[i] = -std::log(q);
  }
  return l;
}

/// Keras's sum_over_batch_size: sum(w * l) / batch size.
inline double weighted_mean_ref(const std::vector<double>& l, const std::vector<double>& w = {}) {
  double s = 0;
  for (size_t i = 0; i < l.size(); ++i) s += l[i] * (w.empty() ? 1.0 : w[i]);
  return s / static_cast<double>(l.size());
}

/// Bit-for-bit equality of two lists of weights.
inline ::testing::AssertionResult same_weights(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " weights";
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].shape() != b[i].shape())
      return ::testing::AssertionFailure()
             << "weight " << i << " shapes " << to_string(a[i].shape()) << " vs " << to_string(b[i].shape());
    if (values(a[i]) != values(b[i])) return ::testing::AssertionFailure() << "weight " << i << " differs";
  }
  return ::testing::AssertionSuccess();
}

/// A pass-through layer that records, per call, the training flag and the first feature of
/// every row (tests put the row number there to see the order and the split of the data).
class ProbeImpl : public Layer {
 public:
  ProbeImpl() : Layer("probe") {}
  std::string class_name() const override { return "Probe"; }
  Tensor call(const Tensor& x, bool training) override {
    calls.push_back({training, values(x.select(-1, 0))});
    return x;
  }
  struct Call {
    bool training;
    std::vector<double> ids;
  };
  std::vector<Call> calls;
  /// The row ids seen in calls with this training flag, in order.
  std::vector<double> ids(bool training) const {
    std::vector<double> out;
    for (auto& c : calls)
      if (c.training == training) out.insert(out.end(), c.ids.begin(), c.ids.end());
    return out;
  }
};

/// A metric whose value at the end of epoch e is script[e] (the epoch set by the test through
/// `epoch`), for driving EarlyStopping and ReduceLROnPlateau exactly.
class ScriptedMetric : public metrics::Metric {
 public:
  ScriptedMetric(std::string name, std::vector<double> script, std::shared_ptr<int64_t> epoch)
      : Metric(std::move(name)), script_(std::move(script)), epoch_(std::move(epoch)) {}
  void update_state(const Tensor&, const Tensor&, const Tensor&) override {}
  double result() const override {
    size_t e = static_cast<size_t>(*epoch_);
    return e < script_.size() ? script_[e] : script_.back();
  }
  void reset_state() override {}
  std::string class_name() const override { return "ScriptedMetric"; }

 private:
  std::vector<double> script_;
  std::shared_ptr<int64_t> epoch_;
};

}  // namespace glia::testing
