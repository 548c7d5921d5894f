// The one path every op call takes: infer, check devices, allocate, run the
// device's kernel, record the tape.
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#include "glia/autograd/autograd.h"
#include "glia/autograd/node.h"
#include "glia/ops/op.h"

namespace glia {

// --- Attrs

void Attrs::set(const char* key, AttrValue v) {
  for (auto& [k, val] : items_)
    if (std::strcmp(k, key) == 0) {
      val = std::move(v);
      return;
    }
  items_.emplace_back(key, std::move(v));
}

const AttrValue* Attrs::find(const char* key) const {
  for (auto& [k, val] : items_)
    if (k == key || std::strcmp(k, key) == 0) return &val;
  return nullptr;
}

// --- OpDef

const char* InferContext::name() const { return op_.name().c_str(); }
const char* KernelContext::name() const { return op_.name().c_str(); }

OpDef& OpDef::inputs(std::vector<std::string> names) {
  input_names_ = std::move(names);
  return *this;
}
OpDef& OpDef::variadic() {
  variadic_ = true;
  return *this;
}
OpDef& OpDef::num_outputs(int n) {
  num_outputs_ = n;
  return *this;
}
OpDef& OpDef::infer(InferFn f) {
  infer_ = std::move(f);
  return *this;
}
OpDef& OpDef::grad(GradFn f) {
  grad_ = std::move(f);
  return *this;
}
OpDef& OpDef::view(ViewFn f) {
  view_ = std::move(f);
  return *this;
}
OpDef& OpDef::save_inputs(std::vector<int> which) {
  save_all_inputs_ = false;
  save_in_mask_ = 0;
  for (int i : which) save_in_mask_ |= uint64_t(1) << i;
  return *this;
}
OpDef& OpDef::save_outputs(std::vector<int> which) {
  save_out_mask_ = 0;
  for (int i : which) save_out_mask_ |= uint64_t(1) << i;
  return *this;
}
OpDef& OpDef::non_differentiable() {
  differentiable_ = false;
  return *this;
}
OpDef& OpDef::mutating(WritesFn writes) {
  mutating_ = true;
  writes_ = std::move(writes);
  return *this;
}
OpDef& OpDef::random() {
  random_ = true;
  return *this;
}
OpDef& OpDef::doc(std::string d) {
  doc_ = std::move(d);
  return *this;
}
OpDef& OpDef::kernel(DeviceType d, KernelFn f) {
  kernels_[static_cast<int>(d)] = std::move(f);
  return *this;
}

struct OpRegistry::Impl {
  std::mutex mu;
  std::deque<OpDef> ops;  // stable addresses
  std::map<std::string, OpDef*, std::less<>> by_name;
};

OpRegistry::OpRegistry() : impl_(new Impl) {}

OpRegistry& OpRegistry::instance() {
  static auto* r = new OpRegistry();  // leaked: used during static init and exit
  return *r;
}

OpDef& OpRegistry::get_or_create(std::string_view name) {
  std::lock_guard<std::mutex> g(impl_->mu);
  auto it = impl_->by_name.find(name);
  if (it != impl_->by_name.end()) return *it->second;
  OpDef& d = impl_->ops.emplace_back(std::string(name));
  impl_->by_name.emplace(std::string(name), &d);
  return d;
}

const OpDef* OpRegistry::find(std::string_view name) const {
  std::lock_guard<std::mutex> g(impl_->mu);
  auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? nullptr : it->second;
}

const OpDef& OpRegistry::get(std::string_view name) const {
  const OpDef* d = find(name);
  GLIA_CHECK(d != nullptr, ValueError, "unknown op '", std::string(name), "'");
  return *d;
}

std::vector<const OpDef*> OpRegistry::all() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  std::vector<const OpDef*> v;
  for (auto& [n, d] : impl_->by_name) v.push_back(d);
  return v;
}

// --- inference helpers

InferFn same_as_input(size_t i) {
  return [i](InferContext& c) { c.set_output(c.shape(i), c.dtype(i)); };
}

void check_floating(const Tensor& t, const char* op, const char* what) {
  GLIA_CHECK(is_floating(t.dtype()), DTypeError, op, ": expected a floating-point ", what, ", got ", name(t.dtype()),
             " (convert with .to(glia::float32))");
}

DType result_type(std::span<const Tensor> ts) {
  // Three priority groups; within a group types promote, lower groups only raise the kind.
  auto kind = [](DType t) { return is_floating(t) ? 2 : t == DType::b8 ? 0 : 1; };
  bool have[3] = {false, false, false};
  DType best[3] = {DType::b8, DType::b8, DType::b8};
  for (const Tensor& t : ts) {
    int g = t.impl()->wrapped_number ? 2 : t.dim() == 0 ? 1 : 0;
    best[g] = have[g] ? promote_types(best[g], t.dtype()) : t.dtype();
    have[g] = true;
  }
  // Numbers alone (where(c, 1.5, 2)) give the default dtype of their kind, as a literal would.
  if (!have[0] && !have[1] && have[2]) return kind(best[2]) == 2 ? DType::f32 : best[2];
  DType r = DType::b8;
  bool set = false;
  for (int g = 0; g < 3; ++g) {
    if (!have[g]) continue;
    if (!set) {
      r = best[g];
      set = true;
    } else if (kind(best[g]) > kind(r)) {
      r = kind(best[g]) == 2 ? (g == 2 ? DType::f32 : best[g]) : (g == 2 ? DType::i64 : best[g]);
    }
  }
  return r;
}

// --- dispatch

namespace {

Device common_device(const OpDef& op, std::span<const Tensor> in) {
  Device dev = Device::cpu();
  bool found = false;
  for (const Tensor& t : in) {
    Device d = t.device();
    if (!found) {
      dev = d;
      found = !(t.dim() == 0 && d.is_cpu());  // a CPU scalar goes with any device
      continue;
    }
    if (d != dev && !(t.dim() == 0 && d.is_cpu()))
      throw DeviceError(
          detail::str(op.name(), ": expected all tensors on one device, got ", dev.str(), " and ", d.str()));
  }
  return dev;
}

void check_inputs(const OpDef& op, std::span<const Tensor> in) {
  size_t want = op.input_names().size();
  if (op.is_variadic()) {
    GLIA_CHECK(in.size() + 1 >= want, ValueError, op.name(), ": expected at least ", want - 1, " inputs, got ",
               in.size());
  } else {
    GLIA_CHECK(in.size() == want, InternalError, op.name(), ": expected ", want, " inputs, got ", in.size());
  }
  for (size_t i = 0; i < in.size(); ++i)
    GLIA_CHECK(in[i].defined(), ValueError, op.name(), ": input ", i, " is an undefined tensor");
}

}  // namespace

namespace graph_hook {
namespace {
RecordFn g_record = nullptr;
RunHooksFn g_run_hooks = nullptr;
thread_local void* t_current = nullptr;
}  // namespace
void install(RecordFn f) { g_record = f; }
void install_run_hooks(RunHooksFn f) { g_run_hooks = f; }
void on_run(const Tensor& symbolic, std::function<void()> before, std::function<void()> after) {
  GLIA_CHECK(g_run_hooks != nullptr && symbolic.is_symbolic(), InternalError,
             "graph_hook::on_run: needs a symbolic tensor and the graph layer");
  g_run_hooks(symbolic, std::move(before), std::move(after));
}
void* current() { return t_current; }
void set_current(void* graph) { t_current = graph; }
TensorList record(const OpDef& op, std::span<const Tensor> inputs, const Attrs& attrs, bool inplace) {
  GLIA_CHECK(g_record != nullptr, InternalError, op.name(), ": a symbolic input, but no graph layer is installed");
  return g_record(op, inputs, attrs, inplace);
}
}  // namespace graph_hook

TensorList dispatch(const OpDef& op, std::span<const Tensor> in, Attrs attrs) {
  check_inputs(op, in);
  TensorList out;
  if (graph_hook::intercepts(in)) [[unlikely]] {
    out = graph_hook::record(op, in, attrs, false);
  } else if (op.is_view()) {
    out.push_back(op.view_fn()(in[0], attrs));
  } else {
    InferContext ic(op, in, attrs);
    op.infer_fn()(ic);
    Device dev = common_device(op, in);
    // An op without inputs (a random draw) runs on the device its output is made on.
    if (in.empty() && !ic.outputs().empty() && ic.outputs()[0].device) dev = *ic.outputs()[0].device;
    // The outputs first: a device that cannot be used (no GPU, no CUDA in this build) says why.
    for (auto& spec : ic.outputs()) out.push_back(Tensor::empty(spec.shape, spec.dtype, spec.device.value_or(dev)));
    const KernelFn* k = op.kernel_for(dev.type);
    GLIA_CHECK(k != nullptr, DeviceError, op.name(), ": no kernel for device ", dev.str());
    KernelContext kc(op, in, std::span<Tensor>(out.data(), out.size()), attrs);
    (*k)(kc);
  }
  if (op.differentiable() && autograd::any_requires_grad(in))
    autograd::record(op, in, std::span<Tensor>(out.data(), out.size()), std::move(attrs));
  return out;
}

void check_no_internal_overlap(const Tensor& t, const char* op) {
  bool overlap = false;
  for (int64_t d = 0; d < t.dim(); ++d) overlap = overlap || (t.strides()[d] == 0 && t.shape()[d] > 1);
  GLIA_CHECK(!overlap, ValueError, op, ": in-place write into a tensor whose elements share memory (shape ",
             to_string(t.shape()), ", strides ", to_string(t.strides()), ", as made by expand); clone() it first");
}

void dispatch_inplace(const OpDef& op, const Tensor& self, std::span<const Tensor> others, Attrs attrs) {
  check_no_internal_overlap(self, (op.name() + "_").c_str());
  SmallVec<Tensor, 4> in;
  in.push_back(self);
  for (const Tensor& t : others) {
    // An input that overlaps self with another layout would be read after being written.
    if (t.storage() && t.storage() == self.storage() && (t.strides() != self.strides() || t.offset() != self.offset()))
      in.push_back(t.clone());
    else
      in.push_back(t);
  }
  std::span<const Tensor> ins(in.data(), in.size());
  check_inputs(op, ins);
  if (GradMode::is_enabled()) {
    for (const Tensor& t : ins)
      GLIA_CHECK(!t.requires_grad(), ValueError, op.name(),
                 "_: in-place operation on a tensor that takes part in autograd; use the out-of-place form, "
                 "or run it under glia::no_grad");
  }
  if (graph_hook::intercepts(ins)) [[unlikely]] {
    graph_hook::record(op, ins, attrs, true);
    return;
  }
  run_inplace(op, ins, attrs);
}

void run_inplace(const OpDef& op, std::span<const Tensor> ins, const Attrs& attrs) {
  const Tensor& self = ins[0];
  InferContext ic(op, ins, attrs);
  op.infer_fn()(ic);
  const TensorSpec& spec = ic.outputs()[0];
  GLIA_CHECK(spec.shape == self.shape(), ShapeError, op.name(), "_: result of shape ", to_string(spec.shape),
             " does not fit in-place into a tensor of shape ", to_string(self.shape()));
  GLIA_CHECK(spec.dtype == self.dtype() || is_floating(self.dtype()) || !is_floating(spec.dtype), DTypeError, op.name(),
             "_: result type ", name(spec.dtype), " cannot be stored in-place into ", name(self.dtype()));
  Device dev = common_device(op, ins);
  const KernelFn* k = op.kernel_for(dev.type);
  GLIA_CHECK(k != nullptr, DeviceError, op.name(), ": no kernel for device ", dev.str());
  // Kernels compute in the result dtype; a result of another dtype is cast on the way in.
  Tensor target = spec.dtype == self.dtype() ? self : Tensor::empty(spec.shape, spec.dtype, dev);
  KernelContext kc(op, ins, std::span<Tensor>(&target, 1), attrs);
  (*k)(kc);
  if (!target.is_same(self)) {
    no_grad guard;
    self.copy_(target);  // bumps the version
  } else {
    self.storage()->bump_version();
  }
}

}  // namespace glia
