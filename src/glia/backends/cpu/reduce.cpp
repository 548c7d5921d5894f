// CPU reduction kernels. Every reduction is brought to the form
// [outer, R, inner] (contiguous, reducing the middle), so two loop shapes
// cover all cases: rows (inner == 1) and columns (inner > 1).
#include "glia/ops/reduce.h"

#include <cmath>
#include <limits>
#include <vector>

#include "glia/backends/cpu/kernel_utils.h"

namespace glia::cpu {
namespace {

struct Plan {
  Tensor x;  // contiguous
  int64_t outer = 1, R = 1, inner = 1;
};

Plan plan(const Tensor& in, const std::vector<int64_t>& dims) {
  Plan p;
  int64_t nd = in.dim();
  bool consecutive = true;
  for (size_t i = 1; i < dims.size(); ++i) consecutive = consecutive && dims[i] == dims[i - 1] + 1;
  if (dims.empty()) {
    p.x = in.contiguous();
    p.outer = in.numel();
    return p;
  }
  if (consecutive) {
    p.x = in.contiguous();
    for (int64_t d = 0; d < nd; ++d) {
      int64_t s = in.shape()[static_cast<size_t>(d)];
      if (d < dims.front())
        p.outer *= s;
      else if (d <= dims.back())
        p.R *= s;
      else
        p.inner *= s;
    }
    return p;
  }
  std::vector<int64_t> perm;
  for (int64_t d = 0; d < nd; ++d)
    if (!std::binary_search(dims.begin(), dims.end(), d)) {
      perm.push_back(d);
      p.outer *= in.shape()[static_cast<size_t>(d)];
    }
  for (int64_t d : dims) {
    perm.push_back(d);
    p.R *= in.shape()[static_cast<size_t>(d)];
  }
  Shape ps(perm.size()), pst(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    ps[i] = in.shape()[static_cast<size_t>(perm[i])];
    pst[i] = in.strides()[static_cast<size_t>(perm[i])];
  }
  Tensor v = Tensor::make_view(in.storage(), ps, pst, in.offset(), in.dtype());
  p.x = Tensor::empty(ps, in.dtype(), in.device());
  cast_copy(v, p.x);
  return p;
}

const std::vector<int64_t>& dims_of(KernelContext& k) { return k.attr<std::vector<int64_t>>("dims"); }

/// Generic reduction with accumulator type A: out[o, j] = finish(fold(init, x[o, r, j] for r)).
template <class T, class O, class A, class Fold, class Finish>
void reduce_scalar(const Plan& p, O* out, A init, Fold fold, Finish finish) {
  const T* x = static_cast<const T*>(p.x.data_ptr());
  int64_t n_out = p.outer * p.inner;
  parallel_for(n_out, std::max<int64_t>(1, 16384 / std::max<int64_t>(p.R, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int64_t o = i / p.inner, j = i % p.inner;
      const T* base = x + o * p.R * p.inner + j;
      A acc = init;
      for (int64_t r = 0; r < p.R; ++r) acc = fold(acc, static_cast<acc_t<T>>(base[r * p.inner]));
      out[i] = static_cast<O>(finish(acc));
    }
  });
}

/// float32 sum / max / min with SIMD rows or columns, split across threads.
template <int kOp>  // 0 sum, 1 max, 2 min
void reduce_f32(const Plan& p, float* out) {
  const float* x = static_cast<const float*>(p.x.data_ptr());
  int nt = threads_for(p.outer * p.R * p.inner, 32768);
  constexpr double kIdentity = kOp == 0   ? 0.0
                               : kOp == 1 ? -std::numeric_limits<double>::infinity()
                                          : std::numeric_limits<double>::infinity();
  // Combines partial results; NaN wins.
  auto combine = [](double a, double v) -> double {
    if constexpr (kOp == 0) return a + v;
    if (std::isnan(a) || std::isnan(v)) return std::numeric_limits<double>::quiet_NaN();
    return kOp == 1 ? std::max(a, v) : std::min(a, v);
  };
  auto row = [&](const float* r, int64_t n) -> double {
    if constexpr (kOp == 0) return simd::sum_f32(r, n);
    if constexpr (kOp == 1) return simd::max_f32(r, n);
    return simd::min_f32(r, n);
  };
  if (p.inner == 1) {
    if (p.outer >= nt) {
      parallel_for(p.outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(p.R, 1)), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) out[o] = static_cast<float>(row(x + o * p.R, p.R));
      });
      return;
    }
    for (int64_t o = 0; o < p.outer; ++o) {  // few long rows: split each across threads
      const float* r = x + o * p.R;
      std::vector<double> part(static_cast<size_t>(nt), kIdentity);
#pragma omp parallel num_threads(nt)
      {
        int t = omp_get_thread_num();
        int64_t chunk = (p.R + nt - 1) / nt;
        int64_t b = std::min(p.R, t * chunk), e = std::min(p.R, b + chunk);
        if (e > b) part[static_cast<size_t>(t)] = row(r + b, e - b);
      }
      double acc = kIdentity;
      for (double v : part) acc = combine(acc, v);
      out[o] = static_cast<float>(acc);
    }
    return;
  }
  // Columns: blocks of rows reduced in float vectors, block results combined in double.
  constexpr int64_t kBlock = 256;
  auto col_block = [&](const float* base, int64_t rows, float* dst) {
    if constexpr (kOp == 0) simd::col_sum_f32(base, rows, p.inner, p.inner, dst);
    if constexpr (kOp == 1) simd::col_max_f32(base, rows, p.inner, p.inner, dst);
    if constexpr (kOp == 2) simd::col_min_f32(base, rows, p.inner, p.inner, dst);
  };
  int64_t nblocks = (p.R + kBlock - 1) / kBlock;
  if (p.outer >= nt || nblocks < 2) {  // one thread per outer slice
    parallel_for(p.outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(p.R * p.inner, 1)), [&](int64_t b, int64_t e) {
      std::vector<float> tmp(static_cast<size_t>(p.inner));
      std::vector<double> acc(static_cast<size_t>(p.inner));
      for (int64_t o = b; o < e; ++o) {
        std::fill(acc.begin(), acc.end(), kIdentity);
        for (int64_t blk = 0; blk < nblocks; ++blk) {
          int64_t r0 = blk * kBlock;
          col_block(x + (o * p.R + r0) * p.inner, std::min(kBlock, p.R - r0), tmp.data());
          for (size_t j = 0; j < acc.size(); ++j) acc[j] = combine(acc[j], tmp[j]);
        }
        for (size_t j = 0; j < acc.size(); ++j) out[o * p.inner + static_cast<int64_t>(j)] = static_cast<float>(acc[j]);
      }
    });
    return;
  }
  for (int64_t o = 0; o < p.outer; ++o) {  // few slices with many rows: split the rows
    const float* xo = x + o * p.R * p.inner;
    std::vector<double> acc(static_cast<size_t>(nt * p.inner), kIdentity);
#pragma omp parallel num_threads(nt)
    {
      int t = omp_get_thread_num(), T = omp_get_num_threads();
      std::vector<float> tmp(static_cast<size_t>(p.inner));
      double* a = acc.data() + static_cast<size_t>(t * p.inner);
      for (int64_t blk = t; blk < nblocks; blk += T) {
        int64_t r0 = blk * kBlock;
        col_block(xo + r0 * p.inner, std::min(kBlock, p.R - r0), tmp.data());
        for (int64_t j = 0; j < p.inner; ++j) a[j] = combine(a[j], tmp[static_cast<size_t>(j)]);
      }
    }
    for (int64_t j = 0; j < p.inner; ++j) {
      double r = kIdentity;
      for (int t = 0; t < nt; ++t) r = combine(r, acc[static_cast<size_t>(t * p.inner + j)]);
      out[o * p.inner + j] = static_cast<float>(r);
    }
  }
}

template <int kOp>
void extreme_kernel(KernelContext& k) {
  const Tensor& out = k.output();
  Plan p = plan(k.input(0), dims_of(k));
  if (p.R == 0) return;
  if (out.dtype() == DType::f32 && p.R > 0) {
    reduce_f32<kOp>(p, static_cast<float*>(out.data_ptr()));
    return;
  }
  visit_dtype(out.dtype(), [&]<class T>() {
    using A = acc_t<T>;
    A init = kOp == 1 ? std::numeric_limits<A>::lowest() : std::numeric_limits<A>::max();
    if constexpr (std::is_floating_point_v<A>)
      init = kOp == 1 ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::infinity();
    reduce_scalar<T>(
        p, static_cast<T*>(out.data_ptr()), init,
        [](A acc, A v) {
          if constexpr (std::is_floating_point_v<A>)
            if (std::isnan(v) || std::isnan(acc)) return std::isnan(acc) ? acc : v;
          return kOp == 1 ? (v > acc ? v : acc) : (v < acc ? v : acc);
        },
        [](A a) { return a; });
  });
}

template <bool kMax>
void arg_kernel(KernelContext& k, bool with_values) {
  int64_t d = k.attr<int64_t>("dim");
  Plan p = plan(k.input(0), {d});
  const Tensor& idx_out = k.output(with_values ? 1 : 0);
  int64_t* idx = static_cast<int64_t*>(idx_out.data_ptr());
  visit_dtype(k.input(0).dtype(), [&]<class T>() {
    using A = acc_t<T>;
    const T* x = static_cast<const T*>(p.x.data_ptr());
    T* vals = with_values ? static_cast<T*>(k.output(0).data_ptr()) : nullptr;
    parallel_for(p.outer * p.inner, std::max<int64_t>(1, 16384 / std::max<int64_t>(p.R, 1)), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        int64_t o = i / p.inner, j = i % p.inner;
        const T* base = x + o * p.R * p.inner + j;
        A best = static_cast<A>(base[0]);
        int64_t bi = 0;
        for (int64_t r = 1; r < p.R; ++r) {
          A v = static_cast<A>(base[r * p.inner]);
          if constexpr (std::is_floating_point_v<A>) {
            if (std::isnan(best)) break;  // the first NaN wins, as in PyTorch
            if (std::isnan(v)) {
              best = v;
              bi = r;
              break;
            }
          }
          if (kMax ? v > best : v < best) {
            best = v;
            bi = r;
          }
        }
        idx[i] = bi;
        if (vals) vals[i] = static_cast<T>(best);
      }
    });
  });
}

}  // namespace

GLIA_KERNEL(sum, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  Plan p = plan(k.input(0), dims_of(k));
  if (p.R == 0 || k.input(0).numel() == 0) {
    out.zero_();
    return;
  }
  if (out.dtype() == DType::f32 && k.input(0).dtype() == DType::f32) {
    reduce_f32<0>(p, static_cast<float*>(out.data_ptr()));
    return;
  }
  visit_dtype(k.input(0).dtype(), [&]<class T>() {
    if constexpr (std::is_floating_point_v<acc_t<T>>) {
      auto add = [](double a, double v) { return a + v; };
      auto done = [](double a) { return a; };
      if (out.dtype() == dtype_v<T>) {
        reduce_scalar<T>(p, static_cast<T*>(out.data_ptr()), 0.0, add, done);
      } else {  // a 16-bit input summed into float32 (mean)
        GLIA_CHECK(out.dtype() == DType::f32, InternalError, "sum: cannot sum ", name(dtype_v<T>), " into ",
                   name(out.dtype()));
        reduce_scalar<T>(p, static_cast<float*>(out.data_ptr()), 0.0, add, done);
      }
    } else {
      reduce_scalar<T>(
          p, static_cast<int64_t*>(out.data_ptr()), int64_t(0), [](int64_t a, int64_t v) { return a + v; },
          [](int64_t a) { return a; });
    }
  });
});

GLIA_KERNEL(prod, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  Plan p = plan(k.input(0), dims_of(k));
  if (p.R == 0 || k.input(0).numel() == 0) {
    out.fill_(1);
    return;
  }
  visit_dtype(k.input(0).dtype(), [&]<class T>() {
    if constexpr (std::is_floating_point_v<acc_t<T>>) {
      reduce_scalar<T>(
          p, static_cast<T*>(out.data_ptr()), 1.0, [](double a, double v) { return a * v; },
          [](double a) { return a; });
    } else {
      reduce_scalar<T>(
          p, static_cast<int64_t*>(out.data_ptr()), int64_t(1), [](int64_t a, int64_t v) { return a * v; },
          [](int64_t a) { return a; });
    }
  });
});

GLIA_KERNEL(amax, CPU, [](KernelContext& k) { extreme_kernel<1>(k); });
GLIA_KERNEL(amin, CPU, [](KernelContext& k) { extreme_kernel<2>(k); });
GLIA_KERNEL(max_dim, CPU, [](KernelContext& k) { arg_kernel<true>(k, true); });
GLIA_KERNEL(min_dim, CPU, [](KernelContext& k) { arg_kernel<false>(k, true); });
GLIA_KERNEL(argmax, CPU, [](KernelContext& k) { arg_kernel<true>(k, false); });
GLIA_KERNEL(argmin, CPU, [](KernelContext& k) { arg_kernel<false>(k, false); });

GLIA_KERNEL(sum_to_like, CPU, [](KernelContext& k) { k.output().copy_(sum_to(k.input(0), k.output().shape())); });
GLIA_KERNEL(expand_like, CPU, [](KernelContext& k) { cast_copy(k.input(0), k.output()); });
GLIA_KERNEL(count_like, CPU, [](KernelContext& k) {
  int64_t n = 1;
  for (int64_t d : k.attr<std::vector<int64_t>>("dims")) n *= k.input(0).shape()[static_cast<size_t>(d)];
  k.output().fill_(n);
});

GLIA_KERNEL(var, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  Plan p = plan(k.input(0), dims_of(k));
  double denom = static_cast<double>(p.R - k.attr<int64_t>("correction"));
  visit_float(out.dtype(), "var", [&]<class T>() {
    const T* x = static_cast<const T*>(p.x.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    parallel_for(p.outer * p.inner, std::max<int64_t>(1, 16384 / std::max<int64_t>(p.R, 1)), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        int64_t oo = i / p.inner, j = i % p.inner;
        const T* base = x + oo * p.R * p.inner + j;
        double m = 0;
        for (int64_t r = 0; r < p.R; ++r) m += static_cast<double>(base[r * p.inner]);
        m /= static_cast<double>(p.R);
        double s = 0;
        for (int64_t r = 0; r < p.R; ++r) {
          double dlt = static_cast<double>(base[r * p.inner]) - m;
          s += dlt * dlt;
        }
        o[i] = static_cast<T>(denom > 0 ? s / denom : std::numeric_limits<double>::quiet_NaN());
      }
    });
  });
});

}  // namespace glia::cpu
