// max_pool2d / avg_pool2d / global_avg_pool2d: forward and backward against
// direct loops in double, gradient checks of first and second order, NaN
// propagation, errors, and agreement with PyTorch.
#include <gmock/gmock.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

struct PG {
  int64_t N, H, W, C, KH, KW, sh, sw, pt, pb, pl, pr, OH, OW;
};

std::pair<int64_t, int64_t> ref_pad(const Padding2d& p, bool rows, int64_t in, int64_t k, int64_t stride) {
  if (p.mode == "valid") return {0, 0};
  if (p.mode == "explicit") return rows ? std::make_pair(p.top, p.bottom) : std::make_pair(p.left, p.right);
  int64_t out = (in + stride - 1) / stride;
  int64_t total = std::max<int64_t>(0, (out - 1) * stride + k - in);
  return {total / 2, total - total / 2};
}

PG pgeo(const std::vector<int64_t>& x, const Pool2dOptions& o) {
  PG g{};
  g.N = x[0], g.H = x[1], g.W = x[2], g.C = x[3], g.KH = o.kernel[0], g.KW = o.kernel[1];
  g.sh = o.stride[0] ? o.stride[0] : g.KH;
  g.sw = o.stride[1] ? o.stride[1] : g.KW;
  std::tie(g.pt, g.pb) = ref_pad(o.padding, true, g.H, g.KH, g.sh);
  std::tie(g.pl, g.pr) = ref_pad(o.padding, false, g.W, g.KW, g.sw);
  g.OH = (g.H + g.pt + g.pb - g.KH) / g.sh + 1;
  g.OW = (g.W + g.pl + g.pr - g.KW) / g.sw + 1;
  return g;
}

struct PRef {
  std::vector<double> y, gx;
};

/// Pooling by definition; the max gradient goes to the first maximum, or to the last NaN.
PRef ref_pool(const PG& g, bool is_max, const std::vector<double>& x, const std::vector<double>& gy) {
  PRef r;
  r.y.assign(static_cast<size_t>(g.N * g.OH * g.OW * g.C), 0.0);
  r.gx.assign(x.size(), 0.0);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        for (int64_t c = 0; c < g.C; ++c) {
          std::vector<size_t> cells;
          for (int64_t kh = 0; kh < g.KH; ++kh)
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              int64_t ih = oh * g.sh - g.pt + kh, iw = ow * g.sw - g.pl + kw;
              if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                cells.push_back(static_cast<size_t>(((n * g.H + ih) * g.W + iw) * g.C + c));
            }
          size_t o = static_cast<size_t>(((n * g.OH + oh) * g.OW + ow) * g.C + c);
          double go = gy.empty() ? 0.0 : gy[o];
          if (is_max) {
            size_t best = cells[0];
            for (size_t i : cells)
              if (std::isnan(x[i]) || (!std::isnan(x[best]) && x[i] > x[best])) best = i;
            r.y[o] = x[best];
            r.gx[best] += go;
          } else {
            double s = 0;
            for (size_t i : cells) s += x[i];
            r.y[o] = s / static_cast<double>(cells.size());
            for (size_t i : cells) r.gx[i] += go / static_cast<double>(cells.size());
          }
        }
  return r;
}

struct Case {
  std::vector<int64_t> x;
  Pool2dOptions o;
  Layout layout;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "x " << to_string(IntList(c.x)) << " kernel " << c.o.kernel[0] << "x" << c.o.kernel[1] << " stride "
    << c.o.stride[0] << "," << c.o.stride[1] << " pad " << c.o.padding.mode << " " << layout_name(c.layout);
  return s.str();
}

std::vector<Case> cases() {
  const auto C = Layout::Contiguous, P = Layout::Permuted, S = Layout::Strided;
  const Padding2d same = Padding2d::same();
  return {
      {{2, 6, 6, 3}, {}, C},
      {{3, 7, 9, 5}, {.kernel = {2, 2}, .stride = {2, 2}}, C},
      {{2, 7, 7, 4}, {.kernel = {3, 3}, .stride = {2, 2}, .padding = same}, P},
      {{2, 8, 7, 17}, {.kernel = {3, 3}, .stride = {1, 1}}, P},
      {{1, 9, 8, 20}, {.kernel = {3, 2}, .stride = {2, 3}, .padding = same}, S},
      {{2, 7, 8, 6}, {.kernel = {2, 2}, .stride = {3, 3}}, C},
      {{2, 6, 7, 3}, {.kernel = {3, 3}, .stride = {2, 2}, .padding = Padding2d::explicit_(1, 1, 1, 2)}, C},
      {{1, 5, 5, 32}, {.kernel = {5, 5}, .stride = {1, 1}, .padding = same}, C},
      {{2, 4, 6, 3}, {.kernel = {1, 3}, .stride = {1, 3}}, S},
      {{3, 10, 10, 64}, {.padding = same}, C},
      {{1, 2, 3, 2}, {.kernel = {2, 3}}, C},
      {{2, 5, 9, 35}, {.kernel = {2, 2}, .stride = {2, 2}, .padding = same}, C},
  };
}

/// Forward and backward in dtype dt against the reference. The gradient buffer is first
/// offered NaN-filled memory by the caching allocator, so unwritten cells would show.
void check_case(const Case& c, bool is_max, DType dt, double tol) {
  SCOPED_TRACE(describe(c) + (is_max ? " max " : " avg ") + name(dt));
  PG g = pgeo(c.x, c.o);
  Tensor x = make_input(c.x, c.layout, -1, 1, dt).requires_grad_(true);
  Tensor y = is_max ? max_pool2d(x, c.o) : avg_pool2d(x, c.o);
  Tensor gy = uniform({g.N, g.OH, g.OW, g.C}, -1, 1, dt);
  PRef r = ref_pool(g, is_max, read(x), read(gy));
  EXPECT_TRUE(matches(y, {g.N, g.OH, g.OW, g.C}, r.y, tol, tol));
  { Tensor junk = full(IntList(c.x), std::numeric_limits<double>::quiet_NaN(), {.dtype = dt}); }
  y.backward(gy);
  EXPECT_TRUE(matches(x.grad(), c.x, r.gx, tol, tol));
}

}  // namespace

TEST(MaxPool2d, ForwardAndBackwardMatchDirectLoops) {
  for (const Case& c : cases())
    for (DType dt : {DType::f32, DType::f64}) check_case(c, true, dt, dt == DType::f32 ? 1e-6 : 1e-12);
}

TEST(AvgPool2d, ForwardAndBackwardMatchDirectLoops) {
  for (const Case& c : cases())
    for (DType dt : {DType::f32, DType::f64}) check_case(c, false, dt, dt == DType::f32 ? 1e-5 : 1e-12);
}

TEST(Pool2d, WindowsOfMoreThan256Cells) {
  for (const Case& c :
       {Case{{2, 17, 18, 3}, {.kernel = {17, 17}, .stride = {1, 1}}, Layout::Contiguous},
        Case{{1, 20, 20, 5}, {.kernel = {16, 17}, .stride = {2, 2}, .padding = Padding2d::same()}, Layout::Permuted}})
    for (DType dt : {DType::f32, DType::f64}) {
      check_case(c, true, dt, dt == DType::f32 ? 1e-5 : 1e-12);
      check_case(c, false, dt, dt == DType::f32 ? 1e-5 : 1e-12);
    }
}

TEST(MaxPool2d, NaNIsTheMaxAndTakesTheGradient) {
  for (DType dt : {DType::f32, DType::f64}) {
    SCOPED_TRACE(name(dt));
    // 1 image, 4x4, 20 channels (a SIMD part and a scalar tail), 2x2 windows.
    Tensor base = uniform({1, 4, 4, 20}, -1, 1, DType::f64);
    {
      no_grad ng;
      base.select(0, 0).select(0, 1).select(0, 0).select(0, 3).fill_(std::nan(""));   // window (0,0), channel 3
      base.select(0, 0).select(0, 2).select(0, 3).select(0, 19).fill_(std::nan(""));  // window (1,1), channel 19
      base.select(0, 0).select(0, 0).select(0, 0).select(0, 7).fill_(-INFINITY);
    }
    Tensor x = base.to(dt).requires_grad_(true);
    Tensor y = max_pool2d(x);
    Tensor gy = ones_like(y);
    PRef r = ref_pool(pgeo({1, 4, 4, 20}, {}), true, read(x), read(gy));
    EXPECT_TRUE(std::isnan(y.at<double>({0, 0, 0, 3})));
    EXPECT_TRUE(std::isnan(y.at<double>({0, 1, 1, 19})));
    EXPECT_TRUE(matches(y, {1, 2, 2, 20}, r.y, 0, 0));
    y.backward(gy);
    EXPECT_EQ(x.grad().at<double>({0, 1, 0, 3}), 1.0);
    EXPECT_EQ(x.grad().at<double>({0, 2, 3, 19}), 1.0);
    EXPECT_TRUE(matches(x.grad(), {1, 4, 4, 20}, r.gx, 0, 0));
  }
}

TEST(MaxPool2d, SixteenBitFloatsPickTheSameValues) {
  Tensor x = uniform({2, 6, 6, 19}, -1, 1, DType::f32);
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor xs = x.to(dt).requires_grad_(true);
    Tensor y = max_pool2d(xs, {.kernel = {3, 3}, .stride = {2, 2}, .padding = Padding2d::same()});
    EXPECT_EQ(y.dtype(), dt);
    Tensor x32 = xs.detach().to(DType::f32).requires_grad_(true);
    Tensor y32 = max_pool2d(x32, {.kernel = {3, 3}, .stride = {2, 2}, .padding = Padding2d::same()});
    EXPECT_TRUE(all_close(y, y32, 0, 0));
    Tensor gy = uniform(y.shape(), -1, 1, DType::f32).to(dt);
    y.backward(gy);
    y32.backward(gy.to(DType::f32));
    // Overlapping windows add in float32, rounded once at the end.
    EXPECT_TRUE(all_close(xs.grad(), x32.grad().to(dt), 0, 0));
    Tensor a = avg_pool2d(xs.detach(), {.kernel = {3, 3}, .stride = {2, 2}, .padding = Padding2d::same()});
    Tensor a32 = avg_pool2d(x32.detach(), {.kernel = {3, 3}, .stride = {2, 2}, .padding = Padding2d::same()});
    EXPECT_TRUE(all_close(a, a32.to(dt), 0, 0));
  }
}

TEST(MaxPool2d, Gradcheck) {
  // Distinct values (a shuffled ramp) so no window has a tie.
  for (const Case& c :
       {Case{{2, 5, 6, 3}, {}, Layout::Contiguous},
        Case{{1, 6, 5, 4}, {.kernel = {3, 3}, .stride = {2, 1}, .padding = Padding2d::same()}, Layout::Permuted}}) {
    SCOPED_TRACE(describe(c));
    std::vector<double> v(static_cast<size_t>(numel(IntList(c.x))));
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01 * static_cast<double>(i);
    std::shuffle(v.begin(), v.end(), std::mt19937(7));
    Tensor x = tensor(v, Shape(c.x.begin(), c.x.end())).requires_grad_(true);
    Pool2dOptions o = c.o;
    EXPECT_TRUE(gradcheck([o](const std::vector<Tensor>& in) { return max_pool2d(in[0], o); }, {x}, 1e-6));
    // Second order through the backward's own gradient (the gather): d/dx of grad(y^2).
    EXPECT_TRUE(gradgradcheck(
        [o](const std::vector<Tensor>& in) {
          Tensor y = max_pool2d(in[0], o);
          return y * y;
        },
        {x}, 1e-6));
  }
}

TEST(AvgPool2d, Gradcheck) {
  for (const Case& c :
       {Case{{2, 5, 6, 3}, {}, Layout::Strided},
        Case{{1, 6, 5, 4}, {.kernel = {3, 3}, .stride = {2, 1}, .padding = Padding2d::same()}, Layout::Contiguous}}) {
    SCOPED_TRACE(describe(c));
    Tensor x = make_input(c.x, c.layout).requires_grad_(true);
    Pool2dOptions o = c.o;
    EXPECT_TRUE(gradcheck([o](const std::vector<Tensor>& in) { return avg_pool2d(in[0], o); }, {x}));
    EXPECT_TRUE(gradgradcheck(
        [o](const std::vector<Tensor>& in) {
          Tensor y = avg_pool2d(in[0], o);
          return y * y;
        },
        {x}));
  }
}

TEST(GlobalAvgPool2d, MeanOverHeightAndWidth) {
  Tensor x = make_input({3, 5, 4, 6}, Layout::Permuted).requires_grad_(true);
  std::vector<double> xv = read(x), want(18, 0.0);
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t h = 0; h < 5; ++h)
      for (int64_t w = 0; w < 4; ++w)
        for (int64_t c = 0; c < 6; ++c)
          want[static_cast<size_t>(n * 6 + c)] += xv[static_cast<size_t>(((n * 5 + h) * 4 + w) * 6 + c)] / 20.0;
  EXPECT_TRUE(matches(global_avg_pool2d(x), {3, 6}, want, 1e-12, 1e-12));
  EXPECT_TRUE(matches(global_avg_pool2d(x, true), {3, 1, 1, 6}, want, 1e-12, 1e-12));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return global_avg_pool2d(in[0]); }, {x}));
}

TEST(Pool2d, ErrorsNameTheOpAndShapes) {
  std::string m = error_of<ShapeError>([] { max_pool2d(zeros({28, 28, 1})); });
  EXPECT_THAT(m, HasSubstr("max_pool2d: input must be 4-D"));
  EXPECT_THAT(m, HasSubstr("[28, 28, 1]"));
  m = error_of<ShapeError>([] { avg_pool2d(zeros({1, 2, 5, 1}), {.kernel = {3, 3}}); });
  EXPECT_THAT(m, HasSubstr("avg_pool2d"));
  EXPECT_THAT(m, HasSubstr("[1, 2, 5, 1]"));
  m = error_of<ValueError>([] { max_pool2d(zeros({1, 4, 4, 1}), {.padding = {"full"}}); });
  EXPECT_THAT(m, HasSubstr("max_pool2d: padding must be"));
  m = error_of<ValueError>([] { max_pool2d(zeros({1, 4, 4, 1}), {.padding = Padding2d::explicit_(2, 0)}); });
  EXPECT_THAT(m, HasSubstr("smaller than the kernel"));
  m = error_of<ValueError>([] { avg_pool2d(zeros({1, 4, 4, 1}), {.kernel = {0, 2}}); });
  EXPECT_THAT(m, HasSubstr("avg_pool2d: kernel size"));
  m = error_of<DTypeError>([] { max_pool2d(zeros({1, 4, 4, 1}, {.dtype = DType::i32})); });
  EXPECT_THAT(m, HasSubstr("max_pool2d"));
  m = error_of<ShapeError>([] { global_avg_pool2d(zeros({4, 4, 1})); });
  EXPECT_THAT(m, HasSubstr("global_avg_pool2d"));
}

TEST(Pool2d, MatchesPyTorch) {
  if (!have_torch()) GTEST_SKIP() << "no PyTorch";
  struct TC {
    bool is_max;
    Case c;
  };
  const Padding2d same = Padding2d::same();
  std::vector<TC> tcs = {
      {true, {{4, 9, 7, 8}, {}, Layout::Contiguous}},
      {true, {{3, 10, 11, 5}, {.kernel = {3, 3}, .stride = {2, 2}, .padding = same}, Layout::Contiguous}},
      {true, {{2, 8, 8, 33}, {.kernel = {3, 3}, .stride = {1, 1}}, Layout::Contiguous}},
      {false, {{4, 9, 7, 8}, {}, Layout::Contiguous}},
      {false, {{3, 10, 11, 5}, {.kernel = {3, 3}, .stride = {2, 2}, .padding = same}, Layout::Contiguous}},
      {false, {{2, 7, 7, 6}, {.kernel = {3, 3}, .stride = {1, 1}, .padding = same}, Layout::Contiguous}},
  };
  std::string script = std::string(GLIA_SOURCE_DIR) + "/tests/python/torch_conv_pool.py";
  std::vector<std::string> jobs, dirs;
  std::vector<Tensor> ys, gxs;
  for (size_t i = 0; i < tcs.size(); ++i) {
    const Case& c = tcs[i].c;
    std::string dir = temp_dir();
    Tensor x = uniform(IntList(c.x), -1, 1, DType::f32);
    if (i == 0) {  // one NaN: the max and its gradient follow it
      no_grad ng;
      x.select(0, 1).select(0, 2).select(0, 3).select(0, 4).fill_(std::nan(""));
    }
    x.requires_grad_(true);
    Tensor y = tcs[i].is_max ? max_pool2d(x, c.o) : avg_pool2d(x, c.o);
    Tensor gy = uniform(y.shape(), -1, 1, DType::f32);
    y.backward(gy);
    save_npy(dir + "/x.npy", x.detach());
    save_npy(dir + "/gy.npy", gy);
    PG g = pgeo(c.x, c.o);
    std::string job = std::string(tcs[i].is_max ? "max," : "avg,") + dir;
    for (int64_t v : {g.KH, g.KW, g.sh, g.sw, g.pt, g.pb, g.pl, g.pr}) {
      job += ',';
      job += std::to_string(v);
    }
    jobs.push_back(job);
    dirs.push_back(dir);
    ys.push_back(y.detach());
    gxs.push_back(x.grad());
  }
  std::string out;
  ASSERT_EQ(run_python(script, jobs, &out), 0) << out;
  for (size_t i = 0; i < tcs.size(); ++i) {
    SCOPED_TRACE(describe(tcs[i].c) + (tcs[i].is_max ? " max" : " avg"));
    EXPECT_TRUE(all_close(ys[i], load_npy(dirs[i] + "/y.npy"), 1e-5, 1e-6));
    EXPECT_TRUE(all_close(gxs[i], load_npy(dirs[i] + "/gx.npy"), 1e-5, 1e-6));
  }
}
