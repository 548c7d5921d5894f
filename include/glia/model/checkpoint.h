// Checkpoints: the training state of a model, saved and restored exactly.
//
//   glia::Checkpoint ckpt(model);                       // weights + optimizer + random state
//   glia::CheckpointManager manager(ckpt, "ckpts", 3);  // keeps the last 3
//   if (auto path = manager.latest_checkpoint()) ckpt.restore(*path);
//   ... manager.save(); ...
//
// The callbacks ModelCheckpoint (save the model, or the best one, as training goes) and
// BackupAndRestore (resume an interrupted fit where it stopped) are built on them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "glia/model/callbacks.h"
#include "glia/nn/config.h"

namespace glia {

class Model;

/// The state of a model's training: all its weights (trainable or not: batch-norm statistics
/// too), its optimizer's slots, step count and learning rate, the global random generator, and
/// any JSON the caller adds. A checkpoint holds no architecture: restore it into the same model
/// built by the same code (Model::save writes a model with its architecture).
class Checkpoint {
 public:
  explicit Checkpoint(Model& model) : model_(&model) {}
  /// Writes the state to `path` (a zip: metadata.json, model.safetensors, optimizer.safetensors),
  /// atomically: a crash leaves the previous file whole. `extra` is kept in metadata.json.
  void save(const std::string& path, const Config& extra = Config::object()) const;
  /// Restores the state saved at `path` and returns its `extra`. All or nothing: a file that does
  /// not match the model (missing weights, other shapes) changes nothing and throws. IOError for a
  /// missing, truncated or malformed file, naming it and the problem.
  Config restore(const std::string& path) const;
  Model& model() const { return *model_; }

 private:
  Model* model_;
};

/// Numbered checkpoints in a directory ("ckpt-1.glia", "ckpt-2.glia", ...), keeping the last
/// `max_to_keep` (0: all), as tf.train.CheckpointManager. The directory is the whole state: a new
/// manager over it (a restarted process) continues the numbering and the pruning.
class CheckpointManager {
 public:
  CheckpointManager(Checkpoint checkpoint, std::string directory, int max_to_keep = 5, std::string prefix = "ckpt");
  /// Saves the next checkpoint (number `number`, or one more than the latest), then deletes the
  /// oldest beyond max_to_keep. Returns its path.
  std::string save(std::optional<int64_t> number = {}, const Config& extra = Config::object());
  /// The newest checkpoint's path, if any.
  std::optional<std::string> latest_checkpoint() const;
  /// All checkpoints in the directory, oldest first.
  std::vector<std::string> checkpoints() const;
  /// Restores the latest checkpoint if there is one and returns its extra (nullopt when none).
  std::optional<Config> restore_or_initialize();
  const std::string& directory() const { return dir_; }
  const Checkpoint& checkpoint() const { return ckpt_; }

 private:
  std::vector<std::pair<int64_t, std::string>> list() const;
  Checkpoint ckpt_;
  std::string dir_;
  int max_to_keep_;
  std::string prefix_;
};

namespace callbacks {

struct ModelCheckpointOptions {
  /// The metric that decides the best model (with save_best_only).
  std::string monitor = "val_loss";
  int verbose = 0;
  /// Save only when `monitor` improves on the best so far (the file is overwritten).
  bool save_best_only = false;
  /// save_weights (a safetensors file) instead of Model::save (a .glia model file).
  bool save_weights_only = false;
  std::string mode = "auto";  // "min", "max" or "auto" (max for accuracy-like names)
  /// Save every `save_freq` batches instead of at each epoch end (0).
  int64_t save_freq = 0;
  /// The value to beat first (with save_best_only).
  std::optional<double> initial_value_threshold = {};
};

/// Saves the model as training goes (keras.callbacks.ModelCheckpoint). `filepath` may hold
/// Python-style fields filled from the epoch and the logs: "model-{epoch:02d}-{val_loss:.3f}.glia"
/// (epoch counts from 1).
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string filepath, ModelCheckpointOptions o = {});
  void on_train_begin(const Logs&) override;
  void on_epoch_begin(int64_t epoch, const Logs&) override;
  void on_train_batch_end(int64_t batch, const Logs& logs) override;
  void on_epoch_end(int64_t epoch, const Logs& logs) override;
  /// The best value of `monitor` seen so far (infinity in the worse direction before any).
  double best() const { return best_; }

 private:
  void save(int64_t epoch, const Logs& logs);
  std::string filepath_;
  ModelCheckpointOptions o_;
  bool maximize_ = false;
  double best_ = 0;
  int64_t epoch_ = 0, batches_ = 0;
};

/// Fills Python-style fields ("{epoch:02d}", "{val_loss:.4f}", "{loss}") of `pattern` from
/// `values`; ValueError naming a field that has no value or a format it does not understand.
std::string format_filepath(const std::string& pattern, const Logs& values);

struct BackupAndRestoreOptions {
  /// Back up at each epoch end (0) or every `save_freq` batches.
  int64_t save_freq = 0;
  /// Delete the backup when fit ends normally (an interrupted run keeps it to resume from).
  bool delete_checkpoint = true;
};

/// Makes an interrupted fit resumable (keras.callbacks.BackupAndRestore): it backs the training
/// state up to `backup_dir` as training goes (weights, optimizer, random generator, the data's
/// shuffle state, the epoch and batch reached); when fit starts and a backup is there, it restores
/// it and fit continues from where the backup was taken. A process killed mid-run and started
/// again with the same command ends with the same weights as a run never interrupted.
class BackupAndRestore : public Callback {
 public:
  explicit BackupAndRestore(std::string backup_dir, BackupAndRestoreOptions o = {});
  void on_train_begin(const Logs&) override;
  void on_train_batch_end(int64_t batch, const Logs& logs) override;
  void on_epoch_end(int64_t epoch, const Logs& logs) override;
  void on_train_end(const Logs&) override;
  /// The file the backup is written to.
  std::string backup_path() const;
  /// Where the last on_train_begin resumed from: {epoch, batch} (nullopt when it started afresh).
  std::optional<std::pair<int64_t, int64_t>> resumed_from() const { return resumed_; }

 private:
  void backup();
  std::string dir_;
  BackupAndRestoreOptions o_;
  std::optional<std::pair<int64_t, int64_t>> resumed_;
  int64_t batches_since_ = 0;
};

}  // namespace callbacks
}  // namespace glia
