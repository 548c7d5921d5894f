// The built-in Keras layers: each forward against plain loops in double that read the
// layer's own weights; lazy build, weight bookkeeping, freezing, regularization, default
// names, configs and the layer registry.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "nn/nn_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;
namespace L = glia::layers;

namespace {

using Idx = std::vector<int64_t>;

Idx shape_of(const Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

// --- convolution and pooling references (NHWC, TensorFlow's "same": output ceil(in / stride),
// --- the odd padding cell at the end)

struct Window {
  int64_t out, pad_before;
};
Window window(int64_t in, int64_t k, int64_t stride, int64_t dilation, bool same) {
  int64_t ek = (k - 1) * dilation + 1;
  if (!same) return {(in - ek) / stride + 1, 0};
  int64_t out = (in + stride - 1) / stride;
  int64_t total = std::max<int64_t>((out - 1) * stride + ek - in, 0);
  return {out, total / 2};
}

struct ConvSpec {
  int64_t sh = 1, sw = 1, dh = 1, dw = 1, groups = 1;
  bool same = false;
};

/// x [N, H, W, C], kernel [KH, KW, C / groups, F], bias [F] or empty.
std::vector<double> ref_conv2d(const std::vector<double>& x, const Idx& xs, const std::vector<double>& k, const Idx& ks,
                               const std::vector<double>& bias, const ConvSpec& o, Idx* out_shape) {
  int64_t N = xs[0], H = xs[1], W = xs[2], KH = ks[0], KW = ks[1], Cg = ks[2], F = ks[3];
  Window wh = window(H, KH, o.sh, o.dh, o.same), ww = window(W, KW, o.sw, o.dw, o.same);
  *out_shape = {N, wh.out, ww.out, F};
  std::vector<double> y(static_cast<size_t>(N * wh.out * ww.out * F));
  int64_t Fg = F / o.groups;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oh = 0; oh < wh.out; ++oh)
      for (int64_t ow = 0; ow < ww.out; ++ow)
        for (int64_t f = 0; f < F; ++f) {
          int64_t g = f / Fg;
          double acc = bias.empty() ? 0.0 : bias[static_cast<size_t>(f)];
          for (int64_t i = 0; i < KH; ++i)
            for (int64_t j = 0; j < KW; ++j) {
              int64_t ih = oh * o.sh - wh.pad_before + i * o.dh, iw = ow * o.sw - ww.pad_before + j * o.dw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              for (int64_t c = 0; c < Cg; ++c)
                acc += x[offset_of(xs, {n, ih, iw, g * Cg + c})] * k[offset_of(ks, {i, j, c, f})];
            }
          y[offset_of(*out_shape, {n, oh, ow, f})] = acc;
        }
  return y;
}

/// Pooling over [N, H, W, C]; padded cells are ignored (max) and not counted (average), as Keras.
std::vector<double> ref_pool(const std::vector<double>& x, const Idx& xs, int64_t ph, int64_t pw, int64_t sh,
                             int64_t sw, bool same, bool is_max, Idx* out_shape) {
  int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3];
  Window wh = window(H, ph, sh, 1, same), ww = window(W, pw, sw, 1, same);
  *out_shape = {N, wh.out, ww.out, C};
  std::vector<double> y;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oh = 0; oh < wh.out; ++oh)
      for (int64_t ow = 0; ow < ww.out; ++ow)
        for (int64_t c = 0; c < C; ++c) {
          double best = -INFINITY, total = 0;
          int count = 0;
          for (int64_t i = 0; i < ph; ++i)
            for (int64_t j = 0; j < pw; ++j) {
              int64_t ih = oh * sh - wh.pad_before + i, iw = ow * sw - ww.pad_before + j;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              double v = x[offset_of(xs, {n, ih, iw, c})];
              best = std::max(best, v);
              total += v;
              ++count;
            }
          y.push_back(is_max ? best : total / count);
        }
  return y;
}

// --- translation reference (Keras's fill modes, written as repeated reflection)

int64_t fill_coord(int64_t i, int64_t n, const std::string& mode) {
  if (mode == "constant") return i >= 0 && i < n ? i : -1;
  if (mode == "nearest") return std::clamp<int64_t>(i, 0, n - 1);
  if (mode == "wrap") return ((i % n) + n) % n;
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;  // reflect: d c b a | a b c d | d c b a
  return i;
}

/// Image n of x [N, H, W, C] moved down by dy and right by dx (bilinear for fractional shifts).
std::vector<double> ref_translate(const std::vector<double>& x, const Idx& xs, int64_t n, double dy, double dx,
                                  const std::string& mode, double fill) {
  int64_t H = xs[1], W = xs[2], C = xs[3];
  auto at = [&](int64_t y, int64_t xx, int64_t c) {
    int64_t fy = fill_coord(y, H, mode), fx = fill_coord(xx, W, mode);
    return fy < 0 || fx < 0 ? fill : x[offset_of(xs, {n, fy, fx, c})];
  };
  std::vector<double> out;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t xx = 0; xx < W; ++xx)
      for (int64_t c = 0; c < C; ++c) {
        double sy = static_cast<double>(y) - dy, sx = static_cast<double>(xx) - dx;
        auto y0 = static_cast<int64_t>(std::floor(sy)), x0 = static_cast<int64_t>(std::floor(sx));
        double ay = sy - static_cast<double>(y0), ax = sx - static_cast<double>(x0);
        double v = 0;
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) {
            double wgt = (a ? ay : 1 - ay) * (b ? ax : 1 - ax);
            if (wgt != 0) v += wgt * at(y0 + a, x0 + b, c);
          }
        out.push_back(v);
      }
  return out;
}

std::vector<double> image(const std::vector<double>& x, const Idx& xs, int64_t n) {
  size_t per = static_cast<size_t>(xs[1] * xs[2] * xs[3]);
  return {x.begin() + static_cast<std::ptrdiff_t>(per * static_cast<size_t>(n)),
          x.begin() + static_cast<std::ptrdiff_t>(per * static_cast<size_t>(n + 1))};
}

/// Image n mirrored along the given axes (1 = height, 2 = width).
std::vector<double> mirrored(const std::vector<double>& x, const Idx& xs, int64_t n, bool h, bool w) {
  std::vector<double> out;
  for (int64_t y = 0; y < xs[1]; ++y)
    for (int64_t xx = 0; xx < xs[2]; ++xx)
      for (int64_t c = 0; c < xs[3]; ++c)
        out.push_back(x[offset_of(xs, {n, h ? xs[1] - 1 - y : y, w ? xs[2] - 1 - xx : xx, c})]);
  return out;
}

// --- a custom layer, registered for configs

class TimesConst : public Layer {
 public:
  explicit TimesConst(double c) : c_(c) {}
  std::string class_name() const override { return "TimesConst"; }
  void build(const std::vector<Shape>& s) override { w = &add_weight("w", {s[0].back()}, initializers::get("ones")); }
  Tensor call(const Tensor& x, bool) override { return x * w->value * c_; }
  Config config() const override {
    Config c = Layer::config();
    c["c"] = c_;
    return c;
  }
  static LayerPtr from_config(const Config& c) { return std::make_shared<TimesConst>(c.at("c").get<double>()); }
  Variable* w = nullptr;

 private:
  double c_;
};

/// A layer class used only by the naming test, so that its name counter starts at zero.
class GliaNamingProbe2D : public Layer {
 public:
  std::string class_name() const override { return "GliaNamingProbe2D"; }
  Tensor call(const Tensor& x, bool) override { return x; }
};

}  // namespace

GLIA_REGISTER_LAYER(TimesConst);

// ================================================================ Dense

TEST(LayersDense, ForwardMatchesLoopsOnAnyLeadingShapeAndLayout) {
  struct Case {
    Idx shape;
    int64_t units;
    bool bias;
    std::string act;
    double (*f)(double);
  };
  std::vector<Case> cases = {
      {{4, 3}, 5, true, "", [](double v) { return v; }},
      {{2, 3, 6}, 4, true, "tanh", [](double v) { return std::tanh(v); }},
      {{3, 1, 2, 7}, 1, false, "relu", [](double v) { return std::max(v, 0.0); }},
      {{1, 2}, 3, true, "sigmoid", [](double v) { return 1 / (1 + std::exp(-v)); }},
  };
  for (const Case& c : cases)
    for (Layout layout : {Layout::Contiguous, Layout::Permuted}) {
      SCOPED_TRACE(to_string(IntList(c.shape)) + " " + layout_name(layout) + " " + c.act);
      L::Dense d(c.units, {.activation = c.act, .use_bias = c.bias});
      Tensor x = make_input(c.shape, layout, -1, 1, DType::f32);
      d(x);  // builds
      auto w = randomize_weights(*d);
      Tensor y = d(x);
      int64_t in = c.shape.back(), rows = numel(IntList(c.shape)) / in;
      Idx want_shape = c.shape;
      want_shape.back() = c.units;
      EXPECT_EQ(shape_of(y), want_shape);
      std::vector<double> xv = values(x), want;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t u = 0; u < c.units; ++u) {
          double acc = c.bias ? w[1][static_cast<size_t>(u)] : 0.0;
          for (int64_t i = 0; i < in; ++i)
            acc += xv[static_cast<size_t>(r * in + i)] * w[0][static_cast<size_t>(i * c.units + u)];
          want.push_back(c.f(acc));
        }
      EXPECT_TRUE(all_close(y, want, 1e-5, 1e-5));
    }
}

TEST(LayersDense, BuildsLazilyWithKerasLayoutAndRejectsAnotherFeatureSize) {
  L::Dense d(7);
  EXPECT_FALSE(d->built());
  EXPECT_TRUE(d->weights().empty());
  d(rnd32({2, 5}));
  ASSERT_TRUE(d->built());
  ASSERT_EQ(d->weights().size(), 2u);
  EXPECT_EQ(d->weights()[0]->name, "kernel");
  EXPECT_EQ(shape_of(d->kernel->value), (Idx{5, 7}));
  EXPECT_EQ(d->weights()[1]->name, "bias");
  EXPECT_EQ(shape_of(d->bias->value), (Idx{7}));
  EXPECT_EQ(values(d->bias->value), std::vector<double>(7, 0.0));  // Keras's default "zeros"
  EXPECT_EQ(d->count_params(), 5 * 7 + 7);
  // Another batch size is fine; another feature size names the layer and both shapes.
  EXPECT_EQ(shape_of(d(rnd32({9, 5}))), (Idx{9, 7}));
  std::string msg = error_of<ShapeError>([&] { d(rnd32({2, 6})); });
  EXPECT_THAT(msg, HasSubstr(d->name()));
  EXPECT_THAT(msg, HasSubstr("[5]"));
  EXPECT_THAT(msg, HasSubstr("[6]"));
  EXPECT_EQ(shape_of(d->kernel->value), (Idx{5, 7}));  // not rebuilt
}

TEST(LayersDense, BadArguments) {
  int64_t no_units = 0;  // (a literal 0 would also read as the empty holder's nullptr)
  EXPECT_THROW(L::Dense{no_units}, ValueError);
  EXPECT_THAT(error_of<ValueError>([] { L::Dense(3, {.activation = "relux"}); }), HasSubstr("relux"));
  EXPECT_THAT(error_of<ValueError>([] { L::Dense(3, {.kernel_initializer = "glorot_uniformm"}); }),
              HasSubstr("glorot_uniformm"));
}

// ================================================================ convolutions

TEST(LayersConv2D, ForwardMatchesLoopsForPaddingStridesDilationAndGroups) {
  struct Case {
    Idx x;  // NHWC
    int64_t filters;
    Size2 k;
    L::Conv2DOptions o;
  };
  std::vector<Case> cases = {
      {{2, 6, 7, 3}, 4, {3, 3}, {}},
      {{2, 6, 7, 3}, 4, {3, 2}, {.padding = "same"}},
      {{1, 7, 8, 2}, 3, {3, 3}, {.strides = {2, 2}, .padding = "same"}},
      {{1, 8, 7, 2}, 3, {2, 3}, {.strides = {2, 3}, .padding = "valid"}},
      {{2, 9, 9, 2}, 2, {3, 3}, {.padding = "same", .dilation_rate = 2}},
      {{1, 9, 8, 4}, 6, {3, 3}, {.strides = 1, .padding = "valid", .dilation_rate = {2, 1}, .groups = 2}},
      {{2, 5, 5, 6}, 3, {1, 1}, {.padding = "same", .groups = 3, .use_bias = false}},
      {{1, 5, 6, 4}, 4, {3, 3}, {.strides = 2, .padding = "same", .groups = 4, .activation = "relu"}},
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    SCOPED_TRACE("case " + std::to_string(ci));
    L::Conv2D conv(c.filters, c.k, c.o);
    Tensor x = make_input(c.x, ci % 2 ? Layout::Permuted : Layout::Contiguous, -1, 1, DType::f32);
    conv(x);
    EXPECT_EQ(shape_of(conv->kernel->value), (Idx{c.k.h, c.k.w, c.x[3] / c.o.groups, c.filters}));
    auto w = randomize_weights(*conv);
    Tensor y = conv(x);
    Idx ys;
    ConvSpec spec{c.o.strides.h,       c.o.strides.w, c.o.dilation_rate.h,
                  c.o.dilation_rate.w, c.o.groups,    c.o.padding == "same"};
    std::vector<double> want = ref_conv2d(values(x), c.x, w[0], shape_of(conv->kernel->value),
                                          c.o.use_bias ? w[1] : std::vector<double>{}, spec, &ys);
    if (c.o.activation.name() == "relu")
      for (double& v : want) v = std::max(v, 0.0);
    EXPECT_EQ(shape_of(y), ys);
    EXPECT_TRUE(all_close(y, want, 1e-4, 1e-5));
  }
}

TEST(LayersConv2D, ErrorsNameTheLayer) {
  EXPECT_THROW(L::Conv2D(4, 3, {.padding = "full"}), ValueError);
  L::Conv2D c(4, 3);
  EXPECT_THROW(c(rnd32({2, 8, 3})), ShapeError);  // rank 3 input for a 2-D conv: no build
  EXPECT_FALSE(c->built());
  L::Conv2D g(4, 3, {.groups = 3});
  EXPECT_THAT(error_of<ValueError>([&] { g(rnd32({1, 5, 5, 4})); }), HasSubstr("groups"));
  L::Conv2D ok(2, 3);
  ok(rnd32({1, 5, 5, 3}));
  std::string msg = error_of<ShapeError>([&] { ok(rnd32({1, 5, 5, 2})); });
  EXPECT_THAT(msg, HasSubstr(ok->name()));
  EXPECT_THAT(msg, HasSubstr("[5, 5, 3]"));
  EXPECT_THAT(msg, HasSubstr("[5, 5, 2]"));
  // Another image size is fine (the kernel does not depend on it).
  EXPECT_EQ(shape_of(ok(rnd32({1, 7, 6, 3}))), (Idx{1, 5, 4, 2}));
}

TEST(LayersConv1D, ForwardMatchesLoopsIncludingCausalPadding) {
  struct Case {
    Idx x;  // [N, steps, C]
    int64_t filters, k;
    L::Conv1DOptions o;
  };
  std::vector<Case> cases = {
      {{2, 9, 3}, 4, 3, {}},
      {{2, 9, 3}, 2, 4, {.padding = "same"}},
      {{1, 10, 2}, 3, 3, {.strides = 2, .padding = "same"}},
      {{2, 8, 2}, 3, 3, {.padding = "causal"}},
      {{1, 11, 4}, 2, 2, {.strides = 2, .padding = "causal", .dilation_rate = 3, .groups = 2}},
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    SCOPED_TRACE("case " + std::to_string(ci));
    L::Conv1D conv(c.filters, c.k, c.o);
    Tensor x = make_input(c.x, ci % 2 ? Layout::Permuted : Layout::Contiguous, -1, 1, DType::f32);
    conv(x);
    Idx ks = shape_of(conv->kernel->value);
    EXPECT_EQ(ks, (Idx{c.k, c.x[2] / c.o.groups, c.filters}));
    auto w = randomize_weights(*conv);
    Tensor y = conv(x);
    int64_t N = c.x[0], T = c.x[1], Cg = ks[1], F = c.filters, Fg = F / c.o.groups, d = c.o.dilation_rate;
    int64_t ek = (c.k - 1) * d + 1, out, pad;
    if (c.o.padding == "causal") {
      pad = ek - 1;
      out = (T + pad - ek) / c.o.strides + 1;
    } else {
      Window wd = window(T, c.k, c.o.strides, d, c.o.padding == "same");
      out = wd.out;
      pad = wd.pad_before;
    }
    std::vector<double> xv = values(x), want;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t t = 0; t < out; ++t)
        for (int64_t f = 0; f < F; ++f) {
          double acc = w[1][static_cast<size_t>(f)];
          for (int64_t i = 0; i < c.k; ++i) {
            int64_t s = t * c.o.strides - pad + i * d;
            if (s < 0 || s >= T) continue;
            for (int64_t ch = 0; ch < Cg; ++ch)
              acc += xv[offset_of(c.x, {n, s, (f / Fg) * Cg + ch})] * w[0][offset_of(ks, {i, ch, f})];
          }
          want.push_back(acc);
        }
    EXPECT_EQ(shape_of(y), (Idx{N, out, F}));
    EXPECT_TRUE(all_close(y, want, 1e-4, 1e-5));
  }
}

TEST(LayersDepthwiseConv2D, ForwardMatchesLoopsWithDepthMultiplier) {
  struct Case {
    Idx x;
    Size2 k;
    L::DepthwiseConv2DOptions o;
  };
  std::vector<Case> cases = {
      {{2, 6, 5, 3}, 3, {}},
      {{1, 7, 7, 2}, {3, 2}, {.strides = 2, .padding = "same", .depth_multiplier = 3}},
      {{2, 8, 8, 3}, 3, {.padding = "same", .depth_multiplier = 2, .dilation_rate = 2, .use_bias = false}},
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    SCOPED_TRACE("case " + std::to_string(ci));
    L::DepthwiseConv2D dw(c.k, c.o);
    Tensor x = make_input(c.x, ci % 2 ? Layout::Permuted : Layout::Contiguous, -1, 1, DType::f32);
    dw(x);
    int64_t C = c.x[3], M = c.o.depth_multiplier;
    Idx ks = shape_of(dw->kernel->value);
    EXPECT_EQ(ks, (Idx{c.k.h, c.k.w, C, M}));
    if (c.o.use_bias) {
      EXPECT_EQ(shape_of(dw->bias->value), (Idx{C * M}));
    }
    auto w = randomize_weights(*dw);
    Tensor y = dw(x);
    bool same = c.o.padding == "same";
    Window wh = window(c.x[1], c.k.h, c.o.strides.h, c.o.dilation_rate.h, same);
    Window ww = window(c.x[2], c.k.w, c.o.strides.w, c.o.dilation_rate.w, same);
    std::vector<double> xv = values(x), want;
    for (int64_t n = 0; n < c.x[0]; ++n)
      for (int64_t oh = 0; oh < wh.out; ++oh)
        for (int64_t ow = 0; ow < ww.out; ++ow)
          for (int64_t ch = 0; ch < C; ++ch)
            for (int64_t m = 0; m < M; ++m) {  // output channel ch * M + m, as Keras
              double acc = c.o.use_bias ? w[1][static_cast<size_t>(ch * M + m)] : 0.0;
              for (int64_t i = 0; i < c.k.h; ++i)
                for (int64_t j = 0; j < c.k.w; ++j) {
                  int64_t ih = oh * c.o.strides.h - wh.pad_before + i * c.o.dilation_rate.h;
                  int64_t iw = ow * c.o.strides.w - ww.pad_before + j * c.o.dilation_rate.w;
                  if (ih < 0 || ih >= c.x[1] || iw < 0 || iw >= c.x[2]) continue;
                  acc += xv[offset_of(c.x, {n, ih, iw, ch})] * w[0][offset_of(ks, {i, j, ch, m})];
                }
              want.push_back(acc);
            }
    EXPECT_EQ(shape_of(y), (Idx{c.x[0], wh.out, ww.out, C * M}));
    EXPECT_TRUE(all_close(y, want, 1e-4, 1e-5));
  }
}

// ================================================================ pooling

TEST(LayersPooling, MaxAndAverageMatchLoops) {
  struct Case {
    Idx x;
    Size2 pool;
    std::optional<Size2> strides;
    std::string padding;
  };
  std::vector<Case> cases = {
      {{2, 6, 6, 3}, 2, {}, "valid"},
      {{1, 7, 5, 2}, 2, {}, "valid"},  // odd sizes: the last row / column is dropped
      {{1, 7, 5, 2}, 2, {}, "same"},   // ... or pooled over the cells that exist
      {{2, 8, 7, 1}, {3, 2}, Size2{2, 1}, "same"},
      {{1, 9, 9, 2}, 3, Size2{2, 2}, "valid"},
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    SCOPED_TRACE("case " + std::to_string(ci));
    Tensor x = make_input(c.x, ci % 2 ? Layout::Permuted : Layout::Contiguous, -1, 1, DType::f32);
    Size2 st = c.strides.value_or(c.pool);
    for (bool is_max : {true, false}) {
      Tensor y = is_max ? L::MaxPooling2D(c.pool, {.strides = c.strides, .padding = c.padding})(x)
                        : L::AveragePooling2D(c.pool, {.strides = c.strides, .padding = c.padding})(x);
      Idx ys;
      std::vector<double> want =
          ref_pool(values(x), c.x, c.pool.h, c.pool.w, st.h, st.w, c.padding == "same", is_max, &ys);
      EXPECT_EQ(shape_of(y), ys);
      EXPECT_TRUE(all_close(y, want, 1e-5, 1e-6)) << (is_max ? "max" : "average");
    }
  }
  EXPECT_THROW(L::MaxPooling2D(2, {.padding = "full"}), ValueError);
  EXPECT_THROW(L::AveragePooling2D(2)(rnd32({4, 4, 4})), ShapeError);
}

TEST(LayersPooling, GlobalAverage) {
  Idx xs{2, 3, 5, 4};
  Tensor x = make_input(xs, Layout::Permuted, -1, 1, DType::f32);
  std::vector<double> xv = values(x), want;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 4; ++c) {
      double s = 0;
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t w = 0; w < 5; ++w) s += xv[offset_of(xs, {n, h, w, c})];
      want.push_back(s / 15);
    }
  Tensor y = L::GlobalAveragePooling2D()(x);
  EXPECT_EQ(shape_of(y), (Idx{2, 4}));
  EXPECT_TRUE(all_close(y, want, 1e-5, 1e-6));
  Tensor yk = L::GlobalAveragePooling2D(true)(x);
  EXPECT_EQ(shape_of(yk), (Idx{2, 1, 1, 4}));
  EXPECT_TRUE(all_close(yk.reshape({2, 4}), want, 1e-5, 1e-6));
}

// ================================================================ normalization

namespace {
struct Moments {
  std::vector<double> mean, var_biased, var_unbiased;
};
Moments moments_last_axis(const std::vector<double>& x, int64_t C) {
  auto M = static_cast<int64_t>(x.size()) / C;
  Moments m;
  for (int64_t c = 0; c < C; ++c) {
    double s = 0, ss = 0;
    for (int64_t r = 0; r < M; ++r) s += x[static_cast<size_t>(r * C + c)];
    double mu = s / static_cast<double>(M);
    for (int64_t r = 0; r < M; ++r) ss += std::pow(x[static_cast<size_t>(r * C + c)] - mu, 2);
    m.mean.push_back(mu);
    m.var_biased.push_back(ss / static_cast<double>(M));
    m.var_unbiased.push_back(ss / static_cast<double>(M - 1));
  }
  return m;
}
std::vector<double> normalize(const std::vector<double>& x, int64_t C, const std::vector<double>& mean,
                              const std::vector<double>& var, const std::vector<double>& gamma,
                              const std::vector<double>& beta, double eps) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    size_t c = i % static_cast<size_t>(C);
    y[i] = (x[i] - mean[c]) / std::sqrt(var[c] + eps) * gamma[c] + beta[c];
  }
  return y;
}
}  // namespace

TEST(LayersBatchNormalization, TrainingUsesBatchStatisticsAndUpdatesMovingAverages) {
  for (Idx xs : {Idx{4, 3, 5, 3}, Idx{16, 5}}) {
    SCOPED_TRACE(to_string(IntList(xs)));
    int64_t C = xs.back();
    L::BatchNormalization bn({.momentum = 0.9, .epsilon = 1e-3});
    Tensor x = make_input(xs, Layout::Permuted, -2, 3, DType::f32);
    bn(x);  // inference call: builds, changes nothing
    ASSERT_EQ(bn->weights().size(), 4u);
    EXPECT_EQ(bn->weights()[0]->name, "gamma");
    EXPECT_EQ(bn->weights()[1]->name, "beta");
    EXPECT_EQ(bn->weights()[2]->name, "moving_mean");
    EXPECT_EQ(bn->weights()[3]->name, "moving_variance");
    EXPECT_EQ(values(bn->moving_mean->value), std::vector<double>(static_cast<size_t>(C), 0.0));
    EXPECT_EQ(values(bn->moving_variance->value), std::vector<double>(static_cast<size_t>(C), 1.0));
    auto w = randomize_weights(*bn, 0.5, 1.5);
    std::vector<double> xv = values(x);
    Moments m = moments_last_axis(xv, C);
    Tensor y = bn(x, true);
    EXPECT_TRUE(all_close(y, normalize(xv, C, m.mean, m.var_biased, w[0], w[1], 1e-3), 1e-4, 1e-4));
    // Keras: moving = momentum * moving + (1 - momentum) * batch, with the unbiased batch variance.
    std::vector<double> mm, mv;
    for (size_t c = 0; c < static_cast<size_t>(C); ++c) {
      mm.push_back(0.9 * w[2][c] + 0.1 * m.mean[c]);
      mv.push_back(0.9 * w[3][c] + 0.1 * m.var_unbiased[c]);
    }
    EXPECT_TRUE(all_close(bn->moving_mean->value, mm, 1e-5, 1e-6));
    EXPECT_TRUE(all_close(bn->moving_variance->value, mv, 1e-5, 1e-6));
    // A second step compounds.
    bn(x, true);
    for (size_t c = 0; c < static_cast<size_t>(C); ++c) {
      mm[c] = 0.9 * mm[c] + 0.1 * m.mean[c];
      mv[c] = 0.9 * mv[c] + 0.1 * m.var_unbiased[c];
    }
    EXPECT_TRUE(all_close(bn->moving_mean->value, mm, 1e-5, 1e-6));
    EXPECT_TRUE(all_close(bn->moving_variance->value, mv, 1e-5, 1e-6));
    // Inference normalizes with the moving statistics and leaves them alone.
    Tensor yi = bn(x, false);
    EXPECT_TRUE(all_close(yi, normalize(xv, C, mm, mv, w[0], w[1], 1e-3), 1e-4, 1e-4));
    EXPECT_TRUE(all_close(bn->moving_mean->value, mm, 1e-5, 1e-6));
    // Gradients reach gamma and beta, not the moving statistics.
    bn(x, true).sum().backward();
    EXPECT_TRUE(bn->gamma->value.grad().defined());
    EXPECT_TRUE(bn->beta->value.grad().defined());
    EXPECT_FALSE(bn->moving_mean->value.requires_grad());
  }
}

TEST(LayersBatchNormalization, FrozenLayerRunsInInferenceModeEvenWhenTraining) {
  L::BatchNormalization bn;
  Tensor x = rnd32({8, 4}, -2, 2);
  bn(x);
  auto w = randomize_weights(*bn, 0.5, 1.5);
  bn->set_trainable(false);
  EXPECT_TRUE(bn->trainable_weights().empty());
  EXPECT_EQ(bn->non_trainable_weights().size(), 4u);
  Tensor y = bn(x, true);
  EXPECT_TRUE(all_close(y, normalize(values(x), 4, w[2], w[3], w[0], w[1], 1e-3), 1e-4, 1e-4));
  EXPECT_EQ(values(bn->moving_mean->value), w[2]);
  EXPECT_EQ(values(bn->moving_variance->value), w[3]);
  bn->set_trainable(true);
  EXPECT_EQ(bn->trainable_weights().size(), 2u);
  bn(x, true);
  EXPECT_NE(values(bn->moving_mean->value), w[2]);
}

TEST(LayersBatchNormalization, WithoutScaleAndCenterAndBadAxis) {
  L::BatchNormalization bn({.momentum = 0.5, .epsilon = 0.01, .center = false, .scale = false});
  Tensor x = rnd32({6, 3}, -1, 2);
  Tensor y = bn(x, true);
  ASSERT_EQ(bn->weights().size(), 2u);
  EXPECT_TRUE(bn->trainable_weights().empty());
  EXPECT_EQ(bn->count_params(), 6);
  Moments m = moments_last_axis(values(x), 3);
  EXPECT_TRUE(all_close(y, normalize(values(x), 3, m.mean, m.var_biased, {1, 1, 1}, {0, 0, 0}, 0.01), 1e-4, 1e-5));
  EXPECT_THROW(L::BatchNormalization({.axis = 1})(rnd32({2, 3, 4})), ValueError);
}

TEST(LayersLayerNormalization, NormalizesTheLastAxis) {
  Idx xs{3, 4, 6};
  L::LayerNormalization ln;
  Tensor x = make_input(xs, Layout::Permuted, -2, 2, DType::f32);
  ln(x);
  ASSERT_EQ(ln->weights().size(), 2u);
  EXPECT_EQ(shape_of(ln->gamma->value), (Idx{6}));
  auto w = randomize_weights(*ln);
  std::vector<double> xv = values(x), want;
  for (size_t r = 0; r < 12; ++r) {
    double mu = 0, var = 0;
    for (size_t i = 0; i < 6; ++i) mu += xv[r * 6 + i] / 6;
    for (size_t i = 0; i < 6; ++i) var += std::pow(xv[r * 6 + i] - mu, 2) / 6;
    for (size_t i = 0; i < 6; ++i) want.push_back((xv[r * 6 + i] - mu) / std::sqrt(var + 1e-3) * w[0][i] + w[1][i]);
  }
  Tensor y = ln(x, true);
  EXPECT_TRUE(all_close(y, want, 1e-4, 1e-5));
  EXPECT_TRUE(all_close(ln(x, false), y, 0, 0));  // no training behaviour
  EXPECT_THROW(L::LayerNormalization({.axis = 1})(rnd32({2, 3, 4})), ValueError);
}

// ================================================================ Embedding, Dropout, Rescaling

TEST(LayersEmbedding, LooksUpIdsOfAnyShapeAndDType) {
  L::Embedding e(10, 4);
  Tensor ids = tensor<int64_t>({3, 0, 9, 9, 2, 5}, {2, 3});
  Tensor y = e(ids);
  EXPECT_EQ(shape_of(e->embeddings->value), (Idx{10, 4}));
  auto w = randomize_weights(*e);
  auto check = [&](const Tensor& in, const std::vector<int64_t>& flat_ids) {
    Tensor out = e(in);
    Idx want_shape = shape_of(in);
    want_shape.push_back(4);
    EXPECT_EQ(shape_of(out), want_shape);
    std::vector<double> want;
    for (int64_t id : flat_ids)
      for (size_t j = 0; j < 4; ++j) want.push_back(w[0][static_cast<size_t>(id) * 4 + j]);
    EXPECT_TRUE(all_close(out, want, 0, 0));
  };
  check(ids, {3, 0, 9, 9, 2, 5});
  check(tensor<int32_t>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2}), {1, 2, 3, 4, 5, 6, 7, 8});  // other rank
  check(tensor<int32_t>({7, 1, 0}, {3, 1}), {7, 1, 0});
  check(tensor<float>({4.0f, 8.0f, 0.0f, 1.0f}, {2, 2}), {4, 8, 0, 1});  // float ids, as Keras feeds them
  check(tensor<int64_t>({6, 6, 6, 6, 6, 6, 6, 6, 6, 6}, {1, 10}), std::vector<int64_t>(10, 6));  // longer sequence
  EXPECT_THAT(error_of<ValueError>([&] { e(tensor<int64_t>({1, 10}, {1, 2})); }), HasSubstr("10"));
  EXPECT_THAT(error_of<ValueError>([&] { e(tensor<int64_t>({-1}, {1})); }), HasSubstr("-1"));
  EXPECT_THROW(L::Embedding(0, 3), ValueError);
}

TEST(LayersEmbedding, GradientReachesOnlyTheRowsUsed) {
  L::Embedding e(5, 2);
  e(tensor<int64_t>({1, 3, 1}, {3})).sum().backward();
  std::vector<double> g = values(e->embeddings->value.grad());
  EXPECT_EQ(g, (std::vector<double>{0, 0, 2, 2, 0, 0, 1, 1, 0, 0}));
}

TEST(LayersDropout, DropsAndScalesOnlyInTraining) {
  L::Dropout d(0.3);
  Tensor x = rnd32({200, 50}, 0.5, 1.5);
  Tensor yi = d(x);
  EXPECT_EQ(values(yi), values(x));
  Tensor y = d(x, true);
  std::vector<double> xv = values(x), yv = values(y);
  int64_t zeros = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0) {
      ++zeros;
      continue;
    }
    ASSERT_NEAR(yv[i], xv[i] / 0.7, 1e-5 * xv[i]) << i;
  }
  EXPECT_NEAR(static_cast<double>(zeros) / static_cast<double>(xv.size()), 0.3, 0.03);
  EXPECT_NE(values(d(x, true)), yv);  // a new mask each call
  EXPECT_EQ(values(L::Dropout(0.0)(x, true)), xv);
  EXPECT_THROW(L::Dropout(1.0), ValueError);
  EXPECT_THROW(L::Dropout(-0.1), ValueError);
}

TEST(LayersRescaling, ScalesAndOffsetsAnyDType) {
  Tensor x = rnd32({3, 4}, -5, 5);
  std::vector<double> want;
  for (double v : values(x)) want.push_back(v * 0.5 - 1.0);
  EXPECT_TRUE(all_close(L::Rescaling(0.5, -1.0)(x), want, 1e-6, 1e-6));
  Tensor u8 = tensor<uint8_t>({0, 128, 255, 7}, {2, 2});
  Tensor y = L::Rescaling(1.0 / 255)(u8);
  EXPECT_TRUE(is_floating(y.dtype()));
  EXPECT_TRUE(all_close(y, {0.0, 128.0 / 255, 1.0, 7.0 / 255}, 1e-6, 1e-7));
}

// ================================================================ reshaping

TEST(LayersReshaping, FlattenReshapePermute) {
  Idx xs{2, 3, 4, 5};
  Tensor x = make_input(xs, Layout::Permuted, -1, 1, DType::f32);
  std::vector<double> xv = values(x);
  Tensor f = L::Flatten()(x);
  EXPECT_EQ(shape_of(f), (Idx{2, 60}));
  EXPECT_EQ(values(f), xv);
  Tensor r = L::Reshape({-1, 10})(x);
  EXPECT_EQ(shape_of(r), (Idx{2, 6, 10}));
  EXPECT_EQ(values(r), xv);
  EXPECT_EQ(shape_of(L::Reshape({5, 12})(x)), (Idx{2, 5, 12}));
  L::Reshape bad({7, -1});  // 60 is not a multiple of 7
  std::string msg = error_of<ShapeError>([&] { bad(x); });
  EXPECT_THAT(msg, HasSubstr(bad->name()));
  EXPECT_THAT(msg, HasSubstr("[7, -1]"));
  EXPECT_THROW(L::Reshape({5, 13})(x), ShapeError);
  EXPECT_THROW(L::Reshape({-1, -1})(x), ShapeError);
  EXPECT_EQ(shape_of(L::Reshape({-1})(zeros({0, 3, 4}))), (Idx{0, 12}));
  // Permute's dims are 1-based and leave the batch axis alone: y[n, k, i, j] = x[n, i, j, k].
  Tensor p = L::Permute({3, 1, 2})(x);
  EXPECT_EQ(shape_of(p), (Idx{2, 5, 3, 4}));
  std::vector<double> pv = values(p);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 5; ++k)
          ASSERT_EQ(pv[offset_of({2, 5, 3, 4}, {n, k, i, j})], xv[offset_of(xs, {n, i, j, k})]);
  EXPECT_THROW(L::Permute(Shape{0, 1}), ValueError);
  EXPECT_THROW(L::Permute(Shape{1, 1}), ValueError);
  EXPECT_THROW(L::Permute({2, 1})(x), ShapeError);
}

// ================================================================ merging

TEST(LayersMerge, AddMultiplyConcatenate) {
  Tensor a = rnd32({2, 3}), b = make_input({2, 3}, Layout::Permuted, -1, 1, DType::f32), c = rnd32({2, 3});
  std::vector<double> av = values(a), bv = values(b), cv = values(c), sum3, prod3;
  for (size_t i = 0; i < 6; ++i) {
    sum3.push_back(av[i] + bv[i] + cv[i]);
    prod3.push_back(av[i] * bv[i] * cv[i]);
  }
  EXPECT_TRUE(all_close(L::Add()({a, b, c}), sum3, 1e-6, 1e-7));
  EXPECT_TRUE(all_close(L::Multiply()({a, b, c}), prod3, 1e-6, 1e-7));
  Tensor d = rnd32({2, 5});
  Tensor cat = L::Concatenate()({a, d});
  EXPECT_EQ(shape_of(cat), (Idx{2, 8}));
  std::vector<double> dv = values(d), catv = values(cat);
  for (size_t r = 0; r < 2; ++r)
    for (size_t j = 0; j < 8; ++j) EXPECT_EQ(catv[r * 8 + j], j < 3 ? av[r * 3 + j] : dv[r * 5 + j - 3]);
  Tensor cat0 = L::Concatenate(1)({rnd32({2, 1, 3}), rnd32({2, 4, 3})});
  EXPECT_EQ(shape_of(cat0), (Idx{2, 5, 3}));

  L::Add add;
  std::string msg = error_of<ShapeError>([&] { add({a, d}); });
  EXPECT_THAT(msg, HasSubstr("[2, 3]"));
  EXPECT_THAT(msg, HasSubstr("[2, 5]"));
  EXPECT_THROW(L::Multiply()({a, rnd32({3, 3})}), ShapeError);
  EXPECT_THROW(L::Concatenate()({a, rnd32({3, 4})}), ShapeError);
  EXPECT_THROW(L::Add()(a), ValueError);          // one tensor
  EXPECT_THROW(L::Add()({a}), ValueError);        // a list of one
  EXPECT_THROW(L::Dense(2)({a, c}), ValueError);  // two inputs to a single-input layer
}

// ================================================================ Activation, InputLayer

TEST(LayersActivationAndInput, ApplyAndCheck) {
  Tensor x = rnd32({3, 4}, -3, 3);
  std::vector<double> want;
  for (double v : values(x)) want.push_back(std::max(v, 0.0));
  EXPECT_TRUE(all_close(L::Activation("relu")(x), want, 0, 0));
  EXPECT_TRUE(all_close(
      L::Activation(activations::Activation([](const Tensor& t) { return t * 3.0; }))(x),
      [&] {
        std::vector<double> w;
        for (double v : values(x)) w.push_back(3 * v);
        return w;
      }(),
      1e-6, 1e-6));
  EXPECT_THROW(L::Activation("nope"), ValueError);
  L::InputLayer in({4});
  EXPECT_TRUE(in(x).is_same(x));
  EXPECT_THROW(in(rnd32({3, 5})), ShapeError);
  L::InputLayer any({-1, 2});
  EXPECT_EQ(shape_of(any(rnd32({1, 7, 2}))), (Idx{1, 7, 2}));
}

// ================================================================ augmentation

TEST(LayersRandomFlip, InferenceIsIdentityAndTrainingMirrorsWholeImages) {
  Idx xs{64, 4, 5, 2};
  Tensor x = rnd32({64, 4, 5, 2});
  std::vector<double> xv = values(x);
  for (std::string mode : {"horizontal", "vertical", "horizontal_and_vertical"}) {
    SCOPED_TRACE(mode);
    L::RandomFlip flip(mode);
    EXPECT_EQ(values(flip(x)), xv);
    std::vector<double> yv = values(flip(x, true));
    std::set<int> seen;
    for (int64_t n = 0; n < xs[0]; ++n) {
      std::vector<double> got = image(yv, xs, n);
      int found = -1;
      for (int k = 0; k < 4 && found < 0; ++k) {
        bool h = k & 1, w = k & 2;  // h: mirrored top-bottom, w: left-right
        if ((h && mode == "horizontal") || (w && mode == "vertical")) continue;
        if (got == mirrored(xv, xs, n, h, w)) found = k;
      }
      ASSERT_GE(found, 0) << "image " << n << " is not a flip of its input";
      seen.insert(found);
    }
    EXPECT_EQ(seen.size(), mode == "horizontal_and_vertical" ? 4u : 2u);
  }
  EXPECT_THROW(L::RandomFlip("diagonal"), ValueError);
}

TEST(LayersRandomTranslation, IntegerShiftsMatchTheReferenceForEveryFillMode) {
  // The op under the layer, with chosen shifts: integer shifts move pixels exactly, also by more
  // than the image size (several reflections / wraps).
  Idx xs{4, 5, 7, 2};
  Tensor x = rnd32({4, 5, 7, 2});
  std::vector<double> xv = values(x);
  std::vector<double> dy = {2, -3, 0, 11}, dx = {-4, 1, 6, -15};
  for (std::string mode : {"reflect", "wrap", "nearest", "constant"})
    for (std::string interp : {"bilinear", "nearest"}) {
      SCOPED_TRACE(mode + " " + interp);
      Tensor y = translate_images(x, tensor<double>(dy, {4}), tensor<double>(dx, {4}),
                                  {.fill_mode = mode, .interpolation = interp, .fill_value = 0.25});
      std::vector<double> yv = values(y);
      for (int64_t n = 0; n < 4; ++n)
        EXPECT_EQ(image(yv, xs, n),
                  ref_translate(xv, xs, n, dy[static_cast<size_t>(n)], dx[static_cast<size_t>(n)], mode, 0.25));
    }
}

TEST(LayersRandomTranslation, FractionalShiftsInterpolate) {
  Idx xs{3, 6, 5, 3};
  Tensor x = rnd32({3, 6, 5, 3});
  std::vector<double> xv = values(x);
  std::vector<double> dy = {0.5, -1.25, 2.75}, dx = {-0.3, 1.6, -3.6};
  for (std::string mode : {"reflect", "wrap", "nearest", "constant"}) {
    SCOPED_TRACE(mode);
    Tensor y = translate_images(x, tensor<double>(dy, {3}), tensor<double>(dx, {3}), {.fill_mode = mode});
    std::vector<double> want;
    for (int64_t n = 0; n < 3; ++n) {
      auto im = ref_translate(xv, xs, n, dy[static_cast<size_t>(n)], dx[static_cast<size_t>(n)], mode, 0.0);
      want.insert(want.end(), im.begin(), im.end());
    }
    EXPECT_TRUE(all_close(y, want, 1e-5, 1e-6));
    // Nearest interpolation takes the closest pixel: a shift of -1.25 acts as -1, 1.6 as 2, 2.75 as 3.
    Tensor yn = translate_images(x, tensor<double>(dy, {3}), tensor<double>(dx, {3}),
                                 {.fill_mode = mode, .interpolation = "nearest"});
    std::vector<double> ynv = values(yn);
    EXPECT_EQ(image(ynv, xs, 1), ref_translate(xv, xs, 1, -1, 2, mode, 0.0));
    EXPECT_EQ(image(ynv, xs, 2), ref_translate(xv, xs, 2, 3, -4, mode, 0.0));
  }
}

TEST(LayersRandomTranslation, LayerIsIdentityInInferenceAndShiftsWithinTheFactorsInTraining) {
  Idx xs{24, 10, 12, 1};
  Tensor x = rnd32({24, 10, 12, 1});
  std::vector<double> xv = values(x);
  for (std::string mode : {"reflect", "wrap", "nearest", "constant"}) {
    SCOPED_TRACE(mode);
    L::RandomTranslation t(0.2, 0.25, {.fill_mode = mode, .interpolation = "nearest", .fill_value = 0.5});
    EXPECT_EQ(values(t(x)), xv);
    std::vector<double> yv = values(t(x, true));
    std::set<std::pair<int64_t, int64_t>> shifts;
    for (int64_t n = 0; n < xs[0]; ++n) {
      std::vector<double> got = image(yv, xs, n);
      bool found = false;
      // |dy| <= 0.2 * 10 and |dx| <= 0.25 * 12, rounded to the nearest pixel.
      for (int64_t sy = -2; sy <= 2 && !found; ++sy)
        for (int64_t sx = -3; sx <= 3 && !found; ++sx)
          if (got == ref_translate(xv, xs, n, static_cast<double>(sy), static_cast<double>(sx), mode, 0.5)) {
            found = true;
            shifts.insert({sy, sx});
          }
      ASSERT_TRUE(found) << "image " << n << " is not a shift of its input within the factors";
    }
    EXPECT_GE(shifts.size(), 4u);  // the shifts are drawn per image
  }
  EXPECT_THROW(L::RandomTranslation(1.5, 0.1), ValueError);
  EXPECT_THROW(L::RandomTranslation(0.1, 0.1, {.fill_mode = "mirror"}), ValueError);
}

TEST(LayersRandomTranslation, BilinearShiftsAreFractionalAndExact) {
  // Channels 0 and 1 hold the row and column coordinates, so the shift of each image can be read
  // back at the centre (bilinear interpolation of a linear ramp is exact inside the image);
  // channel 2 is noise that the reference must then reproduce everywhere.
  const int64_t N = 16, H = 16, W = 16;
  Idx xs{N, H, W, 3};
  std::vector<double> xv;
  Tensor noise = rnd32({N * H * W});
  std::vector<double> nv = values(noise);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        xv.push_back(static_cast<double>(y));
        xv.push_back(static_cast<double>(x));
        xv.push_back(nv[static_cast<size_t>((n * H + y) * W + x)]);
      }
  Tensor x = tensor<double>(xv, {N, H, W, 3}).to(DType::f32);
  for (std::string mode : {"reflect", "constant"}) {
    SCOPED_TRACE(mode);
    L::RandomTranslation t(0.25, 0.2, {.fill_mode = mode});
    std::vector<double> yv = values(t(x, true));
    int fractional = 0;
    for (int64_t n = 0; n < N; ++n) {
      double dy = 8 - yv[offset_of(xs, {n, 8, 8, 0})], dx = 8 - yv[offset_of(xs, {n, 8, 8, 1})];
      EXPECT_LE(std::abs(dy), 0.25 * H + 1e-4);
      EXPECT_LE(std::abs(dx), 0.2 * W + 1e-4);
      if (std::abs(dy - std::round(dy)) > 0.01 && std::abs(dx - std::round(dx)) > 0.01) ++fractional;
      std::vector<double> got = image(yv, xs, n), want = ref_translate(xv, xs, n, dy, dx, mode, 0.0);
      double err = 0;
      for (size_t i = 0; i < got.size(); ++i) err = std::max(err, std::abs(got[i] - want[i]));
      EXPECT_LT(err, 1e-4) << "image " << n;
    }
    EXPECT_GE(fractional, N / 2);
  }
}

// ================================================================ weights

TEST(LayersWeights, TrainableNonTrainableAndFreezing) {
  L::Dense d(3);
  Tensor x = rnd32({4, 2});
  d(x);
  EXPECT_EQ(d->trainable_weights().size(), 2u);
  EXPECT_TRUE(d->non_trainable_weights().empty());
  d(x).sum().backward();
  EXPECT_TRUE(d->kernel->value.grad().defined());
  d->set_trainable(false);
  EXPECT_FALSE(d->trainable());
  EXPECT_TRUE(d->trainable_weights().empty());
  EXPECT_EQ(d->non_trainable_weights().size(), 2u);
  EXPECT_FALSE(d->kernel->value.requires_grad());
  Tensor xg = rnd32({4, 2});
  xg.requires_grad_(true);
  d(xg).sum().backward();  // still differentiable in its input
  EXPECT_TRUE(xg.grad().defined());
  d->set_trainable(true);
  EXPECT_TRUE(d->kernel->value.requires_grad());
  EXPECT_EQ(d->trainable_weights().size(), 2u);
  // A layer that tracks another freezes it too.
  TimesConst outer(2.0);
  L::Dense inner(2);
  inner(x);
  outer.track(LayerPtr(inner));
  outer.set_trainable(false);
  EXPECT_FALSE(inner->trainable());
  EXPECT_TRUE(outer.trainable_weights().empty());
}

TEST(LayersWeights, CountParams) {
  L::Dense d(4);
  d(rnd32({1, 3}));
  EXPECT_EQ(d->count_params(), 16);
  L::Dense nb(4, {.use_bias = false});
  nb(rnd32({1, 3}));
  EXPECT_EQ(nb->count_params(), 12);
  L::Conv2D c(8, {3, 2}, {.groups = 2});
  c(rnd32({1, 5, 5, 6}));
  EXPECT_EQ(c->count_params(), 3 * 2 * 3 * 8 + 8);
  L::BatchNormalization bn;
  bn(rnd32({2, 5}));
  EXPECT_EQ(bn->count_params(), 20);
  L::Embedding e(11, 3);
  e(tensor<int64_t>({1}, {1}));
  EXPECT_EQ(e->count_params(), 33);
  EXPECT_EQ(L::Flatten()->count_params(), 0);
}

TEST(LayersWeights, GetAndSetWeightsRoundTrip) {
  L::Dense a(3), b(3);
  Tensor x = rnd32({5, 4});
  a(x);
  b(x);
  std::vector<Tensor> wa = a->get_weights();
  ASSERT_EQ(wa.size(), 2u);
  EXPECT_NE(values(a(x)), values(b(x)));
  b->set_weights(wa);
  EXPECT_EQ(values(a(x)), values(b(x)));
  // get_weights returns copies.
  wa[0].fill_(0.0f);
  EXPECT_NE(values(a->kernel->value), values(wa[0]));
  // set_weights keeps the tensors' identity (optimizers hold them).
  Tensor k = b->kernel->value;
  b->set_weights({zeros({4, 3}), ones({3})});
  EXPECT_TRUE(k.is_same(b->kernel->value));
  EXPECT_EQ(values(k), std::vector<double>(12, 0.0));
  EXPECT_THROW(b->set_weights({zeros({4, 3})}), ValueError);
  std::string msg = error_of<ShapeError>([&] { b->set_weights({zeros({3, 4}), ones({3})}); });
  EXPECT_THAT(msg, HasSubstr("kernel"));
  EXPECT_THAT(msg, HasSubstr("[4, 3]"));
  EXPECT_THAT(msg, HasSubstr("[3, 4]"));
}

TEST(LayersWeights, RegularizationLossIsComputedFromTheWeights) {
  L::Dense d(3, {.kernel_regularizer = regularizers::l1_l2(0.01, 0.02), .bias_regularizer = regularizers::l2(0.5)});
  d(rnd32({2, 4}));
  auto w = randomize_weights(*d);
  double want = 0;
  for (double v : w[0]) want += 0.01 * std::abs(v) + 0.02 * v * v;
  for (double v : w[1]) want += 0.5 * v * v;
  Tensor r = d->regularization_loss();
  EXPECT_EQ(r.dim(), 0);
  EXPECT_NEAR(r.item<float>(), want, 1e-5 * want);
  // Differentiable: d/dk (l1 |k| + l2 k^2) = l1 sign(k) + 2 l2 k.
  r.backward();
  std::vector<double> g = values(d->kernel->value.grad());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], 0.01 * (w[0][i] > 0 ? 1 : -1) + 0.04 * w[0][i], 1e-6);
  // Names from Keras: "l2" is l2(0.01).
  L::Conv2D c(2, 1, {.kernel_regularizer = "l2"});
  c(rnd32({1, 2, 2, 3}));
  auto cw = randomize_weights(*c);
  double want_c = 0;
  for (double v : cw[0]) want_c += 0.01 * v * v;
  EXPECT_NEAR(c->regularization_loss().item<float>(), want_c, 1e-5 * want_c + 1e-8);
  L::Dense plain(2);
  plain(rnd32({1, 2}));
  EXPECT_EQ(plain->regularization_loss().item<float>(), 0.0f);
}

TEST(LayersNames, UniqueSnakeCaseDefaults) {
  // A class never named before starts the counter at zero: "glia_naming_probe2d", then "_1".
  auto p0 = std::make_shared<GliaNamingProbe2D>(), p1 = std::make_shared<GliaNamingProbe2D>();
  (*p0)(rnd32({1}));
  (*p1)(rnd32({1}));
  EXPECT_EQ(p0->name(), "glia_naming_probe2d");
  EXPECT_EQ(p1->name(), "glia_naming_probe2d_1");
  // The built-ins follow Keras's snake_case; other tests may have used the counters already.
  auto check = [](const LayerPtr& a, const LayerPtr& b, const std::string& base, const Tensor& x) {
    (*a)(x);
    (*b)(x);
    auto counter = [&](const std::string& n) -> int {
      if (n == base) return 0;
      EXPECT_EQ(n.rfind(base + "_", 0), 0u) << n;
      return std::stoi(n.substr(base.size() + 1));
    };
    EXPECT_EQ(counter(b->name()), counter(a->name()) + 1) << a->name() << " then " << b->name();
  };
  Tensor img = rnd32({1, 4, 4, 2}), vec = rnd32({1, 3});
  check(L::Dense(2), L::Dense(2), "dense", vec);
  check(L::Conv2D(1, 1), L::Conv2D(1, 1), "conv2d", img);
  check(L::MaxPooling2D(), L::MaxPooling2D(), "max_pooling2d", img);
  check(L::BatchNormalization(), L::BatchNormalization(), "batch_normalization", vec);
  check(L::GlobalAveragePooling2D(), L::GlobalAveragePooling2D(), "global_average_pooling2d", img);
  check(L::DepthwiseConv2D(1), L::DepthwiseConv2D(1), "depthwise_conv2d", img);
  // A name given explicitly is kept.
  L::Dense named(2);
  named->set_name("classifier");
  named(vec);
  EXPECT_EQ(named->name(), "classifier");
}

// ================================================================ configs

namespace {

struct ConfigCase {
  LayerPtr layer;
  std::vector<Tensor> inputs;
  std::set<std::string> required;  // keys Glia must write
  std::set<std::string> keras;     // every key Keras's get_config() may write
};

const std::set<std::string> kBase = {"name", "trainable", "dtype"};
std::set<std::string> with_base(std::set<std::string> s) {
  s.insert(kBase.begin(), kBase.end());
  return s;
}

std::vector<ConfigCase> config_cases() {
  Tensor vec = rnd32({3, 6}), img = rnd32({2, 7, 6, 4}), seq = rnd32({2, 9, 4});
  Tensor ids = tensor<int64_t>({1, 4, 0, 7, 2, 2}, {2, 3});
  const std::set<std::string> conv_keras =
      with_base({"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups", "activation",
                 "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
                 "activity_regularizer", "kernel_constraint", "bias_constraint", "lora_rank"});
  const std::set<std::string> conv_req =
      with_base({"filters", "kernel_size", "strides", "padding", "dilation_rate", "groups", "activation", "use_bias",
                 "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer"});
  const std::set<std::string> pool = with_base({"pool_size", "strides", "padding", "data_format"});
  return {
      {L::Dense(5, {.activation = "relu", .kernel_initializer = "he_normal", .kernel_regularizer = "l2"}),
       {vec},
       with_base({"units", "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                  "bias_regularizer"}),
       with_base({"units", "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                  "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint", "lora_rank",
                  "lora_alpha", "quantization_config"})},
      {L::Dense(2, {.use_bias = false, .bias_regularizer = regularizers::l1_l2(0.1, 0.2)}), {vec}, {}, {}},
      {L::Activation("gelu"), {vec}, with_base({"activation"}), with_base({"activation"})},
      {L::Conv2D(3, {3, 2}, {.strides = {2, 1}, .padding = "same", .dilation_rate = 1, .activation = "tanh"}),
       {img},
       conv_req,
       conv_keras},
      {L::Conv2D(4, 3, {.groups = 2, .use_bias = false, .bias_initializer = "ones"}), {img}, conv_req, conv_keras},
      {L::Conv1D(2, 3, {.strides = 2, .padding = "causal", .dilation_rate = 2}), {seq}, conv_req, conv_keras},
      {L::DepthwiseConv2D({2, 3}, {.padding = "same", .depth_multiplier = 2, .activation = "relu6"}),
       {img},
       with_base({"kernel_size", "strides", "padding", "depth_multiplier", "dilation_rate", "activation", "use_bias",
                  "depthwise_initializer", "bias_initializer", "depthwise_regularizer", "bias_regularizer"}),
       with_base({"kernel_size", "strides", "padding", "depth_multiplier", "data_format", "dilation_rate", "activation",
                  "use_bias", "depthwise_initializer", "bias_initializer", "depthwise_regularizer", "bias_regularizer",
                  "activity_regularizer", "depthwise_constraint", "bias_constraint"})},
      {L::MaxPooling2D({3, 2}, {.strides = Size2{1, 2}, .padding = "same"}),
       {img},
       with_base({"pool_size", "strides", "padding"}),
       pool},
      {L::AveragePooling2D(2), {img}, with_base({"pool_size", "strides", "padding"}), pool},
      {L::GlobalAveragePooling2D(true), {img}, with_base({"keepdims"}), with_base({"keepdims", "data_format"})},
      {L::Flatten(), {img}, kBase, with_base({"data_format"})},
      {L::Reshape({-1, 3}), {img}, with_base({"target_shape"}), with_base({"target_shape"})},
      {L::Permute({2, 1}), {seq}, with_base({"dims"}), with_base({"dims"})},
      {L::Dropout(0.25), {vec}, with_base({"rate"}), with_base({"rate", "seed", "noise_shape"})},
      {L::BatchNormalization({.momentum = 0.8, .epsilon = 1e-4, .center = false}),
       {img},
       with_base({"axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                  "moving_mean_initializer", "moving_variance_initializer"}),
       with_base({"axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                  "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer", "gamma_regularizer",
                  "beta_constraint", "gamma_constraint", "synchronized"})},
      {L::LayerNormalization({.epsilon = 1e-5, .scale = false}),
       {seq},
       with_base({"axis", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer"}),
       with_base({"axis", "epsilon", "center", "scale", "rms_scaling", "beta_initializer", "gamma_initializer",
                  "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"})},
      {L::Embedding(8, 3, {.embeddings_initializer = initializers::get("he_uniform")}),
       {ids},
       with_base({"input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer"}),
       with_base({"input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer", "activity_regularizer",
                  "embeddings_constraint", "mask_zero", "lora_rank", "lora_alpha"})},
      {L::Rescaling(1.0 / 255, 0.5), {img}, with_base({"scale", "offset"}), with_base({"scale", "offset"})},
      {L::Add(), {vec, vec}, kBase, kBase},
      {L::Multiply(), {vec, vec}, kBase, kBase},
      {L::Concatenate(-2), {seq, seq}, with_base({"axis"}), with_base({"axis"})},
      {L::RandomFlip("vertical"), {img}, with_base({"mode"}), with_base({"mode", "seed", "data_format"})},
      {L::RandomTranslation(0.1, 0.2, {.fill_mode = "wrap", .interpolation = "nearest", .fill_value = 0.5}),
       {img},
       with_base({"height_factor", "width_factor", "fill_mode", "interpolation", "fill_value"}),
       with_base({"height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value", "data_format"})},
  };
}

Tensor call_layer(Layer& l, const std::vector<Tensor>& xs) { return xs.size() == 1 ? l(xs[0]) : l(xs); }

}  // namespace

TEST(LayersConfig, KerasKeysAndRoundTripWithIdenticalOutputs) {
  for (ConfigCase& c : config_cases()) {
    Layer& l = *c.layer;
    SCOPED_TRACE(l.class_name());
    Tensor y = call_layer(l, c.inputs);
    randomize_weights(l, 0.5, 1.5);  // positive: BatchNormalization's moving variance
    y = call_layer(l, c.inputs);
    Config cfg = l.config();
    EXPECT_EQ(cfg["name"], l.name());
    for (const std::string& k : c.required) EXPECT_TRUE(cfg.contains(k)) << "missing key " << k;
    if (!c.keras.empty()) {
      for (auto it = cfg.begin(); it != cfg.end(); ++it)
        EXPECT_TRUE(c.keras.count(it.key())) << "key " << it.key() << " is not one of Keras's";
    }

    Config full = layer_to_config(l);
    EXPECT_EQ(full["class_name"], l.class_name());
    LayerPtr copy = layer_from_config(Config::parse(full.dump()));  // through JSON text, as in a file
    ASSERT_NE(copy, nullptr);
    EXPECT_EQ(copy->class_name(), l.class_name());
    EXPECT_EQ(copy->config(), cfg);
    call_layer(*copy, c.inputs);
    copy->set_weights(l.get_weights());
    EXPECT_EQ(copy->config(), cfg);
    EXPECT_TRUE(all_close(call_layer(*copy, c.inputs), y, 0, 0));
  }
}

TEST(LayersConfig, ValuesOfKerasKeys) {
  L::Conv2D c(3, {3, 2}, {.strides = 2, .padding = "same"});
  Config cfg = c->config();
  EXPECT_EQ(cfg["kernel_size"], Config::parse("[3, 2]"));
  EXPECT_EQ(cfg["strides"], Config::parse("[2, 2]"));
  EXPECT_EQ(cfg["activation"], "linear");
  EXPECT_EQ(cfg["kernel_initializer"]["class_name"], "GlorotUniform");
  EXPECT_TRUE(cfg["kernel_regularizer"].is_null());
  EXPECT_EQ(cfg["trainable"], true);
  EXPECT_EQ(cfg["dtype"], "float32");
  Config mp = L::MaxPooling2D(3)->config();
  EXPECT_EQ(mp["strides"], Config::parse("[3, 3]"));  // Keras: strides default to pool_size
  Config d = L::Dense(4, {.kernel_regularizer = regularizers::l1_l2(0.1, 0.2)})->config();
  EXPECT_EQ(d["kernel_regularizer"]["class_name"], "L1L2");
  EXPECT_DOUBLE_EQ(d["kernel_regularizer"]["config"]["l1"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(d["kernel_regularizer"]["config"]["l2"].get<double>(), 0.2);
  Config in = layer_to_config(*LayerPtr(L::InputLayer({28, 28, 1})));
  EXPECT_EQ(in["class_name"], "InputLayer");
  EXPECT_EQ(in["config"]["batch_shape"], Config::parse("[null, 28, 28, 1]"));
  LayerPtr in2 = layer_from_config(in);
  EXPECT_EQ(in2->config(), in["config"]);
}

TEST(LayersConfig, FrozenStateSurvivesTheRoundTrip) {
  L::Dense d(2);
  d->set_trainable(false);
  LayerPtr copy = layer_from_config(layer_to_config(*LayerPtr(d)));
  EXPECT_FALSE(copy->trainable());
  (*copy)(rnd32({1, 3}));
  EXPECT_TRUE(copy->trainable_weights().empty());
  EXPECT_FALSE(copy->weights()[0]->value.requires_grad());
}

TEST(LayersConfig, UnknownClassAndCustomRegistration) {
  std::string msg = error_of<ValueError>([] { layer_from_config({{"class_name", "NoSuchLayer"}, {"config", {}}}); });
  EXPECT_THAT(msg, HasSubstr("NoSuchLayer"));
  EXPECT_THAT(msg, HasSubstr("GLIA_REGISTER_LAYER"));
  EXPECT_THROW(layer_from_config(Config::object()), ValueError);

  auto t = std::make_shared<TimesConst>(2.5);
  Tensor x = rnd32({2, 3});
  (*t)(x);
  randomize_weights(*t);
  Config cfg = layer_to_config(*t);
  EXPECT_EQ(cfg["class_name"], "TimesConst");
  LayerPtr copy = layer_from_config(cfg);
  ASSERT_NE(dynamic_cast<TimesConst*>(copy.get()), nullptr);
  EXPECT_EQ(copy->name(), t->name());
  EXPECT_EQ(copy->config(), t->config());
  (*copy)(x);
  copy->set_weights(t->get_weights());
  EXPECT_TRUE(all_close((*copy)(x), (*t)(x), 0, 0));
  std::vector<double> want;
  std::vector<double> xv = values(x), wv = values(t->w->value);
  for (size_t i = 0; i < xv.size(); ++i) want.push_back(xv[i] * wv[i % 3] * 2.5);
  EXPECT_TRUE(all_close((*copy)(x), want, 1e-6, 1e-7));
}

// ================================================================ gradients and edge shapes

TEST(LayersGradients, InputAndWeightGradientsMatchFiniteDifferences) {
  // The layer's weights are swapped for float64 copies and the layer's call() is run on float64
  // inputs (operator() would autocast them to float32, as Keras), so that the gradients with
  // respect to the input and to every trainable weight can be checked by central differences.
  struct Case {
    std::string what;
    LayerPtr layer;
    Tensor x;
    bool training;
  };
  std::vector<Case> cases = {
      {"dense", L::Dense(3, {.activation = "tanh"}), uniform({2, 4}), false},
      {"conv2d", L::Conv2D(2, 3, {.strides = 2, .padding = "same", .groups = 2}), uniform({1, 5, 5, 4}), false},
      {"depthwise", L::DepthwiseConv2D(2, {.depth_multiplier = 2}), uniform({1, 4, 4, 2}), false},
      {"conv1d", L::Conv1D(2, 2, {.padding = "causal"}), uniform({2, 5, 3}), false},
      {"batchnorm", L::BatchNormalization(), uniform({6, 3}), true},
      {"batchnorm inference", L::BatchNormalization(), uniform({6, 3}), false},
      {"layernorm", L::LayerNormalization(), uniform({3, 5}), false},
      {"embedding", L::Embedding(4, 3), tensor<int64_t>({3, 0, 3, 1}, {2, 2}), false},
      {"maxpool", L::MaxPooling2D(2, {.padding = "same"}), uniform({1, 5, 5, 2}), false},
      {"avgpool", L::AveragePooling2D(2, {.padding = "same"}), uniform({1, 5, 5, 2}), false},
      {"gap", L::GlobalAveragePooling2D(), uniform({2, 3, 3, 2}), false},
  };
  for (Case& c : cases) {
    SCOPED_TRACE(c.what);
    Layer& l = *c.layer;
    l(is_floating(c.x.dtype()) ? c.x.to(DType::f32) : c.x);  // builds
    randomize_weights(l, 0.5, 1.5);
    std::vector<Variable*> ws = l.weights();
    std::vector<Tensor> inputs = {is_floating(c.x.dtype()) ? c.x.clone().requires_grad_(true) : c.x};
    for (Variable* v : ws) {
      v->value = v->value.detach().to(DType::f64);
      if (v->trainable) v->value.requires_grad_(true);
      inputs.push_back(v->value);
    }
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Tensor>& in) {
          for (size_t i = 0; i < ws.size(); ++i) ws[i]->value = in[i + 1];
          return l.call(in[0], c.training);
        },
        inputs));
  }
}

TEST(LayersEdgeShapes, EmptyAndSizeOneBatches) {
  Tensor vec0 = zeros({0, 4}), img0 = zeros({0, 5, 5, 3});
  EXPECT_EQ(shape_of(L::Dense(3)(vec0)), (Idx{0, 3}));
  EXPECT_EQ(shape_of(L::Conv2D(2, 3, {.padding = "same"})(img0)), (Idx{0, 5, 5, 2}));
  EXPECT_EQ(shape_of(L::MaxPooling2D()(img0)), (Idx{0, 2, 2, 3}));
  EXPECT_EQ(shape_of(L::GlobalAveragePooling2D()(img0)), (Idx{0, 3}));
  EXPECT_EQ(shape_of(L::LayerNormalization()(vec0)), (Idx{0, 4}));
  EXPECT_EQ(shape_of(L::BatchNormalization()(vec0)), (Idx{0, 4}));
  EXPECT_EQ(shape_of(L::Flatten()(img0)), (Idx{0, 75}));
  EXPECT_EQ(shape_of(L::Embedding(5, 2)(zeros({0, 3}, {.dtype = DType::i64}))), (Idx{0, 3, 2}));
  EXPECT_EQ(shape_of(L::Dropout(0.5)(vec0, true)), (Idx{0, 4}));
  EXPECT_EQ(shape_of(L::RandomFlip()(img0, true)), (Idx{0, 5, 5, 3}));
  EXPECT_EQ(shape_of(L::RandomTranslation(0.1, 0.1)(img0, true)), (Idx{0, 5, 5, 3}));
  // A 1x1 image and one sample.
  Tensor one = rnd32({1, 1, 1, 3});
  L::Conv2D c(2, 3, {.padding = "same"});
  c(one);
  auto w = randomize_weights(*c);
  std::vector<double> ov = values(one), want;
  for (size_t f = 0; f < 2; ++f) {
    double acc = w[1][f];
    for (size_t ch = 0; ch < 3; ++ch)
      acc += ov[ch] * w[0][offset_of({3, 3, 3, 2}, {1, 1, static_cast<int64_t>(ch), static_cast<int64_t>(f)})];
    want.push_back(acc);
  }
  EXPECT_TRUE(all_close(c(one), want, 1e-5, 1e-6));
  EXPECT_EQ(values(L::GlobalAveragePooling2D()(one)), ov);
}

TEST(LayersDense, AutocastsFloatInputsToTheLayerDType) {
  // Keras casts floating inputs to the layer's compute dtype (float32); gradients flow back to
  // the float64 input.
  L::Dense d(2);
  Tensor x = uniform({3, 4}).requires_grad_(true);
  Tensor y = d(x);
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_TRUE(all_close(y, d(x.detach().to(DType::f32)), 0, 0));
  y.sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  std::vector<double> k = values(d->kernel->value), g = values(x.grad());
  for (size_t r = 0; r < 3; ++r)
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(g[r * 4 + i], k[i * 2] + k[i * 2 + 1], 1e-6);
  // Merge layers too, and symbolic calls on float64 Inputs.
  EXPECT_EQ(L::Add()({uniform({2, 3}), uniform({2, 3})}).dtype(), DType::f32);
  KerasTensor in = Input({4}, DType::f64);
  EXPECT_EQ(L::Dense(3)(in).dtype(), DType::f32);
  EXPECT_EQ(L::Embedding(5, 2)(tensor<int64_t>({1, 2}, {1, 2})).dtype(), DType::f32);
}
