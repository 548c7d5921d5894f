// Eager vs compiled equivalence for every layer and for whole models (issue #4): the same
// model twice from identical weights, one with compiled steps (the default) and one with
// run_eagerly, must predict, train (SGD and Adam) and evaluate alike within float32 rounding
// (fused kernels round differently from the eager op-by-op ones).
#include <gmock/gmock.h>

#include <functional>

#include "model/model_testing.h"

namespace glia::testing {
namespace {

using namespace layers;

constexpr double kRtol = 1e-5, kAtol = 1e-6;

/// Inputs and targets for one model (several of each for Functional models with several).
struct Data {
  std::vector<Tensor> x, y;
};

struct LayerCase {
  std::string name;
  std::function<ModelPtr()> build;
  std::function<Data(int64_t n)> data;
  std::string loss = "mse";
  std::vector<MetricArg> metrics = {};
};

/// A loss that counts the calls it gets with symbolic predictions, i.e. while a step is traced:
/// the positive sign that a model runs compiled steps and not eagerly.
class TracingProbe : public losses::Loss {
 public:
  TracingProbe(losses::LossPtr inner, std::shared_ptr<int> traced)
      : Loss(inner->name(), inner->options()), inner_(std::move(inner)), traced_(std::move(traced)) {}
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override {
    if (y_pred.is_symbolic()) ++*traced_;
    return inner_->per_sample(y_true, y_pred);
  }
  std::string class_name() const override { return inner_->class_name(); }
  std::string pairs_with_activation() const override { return inner_->pairs_with_activation(); }
  losses::LossPtr with_logits() const override {
    losses::LossPtr l = inner_->with_logits();
    return l ? std::make_shared<TracingProbe>(l, traced_) : nullptr;
  }
  int traced() const { return *traced_; }

 private:
  losses::LossPtr inner_;
  std::shared_ptr<int> traced_;
};

std::shared_ptr<TracingProbe> probe(const std::string& loss) {
  return std::make_shared<TracingProbe>(losses::get(loss), std::make_shared<int>(0));
}

Tensor features(Shape s) { return rand(s, {.dtype = DType::f32}, -1.0, 1.0); }
Tensor labels(int64_t n, int64_t classes) { return randint(0, classes, {n}); }
Tensor targets(int64_t n, int64_t k) { return rand({n, k}, {.dtype = DType::f32}, -1.0, 1.0); }

/// x of shape [n, ...shape] and regression targets [n, k].
std::function<Data(int64_t)> regression(Shape shape, int64_t k) {
  return [shape, k](int64_t n) {
    Shape s = shape;
    s.insert(s.begin(), n);
    return Data{{features(s)}, {targets(n, k)}};
  };
}

std::function<Data(int64_t)> classification(Shape shape, int64_t classes) {
  return [shape, classes](int64_t n) {
    Shape s = shape;
    s.insert(s.begin(), n);
    return Data{{features(s)}, {labels(n, classes)}};
  };
}

ModelPtr sequential(std::vector<LayerPtr> ls) { return std::make_shared<Sequential>(std::move(ls)); }

optimizers::OptimizerPtr make_optimizer(const std::string& kind) {
  if (kind == "sgd") return std::make_shared<optimizers::SGD>(0.05, optimizers::SGDOptions{.momentum = 0.9});
  if (kind == "adam") return std::make_shared<optimizers::Adam>(0.01);
  if (kind == "rmsprop") return std::make_shared<optimizers::RMSprop>(0.01);
  if (kind == "adagrad") return std::make_shared<optimizers::Adagrad>(0.05);
  if (kind == "sgd_nesterov_clipped")
    return std::make_shared<optimizers::SGD>(
        0.05, optimizers::SGDOptions{.momentum = 0.9, .nesterov = true},
        optimizers::OptimizerOptions{.weight_decay = 0.01, .global_clipnorm = 0.5});
  if (kind == "adam_clipnorm")
    return std::make_shared<optimizers::Adam>(0.01, optimizers::AdamOptions{},
                                              optimizers::OptimizerOptions{.clipnorm = 0.1});
  if (kind == "adam_amsgrad_clipvalue")
    return std::make_shared<optimizers::Adam>(0.01, optimizers::AdamOptions{.amsgrad = true},
                                              optimizers::OptimizerOptions{.clipvalue = 0.05});
  return std::make_shared<optimizers::AdamW>(0.01);
}

::testing::AssertionResult same_within(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double rtol,
                                       double atol, const std::string& what) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << what << ": " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    auto r = all_close(a[i], b[i], rtol, atol);
    if (!r) return ::testing::AssertionFailure() << what << " " << i << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult same_logs(const Logs& a, const Logs& b, double rtol, const std::string& what) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << what << ": logs differ in keys";
  for (auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) return ::testing::AssertionFailure() << what << ": no '" << k << "' in eager logs";
    if (!(std::abs(v - it->second) <= kAtol + rtol * std::abs(it->second)))
      return ::testing::AssertionFailure() << what << " " << k << ": compiled " << v << " vs eager " << it->second;
  }
  return ::testing::AssertionSuccess();
}

/// Captures stderr while alive (released on any exit, so that a failing test leaves no capture).
class StderrCapture {
 public:
  StderrCapture() { ::testing::internal::CaptureStderr(); }
  ~StderrCapture() {
    if (!taken_) ::testing::internal::GetCapturedStderr();
  }
  std::string take() {
    taken_ = true;
    return ::testing::internal::GetCapturedStderr();
  }

 private:
  bool taken_ = false;
};

/// Builds the case twice with identical weights, compiled and eager, and compares predict,
/// train_on_batch (single-input models), fit and evaluate. The compiled model must really run
/// compiled steps: its loss sees symbolic tensors, and it does not fall back to eager execution
/// (which it reports on stderr).
void check_layer_case(const LayerCase& c, const std::string& opt) {
  const double rtol = kRtol;
  SCOPED_TRACE(c.name + " with " + opt);
  manual_seed(11);
  ModelPtr compiled = c.build();
  manual_seed(11);
  ModelPtr eager = c.build();
  manual_seed(12);
  // 6 rows: fit's batches of 4 end with a partial one (another input signature to trace).
  Data d = c.data(6), d2 = c.data(6);
  // Models that are built on first use get their weights there, from one seed.
  if (compiled->built()) {
    ASSERT_TRUE(same_weights(compiled->get_weights(), eager->get_weights()));
    eager->set_weights(compiled->get_weights());
  }
  auto compiled_loss = probe(c.loss), eager_loss = probe(c.loss);
  compiled->compile({.optimizer = make_optimizer(opt), .loss = compiled_loss, .metrics = c.metrics});
  eager->compile({.optimizer = make_optimizer(opt), .loss = eager_loss, .metrics = c.metrics, .run_eagerly = true});

  StderrCapture capture;
  std::vector<Logs> batch_logs[2];
  std::vector<double> history[2];
  std::vector<Tensor> pred[2], pred_after[2];
  Logs eval[2];
  std::vector<Tensor> weights_after_steps[2];
  for (int mode = 0; mode < 2; ++mode) {
    Model& m = mode == 0 ? *compiled : *eager;
    if (m.built()) pred[mode] = m.predict(d.x, {.batch_size = 8, .verbose = 0});
    if (d.x.size() == 1) {
      for (int step = 0; step < 2; ++step) {
        manual_seed(100 + static_cast<uint64_t>(step));
        const Data& b = step % 2 ? d2 : d;
        batch_logs[mode].push_back(m.train_on_batch(b.x[0], b.y[0]));
      }
      weights_after_steps[mode] = m.get_weights();
    }
    manual_seed(200);
    callbacks::History h = m.fit(d.x, d.y, {.epochs = 2, .batch_size = 4, .verbose = 0});
    history[mode] = h["loss"];
    manual_seed(300);
    eval[mode] = m.evaluate(d2.x, d2.y, {.batch_size = 8, .verbose = 0});
    pred_after[mode] = m.predict(d2.x, {.batch_size = 4, .verbose = 0});
  }
  std::string err = capture.take();
  EXPECT_GT(compiled_loss->traced(), 0) << "the compiled model never traced its steps";
  EXPECT_EQ(eager_loss->traced(), 0);
  EXPECT_THAT(err, ::testing::Not(::testing::HasSubstr("runs eagerly"))) << "the compiled model fell back: " << err;

  if (!pred[0].empty()) {
    EXPECT_TRUE(same_within(pred[0], pred[1], rtol, kAtol, "predict output"));
  }
  for (size_t i = 0; i < batch_logs[0].size(); ++i)
    EXPECT_TRUE(same_logs(batch_logs[0][i], batch_logs[1][i], rtol, "train_on_batch " + std::to_string(i)));
  if (!weights_after_steps[0].empty()) {
    EXPECT_TRUE(same_within(weights_after_steps[0], weights_after_steps[1], rtol, kAtol, "weight after 2 steps"));
  }
  ASSERT_EQ(history[0].size(), 2u);
  ASSERT_EQ(history[1].size(), 2u);
  for (size_t e = 0; e < 2; ++e)
    EXPECT_NEAR(history[0][e], history[1][e], kAtol + rtol * std::abs(history[1][e])) << "fit loss, epoch " << e;
  EXPECT_TRUE(same_within(compiled->get_weights(), eager->get_weights(), rtol, kAtol, "weight after fit"));
  EXPECT_TRUE(same_logs(eval[0], eval[1], rtol, "evaluate"));
  EXPECT_TRUE(same_within(pred_after[0], pred_after[1], rtol, kAtol, "predict output after fit"));
}

void check_layer_case_all_optimizers(const LayerCase& c) {
  for (const char* opt : {"sgd", "adam"}) check_layer_case(c, opt);
}

/// Models that convolve run with Adam only: the optimizer's part of the step is the same for every
/// layer (SGD is covered by the other cases), and small convolutions are what costs time here.
void check_convolutional_case(const LayerCase& c) { check_layer_case(c, "adam"); }

// --- core

TEST(GraphEquivalenceLayers, Dense) {
  check_layer_case_all_optimizers({"dense_mse",
                                   [] {
                                     return sequential({InputLayer({5}), Dense(4, {.activation = "relu"}), Dense(3)});
                                   },
                                   regression({5}, 3)});
  check_layer_case_all_optimizers(
      {"dense_softmax_sparse_ce",
       [] {
         return sequential({InputLayer({5}), Dense(6, {.activation = "tanh"}), Dense(3, {.activation = "softmax"})});
       },
       classification({5}, 3),
       "sparse_categorical_crossentropy",
       {"accuracy"}});
  check_layer_case_all_optimizers(
      {"dense_sigmoid_bce_regularized",
       [] {
         return sequential({InputLayer({5}),
                            Dense(4, {.activation = "gelu", .use_bias = false, .kernel_regularizer = "l2"}),
                            Dense(1, {.activation = "sigmoid", .bias_regularizer = "l1"})});
       },
       [](int64_t n) {
         return Data{{features({n, 5})}, {randint(0, 2, {n, 1}).to(DType::f32)}};
       },
       "binary_crossentropy",
       {"accuracy"}});
}

TEST(GraphEquivalenceLayers, DenseBuiltOnFirstUse) {
  // No input shape: the weights are made at the first step, from the generator (same seed).
  check_layer_case({"dense_unbuilt",
                    [] {
                      return sequential({Dense(4, {.activation = "relu"}), Dense(2)});
                    },
                    regression({3}, 2)},
                   "sgd");
}

// Weights per sample and per class, and validation (compiled test steps inside fit).
TEST(GraphEquivalenceLayers, FitWithWeightsAndValidation) {
  for (const char* opt : {"sgd", "adam"}) {
    SCOPED_TRACE(opt);
    manual_seed(11);
    auto build = [] {
      return sequential({InputLayer({5}), Dense(6, {.activation = "relu"}), Dense(3, {.activation = "softmax"})});
    };
    ModelPtr m[2] = {build(), build()};
    m[1]->set_weights(m[0]->get_weights());
    auto traced = probe("sparse_categorical_crossentropy");
    for (int mode = 0; mode < 2; ++mode)
      m[mode]->compile({.optimizer = make_optimizer(opt),
                        .loss = mode == 0 ? LossArg(traced) : LossArg("sparse_categorical_crossentropy"),
                        .metrics = {"accuracy"},
                        .run_eagerly = mode == 1});
    manual_seed(12);
    Tensor x = features({10, 5}), y = labels(10, 3), sw = rand({10}, {.dtype = DType::f32}, 0.5, 2.0);
    callbacks::History h[2];
    for (int mode = 0; mode < 2; ++mode) {
      manual_seed(200);
      h[mode] = m[mode]->fit(x, y,
                             {.epochs = 2,
                              .batch_size = 4,
                              .validation_split = 0.2,
                              .verbose = 0,
                              .class_weight = {{0, 1.0}, {1, 2.0}, {2, 0.5}}});
    }
    EXPECT_GT(traced->traced(), 0);
    for (const char* key : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
      ASSERT_EQ(h[0][key].size(), 2u) << key;
      for (size_t e = 0; e < 2; ++e)
        EXPECT_NEAR(h[0][key][e], h[1][key][e], kAtol + kRtol * std::abs(h[1][key][e])) << key;
    }
    for (int mode = 0; mode < 2; ++mode) {
      manual_seed(300);
      h[mode] = m[mode]->fit(x, y, {.epochs = 1, .batch_size = 5, .verbose = 0, .sample_weight = sw});
    }
    EXPECT_NEAR(h[0]["loss"][0], h[1]["loss"][0], kAtol + kRtol * std::abs(h[1]["loss"][0]));
    EXPECT_TRUE(same_within(m[0]->get_weights(), m[1]->get_weights(), kRtol, kAtol, "weight"));
    EXPECT_TRUE(same_logs(m[0]->evaluate(x, y, {.verbose = 0, .sample_weight = sw}),
                          m[1]->evaluate(x, y, {.verbose = 0, .sample_weight = sw}), kRtol, "evaluate"));
  }
}

// Frozen layers: no update for their weights, and a frozen BatchNormalization normalizes with
// its moving statistics (inference mode) even in training.
TEST(GraphEquivalenceLayers, FrozenLayers) {
  check_layer_case_all_optimizers({"frozen",
                                   [] {
                                     auto d = Dense(4);
                                     auto bn = BatchNormalization();
                                     d->set_trainable(false);
                                     bn->set_trainable(false);
                                     return sequential({InputLayer({5}), d, bn, Dense(2)});
                                   },
                                   regression({5}, 2)});
}

/// A subclassed model: call() decides the forward pass (here with a dropout between two layers).
class Towers : public Model {
 public:
  Towers() : Model("towers") {
    a_ = track(Dense(4, {.activation = "tanh"}));
    b_ = track(Dense(2));
  }
  Tensor call(const Tensor& x, bool training) override {
    return b_(dropout(a_(x, training), 0.25, training) + x.slice(1, 0, 4), training);
  }

 private:
  Dense a_ = nullptr, b_ = nullptr;
};

TEST(GraphEquivalenceLayers, SubclassedModel) {
  // Built by a first call. Built lazily inside the first step instead, the two modes would draw
  // the second layer's initial weights at different points of the random stream: the compiled
  // step builds the model first (an eager inference pass), the eager step draws the dropout
  // mask between the two layers' builds.
  check_layer_case_all_optimizers({"subclassed",
                                   [] {
                                     auto m = std::make_shared<Towers>();
                                     (*m)(zeros({1, 5}));
                                     return m;
                                   },
                                   regression({5}, 2)});
}

TEST(GraphEquivalenceLayers, OtherOptimizers) {
  LayerCase c{"dense_mse",
              [] {
                return sequential({InputLayer({5}), Dense(4, {.activation = "elu"}), Dense(3)});
              },
              regression({5}, 3)};
  check_layer_case(c, "rmsprop");
  check_layer_case(c, "adamw");
  check_layer_case(c, "adagrad");
  check_layer_case(c, "sgd_nesterov_clipped");
  check_layer_case(c, "adam_amsgrad_clipvalue");
  check_layer_case(c, "adam_clipnorm");
}

TEST(GraphEquivalenceLayers, Activation) {
  for (const char* a : {"relu", "sigmoid", "tanh", "gelu", "elu", "selu", "leaky_relu", "softplus", "softsign", "swish",
                        "hard_sigmoid", "exponential", "log_softmax", "softmax", "linear"})
    check_layer_case({std::string("activation_") + a,
                      [a] {
                        return sequential({InputLayer({4}), Dense(5), Activation(a), Dense(2)});
                      },
                      regression({4}, 2)},
                     "sgd");
}

// --- convolution and pooling

TEST(GraphEquivalenceLayers, Conv2D) {
  check_layer_case_all_optimizers({"conv2d",
                                   [] {
                                     return sequential({InputLayer({6, 6, 2}),
                                                        Conv2D(3, 3, {.padding = "same", .activation = "relu"}),
                                                        Conv2D(4, {2, 3}, {.strides = 2}), Flatten(), Dense(2)});
                                   },
                                   regression({6, 6, 2}, 2)});
  check_convolutional_case(
      {"conv2d_groups_dilation",
       [] {
         return sequential({InputLayer({7, 7, 4}), Conv2D(4, 3, {.dilation_rate = 2, .groups = 2}),
                            Conv2D(6, 2, {.padding = "same", .groups = 2, .activation = "relu", .use_bias = false}),
                            Flatten(), Dense(2)});
       },
       regression({7, 7, 4}, 2)});
}

TEST(GraphEquivalenceLayers, Conv1D) {
  check_convolutional_case({"conv1d",
                            [] {
                              return sequential(
                                  {InputLayer({8, 3}),
                                   Conv1D(4, 3, {.padding = "causal", .dilation_rate = 2, .activation = "relu"}),
                                   Conv1D(4, 2, {.strides = 2, .padding = "same", .groups = 2}), Flatten(), Dense(2)});
                            },
                            regression({8, 3}, 2)});
}

TEST(GraphEquivalenceLayers, DepthwiseConv2D) {
  check_convolutional_case({"depthwise",
                            [] {
                              return sequential(
                                  {InputLayer({5, 5, 3}),
                                   DepthwiseConv2D(3, {.padding = "same", .depth_multiplier = 2, .activation = "relu"}),
                                   GlobalAveragePooling2D(), Dense(2)});
                            },
                            regression({5, 5, 3}, 2)});
}

TEST(GraphEquivalenceLayers, Pooling) {
  check_convolutional_case({"pooling",
                            [] {
                              return sequential({InputLayer({6, 5, 2}), Conv2D(3, 3, {.padding = "same"}),
                                                 MaxPooling2D(2),
                                                 AveragePooling2D(2, {.strides = Size2(1), .padding = "same"}),
                                                 MaxPooling2D({2, 1}, {.strides = Size2(1, 2), .padding = "same"}),
                                                 GlobalAveragePooling2D(true), Flatten(), Dense(2)});
                            },
                            regression({6, 5, 2}, 2)});
}

// --- reshaping and merging

TEST(GraphEquivalenceLayers, FlattenReshapePermute) {
  check_layer_case_all_optimizers({"reshape_permute",
                                   [] {
                                     return sequential({InputLayer({4, 6}), Reshape({3, -1}), Permute({2, 1}), Dense(3),
                                                        Flatten(), Reshape({4, 6}), Dense(2), Flatten(), Dense(2)});
                                   },
                                   regression({4, 6}, 2)});
}

TEST(GraphEquivalenceLayers, MergeLayers) {
  auto build = [] {
    KerasTensor a = Input({4}), b = Input({4});
    KerasTensor da = Dense(3, {.activation = "tanh"})(a), db = Dense(3)(b);
    KerasTensor s = Add()(std::vector<KerasTensor>{da, db});
    KerasTensor m = Multiply()(std::vector<KerasTensor>{da, db, s});
    KerasTensor c = Concatenate()(std::vector<KerasTensor>{s, m, a});
    return std::make_shared<Model>(std::vector<KerasTensor>{a, b}, std::vector<KerasTensor>{Dense(2)(c)});
  };
  check_layer_case_all_optimizers({"merge", build, [](int64_t n) {
                                     return Data{{features({n, 4}), features({n, 4})}, {targets(n, 2)}};
                                   }});
}

TEST(GraphEquivalenceLayers, SeveralOutputs) {
  auto build = [] {
    KerasTensor x = Input({5});
    KerasTensor h = Dense(6, {.activation = "relu"})(x);
    auto probs = Dense(3, {.activation = "softmax"}), value = Dense(1);
    probs->set_name("probs");  // metric names carry the output layer's name
    value->set_name("value");
    return std::make_shared<Model>(std::vector<KerasTensor>{x}, std::vector<KerasTensor>{probs(h), value(h)});
  };
  for (const char* opt : {"sgd", "adam"}) {
    SCOPED_TRACE(opt);
    manual_seed(11);
    ModelPtr m[2] = {build(), build()};
    m[1]->set_weights(m[0]->get_weights());
    std::shared_ptr<TracingProbe> ce[2], mse[2];
    for (int mode = 0; mode < 2; ++mode) {
      ce[mode] = probe("sparse_categorical_crossentropy");
      mse[mode] = probe("mse");
      m[mode]->compile({.optimizer = make_optimizer(opt),
                        .losses = {ce[mode], mse[mode]},
                        .metrics = {"accuracy"},
                        .loss_weights = {1.0, 0.5},
                        .run_eagerly = mode == 1});
    }
    manual_seed(12);
    Data d{{features({8, 5})}, {labels(8, 3), targets(8, 1)}};
    std::vector<double> h[2];
    for (int mode = 0; mode < 2; ++mode) {
      manual_seed(200);
      h[mode] = m[mode]->fit(d.x, d.y, {.epochs = 2, .batch_size = 4, .verbose = 0})["loss"];
    }
    EXPECT_GT(ce[0]->traced(), 0);
    EXPECT_GT(mse[0]->traced(), 0);
    EXPECT_EQ(ce[1]->traced() + mse[1]->traced(), 0);
    ASSERT_EQ(h[0].size(), h[1].size());
    for (size_t e = 0; e < h[0].size(); ++e) EXPECT_NEAR(h[0][e], h[1][e], kAtol + kRtol * std::abs(h[1][e]));
    EXPECT_TRUE(same_within(m[0]->get_weights(), m[1]->get_weights(), kRtol, kAtol, "weight"));
    EXPECT_TRUE(same_logs(m[0]->evaluate(d.x, d.y, {.verbose = 0}), m[1]->evaluate(d.x, d.y, {.verbose = 0}), kRtol,
                          "evaluate"));
    EXPECT_TRUE(
        same_within(m[0]->predict(d.x, {.verbose = 0}), m[1]->predict(d.x, {.verbose = 0}), kRtol, kAtol, "predict"));
  }
}

// --- normalization and regularization

TEST(GraphEquivalenceLayers, BatchNormalization) {
  // The moving statistics are weights: check_layer_case compares them after every phase.
  check_convolutional_case({"batch_norm_conv",
                            [] {
                              return sequential({InputLayer({4, 4, 2}),
                                                 Conv2D(3, 3, {.padding = "same", .use_bias = false}),
                                                 BatchNormalization(), Activation("relu"), Flatten(), Dense(2)});
                            },
                            regression({4, 4, 2}, 2)});
  check_layer_case_all_optimizers(
      {"batch_norm_dense",
       [] {
         return sequential({InputLayer({5}), Dense(4),
                            BatchNormalization({.momentum = 0.8, .epsilon = 1e-4, .center = false}), Dense(2)});
       },
       regression({5}, 2)});
}

TEST(GraphEquivalenceLayers, BatchNormalizationMovingStatisticsMove) {
  // Guard against both modes agreeing because neither updates the moving statistics.
  manual_seed(11);
  auto bn = BatchNormalization({.momentum = 0.5});
  ModelPtr m = sequential({InputLayer({3}), bn});
  m->compile({.optimizer = make_optimizer("sgd"), .loss = "mse"});
  Tensor x = features({6, 3}) * 3.0 + 2.0;
  m->train_on_batch(x, targets(6, 3));
  Tensor mean = bn->moving_mean->value, var = bn->moving_variance->value;
  // After one step with momentum 0.5 from (0, 1): half the batch statistics (unbiased variance).
  auto xv = values(x);
  for (int64_t c = 0; c < 3; ++c) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < 6; ++i) s += xv[static_cast<size_t>(i * 3 + c)];
    double mu = s / 6;
    for (int64_t i = 0; i < 6; ++i) ss += std::pow(xv[static_cast<size_t>(i * 3 + c)] - mu, 2);
    EXPECT_NEAR(mean.at<float>({c}), 0.5 * mu, 1e-5);
    EXPECT_NEAR(var.at<float>({c}), 0.5 + 0.5 * ss / 5, 1e-5);
  }
}

TEST(GraphEquivalenceLayers, LayerNormalization) {
  check_layer_case_all_optimizers({"layer_norm",
                                   [] {
                                     return sequential({InputLayer({3, 4}), LayerNormalization(), Dense(3),
                                                        LayerNormalization({.epsilon = 1e-5, .center = false}),
                                                        Flatten(), Dense(2)});
                                   },
                                   regression({3, 4}, 2)});
}

TEST(GraphEquivalenceLayers, Dropout) {
  // Masks come from the generator at run time in both modes: seeded alike, they are the same.
  check_layer_case_all_optimizers({"dropout",
                                   [] {
                                     return sequential({InputLayer({6}), Dense(8, {.activation = "relu"}), Dropout(0.5),
                                                        Dense(4), Dropout(0.25), Dense(2)});
                                   },
                                   regression({6}, 2)});
}

TEST(GraphEquivalenceLayers, Embedding) {
  check_layer_case_all_optimizers(
      {"embedding",
       [] {
         return sequential({InputLayer({5}, DType::i64), Embedding(10, 4), Flatten(), Dense(2)});
       },
       [](int64_t n) {
         return Data{{randint(0, 10, {n, 5})}, {targets(n, 2)}};
       }});
}

TEST(GraphEquivalenceLayers, Rescaling) {
  check_layer_case_all_optimizers({"rescaling",
                                   [] {
                                     return sequential({InputLayer({4}), Rescaling(0.5, 0.1), Dense(2)});
                                   },
                                   regression({4}, 2)});
}

TEST(GraphEquivalenceLayers, RandomAugmentation) {
  check_convolutional_case(
      {"augmentation",
       [] {
         return sequential({InputLayer({4, 5, 1}), RandomFlip(), RandomTranslation(0.3, 0.2), RandomFlip("vertical"),
                            RandomTranslation(0.2, 0.3, {.fill_mode = "constant"}), Conv2D(2, 3), Flatten(), Dense(2)});
       },
       regression({4, 5, 1}, 2)});
}

// --- whole models

void check_zoo_model(const std::shared_ptr<Sequential>& a, const std::shared_ptr<Sequential>& b, const Data& d) {
  b->set_weights(a->get_weights());
  auto compiled_loss = probe("sparse_categorical_crossentropy");
  a->compile({.optimizer = make_optimizer("adam"), .loss = compiled_loss, .metrics = {"accuracy"}});
  b->compile({.optimizer = make_optimizer("adam"),
              .loss = "sparse_categorical_crossentropy",
              .metrics = {"accuracy"},
              .run_eagerly = true});
  std::vector<double> h[2];
  for (int mode = 0; mode < 2; ++mode) {
    manual_seed(5);
    h[mode] = (mode == 0 ? a : b)->fit(d.x, d.y, {.epochs = 2, .batch_size = 8, .verbose = 0})["loss"];
  }
  EXPECT_GT(compiled_loss->traced(), 0);
  ASSERT_EQ(h[0].size(), 2u);
  ASSERT_EQ(h[1].size(), 2u);
  for (size_t e = 0; e < 2; ++e) EXPECT_NEAR(h[0][e], h[1][e], 1e-4 * std::abs(h[1][e])) << "epoch " << e;
  EXPECT_TRUE(same_within(a->get_weights(), b->get_weights(), 1e-4, 1e-5, "weight"));
}

TEST(GraphEquivalenceModels, TutorialCnn) {
  manual_seed(3);
  auto a = zoo::tutorial_cnn({28, 28, 1}), b = zoo::tutorial_cnn({28, 28, 1});
  check_zoo_model(a, b, Data{{features({16, 28, 28, 1})}, {labels(16, 10)}});
}

TEST(GraphEquivalenceModels, TutorialMlp) {
  manual_seed(3);
  auto a = zoo::tutorial_mlp({28, 28, 1}), b = zoo::tutorial_mlp({28, 28, 1});
  check_zoo_model(a, b, Data{{features({32, 28, 28, 1})}, {labels(32, 10)}});
}

}  // namespace
}  // namespace glia::testing
