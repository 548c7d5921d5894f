// Tensor: a cheap, shared handle to an n-dimensional view of a Storage,
// with the autograd state (grad, grad_fn, requires_grad) of that view.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "glia/core/device.h"
#include "glia/core/dtype.h"
#include "glia/core/error.h"
#include "glia/core/scalar.h"
#include "glia/core/shape.h"
#include "glia/core/storage.h"

namespace glia {

class Node;
class Tensor;

/// Autograd state of a tensor; absent on tensors that never took part in autograd.
struct AutogradMeta {
  std::shared_ptr<Tensor> grad;
  std::shared_ptr<Node> grad_fn;         // null for leaves
  std::weak_ptr<Node> grad_accumulator;  // for leaves that require grad
  uint32_t output_nr = 0;                // which output of grad_fn this is
  bool requires_grad = false;
  bool retains_grad = false;  // a non-leaf whose grad is kept (retain_grad)
};

/// The link from a symbolic tensor (a value of a graph being built, without data) to its graph.
/// Opaque at this layer; the graph layer owns what it points to.
struct SymbolicRef {
  void* graph = nullptr;
  void* value = nullptr;
  std::weak_ptr<void> alive;  // expires with the graph
  Device device;
};

/// A process-wide counter: every TensorImpl gets the next number when it is made.
uint64_t next_tensor_id();

struct TensorImpl {
  std::shared_ptr<Storage> storage;  // null for symbolic tensors
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  int64_t numel = 0;
  DType dtype = DType::f32;
  bool wrapped_number = false;  // a number the user wrote, which does not widen float dtypes
  std::unique_ptr<AutogradMeta> autograd;
  std::shared_ptr<SymbolicRef> symbolic;  // set for values of a graph being built
  uint64_t id = next_tensor_id();         // creation order (graphs tell state from constants by it)

  void refresh_numel();
};

/// Options for creating tensors: `zeros({2, 3}, {.dtype = float64, .requires_grad = true})`.
struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  /// A new tensor with uninitialized memory.
  static Tensor empty(IntList shape, DType dtype = DType::f32, Device device = Device::cpu());
  /// A view of `storage` with the given shape, strides and offset.
  static Tensor make_view(std::shared_ptr<Storage> storage, IntList shape, IntList strides, int64_t offset,
                          DType dtype);

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // --- metadata
  const Shape& shape() const { return check()->shape; }
  const Shape& sizes() const { return shape(); }
  int64_t dim() const { return static_cast<int64_t>(check()->shape.size()); }
  int64_t ndim() const { return dim(); }
  int64_t size(int64_t d) const;
  const Shape& strides() const { return check()->strides; }
  int64_t stride(int64_t d) const;
  int64_t offset() const { return check()->offset; }
  int64_t numel() const { return check()->numel; }
  DType dtype() const { return check()->dtype; }
  Device device() const {
    const TensorImpl* t = check();
    return t->storage ? t->storage->device() : t->symbolic->device;
  }
  /// A value of a graph being built or traced: it has a shape and a dtype but no data.
  bool is_symbolic() const { return impl_ && impl_->symbolic != nullptr; }
  size_t itemsize() const { return glia::itemsize(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(); }
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }
  const std::shared_ptr<Storage>& storage() const { return check()->storage; }
  /// Address of the first element of this view.
  void* data_ptr() const;
  /// Typed address of the first element; throws DTypeError if T is not the dtype.
  template <class T>
  T* data() const {
    GLIA_CHECK(dtype_v<T> == dtype(), DTypeError, "data<", name(dtype_v<T>), ">: tensor has dtype ", name(dtype()));
    return static_cast<T*>(data_ptr());
  }

  // --- values
  /// The single element of a one-element tensor, converted to T.
  template <class T>
  T item() const {
    return item().to<T>();
  }
  Scalar item() const;
  /// The element at a multi-index (negative indices count from the end).
  template <class T>
  T at(IntList index) const {
    return at(index).to<T>();
  }
  Scalar at(IntList index) const;
  /// All elements, in row-major order, converted to T.
  template <class T>
  std::vector<T> to_vector() const;
  std::string str() const;

  // --- conversion and copies
  Tensor to(DType t) const;
  Tensor to(Device d) const;
  Tensor contiguous() const;
  Tensor clone() const;

  // --- views (share storage)
  Tensor reshape(IntList shape) const;
  Tensor view(IntList shape) const;
  Tensor permute(IntList dims) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor t() const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor operator[](int64_t index) const { return select(0, index); }
  Tensor expand(IntList shape) const;
  Tensor broadcast_to(IntList shape) const { return expand(shape); }
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // --- in-place (bump the version counter; for optimizers and buffers)
  const Tensor& add_(const Tensor& o, const Scalar& alpha = 1) const;
  const Tensor& add_(const Scalar& s) const;
  const Tensor& sub_(const Tensor& o) const;
  const Tensor& sub_(const Scalar& s) const;
  const Tensor& mul_(const Tensor& o) const;
  const Tensor& mul_(const Scalar& s) const;
  const Tensor& div_(const Tensor& o) const;
  const Tensor& div_(const Scalar& s) const;
  const Tensor& clamp_(const Scalar& lo, const Scalar& hi) const;
  const Tensor& copy_(const Tensor& src) const;
  const Tensor& fill_(const Scalar& v) const;
  const Tensor& zero_() const;

  // --- autograd
  bool requires_grad() const;
  Tensor& requires_grad_(bool r = true);
  /// The accumulated gradient (undefined until a backward pass reaches this tensor).
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  /// Keeps the gradient of a non-leaf tensor after backward, like PyTorch's retain_grad().
  void retain_grad() const;
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;
  uint32_t output_nr() const;
  /// The same data, cut from the autograd graph.
  Tensor detach() const;
  /// Runs backward from this tensor. A non-scalar needs `gradient`.
  void backward(const Tensor& gradient = {}, bool retain_graph = false, bool create_graph = false) const;
  uint32_t version() const { return check()->storage ? check()->storage->version() : 0; }

  // --- common math as methods (the free functions are the reference)
  Tensor sum() const;
  Tensor sum(IntList dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(IntList dims, bool keepdim = false) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor abs() const;
  Tensor sqrt() const;
  Tensor relu() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor pow(const Scalar& e) const;
  Tensor matmul(const Tensor& o) const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;

 private:
  TensorImpl* check() const {
    GLIA_CHECK(impl_ != nullptr, ValueError, "use of an undefined tensor");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// --- creation (all random functions draw from the generator seeded by manual_seed)
Tensor empty(IntList shape, TensorOptions o = {});
Tensor zeros(IntList shape, TensorOptions o = {});
Tensor ones(IntList shape, TensorOptions o = {});
Tensor full(IntList shape, const Scalar& value, TensorOptions o = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, const Scalar& value);
/// [start, end) in steps; arange(n) is 0..n-1 as int64.
Tensor arange(const Scalar& end);
Tensor arange(const Scalar& start, const Scalar& end, const Scalar& step = 1, TensorOptions o = {.dtype = DType::i64});
Tensor linspace(double start, double end, int64_t steps, TensorOptions o = {});
Tensor eye(int64_t n, int64_t m = -1, TensorOptions o = {});
/// Uniform in [low, high).
Tensor rand(IntList shape, TensorOptions o = {}, double low = 0.0, double high = 1.0);
/// Normal with the given mean and standard deviation.
Tensor randn(IntList shape, TensorOptions o = {}, double mean = 0.0, double std = 1.0);
/// Integers uniform in [low, high).
Tensor randint(int64_t low, int64_t high, IntList shape, TensorOptions o = {.dtype = DType::i64});
/// A 0-d tensor holding one number.
Tensor scalar_tensor(const Scalar& v, TensorOptions o);
Tensor scalar_tensor(const Scalar& v);

/// Copies values into a new tensor of `shape` (1-D if empty), of dtype_v<T> unless o says otherwise.
template <class T>
Tensor tensor(const std::vector<T>& values, const Shape& shape = {}, TensorOptions o = {.dtype = dtype_v<T>});
/// Numbers written in code get PyTorch's defaults: float32 for reals, int64 for integers.
template <class T>
constexpr DType literal_dtype() {
  return std::is_same_v<T, bool> ? DType::b8 : std::is_integral_v<T> ? DType::i64 : DType::f32;
}
template <class T>
Tensor tensor(std::initializer_list<T> values, const Shape& shape = {},
              TensorOptions o = {.dtype = literal_dtype<T>()}) {
  using V = std::conditional_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int64_t, double>;
  std::vector<V> v(values.begin(), values.end());
  return tensor(v, shape, o);
}
/// Nested lists for 2-D tensors: tensor({{1, 2}, {3, 4}}).
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, TensorOptions o = {});
/// Wraps memory the caller owns without copying. The memory must outlive the tensor
/// unless `deleter` takes care of it.
Tensor from_blob(void* data, IntList shape, DType dtype, std::function<void(void*)> deleter = {}, IntList strides = {});

}  // namespace glia
