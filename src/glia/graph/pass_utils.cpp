#include "glia/graph/pass_utils.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <sstream>

#include "glia/autograd/autograd.h"
#include "glia/graph/infer.h"

namespace glia::graph::detail {

GraphInfo::GraphInfo(const Graph& g) {
  int p = 0;
  for (auto& n : g.nodes()) {
    pos_[n.get()] = p;
    for (Value* v : n->inputs) consumers_[v].push_back(n.get());
    ++p;
  }
  for (Value* v : g.outputs()) outputs_.insert(v);
  p = 0;
  for (auto& n : g.nodes()) {
    if (n->kind == NodeKind::Op) {
      if (n->inplace && !n->inputs.empty()) writes_[buffer(n->inputs[0])].push_back(p);
      if (n->op->mutates_inputs())
        for (size_t i = 0; i < n->inputs.size(); ++i) {
          if (!n->op->writes_input(i, n->inputs.size(), n->attrs)) continue;
          auto& w = writes_[buffer(n->inputs[i])];
          if (w.empty() || w.back() != p) w.push_back(p);
        }
    }
    ++p;
  }
}

const std::vector<Node*>& GraphInfo::consumers(const Value* v) const {
  static const std::vector<Node*> none;
  auto it = consumers_.find(v);
  return it == consumers_.end() ? none : it->second;
}

const void* GraphInfo::buffer(const Value* v) const {
  while (v->producer->kind == NodeKind::Op && (v->producer->op->is_view() || v->producer->inplace) &&
         !v->producer->inputs.empty())
    v = v->producer->inputs[0];
  const Node* n = v->producer;
  if ((n->kind == NodeKind::Capture || n->kind == NodeKind::Constant) && n->tensor.defined() && n->tensor.storage())
    return n->tensor.storage().get();
  if (n->kind == NodeKind::Variable) return n;
  return v;
}

bool GraphInfo::written_between(const Value* v, int lo, int hi) const {
  auto it = writes_.find(buffer(v));
  if (it == writes_.end()) return false;
  auto w = std::upper_bound(it->second.begin(), it->second.end(), lo);
  return w != it->second.end() && *w < hi;
}

namespace {

void put(std::ostringstream& os, double d) { os << "d" << std::hex << std::bit_cast<uint64_t>(d) << std::dec; }

void put(std::ostringstream& os, const AttrValue& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          os << "i" << x;
        } else if constexpr (std::is_same_v<T, double>) {
          put(os, x);
        } else if constexpr (std::is_same_v<T, bool>) {
          os << (x ? "T" : "F");
        } else if constexpr (std::is_same_v<T, std::string>) {
          os << "s" << x.size() << ":" << x;
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          os << "v" << x.size() << "[";
          for (int64_t e : x) os << e << ",";
          os << "]";
        } else if constexpr (std::is_same_v<T, DType>) {
          os << "t" << name(x);
        } else {  // Scalar: its kind matters (1 and 1.0 make different dtypes)
          if (x.is_float())
            put(os, x.to_double());
          else
            os << (x.is_bool() ? "b" : "n") << x.to_int();
        }
      },
      v);
}

}  // namespace

std::string attrs_key(const Attrs& a) {
  std::vector<const Attrs::Item*> items;
  for (const auto& it : a) items.push_back(&it);
  std::sort(items.begin(), items.end(), [](auto* x, auto* y) { return std::strcmp(x->first, y->first) < 0; });
  std::ostringstream os;
  for (auto* it : items) {
    os << it->first << "=";
    put(os, it->second);
    os << ";";
  }
  return os.str();
}

Tensor unwritten_constant(const GraphInfo& info, const Value* v) {
  const Node* n = v->producer;
  if (n->kind != NodeKind::Constant || !n->tensor.defined() || info.written(v)) return {};
  return n->tensor;
}

bool all_equal(const Tensor& t, double x) {
  if (!t.defined() || t.numel() == 0 || t.numel() > (int64_t(1) << 22) || t.is_symbolic()) return false;
  graph_hook::Suspend eager;
  no_grad ng;
  Tensor d = t.to(DType::f64).contiguous().to(Device::cpu());  // read on the host
  const double* p = d.data<double>();
  for (int64_t i = 0; i < d.numel(); ++i)
    if (!(p[i] == x)) return false;
  return true;
}

bool known(const Shape& s) { return known_numel(s) >= 0; }

void replace_all(Graph& g, const std::unordered_map<Value*, Value*>& with) {
  if (with.empty()) return;
  auto resolve = [&](Value* v) {
    for (auto it = with.find(v); it != with.end(); it = with.find(v)) v = it->second;
    return v;
  };
  for (auto& [from, to] : with) g.replace_uses(from, resolve(to));
}

}  // namespace glia::graph::detail
