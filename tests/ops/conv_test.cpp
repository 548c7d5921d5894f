// conv2d / conv1d: forward and both gradients against direct loops in double,
// float32 (oneDNN) against float64, finite-difference gradient checks, errors,
// and agreement with PyTorch.
#include <gmock/gmock.h>

#include <cmath>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

/// One convolution's sizes, with the padding resolved here (TensorFlow's rule for "same").
struct Geo {
  int64_t N, H, W, C, KH, KW, Cg, O, G, sh, sw, dh, dw, pt, pb, pl, pr, OH, OW;
};

std::pair<int64_t, int64_t> ref_pad(const std::string& mode, int64_t in, int64_t span, int64_t stride, int64_t a,
                                    int64_t b) {
  if (mode == "valid") return {0, 0};
  if (mode == "explicit") return {a, b};
  int64_t out = (in + stride - 1) / stride;
  int64_t total = std::max<int64_t>(0, (out - 1) * stride + span - in);
  return {total / 2, total - total / 2};
}

Geo geo(const std::vector<int64_t>& x, const std::vector<int64_t>& w, const Conv2dOptions& o) {
  Geo g{};
  g.N = x[0], g.H = x[1], g.W = x[2], g.C = x[3];
  g.KH = w[0], g.KW = w[1], g.Cg = w[2], g.O = w[3], g.G = o.groups;
  g.sh = o.stride[0], g.sw = o.stride[1], g.dh = o.dilation[0], g.dw = o.dilation[1];
  int64_t span_h = (g.KH - 1) * g.dh + 1, span_w = (g.KW - 1) * g.dw + 1;
  std::tie(g.pt, g.pb) = ref_pad(o.padding.mode, g.H, span_h, g.sh, o.padding.top, o.padding.bottom);
  std::tie(g.pl, g.pr) = ref_pad(o.padding.mode, g.W, span_w, g.sw, o.padding.left, o.padding.right);
  g.OH = (g.H + g.pt + g.pb - span_h) / g.sh + 1;
  g.OW = (g.W + g.pl + g.pr - span_w) / g.sw + 1;
  return g;
}

/// Calls f(n, oh, ow, ih, iw, kh, kw) for every tap that lands inside the input.
template <class F>
void taps(const Geo& g, F f) {
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        for (int64_t kh = 0; kh < g.KH; ++kh)
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
            if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) f(n, oh, ow, ih, iw, kh, kw);
          }
}

struct Ref {
  std::vector<double> y, gx, gw, gb;
};

/// Forward and, for the output gradient gy, the three gradients, by definition.
Ref ref_conv(const Geo& g, const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
             const std::vector<double>& gy) {
  Ref r;
  int64_t Og = g.O / g.G;
  r.y.assign(static_cast<size_t>(g.N * g.OH * g.OW * g.O), 0.0);
  r.gx.assign(x.size(), 0.0);
  r.gw.assign(w.size(), 0.0);
  r.gb.assign(static_cast<size_t>(g.O), 0.0);
  auto X = [&](int64_t n, int64_t h, int64_t w_, int64_t c) {
    return static_cast<size_t>(((n * g.H + h) * g.W + w_) * g.C + c);
  };
  auto Y = [&](int64_t n, int64_t h, int64_t w_, int64_t c) {
    return static_cast<size_t>(((n * g.OH + h) * g.OW + w_) * g.O + c);
  };
  auto Wi = [&](int64_t kh, int64_t kw, int64_t i, int64_t o) {
    return static_cast<size_t>(((kh * g.KW + kw) * g.Cg + i) * g.O + o);
  };
  taps(g, [&](int64_t n, int64_t oh, int64_t ow, int64_t ih, int64_t iw, int64_t kh, int64_t kw) {
    for (int64_t o = 0; o < g.O; ++o) {
      int64_t grp = o / Og;
      for (int64_t i = 0; i < g.Cg; ++i) {
        int64_t c = grp * g.Cg + i;
        r.y[Y(n, oh, ow, o)] += x[X(n, ih, iw, c)] * w[Wi(kh, kw, i, o)];
        if (!gy.empty()) {
          r.gx[X(n, ih, iw, c)] += gy[Y(n, oh, ow, o)] * w[Wi(kh, kw, i, o)];
          r.gw[Wi(kh, kw, i, o)] += gy[Y(n, oh, ow, o)] * x[X(n, ih, iw, c)];
        }
      }
    }
  });
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        for (int64_t o = 0; o < g.O; ++o) {
          if (!b.empty()) r.y[Y(n, oh, ow, o)] += b[static_cast<size_t>(o)];
          if (!gy.empty()) r.gb[static_cast<size_t>(o)] += gy[Y(n, oh, ow, o)];
        }
  return r;
}

struct Case {
  std::vector<int64_t> x, w;
  Conv2dOptions o;
  bool bias;
  Layout layout;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "x " << to_string(IntList(c.x)) << " w " << to_string(IntList(c.w)) << " stride " << c.o.stride[0] << ","
    << c.o.stride[1] << " pad " << c.o.padding.mode << " dil " << c.o.dilation[0] << "," << c.o.dilation[1]
    << " groups " << c.o.groups << (c.bias ? " bias " : " ") << layout_name(c.layout);
  return s.str();
}

Padding2d same() { return Padding2d::same(); }

std::vector<Case> cases() {
  const auto C = Layout::Contiguous, P = Layout::Permuted, S = Layout::Strided;
  return {
      {{1, 5, 5, 3}, {3, 3, 3, 4}, {}, true, C},
      {{3, 7, 6, 4}, {3, 3, 4, 5}, {.stride = {2, 2}, .padding = same()}, false, C},
      {{2, 8, 9, 3}, {3, 2, 3, 6}, {.stride = {2, 1}, .padding = Padding2d::explicit_(1, 2, 0, 1)}, true, P},
      {{2, 9, 9, 4}, {3, 3, 4, 4}, {.dilation = {2, 2}}, true, C},
      {{2, 10, 7, 4}, {3, 3, 2, 6}, {.padding = same(), .groups = 2}, true, S},
      {{3, 7, 7, 6}, {3, 3, 1, 6}, {.stride = {2, 2}, .padding = same(), .groups = 6}, true, C},
      {{1, 6, 6, 4}, {3, 3, 1, 8}, {.groups = 4}, false, P},
      {{2, 5, 7, 3}, {1, 1, 3, 7}, {}, true, C},
      {{2, 9, 8, 8}, {5, 5, 8, 16}, {.padding = same(), .dilation = {1, 2}}, true, S},
      {{3, 13, 13, 16}, {3, 3, 16, 32}, {.stride = {2, 2}}, false, P},
      {{2, 4, 4, 3}, {4, 4, 3, 2}, {}, true, C},
      {{1, 3, 3, 2}, {3, 3, 2, 2}, {.stride = {3, 3}, .padding = same()}, true, C},
      {{3, 11, 5, 5},
       {2, 3, 5, 3},
       {.stride = {3, 2}, .padding = Padding2d::explicit_(2, 0, 1, 1), .dilation = {2, 1}},
       false,
       S},
      {{2, 8, 8, 6}, {3, 3, 2, 9}, {.stride = {2, 2}, .padding = Padding2d::explicit_(1, 1), .groups = 3}, true, C},
      {{1, 12, 12, 32}, {3, 3, 1, 32}, {.padding = same(), .groups = 32}, true, P},
      {{3, 6, 5, 1}, {2, 2, 1, 1}, {.stride = {1, 2}}, true, C},
      // Padding wider than the kernel: whole output rows and columns see only zeros.
      {{1, 3, 4, 2}, {2, 2, 2, 3}, {.stride = {2, 1}, .padding = Padding2d::explicit_(3, 2, 1, 3)}, true, S},
  };
}

Tensor bias_for(const Case& c, DType dt) { return c.bias ? uniform({c.w[3]}, -1, 1, dt) : Tensor(); }

/// Runs forward and backward of conv2d in dtype dt and compares all four results with the reference.
void check_case(const Case& c, DType dt, double rtol, double atol) {
  SCOPED_TRACE(describe(c) + " " + name(dt));
  Tensor x = make_input(c.x, c.layout, -1, 1, dt).requires_grad_(true);
  Tensor w = uniform(IntList(c.w), -1, 1, dt).requires_grad_(true);
  Tensor b = bias_for(c, dt);
  if (b.defined()) b.requires_grad_(true);
  Geo g = geo(c.x, c.w, c.o);
  Tensor y = conv2d(x, w, b, c.o);
  Tensor gy = uniform({g.N, g.OH, g.OW, g.O}, -1, 1, dt);
  Ref r = ref_conv(g, read(x), read(w), b.defined() ? read(b) : std::vector<double>{}, read(gy));
  EXPECT_TRUE(matches(y, {g.N, g.OH, g.OW, g.O}, r.y, rtol, atol));
  y.backward(gy);
  EXPECT_TRUE(matches(x.grad(), c.x, r.gx, rtol, atol));
  EXPECT_TRUE(matches(w.grad(), c.w, r.gw, rtol, atol));
  if (b.defined()) {
    EXPECT_TRUE(matches(b.grad(), {c.w[3]}, r.gb, rtol, atol));
  }
}

}  // namespace

TEST(Conv2d, Float32ForwardAndGradientsMatchDirectLoops) {
  for (const Case& c : cases()) check_case(c, DType::f32, 1e-4, 1e-4);
}

TEST(Conv2d, Float64ForwardAndGradientsMatchDirectLoops) {
  for (const Case& c : cases()) check_case(c, DType::f64, 1e-11, 1e-11);
}

TEST(Conv2d, SixteenBitFloatsComputeInFloat32) {
  Case c{{2, 7, 7, 4}, {3, 3, 4, 8}, {.stride = {2, 2}, .padding = same()}, true, Layout::Contiguous};
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor x = uniform(IntList(c.x), -1, 1, dt), w = uniform(IntList(c.w), -1, 1, dt), b = uniform({8}, -1, 1, dt);
    Tensor y = conv2d(x, w, b, c.o);
    EXPECT_EQ(y.dtype(), dt);
    // The same numbers in float32; the only difference is the final rounding to 16 bits.
    Tensor y32 = conv2d(x.to(DType::f32), w.to(DType::f32), b.to(DType::f32), c.o);
    EXPECT_TRUE(all_close(y, y32.to(dt), 0, 0));
  }
}

TEST(Conv2d, Float32AgreesWithFloat64) {
  // Larger layers than the reference loops take: the CIFAR CNN's shapes at a small batch.
  struct L {
    std::vector<int64_t> x, w;
  };
  for (const L& l :
       {L{{4, 32, 32, 3}, {3, 3, 3, 32}}, L{{4, 15, 15, 32}, {3, 3, 32, 64}}, L{{4, 6, 6, 64}, {3, 3, 64, 64}}}) {
    SCOPED_TRACE(to_string(IntList(l.x)));
    Tensor x = uniform(IntList(l.x)), w = uniform(IntList(l.w), -0.2, 0.2), b = uniform({l.w[3]});
    x.requires_grad_(true);
    w.requires_grad_(true);
    b.requires_grad_(true);
    Tensor x32 = x.detach().to(DType::f32).requires_grad_(true), w32 = w.detach().to(DType::f32).requires_grad_(true),
           b32 = b.detach().to(DType::f32).requires_grad_(true);
    Tensor y = conv2d(x, w, b), y32 = conv2d(x32, w32, b32);
    EXPECT_TRUE(all_close(y32, y, 1e-4, 1e-4));
    Tensor gy = uniform(y.shape());
    y.backward(gy);
    y32.backward(gy.to(DType::f32));
    EXPECT_TRUE(all_close(x32.grad(), x.grad(), 1e-4, 1e-4));
    EXPECT_TRUE(all_close(w32.grad(), w.grad(), 1e-4, 1e-3));
    EXPECT_TRUE(all_close(b32.grad(), b.grad(), 1e-4, 1e-3));
  }
}

TEST(Conv2d, RepeatedCallsGiveIdenticalResults) {
  // The second call reuses the cached primitive; a stale reorder or scratchpad would show here.
  Tensor x = uniform({2, 9, 9, 8}, -1, 1, DType::f32), w = uniform({3, 3, 8, 16}, -1, 1, DType::f32);
  Tensor a = conv2d(x, w, {}, {.padding = same()});
  Tensor w2 = uniform({3, 3, 8, 16}, -1, 1, DType::f32);
  Tensor b = conv2d(x, w2, {}, {.padding = same()});
  Tensor a2 = conv2d(x, w, {}, {.padding = same()});
  EXPECT_TRUE(all_close(a2, a, 0, 0));
  EXPECT_FALSE(all_close(b, a, 1e-3, 1e-3));
}

TEST(Conv2d, EmptyBatchAndBiasOnlyResults) {
  Tensor y = conv2d(zeros({0, 5, 5, 3}), zeros({3, 3, 3, 4}), zeros({4}), {.padding = same()});
  EXPECT_EQ(y.shape(), (Shape{0, 5, 5, 4}));
  // No input channels: every output is the bias.
  Tensor b = tensor({1.5f, -2.f});
  Tensor z = conv2d(zeros({2, 4, 4, 0}), zeros({3, 3, 0, 2}), b);
  EXPECT_EQ(z.shape(), (Shape{2, 2, 2, 2}));
  EXPECT_TRUE(all_close(z.reshape({-1, 2}).select(1, 0), std::vector<double>(8, 1.5)));
}

TEST(Conv2d, Gradcheck) {
  std::vector<Case> cs = {
      {{2, 5, 5, 3}, {3, 3, 3, 2}, {}, true, Layout::Contiguous},
      {{2, 6, 5, 4}, {3, 2, 2, 4}, {.stride = {2, 1}, .padding = same(), .groups = 2}, true, Layout::Permuted},
      {{1, 7, 6, 2},
       {3, 3, 2, 3},
       {.stride = {2, 2}, .padding = Padding2d::explicit_(1, 0, 2, 1), .dilation = {2, 1}},
       true,
       Layout::Strided},
      {{2, 5, 5, 3}, {3, 3, 1, 3}, {.padding = same(), .groups = 3}, false, Layout::Contiguous},
  };
  for (const Case& c : cs) {
    SCOPED_TRACE(describe(c));
    Tensor x = make_input(c.x, c.layout).requires_grad_(true);
    Tensor w = uniform(IntList(c.w)).requires_grad_(true);
    Tensor b = c.bias ? uniform({c.w[3]}).requires_grad_(true) : Tensor();
    Conv2dOptions o = c.o;
    EXPECT_TRUE(gradcheck([o](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b}));
  }
}

TEST(Conv2d, GradGradcheck) {
  Tensor x = uniform({2, 5, 4, 2}).requires_grad_(true);
  Tensor w = uniform({3, 2, 2, 3}).requires_grad_(true);
  Tensor b = uniform({3}).requires_grad_(true);
  Conv2dOptions o{.stride = {2, 1}, .padding = same()};
  EXPECT_TRUE(gradgradcheck([o](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b}));
  // Grouped and dilated, through the squared output (so the second derivative is not just bilinear).
  Tensor x2 = uniform({1, 6, 6, 4}).requires_grad_(true);
  Tensor w2 = uniform({2, 2, 2, 4}).requires_grad_(true);
  Conv2dOptions o2{.padding = Padding2d::explicit_(1, 0, 0, 1), .dilation = {2, 2}, .groups = 2};
  EXPECT_TRUE(gradgradcheck(
      [o2](const std::vector<Tensor>& in) {
        Tensor y = conv2d(in[0], in[1], {}, o2);
        return y * y;
      },
      {x2, w2}));
}

TEST(Conv2d, GradientOpsAreDifferentiable) {
  Conv2dOptions o{.stride = {2, 2}, .padding = same()};
  Tensor gy = uniform({2, 3, 3, 3}).requires_grad_(true);
  Tensor w = uniform({3, 3, 2, 3}).requires_grad_(true);
  Tensor x = uniform({2, 5, 6, 2}).requires_grad_(true);
  EXPECT_TRUE(gradcheck(
      [o](const std::vector<Tensor>& in) {
        return conv2d_input_grad(in[0], in[1], {2, 5, 6, 2}, o);
      },
      {gy, w}));
  EXPECT_TRUE(gradcheck(
      [o](const std::vector<Tensor>& in) {
        return conv2d_weight_grad(in[0], in[1], {3, 3, 2, 3}, o);
      },
      {x, gy}));
}

namespace {

/// conv1d reference through the 2-D one on H = 1, with Keras's padding for "causal".
std::vector<double> ref_conv1d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv1dOptions& o) {
  std::vector<int64_t> xs = {x.size(0), 1, x.size(1), x.size(2)}, ws = {1, w.size(0), w.size(1), w.size(2)};
  Conv2dOptions o2{.stride = {1, o.stride}, .dilation = {1, o.dilation}, .groups = o.groups};
  if (o.padding == "causal")
    o2.padding = Padding2d::explicit_(0, 0, (w.size(0) - 1) * o.dilation, 0);
  else
    o2.padding.mode = o.padding;
  return ref_conv(geo(xs, ws, o2), read(x), read(w), b.defined() ? read(b) : std::vector<double>{}, {}).y;
}

}  // namespace

TEST(Conv1d, ForwardMatchesDirectLoops) {
  struct C1 {
    std::vector<int64_t> x, w;
    Conv1dOptions o;
    bool bias;
  };
  std::vector<C1> cs = {
      {{2, 9, 3}, {3, 3, 4}, {}, true},
      {{3, 10, 4}, {3, 4, 5}, {.stride = 2, .padding = "same"}, false},
      {{2, 8, 2}, {3, 2, 3}, {.padding = "causal", .dilation = 2}, true},
      {{1, 11, 6}, {4, 3, 4}, {.stride = 3, .padding = "same", .groups = 2}, true},
      {{2, 7, 4}, {5, 1, 8}, {.padding = "causal", .groups = 4}, false},
  };
  for (const C1& c : cs) {
    for (DType dt : {DType::f32, DType::f64}) {
      SCOPED_TRACE(to_string(IntList(c.x)) + " " + c.o.padding + " " + name(dt));
      Tensor x = make_input(c.x, Layout::Permuted, -1, 1, dt), w = uniform(IntList(c.w), -1, 1, dt);
      Tensor b = c.bias ? uniform({c.w[2]}, -1, 1, dt) : Tensor();
      Tensor y = conv1d(x, w, b, c.o);
      std::vector<double> want = ref_conv1d(x, w, b, c.o);
      int64_t ow = static_cast<int64_t>(want.size()) / (c.x[0] * c.w[2]);
      if (c.o.padding != "valid") {  // "same" and "causal" keep ceil(W / stride)
        EXPECT_EQ(ow, (c.x[1] + c.o.stride - 1) / c.o.stride);
      }
      EXPECT_TRUE(
          matches(y, {c.x[0], ow, c.w[2]}, want, dt == DType::f32 ? 1e-5 : 1e-12, dt == DType::f32 ? 1e-5 : 1e-12));
    }
  }
}

TEST(Conv1d, CausalOutputDoesNotSeeTheFuture) {
  Tensor x = uniform({1, 8, 2}).requires_grad_(true);
  Tensor w = uniform({3, 2, 2});
  Tensor y = conv1d(x, w, {}, {.padding = "causal", .dilation = 2});
  // d y[t] / d x[s] is zero for s > t.
  Tensor g = grad(y.select(1, 3).sum(), x);
  auto gv = read(g);
  for (int64_t s = 4; s < 8; ++s)
    for (int64_t c = 0; c < 2; ++c) EXPECT_EQ(gv[static_cast<size_t>(s * 2 + c)], 0.0) << s;
}

TEST(Conv1d, Gradcheck) {
  Tensor x = uniform({2, 9, 4}).requires_grad_(true);
  Tensor w = uniform({3, 2, 4}).requires_grad_(true);
  Tensor b = uniform({4}).requires_grad_(true);
  for (std::string pad : {"valid", "same", "causal"}) {
    SCOPED_TRACE(pad);
    Conv1dOptions o{.stride = 2, .padding = pad, .dilation = 2, .groups = 2};
    EXPECT_TRUE(gradcheck([o](const std::vector<Tensor>& in) { return conv1d(in[0], in[1], in[2], o); }, {x, w, b}));
  }
}

TEST(Conv2d, ErrorsNameTheOpAndShapes) {
  Tensor x = zeros({1, 5, 5, 3}), w = zeros({3, 3, 3, 4});
  std::string m = error_of<ShapeError>([] { conv2d(zeros({28, 28, 1}), zeros({3, 3, 1, 4})); });
  EXPECT_THAT(m, HasSubstr("conv2d"));
  EXPECT_THAT(m, HasSubstr("[28, 28, 1]"));
  m = error_of<ShapeError>([&] { conv2d(x, zeros({3, 3, 4, 2})); });
  EXPECT_THAT(m, HasSubstr("conv2d"));
  EXPECT_THAT(m, HasSubstr("[1, 5, 5, 3]"));
  EXPECT_THAT(m, HasSubstr("[3, 3, 4, 2]"));
  m = error_of<ShapeError>([] { conv2d(zeros({1, 2, 2, 1}), zeros({3, 3, 1, 1})); });
  EXPECT_THAT(m, HasSubstr("conv2d"));
  EXPECT_THAT(m, HasSubstr("larger than the padded input"));
  EXPECT_THAT(m, HasSubstr("[1, 2, 2, 1]"));
  // With dilation the kernel spans 5x5.
  m = error_of<ShapeError>([] { conv2d(zeros({1, 4, 9, 1}), zeros({3, 3, 1, 1}), {}, {.dilation = {2, 2}}); });
  EXPECT_THAT(m, HasSubstr("5x5"));
  m = error_of<ValueError>([&] { conv2d(x, w, {}, {.groups = 0}); });
  EXPECT_THAT(m, HasSubstr("conv2d: groups"));
  m = error_of<ValueError>([&] { conv2d(x, zeros({3, 3, 1, 4}), {}, {.groups = 2}); });
  EXPECT_THAT(m, HasSubstr("conv2d: input channels (3) must be divisible by groups (2)"));
  m = error_of<ValueError>([&] { conv2d(zeros({1, 5, 5, 4}), zeros({3, 3, 2, 3}), {}, {.groups = 2}); });
  EXPECT_THAT(m, HasSubstr("output channels (3)"));
  m = error_of<ValueError>([&] { conv2d(x, w, {}, {.padding = {"full"}}); });
  EXPECT_THAT(m, HasSubstr("conv2d: padding must be"));
  EXPECT_THAT(m, HasSubstr("'full'"));
  m = error_of<ValueError>([&] { conv2d(x, w, {}, {.stride = {0, 1}}); });
  EXPECT_THAT(m, HasSubstr("conv2d: stride"));
  m = error_of<ValueError>([&] { conv2d(x, w, {}, {.padding = Padding2d::explicit_(-1, 0)}); });
  EXPECT_THAT(m, HasSubstr("non-negative"));
  m = error_of<ShapeError>([&] { conv2d(x, w, zeros({3})); });
  EXPECT_THAT(m, HasSubstr("conv2d: bias must have shape [4]"));
  m = error_of<DTypeError>([&] { conv2d(x, w.to(DType::f64)); });
  EXPECT_THAT(m, HasSubstr("conv2d"));
  m = error_of<DTypeError>([&] { conv2d(x.to(DType::i32), w.to(DType::i32)); });
  EXPECT_THAT(m, HasSubstr("conv2d"));
}

TEST(Conv1d, ErrorsNameTheOpAndShapes) {
  std::string m = error_of<ShapeError>([] { conv1d(zeros({1, 5, 5, 3}), zeros({3, 3, 4})); });
  EXPECT_THAT(m, HasSubstr("conv1d: input must be 3-D"));
  EXPECT_THAT(m, HasSubstr("[1, 5, 5, 3]"));
  m = error_of<ShapeError>([] { conv1d(zeros({1, 5, 3}), zeros({3, 2, 4})); });
  EXPECT_THAT(m, HasSubstr("conv1d"));
  EXPECT_THAT(m, HasSubstr("[1, 5, 3]"));
  EXPECT_THAT(m, HasSubstr("[3, 2, 4]"));
  m = error_of<ShapeError>([] { conv1d(zeros({1, 2, 3}), zeros({3, 3, 4})); });
  EXPECT_THAT(m, HasSubstr("conv1d"));
  EXPECT_THAT(m, HasSubstr("larger"));
  m = error_of<ValueError>([] { conv1d(zeros({1, 5, 3}), zeros({3, 3, 4}), {}, {.padding = "full"}); });
  EXPECT_THAT(m, HasSubstr("conv1d: padding must be 'valid', 'same' or 'causal'"));
}

TEST(Conv2d, MatchesPyTorch) {
  if (!have_torch()) GTEST_SKIP() << "no PyTorch";
  struct TC {
    Case c;
    std::string name;
  };
  std::vector<TC> tcs = {
      {{{3, 11, 9, 6}, {3, 3, 3, 8}, {.stride = {2, 2}, .padding = same(), .groups = 2}, true, Layout::Contiguous},
       "same_stride2_groups2"},
      {{{2, 12, 10, 4}, {3, 3, 4, 5}, {.dilation = {2, 2}}, true, Layout::Contiguous}, "valid_dilation2"},
      {{{2, 8, 8, 6}, {3, 3, 1, 12}, {.padding = same(), .groups = 6}, true, Layout::Contiguous}, "depthwise"},
      {{{2, 9, 7, 3},
        {2, 3, 3, 4},
        {.stride = {1, 2}, .padding = Padding2d::explicit_(1, 0, 2, 1)},
        true,
        Layout::Contiguous},
       "explicit"},
  };
  std::string script = std::string(GLIA_SOURCE_DIR) + "/tests/python/torch_conv_pool.py";
  struct Run {
    std::string dir;
    Tensor y, gx, gw, gb;
  };
  std::vector<Run> runs;
  std::vector<std::string> jobs;
  for (const TC& t : tcs) {
    const Case& c = t.c;
    Run r;
    r.dir = temp_dir();
    Tensor x = uniform(IntList(c.x), -1, 1, DType::f32).requires_grad_(true);
    Tensor w = uniform(IntList(c.w), -1, 1, DType::f32).requires_grad_(true);
    Tensor b = uniform({c.w[3]}, -1, 1, DType::f32).requires_grad_(true);
    Tensor y = conv2d(x, w, b, c.o);
    Tensor gy = uniform(y.shape(), -1, 1, DType::f32);
    y.backward(gy);
    r.y = y.detach(), r.gx = x.grad(), r.gw = w.grad(), r.gb = b.grad();
    save_npy(r.dir + "/x.npy", x.detach());
    save_npy(r.dir + "/w.npy", w.detach());
    save_npy(r.dir + "/b.npy", b.detach());
    save_npy(r.dir + "/gy.npy", gy);
    Geo g = geo(c.x, c.w, c.o);
    std::string job = "conv," + r.dir;
    for (int64_t v : {g.sh, g.sw, g.pt, g.pb, g.pl, g.pr, g.dh, g.dw, g.G}) {
      job += ',';
      job += std::to_string(v);
    }
    jobs.push_back(job);
    runs.push_back(r);
  }
  std::string out;
  ASSERT_EQ(run_python(script, jobs, &out), 0) << out;
  for (size_t i = 0; i < runs.size(); ++i) {
    SCOPED_TRACE(tcs[i].name);
    const Run& r = runs[i];
    EXPECT_TRUE(all_close(r.y, load_npy(r.dir + "/y.npy"), 1e-4, 1e-5));
    EXPECT_TRUE(all_close(r.gx, load_npy(r.dir + "/gx.npy"), 1e-4, 1e-5));
    EXPECT_TRUE(all_close(r.gw, load_npy(r.dir + "/gw.npy"), 1e-4, 1e-4));
    EXPECT_TRUE(all_close(r.gb, load_npy(r.dir + "/gb.npy"), 1e-4, 1e-4));
  }
}
