// Checkpoint, CheckpointManager, and the callbacks ModelCheckpoint and BackupAndRestore.
#include "glia/model/checkpoint.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <system_error>

#include "glia/core/random.h"
#include "glia/io/safetensors.h"
#include "glia/io/zip.h"
#include "glia/model/model.h"
#include "glia/model/weights_io.h"
#include "glia/nn/config_int.h"
#include "glia/version.h"

namespace glia {

namespace fs = std::filesystem;

namespace {
constexpr int kCheckpointVersion = 1;
constexpr const char* kFormat = "glia.checkpoint";
}  // namespace

// --- Checkpoint

void Checkpoint::save(const std::string& path, const Config& extra) const {
  random::GeneratorState rng = random::get_state();
  Config meta = {{"format", kFormat},
                 {"format_version", kCheckpointVersion},
                 {"glia_version", version()},
                 {"date", detail::utc_now()},
                 {"model", model_->name()},
                 {"random", {{"seed", rng.seed}, {"offset", rng.offset}}},
                 {"extra", extra}};
  io::write_zip(path, {{"metadata.json", meta.dump(2)},
                       {"model.safetensors", io::to_safetensors(detail::weight_tensors(*model_, "Checkpoint.save"))},
                       {"optimizer.safetensors", io::to_safetensors(detail::optimizer_tensors(*model_))}});
}

Config Checkpoint::restore(const std::string& path) const {
  auto members = io::read_zip(path, {"metadata.json", "model.safetensors", "optimizer.safetensors"});
  Config meta = detail::parse_json_member(members, "metadata.json", path);
  if (meta.value("format", "") != kFormat)
    throw IOError(path, std::string("is not a checkpoint (metadata.json must say \"format\": \"") + kFormat +
                            "\"; a model file written by Model::save loads with glia::load_model)");
  detail::check_format_version(meta, path, kCheckpointVersion);
  random::GeneratorState rng{};
  try {
    rng = {meta.at("random").at("seed").get<uint64_t>(), meta.at("random").at("offset").get<uint64_t>()};
  } catch (const Config::exception& e) {
    throw IOError(path, std::string("metadata.json: malformed \"random\": ") + e.what());
  }
  io::SafetensorsFile weights = io::from_safetensors(members.at("model.safetensors"), path + ": model.safetensors");
  io::SafetensorsFile opt = io::from_safetensors(members.at("optimizer.safetensors"), path + ": optimizer.safetensors");
  // Everything that can fail is checked before anything changes: the optimizer's state is
  // validated by load_state before it assigns, the weights by assign_weights.
  detail::assign_weights(*model_, weights.tensors, path, "Checkpoint.restore", /*check_only=*/true);
  if (model_->compiled() && !opt.tensors.empty())
    model_->optimizer()->load_state(std::map<std::string, Tensor>(opt.tensors.begin(), opt.tensors.end()));
  detail::assign_weights(*model_, weights.tensors, path, "Checkpoint.restore");
  random::set_state(rng);
  return meta.contains("extra") ? meta["extra"] : Config::object();
}

// --- CheckpointManager

CheckpointManager::CheckpointManager(Checkpoint checkpoint, std::string directory, int max_to_keep, std::string prefix)
    : ckpt_(checkpoint), dir_(std::move(directory)), max_to_keep_(max_to_keep), prefix_(std::move(prefix)) {
  GLIA_CHECK(max_to_keep_ >= 0, ValueError, "CheckpointManager: max_to_keep must be >= 0 (0 keeps all), got ",
             max_to_keep_);
  GLIA_CHECK(!prefix_.empty() && prefix_.find('/') == std::string::npos, ValueError,
             "CheckpointManager: prefix must be a plain file name part, got '", prefix_, "'");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw IOError(dir_, "cannot create the checkpoint directory: " + ec.message());
}

std::vector<std::pair<int64_t, std::string>> CheckpointManager::list() const {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  fs::directory_iterator it(dir_, ec), end;
  if (ec) throw IOError(dir_, "cannot list the checkpoint directory: " + ec.message());
  const std::string head = prefix_ + "-", tail = ".glia";
  for (; it != end; it.increment(ec)) {
    if (ec) throw IOError(dir_, "cannot list the checkpoint directory: " + ec.message());
    std::string name = it->path().filename().string();
    if (name.size() <= head.size() + tail.size() || name.compare(0, head.size(), head) != 0 ||
        name.compare(name.size() - tail.size(), tail.size(), tail) != 0)
      continue;
    std::string num = name.substr(head.size(), name.size() - head.size() - tail.size());
    if (num.size() > 18 || num.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(num), it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string CheckpointManager::save(std::optional<int64_t> number, const Config& extra) {
  auto have = list();
  int64_t n = number ? *number : (have.empty() ? 1 : have.back().first + 1);
  GLIA_CHECK(n >= 0, ValueError, "CheckpointManager.save: the checkpoint number must be >= 0, got ", n);
  std::string path = (fs::path(dir_) / (prefix_ + "-" + std::to_string(n) + ".glia")).string();
  ckpt_.save(path, extra);
  if (max_to_keep_ > 0) {
    have = list();
    // The one just written is kept whatever its number.
    size_t excess = have.size() > static_cast<size_t>(max_to_keep_) ? have.size() - max_to_keep_ : 0;
    for (size_t i = 0; i < have.size() && excess > 0; ++i) {
      if (have[i].second == path) continue;
      std::error_code ec;
      fs::remove(have[i].second, ec);
      if (ec) throw IOError(have[i].second, "cannot delete an old checkpoint: " + ec.message());
      --excess;
    }
  }
  return path;
}

std::optional<std::string> CheckpointManager::latest_checkpoint() const {
  auto have = list();
  if (have.empty()) return std::nullopt;
  return have.back().second;
}

std::vector<std::string> CheckpointManager::checkpoints() const {
  std::vector<std::string> out;
  for (auto& [n, p] : list()) out.push_back(p);
  return out;
}

std::optional<Config> CheckpointManager::restore_or_initialize() {
  auto latest = latest_checkpoint();
  if (!latest) return std::nullopt;
  return ckpt_.restore(*latest);
}

namespace callbacks {

// --- format_filepath

std::string format_filepath(const std::string& pattern, const Logs& values) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if ((c == '{' || c == '}') && i + 1 < pattern.size() && pattern[i + 1] == c) {
      out += c;
      ++i;
      continue;
    }
    GLIA_CHECK(c != '}', ValueError, "ModelCheckpoint: unmatched '}' in file path '", pattern, "'");
    if (c != '{') {
      out += c;
      continue;
    }
    size_t close = pattern.find('}', i);
    GLIA_CHECK(close != std::string::npos, ValueError, "ModelCheckpoint: unmatched '{' in file path '", pattern, "'");
    std::string field = pattern.substr(i + 1, close - i - 1);
    std::string name = field, spec;
    if (size_t colon = field.find(':'); colon != std::string::npos) {
      name = field.substr(0, colon);
      spec = field.substr(colon + 1);
    }
    auto it = values.find(name);
    if (it == values.end()) {
      std::string known;
      for (auto& [k, v] : values) known += (known.empty() ? "" : ", ") + k;
      throw ValueError(detail::str("ModelCheckpoint: the file path '", pattern, "' names '", name,
                                   "', which is not in the logs (have: ", known, ")"));
    }
    // A Python format spec, as far as numbers need: [0][width][.precision][d|f|e|g].
    size_t p = 0;
    bool zero = p < spec.size() && spec[p] == '0';
    if (zero) ++p;
    int width = 0, precision = -1;
    while (p < spec.size() && std::isdigit(static_cast<unsigned char>(spec[p]))) width = width * 10 + (spec[p++] - '0');
    if (p < spec.size() && spec[p] == '.') {
      precision = 0;
      ++p;
      while (p < spec.size() && std::isdigit(static_cast<unsigned char>(spec[p])))
        precision = precision * 10 + (spec[p++] - '0');
    }
    char type = p < spec.size() ? spec[p++] : 0;
    GLIA_CHECK(p == spec.size() && (type == 0 || type == 'd' || type == 'f' || type == 'e' || type == 'g') &&
                   width < 64 && precision < 64,
               ValueError, "ModelCheckpoint: cannot use the format '", spec, "' of field '", name, "' in '", pattern,
               "' (use forms like {epoch:02d} or {val_loss:.4f})");
    double v = it->second;
    bool integral = std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15;
    if (type == 'd')
      GLIA_CHECK(integral, ValueError, "ModelCheckpoint: field '", name, "' is ", v, ", not an integer, in '", pattern,
                 "'");
    char buf[128];
    std::string fmt = "%";
    if (zero) fmt += '0';
    if (width > 0) fmt += std::to_string(width);
    if (type == 'd' || (type == 0 && integral)) {
      fmt += "lld";
      std::snprintf(buf, sizeof buf, fmt.c_str(), static_cast<long long>(v));
    } else {
      if (precision >= 0) {
        fmt += '.';
        fmt += std::to_string(precision);
      }
      fmt += type == 0 ? 'g' : type;
      std::snprintf(buf, sizeof buf, fmt.c_str(), v);
    }
    out += buf;
    i = close;
  }
  return out;
}

// --- ModelCheckpoint

ModelCheckpoint::ModelCheckpoint(std::string filepath, ModelCheckpointOptions o)
    : filepath_(std::move(filepath)), o_(std::move(o)) {
  GLIA_CHECK(!filepath_.empty(), ValueError, "ModelCheckpoint: the file path is empty");
  GLIA_CHECK(o_.save_freq >= 0, ValueError, "ModelCheckpoint: save_freq must be >= 0 (0: each epoch), got ",
             o_.save_freq);
  maximize_ = maximize_for(o_.monitor, o_.mode, "ModelCheckpoint");
  best_ = o_.initial_value_threshold ? *o_.initial_value_threshold : (maximize_ ? -INFINITY : INFINITY);
}

void ModelCheckpoint::on_train_begin(const Logs&) { batches_ = 0; }

void ModelCheckpoint::on_epoch_begin(int64_t epoch, const Logs&) { epoch_ = epoch; }

void ModelCheckpoint::on_train_batch_end(int64_t, const Logs& logs) {
  if (o_.save_freq > 0 && ++batches_ % o_.save_freq == 0) save(epoch_, logs);
}

void ModelCheckpoint::on_epoch_end(int64_t epoch, const Logs& logs) {
  if (o_.save_freq == 0) save(epoch, logs);
}

void ModelCheckpoint::save(int64_t epoch, const Logs& logs) {
  Logs values = logs;
  values["epoch"] = static_cast<double>(epoch + 1);
  std::string path = format_filepath(filepath_, values);
  if (o_.save_best_only) {
    auto it = logs.find(o_.monitor);
    if (it == logs.end()) {
      std::cerr << "ModelCheckpoint: can save the best model only with '" << o_.monitor
                << "' in the logs; it is not there, so nothing was saved\n";
      return;
    }
    double v = it->second;
    bool better = std::isfinite(v) && (maximize_ ? v > best_ : v < best_);
    if (!better) {
      if (o_.verbose > 0)
        std::cout << "\nEpoch " << epoch + 1 << ": " << o_.monitor << " did not improve from " << best_ << "\n";
      return;
    }
    if (o_.verbose > 0)
      std::cout << "\nEpoch " << epoch + 1 << ": " << o_.monitor << " improved from " << best_ << " to " << v
                << ", saving model to " << path << "\n";
    best_ = v;
  } else if (o_.verbose > 0) {
    std::cout << "\nEpoch " << epoch + 1 << ": saving model to " << path << "\n";
  }
  if (o_.save_weights_only)
    model().save_weights(path);
  else
    model().save(path);
}

// --- BackupAndRestore

BackupAndRestore::BackupAndRestore(std::string backup_dir, BackupAndRestoreOptions o)
    : dir_(std::move(backup_dir)), o_(o) {
  GLIA_CHECK(!dir_.empty(), ValueError, "BackupAndRestore: the backup directory is empty");
  GLIA_CHECK(o_.save_freq >= 0, ValueError, "BackupAndRestore: save_freq must be >= 0 (0: each epoch), got ",
             o_.save_freq);
}

std::string BackupAndRestore::backup_path() const { return (fs::path(dir_) / "backup.glia").string(); }

void BackupAndRestore::on_train_begin(const Logs&) {
  resumed_.reset();
  batches_since_ = 0;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw IOError(dir_, "BackupAndRestore: cannot create the backup directory: " + ec.message());
  if (!fs::exists(backup_path()) || fit_state == nullptr) return;
  GLIA_CHECK(model().built(), ValueError, "BackupAndRestore: model \"", model().name(),
             "\" must be built before fit to restore the backup in ", backup_path(),
             " (give it an InputLayer, or call it on data first)");
  Config extra = Checkpoint(model()).restore(backup_path());
  ResumePoint r;
  try {
    const Config& f = extra.at("fit");
    r.epoch = detail::config_int(f.at("epoch"), "epoch");
    r.step = detail::config_int(f.at("step"), "step");
    r.pass_step = detail::config_int(f.at("pass_step"), "pass_step");
    r.shuffle_state = f.at("shuffle_state").get<std::vector<uint64_t>>();
  } catch (const Config::exception& e) {
    throw IOError(backup_path(), std::string("not a backup of a fit (metadata.json's \"extra\"): ") + e.what());
  }
  fit_state->resume = r;
  resumed_ = std::make_pair(r.epoch, r.step);
}

void BackupAndRestore::on_train_batch_end(int64_t, const Logs&) {
  if (o_.save_freq > 0 && ++batches_since_ >= o_.save_freq) {
    batches_since_ = 0;
    backup();
  }
}

void BackupAndRestore::on_epoch_end(int64_t, const Logs&) {
  if (o_.save_freq == 0) backup();
}

void BackupAndRestore::on_train_end(const Logs&) {
  if (!o_.delete_checkpoint) return;
  std::error_code ec;
  fs::remove(backup_path(), ec);
}

void BackupAndRestore::backup() {
  if (fit_state == nullptr) return;
  const ResumePoint& h = fit_state->here;
  Config fit = {{"epoch", h.epoch}, {"step", h.step}, {"pass_step", h.pass_step}, {"shuffle_state", h.shuffle_state}};
  Checkpoint(model()).save(backup_path(), {{"fit", fit}});
}

}  // namespace callbacks
}  // namespace glia
