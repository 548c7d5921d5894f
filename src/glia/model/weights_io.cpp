// Model::save_weights / load_weights: the model's weights as a safetensors file.
//
// Names are paths, like Keras 3's weights files: each sublayer is named by its class in snake
// case, numbered among its parent's sublayers of the same class ("dense", "dense_1"), and each
// weight by its Variable name ("dense_1/kernel"). Layer names are not used: their global counters
// differ between two models of the same architecture, and the file must load into either.
#include "glia/model/weights_io.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <map>
#include <set>
#include <string>
#include <unordered_set>

#include "glia/autograd/autograd.h"
#include "glia/core/allocation_budget.h"
#include "glia/io/safetensors.h"
#include "glia/io/zip.h"
#include "glia/model/model.h"
#include "glia/nn/config_int.h"
#include "glia/ops/functions.h"
#include "glia/version.h"

namespace glia {

namespace {

/// Keras's to_snake_case (as Layer::unique_name, without the global counter).
std::string snake_case(const std::string& s) {
  auto lower = [](char c) { return std::islower(static_cast<unsigned char>(c)) != 0; };
  auto upper = [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; };
  std::string a;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && upper(s[i]) && i + 1 < s.size() && lower(s[i + 1])) a += '_';
    a += s[i];
  }
  std::string out;
  for (size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && upper(a[i]) && lower(a[i - 1])) out += '_';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(a[i])));
  }
  return out;
}

/// "x" the first time, then "x_1", "x_2", ... skipping any already taken.
std::string numbered(const std::string& base, std::map<std::string, int>& counts, std::set<std::string>& taken) {
  for (;;) {
    int n = counts[base]++;
    std::string s = n == 0 ? base : base + "_" + std::to_string(n);
    if (taken.insert(s).second) return s;
  }
}

/// Weights of `layer` (own first, then sublayers', as Layer::weights()) with their paths; a
/// Variable reached twice (a shared sublayer) is named once, where first met.
void collect(Layer& layer, const std::string& prefix, std::unordered_set<const Variable*>& seen,
             std::vector<std::pair<std::string, Variable*>>& out) {
  std::map<std::string, int> counts;
  std::set<std::string> taken;
  // Own weights: add_weight gives no direct access to the own list, so take weights() minus the
  // sublayers' (which come after, in order).
  std::unordered_set<const Variable*> sub;
  for (const LayerPtr& l : layer.sublayers())
    for (Variable* v : l->weights()) sub.insert(v);
  for (Variable* v : layer.weights()) {
    if (sub.count(v) || !seen.insert(v).second) continue;
    out.emplace_back(prefix + numbered(v->name.empty() ? "weight" : v->name, counts, taken), v);
  }
  for (const LayerPtr& l : layer.sublayers())
    collect(*l, prefix + numbered(snake_case(l->class_name()), counts, taken) + "/", seen, out);
}

}  // namespace

namespace detail {

std::vector<std::pair<std::string, Variable*>> named_weights(Model& m, const char* fn) {
  GLIA_CHECK(m.built(), ValueError, fn, ": model \"", m.name(),
             "\" is not built yet: build it or call it on data first, so that its weights exist");
  std::unordered_set<const Variable*> seen;
  std::vector<std::pair<std::string, Variable*>> out;
  collect(m, "", seen, out);
  return out;
}

}  // namespace detail

using detail::assign_weights;
using detail::named_weights;
using detail::utc_now;

void Model::save_weights(const std::string& path) {
  io::save_safetensors(path, detail::weight_tensors(*this, "save_weights"), {{"format", "glia"}});
}

namespace detail {

io::NamedTensors weight_tensors(Model& m, const char* fn) {
  io::NamedTensors ts;
  for (auto& [name, v] : named_weights(m, fn)) ts.emplace_back(name, v->value.detach());
  return ts;
}

io::NamedTensors optimizer_tensors(const Model& m) {
  io::NamedTensors ts;
  if (m.compiled())
    for (auto& [k, t] : m.optimizer()->state()) ts.emplace_back(k, t);
  return ts;
}

Config parse_json_member(const std::map<std::string, std::string>& members, const std::string& member,
                         const std::string& path) {
  try {
    Config c = Config::parse(members.at(member));
    if (!c.is_object()) throw IOError(path, member + " is not a JSON object");
    return c;
  } catch (const Config::exception& e) {
    throw IOError(path, member + " is not valid JSON: " + e.what());
  }
}

void check_format_version(const Config& meta, const std::string& path, int newest) {
  if (!meta.contains("format_version") || !meta["format_version"].is_number_integer() ||
      detail::config_int(meta["format_version"], "format_version") > newest)
    throw IOError(path, "metadata.json: format_version " +
                            (meta.contains("format_version") ? meta["format_version"].dump() : std::string("missing")) +
                            " is not one this Glia reads (up to " + std::to_string(newest) + ")");
}

void assign_weights(Model& m, const io::NamedTensors& tensors, const std::string& where, const char* fn,
                    bool check_only) {
  auto expected = named_weights(m, fn);
  std::map<std::string, Tensor> file(tensors.begin(), tensors.end());
  std::string missing, extra;
  std::set<std::string> want;
  for (auto& [name, v] : expected) {
    want.insert(name);
    if (!file.count(name)) missing += (missing.empty() ? "" : ", ") + name;
  }
  for (auto& [name, t] : tensors)
    if (!want.count(name)) extra += (extra.empty() ? "" : ", ") + name;
  if (!missing.empty())
    throw IOError(where, std::string(fn) + ": the file lacks weights of model \"" + m.name() + "\": " + missing);
  if (!extra.empty())
    throw ValueError(std::string(fn) + ": " + where + " holds weights that model \"" + m.name() +
                     "\" does not have: " + extra);
  for (auto& [name, v] : expected) {
    const Tensor& t = file.at(name);
    GLIA_CHECK(t.shape() == v->value.shape(), ShapeError, fn, ": weight \"", name, "\" in ", where, " has shape ",
               to_string(t.shape()), ", the model's has ", to_string(v->value.shape()));
  }
  if (check_only) return;
  for (auto& [name, v] : expected) {
    const Tensor& t = file.at(name);
    v->assign(t.dtype() == v->value.dtype() ? t : t.to(v->value.dtype()));
  }
}

std::string utc_now() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace detail

namespace {
constexpr int kFormatVersion = 1;

/// The model config.json describes, built for its recorded input shapes. Errors name the file.
ModelPtr build_saved_model(const std::string& path, const Config& config, int64_t weight_bytes) {
  // Building allocates what config.json says: a corrupt or hostile file could ask for gigabytes.
  // A genuine file's weights are all in model.safetensors, so building may allocate about that
  // much (twice, and a margin for a subclassed model's first call).
  AllocationBudget budget(2 * weight_bytes + (int64_t(64) << 20),
                          "config.json describes a model larger than its weights (model.safetensors has " +
                              std::to_string(weight_bytes) + " bytes)");
  try {
    ModelPtr m = model_from_config(config["model"]);
    if (m->built() || !config.contains("build_input_shapes")) return m;
    std::vector<Shape> shapes;
    for (const auto& s : config["build_input_shapes"]) {
      auto dims = s.get<std::vector<int64_t>>();
      shapes.emplace_back(dims.begin(), dims.end());
    }
    m->build_for(shapes);
    if (!m->is_functional() && dynamic_cast<Sequential*>(m.get()) == nullptr) {
      // A subclassed model's sublayers are built by its first call: make one on a batch of zeros
      // (float32: its config does not record input dtypes).
      no_grad g;
      std::vector<Tensor> xs;
      for (const Shape& s : shapes) {
        Shape one = {1};
        for (int64_t d : s) one.push_back(d);
        xs.push_back(zeros(one));
      }
      m->forward(xs, /*training=*/false);
    }
    return m;
  } catch (const Config::exception& e) {
    throw IOError(path, std::string("config.json: malformed \"build_input_shapes\": ") + e.what());
  } catch (const ValueError& e) {
    // Most often a custom layer that this program has not registered: the message says which.
    throw ValueError(path + ": " + e.what());
  }
}

}  // namespace

void Model::load_weights(const std::string& path) {
  io::SafetensorsFile f = io::load_safetensors(path);
  assign_weights(*this, f.tensors, path, "load_weights");
}

void Model::save(const std::string& path) {
  io::NamedTensors weights = detail::weight_tensors(*this, "save");
  Config config = Config::object();
  config["model"] = layer_to_config(*this);
  // The shapes it was built for (without the batch): a model whose architecture alone does not
  // fix them (a subclassed model, a Sequential without an InputLayer) is built from them on load.
  Config shapes = Config::array();
  for (const Shape& s : built_input_shapes()) shapes.push_back(std::vector<int64_t>(s.begin(), s.end()));
  config["build_input_shapes"] = shapes;
  if (compiled()) {
    Config c = Config::object();
    c["optimizer"] = optimizers::to_config(*optimizer_);
    Config losses = Config::array();
    for (const auto& l : losses_) losses.push_back(losses::to_config(*l));
    c["losses"] = losses;
    Config metrics = Config::array();
    for (const auto& m : compile_opts_.metrics) metrics.push_back(m.get() ? m.get()->name() : m.name());
    c["metrics"] = metrics;
    c["loss_weights"] = compile_opts_.loss_weights;
    c["run_eagerly"] = compile_opts_.run_eagerly;
    c["steps_per_execution"] = compile_opts_.steps_per_execution;
    config["compile"] = c;
  } else {
    config["compile"] = nullptr;
  }
  Config meta = {
      {"glia_version", version()}, {"format", "glia.model"}, {"format_version", kFormatVersion}, {"date", utc_now()}};
  io::write_zip(path, {{"metadata.json", meta.dump(2)},
                       {"config.json", config.dump(2)},
                       {"model.safetensors", io::to_safetensors(weights)},
                       {"optimizer.safetensors", io::to_safetensors(detail::optimizer_tensors(*this))}});
}

ModelPtr load_model(const std::string& path) {
  auto members = io::read_zip(path, {"metadata.json", "config.json", "model.safetensors", "optimizer.safetensors"});
  Config meta = detail::parse_json_member(members, "metadata.json", path);
  detail::check_format_version(meta, path, kFormatVersion);
  Config config = detail::parse_json_member(members, "config.json", path);
  if (!config.contains("model") || !config.contains("compile"))
    throw IOError(path, "config.json lacks \"model\" or \"compile\"");
  ModelPtr m = build_saved_model(path, config, static_cast<int64_t>(members.at("model.safetensors").size()));
  if (!m->built())
    throw IOError(path, "the saved model \"" + m->name() + "\" cannot be built from its config (no input shapes)");
  assign_weights(*m, io::from_safetensors(members.at("model.safetensors"), path + ": model.safetensors").tensors, path,
                 "load_model");
  const Config& c = config["compile"];
  if (c.is_null()) return m;
  try {
    CompileOptions o;
    o.optimizer = optimizers::from_config(c.at("optimizer"));
    for (const auto& l : c.at("losses")) o.losses.emplace_back(losses::from_config(l));
    for (const auto& name : c.at("metrics")) o.metrics.emplace_back(name.get<std::string>());
    o.loss_weights = c.at("loss_weights").get<std::vector<double>>();
    o.run_eagerly = c.at("run_eagerly").get<bool>();
    // Absent from files written before it existed.
    if (c.contains("steps_per_execution"))
      o.steps_per_execution = detail::config_int(c.at("steps_per_execution"), "steps_per_execution");
    m->compile(std::move(o));
  } catch (const Config::exception& e) {
    throw IOError(path, std::string("config.json: malformed \"compile\": ") + e.what());
  }
  io::SafetensorsFile opt = io::from_safetensors(members.at("optimizer.safetensors"), path + ": optimizer.safetensors");
  m->optimizer()->load_state(std::map<std::string, Tensor>(opt.tensors.begin(), opt.tensors.end()));
  return m;
}

}  // namespace glia
