// Checkpoint, CheckpointManager, ModelCheckpoint and BackupAndRestore: restored training state
// continues bit for bit, old checkpoints are pruned, best models are kept, and an interrupted fit
// resumes to the same final weights as a run that never stopped. (The killed-process version of
// the last is in resume_process_test.cpp.)
#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>

#include "model/model_testing.h"

using namespace glia;
using glia::testing::all_close;
using glia::testing::error_of;
using glia::testing::random_classification;
using glia::testing::same_weights;
using glia::testing::temp_dir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

// Dropout and batch norm: the random generator and the non-trainable statistics are part of the
// state a checkpoint must carry for the continuation to match.
std::shared_ptr<Sequential> net(int64_t hidden = 8) {
  return std::make_shared<Sequential>(std::vector<LayerPtr>{
      layers::InputLayer({6}), layers::Dense(hidden, {.activation = "relu"}), layers::BatchNormalization(),
      layers::Dropout(0.25), layers::Dense(3, {.activation = "softmax"})});
}

std::shared_ptr<Sequential> compiled_net(const char* opt, bool eager, uint64_t seed = 11) {
  manual_seed(seed);
  auto m = net();
  m->compile({.optimizer = opt, .loss = "sparse_categorical_crossentropy", .run_eagerly = eager});
  return m;
}

}  // namespace

TEST(Checkpoint, RestoreRewindsTrainingExactlyForEveryOptimizer) {
  auto d = random_classification(16, 6, 3, 5);
  for (bool eager : {false, true})
    for (const char* opt : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}) {
      SCOPED_TRACE(std::string(opt) + (eager ? " eager" : " compiled"));
      auto m = compiled_net(opt, eager);
      for (int i = 0; i < 2; ++i) m->train_on_batch(d.x, d.y);
      std::string path = temp_dir() + "/rewind.glia";
      Checkpoint ckpt(*m);
      ckpt.save(path, {{"note", "after two steps"}});
      std::vector<double> first;
      for (int i = 0; i < 3; ++i) first.push_back(m->train_on_batch(d.x, d.y).at("loss"));
      auto after_first = m->get_weights();
      // Restoring into the same model, whose compiled step (and optimizer slots) already exist.
      Config extra = ckpt.restore(path);
      EXPECT_EQ(extra.at("note"), "after two steps");
      for (int i = 0; i < 3; ++i) EXPECT_EQ(m->train_on_batch(d.x, d.y).at("loss"), first[i]) << "step " << i;
      EXPECT_TRUE(same_weights(m->get_weights(), after_first));
    }
}

TEST(Checkpoint, RestoresIntoAFreshModelOfTheSameArchitecture) {
  auto d = random_classification(16, 6, 3, 6);
  auto a = compiled_net("adam", false, 1);
  for (int i = 0; i < 3; ++i) a->train_on_batch(d.x, d.y);
  std::string path = temp_dir() + "/fresh.glia";
  Checkpoint(*a).save(path);
  auto b = compiled_net("adam", false, 99);  // other initial weights
  Checkpoint(*b).restore(path);
  EXPECT_TRUE(same_weights(b->get_weights(), a->get_weights()));
  EXPECT_EQ(b->optimizer()->iterations(), 3);
  // The generator is restored too: from the same checkpoint both continue with the same dropout
  // masks (the generator is global, so each model's run starts with its own restore).
  std::vector<double> la, lb;
  Checkpoint(*a).restore(path);
  for (int i = 0; i < 2; ++i) la.push_back(a->train_on_batch(d.x, d.y).at("loss"));
  Checkpoint(*b).restore(path);
  for (int i = 0; i < 2; ++i) lb.push_back(b->train_on_batch(d.x, d.y).at("loss"));
  EXPECT_EQ(la, lb);
  EXPECT_TRUE(same_weights(b->get_weights(), a->get_weights()));
}

TEST(Checkpoint, MismatchedOrBadFilesChangeNothingAndSayWhy) {
  std::string dir = temp_dir();
  auto small = compiled_net("sgd", false);
  Checkpoint(*small).save(dir + "/small.glia");
  manual_seed(2);
  auto wide = std::make_shared<Sequential>(std::vector<LayerPtr>{
      layers::InputLayer({6}), layers::Dense(9, {.activation = "relu"}), layers::BatchNormalization(),
      layers::Dropout(0.25), layers::Dense(3, {.activation = "softmax"})});
  wide->compile("sgd", "sparse_categorical_crossentropy");
  auto before = wide->get_weights();
  auto state = random::get_state();
  EXPECT_THAT(error_of<ShapeError>([&] { Checkpoint(*wide).restore(dir + "/small.glia"); }),
              HasSubstr("has shape [6, 8], the model's has [6, 9]"));
  EXPECT_TRUE(same_weights(wide->get_weights(), before));
  EXPECT_EQ(random::get_state().offset, state.offset);

  EXPECT_THAT(error_of<IOError>([&] { Checkpoint(*wide).restore(dir + "/none.glia"); }), HasSubstr("none.glia"));
  std::ofstream(dir + "/text.glia") << "not a zip";
  EXPECT_THAT(error_of<IOError>([&] { Checkpoint(*wide).restore(dir + "/text.glia"); }), HasSubstr("text.glia"));
  small->save(dir + "/model.glia");  // a model file, not a checkpoint
  EXPECT_THAT(error_of<IOError>([&] { Checkpoint(*small).restore(dir + "/model.glia"); }),
              HasSubstr("is not a checkpoint"));
  io::write_zip(dir + "/partial.glia", {{"metadata.json", "{}"}, {"model.safetensors", ""}});
  EXPECT_THAT(error_of<IOError>([&] { Checkpoint(*small).restore(dir + "/partial.glia"); }),
              HasSubstr("optimizer.safetensors"));
}

TEST(CheckpointManager, KeepsTheLastNAndContinuesNumberingAcrossManagers) {
  std::string dir = temp_dir() + "/ckpts";
  auto m = compiled_net("sgd", false);
  auto d = random_classification(8, 6, 3, 1);
  {
    CheckpointManager mgr(Checkpoint(*m), dir, 2);
    EXPECT_FALSE(mgr.latest_checkpoint());
    EXPECT_FALSE(mgr.restore_or_initialize());
    for (int i = 1; i <= 4; ++i) {
      m->train_on_batch(d.x, d.y);
      EXPECT_EQ(mgr.save({}, {{"i", i}}), dir + "/ckpt-" + std::to_string(i) + ".glia");
    }
    EXPECT_EQ(mgr.checkpoints(), (std::vector<std::string>{dir + "/ckpt-3.glia", dir + "/ckpt-4.glia"}));
    EXPECT_FALSE(fs::exists(dir + "/ckpt-1.glia"));
  }
  auto w4 = m->get_weights();
  m->train_on_batch(d.x, d.y);
  std::ofstream(dir + "/ckpt-x.glia") << "ignored: not a number";
  CheckpointManager again(Checkpoint(*m), dir, 2);  // as a restarted process would
  EXPECT_EQ(*again.latest_checkpoint(), dir + "/ckpt-4.glia");
  auto extra = again.restore_or_initialize();
  ASSERT_TRUE(extra);
  EXPECT_EQ(extra->at("i"), 4);
  EXPECT_TRUE(same_weights(m->get_weights(), w4));
  EXPECT_EQ(again.save(), dir + "/ckpt-5.glia");
  EXPECT_EQ(again.checkpoints().size(), 2u);
  CheckpointManager all(Checkpoint(*m), dir, 0);
  all.save(10);
  all.save();
  EXPECT_EQ(all.checkpoints().back(), dir + "/ckpt-11.glia");
  EXPECT_EQ(all.checkpoints().size(), 4u);
  EXPECT_THAT(error_of<ValueError>([&] { CheckpointManager(Checkpoint(*m), dir, -1); }), HasSubstr("max_to_keep"));
}

TEST(ModelCheckpoint, FormatsFilePathsAsPythonDoes) {
  Logs v = {{"epoch", 3}, {"val_loss", 0.123456}, {"acc", 0.5}};
  EXPECT_EQ(callbacks::format_filepath("m-{epoch:02d}-{val_loss:.3f}.glia", v), "m-03-0.123.glia");
  EXPECT_EQ(callbacks::format_filepath("{epoch}_{acc}_{{x}}", v), "3_0.5_{x}");
  EXPECT_EQ(callbacks::format_filepath("{val_loss:.2e}", v), "1.23e-01");
  EXPECT_THAT(error_of<ValueError>([&] { callbacks::format_filepath("{loss}", v); }),
              HasSubstr("names 'loss', which is not in the logs"));
  EXPECT_THAT(error_of<ValueError>([&] { callbacks::format_filepath("{val_loss:d}", v); }),
              HasSubstr("not an integer"));
  EXPECT_THAT(error_of<ValueError>([&] { callbacks::format_filepath("{acc:>5x}", v); }), HasSubstr("cannot use"));
  EXPECT_THAT(error_of<ValueError>([&] { callbacks::format_filepath("m-{epoch", v); }), HasSubstr("unmatched"));
}

TEST(ModelCheckpoint, SavesEachEpochOrOnlyImprovements) {
  auto d = random_classification(64, 6, 3, 2);
  std::string dir = temp_dir();
  auto m = compiled_net("adam", false);
  auto every = std::make_shared<callbacks::ModelCheckpoint>(dir + "/every-{epoch:02d}.glia");
  auto best = std::make_shared<callbacks::ModelCheckpoint>(
      dir + "/best-{epoch}.weights.safetensors",
      callbacks::ModelCheckpointOptions{.monitor = "val_loss", .save_best_only = true, .save_weights_only = true});
  auto hist = m->fit(
      d.x, d.y, {.epochs = 6, .batch_size = 16, .validation_split = 0.25, .callbacks = {every, best}, .verbose = 0});
  auto val = hist["val_loss"];
  ASSERT_EQ(val.size(), 6u);
  double best_so_far = INFINITY;
  for (int e = 0; e < 6; ++e) {
    char name[64];
    std::snprintf(name, sizeof name, "/every-%02d.glia", e + 1);
    EXPECT_TRUE(fs::exists(dir + name)) << name;
    bool improved = val[static_cast<size_t>(e)] < best_so_far;
    if (improved) best_so_far = val[static_cast<size_t>(e)];
    EXPECT_EQ(fs::exists(dir + "/best-" + std::to_string(e + 1) + ".weights.safetensors"), improved) << "epoch " << e;
  }
  EXPECT_EQ(best->best(), best_so_far);
  // The last epoch's model file is the trained model.
  ModelPtr last = load_model(dir + "/every-06.glia");
  EXPECT_TRUE(same_weights(last->get_weights(), m->get_weights()));
  // save_freq in batches: 48 training samples / 16 = 3 batches per epoch, 2 epochs, every 2 batches.
  auto batches = std::make_shared<callbacks::ModelCheckpoint>(dir + "/b-{epoch}-{loss:.6f}.glia",
                                                              callbacks::ModelCheckpointOptions{.save_freq = 2});
  m->fit(d.x, d.y, {.epochs = 2, .batch_size = 16, .validation_split = 0.25, .callbacks = {batches}, .verbose = 0});
  int n = 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().rfind("b-", 0) == 0;
  EXPECT_EQ(n, 3);
}

namespace {

/// Stops the process's work at (epoch, batch) by throwing, as a crash would, after the backups
/// up to there were written.
struct Crash : callbacks::Callback {
  int64_t epoch, batch, cur = 0;
  Crash(int64_t e, int64_t b) : epoch(e), batch(b) {}
  void on_epoch_begin(int64_t e, const Logs&) override { cur = e; }
  void on_train_batch_end(int64_t b, const Logs&) override {
    if (cur == epoch && b == batch) throw std::runtime_error("simulated crash");
  }
};

struct FitCase {
  const char* name;
  bool eager;
  int64_t save_freq;
  int64_t steps_per_epoch;  // 0: whole passes
  int64_t crash_epoch, crash_batch;
};

std::vector<Tensor> run_fit(const FitCase& c, const glia::testing::XY& d, const std::string& backup,
                            std::optional<std::pair<int64_t, int64_t>> crash, int64_t* resumed_epoch = nullptr) {
  auto m = compiled_net("adam", c.eager, 21);
  std::vector<callbacks::CallbackPtr> cbs;
  std::shared_ptr<callbacks::BackupAndRestore> bar;
  if (!backup.empty()) {
    bar = std::make_shared<callbacks::BackupAndRestore>(backup,
                                                        callbacks::BackupAndRestoreOptions{.save_freq = c.save_freq});
    cbs.push_back(bar);
  }
  if (crash) cbs.push_back(std::make_shared<Crash>(crash->first, crash->second));
  if (c.steps_per_epoch > 0) {
    // A dataset pipeline whose passes span epochs: 40 samples / 8 = 5 batches per pass, 3 steps
    // per epoch.
    auto ds = data::Dataset::from_tensors({d.x, d.y}).shuffle(40).batch(8).repeat();
    m->fit(ds, {.epochs = 4, .callbacks = cbs, .verbose = 0, .steps_per_epoch = c.steps_per_epoch});
  } else {
    m->fit(d.x, d.y, {.epochs = 4, .batch_size = 8, .callbacks = cbs, .verbose = 0});
  }
  if (resumed_epoch && bar) *resumed_epoch = bar->resumed_from() ? bar->resumed_from()->first : -1;
  return m->get_weights();
}

}  // namespace

TEST(BackupAndRestore, AnInterruptedFitResumesToTheSameWeights) {
  auto d = random_classification(40, 6, 3, 9);
  for (const FitCase& c :
       {FitCase{"epoch backups, compiled", false, 0, 0, 2, 1}, FitCase{"epoch backups, eager", true, 0, 0, 1, 4},
        FitCase{"every 2 batches, mid-epoch", false, 2, 0, 2, 3},
        FitCase{"every 3 batches, passes across epochs", false, 3, 3, 2, 1}}) {
    SCOPED_TRACE(c.name);
    std::vector<Tensor> straight = run_fit(c, d, "", std::nullopt);
    std::string dir = temp_dir() + "/backup";
    fs::remove_all(dir);
    EXPECT_THROW(run_fit(c, d, dir, std::make_pair(c.crash_epoch, c.crash_batch)), std::runtime_error);
    ASSERT_TRUE(fs::exists(dir + "/backup.glia"));
    int64_t resumed_epoch = -2;
    std::vector<Tensor> resumed = run_fit(c, d, dir, std::nullopt, &resumed_epoch);
    EXPECT_GE(resumed_epoch, 1);
    EXPECT_TRUE(same_weights(resumed, straight));
    EXPECT_FALSE(fs::exists(dir + "/backup.glia")) << "deleted once fit ends normally";
  }
}

TEST(BackupAndRestore, ABackupOfAnotherModelIsAnErrorNotASilentRestart) {
  auto d = random_classification(16, 6, 3, 4);
  std::string dir = temp_dir() + "/other";
  auto bar = std::make_shared<callbacks::BackupAndRestore>(dir, callbacks::BackupAndRestoreOptions{.save_freq = 1});
  auto m = compiled_net("sgd", false);
  EXPECT_THROW(
      m->fit(d.x, d.y, {.epochs = 2, .batch_size = 8, .callbacks = {bar, std::make_shared<Crash>(0, 0)}, .verbose = 0}),
      std::runtime_error);
  manual_seed(1);
  auto other = std::make_shared<Sequential>(
      std::vector<LayerPtr>{layers::InputLayer({6}), layers::Dense(3, {.activation = "softmax"})});
  other->compile("sgd", "sparse_categorical_crossentropy");
  EXPECT_THAT(error_of<ValueError>([&] { other->fit(d.x, d.y, {.epochs = 1, .callbacks = {bar}, .verbose = 0}); }),
              HasSubstr("holds weights that model"));
}
