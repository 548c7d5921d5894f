// CPU kernels of the copying movement ops.
#include <cstring>

#include "glia/autograd/autograd.h"
#include "glia/backends/cpu/kernel_utils.h"
#include "glia/backends/raw_views.h"

namespace glia::cpu {
namespace {

using detail::raw_slice;
using detail::raw_view;

/// Source index along one dim for output index o of a padded dim (-1: the constant).
int64_t pad_source(int64_t o, int64_t before, int64_t n, const std::string& mode) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  if (mode == "constant") return -1;
  if (mode == "replicate") return i < 0 ? 0 : n - 1;
  // reflect (without repeating the edge)
  if (n == 1) return 0;
  int64_t period = 2 * (n - 1);
  int64_t m = ((i % period) + period) % period;
  return m < n ? m : period - m;
}

/// Calls f(out_flat, in_flat or -1) for every element of the padded output (row-major).
template <class F>
void for_each_pad(const Shape& in_shape, const Shape& out_shape, const std::vector<int64_t>& pads,
                  const std::string& mode, F f) {
  size_t nd = in_shape.size();
  std::vector<std::vector<int64_t>> src(nd);
  for (size_t d = 0; d < nd; ++d) {
    size_t k = nd - 1 - d;  // pads start from the last dim
    int64_t before = 2 * k < pads.size() ? pads[2 * k] : 0;
    src[d].resize(static_cast<size_t>(out_shape[d]));
    for (int64_t o = 0; o < out_shape[d]; ++o)
      src[d][static_cast<size_t>(o)] = pad_source(o, before, in_shape[d], mode);
  }
  Shape in_st = contiguous_strides(in_shape);
  int64_t total = numel(out_shape);
  std::vector<int64_t> idx(nd, 0);
  for (int64_t flat = 0; flat < total; ++flat) {
    int64_t s = 0;
    bool inside = true;
    for (size_t d = 0; d < nd; ++d) {
      int64_t si = src[d][static_cast<size_t>(idx[d])];
      if (si < 0) {
        inside = false;
        break;
      }
      s += si * in_st[d];
    }
    f(flat, inside ? s : -1);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace

GLIA_KERNEL(clone, CPU, [](KernelContext& k) { cast_copy(k.input(0), k.output()); });

GLIA_KERNEL(slice_scatter, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  cast_copy(k.input(0), out);
  Tensor v =
      raw_slice(out, k.attr<int64_t>("dim"), k.attr<int64_t>("start"), k.attr<int64_t>("end"), k.attr<int64_t>("step"));
  cast_copy(k.input(1), v);
});

GLIA_KERNEL(concat, CPU, [](KernelContext& k) {
  detail::concat_into(k, [&](size_t i, const Tensor& v) { cast_copy(k.input(i), v); });
});

GLIA_KERNEL(pad, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  Tensor x = k.input(0).contiguous();
  const auto& pads = k.attr<std::vector<int64_t>>("pads");
  const auto& mode = k.attr<std::string>("mode");
  double value = k.attr<double>("value");
  visit_dtype(out.dtype(), [&]<class T>() {
    const T* in = static_cast<const T*>(x.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    T v = static_cast<T>(value);
    for_each_pad(x.shape(), out.shape(), pads, mode, [&](int64_t flat, int64_t s) { o[flat] = s < 0 ? v : in[s]; });
  });
});

GLIA_KERNEL(pad_backward, CPU, [](KernelContext& k) {
  Tensor out = k.output();
  Tensor g = k.input(0).contiguous();
  const auto& pads = k.attr<std::vector<int64_t>>("pads");
  const auto& mode = k.attr<std::string>("mode");
  out.zero_();
  visit_dtype(out.dtype(), [&]<class T>() {
    const T* gp = static_cast<const T*>(g.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    for_each_pad(out.shape(), g.shape(), pads, mode, [&](int64_t flat, int64_t s) {
      if (s >= 0) o[s] = static_cast<T>(static_cast<acc_t<T>>(o[s]) + static_cast<acc_t<T>>(gp[flat]));
    });
  });
});

namespace {
template <bool kLower>
void triangle(KernelContext& k) {
  const Tensor& out = k.output();
  Tensor x = k.input(0).contiguous();
  int64_t diag = k.attr<int64_t>("diagonal");
  int64_t R = x.shape()[static_cast<size_t>(x.dim() - 2)], C = x.shape()[static_cast<size_t>(x.dim() - 1)];
  int64_t batch = R * C == 0 ? 0 : x.numel() / (R * C);
  visit_dtype(out.dtype(), [&]<class T>() {
    const T* in = static_cast<const T*>(x.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < R; ++i)
        for (int64_t j = 0; j < C; ++j) {
          int64_t f = (b * R + i) * C + j;
          bool keep = kLower ? j - i <= diag : j - i >= diag;
          o[f] = keep ? in[f] : T(0);
        }
  });
}
}  // namespace

GLIA_KERNEL(tril, CPU, [](KernelContext& k) { triangle<true>(k); });
GLIA_KERNEL(triu, CPU, [](KernelContext& k) { triangle<false>(k); });

GLIA_KERNEL(flip, CPU, [](KernelContext& k) {
  const Tensor& x = k.input(0);
  Shape st = x.strides();
  int64_t off = x.offset();
  for (int64_t d : k.attr<std::vector<int64_t>>("dims")) {
    auto i = static_cast<size_t>(d);
    if (x.shape()[i] == 0) continue;
    off += (x.shape()[i] - 1) * st[i];
    st[i] = -st[i];
  }
  cast_copy(raw_view(x, x.shape(), st, off), k.output());
});

// A copy from the CPU to another device (the copy's cross-device path); autograd records the op.
GLIA_KERNEL(to_device, CPU, [](KernelContext& k) {
  no_grad guard;
  k.output().copy_(k.input(0));
});

}  // namespace glia::cpu
