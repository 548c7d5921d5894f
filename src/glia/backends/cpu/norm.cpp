// CPU kernels of batch normalization over channels-last input viewed as
// [M rows, C channels] (per-channel sums over row blocks split across
// threads, then one affine pass per element), and of layer normalization over
// rows [R, H] (rows split across threads).
#include <cmath>
#include <vector>

#include "glia/backends/cpu/kernel_utils.h"
#include "glia/backends/cpu/nn_simd.h"

namespace glia::cpu {
namespace {

/// Runs f(row_begin, row_end, thread) over [0, M) split across threads, then returns the
/// thread count used (per-thread partial results are indexed by thread).
template <class F>
int split_rows(int64_t M, int64_t C, F f) {
  int nt = threads_for(M * C, 65536);
  if (nt <= 1) {
    f(int64_t(0), M, 0);
    return 1;
  }
  int used = nt;
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), T = omp_get_num_threads();  // the team may be smaller than asked
    if (t == 0) used = T;
    int64_t chunk = (M + T - 1) / T;
    int64_t b = std::min(M, t * chunk), e = std::min(M, b + chunk);
    f(b, e, t);
  }
  return used;
}

/// Per-channel sums of two quantities over all rows, in double; `partial(b, e, s1, s2)`
/// adds the rows [b, e) into s1 / s2.
template <class F>
void channel_sums(int64_t M, int64_t C, std::vector<double>& s1, std::vector<double>& s2, F partial) {
  int nt_max = std::max(1, threads_for(M * C, 65536));
  std::vector<double> buf(static_cast<size_t>(2 * nt_max * C), 0.0);
  int nt = split_rows(
      M, C, [&](int64_t b, int64_t e, int t) { partial(b, e, buf.data() + 2 * t * C, buf.data() + (2 * t + 1) * C); });
  s1.assign(static_cast<size_t>(C), 0.0);
  s2.assign(static_cast<size_t>(C), 0.0);
  for (int t = 0; t < nt; ++t)
    for (int64_t c = 0; c < C; ++c) {
      s1[static_cast<size_t>(c)] += buf[static_cast<size_t>(2 * t * C + c)];
      s2[static_cast<size_t>(c)] += buf[static_cast<size_t>((2 * t + 1) * C + c)];
    }
}

template <class T>
std::vector<double> to_doubles(const Tensor& t) {
  Tensor c = t.contiguous();
  const T* p = static_cast<const T*>(c.data_ptr());
  std::vector<double> v(static_cast<size_t>(c.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(static_cast<acc_t<T>>(p[i]));
  return v;
}

template <class S>
void store(const Tensor& out, const std::vector<double>& v) {
  S* p = static_cast<S*>(out.data_ptr());
  for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<S>(v[i]);
}

void bn_train_forward(KernelContext& k) {
  Tensor x = k.input(0).contiguous();
  const Tensor &y = k.output(0), &mean_out = k.output(1), &invstd_out = k.output(2), &var_out = k.output(3);
  double eps = k.attr<double>("eps");
  int64_t C = x.shape().back(), M = C == 0 ? 0 : x.numel() / C;
  if (C == 0) return;
  std::vector<double> s1, s2;
  visit_float(x.dtype(), "batch_norm", [&]<class T>() {
    const T* xp = static_cast<const T*>(x.data_ptr());
    // Sums of (x - shift) with shift = the first row: no cancellation when |mean| >> std.
    std::vector<double> shift(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) shift[static_cast<size_t>(c)] = static_cast<double>(static_cast<acc_t<T>>(xp[c]));
    if constexpr (std::is_same_v<T, float>) {
      channel_sums(M, C, s1, s2, [&](int64_t b, int64_t e, double* a1, double* a2) {
        nn_simd::col_moments_f32(xp + b * C, e - b, C, xp, a1, a2);
      });
    } else {
      channel_sums(M, C, s1, s2, [&](int64_t b, int64_t e, double* a1, double* a2) {
        for (int64_t r = b; r < e; ++r)
          for (int64_t c = 0; c < C; ++c) {
            double t = static_cast<double>(static_cast<acc_t<T>>(xp[r * C + c])) - shift[static_cast<size_t>(c)];
            a1[c] += t;
            a2[c] += t * t;
          }
      });
    }
    std::vector<double> mean(static_cast<size_t>(C)), var(mean.size()), invstd(mean.size());
    for (size_t c = 0; c < mean.size(); ++c) {
      double m1 = s1[c] / static_cast<double>(M);
      mean[c] = shift[c] + m1;
      var[c] = std::max(0.0, s2[c] / static_cast<double>(M) - m1 * m1);
      invstd[c] = 1.0 / std::sqrt(var[c] + eps);
    }
    std::vector<double> gamma =
        visit_float(k.input(1).dtype(), "batch_norm", [&]<class G>() { return to_doubles<G>(k.input(1)); });
    std::vector<double> beta =
        visit_float(k.input(2).dtype(), "batch_norm", [&]<class G>() { return to_doubles<G>(k.input(2)); });
    // y = x * a + b per channel.
    std::vector<double> a(mean.size()), bb(mean.size());
    for (size_t c = 0; c < mean.size(); ++c) {
      a[c] = gamma[c] * invstd[c];
      bb[c] = beta[c] - mean[c] * a[c];
    }
    T* yp = static_cast<T*>(y.data_ptr());
    if constexpr (std::is_same_v<T, float>) {
      std::vector<float> af(a.begin(), a.end()), bf(bb.begin(), bb.end());
      split_rows(M, C, [&](int64_t b, int64_t e, int) {
        nn_simd::col_affine_f32(xp + b * C, e - b, C, af.data(), bf.data(), yp + b * C);
      });
    } else {
      using A = acc_t<T>;
      std::vector<A> af(a.begin(), a.end()), bf(bb.begin(), bb.end());
      split_rows(M, C, [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r)
          for (int64_t c = 0; c < C; ++c)
            yp[r * C + c] =
                static_cast<T>(static_cast<A>(xp[r * C + c]) * af[static_cast<size_t>(c)] + bf[static_cast<size_t>(c)]);
      });
    }
    visit_float(mean_out.dtype(), "batch_norm", [&]<class S>() {
      store<S>(mean_out, mean);
      store<S>(invstd_out, invstd);
      store<S>(var_out, var);
    });
  });
}

void bn_backward(KernelContext& k) {
  Tensor x = k.input(1).contiguous();
  Tensor g = as_dtype(k.input(0), x.dtype()).contiguous();
  const Tensor &dx = k.output(0), &dgamma = k.output(1), &dbeta = k.output(2);
  int64_t C = x.shape().back(), M = C == 0 ? 0 : x.numel() / C;
  if (C == 0) return;
  auto stat = [&](size_t i) {
    return visit_float(k.input(i).dtype(), "batch_norm_backward", [&]<class S>() { return to_doubles<S>(k.input(i)); });
  };
  std::vector<double> mean = stat(2), invstd = stat(3), gamma = stat(4);
  std::vector<double> sg, sgx;
  visit_float(x.dtype(), "batch_norm_backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* xp = static_cast<const T*>(x.data_ptr());
    const T* gp = static_cast<const T*>(g.data_ptr());
    if constexpr (std::is_same_v<T, float>) {
      std::vector<float> meanf(mean.begin(), mean.end());
      channel_sums(M, C, sg, sgx, [&](int64_t b, int64_t e, double* a1, double* a2) {
        nn_simd::col_grad_moments_f32(gp + b * C, xp + b * C, e - b, C, meanf.data(), a1, a2);
      });
    } else {
      channel_sums(M, C, sg, sgx, [&](int64_t b, int64_t e, double* a1, double* a2) {
        for (int64_t r = b; r < e; ++r)
          for (int64_t c = 0; c < C; ++c) {
            double gv = static_cast<double>(static_cast<A>(gp[r * C + c]));
            a1[c] += gv;
            a2[c] += gv * (static_cast<double>(static_cast<A>(xp[r * C + c])) - mean[static_cast<size_t>(c)]);
          }
      });
    }
    // dx = k (g - sg/M - xhat * invstd * sgx / M) = a g + b x + d per channel, k = gamma invstd.
    auto n = static_cast<size_t>(C);
    std::vector<double> a(n), b(n), d(n), dgam(n);
    for (size_t c = 0; c < n; ++c) {
      double kk = gamma[c] * invstd[c];
      a[c] = kk;
      b[c] = -kk * invstd[c] * invstd[c] * sgx[c] / static_cast<double>(M);
      d[c] = -kk * sg[c] / static_cast<double>(M) - b[c] * mean[c];
      dgam[c] = sgx[c] * invstd[c];
    }
    T* dxp = static_cast<T*>(dx.data_ptr());
    if constexpr (std::is_same_v<T, float>) {
      std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), df(d.begin(), d.end());
      split_rows(M, C, [&](int64_t r0, int64_t r1, int) {
        nn_simd::col_affine2_f32(gp + r0 * C, xp + r0 * C, r1 - r0, C, af.data(), bf.data(), df.data(), dxp + r0 * C);
      });
    } else {
      std::vector<A> af(a.begin(), a.end()), bf(b.begin(), b.end()), df(d.begin(), d.end());
      split_rows(M, C, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = 0; c < C; ++c) {
            auto cc = static_cast<size_t>(c);
            dxp[r * C + c] = static_cast<T>(static_cast<A>(gp[r * C + c]) * af[cc] +
                                            static_cast<A>(xp[r * C + c]) * bf[cc] + df[cc]);
          }
      });
    }
    visit_float(dgamma.dtype(), "batch_norm_backward", [&]<class S>() {
      store<S>(dgamma, dgam);
      store<S>(dbeta, sg);
    });
  });
}

void bn_apply(KernelContext& k) {
  Tensor x = k.input(0).contiguous();
  const Tensor& y = k.output();
  int64_t C = x.shape().back(), M = C == 0 ? 0 : x.numel() / C;
  if (M == 0) return;
  std::vector<double> scale =
      visit_float(k.input(1).dtype(), "batch_norm", [&]<class S>() { return to_doubles<S>(k.input(1)); });
  std::vector<double> shift =
      visit_float(k.input(2).dtype(), "batch_norm", [&]<class S>() { return to_doubles<S>(k.input(2)); });
  visit_float(x.dtype(), "batch_norm", [&]<class T>() {
    using A = acc_t<T>;
    const T* xp = static_cast<const T*>(x.data_ptr());
    T* yp = static_cast<T*>(y.data_ptr());
    std::vector<A> a(scale.begin(), scale.end()), b(shift.begin(), shift.end());
    split_rows(M, C, [&](int64_t r0, int64_t r1, int) {
      if constexpr (std::is_same_v<T, float>) {
        nn_simd::col_affine_f32(xp + r0 * C, r1 - r0, C, a.data(), b.data(), yp + r0 * C);
      } else {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = 0; c < C; ++c)
            yp[r * C + c] =
                static_cast<T>(static_cast<A>(xp[r * C + c]) * a[static_cast<size_t>(c)] + b[static_cast<size_t>(c)]);
      }
    });
  });
}

void ln_forward(KernelContext& k) {
  Tensor x = k.input(0).contiguous();
  const Tensor &y = k.output(0), &mean_out = k.output(1), &rstd_out = k.output(2);
  double eps = k.attr<double>("eps");
  int64_t R = x.shape()[0], H = x.shape()[1];
  if (R == 0) return;
  std::vector<double> mean(static_cast<size_t>(R)), rstd(mean.size());
  std::vector<double> gamma =
      visit_float(k.input(1).dtype(), "layer_norm", [&]<class S>() { return to_doubles<S>(k.input(1)); });
  std::vector<double> beta =
      visit_float(k.input(2).dtype(), "layer_norm", [&]<class S>() { return to_doubles<S>(k.input(2)); });
  visit_float(x.dtype(), "layer_norm", [&]<class T>() {
    using A = acc_t<T>;
    const T* xp = static_cast<const T*>(x.data_ptr());
    T* yp = static_cast<T*>(y.data_ptr());
    std::vector<A> gf(gamma.begin(), gamma.end()), bf(beta.begin(), beta.end());
    parallel_for(R, std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = xp + r * H;
        T* yr = yp + r * H;
        auto rr = static_cast<size_t>(r);
        double m = 0, v = 0;
        if constexpr (std::is_same_v<T, float>) {
          nn_simd::row_moments_f32(xr, H, &m, &v);
        } else {
          for (int64_t j = 0; j < H; ++j) m += static_cast<double>(static_cast<A>(xr[j]));
          m /= static_cast<double>(H);
          for (int64_t j = 0; j < H; ++j) {
            double t = static_cast<double>(static_cast<A>(xr[j])) - m;
            v += t * t;
          }
          v /= static_cast<double>(H);
        }
        mean[rr] = m;
        rstd[rr] = 1.0 / std::sqrt(v + eps);
        if constexpr (std::is_same_v<T, float>) {
          nn_simd::row_normalize_f32(xr, H, static_cast<float>(m), static_cast<float>(rstd[rr]), gf.data(), bf.data(),
                                     yr);
        } else {
          auto mm = static_cast<A>(m), ss = static_cast<A>(rstd[rr]);
          for (int64_t j = 0; j < H; ++j) {
            auto jj = static_cast<size_t>(j);
            yr[j] = static_cast<T>((static_cast<A>(xr[j]) - mm) * ss * gf[jj] + bf[jj]);
          }
        }
      }
    });
  });
  visit_float(mean_out.dtype(), "layer_norm", [&]<class S>() {
    store<S>(mean_out, mean);
    store<S>(rstd_out, rstd);
  });
}

void ln_backward(KernelContext& k) {
  Tensor x = k.input(1).contiguous();
  Tensor g = as_dtype(k.input(0), x.dtype()).contiguous();
  const Tensor &dx = k.output(0), &dgamma = k.output(1), &dbeta = k.output(2);
  int64_t R = x.shape()[0], H = x.shape()[1];
  auto stat = [&](size_t i) {
    return visit_float(k.input(i).dtype(), "layer_norm_backward", [&]<class S>() { return to_doubles<S>(k.input(i)); });
  };
  std::vector<double> mean = stat(2), rstd = stat(3), gamma = stat(4);
  auto hn = static_cast<size_t>(H);
  // Per-thread dgamma / dbeta: float sums over blocks of rows, blocks added in double.
  int nt_max = std::max(1, threads_for(R * H, 65536));
  std::vector<double> part(static_cast<size_t>(2 * nt_max) * hn, 0.0);
  visit_float(x.dtype(), "layer_norm_backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* xp = static_cast<const T*>(x.data_ptr());
    const T* gp = static_cast<const T*>(g.data_ptr());
    T* dxp = static_cast<T*>(dx.data_ptr());
    std::vector<A> gf(gamma.begin(), gamma.end());
    int nt = split_rows(R, H, [&](int64_t r0, int64_t r1, int t) {
      double* dg_acc = part.data() + static_cast<size_t>(2 * t) * hn;
      double* db_acc = dg_acc + hn;
      std::vector<A> dg_blk(hn, A(0)), db_blk(hn, A(0));
      constexpr int64_t kBlock = 64;
      for (int64_t rb = r0; rb < r1; rb += kBlock) {
        for (int64_t r = rb; r < std::min(r1, rb + kBlock); ++r) {
          const T *xr = xp + r * H, *gr = gp + r * H;
          auto rr = static_cast<size_t>(r);
          auto m = static_cast<A>(mean[rr]), s = static_cast<A>(rstd[rr]);
          double s1 = 0, s2 = 0;
          if constexpr (std::is_same_v<T, float>) {
            nn_simd::row_grad_sums_f32(gr, xr, H, m, s, gf.data(), &s1, &s2, dg_blk.data(), db_blk.data());
          } else {
            for (int64_t j = 0; j < H; ++j) {
              auto jj = static_cast<size_t>(j);
              A gv = static_cast<A>(gr[j]), xc = static_cast<A>(xr[j]) - m, gh = gv * gf[jj];
              s1 += static_cast<double>(gh);
              s2 += static_cast<double>(gh) * static_cast<double>(xc);
              dg_blk[jj] += gv * xc * s;
              db_blk[jj] += gv;
            }
          }
          // dx = rstd (gh - a - (x - mean) b), a = mean(gh), b = rstd^2 mean(gh (x - mean)).
          auto a = static_cast<A>(s1 / static_cast<double>(H));
          auto b = static_cast<A>(rstd[rr] * rstd[rr] * s2 / static_cast<double>(H));
          if constexpr (std::is_same_v<T, float>) {
            nn_simd::row_grad_apply_f32(gr, xr, H, m, s, gf.data(), a, b, dxp + r * H);
          } else {
            for (int64_t j = 0; j < H; ++j)
              dxp[r * H + j] = static_cast<T>(
                  s * (static_cast<A>(gr[j]) * gf[static_cast<size_t>(j)] - a - (static_cast<A>(xr[j]) - m) * b));
          }
        }
        for (size_t j = 0; j < hn; ++j) {
          dg_acc[j] += static_cast<double>(dg_blk[j]);
          db_acc[j] += static_cast<double>(db_blk[j]);
          dg_blk[j] = A(0);
          db_blk[j] = A(0);
        }
      }
    });
    std::vector<double> dgam(hn, 0.0), dbet(hn, 0.0);
    for (int t = 0; t < nt; ++t)
      for (size_t j = 0; j < hn; ++j) {
        dgam[j] += part[static_cast<size_t>(2 * t) * hn + j];
        dbet[j] += part[static_cast<size_t>(2 * t + 1) * hn + j];
      }
    visit_float(dgamma.dtype(), "layer_norm_backward", [&]<class S>() {
      store<S>(dgamma, dgam);
      store<S>(dbeta, dbet);
    });
  });
}

}  // namespace

GLIA_KERNEL(batch_norm_train, CPU, bn_train_forward);
GLIA_KERNEL(batch_norm_backward, CPU, bn_backward);
GLIA_KERNEL(batch_norm_apply, CPU, bn_apply);
GLIA_KERNEL(layer_norm_fwd, CPU, ln_forward);
GLIA_KERNEL(layer_norm_backward, CPU, ln_backward);

}  // namespace glia::cpu
