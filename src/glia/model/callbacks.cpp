// Callbacks: History, the progress bar, early stopping, LR control, CSV logs.
#include "glia/model/callbacks.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "glia/model/model.h"

namespace glia::callbacks {

Model& Callback::model() const {
  GLIA_CHECK(model_ != nullptr, ValueError, "callback used outside fit/evaluate/predict: it has no model");
  return *model_;
}

// --- History

void History::on_train_begin(const Logs&) {
  // A history continues over calls of fit on the same object, as Keras's model.history does.
}

void History::on_epoch_end(int64_t epoch, const Logs& l) {
  epochs.push_back(epoch);
  logs.push_back(l);
}

std::vector<double> History::operator[](const std::string& key) const {
  std::vector<double> v;
  for (auto& l : logs) {
    auto it = l.find(key);
    if (it != l.end()) v.push_back(it->second);
  }
  return v;
}

void History::to_csv(const std::string& path) const {
  std::vector<std::string> keys;
  for (auto& l : logs)
    for (auto& [k, v] : l)
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    if (!f) throw IOError(path, "cannot write the history CSV");
    f << "epoch";
    for (auto& k : keys) f << "," << k;
    f << "\n" << std::setprecision(9);
    for (size_t i = 0; i < logs.size(); ++i) {
      f << epochs[i];
      for (auto& k : keys) {
        auto it = logs[i].find(k);
        f << ",";
        if (it != logs[i].end()) f << it->second;
      }
      f << "\n";
    }
    if (!f.flush()) throw IOError(path, "write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw IOError(path, "cannot rename the temporary file: " + ec.message());
}

// --- ProgbarLogger

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string fmt_time(double s) {
  std::ostringstream os;
  if (s >= 3600)
    os << static_cast<int64_t>(s / 3600) << ":" << std::setw(2) << std::setfill('0')
       << static_cast<int64_t>(s / 60) % 60 << ":" << std::setw(2) << static_cast<int64_t>(s) % 60;
  else if (s >= 60)
    os << static_cast<int64_t>(s / 60) << ":" << std::setw(2) << std::setfill('0') << static_cast<int64_t>(s) % 60;
  else if (s >= 1)
    os << static_cast<int64_t>(std::round(s)) << "s";
  else
    os << static_cast<int64_t>(std::round(s * 1000)) << "ms";
  return os.str();
}

std::string fmt_per_step(double s) {
  std::ostringstream os;
  if (s >= 1)
    os << static_cast<int64_t>(std::round(s)) << "s/step";
  else if (s >= 1e-3)
    os << static_cast<int64_t>(std::round(s * 1e3)) << "ms/step";
  else
    os << static_cast<int64_t>(std::round(s * 1e6)) << "us/step";
  return os.str();
}

/// " - loss: 0.1234 - accuracy: 0.9876 - val_loss: ..." with loss first, like Keras.
std::string fmt_logs(const Logs& logs) {
  std::ostringstream os;
  auto put = [&](const std::string& k, double v) {
    os << " - " << k << ": ";
    if (std::isfinite(v) && v != 0 && std::abs(v) < 1e-3)
      os << std::scientific << std::setprecision(4) << v << std::defaultfloat;
    else
      os << std::fixed << std::setprecision(4) << v << std::defaultfloat;
  };
  for (const char* prefix : {"", "val_"}) {
    std::string p(prefix);
    if (auto it = logs.find(p + "loss"); it != logs.end()) put(it->first, it->second);
    for (auto& [k, v] : logs) {
      bool is_val = k.rfind("val_", 0) == 0;
      if (is_val != !p.empty() || k == p + "loss") continue;
      put(k, v);
    }
  }
  return os.str();
}

}  // namespace

ProgbarLogger::ProgbarLogger(int verbose, std::ostream* out, std::optional<bool> is_terminal)
    : verbose_(verbose), out_(out) {
  tty_ = is_terminal.value_or(out == nullptr && isatty(fileno(stdout)));
}

std::ostream& ProgbarLogger::out() const { return out_ ? *out_ : std::cout; }

void ProgbarLogger::on_train_begin(const Logs&) { in_fit_ = true; }

void ProgbarLogger::on_epoch_begin(int64_t epoch, const Logs&) {
  int64_t epochs = params.count("epochs") ? params.at("epochs") : 0;
  if (tty_ && verbose_ == 1) out() << "Epoch " << epoch + 1 << "/" << epochs << "\n" << std::flush;
  start(params.count("steps") ? params.at("steps") : -1);
}

void ProgbarLogger::start(int64_t steps) {
  steps_ = steps;
  start_time_ = now_s();
  last_draw_ = 0;
  last_width_ = 0;
}

void ProgbarLogger::update(int64_t step, const Logs& logs, bool final) {
  if (verbose_ != 1 || !tty_) return;
  double t = now_s();
  if (!final && t - last_draw_ < 0.05) return;
  last_draw_ = t;
  double elapsed = t - start_time_;
  std::ostringstream line;
  std::string total = steps_ > 0 ? std::to_string(steps_) : "Unknown";
  int digits = static_cast<int>(total.size());
  line << std::setw(digits) << step << "/" << total;
  if (steps_ > 0) {  // Keras's bar: [=====>......]
    const int64_t width = 30;
    int64_t done = std::min(width, width * step / steps_);
    std::string bar;
    if (done > 0) bar = std::string(static_cast<size_t>(done - 1), '=') + (step < steps_ ? '>' : '=');
    bar += std::string(static_cast<size_t>(width - done), '.');
    line << " [" << bar << "]";
  }
  double per = step > 0 ? elapsed / static_cast<double>(step) : 0;
  if (final || steps_ <= 0)
    line << " - " << fmt_time(elapsed) << " " << fmt_per_step(per);
  else
    line << " - ETA: " << fmt_time(per * static_cast<double>(steps_ - step));
  line << fmt_logs(logs);
  std::string s = line.str();
  size_t w = s.size();
  if (w < last_width_) s += std::string(last_width_ - w, ' ');
  last_width_ = w;
  out() << "\r" << s << (final ? "\n" : "") << std::flush;
}

void ProgbarLogger::on_train_batch_end(int64_t batch, const Logs& logs) { update(batch + 1, logs, false); }

void ProgbarLogger::on_epoch_end(int64_t epoch, const Logs& logs) {
  int64_t done_steps = steps_;
  if (tty_ && verbose_ == 1) {
    update(done_steps > 0 ? done_steps : 0, logs, true);
    return;
  }
  // One clean line per epoch (verbose 2, or output that is not a terminal).
  double elapsed = now_s() - start_time_;
  int64_t epochs = params.count("epochs") ? params.at("epochs") : 0;
  out() << "Epoch " << epoch + 1 << "/" << epochs << " - ";
  if (steps_ > 0) out() << steps_ << "/" << steps_ << " - ";
  out() << fmt_time(elapsed);
  if (steps_ > 0) out() << " " << fmt_per_step(elapsed / static_cast<double>(steps_));
  out() << fmt_logs(logs) << "\n" << std::flush;
}

void ProgbarLogger::on_test_begin(const Logs&) {
  if (!in_fit_) start(params.count("steps") ? params.at("steps") : -1);
}
void ProgbarLogger::on_test_batch_end(int64_t batch, const Logs& logs) {
  if (!in_fit_) update(batch + 1, logs, false);
}
void ProgbarLogger::on_test_end(const Logs& logs) {
  if (in_fit_) return;
  if (tty_ && verbose_ == 1) {
    update(steps_ > 0 ? steps_ : 0, logs, true);
  } else {
    double elapsed = now_s() - start_time_;
    out() << "Evaluate - " << fmt_time(elapsed) << fmt_logs(logs) << "\n" << std::flush;
  }
}
void ProgbarLogger::on_predict_begin(const Logs&) { start(params.count("steps") ? params.at("steps") : -1); }
void ProgbarLogger::on_predict_batch_end(int64_t batch, const Logs&) { update(batch + 1, {}, false); }
void ProgbarLogger::on_predict_end(const Logs&) {
  if (tty_ && verbose_ == 1) {
    update(steps_ > 0 ? steps_ : 0, {}, true);
  } else {
    out() << "Predict - " << fmt_time(now_s() - start_time_) << "\n" << std::flush;
  }
}

// --- EarlyStopping

bool maximize_for(const std::string& monitor, const std::string& mode, const char* who) {
  GLIA_CHECK(mode == "auto" || mode == "min" || mode == "max", ValueError, who,
             ": mode must be auto, min or max, got '", mode, "'");
  if (mode != "auto") return mode == "max";
  return monitor.find("acc") != std::string::npos || monitor.find("auc") != std::string::npos ||
         monitor.find("precision") != std::string::npos || monitor.find("recall") != std::string::npos;
}

EarlyStopping::EarlyStopping(EarlyStoppingOptions o) : o_(std::move(o)) {
  maximize_ = maximize_for(o_.monitor, o_.mode, "EarlyStopping");
}

bool EarlyStopping::improved(double v) const { return maximize_ ? v - o_.min_delta > best_ : v + o_.min_delta < best_; }

void EarlyStopping::on_train_begin(const Logs&) {
  wait_ = 0;
  stopped_epoch_ = 0;
  best_epoch_ = 0;
  best_ = maximize_ ? -INFINITY : INFINITY;
  best_weights_.clear();
}

void EarlyStopping::on_epoch_end(int64_t epoch, const Logs& logs) {
  auto it = logs.find(o_.monitor);
  if (it == logs.end()) {
    std::cerr << "EarlyStopping: metric '" << o_.monitor << "' is not in the logs (available:";
    for (auto& [k, v] : logs) std::cerr << " " << k;
    std::cerr << ")\n";
    return;
  }
  if (epoch < o_.start_from_epoch) return;
  double cur = it->second;
  ++wait_;
  if (improved(cur)) {
    best_ = cur;
    best_epoch_ = epoch;
    if (o_.restore_best_weights) best_weights_ = model().get_weights();
    bool beats_baseline = !o_.baseline || (maximize_ ? cur > *o_.baseline : cur < *o_.baseline);
    if (beats_baseline) {
      wait_ = 0;
      return;
    }
  }
  if (wait_ >= o_.patience && epoch > 0) {
    stopped_epoch_ = epoch;
    model().stop_training = true;
  }
}

void EarlyStopping::on_train_end(const Logs&) {
  if (stopped_epoch_ > 0 && o_.verbose > 0) std::cout << "Epoch " << stopped_epoch_ + 1 << ": early stopping\n";
  if (o_.restore_best_weights && !best_weights_.empty()) {
    if (o_.verbose > 0)
      std::cout << "Restoring model weights from the end of the best epoch: " << best_epoch_ + 1 << ".\n";
    model().set_weights(best_weights_);
  }
}

// --- ReduceLROnPlateau

ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions o) : o_(std::move(o)) {
  GLIA_CHECK(o_.factor < 1.0 && o_.factor > 0.0, ValueError, "ReduceLROnPlateau: factor must be in (0, 1), got ",
             o_.factor);
  maximize_ = maximize_for(o_.monitor, o_.mode, "ReduceLROnPlateau");
}

void ReduceLROnPlateau::on_train_begin(const Logs&) {
  best_ = maximize_ ? -INFINITY : INFINITY;
  wait_ = 0;
  cooldown_ = 0;
}

void ReduceLROnPlateau::on_epoch_end(int64_t epoch, const Logs& logs) {
  auto it = logs.find(o_.monitor);
  if (it == logs.end()) {
    std::cerr << "ReduceLROnPlateau: metric '" << o_.monitor << "' is not in the logs\n";
    return;
  }
  double cur = it->second;
  if (cooldown_ > 0) {
    --cooldown_;
    wait_ = 0;
  }
  bool better = maximize_ ? cur > best_ + o_.min_delta : cur < best_ - o_.min_delta;
  if (better) {
    best_ = cur;
    wait_ = 0;
  } else if (cooldown_ == 0) {
    if (++wait_ >= o_.patience) {
      auto& opt = *model().optimizer();
      double old_lr = opt.learning_rate();
      if (old_lr > o_.min_lr) {
        double new_lr = std::max(old_lr * o_.factor, o_.min_lr);
        opt.set_learning_rate(new_lr);
        if (o_.verbose > 0)
          std::cout << "Epoch " << epoch + 1 << ": ReduceLROnPlateau reducing learning rate to " << new_lr << ".\n";
        cooldown_ = o_.cooldown;
        wait_ = 0;
      }
    }
  }
}

// --- LearningRateScheduler

LearningRateScheduler::LearningRateScheduler(std::function<double(int64_t, double)> schedule, int verbose)
    : schedule_(std::move(schedule)), verbose_(verbose) {}

void LearningRateScheduler::on_epoch_begin(int64_t epoch, const Logs&) {
  auto& opt = *model().optimizer();
  double lr = schedule_(epoch, opt.learning_rate());
  GLIA_CHECK(std::isfinite(lr) && lr >= 0, ValueError, "LearningRateScheduler: the schedule gave ", lr, " for epoch ",
             epoch);
  opt.set_learning_rate(lr);
  if (verbose_ > 0)
    std::cout << "Epoch " << epoch + 1 << ": LearningRateScheduler setting learning rate to " << lr << ".\n";
}

void LearningRateScheduler::on_epoch_end(int64_t, const Logs&) {}

// --- CSVLogger

CSVLogger::CSVLogger(std::string filename, char separator, bool append)
    : filename_(std::move(filename)), sep_(separator), append_(append) {}

void CSVLogger::on_train_begin(const Logs&) {
  bool had = append_ && std::filesystem::exists(filename_) && std::filesystem::file_size(filename_) > 0;
  file_.open(filename_, append_ ? std::ios::app : std::ios::trunc);
  if (!file_) throw IOError(filename_, "cannot open the CSV log for writing");
  keys_.clear();
  if (had) keys_.push_back("");  // the header is already there
}

void CSVLogger::on_epoch_end(int64_t epoch, const Logs& logs) {
  if (keys_.empty() || (keys_.size() == 1 && keys_[0].empty())) {
    bool write_header = keys_.empty();
    keys_.clear();
    for (auto& [k, v] : logs) keys_.push_back(k);
    if (write_header) {
      file_ << "epoch";
      for (auto& k : keys_) file_ << sep_ << k;
      file_ << "\n";
    }
  }
  file_ << epoch << std::setprecision(9);
  for (auto& k : keys_) {
    file_ << sep_;
    if (auto it = logs.find(k); it != logs.end()) file_ << it->second;
  }
  file_ << "\n" << std::flush;
}

void CSVLogger::on_train_end(const Logs&) { file_.close(); }

// --- TerminateOnNaN

void TerminateOnNaN::on_train_batch_end(int64_t batch, const Logs& logs) {
  auto it = logs.find("loss");
  if (it != logs.end() && !std::isfinite(it->second)) {
    std::cout << "Batch " << batch << ": Invalid loss, terminating training\n";
    model().stop_training = true;
  }
}

}  // namespace glia::callbacks
