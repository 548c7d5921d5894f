// CUDA kernels (host side) of the indexing, shape, image, random, dropout and optimizer-update ops.
// Each matches its CPU kernel's semantics, except that indices are never read on the host (that
// would sync with the GPU and break CUDA Graph capture): gather / index_select / one_hot read an
// out-of-range index as "no element" (0 / an all-zero row) and scatter_add / index_add skip it,
// where the CPU throws.
#include <cmath>
#include <string>
#include <vector>

#include "glia/autograd/autograd.h"
#include "glia/backends/cuda/launch_index.h"
#include "glia/backends/cuda/runtime.h"
#include "glia/backends/raw_views.h"
#include "glia/backends/update_operands.h"
#include "glia/core/random.h"
#include "glia/ops/op.h"

namespace glia::cuda {
namespace {

using launch::Walk;

cudaStream_t stream_of(const Tensor& t) { return stream(t.device().index); }

void check_rank(size_t nd, const char* op) {
  GLIA_CHECK(nd <= static_cast<size_t>(launch::kMaxDims), ShapeError, op, ": tensors of rank ", nd,
             " are not supported on CUDA (at most ", launch::kMaxDims, ")");
}

/// The gather / scatter walk over shape S along dim (0-d tensors walk one element).
Walk make_walk(const Shape& S, int64_t dim, const Shape& a_strides, const Shape& b_strides, const Shape& i_strides,
               int64_t dim_size, const char* op) {
  check_rank(S.size(), op);
  Walk w;
  w.dim = static_cast<int>(dim);
  w.dim_size = dim_size;
  w.numel = 1;
  if (S.empty()) {
    w.ndim = 1;
    w.size[0] = 1;
    return w;
  }
  w.ndim = static_cast<int>(S.size());
  for (size_t d = 0; d < S.size(); ++d) {
    w.size[d] = S[d];
    w.numel *= S[d];
    w.a_stride[d] = a_strides[d];
    w.b_stride[d] = b_strides[d];
    w.i_stride[d] = i_strides[d];
  }
  return w;
}

int64_t size_at(const Tensor& t, int64_t dim) { return t.dim() == 0 ? 1 : t.shape()[static_cast<size_t>(dim)]; }
Shape strides_or_scalar(const Tensor& t) { return t.dim() == 0 ? Shape{0} : t.strides(); }

/// Strides of a 1-D index read by the coordinate along dim only.
Shape along_dim(size_t ndim, int64_t dim, const Tensor& idx) {
  Shape s(ndim, 0);
  s[static_cast<size_t>(dim)] = idx.strides()[0];
  return s;
}

void scatter(const KernelContext& k, const Walk& w, const Tensor& src, const Tensor& out, const Tensor& idx) {
  DeviceGuard g(out.device().index);
  bool ok =
      launch::scatter_add(w, src.data_ptr(), out.data_ptr(), idx.data<int64_t>(), dt(out.dtype()), stream_of(out));
  // As the CPU kernel: bool has no sum.
  GLIA_CHECK(ok, DTypeError, k.name(), ": not supported for bool tensors");
  check(cudaGetLastError(), k.name());
}

using detail::raw_slice;
using detail::raw_view;

int pad_mode(const std::string& m) {
  return m == "constant" ? launch::PadConstant : m == "replicate" ? launch::PadReplicate : launch::PadReflect;
}

/// pads[2k] is the padding before dim (nd - 1 - k); dims beyond the list are not padded.
int64_t pad_before(const std::vector<int64_t>& pads, size_t nd, size_t d) {
  size_t k = nd - 1 - d;
  return 2 * k < pads.size() ? pads[2 * k] : 0;
}
int64_t pad_after(const std::vector<int64_t>& pads, size_t nd, size_t d) {
  size_t k = nd - 1 - d;
  return 2 * k + 1 < pads.size() ? pads[2 * k + 1] : 0;
}

template <bool kLower>
void triangle(KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  no_grad guard;
  Tensor x = input_as(k, 0, out.dtype()).contiguous();
  int64_t diag = k.attr<int64_t>("diagonal");
  int64_t R = x.shape()[static_cast<size_t>(x.dim() - 2)], C = x.shape()[static_cast<size_t>(x.dim() - 1)];
  DeviceGuard g(out.device().index);
  launch::triangle(x.data_ptr(), out.data_ptr(), x.numel() / (R * C), R, C, diag, kLower, dt(out.dtype()),
                   stream_of(out));
  check(cudaGetLastError(), k.name());
}

launch::Rng rng_for(const Tensor& out, uint64_t n_blocks) {
  auto draw = random::reserve(n_blocks);
  return {draw.seed, draw.offset, rng_slot(out.device().index)};
}

void random_dtype_error(KernelContext& k, DType d) {
  throw DTypeError(detail::str(k.name(), ": no CUDA kernel for dtype ", name(d)));
}

// --- optimizer updates, arranged as the CPU's optim.cpp `run`

launch::OptimArgs common(KernelContext& k) {
  launch::OptimArgs a;
  if (!k.attrs().has("step_state")) {
    a.lr = k.attr<double>("lr");
    a.step = k.attr<int64_t>("step");
  }
  a.grad_scale = k.attr<double>("grad_scale");
  a.clipvalue = k.attr<double>("clipvalue");
  a.weight_decay = k.attr<double>("weight_decay");
  return a;
}

/// Launches the update. The step state [lr, iterations] and the guard stay on the device and are
/// read by the kernel, so a captured step reads each replay's values. Strided parameters or slots
/// go through contiguous copies that are written back.
void run_update(KernelContext& k, launch::OptimArgs a, launch::OptRule rule) {
  std::vector<int> place = detail::update_slot_places(k);  // checks the slot count first
  const Tensor& w = k.input(0);
  if (w.numel() == 0) return;
  GLIA_CHECK(w.dtype() == DType::f32 || w.dtype() == DType::f64, DTypeError, k.name(),
             ": the CUDA kernel takes float32 or float64 parameters, got ", name(w.dtype()));
  no_grad guard;
  // Update ops have no outputs (they write inputs): inputs move to the parameter's device.
  Tensor g = on_device(k.input(1), w.device(), w.dtype()).contiguous();
  detail::UpdateBuffers b(k);
  size_t last = k.num_inputs();
  Tensor guard_t, state_t;
  if (k.attrs().has("guard")) {
    guard_t = on_device(k.input(--last), w.device(), DType::b8).contiguous();
    a.guard = guard_t.data<bool>();
  }
  if (k.attrs().has("step_state")) {
    state_t = on_device(k.input(--last), w.device(), DType::f64).contiguous();
    GLIA_CHECK(state_t.numel() == 2, InternalError, k.name(), ": bad step-state input");
    a.state = state_t.data<double>();
  }
  a.w = b.bufs[0].data_ptr();
  a.g = g.data_ptr();
  a.n = w.numel();
  for (size_t i = 0; i < place.size(); ++i) a.s[place[i]] = b.bufs[i + 1].data_ptr();
  {
    DeviceGuard dg(w.device().index);
    launch::optim_update(rule, a, dt(w.dtype()), stream_of(w));
    check(cudaGetLastError(), k.name());
  }
  b.write_back([](const Tensor& from, const Tensor& to) { copy_into(from, to); });
}

}  // namespace

// --- indexing

GLIA_KERNEL(gather, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  const Tensor& x = k.input(0);
  int64_t dim = k.attr<int64_t>("dim");
  Tensor idx = input_as(k, 1, DType::i64);
  Walk w = make_walk(out.shape(), dim, contiguous_strides(out.shape()), strides_or_scalar(x), strides_or_scalar(idx),
                     size_at(x, dim), "gather");
  DeviceGuard g(out.device().index);
  launch::gather(w, out.data_ptr(), x.data_ptr(), idx.data<int64_t>(), dt(out.dtype()), stream_of(out));
  check(cudaGetLastError(), "gather");
});

GLIA_KERNEL(scatter_add, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  int64_t dim = k.attr<int64_t>("dim");
  copy_into(input_as(k, 0, k.input(0).dtype()), out);
  Tensor idx = input_as(k, 1, DType::i64);
  if (idx.numel() == 0) return;
  Tensor src = input_as(k, 2, out.dtype());
  Walk w = make_walk(idx.shape(), dim, strides_or_scalar(src), contiguous_strides(out.shape()), strides_or_scalar(idx),
                     size_at(out, dim), "scatter_add");
  if (out.dim() == 0) w.b_stride[0] = 0;
  scatter(k, w, src, out, idx);
});

GLIA_KERNEL(index_select, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  const Tensor& x = k.input(0);
  int64_t dim = k.attr<int64_t>("dim");
  Tensor idx = input_as(k, 1, DType::i64);
  Walk w = make_walk(out.shape(), dim, contiguous_strides(out.shape()), x.strides(), along_dim(out.dim(), dim, idx),
                     x.shape()[static_cast<size_t>(dim)], "index_select");
  DeviceGuard g(out.device().index);
  launch::gather(w, out.data_ptr(), x.data_ptr(), idx.data<int64_t>(), dt(out.dtype()), stream_of(out));
  check(cudaGetLastError(), "index_select");
});

GLIA_KERNEL(index_add, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  int64_t dim = k.attr<int64_t>("dim");
  copy_into(input_as(k, 0, k.input(0).dtype()), out);
  Tensor src = input_as(k, 2, out.dtype());
  if (src.numel() == 0) return;
  Tensor idx = input_as(k, 1, DType::i64);
  Walk w = make_walk(src.shape(), dim, src.strides(), contiguous_strides(out.shape()), along_dim(src.dim(), dim, idx),
                     out.shape()[static_cast<size_t>(dim)], "index_add");
  scatter(k, w, src, out, idx);
});

GLIA_KERNEL(one_hot, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  no_grad guard;
  Tensor idx = input_as(k, 0, DType::i64).contiguous();
  DeviceGuard g(out.device().index);
  launch::one_hot(idx.data<int64_t>(), out.data_ptr(), idx.numel(), k.attr<int64_t>("num_classes"), dt(out.dtype()),
                  stream_of(out));
  check(cudaGetLastError(), "one_hot");
});

// --- shape ops

GLIA_KERNEL(slice_scatter, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  copy_into(input_as(k, 0, k.input(0).dtype()), out);
  Tensor v =
      raw_slice(out, k.attr<int64_t>("dim"), k.attr<int64_t>("start"), k.attr<int64_t>("end"), k.attr<int64_t>("step"));
  if (v.numel() > 0) copy_into(input_as(k, 1, k.input(1).dtype()), v);
});

GLIA_KERNEL(concat, CUDA, [](KernelContext& k) {
  detail::concat_into(k, [&](size_t i, const Tensor& v) { copy_into(input_as(k, i, k.input(i).dtype()), v); });
});

GLIA_KERNEL(pad, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  Tensor x = input_as(k, 0, out.dtype());
  const auto& pads = k.attr<std::vector<int64_t>>("pads");
  size_t nd = static_cast<size_t>(x.dim());
  check_rank(nd, "pad");
  launch::PadArgs a;
  a.ndim = static_cast<int>(nd);
  a.mode = pad_mode(k.attr<std::string>("mode"));
  a.numel = out.numel();
  for (size_t d = 0; d < nd; ++d) {
    a.out_size[d] = out.shape()[d];
    a.in_size[d] = x.shape()[d];
    a.in_stride[d] = x.strides()[d];
    a.before[d] = pad_before(pads, nd, d);
  }
  DeviceGuard g(out.device().index);
  launch::pad(a, out.data_ptr(), x.data_ptr(), k.attr<double>("value"), dt(out.dtype()), stream_of(out));
  check(cudaGetLastError(), "pad");
});

// One pass per padded dim, each summing along that dim only: padding is separable, so the passes
// compose into the adjoint of the whole pad.
GLIA_KERNEL(pad_backward, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  no_grad guard;
  Tensor cur = input_as(k, 0, out.dtype()).contiguous();
  const auto& pads = k.attr<std::vector<int64_t>>("pads");
  int mode = pad_mode(k.attr<std::string>("mode"));
  size_t nd = static_cast<size_t>(out.dim());
  std::vector<size_t> dims;
  for (size_t d = 0; d < nd; ++d)
    if (pad_before(pads, nd, d) != 0 || pad_after(pads, nd, d) != 0) dims.push_back(d);
  if (dims.empty()) {
    copy_into(cur, out);
    return;
  }
  DeviceGuard g(out.device().index);
  for (size_t q = 0; q < dims.size(); ++q) {
    size_t d = dims[q];
    Shape next = cur.shape();
    next[d] = out.shape()[d];
    Tensor dst = q + 1 == dims.size() ? out : Tensor::empty(next, out.dtype(), out.device());
    int64_t outer = 1, inner = 1;
    for (size_t e = 0; e < nd; ++e) {
      if (e < d) outer *= next[e];
      if (e > d) inner *= next[e];
    }
    launch::pad_backward_dim(cur.data_ptr(), dst.data_ptr(), outer, cur.shape()[d], next[d], inner,
                             pad_before(pads, nd, d), mode, dt(out.dtype()), stream_of(out));
    check(cudaGetLastError(), "pad_backward");
    cur = dst;
  }
});

GLIA_KERNEL(tril, CUDA, [](KernelContext& k) { triangle<true>(k); });
GLIA_KERNEL(triu, CUDA, [](KernelContext& k) { triangle<false>(k); });

GLIA_KERNEL(flip, CUDA, [](KernelContext& k) {
  const Tensor& x = k.input(0);
  if (x.numel() == 0) return;
  Shape st = x.strides();
  int64_t off = x.offset();
  for (int64_t d : k.attr<std::vector<int64_t>>("dims")) {
    auto i = static_cast<size_t>(d);
    off += (x.shape()[i] - 1) * st[i];
    st[i] = -st[i];
  }
  copy_into(raw_view(x, x.shape(), st, off), k.output());
});

GLIA_KERNEL(translate_images, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  no_grad guard;
  Tensor x = input_as(k, 0, out.dtype()).contiguous();
  Tensor dy = input_as(k, 1, DType::f32).contiguous(), dx = input_as(k, 2, DType::f32).contiguous();
  const std::string& fm = k.attr<std::string>("fill_mode");
  int mode = fm == "reflect" ? 0 : fm == "wrap" ? 1 : fm == "nearest" ? 2 : 3;
  bool bilinear = k.attr<std::string>("interpolation") == "bilinear";
  DeviceGuard g(out.device().index);
  bool ok = launch::translate_images(x.data_ptr(), out.data_ptr(), dy.data<float>(), dx.data<float>(), x.shape()[0],
                                     x.shape()[1], x.shape()[2], x.shape()[3], mode, bilinear,
                                     k.attr<double>("fill_value"), dt(out.dtype()), stream_of(out));
  GLIA_CHECK(ok, DTypeError, "translate_images: no CUDA kernel for dtype ", name(out.dtype()));
  check(cudaGetLastError(), "translate_images");
});

// --- random: the CPU's counter reservations, so CPU and GPU draws interleave as one stream

GLIA_KERNEL(random_uniform, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  int64_t n = out.numel();
  launch::Rng r = rng_for(out, static_cast<uint64_t>((n + 1) / 2));
  if (!is_floating(out.dtype())) random_dtype_error(k, out.dtype());
  if (n == 0) return;
  DeviceGuard g(out.device().index);
  launch::random_uniform(out.data_ptr(), n, k.attr<double>("low"), k.attr<double>("high"), r, dt(out.dtype()),
                         stream_of(out));
  check(cudaGetLastError(), "random_uniform");
});

GLIA_KERNEL(random_normal, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  int64_t n = out.numel();
  launch::Rng r = rng_for(out, static_cast<uint64_t>(n));
  if (!is_floating(out.dtype())) random_dtype_error(k, out.dtype());
  if (n == 0) return;
  DeviceGuard g(out.device().index);
  launch::random_normal(out.data_ptr(), n, k.attr<double>("mean"), k.attr<double>("std"), r, dt(out.dtype()),
                        stream_of(out));
  check(cudaGetLastError(), "random_normal");
});

GLIA_KERNEL(random_int, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  int64_t n = out.numel();
  int64_t low = k.attr<int64_t>("low"), high = k.attr<int64_t>("high");
  launch::Rng r = rng_for(out, static_cast<uint64_t>((n + 1) / 2));
  if (n == 0) return;
  DeviceGuard g(out.device().index);
  // Every dtype, as the CPU: bool gets low + v % range != 0, 16-bit floats the value rounded.
  launch::random_int(out.data_ptr(), n, low, static_cast<uint64_t>(high - low), r, dt(out.dtype()), stream_of(out));
  check(cudaGetLastError(), "random_int");
});

GLIA_KERNEL(dropout, CUDA, [](KernelContext& k) {
  const Tensor& y = k.output(0);
  const Tensor& mask = k.output(1);
  int64_t n = y.numel();
  double p = k.attr<double>("p");
  double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  launch::Rng r = rng_for(y, static_cast<uint64_t>((n + 3) / 4));
  if (!is_floating(y.dtype())) random_dtype_error(k, y.dtype());
  if (n == 0) return;
  no_grad guard;
  Tensor x = input_as(k, 0, y.dtype()).contiguous();
  const auto threshold = static_cast<uint32_t>(std::ceil(p * 16777216.0));
  DeviceGuard g(y.device().index);
  launch::dropout(x.data_ptr(), y.data_ptr(), mask.data<bool>(), n, scale, threshold, r, dt(y.dtype()), stream_of(y));
  check(cudaGetLastError(), "dropout");
});

// --- optimizer updates

GLIA_KERNEL(optim_sgd_update, CUDA, [](KernelContext& k) {
  launch::OptimArgs a = common(k);
  a.momentum = k.attr<double>("momentum");
  a.nesterov = k.attr<bool>("nesterov");
  run_update(k, a, launch::OptRule::Sgd);
});

GLIA_KERNEL(optim_adam_update, CUDA, [](KernelContext& k) {
  launch::OptimArgs a = common(k);
  a.beta_1 = k.attr<double>("beta_1");
  a.beta_2 = k.attr<double>("beta_2");
  a.epsilon = k.attr<double>("epsilon");
  run_update(k, a, launch::OptRule::Adam);
});

GLIA_KERNEL(optim_rmsprop_update, CUDA, [](KernelContext& k) {
  launch::OptimArgs a = common(k);
  a.rho = k.attr<double>("rho");
  a.momentum = k.attr<double>("momentum");
  a.epsilon = k.attr<double>("epsilon");
  run_update(k, a, launch::OptRule::Rmsprop);
});

GLIA_KERNEL(optim_adagrad_update, CUDA, [](KernelContext& k) {
  launch::OptimArgs a = common(k);
  a.epsilon = k.attr<double>("epsilon");
  run_update(k, a, launch::OptRule::Adagrad);
});

}  // namespace glia::cuda
