// The op definition: one place per op holds its schema, shape/dtype
// inference, gradient rule and (registered separately) its kernels.
//
//   GLIA_OP(relu)
//       .inputs({"x"})
//       .infer(same_as_input(0))
//       .grad([](GradContext& c) { return grads{c.grad_out() * (c.input(0) > 0)}; });
//
//   GLIA_KERNEL(relu, CPU, [](KernelContext& k) { ... });
//
// Every public tensor function calls `dispatch`, which infers, allocates,
// runs the device's kernel and records the tape node.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "glia/core/small_vector.h"
#include "glia/core/tensor.h"

namespace glia {

using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>, DType, Scalar>;

/// Named attributes of one op call (axis, stride, padding, ...).
class Attrs {
 public:
  using Item = std::pair<const char*, AttrValue>;
  Attrs() = default;
  Attrs(std::initializer_list<Item> items) : items_(items) {}

  bool has(const char* key) const { return find(key) != nullptr; }
  template <class T>
  const T& get(const char* key) const {
    const AttrValue* v = find(key);
    if (!v) throw InternalError(detail::str("op attribute '", key, "' is missing"));
    const T* p = std::get_if<T>(v);
    if (!p) throw InternalError(detail::str("op attribute '", key, "' has another type"));
    return *p;
  }
  template <class T>
  T get_or(const char* key, T def) const {
    const AttrValue* v = find(key);
    return v ? std::get<T>(*v) : def;
  }
  void set(const char* key, AttrValue v);
  const Item* begin() const { return items_.begin(); }
  const Item* end() const { return items_.end(); }
  size_t size() const { return items_.size(); }

 private:
  const AttrValue* find(const char* key) const;
  SmallVec<Item, 4> items_;
};

/// Shape and dtype of an op output, as inferred before anything runs.
struct TensorSpec {
  Shape shape;
  DType dtype;
  /// Where the output is made; unset: on the inputs' device (set by copies across devices and by ops
  /// without inputs, such as random draws, whose kernel is then that device's).
  std::optional<Device> device = std::nullopt;
};

class OpDef;
class OpNode;
using TensorList = SmallVec<Tensor, 2>;
using grads = std::vector<Tensor>;

class InferContext {
 public:
  InferContext(const OpDef& op, std::span<const Tensor> in, const Attrs& attrs) : op_(op), in_(in), attrs_(attrs) {}
  const OpDef& op() const { return op_; }
  const char* name() const;
  size_t num_inputs() const { return in_.size(); }
  const Tensor& input(size_t i) const { return in_[i]; }
  const Shape& shape(size_t i) const { return in_[i].shape(); }
  DType dtype(size_t i) const { return in_[i].dtype(); }
  const Attrs& attrs() const { return attrs_; }
  template <class T>
  const T& attr(const char* key) const {
    return attrs_.get<T>(key);
  }
  void set_output(Shape shape, DType dtype) { out_.push_back({std::move(shape), dtype}); }
  void set_output(Shape shape, DType dtype, Device device) { out_.push_back({std::move(shape), dtype, device}); }
  SmallVec<TensorSpec, 2>& outputs() { return out_; }

 private:
  const OpDef& op_;
  std::span<const Tensor> in_;
  const Attrs& attrs_;
  SmallVec<TensorSpec, 2> out_;
};

class KernelContext {
 public:
  KernelContext(const OpDef& op, std::span<const Tensor> in, std::span<Tensor> out, const Attrs& attrs)
      : op_(op), in_(in), out_(out), attrs_(attrs) {}
  const OpDef& op() const { return op_; }
  const char* name() const;
  size_t num_inputs() const { return in_.size(); }
  size_t num_outputs() const { return out_.size(); }
  const Tensor& input(size_t i) const { return in_[i]; }
  std::span<const Tensor> inputs() const { return in_; }
  Tensor& output(size_t i = 0) const { return out_[i]; }
  const Attrs& attrs() const { return attrs_; }
  template <class T>
  const T& attr(const char* key) const {
    return attrs_.get<T>(key);
  }

 private:
  const OpDef& op_;
  std::span<const Tensor> in_;
  std::span<Tensor> out_;
  const Attrs& attrs_;
};

/// What a gradient rule sees: the incoming gradients, the saved inputs and
/// outputs, the attributes. It computes the input gradients with public
/// tensor functions, so the rule is itself differentiable.
class GradContext {
 public:
  GradContext(OpNode& node, std::span<const Tensor> grads_out) : node_(node), grads_(grads_out) {}
  const Tensor& grad_out(size_t i = 0) const { return grads_[i]; }
  /// Input i as saved at the call; throws if modified in place since.
  Tensor input(size_t i) const;
  /// Output i as saved at the call (only for ops that declare save_outputs).
  Tensor output(size_t i = 0) const;
  const Shape& input_shape(size_t i) const;
  DType input_dtype(size_t i) const;
  size_t num_inputs() const;
  /// Whether input i wants a gradient; rules may skip work for the others.
  bool needs_grad(size_t i) const;
  /// g summed down to input i's shape (the reverse of broadcasting), expanded to it, or reshaped to
  /// it. They also work in graphs whose input shapes are known only at run time (a placeholder's
  /// -1 batch): then they record ops that read the shape when the graph runs.
  Tensor sum_to_input(const Tensor& g, size_t i) const;
  Tensor expand_to_input(const Tensor& g, size_t i) const;
  Tensor reshape_to_input(const Tensor& g, size_t i) const;
  /// Zeros shaped like input i.
  Tensor zeros_like_input(size_t i, DType dtype) const;
  const Attrs& attrs() const;
  template <class T>
  const T& attr(const char* key) const {
    return attrs().get<T>(key);
  }

 private:
  OpNode& node_;
  std::span<const Tensor> grads_;
};

using InferFn = std::function<void(InferContext&)>;
using KernelFn = std::function<void(KernelContext&)>;
using GradFn = std::function<grads(GradContext&)>;
/// A view op returns an output that shares the input's storage (or a copy when it cannot).
using ViewFn = std::function<Tensor(const Tensor&, const Attrs&)>;
/// For a mutating op: whether its kernel writes input `index` of `num_inputs` (given the attrs).
using WritesFn = std::function<bool(size_t index, size_t num_inputs, const Attrs&)>;

class OpDef {
 public:
  explicit OpDef(std::string name) : name_(std::move(name)) {}
  OpDef(const OpDef&) = delete;

  OpDef& inputs(std::vector<std::string> names);
  /// The last input takes any number of tensors (concat, stack).
  OpDef& variadic();
  OpDef& num_outputs(int n);
  OpDef& infer(InferFn f);
  OpDef& grad(GradFn f);
  OpDef& view(ViewFn f);
  /// Which inputs / outputs the gradient rule reads (default: all inputs, no outputs).
  OpDef& save_inputs(std::vector<int> which);
  OpDef& save_outputs(std::vector<int> which);
  /// Outputs are integers or masks: nothing flows back through them.
  OpDef& non_differentiable();
  /// The kernel writes into its inputs (optimizer updates): graphs treat calls as side effects.
  /// `writes` tells which inputs it writes (default: all of them).
  OpDef& mutating(WritesFn writes = nullptr);
  /// The kernel draws random numbers: graphs never fold or merge its calls.
  OpDef& random();
  OpDef& doc(std::string d);
  OpDef& kernel(DeviceType d, KernelFn f);

  const std::string& name() const { return name_; }
  const std::vector<std::string>& input_names() const { return input_names_; }
  bool is_variadic() const { return variadic_; }
  int num_outputs() const { return num_outputs_; }
  const InferFn& infer_fn() const { return infer_; }
  const GradFn& grad_fn() const { return grad_; }
  const ViewFn& view_fn() const { return view_; }
  bool is_view() const { return static_cast<bool>(view_); }
  bool saves_input(size_t i) const { return save_all_inputs_ || ((save_in_mask_ >> i) & 1u); }
  bool saves_output(size_t i) const { return (save_out_mask_ >> i) & 1u; }
  bool differentiable() const { return differentiable_ && static_cast<bool>(grad_); }
  bool mutates_inputs() const { return mutating_; }
  /// Whether a call with these attrs writes input `index` (false for ops that are not mutating).
  bool writes_input(size_t index, size_t num_inputs, const Attrs& a) const {
    return mutating_ && (!writes_ || writes_(index, num_inputs, a));
  }
  bool is_random() const { return random_; }
  const std::string& doc() const { return doc_; }
  const KernelFn* kernel_for(DeviceType d) const {
    const KernelFn& k = kernels_[static_cast<int>(d)];
    return k ? &k : nullptr;
  }

 private:
  std::string name_;
  std::vector<std::string> input_names_;
  bool variadic_ = false;
  int num_outputs_ = 1;
  InferFn infer_;
  GradFn grad_;
  ViewFn view_;
  bool save_all_inputs_ = true;
  uint64_t save_in_mask_ = 0;
  uint64_t save_out_mask_ = 0;
  bool differentiable_ = true;
  bool mutating_ = false;
  WritesFn writes_;
  bool random_ = false;
  std::string doc_;
  KernelFn kernels_[kNumDeviceTypes];
};

/// The registry of all op definitions, by name.
class OpRegistry {
 public:
  static OpRegistry& instance();
  OpDef& get_or_create(std::string_view name);
  /// Throws ValueError for an unknown name.
  const OpDef& get(std::string_view name) const;
  const OpDef* find(std::string_view name) const;
  std::vector<const OpDef*> all() const;

 private:
  struct Impl;
  Impl* impl_;
  OpRegistry();
};

inline OpDef& define_op(std::string_view name) { return OpRegistry::instance().get_or_create(name); }

// --- the graph hook
// While a graph is built (glia::function tracing, the explicit Graph API), op calls are recorded
// as nodes instead of run. The graph layer installs the recorder; dispatch only asks whether to
// call it: when a graph is being built on this thread, or when an input is symbolic.
namespace graph_hook {
using RecordFn = TensorList (*)(const OpDef& op, std::span<const Tensor> inputs, const Attrs& attrs, bool inplace);
void install(RecordFn f);
/// The graph being built on this thread (opaque here), or null.
void* current();
void set_current(void* graph);
/// True if a call with these inputs must be recorded rather than run.
inline bool intercepts(std::span<const Tensor> inputs) {
  if (current() != nullptr) return true;
  for (const Tensor& t : inputs)
    if (t.is_symbolic()) return true;
  return false;
}
/// Records the call (in-place: inputs[0] is written); the outputs are symbolic tensors.
TensorList record(const OpDef& op, std::span<const Tensor> inputs, const Attrs& attrs, bool inplace);
/// While alive, calls on this thread are recorded into the graph of `symbolic` (for code that
/// updates real state from symbolic values: the update must be recorded even though the state
/// alone is not symbolic). Does nothing for a tensor with data.
class RecordInto {
 public:
  explicit RecordInto(const Tensor& symbolic) : prev_(current()) {
    if (symbolic.is_symbolic() && !prev_) set_current(symbolic.impl()->symbolic->graph);
  }
  ~RecordInto() { set_current(prev_); }
  RecordInto(const RecordInto&) = delete;
  RecordInto& operator=(const RecordInto&) = delete;

 private:
  void* prev_;
};
using RunHooksFn = void (*)(const Tensor& symbolic, std::function<void()> before, std::function<void()> after);
void install_run_hooks(RunHooksFn f);
/// Asks the graph that `symbolic` belongs to to call `before` and `after` around each of its runs
/// (an optimizer recorded into a graph keeps its learning rate and step count this way).
void on_run(const Tensor& symbolic, std::function<void()> before, std::function<void()> after);
/// Makes calls on this thread run eagerly for its lifetime, even while a graph is being built
/// (creation functions: their results become constants of the graph).
class Suspend {
 public:
  Suspend() : prev_(current()) { set_current(nullptr); }
  ~Suspend() { set_current(prev_); }
  Suspend(const Suspend&) = delete;
  Suspend& operator=(const Suspend&) = delete;

 private:
  void* prev_;
};
}  // namespace graph_hook

// --- dispatch

/// Runs op on inputs: infers, checks devices, allocates, runs the kernel, records autograd.
TensorList dispatch(const OpDef& op, std::span<const Tensor> inputs, Attrs attrs = {});
inline TensorList dispatch(const OpDef& op, std::initializer_list<Tensor> inputs, Attrs attrs = {}) {
  return dispatch(op, std::span<const Tensor>(inputs.begin(), inputs.size()), std::move(attrs));
}
/// The single output of op.
inline Tensor call(const OpDef& op, std::initializer_list<Tensor> inputs, Attrs attrs = {}) {
  return std::move(dispatch(op, inputs, std::move(attrs))[0]);
}
inline Tensor call(const OpDef& op, std::span<const Tensor> inputs, Attrs attrs = {}) {
  return std::move(dispatch(op, inputs, std::move(attrs))[0]);
}
/// Runs an element-wise op writing into `self` (which keeps its dtype and shape),
/// bumps self's version. Throws when autograd would need the overwritten values.
void dispatch_inplace(const OpDef& op, const Tensor& self, std::span<const Tensor> others, Attrs attrs = {});
/// The execution part of dispatch_inplace (no checks of autograd, no graph hook): runs op with
/// inputs[0] as the destination. Graph executors call it for recorded in-place nodes.
void run_inplace(const OpDef& op, std::span<const Tensor> inputs, const Attrs& attrs);

// --- common inference rules
/// Output i of the same shape and dtype as input i.
InferFn same_as_input(size_t i);
/// The dtype of combining tensors as PyTorch does: dimensioned tensors first, then 0-d
/// tensors, then numbers written in code, which only raise the kind (bool < int < float).
DType result_type(std::span<const Tensor> ts);

/// Refuses in-place writes into a view whose elements share memory (a size > 1 dim of stride 0,
/// as from expand): the result would depend on the write order. The error names the op.
void check_no_internal_overlap(const Tensor& t, const char* op);

/// Checks that a tensor has a floating dtype; the error names the op.
void check_floating(const Tensor& t, const char* op, const char* what = "input");

}  // namespace glia

#define GLIA_CAT_(a, b) a##b
#define GLIA_CAT(a, b) GLIA_CAT_(a, b)
/// Defines op `name` in this file; `op_<name>` is its OpDef&.
#define GLIA_OP(name) [[maybe_unused]] static ::glia::OpDef& op_##name = ::glia::define_op(#name)
/// Registers a kernel for op `name` on device type `dev` (CPU, CUDA).
#define GLIA_KERNEL(name, dev, ...)                                                      \
  [[maybe_unused]] static const bool GLIA_CAT(glia_kernel_##name##_##dev##_, __LINE__) = \
      (::glia::define_op(#name).kernel(::glia::DeviceType::dev, __VA_ARGS__), true)
