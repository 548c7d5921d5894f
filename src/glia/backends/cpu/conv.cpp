// CPU convolution kernels. float32 runs oneDNN's forward, backward-data and
// backward-weights primitives on NHWC activations; the Keras weight layout is
// described to oneDNN with explicit strides and reordered to the format the
// primitive prefers. Primitives are built once per geometry and cached.
// float64 (gradient checks) uses direct loops; 16-bit floats compute in float32. Scratchpads
// and reordered weights live in per-thread scratch buffers, so a warm kernel allocates nothing.
// conv2d_fused (made by graph fusion) is the forward with a ReLU post-op.
#include <cstdio>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>

#include "glia/backends/cpu/kernel_utils.h"
#include "glia/backends/cpu/onednn.h"

namespace glia::cpu {
namespace {

namespace dn = dnnl;
using tag = dn::memory::format_tag;
using I64s = std::vector<int64_t>;

/// Sizes of one convolution: x [N,H,W,C], w [KH,KW,Cg,O] with G groups, y [N,OH,OW,O].
struct Geom {
  int64_t N, H, W, C, KH, KW, Cg, O, OH, OW, G, sh, sw, dh, dw, pt, pb, pl, pr;
  int64_t Og() const { return O / G; }
};

Geom make_geom(const Shape& x, const Shape& w, const Shape& y, const Attrs& a) {
  const auto& s = a.get<I64s>("stride");
  const auto& d = a.get<I64s>("dilation");
  const auto& p = a.get<I64s>("pads");
  return {x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], y[1], y[2], a.get<int64_t>("groups"),
          s[0], s[1], d[0], d[1], p[0], p[1], p[2], p[3]};
}

// --- oneDNN (float32)

dn::engine& engine() { return onednn::engine(); }
dn::stream& stream() { return onednn::stream(); }

enum class Kind { Fwd, FwdBias, BwdData, BwdWeights };

/// A built primitive and what its execution needs besides the tensors.
struct Prim {
  dn::primitive prim;
  dn::memory::desc weights;  // the primitive's (diff_)weights format
  dn::memory::desc keras;    // the Keras layout [KH, KW, Cg, O] of the same weights
  bool reorder = false;      // weights != keras
  dn::reorder to_prim;       // keras -> weights (Fwd, BwdData)
  dn::reorder to_keras;      // weights -> keras (BwdWeights)
  size_t scratchpad = 0;
  bool ok = true;  // false: oneDNN has no implementation for this geometry
};

struct Descs {
  dn::memory::desc src, dst, bias, keras, any_weights;
  dn::memory::dims strides, dilates, pad_l, pad_r;
};

Descs make_descs(const Geom& g) {
  using dims = dn::memory::dims;
  const auto f32 = dn::memory::data_type::f32;
  Descs d;
  d.src = dn::memory::desc({g.N, g.C, g.H, g.W}, f32, tag::nhwc);
  d.dst = dn::memory::desc({g.N, g.O, g.OH, g.OW}, f32, tag::nhwc);
  d.bias = dn::memory::desc({g.O}, f32, tag::a);
  // Keras's [KH, KW, Cg, O] in oneDNN's logical order (G,) O, I, KH, KW; O = group * Og + o.
  dims wdims, wstrides;
  if (g.G == 1) {
    wdims = {g.O, g.Cg, g.KH, g.KW};
    wstrides = {1, g.O, g.KW * g.Cg * g.O, g.Cg * g.O};
  } else {
    wdims = {g.G, g.Og(), g.Cg, g.KH, g.KW};
    wstrides = {g.Og(), 1, g.O, g.KW * g.Cg * g.O, g.Cg * g.O};
  }
  d.keras = dn::memory::desc(wdims, f32, wstrides);
  d.any_weights = dn::memory::desc(wdims, f32, tag::any);
  d.strides = {g.sh, g.sw};
  d.dilates = {g.dh - 1, g.dw - 1};
  d.pad_l = {g.pt, g.pl};
  d.pad_r = {g.pb, g.pr};
  return d;
}

dn::primitive_attr user_scratchpad() {
  dn::primitive_attr a;
  a.set_scratchpad_mode(dn::scratchpad_mode::user);
  return a;
}

dn::convolution_forward::primitive_desc forward_pd(const Descs& d, bool bias, dn::prop_kind pk) {
  auto algo = dn::algorithm::convolution_direct;
  dn::primitive_attr attr = user_scratchpad();
  auto desc = bias ? dn::convolution_forward::desc(pk, algo, d.src, d.any_weights, d.bias, d.dst, d.strides, d.dilates,
                                                   d.pad_l, d.pad_r)
                   : dn::convolution_forward::desc(pk, algo, d.src, d.any_weights, d.dst, d.strides, d.dilates, d.pad_l,
                                                   d.pad_r);
  return dn::convolution_forward::primitive_desc(desc, attr, engine());
}

std::shared_ptr<Prim> build(Kind kind, const Geom& g) {
  Descs d = make_descs(g);
  auto p = std::make_shared<Prim>();
  p->keras = d.keras;
  auto algo = dn::algorithm::convolution_direct;
  if (kind == Kind::Fwd || kind == Kind::FwdBias) {
    auto pd = forward_pd(d, kind == Kind::FwdBias, dn::prop_kind::forward_training);
    p->prim = dn::convolution_forward(pd);
    p->weights = pd.weights_desc();
    p->scratchpad = pd.scratchpad_desc().get_size();
  } else if (kind == Kind::BwdData) {
    auto hint = forward_pd(d, false, dn::prop_kind::forward_training);
    dn::convolution_backward_data::desc desc(algo, d.src, d.any_weights, d.dst, d.strides, d.dilates, d.pad_l, d.pad_r);
    dn::convolution_backward_data::primitive_desc pd(desc, user_scratchpad(), engine(), hint);
    p->prim = dn::convolution_backward_data(pd);
    p->weights = pd.weights_desc();
    p->scratchpad = pd.scratchpad_desc().get_size();
  } else {
    auto hint = forward_pd(d, false, dn::prop_kind::forward_training);
    dn::convolution_backward_weights::desc desc(algo, d.src, d.any_weights, d.dst, d.strides, d.dilates, d.pad_l,
                                                d.pad_r);
    dn::convolution_backward_weights::primitive_desc pd(desc, user_scratchpad(), engine(), hint);
    p->prim = dn::convolution_backward_weights(pd);
    p->weights = pd.diff_weights_desc();
    p->scratchpad = pd.scratchpad_desc().get_size();
  }
  p->reorder = p->weights != p->keras;
  if (p->reorder) {
    if (kind == Kind::BwdWeights)
      p->to_keras = dn::reorder(dn::reorder::primitive_desc(engine(), p->weights, engine(), p->keras));
    else
      p->to_prim = dn::reorder(dn::reorder::primitive_desc(engine(), p->keras, engine(), p->weights));
  }
  return p;
}

/// The cached primitive for (kind, geometry); null where oneDNN has none (the caller falls back to loops).
std::shared_ptr<Prim> get_prim(Kind kind, const Geom& g) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%d:%ld,%ld,%ld,%ld:%ld,%ld,%ld,%ld:%ld,%ld,%ld:%ld,%ld,%ld,%ld:%ld,%ld,%ld,%ld",
                static_cast<int>(kind), long(g.N), long(g.H), long(g.W), long(g.C), long(g.KH), long(g.KW), long(g.Cg),
                long(g.O), long(g.OH), long(g.OW), long(g.G), long(g.sh), long(g.sw), long(g.dh), long(g.dw),
                long(g.pt), long(g.pb), long(g.pl), long(g.pr));
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<Prim>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[buf];
  if (!slot) {
    try {
      slot = build(kind, g);
    } catch (const dn::error&) {
      slot = std::make_shared<Prim>();
      slot->ok = false;
    }
  }
  return slot->ok ? slot : nullptr;
}

// Scratch slots: the primitive's scratchpad and the weights in the primitive's format.
constexpr int kScratchpadSlot = 0, kWeightsSlot = 1;

void* ptr(const Tensor& t) { return t.data_ptr(); }

dn::memory scratch_mem(const Prim& p) {
  int64_t n = static_cast<int64_t>(std::max<size_t>(p.scratchpad, 1));
  return dn::memory(dn::memory::desc({n}, dn::memory::data_type::u8, tag::a), engine(),
                    scratch(kScratchpadSlot, static_cast<size_t>(n)));
}

/// y = conv(x, w) (+ b); all float32, x and w contiguous.
bool conv_fwd_f32(const Geom& g, const Tensor& x, const Tensor& w, const Tensor* b, const Tensor& y) {
  auto p = get_prim(b ? Kind::FwdBias : Kind::Fwd, g);
  if (!p) return false;
  Descs d = make_descs(g);
  dn::memory wmem(p->keras, engine(), ptr(w));
  if (p->reorder) {
    dn::memory wp(p->weights, engine(), scratch(kWeightsSlot, p->weights.get_size()));
    p->to_prim.execute(stream(), wmem, wp);
    wmem = wp;
  }
  std::unordered_map<int, dn::memory> args{{DNNL_ARG_SRC, dn::memory(d.src, engine(), ptr(x))},
                                           {DNNL_ARG_WEIGHTS, wmem},
                                           {DNNL_ARG_DST, dn::memory(d.dst, engine(), ptr(y))},
                                           {DNNL_ARG_SCRATCHPAD, scratch_mem(*p)}};
  if (b) args.insert({DNNL_ARG_BIAS, dn::memory(d.bias, engine(), ptr(*b))});
  p->prim.execute(stream(), args);
  stream().wait();
  return true;
}

/// gx = d conv / d x for gy; all float32, contiguous.
bool conv_bwd_data_f32(const Geom& g, const Tensor& gy, const Tensor& w, const Tensor& gx) {
  auto p = get_prim(Kind::BwdData, g);
  if (!p) return false;
  Descs d = make_descs(g);
  dn::memory wmem(p->keras, engine(), ptr(w));
  if (p->reorder) {
    dn::memory wp(p->weights, engine(), scratch(kWeightsSlot, p->weights.get_size()));
    p->to_prim.execute(stream(), wmem, wp);
    wmem = wp;
  }
  p->prim.execute(stream(), {{DNNL_ARG_DIFF_DST, dn::memory(d.dst, engine(), ptr(gy))},
                             {DNNL_ARG_WEIGHTS, wmem},
                             {DNNL_ARG_DIFF_SRC, dn::memory(d.src, engine(), ptr(gx))},
                             {DNNL_ARG_SCRATCHPAD, scratch_mem(*p)}});
  stream().wait();
  return true;
}

/// gw = d conv / d w for gy; all float32, contiguous.
bool conv_bwd_weights_f32(const Geom& g, const Tensor& x, const Tensor& gy, const Tensor& gw) {
  auto p = get_prim(Kind::BwdWeights, g);
  if (!p) return false;
  Descs d = make_descs(g);
  dn::memory keras(p->keras, engine(), ptr(gw));
  dn::memory wmem = keras;
  if (p->reorder) wmem = dn::memory(p->weights, engine(), scratch(kWeightsSlot, p->weights.get_size()));
  p->prim.execute(stream(), {{DNNL_ARG_SRC, dn::memory(d.src, engine(), ptr(x))},
                             {DNNL_ARG_DIFF_DST, dn::memory(d.dst, engine(), ptr(gy))},
                             {DNNL_ARG_DIFF_WEIGHTS, wmem},
                             {DNNL_ARG_SCRATCHPAD, scratch_mem(*p)}});
  if (p->reorder) p->to_keras.execute(stream(), wmem, keras);
  stream().wait();
  return true;
}

// --- direct loops (float64)

/// f(lo, hi) over [0, n) split evenly across threads when the rows hold enough work
/// (`row_work` multiply-adds each); small gradient-check convolutions stay on one thread.
template <class F>
void parallel_rows(int64_t n, int64_t row_work, F&& f) {
  int nt = threads_for(n * row_work, 1 << 16);
  if (nt <= 1 || n < 2) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t lo = n * t / T, hi = n * (t + 1) / T;
    if (lo < hi) f(lo, hi);
  }
}

/// The input row / column of output position o and kernel tap k, or -1 when it falls in the padding.
inline int64_t in_pos(int64_t o, int64_t k, int64_t stride, int64_t dil, int64_t pad, int64_t size) {
  int64_t i = o * stride - pad + k * dil;
  return i >= 0 && i < size ? i : -1;
}

template <class T>
void conv_fwd_naive(const Geom& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t Og = g.Og();
  parallel_rows(g.N * g.OH, g.OW * g.KH * g.KW * g.Cg * g.O, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t n = r / g.OH, oh = r % g.OH;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        T* yp = y + ((n * g.OH + oh) * g.OW + ow) * g.O;
        for (int64_t o = 0; o < g.O; ++o) yp[o] = b ? b[o] : T(0);
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          int64_t ih = in_pos(oh, kh, g.sh, g.dh, g.pt, g.H);
          if (ih < 0) continue;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            int64_t iw = in_pos(ow, kw, g.sw, g.dw, g.pl, g.W);
            if (iw < 0) continue;
            const T* xp = x + ((n * g.H + ih) * g.W + iw) * g.C;
            const T* wp = w + (kh * g.KW + kw) * g.Cg * g.O;
            for (int64_t gr = 0; gr < g.G; ++gr)
              for (int64_t ic = 0; ic < g.Cg; ++ic) {
                T xv = xp[gr * g.Cg + ic];
                const T* wr = wp + ic * g.O + gr * Og;
                T* yr = yp + gr * Og;
                for (int64_t o = 0; o < Og; ++o) yr[o] += xv * wr[o];
              }
          }
        }
      }
    }
  });
}

template <class T>
void conv_bwd_data_naive(const Geom& g, const T* gy, const T* w, T* gx) {
  const int64_t Og = g.Og();
  // One image per thread: windows overlap within an image.
  parallel_rows(g.N, g.OH * g.OW * g.KH * g.KW * g.Cg * g.O, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      std::fill(gx + n * g.H * g.W * g.C, gx + (n + 1) * g.H * g.W * g.C, T(0));
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const T* gp = gy + ((n * g.OH + oh) * g.OW + ow) * g.O;
          for (int64_t kh = 0; kh < g.KH; ++kh) {
            int64_t ih = in_pos(oh, kh, g.sh, g.dh, g.pt, g.H);
            if (ih < 0) continue;
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              int64_t iw = in_pos(ow, kw, g.sw, g.dw, g.pl, g.W);
              if (iw < 0) continue;
              T* xp = gx + ((n * g.H + ih) * g.W + iw) * g.C;
              const T* wp = w + (kh * g.KW + kw) * g.Cg * g.O;
              for (int64_t gr = 0; gr < g.G; ++gr)
                for (int64_t ic = 0; ic < g.Cg; ++ic) {
                  const T* wr = wp + ic * g.O + gr * Og;
                  const T* gr_ = gp + gr * Og;
                  T acc = 0;
                  for (int64_t o = 0; o < Og; ++o) acc += gr_[o] * wr[o];
                  xp[gr * g.Cg + ic] += acc;
                }
            }
          }
        }
    }
  });
}

template <class T>
void conv_bwd_weights_naive(const Geom& g, const T* x, const T* gy, T* gw) {
  const int64_t Og = g.Og();
  // One kernel tap per thread: each owns its [Cg, O] slice of the weight gradient.
  parallel_rows(g.KH * g.KW, g.N * g.OH * g.OW * g.Cg * g.O, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      int64_t kh = t / g.KW, kw = t % g.KW;
      T* wp = gw + t * g.Cg * g.O;
      std::fill(wp, wp + g.Cg * g.O, T(0));
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          int64_t ih = in_pos(oh, kh, g.sh, g.dh, g.pt, g.H);
          if (ih < 0) continue;
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            int64_t iw = in_pos(ow, kw, g.sw, g.dw, g.pl, g.W);
            if (iw < 0) continue;
            const T* xp = x + ((n * g.H + ih) * g.W + iw) * g.C;
            const T* gp = gy + ((n * g.OH + oh) * g.OW + ow) * g.O;
            for (int64_t gr = 0; gr < g.G; ++gr)
              for (int64_t ic = 0; ic < g.Cg; ++ic) {
                T xv = xp[gr * g.Cg + ic];
                T* wr = wp + ic * g.O + gr * Og;
                const T* gr_ = gp + gr * Og;
                for (int64_t o = 0; o < Og; ++o) wr[o] += xv * gr_[o];
              }
          }
        }
    }
  });
}

// --- kernels

/// Runs f on float32 copies of 16-bit float tensors and writes the result back.
template <class F>
void as_f32(const Tensor& out, std::initializer_list<Tensor> in, F f) {
  std::vector<Tensor> ins;
  for (const Tensor& t : in) ins.push_back(as_dtype(t, DType::f32).contiguous());
  if (out.dtype() == DType::f32) {
    f(ins, out);
    return;
  }
  Tensor tmp = Tensor::empty(out.shape(), DType::f32);
  f(ins, tmp);
  cast_copy(tmp, out);
}

template <class T>
void relu_inplace(T* y, int64_t n) {
  parallel_for(n, 32768, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = y[i] < T(0) ? T(0) : y[i];
  });
}

void conv_forward_kernel(KernelContext& k) {
  const Tensor& y = k.output();
  bool has_bias = k.num_inputs() > 2;
  // conv2d_fused: ReLU after the bias, on the output while it is in cache. Not oneDNN's ReLU
  // post-op: that one turns NaN into 0, and the separate relu kernel keeps NaN (a NaN loss must
  // show, so that training stops).
  bool relu = k.attrs().has("activation");
  Geom g = make_geom(k.input(0).shape(), k.input(1).shape(), y.shape(), k.attrs());
  if (y.numel() == 0) return;
  if (g.C == 0 || g.KH * g.KW == 0) {  // nothing to sum: the bias or zeros
    if (has_bias)
      cast_copy(k.input(2), y);
    else
      y.zero_();
    if (relu)
      visit_float(y.dtype(), k.name(), [&]<class T>() {
        T* p = y.data<T>();
        for (int64_t i = 0; i < y.numel(); ++i)
          if (static_cast<acc_t<T>>(p[i]) < acc_t<T>(0)) p[i] = static_cast<T>(acc_t<T>(0));
      });
    return;
  }
  if (y.dtype() == DType::f64) {
    Tensor x = k.input(0).contiguous(), w = k.input(1).contiguous();
    Tensor b = has_bias ? k.input(2).contiguous() : Tensor();
    conv_fwd_naive<double>(g, x.data<double>(), w.data<double>(), has_bias ? b.data<double>() : nullptr,
                           y.data<double>());
    if (relu) relu_inplace(y.data<double>(), y.numel());
    return;
  }
  auto run = [&](const std::vector<Tensor>& in, const Tensor& out) {
    const Tensor* b = has_bias ? &in[2] : nullptr;
    if (!conv_fwd_f32(g, in[0], in[1], b, out))
      conv_fwd_naive<float>(g, in[0].data<float>(), in[1].data<float>(), b ? b->data<float>() : nullptr,
                            out.data<float>());
    if (relu) relu_inplace(out.data<float>(), out.numel());
  };
  if (has_bias)
    as_f32(y, {k.input(0), k.input(1), k.input(2)}, run);
  else
    as_f32(y, {k.input(0), k.input(1)}, run);
}

}  // namespace

GLIA_KERNEL(conv2d, CPU, conv_forward_kernel);
GLIA_KERNEL(conv2d_bias, CPU, conv_forward_kernel);
GLIA_KERNEL(conv2d_fused, CPU, conv_forward_kernel);

GLIA_KERNEL(conv2d_input_grad, CPU, [](KernelContext& k) {
  const Tensor& gx = k.output();
  const Tensor &gy = k.input(0), &w = k.input(1);
  Geom g = make_geom(gx.shape(), w.shape(), gy.shape(), k.attrs());
  if (gx.numel() == 0) return;
  if (gy.numel() == 0 || g.O == 0) {
    gx.zero_();
    return;
  }
  if (gx.dtype() == DType::f64) {
    Tensor a = gy.contiguous(), b = w.contiguous();
    conv_bwd_data_naive<double>(g, a.data<double>(), b.data<double>(), gx.data<double>());
    return;
  }
  as_f32(gx, {gy, w}, [&](const std::vector<Tensor>& in, const Tensor& out) {
    if (!conv_bwd_data_f32(g, in[0], in[1], out))
      conv_bwd_data_naive<float>(g, in[0].data<float>(), in[1].data<float>(), out.data<float>());
  });
});

GLIA_KERNEL(conv2d_weight_grad, CPU, [](KernelContext& k) {
  const Tensor& gw = k.output();
  const Tensor &x = k.input(0), &gy = k.input(1);
  Geom g = make_geom(x.shape(), gw.shape(), gy.shape(), k.attrs());
  if (gw.numel() == 0) return;
  if (gy.numel() == 0) {
    gw.zero_();
    return;
  }
  if (gw.dtype() == DType::f64) {
    Tensor a = x.contiguous(), b = gy.contiguous();
    conv_bwd_weights_naive<double>(g, a.data<double>(), b.data<double>(), gw.data<double>());
    return;
  }
  as_f32(gw, {x, gy}, [&](const std::vector<Tensor>& in, const Tensor& out) {
    if (!conv_bwd_weights_f32(g, in[0], in[1], out))
      conv_bwd_weights_naive<float>(g, in[0].data<float>(), in[1].data<float>(), out.data<float>());
  });
});

}  // namespace glia::cpu
