// Callbacks (keras.callbacks): hooks into fit / evaluate / predict.
#pragma once

#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "glia/core/tensor.h"

namespace glia {

class Model;
/// Metric name -> value ("loss", "accuracy", "val_loss", ...).
using Logs = std::map<std::string, double>;

namespace callbacks {

/// Where fit stands, in the terms needed to continue it later: the epoch and batch to go on
/// from, and how to get the data's next batch (set the dataset's shuffle state, start a pass,
/// skip `pass_step` batches).
struct ResumePoint {
  int64_t epoch = 0;
  int64_t step = 0;
  int64_t pass_step = 0;
  std::vector<uint64_t> shuffle_state;
};

/// fit's progress, for callbacks that back training up and resume it (BackupAndRestore).
struct FitState {
  /// Where training would go on from if it stopped now (kept current by fit before each
  /// on_train_batch_end and on_epoch_end).
  ResumePoint here;
  /// Set by a callback in on_train_begin to make fit continue from there.
  std::optional<ResumePoint> resume;
};

/// Subclass and override the hooks you need; `model()` is the model being trained.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(const Logs&) {}
  virtual void on_train_end(const Logs&) {}
  virtual void on_epoch_begin(int64_t /*epoch*/, const Logs&) {}
  virtual void on_epoch_end(int64_t /*epoch*/, const Logs&) {}
  virtual void on_train_batch_begin(int64_t /*batch*/, const Logs&) {}
  virtual void on_train_batch_end(int64_t /*batch*/, const Logs&) {}
  virtual void on_test_begin(const Logs&) {}
  virtual void on_test_end(const Logs&) {}
  virtual void on_test_batch_begin(int64_t /*batch*/, const Logs&) {}
  virtual void on_test_batch_end(int64_t /*batch*/, const Logs&) {}
  virtual void on_predict_begin(const Logs&) {}
  virtual void on_predict_end(const Logs&) {}
  virtual void on_predict_batch_begin(int64_t /*batch*/, const Logs&) {}
  virtual void on_predict_batch_end(int64_t /*batch*/, const Logs&) {}

  void set_model(Model* m) { model_ = m; }
  Model& model() const;
  /// fit's parameters, for callbacks that need them: "epochs", "steps", "verbose".
  std::map<std::string, int64_t> params;
  /// Set while fit runs (null otherwise).
  FitState* fit_state = nullptr;

 private:
  Model* model_ = nullptr;
};
using CallbackPtr = std::shared_ptr<Callback>;

/// What fit returns: every epoch's logs.
class History : public Callback {
 public:
  void on_train_begin(const Logs&) override;
  void on_epoch_end(int64_t epoch, const Logs& logs) override;
  /// Values of one metric per epoch ("loss", "val_accuracy", ...); empty if never logged.
  std::vector<double> operator[](const std::string& key) const;
  std::vector<int64_t> epochs;
  std::vector<Logs> logs;
  /// Writes epoch,metric... as CSV (header line first).
  void to_csv(const std::string& path) const;
};

/// Keras's progress bar. On a terminal: a bar redrawn in place with step count, ETA or
/// elapsed time, time per step and running metrics. Not on a terminal (a log file): one
/// clean line per epoch, without control characters. verbose: 1 = bar, 2 = one line per epoch.
class ProgbarLogger : public Callback {
 public:
  explicit ProgbarLogger(int verbose = 1, std::ostream* out = nullptr, std::optional<bool> is_terminal = {});
  void on_train_begin(const Logs&) override;
  void on_epoch_begin(int64_t epoch, const Logs&) override;
  void on_train_batch_end(int64_t batch, const Logs& logs) override;
  void on_epoch_end(int64_t epoch, const Logs& logs) override;
  void on_test_begin(const Logs&) override;
  void on_test_batch_end(int64_t batch, const Logs& logs) override;
  void on_test_end(const Logs& logs) override;
  void on_predict_begin(const Logs&) override;
  void on_predict_batch_end(int64_t batch, const Logs&) override;
  void on_predict_end(const Logs&) override;

 private:
  void start(int64_t steps);
  void update(int64_t step, const Logs& logs, bool final);
  std::ostream& out() const;
  int verbose_;
  std::ostream* out_;
  bool tty_;
  bool in_fit_ = false;
  int64_t steps_ = 0;
  double start_time_ = 0, last_draw_ = 0;
  size_t last_width_ = 0;
};

/// Whether a better `monitor` is larger: mode "max" or "min", or "auto" (larger for accuracy-like
/// names: acc, auc, precision, recall). ValueError naming `who` for another mode.
bool maximize_for(const std::string& monitor, const std::string& mode, const char* who);

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;
  int64_t patience = 0;
  std::string mode = "auto";  // "min", "max" or "auto" (max for accuracy-like names)
  std::optional<double> baseline = {};
  bool restore_best_weights = false;
  int64_t start_from_epoch = 0;
  int verbose = 0;
};
/// Stops training when `monitor` stops improving for `patience` epochs.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions o = {});
  void on_train_begin(const Logs&) override;
  void on_epoch_end(int64_t epoch, const Logs& logs) override;
  void on_train_end(const Logs&) override;
  /// The epoch training stopped at (0 if it did not stop early).
  int64_t stopped_epoch() const { return stopped_epoch_; }
  int64_t best_epoch() const { return best_epoch_; }

 private:
  bool improved(double v) const;
  EarlyStoppingOptions o_;
  bool maximize_ = false;
  int64_t wait_ = 0, stopped_epoch_ = 0, best_epoch_ = 0;
  double best_ = 0;
  std::vector<Tensor> best_weights_;
};

struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";
  double factor = 0.1;
  int64_t patience = 10;
  std::string mode = "auto";
  double min_delta = 1e-4;
  int64_t cooldown = 0;
  double min_lr = 0.0;
  int verbose = 0;
};
/// Multiplies the learning rate by `factor` when `monitor` has not improved for `patience` epochs.
class ReduceLROnPlateau : public Callback {
 public:
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions o = {});
  void on_train_begin(const Logs&) override;
  void on_epoch_end(int64_t epoch, const Logs& logs) override;

 private:
  ReduceLROnPlateauOptions o_;
  bool maximize_ = false;
  double best_ = 0;
  int64_t wait_ = 0, cooldown_ = 0;
};

/// Sets the learning rate at each epoch begin to schedule(epoch, current_lr).
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<double(int64_t epoch, double lr)> schedule, int verbose = 0);
  void on_epoch_begin(int64_t epoch, const Logs&) override;
  void on_epoch_end(int64_t epoch, const Logs& logs) override;

 private:
  std::function<double(int64_t, double)> schedule_;
  int verbose_;
};

/// Streams epoch results to a CSV file (epoch,metric...), appending when asked.
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::string filename, char separator = ',', bool append = false);
  void on_train_begin(const Logs&) override;
  void on_epoch_end(int64_t epoch, const Logs& logs) override;
  void on_train_end(const Logs&) override;

 private:
  std::string filename_;
  char sep_;
  bool append_;
  std::ofstream file_;
  std::vector<std::string> keys_;
};

/// Stops training when the loss becomes NaN or infinite; says at which batch.
class TerminateOnNaN : public Callback {
 public:
  void on_train_batch_end(int64_t batch, const Logs& logs) override;
};

/// A callback from lambdas, for one-off hooks.
class LambdaCallback : public Callback {
 public:
  std::function<void(int64_t, const Logs&)> on_epoch_begin_fn, on_epoch_end_fn, on_batch_begin_fn, on_batch_end_fn;
  std::function<void(const Logs&)> on_train_begin_fn, on_train_end_fn;
  void on_epoch_begin(int64_t e, const Logs& l) override {
    if (on_epoch_begin_fn) on_epoch_begin_fn(e, l);
  }
  void on_epoch_end(int64_t e, const Logs& l) override {
    if (on_epoch_end_fn) on_epoch_end_fn(e, l);
  }
  void on_train_batch_begin(int64_t b, const Logs& l) override {
    if (on_batch_begin_fn) on_batch_begin_fn(b, l);
  }
  void on_train_batch_end(int64_t b, const Logs& l) override {
    if (on_batch_end_fn) on_batch_end_fn(b, l);
  }
  void on_train_begin(const Logs& l) override {
    if (on_train_begin_fn) on_train_begin_fn(l);
  }
  void on_train_end(const Logs& l) override {
    if (on_train_end_fn) on_train_end_fn(l);
  }
};

}  // namespace callbacks
}  // namespace glia
