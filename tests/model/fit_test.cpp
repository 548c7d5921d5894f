// compile / fit / evaluate / predict / train_on_batch / test_on_batch: that learning works,
// the History, validation (split and data) against evaluate(), data order, initial_epoch,
// class and sample weights against hand computations, frozen layers, the logits path for
// softmax / sigmoid outputs, how "accuracy" resolves, multi-output models and repeatability.
#include <numeric>

#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

std::shared_ptr<Sequential> mlp(int64_t in, int64_t hidden, int64_t classes, const std::string& out_act = "softmax") {
  return std::make_shared<Sequential>(std::vector<LayerPtr>{layers::InputLayer({in}),
                                                            layers::Dense(hidden, {.activation = "relu"}),
                                                            layers::Dense(classes, {.activation = out_act})});
}

double accuracy_ref(const Tensor& probs, const Tensor& labels) {
  auto p = values(probs), y = values(labels);
  int64_t c = probs.shape()[1];
  double hits = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    size_t best = 0;
    for (size_t j = 1; j < static_cast<size_t>(c); ++j)
      if (p[i * static_cast<size_t>(c) + j] > p[i * static_cast<size_t>(c) + best]) best = j;
    hits += best == static_cast<size_t>(y[i]) ? 1 : 0;
  }
  return hits / static_cast<double>(y.size());
}

/// Features [n, 2] whose first column is the row number (for ProbeImpl), labels in {0, 1}.
XY numbered(int64_t n) {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    x.push_back(static_cast<float>(i % 3) - 1.0f);
    y.push_back(i % 2);
  }
  return {tensor(x, {n, 2}), tensor(y, {n})};
}

std::vector<double> iota(int64_t from, int64_t to) {
  std::vector<double> v;
  for (int64_t i = from; i < to; ++i) v.push_back(static_cast<double>(i));
  return v;
}

// --- compile

TEST(ModelCompile, NamesAndObjects) {
  auto m = mlp(4, 8, 3);
  EXPECT_FALSE(m->compiled());
  m->compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  EXPECT_TRUE(m->compiled());
  EXPECT_EQ(m->optimizer()->class_name(), "Adam");
  ASSERT_EQ(m->losses().size(), 1u);
  EXPECT_EQ(m->losses()[0]->class_name(), "SparseCategoricalCrossentropy");

  auto opt = std::make_shared<optimizers::SGD>(0.05);
  auto loss = std::make_shared<losses::MeanSquaredError>();
  auto mae = std::make_shared<metrics::MeanAbsoluteError>();
  auto r = mlp(4, 8, 1, "linear");
  r->compile({.optimizer = opt, .loss = loss, .metrics = {mae, "mse"}});
  EXPECT_EQ(r->optimizer(), opt);
  EXPECT_EQ(r->losses()[0], loss);
  XY d = random_classification(8, 4, 2, 5);
  Tensor y = d.y.to(DType::f32).reshape({8, 1});
  Logs l = r->test_on_batch(d.x, y);
  ASSERT_EQ(r->metrics().size(), 2u);
  EXPECT_EQ(r->metrics()[0], mae);
  EXPECT_EQ(r->metrics()[1]->class_name(), "MeanSquaredError");
  // Keras logs metrics under their names.
  EXPECT_EQ(l.count("mean_absolute_error"), 1u);
  EXPECT_EQ(l.count("mse"), 1u) << "a metric given by name logs under that name, as Keras";
  EXPECT_NEAR(l.at("mse"), l.at("loss"), 1e-6);
  auto p = values(r->predict(d.x, {.verbose = 0})), t = values(y);
  double abs_err = 0;
  for (size_t i = 0; i < p.size(); ++i) abs_err += std::abs(p[i] - t[i]);
  EXPECT_NEAR(l.at("mean_absolute_error"), abs_err / 8, 1e-6);
}

// --- learning

TEST(ModelFit, MlpLearnsSeparableClasses) {
  manual_seed(1);
  XY train = blobs(400, 4, 1), test = blobs(200, 4, 2);
  auto m = mlp(4, 16, 2);
  m->compile(std::make_shared<optimizers::Adam>(0.01), "sparse_categorical_crossentropy", {"accuracy"});
  auto h = m->fit(train.x, train.y, {.epochs = 8, .batch_size = 32, .verbose = 0});
  EXPECT_EQ(h.epochs, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  ASSERT_EQ(h.logs.size(), 8u);
  for (auto& l : h.logs) {
    EXPECT_EQ(l.size(), 2u);
    EXPECT_EQ(l.count("loss"), 1u);
    EXPECT_EQ(l.count("accuracy"), 1u);
  }
  EXPECT_LT(h["loss"].back(), h["loss"].front());
  EXPECT_GT(h["accuracy"].back(), 0.95);
  Logs e = m->evaluate(test.x, test.y, {.verbose = 0});
  EXPECT_GT(e.at("accuracy"), 0.95);
  EXPECT_NEAR(e.at("accuracy"), accuracy_ref(m->predict(test.x, {.verbose = 0}), test.y), 1e-9);
}

TEST(ModelFit, LearnsFromADataset) {
  manual_seed(2);
  XY train = blobs(400, 4, 3), test = blobs(200, 4, 4);
  auto m = mlp(4, 16, 2);
  m->compile(std::make_shared<optimizers::Adam>(0.01), "sparse_categorical_crossentropy", {"accuracy"});
  auto ds = data::Dataset::from_tensors({train.x, train.y}).shuffle(400).batch(32);
  int64_t steps = -1;
  auto cb = std::make_shared<callbacks::LambdaCallback>();
  cb->on_train_begin_fn = [&](const Logs&) { steps = cb->params.at("steps"); };
  auto h = m->fit(ds, {.epochs = 8, .callbacks = {cb}, .verbose = 0});
  EXPECT_EQ(steps, 13);
  EXPECT_EQ(h.logs.size(), 8u);
  EXPECT_GT(m->evaluate(data::Dataset::from_tensors({test.x, test.y}).batch(50), {.verbose = 0}).at("accuracy"), 0.95);
}

TEST(ModelFit, RegressionReachesLowMse) {
  manual_seed(3);
  // y = 1.5 x0 - 2 x1 + 0.5 x2 + 0.25: exactly what a Dense(1) can represent.
  Tensor x = uniform({256, 3}, -1, 1, DType::f32);
  auto xv = values(x);
  std::vector<float> yv;
  for (int i = 0; i < 256; ++i)
    yv.push_back(static_cast<float>(1.5 * xv[static_cast<size_t>(3 * i)] - 2 * xv[static_cast<size_t>(3 * i + 1)] +
                                    0.5 * xv[static_cast<size_t>(3 * i + 2)] + 0.25));
  Tensor y = tensor(yv, {256, 1});
  layers::Dense d(1);
  Sequential m({layers::InputLayer({3}), d});
  m.compile(std::make_shared<optimizers::SGD>(0.2), "mse", {"mae"});
  auto h = m.fit(x, y, {.epochs = 40, .batch_size = 16, .verbose = 0});
  double mse = m.evaluate(x, y, {.verbose = 0}).at("loss");
  EXPECT_LT(mse, 1e-5);
  EXPECT_LT(h["mae"].back(), 0.01);
  EXPECT_TRUE(all_close(d->kernel->value.reshape({3}).to(DType::f64), std::vector<double>{1.5, -2, 0.5}, 0, 1e-2));
  EXPECT_NEAR(d->bias->value.item<double>(), 0.25, 1e-2);

  // A small MLP on a non-linear target gets well under the target's variance.
  Tensor x2 = uniform({512, 2}, -1, 1, DType::f32);
  auto x2v = values(x2);
  std::vector<float> y2;
  double mean = 0, var = 0;
  for (int i = 0; i < 512; ++i)
    y2.push_back(static_cast<float>(x2v[static_cast<size_t>(2 * i)] * x2v[static_cast<size_t>(2 * i + 1)] +
                                    std::sin(2 * x2v[static_cast<size_t>(2 * i)])));
  for (float v : y2) mean += v / 512.0;
  for (float v : y2) var += (v - mean) * (v - mean) / 512.0;
  Sequential net({layers::InputLayer({2}), layers::Dense(32, {.activation = "tanh"}), layers::Dense(1)});
  net.compile(std::make_shared<optimizers::Adam>(0.01), "mse");
  net.fit(x2, tensor(y2, {512, 1}), {.epochs = 100, .batch_size = 32, .verbose = 0});
  EXPECT_LT(net.evaluate(x2, tensor(y2, {512, 1}), {.verbose = 0}).at("loss"), 0.02 * var);
}

TEST(ModelFit, HistoryHoldsEachEpochsRunningMeans) {
  manual_seed(4);
  XY d = blobs(50, 3, 5, 2.0);
  auto m = mlp(3, 8, 2);
  m->compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
  std::vector<Logs> last_batch, epoch_end;
  auto cb = std::make_shared<callbacks::LambdaCallback>();
  cb->on_batch_end_fn = [&](int64_t b, const Logs& l) {
    if (b == 3) last_batch.push_back(l);  // 50 samples in batches of 16: steps 0..3
  };
  cb->on_epoch_end_fn = [&](int64_t, const Logs& l) { epoch_end.push_back(l); };
  auto h = m->fit(d.x, d.y, {.epochs = 3, .batch_size = 16, .callbacks = {cb}, .verbose = 0});
  ASSERT_EQ(h.logs.size(), 3u);
  ASSERT_EQ(last_batch.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(h.logs[e], epoch_end[e]);
    EXPECT_EQ(h.logs[e], last_batch[e]) << "epoch logs are the running means at the last batch";
  }
  EXPECT_EQ(h["loss"].size(), 3u);
  EXPECT_TRUE(h["val_loss"].empty());
  // A second fit continues; initial_epoch numbers the epochs.
  auto h2 = m->fit(d.x, d.y, {.epochs = 5, .batch_size = 16, .verbose = 0, .initial_epoch = 3});
  EXPECT_EQ(h2.epochs, (std::vector<int64_t>{3, 4}));
}

TEST(ModelFit, InitialEpochStartsTheCount) {
  XY d = blobs(20, 3, 6);
  auto m = mlp(3, 4, 2);
  m->compile("sgd", "sparse_categorical_crossentropy");
  std::vector<int64_t> begun;
  auto cb = std::make_shared<callbacks::LambdaCallback>();
  cb->on_epoch_begin_fn = [&](int64_t e, const Logs&) { begun.push_back(e); };
  auto h = m->fit(d.x, d.y, {.epochs = 5, .callbacks = {cb}, .verbose = 0, .initial_epoch = 3});
  EXPECT_EQ(begun, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(h.epochs, (std::vector<int64_t>{3, 4}));
  EXPECT_TRUE(m->fit(d.x, d.y, {.epochs = 2, .verbose = 0, .initial_epoch = 2}).logs.empty());
}

// --- validation and data order

struct ProbedModel {
  std::shared_ptr<ProbeImpl> probe = std::make_shared<ProbeImpl>();
  std::shared_ptr<Sequential> model;
  ProbedModel() {
    model = std::make_shared<Sequential>(
        std::vector<LayerPtr>{layers::InputLayer({2}), probe, layers::Dense(2, {.activation = "softmax"})});
    model->compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
    probe->calls.clear();  // the symbolic build's call
  }
};

TEST(ModelFit, ValidationSplitHoldsOutTheLastFraction) {
  for (bool shuffle : {false, true}) {
    ProbedModel pm;
    XY d = numbered(10);
    // Keras: split_at = floor(10 * (1 - 0.25)) = 7, so rows 7, 8, 9 validate.
    auto h = pm.model->fit(d.x, d.y,
                           {.epochs = 1, .batch_size = 4, .validation_split = 0.25, .shuffle = shuffle, .verbose = 0});
    std::vector<double> trained = pm.probe->ids(true), validated = pm.probe->ids(false);
    EXPECT_EQ(validated, iota(7, 10));
    if (!shuffle) {
      EXPECT_EQ(trained, iota(0, 7));
    }
    std::sort(trained.begin(), trained.end());
    EXPECT_EQ(trained, iota(0, 7)) << "shuffle = " << shuffle;
    Logs e = pm.model->evaluate(d.x.narrow(0, 7, 3), d.y.narrow(0, 7, 3), {.batch_size = 4, .verbose = 0});
    EXPECT_DOUBLE_EQ(h["val_loss"].at(0), e.at("loss"));
    EXPECT_DOUBLE_EQ(h["val_accuracy"].at(0), e.at("accuracy"));
  }
  ProbedModel pm;
  XY d = numbered(10);
  EXPECT_THROW(pm.model->fit(d.x, d.y, {.validation_split = 1.0, .verbose = 0}), ValueError);
  EXPECT_THROW(pm.model->fit(d.x, d.y, {.validation_split = -0.1, .verbose = 0}), ValueError);
  // Too few samples to hold any out is an error, as in Keras, rather than a silent no-op.
  EXPECT_THROW(pm.model->fit(d.x.narrow(0, 0, 1), d.y.narrow(0, 0, 1), {.validation_split = 0.5, .verbose = 0}),
               ValueError);
}

TEST(ModelFit, ValidationDataGivesValMetricsEqualToEvaluate) {
  manual_seed(5);
  XY train = blobs(60, 3, 7, 2.0), val = blobs(25, 3, 8, 2.0);
  auto m = mlp(3, 8, 2);
  m->compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  auto h = m->fit(train.x, train.y, {.epochs = 2, .batch_size = 16, .validation_data = {val.x, val.y}, .verbose = 0});
  ASSERT_EQ(h["val_loss"].size(), 2u);
  ASSERT_EQ(h["val_accuracy"].size(), 2u);
  Logs e = m->evaluate(val.x, val.y, {.batch_size = 16, .verbose = 0});
  EXPECT_DOUBLE_EQ(h["val_loss"].back(), e.at("loss"));
  EXPECT_DOUBLE_EQ(h["val_accuracy"].back(), e.at("accuracy"));
  EXPECT_EQ(h.logs.back().size(), 4u);
  // The same through a validation dataset.
  auto h2 = m->fit(train.x, train.y,
                   {.epochs = 1,
                    .batch_size = 16,
                    .validation_dataset = data::Dataset::from_tensors({val.x, val.y}).batch(7),
                    .verbose = 0});
  EXPECT_DOUBLE_EQ(h2["val_loss"].at(0), m->evaluate(val.x, val.y, {.batch_size = 7, .verbose = 0}).at("loss"));
  EXPECT_THROW(m->fit(train.x, train.y, {.validation_split = 0.2, .validation_data = {val.x, val.y}, .verbose = 0}),
               ValueError);
}

TEST(ModelFit, ShuffleOrder) {
  ProbedModel pm;
  XY d = numbered(32);
  pm.model->fit(d.x, d.y, {.epochs = 2, .batch_size = 5, .shuffle = false, .verbose = 0});
  std::vector<double> want = iota(0, 32);
  want.insert(want.end(), want.begin(), want.end());
  EXPECT_EQ(pm.probe->ids(true), want);

  pm.probe->calls.clear();
  pm.model->fit(d.x, d.y, {.epochs = 2, .batch_size = 5, .shuffle = true, .verbose = 0});
  auto seen = pm.probe->ids(true);
  ASSERT_EQ(seen.size(), 64u);
  std::vector<double> e1(seen.begin(), seen.begin() + 32), e2(seen.begin() + 32, seen.end());
  EXPECT_NE(e1, iota(0, 32));
  EXPECT_NE(e1, e2) << "a new order each epoch";
  std::sort(e1.begin(), e1.end());
  std::sort(e2.begin(), e2.end());
  EXPECT_EQ(e1, iota(0, 32));
  EXPECT_EQ(e2, iota(0, 32));
}

// --- one step by hand

struct Linear3 {
  layers::Dense d{3, {.activation = "softmax"}};
  std::shared_ptr<Sequential> m;
  explicit Linear3(double lr) {
    m = std::make_shared<Sequential>(std::vector<LayerPtr>{layers::InputLayer({4}), d});
    std::vector<Tensor> w = {uniform({4, 3}, -1, 1, DType::f32), uniform({3}, -0.5, 0.5, DType::f32)};
    m->set_weights(w);
    m->compile(std::make_shared<optimizers::SGD>(lr), "sparse_categorical_crossentropy", {"accuracy"});
  }
};

TEST(ModelFit, TrainOnBatchTakesOneSgdStep) {
  Linear3 net(0.5);
  XY b = random_classification(6, 4, 3, 9);
  auto x = values(b.x), y = values(b.y), W = values(net.d->kernel->value), bias = values(net.d->bias->value);
  auto p = softmax_ref(dense_ref(x, 6, net.d->kernel->value, net.d->bias->value), 6, 3);
  double loss = weighted_mean_ref(sparse_ce_ref(p, y, 3));
  // d loss / d logits = (p - onehot) / N; kernel gradient x^T (p - onehot) / N.
  std::vector<double> gW(12, 0), gb(3, 0);
  for (size_t i = 0; i < 6; ++i)
    for (size_t c = 0; c < 3; ++c) {
      double g = (p[i * 3 + c] - (static_cast<size_t>(y[i]) == c ? 1.0 : 0.0)) / 6.0;
      gb[c] += g;
      for (size_t j = 0; j < 4; ++j) gW[j * 3 + c] += x[i * 4 + j] * g;
    }
  for (size_t k = 0; k < 12; ++k) W[k] -= 0.5 * gW[k];
  for (size_t k = 0; k < 3; ++k) bias[k] -= 0.5 * gb[k];
  Logs l = net.m->train_on_batch(b.x, b.y);
  EXPECT_NEAR(l.at("loss"), loss, 1e-5);
  EXPECT_NEAR(l.at("accuracy"), accuracy_ref(tensor(p, {6, 3}), b.y), 1e-9);
  EXPECT_TRUE(all_close(net.d->kernel->value.to(DType::f64), tensor(W, {4, 3}), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(net.d->bias->value.to(DType::f64), tensor(bias, {3}), 1e-5, 1e-6));
  // Each call reports that batch alone (metrics reset, as Keras's default reset_metrics=True).
  Logs l2 = net.m->train_on_batch(b.x.narrow(0, 0, 2), b.y.narrow(0, 0, 2));
  Logs t2 = net.m->test_on_batch(b.x.narrow(0, 0, 2), b.y.narrow(0, 0, 2));
  EXPECT_LT(t2.at("loss"), l2.at("loss"));
  EXPECT_EQ(net.m->optimizer()->iterations(), 2);
}

TEST(ModelFit, EvaluatePredictAndTestOnBatchAgree) {
  Linear3 net(0.1);
  XY b = random_classification(23, 4, 3, 10);
  Tensor p = net.m->predict(b.x, {.batch_size = 5, .verbose = 0});
  EXPECT_EQ(p.shape(), (Shape{23, 3}));
  EXPECT_TRUE(all_close(p, (*net.m)(b.x), 1e-6, 1e-7));
  double loss = weighted_mean_ref(sparse_ce_ref(values(p), values(b.y), 3));
  Logs t = net.m->test_on_batch(b.x, b.y);
  Logs e = net.m->evaluate(b.x, b.y, {.batch_size = 5, .verbose = 0});
  EXPECT_NEAR(t.at("loss"), loss, 1e-5);
  EXPECT_NEAR(e.at("loss"), loss, 1e-5);
  EXPECT_NEAR(e.at("accuracy"), accuracy_ref(p, b.y), 1e-9);
  EXPECT_NEAR(t.at("accuracy"), accuracy_ref(p, b.y), 1e-9);
  // None of these trains.
  EXPECT_TRUE(all_close(net.m->predict(b.x, {.batch_size = 5, .verbose = 0}), p, 0, 0));
  EXPECT_EQ(net.m->optimizer()->iterations(), 0);
  // predict needs no compile.
  auto fresh = mlp(4, 3, 2);
  EXPECT_EQ(fresh->predict(b.x, {.verbose = 0}).shape(), (Shape{23, 2}));
}

// --- weights

TEST(ModelFit, SampleWeightWeighsLossAndMetrics) {
  Linear3 net(0.1);
  XY b = random_classification(6, 4, 3, 11);
  std::vector<double> w = {1.0, 0.0, 2.0, 0.5, 3.0, 1.0};
  Tensor sw = tensor(std::vector<float>(w.begin(), w.end()));
  auto p = values(net.m->predict(b.x, {.verbose = 0}));
  auto y = values(b.y);
  double loss = weighted_mean_ref(sparse_ce_ref(p, y, 3), w);
  double hits = 0, wsum = 0;
  for (size_t i = 0; i < 6; ++i) {
    size_t best = 0;
    for (size_t c = 1; c < 3; ++c)
      if (p[i * 3 + c] > p[i * 3 + best]) best = c;
    hits += w[i] * (best == static_cast<size_t>(y[i]));
    wsum += w[i];
  }
  Logs t = net.m->test_on_batch(b.x, b.y, sw);
  EXPECT_NEAR(t.at("loss"), loss, 1e-5);
  EXPECT_NEAR(t.at("accuracy"), hits / wsum, 1e-6);
  Logs e = net.m->evaluate(b.x, b.y, {.batch_size = 4, .verbose = 0, .sample_weight = sw});
  EXPECT_NEAR(e.at("loss"), loss, 1e-5);
  EXPECT_NEAR(e.at("accuracy"), hits / wsum, 1e-6);
  // fit reports the loss of its (only) batch before the update.
  auto h = net.m->fit(b.x, b.y, {.epochs = 1, .batch_size = 6, .shuffle = false, .verbose = 0, .sample_weight = sw});
  EXPECT_NEAR(h["loss"].at(0), loss, 1e-5);
  EXPECT_GT(std::abs(loss - weighted_mean_ref(sparse_ce_ref(p, y, 3))), 1e-3) << "the weights must matter";
  EXPECT_THROW(net.m->fit(b.x, b.y, {.verbose = 0, .sample_weight = ones({5})}), ShapeError);
}

TEST(ModelFit, ClassWeightEqualsTheSampleWeightsItImplies) {
  XY b = random_classification(6, 4, 3, 12);
  std::map<int64_t, double> cw = {{0, 1.0}, {1, 2.0}, {2, 0.25}};
  std::vector<double> w;
  for (double l : values(b.y)) w.push_back(cw.at(static_cast<int64_t>(l)));
  Linear3 a(0.3), c(0.3), plain(0.3);
  c.m->set_weights(a.m->get_weights());
  plain.m->set_weights(a.m->get_weights());
  auto p = values(a.m->predict(b.x, {.verbose = 0}));
  double loss = weighted_mean_ref(sparse_ce_ref(p, values(b.y), 3), w);
  auto h = a.m->fit(b.x, b.y, {.epochs = 1, .batch_size = 6, .shuffle = false, .verbose = 0, .class_weight = cw});
  EXPECT_NEAR(h["loss"].at(0), loss, 1e-5);
  Logs l = c.m->train_on_batch(b.x, b.y, tensor(std::vector<float>(w.begin(), w.end())));
  EXPECT_NEAR(l.at("loss"), loss, 1e-5);
  EXPECT_TRUE(all_close(a.m->get_weights()[0], c.m->get_weights()[0], 1e-6, 1e-7));
  EXPECT_TRUE(all_close(a.m->get_weights()[1], c.m->get_weights()[1], 1e-6, 1e-7));
  plain.m->train_on_batch(b.x, b.y);
  EXPECT_FALSE(all_close(plain.m->get_weights()[0], a.m->get_weights()[0], 0, 1e-5));

  // One-hot targets: the class is the argmax of the row.
  Sequential oh({layers::InputLayer({4}), layers::Dense(3, {.activation = "softmax"})});
  oh.set_weights(c.m->get_weights());
  oh.compile(std::make_shared<optimizers::SGD>(0.0), "categorical_crossentropy");
  auto p2 = values(oh.predict(b.x, {.verbose = 0}));
  auto h2 = oh.fit(b.x, utils::to_categorical(b.y, 3),
                   {.epochs = 1, .batch_size = 6, .shuffle = false, .verbose = 0, .class_weight = cw});
  EXPECT_NEAR(h2["loss"].at(0), weighted_mean_ref(sparse_ce_ref(p2, values(b.y), 3), w), 1e-5);
}

TEST(ModelFit, FrozenLayersKeepTheirWeights) {
  manual_seed(6);
  layers::Dense frozen(8, {.activation = "relu"}), head(2, {.activation = "softmax"});
  layers::BatchNormalization bn;
  Sequential m({layers::InputLayer({3}), frozen, bn, head});
  frozen->set_trainable(false);
  bn->set_trainable(false);
  EXPECT_EQ(m.trainable_weights().size(), 2u);
  auto frozen_before = frozen->get_weights(), bn_before = bn->get_weights(), head_before = head->get_weights();
  XY d = blobs(64, 3, 13);
  m.compile("adam", "sparse_categorical_crossentropy");
  m.fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .verbose = 0});
  EXPECT_TRUE(same_weights(frozen->get_weights(), frozen_before));
  EXPECT_TRUE(same_weights(bn->get_weights(), bn_before)) << "a frozen BatchNormalization runs in inference mode";
  EXPECT_FALSE(same_weights(head->get_weights(), head_before));
  // Unfrozen, it trains.
  frozen->set_trainable(true);
  m.compile("adam", "sparse_categorical_crossentropy");
  m.fit(d.x, d.y, {.epochs = 1, .batch_size = 16, .verbose = 0});
  EXPECT_FALSE(same_weights(frozen->get_weights(), frozen_before));
}

// --- losses paired with output activations

TEST(ModelFit, SoftmaxWithCategoricalCrossentropyTrainsOnLogits) {
  layers::Dense d(3, {.activation = "softmax"});
  Sequential m({layers::InputLayer({4}), d});
  m.compile(std::make_shared<optimizers::SGD>(0.1), "categorical_crossentropy");
  XY b = random_classification(8, 4, 3, 14);
  Tensor onehot = utils::to_categorical(b.y, 3);
  // Moderate logits: the loss is the cross-entropy of the probabilities predict() returns.
  m.set_weights({uniform({4, 3}, -1, 1, DType::f32), uniform({3}, -1, 1, DType::f32)});
  auto p = values(m.predict(b.x, {.verbose = 0}));
  EXPECT_NEAR(m.test_on_batch(b.x, onehot).at("loss"), weighted_mean_ref(sparse_ce_ref(p, values(b.y), 3)), 1e-5);

  // Saturated logits: probabilities clipped at 1e-7 would cap each loss at -log(1e-7) = 16.1;
  // through the logits it is the exact log-sum-exp value.
  m.set_weights({uniform({4, 3}, -60, 60, DType::f32), zeros({3})});
  auto z = dense_ref(values(b.x), 8, d->kernel->value, d->bias->value);
  std::vector<double> ce;
  for (size_t i = 0; i < 8; ++i) {
    double mx = std::max({z[i * 3], z[i * 3 + 1], z[i * 3 + 2]});
    double lse = mx + std::log(std::exp(z[i * 3] - mx) + std::exp(z[i * 3 + 1] - mx) + std::exp(z[i * 3 + 2] - mx));
    ce.push_back(lse - z[i * 3 + static_cast<size_t>(values(b.y)[i])]);
  }
  double want = weighted_mean_ref(ce);
  ASSERT_GT(*std::max_element(ce.begin(), ce.end()), 20.0) << "the test needs a saturated sample";
  double got = m.test_on_batch(b.x, onehot).at("loss");
  EXPECT_NEAR(got, want, 1e-4 * want);
  // And the gradient flows through the saturated softmax: a step lowers the loss.
  m.train_on_batch(b.x, onehot);
  EXPECT_LT(m.test_on_batch(b.x, onehot).at("loss"), got);
  // The model's output stays probabilities.
  auto q = values(m.predict(b.x, {.verbose = 0}));
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(q[3 * i] + q[3 * i + 1] + q[3 * i + 2], 1.0, 1e-5);
}

TEST(ModelFit, SigmoidWithBinaryCrossentropyTrainsOnLogits) {
  KerasTensor in = Input({2});
  layers::Dense d(1, {.activation = "sigmoid"});
  Model m(in, d(in));
  m.compile(std::make_shared<optimizers::SGD>(0.1), "binary_crossentropy", {"accuracy"});
  m.set_weights({tensor(std::vector<float>{60, -60}, {2, 1}), zeros({1})});
  Tensor x = tensor(std::vector<float>{1, 0, 0, 1, 0.5f, 0.5f, -1, 0}, {4, 2});
  Tensor y = tensor(std::vector<float>{1, 1, 0, 0}, {4, 1});
  auto z = dense_ref(values(x), 4, d->kernel->value, d->bias->value);
  auto t = values(y);
  std::vector<double> l;
  for (size_t i = 0; i < 4; ++i)  // softplus(z) - t z, the stable logits form
    l.push_back(std::max(z[i], 0.0) + std::log1p(std::exp(-std::abs(z[i]))) - t[i] * z[i]);
  Logs r = m.test_on_batch(x, y);
  EXPECT_NEAR(r.at("loss"), weighted_mean_ref(l), 1e-4);
  // Sample 2 alone costs 60 through the logits; clipped probabilities would cap it at 16.1.
  EXPECT_GT(r.at("loss"), 15.0);
  EXPECT_NEAR(r.at("accuracy"), 0.75, 1e-9);  // predictions 1, 0, 0.5 (not > 0.5: 0), 0
  EXPECT_EQ(m.metrics().at(0)->class_name(), "BinaryAccuracy");
}

TEST(ModelFit, AccuracyResolvesAsKerasDoes) {
  XY b = random_classification(12, 4, 3, 15);
  auto resolved = [&](const std::string& loss, const Tensor& y, int64_t units, const std::string& act) {
    Sequential m({layers::InputLayer({4}), layers::Dense(units, {.activation = act})});
    m.compile("sgd", loss, {"accuracy"});
    Logs l = m.test_on_batch(b.x, y);
    EXPECT_EQ(m.metrics().at(0)->name(), "accuracy");
    EXPECT_EQ(l.count("accuracy"), 1u);
    Tensor p = m.predict(b.x, {.verbose = 0});
    return std::make_pair(m.metrics().at(0)->class_name(), std::make_pair(l.at("accuracy"), p));
  };
  auto [sparse, sv] = resolved("sparse_categorical_crossentropy", b.y, 3, "softmax");
  EXPECT_EQ(sparse, "SparseCategoricalAccuracy");
  EXPECT_NEAR(sv.first, accuracy_ref(sv.second, b.y), 1e-9);
  auto [sparse_col, sc] = resolved("sparse_categorical_crossentropy", b.y.reshape({12, 1}), 3, "softmax");
  EXPECT_EQ(sparse_col, "SparseCategoricalAccuracy");
  auto [cat, cv] = resolved("categorical_crossentropy", utils::to_categorical(b.y, 3), 3, "softmax");
  EXPECT_EQ(cat, "CategoricalAccuracy");
  EXPECT_NEAR(cv.first, accuracy_ref(cv.second, b.y), 1e-9);
  Tensor yb = (b.y > 0).to(DType::f32).reshape({12, 1});
  auto [bin, bv] = resolved("binary_crossentropy", yb, 1, "sigmoid");
  EXPECT_EQ(bin, "BinaryAccuracy");
  auto pb = values(bv.second), tb = values(yb);
  double hits = 0;
  for (size_t i = 0; i < 12; ++i) hits += (pb[i] > 0.5) == (tb[i] > 0.5);
  EXPECT_NEAR(bv.first, hits / 12, 1e-9);
  auto [mse_one, mv] = resolved("mse", yb, 1, "sigmoid");
  EXPECT_EQ(mse_one, "BinaryAccuracy") << "one output column: binary, whatever the loss";
  (void)sc;
  (void)mv;
}

TEST(ModelFit, MultiOutputLossWeightsAndMetricNames) {
  manual_seed(7);
  KerasTensor in = Input({4});
  layers::Dense trunk(6, {.activation = "tanh"}), cls(3, {.activation = "softmax"}), reg(1);
  cls->set_name("cls");
  reg->set_name("reg");
  KerasTensor h = trunk(in);
  Model m(std::vector<KerasTensor>{in}, {cls(h), reg(h)});
  EXPECT_EQ(m.output_names(), (std::vector<std::string>{"cls", "reg"}));
  m.compile({.optimizer = std::make_shared<optimizers::SGD>(0.05),
             .losses = {"sparse_categorical_crossentropy", "mse"},
             .metrics = {"accuracy"},
             .loss_weights = {1.0, 0.5}});
  XY b = random_classification(10, 4, 3, 16);
  Tensor yr = uniform({10, 1}, -1, 1, DType::f32);
  auto out = m.predict(std::vector<Tensor>{b.x}, {.verbose = 0});
  double ce = weighted_mean_ref(sparse_ce_ref(values(out[0]), values(b.y), 3));
  auto pr = values(out[1]), tr = values(yr);
  double mse = 0;
  for (size_t i = 0; i < 10; ++i) mse += (pr[i] - tr[i]) * (pr[i] - tr[i]) / 10;
  Logs e = m.evaluate(std::vector<Tensor>{b.x}, {b.y, yr}, {.batch_size = 10, .verbose = 0});
  EXPECT_NEAR(e.at("loss"), ce + 0.5 * mse, 1e-5);
  EXPECT_EQ(e.count("cls_accuracy"), 1u);
  EXPECT_EQ(e.count("reg_accuracy"), 1u);
  EXPECT_NEAR(e.at("cls_accuracy"), accuracy_ref(out[0], b.y), 1e-9);
  auto hist = m.fit(std::vector<Tensor>{b.x}, {b.y, yr},
                    {.epochs = 2, .batch_size = 5, .validation_data = {b.x, b.y, yr}, .verbose = 0});
  EXPECT_EQ(hist["cls_accuracy"].size(), 2u);
  EXPECT_EQ(hist["val_cls_accuracy"].size(), 2u);
  EXPECT_EQ(hist["val_loss"].size(), 2u);
  EXPECT_THROW(m.compile({.optimizer = "sgd", .losses = {"mse"}}), ValueError);
  EXPECT_THROW(m.compile({.optimizer = "sgd", .loss = "mse", .loss_weights = {1.0}}), ValueError);
}

// --- repeatability

std::pair<std::vector<Tensor>, std::vector<double>> seeded_run(uint64_t seed) {
  manual_seed(seed);
  XY d = blobs(80, 4, 17, 2.0);
  Sequential m({layers::InputLayer({4}), layers::Dense(16, {.activation = "relu"}), layers::Dropout(0.3),
                layers::Dense(2, {.activation = "softmax"})});
  m.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  auto h = m.fit(d.x, d.y, {.epochs = 3, .batch_size = 16, .validation_split = 0.2, .verbose = 0});
  std::vector<double> trace = h["loss"];
  for (double v : h["val_loss"]) trace.push_back(v);
  return {m.get_weights(), trace};
}

TEST(ModelFit, SeededRunsRepeatBitIdentically) {
  auto a = seeded_run(42), b = seeded_run(42), c = seeded_run(43);
  EXPECT_TRUE(same_weights(a.first, b.first));
  EXPECT_EQ(a.second, b.second);
  EXPECT_FALSE(same_weights(a.first, c.first));
}

// --- steps_per_execution

// Executions of several steps train exactly the steps of one-step executions; only the readback
// moves: the batch-level callbacks see each execution's first and last step, with the running
// means as of its end.
TEST(ModelFit, StepsPerExecutionTrainsTheSameStepsAndReportsPerExecution) {
  for (bool eager : {false, true}) {
    SCOPED_TRACE(eager ? "eager" : "compiled");
    XY d = blobs(50, 3, 7, 2.0);  // batches of 8: steps 0..6, the last of 2 samples
    struct Run {
      std::vector<int64_t> begins, ends;
      std::vector<Logs> end_logs;
      callbacks::History h;
      std::vector<Tensor> w;
      Logs eval;
      std::vector<int64_t> test_ends;
    };
    auto run = [&](int64_t per_exec) {
      manual_seed(11);
      auto m = mlp(3, 8, 2);
      m->compile({.optimizer = "adam",
                  .loss = "sparse_categorical_crossentropy",
                  .metrics = {"accuracy"},
                  .run_eagerly = eager,
                  .steps_per_execution = per_exec});
      Run r;
      auto cb = std::make_shared<callbacks::LambdaCallback>();
      cb->on_batch_begin_fn = [&](int64_t b, const Logs&) { r.begins.push_back(b); };
      cb->on_batch_end_fn = [&](int64_t b, const Logs& l) {
        r.ends.push_back(b);
        r.end_logs.push_back(l);
      };
      r.h = m->fit(d.x, d.y, {.epochs = 2, .batch_size = 8, .shuffle = false, .callbacks = {cb}, .verbose = 0});
      r.w = m->get_weights();
      struct TestEnds : callbacks::Callback {
        std::vector<int64_t>* ends;
        void on_test_batch_end(int64_t b, const Logs&) override { ends->push_back(b); }
      };
      auto te = std::make_shared<TestEnds>();
      te->ends = &r.test_ends;  // r outlives the evaluate call
      r.eval = m->evaluate(d.x, d.y, {.batch_size = 8, .verbose = 0, .callbacks = {te}});
      return r;
    };
    Run one = run(1), three = run(3);
    EXPECT_TRUE(same_weights(one.w, three.w));
    ASSERT_EQ(one.h.logs.size(), 2u);
    EXPECT_EQ(one.h.logs, three.h.logs) << "the same losses, summed in the same order";
    EXPECT_EQ(one.ends, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(three.begins, (std::vector<int64_t>{0, 3, 6, 0, 3, 6}));
    EXPECT_EQ(three.ends, (std::vector<int64_t>{2, 5, 6, 2, 5, 6}));
    EXPECT_EQ(one.eval, three.eval);
    EXPECT_EQ(one.test_ends, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(three.test_ends, (std::vector<int64_t>{2, 5, 6}));
    for (size_t i = 0; i < three.ends.size(); ++i)
      EXPECT_EQ(three.end_logs[i], one.end_logs[static_cast<size_t>(three.ends[i]) + (i < 3 ? 0 : 7)]) << i;
  }
  auto m = mlp(3, 8, 2);
  std::string msg = error_of<ValueError>(
      [&] { m->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy", .steps_per_execution = 0}); });
  EXPECT_THAT(msg, HasSubstr("steps_per_execution must be at least 1, got 0"));
}

}  // namespace
