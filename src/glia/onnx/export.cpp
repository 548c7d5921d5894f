// ONNX export: records the model's inference forward pass as a graph (placeholders with an unknown
// batch), folds what the weights alone determine, then converts node by node with the per-op
// exporters of ops.cpp. protobuf stays in this file.
#include "glia/onnx/export.h"

#include <onnx/onnx_pb.h>

#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "glia/autograd/autograd.h"
#include "glia/graph/graph.h"
#include "glia/graph/passes.h"
#include "glia/io/files.h"
#include "glia/model/model.h"
#include "glia/onnx/context.h"
#include "glia/version.h"

namespace glia::onnx {

namespace {

std::map<std::string, ExportFn>& registry() {
  static std::map<std::string, ExportFn> r;
  return r;
}

int32_t onnx_dtype(DType t) {
  switch (t) {
    case DType::f32:
      return ::onnx::TensorProto::FLOAT;
    case DType::f64:
      return ::onnx::TensorProto::DOUBLE;
    case DType::f16:
      return ::onnx::TensorProto::FLOAT16;
    case DType::bf16:
      return ::onnx::TensorProto::BFLOAT16;
    case DType::i32:
      return ::onnx::TensorProto::INT32;
    case DType::i64:
      return ::onnx::TensorProto::INT64;
    case DType::u8:
      return ::onnx::TensorProto::UINT8;
    case DType::b8:
      return ::onnx::TensorProto::BOOL;
  }
  throw ValueError(detail::str("ONNX export: dtype ", name(t), " has no ONNX equivalent"));
}

void fill_tensor(::onnx::TensorProto& p, const Tensor& t, const std::string& name) {
  p.set_name(name);
  p.set_data_type(onnx_dtype(t.dtype()));
  for (int64_t d : t.shape()) p.add_dims(d);
  graph_hook::Suspend eager;
  no_grad ng;
  Tensor c = t.to(Device::cpu()).contiguous();
  // Glia's dtypes are little-endian in memory, as raw_data must be.
  p.set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
}

void set_type(::onnx::ValueInfoProto& vi, const std::string& name, DType dtype, const Shape& shape,
              const std::string& batch_param) {
  vi.set_name(name);
  auto* tt = vi.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx_dtype(dtype));
  auto* sh = tt->mutable_shape();
  for (size_t i = 0; i < shape.size(); ++i) {
    auto* d = sh->add_dim();
    if (shape[i] >= 0)
      d->set_dim_value(shape[i]);
    else if (i == 0 && !batch_param.empty())
      d->set_dim_param(batch_param);
    else
      d->set_dim_param(name + "_dim" + std::to_string(i));
  }
}

/// Weight tensors by their place in the model ("dense_1/kernel": the layer's name, then the
/// variable's), for readable initializer names.
void weight_names(Layer& layer, std::unordered_map<const TensorImpl*, std::string>& out) {
  std::unordered_set<const Variable*> sub;
  for (const LayerPtr& l : layer.sublayers())
    for (Variable* v : l->weights()) sub.insert(v);
  for (Variable* v : layer.weights())
    if (!sub.count(v) && v->value.defined()) out.emplace(v->value.impl(), layer.name() + "/" + v->name);
  for (const LayerPtr& l : layer.sublayers()) weight_names(*l, out);
}

struct ModelInput {
  std::string name;
  Shape shape;  // without the batch
  DType dtype = DType::f32;
};

std::vector<ModelInput> model_inputs(Model& model) {
  std::vector<ModelInput> ins;
  if (model.is_functional()) {
    for (const KerasTensor& k : model.inputs())
      ins.push_back({k.layer()->name(), Shape(k.shape().begin() + 1, k.shape().end()), k.dtype()});
    return ins;
  }
  GLIA_CHECK(model.built(), ValueError, "ONNX export: model \"", model.name(),
             "\" is not built yet, so its input shape is unknown: give it an InputLayer or call it on data first");
  const std::vector<Shape>& shapes = model.built_input_shapes();
  // A Sequential model's InputLayer knows the input's dtype (integer ids for an Embedding).
  DType dtype = DType::f32;
  if (dynamic_cast<Sequential*>(&model)) {
    Config cfg = model.config();
    const Config& first = cfg["layers"].empty() ? Config() : cfg["layers"][0];
    if (first.is_object() && first.value("class_name", "") == "InputLayer")
      dtype = dtype_from_name(first["config"].value("dtype", "float32"));
  }
  for (size_t i = 0; i < shapes.size(); ++i)
    ins.push_back({shapes.size() == 1 ? "input" : "input_" + std::to_string(i), shapes[i], dtype});
  return ins;
}

std::vector<int64_t> transpose_perm(const ::onnx::NodeProto& n) {
  for (const auto& a : n.attribute())
    if (a.name() == "perm") return {a.ints().begin(), a.ints().end()};
  return {};
}

/// Removes pairs of Transposes that cancel (the NCHW round trip between two convolutions or a
/// pooling and a convolution), where nothing else reads the first one's result.
void cancel_transposes(::onnx::GraphProto& g) {
  std::map<std::string, int> uses, producer;
  std::set<std::string> outputs;
  for (const auto& o : g.output()) outputs.insert(o.name());
  for (int i = 0; i < g.node_size(); ++i) {
    for (const std::string& in : g.node(i).input()) ++uses[in];
    for (const std::string& out : g.node(i).output()) producer[out] = i;
  }
  std::vector<bool> dead(static_cast<size_t>(g.node_size()), false);
  std::map<std::string, std::string> rename;
  for (int i = 0; i < g.node_size(); ++i) {
    const ::onnx::NodeProto& b = g.node(i);
    if (b.op_type() != "Transpose" || outputs.count(b.output(0))) continue;
    auto p = producer.find(b.input(0));
    if (p == producer.end() || dead[static_cast<size_t>(p->second)]) continue;
    const ::onnx::NodeProto& a = g.node(p->second);
    if (a.op_type() != "Transpose" || uses[a.output(0)] != 1 || outputs.count(a.output(0))) continue;
    std::vector<int64_t> pa = transpose_perm(a), pb = transpose_perm(b);
    bool identity = !pa.empty() && pa.size() == pb.size();
    for (size_t k = 0; identity && k < pb.size(); ++k)
      identity = pb[k] >= 0 && pb[k] < static_cast<int64_t>(pa.size()) && pa[static_cast<size_t>(pb[k])] == int64_t(k);
    if (!identity) continue;
    rename[b.output(0)] = a.input(0);
    dead[static_cast<size_t>(p->second)] = dead[static_cast<size_t>(i)] = true;
  }
  if (rename.empty()) return;
  auto resolve = [&](std::string n) {
    for (auto it = rename.find(n); it != rename.end(); it = rename.find(n)) n = it->second;
    return n;
  };
  google::protobuf::RepeatedPtrField<::onnx::NodeProto> kept;
  for (int i = 0; i < g.node_size(); ++i) {
    if (dead[static_cast<size_t>(i)]) continue;
    ::onnx::NodeProto* n = kept.Add();
    *n = g.node(i);
    for (std::string& in : *n->mutable_input()) in = resolve(in);
  }
  g.mutable_node()->Swap(&kept);
}

}  // namespace

int64_t onnx_type(DType t) { return onnx_dtype(t); }

void register_exporter(const std::string& op, ExportFn f) { registry()[op] = std::move(f); }

const ExportFn* find_exporter(const std::string& op) {
  auto it = registry().find(op);
  return it == registry().end() ? nullptr : &it->second;
}

// --- the context

struct OnnxContext::Impl {
  ::onnx::GraphProto* graph = nullptr;
  std::set<std::string> taken;
  std::unordered_map<const graph::Value*, std::string> names;
  std::unordered_map<const TensorImpl*, std::string> weight_names;
  std::unordered_set<const graph::Value*> used;  // read by a node or a graph output
  const graph::Node* node = nullptr;
  std::vector<std::string> outputs;  // of the current node

  std::string unique(const std::string& base) {
    std::string b = base.empty() ? "t" : base;
    if (taken.insert(b).second) return b;
    for (int i = 1;; ++i) {
      std::string s = b + "_" + std::to_string(i);
      if (taken.insert(s).second) return s;
    }
  }
  std::string scope() const {
    return node && !node->name.empty() && node->kind == graph::NodeKind::Op ? node->name + "/" : "";
  }
  std::string initializer(const Tensor& t, const std::string& hint) {
    std::string n = unique(hint);
    fill_tensor(*graph->add_initializer(), t, n);
    return n;
  }
  /// The name of a value; constants become initializers when first read.
  const std::string& name_of(const graph::Value* v) {
    auto it = names.find(v);
    if (it != names.end()) return it->second;
    const graph::Node* p = v->producer;
    GLIA_CHECK(p->kind == graph::NodeKind::Constant || p->kind == graph::NodeKind::Capture, InternalError,
               "ONNX export: value read before it is computed");
    auto w = weight_names.find(p->tensor.impl());
    // Other constants (numbers, values folded from weights) are named after the layer reading them.
    std::string n = initializer(p->tensor, w != weight_names.end() ? w->second : scope() + "const");
    return names.emplace(v, n).first->second;
  }
};

const std::string& OnnxContext::op_name() const { return impl_.node->op->name(); }
const std::string& OnnxContext::layer() const { return impl_.node->name; }
const Attrs& OnnxContext::attrs() const { return impl_.node->attrs; }
size_t OnnxContext::num_inputs() const { return impl_.node->inputs.size(); }
size_t OnnxContext::num_outputs() const { return impl_.node->outputs.size(); }
const std::string& OnnxContext::input(size_t i) const { return impl_.name_of(impl_.node->inputs.at(i)); }
const std::string& OnnxContext::output(size_t i) const { return impl_.outputs.at(i); }
const Shape& OnnxContext::input_shape(size_t i) const { return impl_.node->inputs.at(i)->shape; }
DType OnnxContext::input_dtype(size_t i) const { return impl_.node->inputs.at(i)->dtype; }
const Shape& OnnxContext::output_shape(size_t i) const { return impl_.node->outputs.at(i)->shape; }
DType OnnxContext::output_dtype(size_t i) const { return impl_.node->outputs.at(i)->dtype; }

Tensor OnnxContext::constant_input(size_t i) const {
  const graph::Node* p = impl_.node->inputs.at(i)->producer;
  if (p->kind != graph::NodeKind::Constant && p->kind != graph::NodeKind::Capture) return {};
  return p->tensor;
}

std::string OnnxContext::input_as(size_t i, DType dtype) {
  if (input_dtype(i) == dtype) return input(i);
  Tensor c = constant_input(i);
  if (c.defined()) {
    graph_hook::Suspend eager;
    no_grad ng;
    return add_initializer(c.to(dtype), "const");
  }
  std::string out = fresh_name(input(i) + "_" + name(dtype));
  add_node("Cast", {input(i)}, {out}, {{"to", int64_t(onnx_dtype(dtype))}});
  return out;
}

void OnnxContext::add_node(const std::string& op_type, const std::vector<std::string>& inputs,
                           const std::vector<std::string>& outputs, const OnnxAttrs& attributes) {
  ::onnx::NodeProto* n = impl_.graph->add_node();
  n->set_op_type(op_type);
  n->set_name(impl_.unique(impl_.scope() + op_type));
  for (const std::string& s : inputs) n->add_input(s);
  // Unused trailing optional outputs are left out; inner ones stay as "".
  size_t last = outputs.size();
  while (last > 1 && outputs[last - 1].empty()) --last;
  for (size_t i = 0; i < last; ++i) n->add_output(outputs[i]);
  for (const auto& [key, value] : attributes) {
    ::onnx::AttributeProto* a = n->add_attribute();
    a->set_name(key);
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            a->set_type(::onnx::AttributeProto::INT);
            a->set_i(v);
          } else if constexpr (std::is_same_v<T, double>) {
            a->set_type(::onnx::AttributeProto::FLOAT);
            a->set_f(static_cast<float>(v));
          } else if constexpr (std::is_same_v<T, std::string>) {
            a->set_type(::onnx::AttributeProto::STRING);
            a->set_s(v);
          } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
            a->set_type(::onnx::AttributeProto::INTS);
            for (int64_t x : v) a->add_ints(x);
          } else {
            a->set_type(::onnx::AttributeProto::FLOATS);
            for (double x : v) a->add_floats(static_cast<float>(x));
          }
        },
        value);
  }
}

std::string OnnxContext::add_initializer(const Tensor& t, const std::string& hint) {
  return impl_.initializer(t, impl_.scope() + hint);
}

std::string OnnxContext::ints(const std::vector<int64_t>& v) {
  graph_hook::Suspend eager;
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::i64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return add_initializer(t, "ints");
}

std::string OnnxContext::scalar(double v, DType dtype) {
  graph_hook::Suspend eager;
  no_grad ng;
  return add_initializer(full(Shape{}, v, {.dtype = dtype}), "scalar");
}

std::string OnnxContext::fresh_name(const std::string& hint) { return impl_.unique(hint); }

void OnnxContext::unsupported(const std::string& why) const {
  throw ValueError(detail::str("ONNX export: op '", op_name(), "'",
                               layer().empty() ? std::string() : " (layer '" + layer() + "')", " ", why));
}

// --- export

std::string export_model_bytes(Model& model, const ExportOptions& o) {
  GLIA_CHECK(o.opset >= 17, ValueError, "ONNX export: opset must be 17 or newer (the operators used need it), got ",
             o.opset);
  std::vector<ModelInput> ins = model_inputs(model);

  // Record the forward pass in inference mode on placeholders with an unknown batch.
  graph::Graph g;
  std::vector<Tensor> phs;
  for (const ModelInput& in : ins) {
    Shape s{o.dynamic_batch ? -1 : 1};
    for (int64_t d : in.shape) s.push_back(d);
    phs.push_back(g.placeholder(in.dtype, s, in.name, false));
  }
  std::vector<Tensor> outs;
  {
    graph::GraphScope scope(g);
    no_grad ng;
    outs = model.forward(phs, false);
  }
  std::vector<graph::Value*> out_values;
  for (const Tensor& t : outs) {
    GLIA_CHECK(t.defined() && t.is_symbolic(), ValueError, "ONNX export: an output of model \"", model.name(),
               "\" does not depend on its inputs");
    out_values.push_back(g.value_of(t));
  }
  g.set_outputs(out_values);

  // Weights are frozen into the file: as constants, what only they determine (a batch-norm's
  // scale and shift, a depthwise kernel's reshape) folds into initializers.
  for (auto& n : g.nodes()) {
    if (n->kind == graph::NodeKind::Capture) n->kind = graph::NodeKind::Constant;
    if (n->has_side_effects())
      throw ValueError(detail::str("ONNX export: op '", n->op ? n->op->name() : "?", "'",
                                   n->name.empty() ? std::string() : " (layer '" + n->name + "')",
                                   " writes into a tensor in place, which an ONNX graph cannot express"));
  }
  // Not fusion: fused ops have no ONNX form.
  for (int changed = 1; changed;) changed = graph::eliminate_dead_code(g) + graph::fold_constants(g);

  OnnxContext::Impl impl;
  ::onnx::ModelProto mp;
  mp.set_ir_version(8);  // the IR version of opset 17 (ONNX 1.12)
  mp.set_producer_name(o.producer);
  mp.set_producer_version(GLIA_VERSION);
  mp.set_doc_string("model \"" + model.name() + "\" exported by Glia");
  auto* opset = mp.add_opset_import();
  opset->set_domain("");
  opset->set_version(o.opset);
  ::onnx::GraphProto* gp = mp.mutable_graph();
  gp->set_name(model.name().empty() ? "glia" : model.name());
  impl.graph = gp;
  weight_names(model, impl.weight_names);

  const std::string batch = o.dynamic_batch ? "batch" : "";
  std::vector<graph::Node*> placeholders = g.placeholders();
  for (size_t i = 0; i < placeholders.size(); ++i) {
    const graph::Value* v = placeholders[i]->outputs[0];
    std::string n = impl.unique(ins[i].name);
    impl.names[v] = n;
    set_type(*gp->add_input(), n, v->dtype, v->shape, batch);
  }
  // Output names: the output layers' names for a Functional model; graph outputs computed by an
  // op node take the name directly, others (an input, a constant) go through an Identity.
  std::vector<std::string> out_names;
  std::vector<std::string> want = model.is_functional() ? model.output_names() : std::vector<std::string>{};
  for (size_t i = 0; i < out_values.size(); ++i) {
    std::string base = i < want.size() && !want[i].empty() ? want[i]
                       : out_values.size() == 1            ? "output"
                                                           : "output_" + std::to_string(i);
    out_names.push_back(impl.unique(base));
  }
  std::set<const graph::Value*> renamed;
  for (size_t i = 0; i < out_values.size(); ++i) {
    const graph::Value* v = out_values[i];
    if (v->producer->kind == graph::NodeKind::Op && !impl.names.count(v) && renamed.insert(v).second)
      impl.names[v] = out_names[i];
  }
  for (auto& n : g.nodes())
    for (const graph::Value* v : n->inputs) impl.used.insert(v);
  for (const graph::Value* v : out_values) impl.used.insert(v);

  OnnxContext ctx(impl);
  no_grad ng;  // exporters compute initializers (transposed kernels) from weights that require grad
  for (auto& np : g.nodes()) {
    const graph::Node& n = *np;
    if (n.kind != graph::NodeKind::Op) continue;
    impl.node = &n;
    impl.outputs.clear();
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      const graph::Value* v = n.outputs[k];
      if (!impl.used.count(v)) {
        impl.outputs.emplace_back();
        continue;
      }
      auto it = impl.names.find(v);
      if (it == impl.names.end()) {
        std::string base = (n.name.empty() ? "" : n.name + "/") + n.op->name();
        if (n.outputs.size() > 1) base += std::string(":") + std::to_string(k);
        it = impl.names.emplace(v, impl.unique(base)).first;
      }
      impl.outputs.push_back(it->second);
    }
    const ExportFn* f = find_exporter(n.op->name());
    if (!f) ctx.unsupported("has no ONNX equivalent");
    (*f)(ctx);
  }
  impl.node = nullptr;
  for (size_t i = 0; i < out_values.size(); ++i) {
    const graph::Value* v = out_values[i];
    const std::string& n = impl.name_of(v);
    if (n != out_names[i]) ctx.add_node("Identity", {n}, {out_names[i]});
    set_type(*gp->add_output(), out_names[i], v->dtype, v->shape, batch);
  }
  cancel_transposes(*gp);
  std::string bytes;
  GLIA_CHECK(mp.SerializeToString(&bytes), ValueError, "ONNX export: the model could not be serialized");
  return bytes;
}

void export_model(Model& model, const std::string& path, const ExportOptions& o) {
  std::string bytes = export_model_bytes(model, o);
  io::detail::write_file_atomic(path, bytes);
}

}  // namespace glia::onnx
