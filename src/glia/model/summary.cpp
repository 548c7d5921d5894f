// Model::summary in Keras's table format.
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "glia/model/model.h"

namespace glia {
namespace {

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += s[i] < 0 ? "None" : std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  return out + ")";
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), out;
  int k = 0;
  for (size_t i = s.size(); i-- > 0;) {
    out.insert(out.begin(), s[i]);
    if (++k % 3 == 0 && i > 0) out.insert(out.begin(), ',');
  }
  return out;
}

std::string bytes_str(int64_t n) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2);
  double b = static_cast<double>(n);
  if (b < 1024)
    os << b << " B";
  else if (b < 1024.0 * 1024)
    os << b / 1024 << " KB";
  else if (b < 1024.0 * 1024 * 1024)
    os << b / (1024.0 * 1024) << " MB";
  else
    os << b / (1024.0 * 1024 * 1024) << " GB";
  return os.str();
}

struct Row {
  std::string name, shape, params;
  std::vector<std::string> connected;  // one line per call of the layer (Functional)
};

}  // namespace

std::vector<std::pair<LayerPtr, std::string>> Model::summary_rows() const {
  std::vector<std::pair<LayerPtr, std::string>> rows;
  if (is_functional())
    for (auto& n : order_) rows.push_back({n->layer, shape_str(n->shape)});
  else
    for (auto& l : sublayers()) rows.push_back({l, "?"});
  return rows;
}

std::vector<std::pair<LayerPtr, std::string>> Sequential::summary_rows() const {
  std::vector<std::pair<LayerPtr, std::string>> rows;
  size_t k = 0;
  for (size_t i = 0; i < stack_.size(); ++i) {
    if (stack_[i]->class_name() == "InputLayer") {
      ++k;
      continue;
    }
    rows.push_back({stack_[i], k < output_shapes_.size() ? shape_str(output_shapes_[k]) : "?"});
    ++k;
  }
  return rows;
}

void Model::summary(std::ostream& os) const {
  auto* self = const_cast<Model*>(this);
  GLIA_CHECK(built() || is_functional(), ValueError, "summary: model \"", name(),
             "\" has not been built yet; give it an input shape (layers::InputLayer, glia::Input) or call it on a "
             "batch of data first");
  std::vector<Row> rows;
  std::map<Layer*, int> node_count;
  std::map<const KerasTensor::Node*, std::string> node_names;
  bool functional = is_functional();
  if (functional) {
    for (auto& n : order_) {
      int idx = node_count[n->layer.get()]++;
      node_names[n.get()] = n->layer->name() + "[" + std::to_string(idx) + "][0]";
    }
    // One row per layer, as Keras: a shared layer lists the inputs of each of its calls, and its
    // output shape reads "multiple" where the calls differ.
    std::map<Layer*, size_t> row_index;
    for (auto& n : order_) {
      std::string conn;
      for (size_t i = 0; i < n->inputs.size(); ++i) conn += (i ? ", " : "") + node_names[n->inputs[i].node().get()];
      if (n->inputs.empty()) conn = "-";
      auto it = row_index.find(n->layer.get());
      if (it == row_index.end()) {
        row_index[n->layer.get()] = rows.size();
        std::string label = n->layer->name() + " (" + n->layer->class_name() + ")";
        rows.push_back({label, shape_str(n->shape), with_commas(n->layer->count_params()), {conn}});
      } else {
        Row& r = rows[it->second];
        r.connected.push_back(conn);
        if (r.shape != shape_str(n->shape)) r.shape = "multiple";
      }
    }
  } else {
    for (auto& [l, shape] : summary_rows())
      rows.push_back({l->name() + " (" + l->class_name() + ")", shape, with_commas(l->count_params()), {}});
  }
  size_t w0 = 28, w1 = 25, w2 = 12, w3 = 24;
  for (auto& r : rows) {
    w0 = std::max(w0, r.name.size() + 2);
    w1 = std::max(w1, r.shape.size() + 2);
    w2 = std::max(w2, r.params.size() + 2);
    for (auto& c : r.connected) w3 = std::max(w3, c.size() + 2);
  }
  size_t width = w0 + w1 + w2 + (functional ? w3 : 0);
  auto line = [&](char c) { os << std::string(width, c) << "\n"; };
  auto row = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d) {
    os << " " << std::left << std::setw(static_cast<int>(w0 - 1)) << a << std::setw(static_cast<int>(w1)) << b
       << std::setw(static_cast<int>(w2)) << c;
    if (functional) os << d;
    os << "\n";
  };
  os << "Model: \"" << name() << "\"\n";
  line('_');
  row("Layer (type)", "Output Shape", "Param #", "Connected to");
  line('=');
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    row(r.name, r.shape, r.params, r.connected.empty() ? "" : r.connected[0]);
    for (size_t k = 1; k < r.connected.size(); ++k) row("", "", "", r.connected[k]);
    if (i + 1 < rows.size()) os << "\n";
  }
  line('=');
  int64_t total = self->count_params(), trainable = 0;
  for (Variable* v : self->trainable_weights()) trainable += v->value.numel();
  os << "Total params: " << with_commas(total) << " (" << bytes_str(total * 4) << ")\n";
  os << "Trainable params: " << with_commas(trainable) << " (" << bytes_str(trainable * 4) << ")\n";
  os << "Non-trainable params: " << with_commas(total - trainable) << " (" << bytes_str((total - trainable) * 4)
     << ")\n";
  line('_');
}

void Model::summary() const { summary(std::cout); }

std::string Model::summary_string() const {
  std::ostringstream os;
  summary(os);
  return os.str();
}

}  // namespace glia
