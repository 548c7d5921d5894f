// Tensor handles: metadata, element access, printing, autograd state and creation.
#include "glia/core/tensor.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "glia/autograd/autograd.h"
#include "glia/autograd/node.h"
#include "glia/core/random.h"
#include "glia/ops/device_attrs.h"
#include "glia/ops/functions.h"
#include "glia/ops/op.h"

namespace glia {

void TensorImpl::refresh_numel() { numel = glia::numel(shape); }

uint64_t next_tensor_id() {
  static std::atomic<uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

Tensor Tensor::empty(IntList shape, DType dtype, Device device) {
  for (int64_t d : shape) GLIA_CHECK(d >= 0, ShapeError, "empty: negative dimension in shape ", to_string(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = Shape(shape.begin(), shape.end());
  impl->strides = contiguous_strides(shape);
  impl->numel = glia::numel(shape);
  impl->dtype = dtype;
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(impl->numel) * glia::itemsize(dtype), device);
  return Tensor(std::move(impl));
}

Tensor Tensor::make_view(std::shared_ptr<Storage> storage, IntList shape, IntList strides, int64_t offset,
                         DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = Shape(shape.begin(), shape.end());
  impl->strides = Shape(strides.begin(), strides.end());
  impl->offset = offset;
  impl->numel = glia::numel(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t d) const { return shape()[static_cast<size_t>(wrap_axis(d, dim(), "size"))]; }
int64_t Tensor::stride(int64_t d) const { return strides()[static_cast<size_t>(wrap_axis(d, dim(), "stride"))]; }

bool Tensor::is_contiguous() const {
  const TensorImpl* t = check();
  int64_t expect = 1;
  for (size_t i = t->shape.size(); i-- > 0;) {
    if (t->shape[i] == 1) continue;
    if (t->strides[i] != expect) return false;
    expect *= t->shape[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  const TensorImpl* t = check();
  GLIA_CHECK(!t->symbolic, ValueError, "a symbolic tensor (shape ", to_string(t->shape), ", ", name(t->dtype),
             ") has no data: it is a value of a graph being built or traced, known only when the graph runs; "
             "inside glia::function, return it instead of reading it");
  char* base = static_cast<char*>(t->storage->data());
  return base ? base + t->offset * static_cast<int64_t>(glia::itemsize(t->dtype)) : nullptr;
}

namespace {

Scalar read_scalar(const void* p, DType t) {
  return visit_dtype(t, [&]<class T>() -> Scalar { return Scalar(*static_cast<const T*>(p)); });
}

int64_t flat_offset(const Tensor& t, IntList index) {
  GLIA_CHECK(static_cast<int64_t>(index.size()) == t.dim(), ValueError, "at: got ", index.size(),
             " indices for a tensor of rank ", t.dim(), " (shape ", to_string(t.shape()), ")");
  int64_t off = 0;
  for (size_t d = 0; d < index.size(); ++d) {
    int64_t n = t.shape()[d], i = index[d];
    GLIA_CHECK(i >= -n && i < n, ValueError, "at: index ", i, " is out of range for dimension ", d, " of size ", n,
               " (shape ", to_string(t.shape()), ")");
    off += (i < 0 ? i + n : i) * t.strides()[d];
  }
  return off;
}

}  // namespace

Scalar Tensor::item() const {
  GLIA_CHECK(numel() == 1, ValueError, "item: expected a tensor with one element, got shape ", to_string(shape()));
  Tensor c = device().is_cpu() ? *this : detach().to(Device::cpu());
  return read_scalar(c.data_ptr(), c.dtype());
}

Scalar Tensor::at(IntList index) const {
  Tensor c = device().is_cpu() ? *this : detach().to(Device::cpu());
  int64_t off = flat_offset(c, index);
  return read_scalar(static_cast<const char*>(c.data_ptr()) + off * static_cast<int64_t>(c.itemsize()), c.dtype());
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = (device().is_cpu() ? *this : detach().to(Device::cpu())).to(dtype_v<T>).contiguous();
  const T* p = static_cast<const T*>(c.data_ptr());
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;
template <>
std::vector<bool> Tensor::to_vector<bool>() const {
  auto v = to(DType::u8).to_vector<uint8_t>();
  return std::vector<bool>(v.begin(), v.end());
}

// --- printing, in PyTorch's style

namespace {

struct Formatter {
  bool floating = false, is_bool = false, ints_only = true, sci = false;
  int width = 1;

  void fit(const std::vector<double>& vals) {
    double amax = 0, amin = std::numeric_limits<double>::infinity();
    bool any_finite = false;
    for (double v : vals) {
      if (!std::isfinite(v)) continue;
      any_finite = true;
      if (v != std::floor(v)) ints_only = false;
      amax = std::max(amax, std::abs(v));
      if (v != 0) amin = std::min(amin, std::abs(v));
    }
    if (floating && any_finite && !ints_only)
      sci = amax >= 1e8 || (amin < 1e-4 && amin > 0) || (amin > 0 && amax / amin > 1000.0);
    if (floating && ints_only && amax >= 1e8) sci = true;
    for (double v : vals) width = std::max(width, static_cast<int>(fmt(v).size()));
  }
  std::string fmt(double v) const {
    std::ostringstream os;
    if (is_bool) return v != 0 ? "True" : "False";
    if (!floating) {
      os << static_cast<int64_t>(v);
      return os.str();
    }
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (sci) {
      os << std::scientific << std::setprecision(4) << v;
    } else if (ints_only) {
      os << std::fixed << std::setprecision(0) << v << ".";
    } else {
      os << std::fixed << std::setprecision(4) << v;
    }
    return os.str();
  }
};

// Which indices of a dimension to show: all, or the first and last 3 when summarizing.
std::vector<int64_t> shown(int64_t n, bool summarize) {
  std::vector<int64_t> idx;
  if (summarize && n > 6) {
    for (int64_t i = 0; i < 3; ++i) idx.push_back(i);
    idx.push_back(-1);  // the ellipsis
    for (int64_t i = n - 3; i < n; ++i) idx.push_back(i);
  } else {
    for (int64_t i = 0; i < n; ++i) idx.push_back(i);
  }
  return idx;
}

void collect(const Tensor& t, int64_t d, int64_t off, bool summarize, std::vector<double>& out) {
  if (d == t.dim()) {
    out.push_back(
        read_scalar(static_cast<const char*>(t.data_ptr()) + off * static_cast<int64_t>(t.itemsize()), t.dtype())
            .to_double());
    return;
  }
  for (int64_t i : shown(t.shape()[d], summarize))
    if (i >= 0) collect(t, d + 1, off + i * t.strides()[d], summarize, out);
}

void render(const Tensor& t, int64_t d, int64_t off, bool summarize, const Formatter& f, int indent, std::ostream& os) {
  if (d == t.dim()) {
    double v = read_scalar(static_cast<const char*>(t.data_ptr()) + off * static_cast<int64_t>(t.itemsize()), t.dtype())
                   .to_double();
    os << std::setw(f.width) << f.fmt(v);
    return;
  }
  os << "[";
  auto idx = shown(t.shape()[d], summarize);
  bool last_dim = d == t.dim() - 1;
  for (size_t k = 0; k < idx.size(); ++k) {
    if (k) {
      os << ",";
      if (last_dim) {
        os << " ";
      } else {
        os << std::string(static_cast<size_t>(t.dim() - d - 1), '\n') << std::string(indent + d + 1, ' ');
      }
    }
    if (idx[k] < 0) {
      os << "...";
      continue;
    }
    render(t, d + 1, off + idx[k] * t.strides()[d], summarize, f, indent, os);
  }
  os << "]";
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  if (is_symbolic()) return "tensor(symbolic, shape=" + to_string(shape()) + ", dtype=" + name(dtype()) + ")";
  Tensor c = device().is_cpu() ? *this : detach().to(Device::cpu());
  bool summarize = c.numel() > 1000;
  Formatter f;
  f.floating = is_floating(c.dtype());
  f.is_bool = c.dtype() == DType::b8;
  std::vector<double> vals;
  collect(c, 0, 0, summarize, vals);
  f.fit(vals);
  std::ostringstream os;
  os << "tensor(";
  if (c.numel() == 0 && c.dim() > 0) {
    os << "[]";
  } else {
    render(c, 0, 0, summarize, f, 7, os);
  }
  bool need_shape = c.numel() == 0 && c.dim() != 1;
  if (need_shape) os << ", size=" << to_string(c.shape());
  if (c.dtype() != DType::f32 && c.dtype() != DType::i64 && c.dtype() != DType::b8) os << ", dtype=" << name(c.dtype());
  if (!device().is_cpu()) os << ", device='" << device().str() << "'";
  if (grad_fn())
    os << ", grad_fn=<" << grad_fn()->name() << ">";
  else if (requires_grad())
    os << ", requires_grad=True";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

// --- autograd state

bool Tensor::requires_grad() const {
  const AutogradMeta* m = check()->autograd.get();
  return m && m->requires_grad;
}

Tensor& Tensor::requires_grad_(bool r) {
  TensorImpl* t = check();
  if (r)
    GLIA_CHECK(is_floating(t->dtype), DTypeError,
               "requires_grad_: only floating-point tensors can require "
               "gradients, got ",
               name(t->dtype));
  if (!r && t->autograd && t->autograd->grad_fn)
    throw ValueError("requires_grad_(false): only leaf tensors can stop requiring grad; use detach()");
  if (!t->autograd) t->autograd = std::make_unique<AutogradMeta>();
  t->autograd->requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const {
  const AutogradMeta* m = check()->autograd.get();
  return m && m->grad ? *m->grad : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  TensorImpl* t = check();
  if (g.defined())
    GLIA_CHECK(g.shape() == t->shape, ShapeError, "set_grad: gradient of shape ", to_string(g.shape()),
               " for a tensor of shape ", to_string(t->shape));
  if (!t->autograd) t->autograd = std::make_unique<AutogradMeta>();
  if (g.defined())
    t->autograd->grad = std::make_shared<Tensor>(g);
  else
    t->autograd->grad.reset();
}

void Tensor::retain_grad() const {
  TensorImpl* t = check();
  GLIA_CHECK(requires_grad(), ValueError, "retain_grad: the tensor does not require grad");
  if (!t->autograd->grad_fn || t->autograd->retains_grad) return;  // leaves keep theirs anyway
  t->autograd->retains_grad = true;
  t->autograd->grad_fn->retained.push_back({t->autograd->output_nr, impl_});
}

bool Tensor::is_leaf() const {
  const AutogradMeta* m = check()->autograd.get();
  return !m || !m->grad_fn;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  const AutogradMeta* m = check()->autograd.get();
  return m ? m->grad_fn : none;
}

uint32_t Tensor::output_nr() const {
  const AutogradMeta* m = check()->autograd.get();
  return m ? m->output_nr : 0;
}

Tensor Tensor::detach() const {
  const TensorImpl* s = check();
  Tensor t = make_view(s->storage, s->shape, s->strides, s->offset, s->dtype);
  t.impl()->wrapped_number = s->wrapped_number;
  t.impl()->symbolic = s->symbolic;
  return t;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  glia::backward({*this}, gradient.defined() ? std::vector<Tensor>{gradient} : std::vector<Tensor>{},
                 {.retain_graph = retain_graph, .create_graph = create_graph});
}

// --- creation

namespace {
Tensor finish(Tensor t, const TensorOptions& o) {
  if (o.requires_grad) t.requires_grad_(true);
  return t;
}
/// A random op's attrs: the draw is made on the device asked for (by its kernel there).
Attrs random_attrs(IntList shape, const TensorOptions& o, Attrs extra) {
  extra.set("shape", shape.vec());
  extra.set("dtype", o.dtype);
  if (!o.device.is_cpu()) detail::set_device_attrs(extra, "device_type", "device_index", o.device);
  return extra;
}
}  // namespace

Tensor empty(IntList shape, TensorOptions o) { return finish(Tensor::empty(shape, o.dtype, o.device), o); }

Tensor zeros(IntList shape, TensorOptions o) {
  graph_hook::Suspend eager;  // made now, a constant of any graph being built
  Tensor t = Tensor::empty(shape, o.dtype, o.device);
  t.zero_();
  return finish(t, o);
}

Tensor ones(IntList shape, TensorOptions o) { return full(shape, 1, o); }

Tensor full(IntList shape, const Scalar& value, TensorOptions o) {
  graph_hook::Suspend eager;  // made now, a constant of any graph being built
  Tensor t = Tensor::empty(shape, o.dtype, o.device);
  t.fill_(value);
  return finish(t, o);
}

Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }
namespace {
/// A symbolic tensor with unknown dims (a placeholder's batch) gets a filled tensor as a graph op.
bool needs_graph_fill(const Tensor& t) {
  if (!t.is_symbolic()) return false;
  for (int64_t d : t.shape())
    if (d < 0) return true;
  return false;
}
}  // namespace

Tensor zeros_like(const Tensor& t) { return full_like(t, 0); }
Tensor ones_like(const Tensor& t) { return full_like(t, 1); }
Tensor full_like(const Tensor& t, const Scalar& v) {
  if (needs_graph_fill(t)) return call(define_op("full_like"), {t}, {{"value", v}});
  return full(t.shape(), v, {.dtype = t.dtype(), .device = t.device()});
}

Tensor scalar_tensor(const Scalar& v, TensorOptions o) { return full(IntList{}, v, o); }
Tensor scalar_tensor(const Scalar& v) {
  graph_hook::Suspend eager;  // made now, a constant of any graph being built
  // Like PyTorch's wrapped numbers: full precision (float64 / int64), but they never widen
  // a tensor's dtype (see result_type).
  DType dt = v.is_float() ? DType::f64 : v.default_dtype();
  Tensor t = Tensor::empty(IntList{}, dt);
  visit_dtype(t.dtype(), [&]<class T>() { *static_cast<T*>(t.data_ptr()) = v.to<T>(); });
  t.impl()->wrapped_number = true;
  return t;
}

Tensor arange(const Scalar& end) { return arange(0, end, 1, {.dtype = end.is_float() ? DType::f32 : DType::i64}); }

Tensor arange(const Scalar& start, const Scalar& end, const Scalar& step, TensorOptions o) {
  graph_hook::Suspend eager;  // made now, a constant of any graph being built
  double s = start.to_double(), e = end.to_double(), st = step.to_double();
  GLIA_CHECK(st != 0, ValueError, "arange: step must be nonzero");
  GLIA_CHECK((e - s) * st >= 0, ValueError, "arange: step ", st, " does not lead from ", s, " to ", e);
  auto n = static_cast<int64_t>(std::ceil((e - s) / st));
  Tensor t = Tensor::empty({n}, o.dtype);
  visit_dtype(o.dtype, [&]<class T>() {
    T* p = static_cast<T*>(t.data_ptr());
    bool ints = !start.is_float() && !step.is_float();
    for (int64_t i = 0; i < n; ++i)
      p[i] =
          ints ? static_cast<T>(start.to_int() + i * step.to_int()) : static_cast<T>(s + static_cast<double>(i) * st);
  });
  return finish(t.to(o.device), o);
}

Tensor linspace(double start, double end, int64_t steps, TensorOptions o) {
  graph_hook::Suspend eager;  // made now, a constant of any graph being built
  GLIA_CHECK(steps >= 0, ValueError, "linspace: steps must be non-negative, got ", steps);
  Tensor t = Tensor::empty({steps}, DType::f64);
  double* p = t.data<double>();
  double step = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
  // Like PyTorch: fill from both ends so that the last value is exactly `end`.
  int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    p[i] = i < half ? start + step * static_cast<double>(i) : end - step * static_cast<double>(steps - 1 - i);
  return finish(t.to(o.dtype).to(o.device), o);
}

Tensor eye(int64_t n, int64_t m, TensorOptions o) {
  graph_hook::Suspend eager;  // made now, a constant of any graph being built
  if (m < 0) m = n;
  GLIA_CHECK(n >= 0, ValueError, "eye: n must be non-negative, got ", n);
  Tensor t = zeros({n, m}, {.dtype = o.dtype});
  visit_dtype(o.dtype, [&]<class T>() {
    T* p = static_cast<T*>(t.data_ptr());
    for (int64_t i = 0; i < std::min(n, m); ++i) p[i * m + i] = T(1);
  });
  return finish(t.to(o.device), o);
}

// The random functions are ops (src/glia/ops/random.cpp), so that a traced function draws new
// numbers at every run instead of baking the ones drawn while tracing into the graph.
Tensor rand(IntList shape, TensorOptions o, double low, double high) {
  check_floating(Tensor::empty(IntList{}, o.dtype), "rand", "dtype");
  GLIA_CHECK(low <= high, ValueError, "rand: expected low <= high, got [", low, ", ", high, ")");
  Tensor t = call(define_op("random_uniform"), std::span<const Tensor>(),
                  random_attrs(shape, o, {{"low", low}, {"high", high}}));
  return finish(t, o);
}

Tensor randn(IntList shape, TensorOptions o, double mean, double std) {
  check_floating(Tensor::empty(IntList{}, o.dtype), "randn", "dtype");
  Tensor t = call(define_op("random_normal"), std::span<const Tensor>(),
                  random_attrs(shape, o, {{"mean", mean}, {"std", std}}));
  return finish(t, o);
}

Tensor randint(int64_t low, int64_t high, IntList shape, TensorOptions o) {
  GLIA_CHECK(high > low, ValueError, "randint: expected low < high, got [", low, ", ", high, ")");
  Tensor t =
      call(define_op("random_int"), std::span<const Tensor>(), random_attrs(shape, o, {{"low", low}, {"high", high}}));
  return finish(t, o);
}

template <class T>
Tensor tensor(const std::vector<T>& values, const Shape& shape, TensorOptions o) {
  graph_hook::Suspend eager;  // made now, a constant of any graph being built
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  GLIA_CHECK(numel(s) == static_cast<int64_t>(values.size()), ShapeError, "tensor: ", values.size(),
             " values do not fill shape ", to_string(s));
  Tensor t = Tensor::empty(s, dtype_v<T>);
  T* p = static_cast<T*>(t.data_ptr());
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return finish(t.to(o.dtype).to(o.device), o);
}
template Tensor tensor<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor tensor<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor tensor<BFloat16>(const std::vector<BFloat16>&, const Shape&, TensorOptions);
template Tensor tensor<Float16>(const std::vector<Float16>&, const Shape&, TensorOptions);
template Tensor tensor<int32_t>(const std::vector<int32_t>&, const Shape&, TensorOptions);
template Tensor tensor<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor tensor<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);
template Tensor tensor<bool>(const std::vector<bool>&, const Shape&, TensorOptions);

Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, TensorOptions o) {
  std::vector<double> v;
  int64_t cols = rows.size() ? static_cast<int64_t>(rows.begin()->size()) : 0;
  for (auto& r : rows) {
    GLIA_CHECK(static_cast<int64_t>(r.size()) == cols, ShapeError, "tensor: rows have different lengths (", cols,
               " and ", r.size(), ")");
    v.insert(v.end(), r.begin(), r.end());
  }
  return tensor(v, {static_cast<int64_t>(rows.size()), cols}, o);
}

Tensor from_blob(void* data, IntList shape, DType dtype, std::function<void(void*)> deleter, IntList strides) {
  Shape st = strides.empty() ? contiguous_strides(shape) : Shape(strides.begin(), strides.end());
  GLIA_CHECK(st.size() == shape.size(), ShapeError, "from_blob: ", st.size(), " strides for shape ", to_string(shape));
  int64_t span = 1;
  for (size_t i = 0; i < shape.size(); ++i) span += (shape[i] - 1) * st[i];
  auto storage =
      std::make_shared<Storage>(data, static_cast<size_t>(span) * itemsize(dtype), Device::cpu(), std::move(deleter));
  return Tensor::make_view(std::move(storage), shape, st, 0, dtype);
}

}  // namespace glia
