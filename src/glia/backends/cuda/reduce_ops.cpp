// CUDA kernels of the reductions (sum, prod, amax, amin, max / min with indices, argmax, argmin,
// var), softmax / log-softmax and layer norm. Device code in reduce.cu.
#include <algorithm>
#include <vector>

#include "glia/autograd/autograd.h"
#include "glia/backends/cuda/launch_reduce.h"
#include "glia/backends/cuda/runtime.h"
#include "glia/core/scratch.h"
#include "glia/ops/norm.h"
#include "glia/ops/op.h"

namespace glia::cuda {
namespace {

using launch::RedOp;

/// The input as contiguous [outer, R, inner], reducing the middle, as the CPU kernels plan it.
struct Plan {
  Tensor x;
  int64_t outer = 1, R = 1, inner = 1;
  bool few_long_columns = false;  // kept as columns: the caller may split them (reduce_kernel)
};

/// Consecutive reduced dims keep the layout; others move the reduced dims last (inner == 1).
/// `rows` forces inner == 1. A few long columns are also moved to rows: the column kernel would
/// leave most of the GPU idle there (the choice depends on shapes only).
Plan plan(const Tensor& in, const std::vector<int64_t>& dims, bool rows, bool keep_few_long_columns = false) {
  Plan p;
  const Shape& s = in.shape();
  int64_t nd = in.dim();
  if (dims.empty()) {  // a 0-d input: one element per output
    p.x = in.contiguous();
    p.outer = in.numel();
    return p;
  }
  bool consecutive = true;
  for (size_t i = 1; i < dims.size(); ++i) consecutive = consecutive && dims[i] == dims[i - 1] + 1;
  if (consecutive) {
    for (int64_t d = 0; d < nd; ++d) {
      int64_t n = s[static_cast<size_t>(d)];
      if (d < dims.front())
        p.outer *= n;
      else if (d <= dims.back())
        p.R *= n;
      else
        p.inner *= n;
    }
    bool few_long_columns = p.outer * ((p.inner + 31) / 32) < 128 && p.R >= 4096;
    if (p.inner == 1 || (!rows && (!few_long_columns || keep_few_long_columns))) {
      p.x = in.contiguous();
      p.few_long_columns = !rows && p.inner > 1 && few_long_columns;
      return p;
    }
  }
  std::vector<int64_t> order;
  p.outer = p.R = 1;
  p.inner = 1;
  for (int64_t d = 0; d < nd; ++d)
    if (!std::binary_search(dims.begin(), dims.end(), d)) {
      order.push_back(d);
      p.outer *= s[static_cast<size_t>(d)];
    }
  for (int64_t d : dims) {
    order.push_back(d);
    p.R *= s[static_cast<size_t>(d)];
  }
  p.x = in.permute(order).contiguous();
  return p;
}

const std::vector<int64_t>& dims_of(const KernelContext& k) { return k.attr<std::vector<int64_t>>("dims"); }

void launch_reduce(KernelContext& k, RedOp op, const Plan& p, const Tensor* vals, const Tensor* idx) {
  const Tensor& x = p.x;
  const Tensor& any_out = vals ? *vals : *idx;
  DeviceGuard g(any_out.device().index);
  bool ok = launch::reduce(
      op, x.data_ptr(), dt(x.dtype()), vals ? vals->data_ptr() : nullptr, vals ? dt(vals->dtype()) : dt(x.dtype()),
      idx ? static_cast<int64_t*>(idx->data_ptr()) : nullptr, p.outer, p.R, p.inner, stream(any_out.device().index));
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(x.dtype()),
             vals ? detail::str(" into ", name(vals->dtype())) : std::string());
  check(cudaGetLastError(), k.name());
}

/// The number of slices to cut R into for a few long columns or rows: a divisor of R near `want`,
/// with at least `min_len` elements a slice; 1 when R has none in [8, want].
int64_t slices(int64_t R, int64_t want, int64_t min_len) {
  for (int64_t s = std::min(want, R / min_len); s >= 8; --s)
    if (R % s == 0) return s;
  return 1;
}

/// Reduces p's R in S slices apart ([outer * S, R / S, inner], the same memory) into a temporary,
/// then each group's S partial results, in a fixed order: two passes that keep the GPU busy where
/// one would run a handful of blocks.
void reduce_in_slices(KernelContext& k, RedOp op, const Plan& p, int64_t S, const Tensor& out) {
  Tensor part = detail::scratch_empty({p.outer * S * p.inner}, out.dtype(), out.device());
  launch_reduce(k, op, Plan{p.x, p.outer * S, p.R / S, p.inner}, &part, nullptr);
  launch_reduce(k, op, Plan{part, p.outer, S, p.inner}, &out, nullptr);
}

/// sum, prod, amax, amin over the attr "dims".
void reduce_kernel(KernelContext& k, RedOp op) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  no_grad guard;  // the planned copy is a temporary
  Tensor in = input_as(k, 0, k.input(0).dtype());
  // 16-bit outputs would round the partial results of a split: those are transposed instead.
  bool narrow = is_16bit(out.dtype());
  Plan p = plan(in, dims_of(k), false, !narrow);
  if (p.R == 0) {  // empty groups: the sum is 0, the product 1; amax / amin refuse them before
    if (op == RedOp::Prod) fill(out, 1);
    if (op == RedOp::Sum) fill(out, 0);
    return;
  }
  if (p.few_long_columns) {
    // A few long columns (the bias gradient of an NHWC convolution sums [N*H*W, C] over its rows):
    // the column kernel alone would run a handful of blocks. Instead, slices of the rows, with S *
    // inner values of temporary memory instead of a transposed copy of the input.
    int64_t tiles = p.outer * ((p.inner + 31) / 32);
    int64_t S = slices(p.R, std::max<int64_t>(8, 512 / tiles), 256);
    if (S > 1) return reduce_in_slices(k, op, p, S, out);
    p = plan(in, dims_of(k), false);  // no divisor to cut R with: rows of a transposed copy
  }
  // (Not float32 products: they accumulate in double, and the partial results would be rounded.)
  bool f32_prod = op == RedOp::Prod && out.dtype() == DType::f32;
  if (p.inner == 1 && !narrow && !f32_prod && p.outer < 64 && p.R >= (int64_t(1) << 16)) {
    // A few long rows (a sum over a whole tensor): one block per row would leave most of the GPU
    // idle, each thread adding R / 256 elements in turn.
    int64_t S = slices(p.R, std::max<int64_t>(8, 1024 / p.outer), 4096);
    if (S > 1) return reduce_in_slices(k, op, p, S, out);
  }
  launch_reduce(k, op, p, &out, nullptr);
}

/// max_dim / min_dim (values, indices) and argmax / argmin (indices) along the attr "dim".
void arg_kernel(KernelContext& k, RedOp op, bool with_values) {
  const Tensor& idx = k.output(with_values ? 1 : 0);
  if (idx.numel() == 0) return;
  no_grad guard;
  Tensor in = input_as(k, 0, k.input(0).dtype());
  Plan p = plan(in, {k.attr<int64_t>("dim")}, false);
  if (p.R == 0) return;  // refused by the op before
  launch_reduce(k, op, p, with_values ? &k.output(0) : nullptr, &idx);
}

void var_kernel(KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  no_grad guard;
  Tensor in = input_as(k, 0, k.input(0).dtype());
  Plan p = plan(in, dims_of(k), true);
  DeviceGuard g(out.device().index);
  bool ok = launch::var_rows(p.x.data_ptr(), out.data_ptr(), dt(out.dtype()), p.outer, p.R,
                             k.attr<int64_t>("correction"), stream(out.device().index));
  GLIA_CHECK(ok, DTypeError, "var: no CUDA kernel for dtype ", name(out.dtype()));
  check(cudaGetLastError(), "var");
}

void softmax_kernel(KernelContext& k, bool log) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  no_grad guard;
  Tensor x = input_as(k, 0, out.dtype()).contiguous();
  int64_t axis = k.attr<int64_t>("axis"), outer = 1, R = 1, inner = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    int64_t n = x.shape()[static_cast<size_t>(d)];
    (d < axis ? outer : d == axis ? R : inner) *= n;
  }
  DeviceGuard g(out.device().index);
  bool ok =
      launch::softmax(x.data_ptr(), out.data_ptr(), dt(out.dtype()), outer, R, inner, log, stream(out.device().index));
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(out.dtype()));
  check(cudaGetLastError(), k.name());
}

void check_float(const char* op, DType d) {
  GLIA_CHECK(is_floating(d), DTypeError, op, ": no CUDA kernel for dtype ", name(d));
}

void ln_forward(KernelContext& k) {
  const Tensor &y = k.output(0), &mean_out = k.output(1), &rstd_out = k.output(2);
  check_float("layer_norm", y.dtype());
  no_grad guard;
  Tensor x = input_as(k, 0, y.dtype()).contiguous();
  int64_t R = x.shape()[0], H = x.shape()[1];
  if (R == 0) return;
  DType a = detail::norm_stat_dtype(x.dtype());
  Tensor gamma = input_as(k, 1, a).contiguous(), beta = input_as(k, 2, a).contiguous();
  Tensor mean = as_target(mean_out, a), rstd = as_target(rstd_out, a);
  int dev = y.device().index;
  {
    DeviceGuard g(dev);
    bool ok = launch::layer_norm_fwd(x.data_ptr(), gamma.data_ptr(), beta.data_ptr(), y.data_ptr(), mean.data_ptr(),
                                     rstd.data_ptr(), dt(x.dtype()), R, H, k.attr<double>("eps"), stream(dev));
    GLIA_CHECK(ok, DTypeError, "layer_norm: no CUDA kernel for dtype ", name(x.dtype()));
    check(cudaGetLastError(), "layer_norm");
  }
  finish_target(mean, mean_out);
  finish_target(rstd, rstd_out);
}

void ln_backward(KernelContext& k) {
  const Tensor &dx = k.output(0), &dgamma_out = k.output(1), &dbeta_out = k.output(2);
  check_float("layer_norm_backward", dx.dtype());
  no_grad guard;
  Tensor x = input_as(k, 1, dx.dtype()).contiguous();
  Tensor gr = input_as(k, 0, dx.dtype()).contiguous();
  int64_t R = x.shape()[0], H = x.shape()[1];
  if (H == 0) return;
  if (R == 0) {
    fill(dgamma_out, 0);
    fill(dbeta_out, 0);
    return;
  }
  DType a = detail::norm_stat_dtype(x.dtype());
  Tensor mean = input_as(k, 2, a).contiguous(), rstd = input_as(k, 3, a).contiguous();
  Tensor gamma = input_as(k, 4, a).contiguous();
  Tensor dgamma = as_target(dgamma_out, a), dbeta = as_target(dbeta_out, a);
  int dev = dx.device().index;
  Tensor partial = detail::scratch_empty({2 * launch::layer_norm_bwd_chunks(R) * H}, DType::f64, dx.device());
  {
    DeviceGuard g(dev);
    bool ok = launch::layer_norm_bwd(gr.data_ptr(), x.data_ptr(), mean.data_ptr(), rstd.data_ptr(), gamma.data_ptr(),
                                     dx.data_ptr(), static_cast<double*>(partial.data_ptr()), dgamma.data_ptr(),
                                     dbeta.data_ptr(), dt(x.dtype()), R, H, stream(dev));
    GLIA_CHECK(ok, DTypeError, "layer_norm_backward: no CUDA kernel for dtype ", name(x.dtype()));
    check(cudaGetLastError(), "layer_norm_backward");
  }
  finish_target(dgamma, dgamma_out);
  finish_target(dbeta, dbeta_out);
}

}  // namespace

GLIA_KERNEL(sum, CUDA, [](KernelContext& k) { reduce_kernel(k, RedOp::Sum); });
GLIA_KERNEL(prod, CUDA, [](KernelContext& k) { reduce_kernel(k, RedOp::Prod); });
GLIA_KERNEL(amax, CUDA, [](KernelContext& k) { reduce_kernel(k, RedOp::Max); });
GLIA_KERNEL(amin, CUDA, [](KernelContext& k) { reduce_kernel(k, RedOp::Min); });
GLIA_KERNEL(max_dim, CUDA, [](KernelContext& k) { arg_kernel(k, RedOp::ArgMax, true); });
GLIA_KERNEL(min_dim, CUDA, [](KernelContext& k) { arg_kernel(k, RedOp::ArgMin, true); });
GLIA_KERNEL(argmax, CUDA, [](KernelContext& k) { arg_kernel(k, RedOp::ArgMax, false); });
GLIA_KERNEL(argmin, CUDA, [](KernelContext& k) { arg_kernel(k, RedOp::ArgMin, false); });
GLIA_KERNEL(var, CUDA, var_kernel);
GLIA_KERNEL(softmax, CUDA, [](KernelContext& k) { softmax_kernel(k, false); });
GLIA_KERNEL(log_softmax, CUDA, [](KernelContext& k) { softmax_kernel(k, true); });
GLIA_KERNEL(layer_norm_fwd, CUDA, ln_forward);
GLIA_KERNEL(layer_norm_backward, CUDA, ln_backward);

}  // namespace glia::cuda
