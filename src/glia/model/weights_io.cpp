// Model::save_weights / load_weights: the model's weights as a safetensors file.
//
// Names are paths, like Keras 3's weights files: each sublayer is named by its class in snake
// case, numbered among its parent's sublayers of the same class ("dense", "dense_1"), and each
// weight by its Variable name ("dense_1/kernel"). Layer names are not used: their global counters
// differ between two models of the same architecture, and the file must load into either.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <unordered_set>

#include "glia/io/safetensors.h"
#include "glia/model/model.h"

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

std::vector<std::pair<std::string, Variable*>> named_weights(Model& m, const char* fn) {
  GLIA_CHECK(m.built(), ValueError, fn, ": model \"", m.name(),
             "\" is not built yet: build it or call it on data first, so that its weights exist");
  std::unordered_set<const Variable*> seen;
  std::vector<std::pair<std::string, Variable*>> out;
  collect(m, "", seen, out);
  return out;
}

}  // namespace

void Model::save_weights(const std::string& path) {
  io::NamedTensors ts;
  for (auto& [name, v] : named_weights(*this, "save_weights")) ts.emplace_back(name, v->value.detach());
  io::save_safetensors(path, ts, {{"format", "glia"}});
}

void Model::load_weights(const std::string& path) {
  auto expected = named_weights(*this, "load_weights");
  io::SafetensorsFile f = io::load_safetensors(path);
  std::map<std::string, Tensor> file(f.tensors.begin(), f.tensors.end());
  std::string missing, extra;
  std::set<std::string> want;
  for (auto& [name, v] : expected) {
    want.insert(name);
    if (!file.count(name)) missing += (missing.empty() ? "" : ", ") + name;
  }
  for (auto& [name, t] : f.tensors)
    if (!want.count(name)) extra += (extra.empty() ? "" : ", ") + name;
  if (!missing.empty())
    throw IOError(path, "load_weights: the file lacks weights of model \"" + name() + "\": " + missing);
  if (!extra.empty())
    throw ValueError("load_weights: " + path + " holds weights that model \"" + name() + "\" does not have: " + extra);
  // Every shape is checked before any is assigned, so that a failed load leaves the model as it was.
  for (auto& [name, v] : expected) {
    const Tensor& t = file.at(name);
    GLIA_CHECK(t.shape() == v->value.shape(), ShapeError, "load_weights: weight \"", name, "\" in ", path,
               " has shape ", to_string(t.shape()), ", the model's has ", to_string(v->value.shape()));
  }
  for (auto& [name, v] : expected) {
    const Tensor& t = file.at(name);
    v->assign(t.dtype() == v->value.dtype() ? t : t.to(v->value.dtype()));
  }
}

}  // namespace glia
