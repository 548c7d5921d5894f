// Callbacks: the order and arguments of the hooks, LambdaCallback, EarlyStopping (patience,
// min_delta, mode, baseline, restore_best_weights), ReduceLROnPlateau, LearningRateScheduler,
// CSVLogger and TerminateOnNaN. Monitored values are scripted per epoch with ScriptedMetric
// so that each expected stop is known exactly.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

std::shared_ptr<Sequential> small_model() {
  return std::make_shared<Sequential>(std::vector<LayerPtr>{
      layers::InputLayer({3}), layers::Dense(4, {.activation = "relu"}), layers::Dense(2, {.activation = "softmax"})});
}

class Recorder : public callbacks::Callback {
 public:
  std::vector<std::string> events;
  std::map<std::string, int64_t> params_at_begin;
  Model* model_at_begin = nullptr;
  void on_train_begin(const Logs&) override {
    events.push_back("train_begin");
    params_at_begin = params;
    model_at_begin = &model();
  }
  void on_train_end(const Logs& l) override { events.push_back("train_end" + keys(l)); }
  void on_epoch_begin(int64_t e, const Logs&) override { events.push_back("epoch_begin " + std::to_string(e)); }
  void on_epoch_end(int64_t e, const Logs& l) override { events.push_back("epoch_end " + std::to_string(e) + keys(l)); }
  void on_train_batch_begin(int64_t b, const Logs&) override { events.push_back("batch_begin " + std::to_string(b)); }
  void on_train_batch_end(int64_t b, const Logs& l) override {
    events.push_back("batch_end " + std::to_string(b) + keys(l));
  }
  void on_test_begin(const Logs&) override { events.push_back("test_begin"); }
  void on_test_end(const Logs& l) override { events.push_back("test_end" + keys(l)); }
  void on_test_batch_begin(int64_t b, const Logs&) override {
    events.push_back("test_batch_begin " + std::to_string(b));
  }
  void on_test_batch_end(int64_t b, const Logs&) override { events.push_back("test_batch_end " + std::to_string(b)); }
  void on_predict_begin(const Logs&) override { events.push_back("predict_begin"); }
  void on_predict_end(const Logs&) override { events.push_back("predict_end"); }
  void on_predict_batch_begin(int64_t b, const Logs&) override {
    events.push_back("predict_batch_begin " + std::to_string(b));
  }
  void on_predict_batch_end(int64_t b, const Logs&) override {
    events.push_back("predict_batch_end " + std::to_string(b));
  }

 private:
  static std::string keys(const Logs& l) {
    std::string s;
    for (auto& [k, v] : l) s += " " + k;
    return s;
  }
};

TEST(ModelCallbacks, HooksComeInKerasOrder) {
  auto m = small_model();
  m->compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
  XY d = blobs(6, 3, 1), v = blobs(3, 3, 2);
  auto r = std::make_shared<Recorder>();
  m->fit(d.x, d.y,
         {.epochs = 2,
          .batch_size = 2,
          .validation_data = {v.x, v.y},
          .callbacks = {r},
          .verbose = 0,
          .validation_batch_size = 2});
  std::vector<std::string> want = {"train_begin"};
  for (int e = 0; e < 2; ++e) {
    want.push_back("epoch_begin " + std::to_string(e));
    for (int b = 0; b < 3; ++b) {
      want.push_back("batch_begin " + std::to_string(b));
      want.push_back("batch_end " + std::to_string(b) + " accuracy loss");
    }
    want.push_back("test_begin");
    for (int b = 0; b < 2; ++b) {
      want.push_back("test_batch_begin " + std::to_string(b));
      want.push_back("test_batch_end " + std::to_string(b));
    }
    want.push_back("test_end accuracy loss");
    want.push_back("epoch_end " + std::to_string(e) + " accuracy loss val_accuracy val_loss");
  }
  want.push_back("train_end accuracy loss val_accuracy val_loss");
  EXPECT_EQ(r->events, want);
  EXPECT_EQ(r->model_at_begin, m.get());
  EXPECT_EQ(r->params_at_begin.at("epochs"), 2);
  EXPECT_EQ(r->params_at_begin.at("steps"), 3);
  // The validation pass does not overwrite fit's parameters.
  EXPECT_EQ(r->params.at("epochs"), 2);

  r->events.clear();
  m->evaluate(v.x, v.y, {.batch_size = 2, .verbose = 0, .callbacks = {r}});
  EXPECT_EQ(r->events, (std::vector<std::string>{"test_begin", "test_batch_begin 0", "test_batch_end 0",
                                                 "test_batch_begin 1", "test_batch_end 1", "test_end accuracy loss"}));
  r->events.clear();
  m->predict(v.x, {.batch_size = 2, .verbose = 0, .callbacks = {r}});
  EXPECT_EQ(r->events, (std::vector<std::string>{"predict_begin", "predict_batch_begin 0", "predict_batch_end 0",
                                                 "predict_batch_begin 1", "predict_batch_end 1", "predict_end"}));
}

TEST(ModelCallbacks, LambdaCallback) {
  auto m = small_model();
  m->compile("sgd", "sparse_categorical_crossentropy");
  XY d = blobs(10, 3, 3);
  std::vector<std::string> seen;
  auto cb = std::make_shared<callbacks::LambdaCallback>();
  cb->on_train_begin_fn = [&](const Logs&) { seen.push_back("tb"); };
  cb->on_epoch_begin_fn = [&](int64_t e, const Logs&) { seen.push_back("eb" + std::to_string(e)); };
  cb->on_batch_begin_fn = [&](int64_t b, const Logs&) { seen.push_back("bb" + std::to_string(b)); };
  cb->on_batch_end_fn = [&](int64_t b, const Logs& l) {
    seen.push_back("be" + std::to_string(b) + (l.count("loss") ? "+" : "-"));
  };
  cb->on_epoch_end_fn = [&](int64_t e, const Logs& l) {
    seen.push_back("ee" + std::to_string(e) + (l.count("loss") ? "+" : "-"));
  };
  cb->on_train_end_fn = [&](const Logs&) { seen.push_back("te"); };
  m->fit(d.x, d.y, {.epochs = 2, .batch_size = 5, .callbacks = {cb}, .verbose = 0});
  EXPECT_EQ(seen, (std::vector<std::string>{"tb", "eb0", "bb0", "be0+", "bb1", "be1+", "ee0+", "eb1", "bb0", "be0+",
                                            "bb1", "be1+", "ee1+", "te"}));
}

// --- monitored metrics scripted per epoch

struct Scripted {
  std::shared_ptr<int64_t> epoch = std::make_shared<int64_t>(0);
  std::shared_ptr<Sequential> model = small_model();
  std::shared_ptr<callbacks::LambdaCallback> clock = std::make_shared<callbacks::LambdaCallback>();
  XY d = blobs(8, 3, 4);
  Scripted(const std::string& name, std::vector<double> script, double lr = 0.0) {
    clock->on_epoch_begin_fn = [e = epoch](int64_t ep, const Logs&) { *e = ep; };
    model->compile({.optimizer = std::make_shared<optimizers::SGD>(lr),
                    .loss = "sparse_categorical_crossentropy",
                    .metrics = {std::make_shared<ScriptedMetric>(name, std::move(script), epoch)}});
  }
  callbacks::History fit(std::vector<callbacks::CallbackPtr> cbs, int64_t epochs = 10) {
    cbs.insert(cbs.begin(), clock);
    return model->fit(d.x, d.y, {.epochs = epochs, .batch_size = 4, .callbacks = cbs, .verbose = 0});
  }
};

TEST(ModelCallbacks, EarlyStoppingPatience) {
  Scripted s("score", {5, 4, 4.5, 4.2, 3, 2, 1});
  auto es =
      std::make_shared<callbacks::EarlyStopping>(callbacks::EarlyStoppingOptions{.monitor = "score", .patience = 2});
  auto h = s.fit({es});
  // Best at epoch 1; epochs 2 and 3 do not improve: stop after epoch 3.
  EXPECT_EQ(h.epochs, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(es->stopped_epoch(), 3);
  EXPECT_EQ(es->best_epoch(), 1);

  Scripted never("score", {5, 4, 3, 2, 1, 0.5});
  auto es2 =
      std::make_shared<callbacks::EarlyStopping>(callbacks::EarlyStoppingOptions{.monitor = "score", .patience = 0});
  EXPECT_EQ(never.fit({es2}, 6).epochs.size(), 6u) << "always improving: never stops";
  EXPECT_EQ(es2->stopped_epoch(), 0);
}

TEST(ModelCallbacks, EarlyStoppingMinDelta) {
  // Improvements of 0.2 count with min_delta 0.1, not with 0.5.
  std::vector<double> script = {5, 4.8, 4.6, 4.4, 4.2, 4.0};
  Scripted a("score", script), b("score", script);
  auto small = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "score", .min_delta = 0.1, .patience = 1});
  auto big = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "score", .min_delta = 0.5, .patience = 1});
  EXPECT_EQ(a.fit({small}, 6).epochs.size(), 6u);
  EXPECT_EQ(b.fit({big}, 6).epochs.size(), 2u);
  EXPECT_EQ(big->stopped_epoch(), 1);
}

TEST(ModelCallbacks, EarlyStoppingMode) {
  std::vector<double> rising = {1, 2, 3, 2.5, 2.8, 2.9, 4};
  Scripted a("score", rising), b("score", rising), c("my_accuracy", rising), d("score", rising);
  auto max = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "score", .patience = 2, .mode = "max"});
  EXPECT_EQ(a.fit({max}).epochs.size(), 5u);  // best 3 at epoch 2; epochs 3, 4 worse
  auto min = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "score", .patience = 2, .mode = "min"});
  EXPECT_EQ(b.fit({min}).epochs.size(), 3u);  // best 1 at epoch 0
  auto autoacc = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "my_accuracy", .patience = 2});
  EXPECT_EQ(c.fit({autoacc}).epochs.size(), 5u) << "auto maximizes accuracy-like names";
  // Improving without beating the baseline does not reset the wait (Keras counts the first
  // epoch too): with patience 2 training stops after epoch 1.
  auto base = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "score", .patience = 2, .mode = "max", .baseline = 3.5});
  EXPECT_EQ(d.fit({base}).epochs.size(), 2u);
  EXPECT_THROW(callbacks::EarlyStopping({.mode = "maximum"}), ValueError);
}

TEST(ModelCallbacks, EarlyStoppingRestoresTheBestEpochsWeights) {
  manual_seed(5);
  Scripted s("score", {5, 4, 3, 3.5, 3.2, 3.1, 3.05, 1}, /*lr=*/0.5);
  std::vector<std::vector<Tensor>> at_end;
  auto capture = std::make_shared<callbacks::LambdaCallback>();
  capture->on_epoch_end_fn = [&](int64_t, const Logs&) { at_end.push_back(s.model->get_weights()); };
  auto es = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "score", .patience = 3, .restore_best_weights = true});
  auto h = s.fit({capture, es});
  ASSERT_EQ(h.epochs.size(), 6u);  // best at epoch 2, stops after epoch 5
  ASSERT_EQ(at_end.size(), 6u);
  EXPECT_FALSE(same_weights(at_end[5], at_end[2])) << "the weights must move for the test to mean anything";
  EXPECT_TRUE(same_weights(s.model->get_weights(), at_end[2]));

  // Without restore_best_weights the last weights stay.
  Scripted t("score", {5, 4, 3, 3.5, 3.2, 3.1, 3.05, 1}, 0.5);
  std::vector<Tensor> last;
  auto cap2 = std::make_shared<callbacks::LambdaCallback>();
  cap2->on_epoch_end_fn = [&](int64_t, const Logs&) { last = t.model->get_weights(); };
  t.fit({cap2, std::make_shared<callbacks::EarlyStopping>(
                   callbacks::EarlyStoppingOptions{.monitor = "score", .patience = 3})});
  EXPECT_TRUE(same_weights(t.model->get_weights(), last));
}

TEST(ModelCallbacks, ReduceLROnPlateau) {
  Scripted s("score", {5, 5, 5, 5, 5, 5, 4, 4, 4}, 1.0);
  std::vector<double> lrs;
  auto rec = std::make_shared<callbacks::LambdaCallback>();
  rec->on_epoch_begin_fn = [&](int64_t, const Logs&) { lrs.push_back(s.model->optimizer()->learning_rate()); };
  auto plateau = std::make_shared<callbacks::ReduceLROnPlateau>(
      callbacks::ReduceLROnPlateauOptions{.monitor = "score", .factor = 0.5, .patience = 2, .min_delta = 0});
  s.fit({rec, plateau}, 9);
  // Epochs 1, 2 do not improve: halve after epoch 2; again after epoch 4; epoch 6 improves.
  EXPECT_EQ(lrs, (std::vector<double>{1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25}));

  Scripted t("score", {5, 5, 5, 5, 5, 5, 5}, 1.0);
  lrs.clear();
  auto rec2 = std::make_shared<callbacks::LambdaCallback>();
  rec2->on_epoch_begin_fn = [&](int64_t, const Logs&) { lrs.push_back(t.model->optimizer()->learning_rate()); };
  auto floor = std::make_shared<callbacks::ReduceLROnPlateau>(callbacks::ReduceLROnPlateauOptions{
      .monitor = "score", .factor = 0.5, .patience = 1, .min_delta = 0, .cooldown = 2, .min_lr = 0.3});
  t.fit({rec2, floor}, 7);
  // patience 1: reduce after epoch 1; cooldown 2 (Keras counts down at each epoch end, so it skips
  // one epoch); reduce after epoch 3, to the floor; no further.
  EXPECT_EQ(lrs, (std::vector<double>{1, 1, 0.5, 0.5, 0.3, 0.3, 0.3}));
  EXPECT_THROW(callbacks::ReduceLROnPlateau({.factor = 1.5}), ValueError);
}

TEST(ModelCallbacks, LearningRateScheduler) {
  auto m = small_model();
  auto sgd = std::make_shared<optimizers::SGD>(0.1);
  m->compile(sgd, "sparse_categorical_crossentropy");
  XY d = blobs(8, 3, 6);
  std::vector<double> lrs, given;
  std::vector<std::vector<Tensor>> at_end;
  auto sched = std::make_shared<callbacks::LearningRateScheduler>([&](int64_t epoch, double lr) {
    given.push_back(lr);
    return epoch == 1 ? 0.0 : 0.1 * std::pow(0.5, static_cast<double>(epoch));
  });
  auto rec = std::make_shared<callbacks::LambdaCallback>();
  rec->on_batch_begin_fn = [&](int64_t b, const Logs&) {
    if (b == 0) lrs.push_back(sgd->learning_rate());
  };
  rec->on_epoch_end_fn = [&](int64_t, const Logs&) { at_end.push_back(m->get_weights()); };
  m->fit(d.x, d.y, {.epochs = 4, .batch_size = 4, .callbacks = {sched, rec}, .verbose = 0});
  EXPECT_EQ(lrs, (std::vector<double>{0.1, 0.0, 0.025, 0.0125}));
  EXPECT_EQ(given, (std::vector<double>{0.1, 0.1, 0.0, 0.025})) << "the schedule sees the current rate";
  EXPECT_TRUE(same_weights(at_end[1], at_end[0])) << "a zero rate for epoch 1 leaves the weights";
  EXPECT_FALSE(same_weights(at_end[2], at_end[1]));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> split(const std::string& s, char c) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, c);) out.push_back(part);
  return out;
}

TEST(ModelCallbacks, CSVLogger) {
  std::string path = temp_dir() + "/log.csv";
  auto m = small_model();
  m->compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
  XY d = blobs(8, 3, 7), v = blobs(4, 3, 8);
  auto h = m->fit(d.x, d.y,
                  {.epochs = 3,
                   .batch_size = 4,
                   .validation_data = {v.x, v.y},
                   .callbacks = {std::make_shared<callbacks::CSVLogger>(path)},
                   .verbose = 0});
  auto lines = split(read_file(path), '\n');
  ASSERT_EQ(lines.size(), 4u) << read_file(path);
  EXPECT_EQ(lines[0], "epoch,accuracy,loss,val_accuracy,val_loss");
  for (size_t e = 0; e < 3; ++e) {
    auto f = split(lines[e + 1], ',');
    ASSERT_EQ(f.size(), 5u) << lines[e + 1];
    EXPECT_EQ(f[0], std::to_string(e));
    EXPECT_NEAR(std::stod(f[1]), h.logs[e].at("accuracy"), 1e-8);
    EXPECT_NEAR(std::stod(f[2]), h.logs[e].at("loss"), 1e-7 * h.logs[e].at("loss"));
    EXPECT_NEAR(std::stod(f[4]), h.logs[e].at("val_loss"), 1e-7 * h.logs[e].at("val_loss"));
  }
  // append: two more rows under the same header; without it the file starts over.
  m->fit(d.x, d.y,
         {.epochs = 5,
          .batch_size = 4,
          .validation_data = {v.x, v.y},
          .callbacks = {std::make_shared<callbacks::CSVLogger>(path, ',', true)},
          .verbose = 0,
          .initial_epoch = 3});
  lines = split(read_file(path), '\n');
  ASSERT_EQ(lines.size(), 6u) << read_file(path);
  EXPECT_EQ(lines[0], "epoch,accuracy,loss,val_accuracy,val_loss");
  EXPECT_EQ(split(lines[4], ',')[0], "3");
  EXPECT_EQ(split(lines[5], ',')[0], "4");
  m->fit(
      d.x, d.y,
      {.epochs = 1, .batch_size = 4, .callbacks = {std::make_shared<callbacks::CSVLogger>(path, ';')}, .verbose = 0});
  lines = split(read_file(path), '\n');
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "epoch;accuracy;loss");
  EXPECT_THROW(
      m->fit(d.x, d.y,
             {.callbacks = {std::make_shared<callbacks::CSVLogger>(temp_dir() + "/no/such/dir/x.csv")}, .verbose = 0}),
      IOError);
}

/// Puts NaN into row `row` of x when epoch `epoch` begins (fit reads x's storage batch by batch).
std::shared_ptr<callbacks::LambdaCallback> poison(const Tensor& x, int64_t row, int64_t epoch) {
  auto cb = std::make_shared<callbacks::LambdaCallback>();
  cb->on_epoch_begin_fn = [x, row, epoch](int64_t e, const Logs&) {
    if (e == epoch) x.select(0, row).fill_(NAN);
  };
  return cb;
}

TEST(ModelCallbacks, NanLossStopsWithAnErrorNamingEpochAndStep) {
  auto m = small_model();
  m->compile("sgd", "sparse_categorical_crossentropy");
  XY d = blobs(16, 3, 9);
  Tensor x = d.x.clone();
  std::vector<Tensor> before_nan;
  auto cap = std::make_shared<callbacks::LambdaCallback>();
  cap->on_batch_end_fn = [&](int64_t, const Logs&) { before_nan = m->get_weights(); };
  // Row 9 is in the third batch of 4 (step 3) of the second epoch.
  std::string msg = error_of<ValueError>([&] {
    m->fit(x, d.y, {.epochs = 3, .batch_size = 4, .shuffle = false, .callbacks = {poison(x, 9, 1), cap}, .verbose = 0});
  });
  EXPECT_THAT(msg, HasSubstr("epoch 2, step 3"));
  EXPECT_THAT(msg, HasSubstr("TerminateOnNaN"));
  EXPECT_TRUE(same_weights(m->get_weights(), before_nan)) << "the NaN step must not update the weights";
  for (auto& w : m->get_weights())
    for (double v : values(w)) ASSERT_TRUE(std::isfinite(v));
}

TEST(ModelCallbacks, TerminateOnNaNStopsWithoutAnError) {
  auto m = small_model();
  m->compile("sgd", "sparse_categorical_crossentropy");
  XY d = blobs(16, 3, 10);
  Tensor x = d.x.clone();
  std::vector<Tensor> before_nan;
  std::vector<int64_t> batches;
  auto cap = std::make_shared<callbacks::LambdaCallback>();
  cap->on_batch_end_fn = [&](int64_t b, const Logs& l) {
    batches.push_back(b);
    if (std::isfinite(l.at("loss"))) before_nan = m->get_weights();
  };
  ::testing::internal::CaptureStdout();
  callbacks::History h;
  EXPECT_NO_THROW(h = m->fit(x, d.y,
                             {.epochs = 5,
                              .batch_size = 4,
                              .shuffle = false,
                              .callbacks = {poison(x, 9, 1), std::make_shared<callbacks::TerminateOnNaN>(), cap},
                              .verbose = 0}));
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(out, HasSubstr("Batch 2: Invalid loss, terminating training"));
  EXPECT_EQ(h.epochs, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(batches, (std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2}));
  EXPECT_TRUE(same_weights(m->get_weights(), before_nan));
}

// With steps_per_execution, a non-finite loss is found when its execution ends: the error names
// its step and the steps that ran after it; its own update was skipped (compiled and eager).
TEST(ModelCallbacks, NanLossInsideAnExecutionIsFoundAtItsEnd) {
  for (bool eager : {false, true}) {
    SCOPED_TRACE(eager ? "eager" : "compiled");
    auto m = small_model();
    m->compile({.optimizer = "sgd",
                .loss = "sparse_categorical_crossentropy",
                .run_eagerly = eager,
                .steps_per_execution = 3});
    XY d = blobs(16, 3, 9);
    Tensor x = d.x.clone();
    // Row 5 is in step 2 (the second batch of 4) of the second epoch; its execution is steps 1..3.
    std::string msg = error_of<ValueError>([&] {
      m->fit(x, d.y, {.epochs = 3, .batch_size = 4, .shuffle = false, .callbacks = {poison(x, 5, 1)}, .verbose = 0});
    });
    EXPECT_THAT(msg, HasSubstr("epoch 2, step 2"));
    EXPECT_THAT(msg, HasSubstr("steps_per_execution = 3 the later steps of its execution ran, up to step 3"));
    for (auto& w : m->get_weights())
      for (double v : values(w)) ASSERT_TRUE(std::isfinite(v));
    // TerminateOnNaN: the callbacks see the bad step, then training stops.
    x = d.x.clone();
    std::vector<int64_t> batches;
    auto cap = std::make_shared<callbacks::LambdaCallback>();
    cap->on_batch_end_fn = [&](int64_t b, const Logs&) { batches.push_back(b); };
    ::testing::internal::CaptureStdout();
    callbacks::History h;
    EXPECT_NO_THROW(h = m->fit(x, d.y,
                               {.epochs = 3,
                                .batch_size = 4,
                                .shuffle = false,
                                .callbacks = {poison(x, 5, 1), std::make_shared<callbacks::TerminateOnNaN>(), cap},
                                .verbose = 0}));
    std::string out = ::testing::internal::GetCapturedStdout();
    EXPECT_THAT(out, HasSubstr("Batch 1: Invalid loss, terminating training"));
    EXPECT_EQ(batches, (std::vector<int64_t>{2, 3, 1}));
    EXPECT_EQ(h.epochs, (std::vector<int64_t>{0, 1}));
  }
}

}  // namespace
