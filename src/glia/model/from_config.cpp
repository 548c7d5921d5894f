// model_from_config: the way back from Model::config() / Sequential::config() to a model.
// Functional graphs are rebuilt as Keras's functional_from_config does: every layer is made
// once from its config, then its recorded calls ("inbound_nodes") are replayed in order as soon
// as the tensors they consume exist, so a layer called several times stays one shared layer.
#include <map>
#include <string>
#include <vector>

#include "glia/model/model.h"
#include "glia/nn/config_int.h"
#include "glia/nn/layers.h"

namespace glia {

namespace {

const Config& need(const Config& c, const char* key, const std::string& where) {
  GLIA_CHECK(c.is_object(), ValueError, "model_from_config: ", where, " must be a JSON object, got ", c.dump());
  GLIA_CHECK(c.contains(key), ValueError, "model_from_config: ", where, " has no \"", key, "\" key");
  return c[key];
}

bool is_model_class(const std::string& cls) { return cls == "Sequential" || cls == "Functional"; }

ModelPtr from_wrapped(const Config& wrapped);

/// A layer of a Sequential or Functional model from {"class_name": ..., "config": ...}; nested
/// models by model_from_config so that their own layers come back too.
LayerPtr layer_from(const Config& entry, const std::string& where) {
  std::string cls = need(entry, "class_name", where).get<std::string>();
  if (is_model_class(cls)) return from_wrapped(entry);
  try {
    return layer_from_config(entry);
  } catch (const ValueError& e) {
    throw ValueError(std::string("model_from_config: ") + where + ": " + e.what());
  }
}

/// Sets the trainable flags of a rebuilt model and of its layers from their configs, parents
/// before children: set_trainable propagates down, so a frozen model whose layer was unfrozen
/// afterwards (or the reverse) comes back as it was saved.
void restore_trainable(Layer& l, const Config& c) {
  if (c.contains("trainable")) l.set_trainable(c["trainable"].get<bool>());
  auto* m = dynamic_cast<Model*>(&l);
  if (m == nullptr || (!m->is_functional() && dynamic_cast<Sequential*>(m) == nullptr) || !c.contains("layers")) return;
  std::vector<LayerPtr> ls = m->layers();
  for (auto& lc : c["layers"]) {
    if (!lc.contains("config") || !lc["config"].contains("name")) continue;
    for (auto& sub : ls)
      if (sub->name() == lc["config"]["name"].get<std::string>()) {
        restore_trainable(*sub, lc["config"]);
        break;
      }
  }
}

std::string name_of(const Config& c) { return c.contains("name") ? c["name"].get<std::string>() : std::string(); }

ModelPtr sequential_from(const Config& c) {
  const Config& ls = need(c, "layers", "the Sequential config");
  GLIA_CHECK(ls.is_array(), ValueError, "model_from_config: the Sequential's \"layers\" must be a list");
  auto m = std::make_shared<Sequential>(std::vector<LayerPtr>{}, name_of(c));
  for (size_t i = 0; i < ls.size(); ++i) m->add(layer_from(ls[i], "layer " + std::to_string(i) + " of the Sequential"));
  if (c.contains("build_input_shape") && !m->built()) {
    const Config& s = c["build_input_shape"];
    GLIA_CHECK(s.is_array() && !s.empty(), ValueError,
               "model_from_config: the Sequential's \"build_input_shape\" must be a list [null, dims...], got ",
               s.dump());
    Shape shape;
    for (size_t i = 1; i < s.size(); ++i) {
      GLIA_CHECK(s[i].is_number_integer() && detail::config_int(s[i], "build_input_shape") >= 0, ValueError,
                 "model_from_config: the Sequential's \"build_input_shape\" must hold sizes after the batch, got ",
                 s.dump());
      shape.push_back(detail::config_int(s[i], "build_input_shape"));
    }
    m->build_for({shape});
  }
  return m;
}

/// [layer_name, call_index] (Keras 2 writes a third and fourth entry: tensor index and kwargs;
/// Glia's layers have one output, so only a tensor index of 0 is accepted).
std::pair<std::string, int64_t> node_ref(const Config& r, const std::string& where) {
  GLIA_CHECK(r.is_array() && r.size() >= 2 && r[0].is_string() && r[1].is_number_integer(), ValueError,
             "model_from_config: ", where, ": expected [layer_name, call_index], got ", r.dump());
  if (r.size() >= 3)
    GLIA_CHECK(r[2].is_number_integer() && detail::config_int(r[2], where.c_str()) == 0, ValueError,
               "model_from_config: ", where, ": layers have a single output, got tensor index ", r[2].dump());
  return {r[0].get<std::string>(), detail::config_int(r[1], where.c_str())};
}

ModelPtr functional_from(const Config& c) {
  const Config& ls = need(c, "layers", "the Functional config");
  const Config& in_refs = need(c, "input_layers", "the Functional config");
  const Config& out_refs = need(c, "output_layers", "the Functional config");
  GLIA_CHECK(ls.is_array(), ValueError, "model_from_config: the Functional's \"layers\" must be a list");

  struct Entry {
    std::string name;
    LayerPtr layer;
    std::vector<Config> calls;        // inbound node lists, in call order
    std::vector<KerasTensor> output;  // one per call made so far
  };
  std::vector<Entry> entries;
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < ls.size(); ++i) {
    const Config& e = ls[i];
    std::string where = "layer " + std::to_string(i) + " of the Functional";
    std::string name =
        e.is_object() && e.contains("name") ? e["name"].get<std::string>() : name_of(need(e, "config", where));
    GLIA_CHECK(!name.empty(), ValueError, "model_from_config: ", where, " has no name");
    where = "layer '" + name + "'";
    GLIA_CHECK(!by_name.count(name), ValueError, "model_from_config: two layers are named '", name, "'");
    const Config& nodes = need(e, "inbound_nodes", where);
    GLIA_CHECK(nodes.is_array(), ValueError, "model_from_config: ", where, ": \"inbound_nodes\" must be a list");
    Entry en{name, layer_from(e, where), {}, {}};
    en.layer->set_name(name);
    for (auto& n : nodes) {
      GLIA_CHECK(n.is_array(), ValueError, "model_from_config: ", where, ": each inbound node must be a list, got ",
                 n.dump());
      en.calls.push_back(n);
    }
    by_name[name] = entries.size();
    entries.push_back(std::move(en));
  }

  // The tensor of a reference, or nothing if that call has not been replayed yet.
  auto lookup = [&](const Config& r, const std::string& where) -> const KerasTensor* {
    auto [ln, idx] = node_ref(r, where);
    auto it = by_name.find(ln);
    GLIA_CHECK(it != by_name.end(), ValueError, "model_from_config: ", where, " refers to layer '", ln,
               "', which is not among the model's layers");
    Entry& e = entries[it->second];
    GLIA_CHECK(idx >= 0 && idx < static_cast<int64_t>(e.calls.size()), ValueError, "model_from_config: ", where,
               " refers to call ", idx, " of layer '", ln, "', which is called ", e.calls.size(), " time(s)");
    return idx < static_cast<int64_t>(e.output.size()) ? &e.output[static_cast<size_t>(idx)] : nullptr;
  };

  // Replay calls in rounds: each layer's calls in their order, each once its inputs exist.
  size_t pending = 0;
  for (auto& e : entries) pending += e.calls.size();
  while (pending > 0) {
    size_t made = 0;
    for (auto& e : entries) {
      while (e.output.size() < e.calls.size()) {
        const Config& call = e.calls[e.output.size()];
        std::string where = "call " + std::to_string(e.output.size()) + " of layer '" + e.name + "'";
        if (call.empty()) {
          // A graph input: Input() with the InputLayer's shape, dtype and name.
          auto* il = dynamic_cast<layers::InputLayerImpl*>(e.layer.get());
          GLIA_CHECK(il != nullptr, ValueError, "model_from_config: ", where, " has no inbound tensors but '", e.name,
                     "' is a ", e.layer->class_name(), ", not an InputLayer");
          GLIA_CHECK(e.output.empty(), ValueError, "model_from_config: InputLayer '", e.name,
                     "' can only have one node");
          KerasTensor t = Input(il->shape(), il->dtype(), e.name);
          // Input() makes its own InputLayer: keep the one the model will refer to by name.
          e.layer = t.layer();
          e.output.push_back(t);
          ++made;
          continue;
        }
        std::vector<KerasTensor> ins;
        for (auto& r : call) {
          const KerasTensor* t = lookup(r, "inbound node of " + where);
          if (!t) break;
          ins.push_back(*t);
        }
        if (ins.size() < call.size()) break;
        Layer& l = *e.layer;
        e.output.push_back(l.num_inputs() == 1 && ins.size() == 1 ? l(ins[0]) : l(ins));
        ++made;
      }
    }
    GLIA_CHECK(made > 0, ValueError,
               "model_from_config: the layer calls cannot be replayed: some inbound nodes wait on each other "
               "(a cycle in the graph)");
    pending -= made;
  }

  auto tensors = [&](const Config& refs, const char* key) {
    GLIA_CHECK(refs.is_array() && !refs.empty(), ValueError, "model_from_config: \"", key,
               "\" must be a non-empty list of [layer_name, call_index]");
    std::vector<KerasTensor> out;
    for (auto& r : refs) out.push_back(*lookup(r, std::string("\"") + key + "\""));
    return out;
  };
  return std::make_shared<Model>(tensors(in_refs, "input_layers"), tensors(out_refs, "output_layers"), name_of(c));
}

ModelPtr from_unwrapped(const Config& c) {
  GLIA_CHECK(c.is_object(), ValueError, "model_from_config: the config must be a JSON object, got ", c.dump());
  if (c.contains("input_layers") || c.contains("output_layers")) return functional_from(c);
  GLIA_CHECK(c.contains("layers"), ValueError,
             "model_from_config: the config has no \"layers\" key (a Sequential or Functional model's config has "
             "one; give a subclassed model as {\"class_name\": ..., \"config\": ...}, from layer_to_config)");
  return sequential_from(c);
}

ModelPtr from_wrapped(const Config& wrapped) {
  std::string cls = need(wrapped, "class_name", "the config").get<std::string>();
  const Config& c = need(wrapped, "config", "the config of class '" + cls + "'");
  if (cls == "Sequential") return sequential_from(c);
  if (cls == "Functional") return functional_from(c);
  LayerPtr l;
  try {
    l = layer_from_config(wrapped);
  } catch (const ValueError& e) {
    throw ValueError(std::string("model_from_config: ") + e.what() +
                     " (a subclassed model needs class_name() returning its class name and a static "
                     "from_config(const glia::Config&))");
  }
  auto m = std::dynamic_pointer_cast<Model>(l);
  GLIA_CHECK(m != nullptr, ValueError, "model_from_config: class '", cls,
             "' is a layer, not a model (use layer_from_config for layers)");
  return m;
}

}  // namespace

ModelPtr model_from_config(const Config& config) {
  try {
    bool wrapped = config.is_object() && config.contains("class_name");
    ModelPtr m = wrapped ? from_wrapped(config) : from_unwrapped(config);
    restore_trainable(*m, wrapped ? config["config"] : config);
    return m;
  } catch (const nlohmann::json::exception& e) {
    // A value of the wrong type or a missing key inside a layer's own config.
    throw ValueError(std::string("model_from_config: malformed config: ") + e.what());
  }
}

}  // namespace glia
