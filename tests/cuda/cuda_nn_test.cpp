// The CUDA kernels of convolution (cuDNN), pooling, batch norm and matmul_fused against the CPU
// kernels on the same random inputs: forward and gradients, float32 and float64, strides, 'same' /
// 'valid' / asymmetric padding, dilation, groups, views, size-1 and empty cases; bfloat16 and float16
// (computed in float on both devices and rounded once) with tolerances of a few 16-bit ulps. They need
// a GPU and skip without one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda/cuda_testing.h"
#include "glia/core/cuda.h"
#include "glia/core/cuda_hooks.h"
#include "glia/glia.h"
#include "glia/ops/op.h"
#include "testing.h"

namespace glia {
namespace {

using ::testing::HasSubstr;
using namespace glia::cuda_testing;
using I64s = std::vector<int64_t>;

const OpDef& op(const char* name) { return OpRegistry::instance().get(name); }

const std::vector<DType> kFloats = {DType::f32, DType::f64, DType::bf16, DType::f16};

/// One unit in the last place at 1 of a 16-bit float type (a hair more): 1 ulp as a relative tolerance.
double ulp16(DType dt) { return (dt == DType::bf16 ? 1.0 / 128 : 1.0 / 1024) * 1.001; }

/// (rtol, atol) of a convolution in dtype dt against the CPU's. 16-bit: both devices sum the
/// products of the same 16-bit values in float (the CPU on float32 copies, cuDNN on tensor cores), in
/// different orders, and round once. The float sums differ far below a 16-bit ulp, so a result
/// differs by at most an ulp where the two land on either side of a rounding boundary: 2 ulps of the
/// value, and 1 ulp at 1 (the outputs' typical magnitude, sums of tens of products of values in
/// [-2, 2]) for results that cancel to near 0.
std::pair<double, double> conv_tol(DType dt) {
  if (is_16bit(dt)) return {2 * ulp16(dt), ulp16(dt)};
  return dt == DType::f32 ? std::pair{1e-4, 1e-4} : std::pair{1e-10, 1e-10};
}

/// One convolution configuration: input [N, H, W, C], kernel KHxKW, Cout, options.
struct ConvCase {
  int64_t N, H, W, C, KH, KW, O;
  Conv2dOptions o;
  std::string str() const {
    return "N" + std::to_string(N) + " " + std::to_string(H) + "x" + std::to_string(W) + "x" + std::to_string(C) +
           " k" + std::to_string(KH) + "x" + std::to_string(KW) + " O" + std::to_string(O) + " s" +
           std::to_string(o.stride[0]) + std::to_string(o.stride[1]) + " d" + std::to_string(o.dilation[0]) +
           std::to_string(o.dilation[1]) + " g" + std::to_string(o.groups) + " " + o.padding.mode;
  }
};

Conv2dOptions opts(std::array<int64_t, 2> s, Padding2d p, std::array<int64_t, 2> d = {1, 1}, int64_t g = 1) {
  return {.stride = s, .padding = p, .dilation = d, .groups = g};
}

/// Random input, kernel and bias of a case, in dtype dt.
std::tuple<Tensor, Tensor, Tensor> conv_inputs(const ConvCase& c, DType dt) {
  return {rnd({c.N, c.H, c.W, c.C}, dt), rnd({c.KH, c.KW, c.C / c.o.groups, c.O}, dt), rnd({c.O}, dt)};
}

std::vector<ConvCase> conv_cases() {
  return {
      {1, 5, 7, 3, 1, 1, 4, opts({1, 1}, Padding2d::valid())},
      {3, 7, 6, 4, 3, 3, 5, opts({1, 1}, Padding2d::same())},
      {3, 8, 9, 4, 3, 3, 6, opts({2, 2}, Padding2d::same())},  // 'same' with stride 2: asymmetric pads
      {2, 9, 8, 3, 5, 5, 2, opts({1, 2}, Padding2d::valid())},
      {1, 11, 10, 2, 5, 5, 3, opts({2, 1}, Padding2d::same())},
      {2, 9, 9, 4, 3, 3, 4, opts({1, 1}, Padding2d::same(), {2, 2})},         // dilation
      {3, 10, 7, 3, 3, 2, 4, opts({1, 1}, Padding2d::valid(), {2, 1})},       // dilation, odd kernel
      {2, 6, 7, 6, 3, 3, 4, opts({1, 1}, Padding2d::same(), {1, 1}, 2)},      // groups
      {1, 7, 7, 4, 3, 3, 4, opts({2, 2}, Padding2d::valid(), {1, 1}, 4)},     // depthwise
      {2, 6, 5, 3, 2, 2, 3, opts({1, 1}, Padding2d::same())},                 // even kernel: pad after only
      {1, 6, 6, 2, 3, 3, 3, opts({1, 1}, Padding2d::explicit_(2, 0, 0, 1))},  // explicit asymmetric
      {3, 1, 1, 5, 1, 1, 1, opts({1, 1}, Padding2d::valid())},                // size-1 everything
  };
}

// conv2d (with and without bias; for 16-bit floats the bias is added to the float sum before the
// one rounding, as on the CPU) against the CPU kernel, on contiguous, permuted and sliced inputs.
TEST(CudaConv, ForwardMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats)
    for (const ConvCase& c : conv_cases()) {
      auto [x, w, b] = conv_inputs(c, dt);
      auto o = c.o;
      auto [rt, at] = conv_tol(dt);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return conv2d(v[0], v[1], Tensor(), o); }, {x, w}, rt, at))
          << c.str() << " " << name(dt);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return conv2d(v[0], v[1], v[2], o); }, {x, w, b}, rt, at))
          << c.str() << " bias " << name(dt);
      // A view: x stored as [N, C, H, W] and permuted to NHWC; the weight transposed from [KW, KH, ...].
      Tensor xs = x.permute({0, 3, 1, 2}).contiguous(), ws = w.permute({1, 0, 2, 3}).contiguous();
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return conv2d(v[0].permute({0, 2, 3, 1}), v[1].permute({1, 0, 2, 3}), v[2], o);
          },
          {xs, ws, b}, rt, at))
          << c.str() << " views " << name(dt);
      // A sliced input: every other column of a wider tensor.
      Tensor xw = rnd({c.N, c.H, 2 * c.W, c.C}, dt);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return conv2d(v[0].slice(2, 0, 2 * c.W, 2), v[1], Tensor(), o); }, {xw, w},
                              rt, at))
          << c.str() << " sliced " << name(dt);
    }
}

// Gradients of conv2d with bias (conv2d_input_grad, conv2d_weight_grad, the bias sum) on the GPU.
// For 16-bit floats the weight gradient sums up to ~100 products: its outputs are larger, and so is
// an ulp of them (the relative tolerance); the absolute one covers cancellation.
TEST(CudaConv, GradientsMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats)
    for (const ConvCase& c : conv_cases()) {
      auto [x, w, b] = conv_inputs(c, dt);
      auto o = c.o;
      auto [rt, at] = conv_tol(dt);
      EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return conv2d(v[0], v[1], v[2], o); }, {x, w, b}, {0, 1, 2}, rt, at))
          << c.str() << " " << name(dt);
    }
}

// The backward ops called directly, and their own gradients (double backward runs conv2d,
// conv2d_input_grad and conv2d_weight_grad on the GPU).
TEST(CudaConv, BackwardOpsAndDoubleBackward) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats)
    for (const ConvCase& c : conv_cases()) {
      auto [x, w, b] = conv_inputs(c, dt);
      Shape ys = conv2d(x, w, Tensor(), c.o).shape();
      Tensor gy = rnd(ys, dt);
      auto o = c.o;
      auto [rt, at] = conv_tol(dt);
      Shape xs = x.shape(), wsh = w.shape();
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return conv2d_input_grad(v[0], v[1], xs, o); }, {gy, w}, rt, at))
          << c.str() << " input grad " << name(dt);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return conv2d_weight_grad(v[0], v[1], wsh, o); }, {x, gy}, rt, at))
          << c.str() << " weight grad " << name(dt);
      EXPECT_TRUE(
          same_grads_on_gpu([&](auto& v) { return conv2d_input_grad(v[0], v[1], xs, o); }, {gy, w}, {0, 1}, rt, at))
          << c.str() << " d(input grad) " << name(dt);
      EXPECT_TRUE(
          same_grads_on_gpu([&](auto& v) { return conv2d_weight_grad(v[0], v[1], wsh, o); }, {x, gy}, {0, 1}, rt, at))
          << c.str() << " d(weight grad) " << name(dt);
    }
}

/// Sets GLIA_CONV_WAY (nhwc, nchw, gemm or direct: every convolution runs that way where it can;
/// "" leaves the choice to Glia) while alive.
struct ConvWay {
  explicit ConvWay(const char* way) {
    if (*way) setenv("GLIA_CONV_WAY", way, 1);
  }
  ~ConvWay() { unsetenv("GLIA_CONV_WAY"); }
};

// conv2d_fused (made by graph fusion): bias then ReLU; NaN stays NaN as with the relu op. Under each
// way (the direct kernel applies bias and ReLU itself).
TEST(CudaConv, FusedReluKeepsNaN) {
  SKIP_WITHOUT_GPU();
  for (const char* way : {"", "nhwc", "nchw", "gemm", "direct"}) {
    ConvWay forced(way);
    for (DType dt : kFloats) {
      auto [rt, at] = conv_tol(dt);
      Tensor x = rnd({2, 6, 5, 3}, dt), w = rnd({3, 3, 3, 4}, dt), b = rnd({4}, dt);
      {
        no_grad guard;
        x.select(0, 1).select(0, 2).select(0, 2).fill_(std::numeric_limits<double>::quiet_NaN());
      }
      Attrs a{{"stride", I64s{2, 1}},
              {"dilation", I64s{1, 1}},
              {"pads", I64s{0, 1, 1, 1}},
              {"groups", int64_t{1}},
              {"activation", std::string("relu")}};
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return call(op("conv2d_fused"), {v[0], v[1], v[2]}, a);
          },
          {x, w, b}, rt, at))
          << name(dt) << " " << way;
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return call(op("conv2d_fused"), {v[0], v[1]}, a);
          },
          {x, w}, rt, at))
          << name(dt) << " " << way;
    }
  }
}

// An empty batch: an empty output, and a weight gradient of zeros, in every float dtype.
TEST(CudaConv, EmptyBatch) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats) {
    Tensor x = rnd({0, 5, 5, 3}, dt), w = rnd({3, 3, 3, 2}, dt), b = rnd({2}, dt);
    Tensor y = conv2d(x.to(kGpu), w.to(kGpu), b.to(kGpu), opts({1, 1}, Padding2d::same()));
    EXPECT_EQ(y.shape(), (Shape{0, 5, 5, 2}));
    EXPECT_EQ(y.dtype(), dt);
    Tensor gw = conv2d_weight_grad(x.to(kGpu), zeros({0, 5, 5, 2}, {.dtype = dt, .device = kGpu}), {3, 3, 3, 2},
                                   opts({1, 1}, Padding2d::same()));
    EXPECT_EQ(gw.dtype(), dt);
    EXPECT_TRUE(testing::all_close(gw.to(Device::cpu()), zeros({3, 3, 3, 2}, {.dtype = dt}), 0, 0)) << name(dt);
  }
}

TEST(CudaConv, Tf32Toggle) {
  SKIP_WITHOUT_GPU();
  // With TF32 allowed the result is close to the CPU's at TF32 precision (and the algorithm cache
  // keeps the two settings apart).
  Tensor x2 = rnd({2, 9, 9, 8}, DType::f32), w2 = rnd({3, 3, 8, 8}, DType::f32);
  bool before = cuda::allow_tf32();
  cuda::set_allow_tf32(true);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return conv2d(v[0], v[1]); }, {x2, w2}, 2e-2, 1e-1));
  cuda::set_allow_tf32(false);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return conv2d(v[0], v[1]); }, {x2, w2}, 1e-4, 1e-4));
  cuda::set_allow_tf32(before);
}

/// Sets cuda::conv_autotune for its lifetime.
struct Autotune {
  bool before = cuda::conv_autotune();
  explicit Autotune(bool on) { cuda::set_conv_autotune(on); }
  ~Autotune() { cuda::set_conv_autotune(before); }
};

// Algorithms and layouts chosen by cuDNN's heuristics alone (autotune off) and measured (on, with a
// size where several algorithms apply): forward and gradients match the CPU either way. Each
// geometry is used here only, so no choice cached by another test is reused.
TEST(CudaConv, HeuristicsAndMeasuredChoicesMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (bool tuned : {false, true}) {
    Autotune on(tuned);
    ConvCase c = tuned ? ConvCase{8, 16, 16, 16, 3, 3, 24, opts({1, 1}, Padding2d::same())}
                       : ConvCase{4, 12, 10, 6, 3, 3, 10, opts({1, 1}, Padding2d::same())};
    for (DType dt : {DType::f32, DType::f16, DType::f64}) {
      auto [x, w, b] = conv_inputs(c, dt);
      auto o = c.o;
      auto [rt, at] = conv_tol(dt);
      // Twice: the first call chooses, the second reuses the choice.
      for (int call = 0; call < 2; ++call)
        EXPECT_TRUE(
            same_grads_on_gpu([&](auto& v) { return conv2d(v[0], v[1], v[2], o); }, {x, w, b}, {0, 1, 2}, rt, at))
            << c.str() << " " << name(dt) << (tuned ? " measured" : " heuristics") << " call " << call;
    }
  }
}

// A geometry first seen while a CUDA Graph is recorded cannot be measured (that would wait for the
// GPU): the heuristics' choice is recorded, replays compute the convolution, and later eager calls
// of the geometry work too.
TEST(CudaConv, FirstSeenWhileRecordingKeepsTheHeuristicsChoice) {
  SKIP_WITHOUT_GPU();
  Autotune on(true);
  // cuDNN's handle and first plans are made outside the recording (by another geometry).
  conv2d(rnd({1, 4, 4, 2}, DType::f32).to(kGpu), rnd({3, 3, 2, 2}, DType::f32).to(kGpu));
  Tensor x = rnd({2, 13, 11, 5}, DType::f32), w = rnd({3, 3, 5, 7}, DType::f32);
  Tensor xg = x.to(kGpu), wg = w.to(kGpu), y;
  auto graph = glia::detail::cuda_capture(0, [&] { y = conv2d(xg, wg, Tensor(), opts({1, 1}, Padding2d::same())); });
  graph->replay();
  Tensor want = conv2d(x, w, Tensor(), opts({1, 1}, Padding2d::same()));
  EXPECT_TRUE(testing::all_close(y.to(Device::cpu()), want, 1e-4, 1e-4));
  EXPECT_TRUE(testing::all_close(conv2d(xg, wg, Tensor(), opts({1, 1}, Padding2d::same())).to(Device::cpu()), want,
                                 1e-4, 1e-4));
}

// Each way of running a float32 convolution (cuDNN on NHWC, cuDNN on NCHW, im2col / col2im with
// cuBLAS, the direct kernels), forced, on every geometry of conv_cases() plus a 1x1 kernel with stride
// 2 (ResNet's shortcut) and first layers of image networks that the direct kernels take (3 or 4
// channels, 4 to 128 outputs; the last has 2208 output pixels: 9 blocks of 246 (the last of 240) for
// the weight gradient, each ending in a partial tile of pixels): forward with and without bias, on permuted views, and
// the gradients, against the CPU. Geometries a way does not take fall back to cuDNN (the direct kernels have no input
// gradient). The big case's column matrices are 9 MiB an image, so the GEMM way runs it in two chunks (7 images of 8,
// then 1) and sums the weight gradient over them.
TEST(CudaConv, EveryWayMatchesCpu) {
  SKIP_WITHOUT_GPU();
  std::vector<ConvCase> cases = conv_cases();
  cases.push_back({2, 8, 8, 4, 1, 1, 6, opts({2, 2}, Padding2d::valid())});
  cases.push_back({2, 12, 11, 3, 3, 3, 32, opts({1, 1}, Padding2d::same())});
  cases.push_back({2, 9, 10, 3, 3, 3, 64, opts({2, 2}, Padding2d::valid())});
  cases.push_back({1, 7, 7, 1, 5, 5, 8, opts({1, 1}, Padding2d::same())});
  cases.push_back({3, 8, 8, 4, 3, 3, 128, opts({1, 1}, Padding2d::same())});
  cases.push_back({4, 23, 24, 3, 3, 3, 8, opts({1, 1}, Padding2d::same())});
  for (const char* way : {"nhwc", "nchw", "gemm", "direct"}) {
    ConvWay forced(way);
    for (const ConvCase& c : cases) {
      auto [x, w, b] = conv_inputs(c, DType::f32);
      auto o = c.o;
      auto [rt, at] = conv_tol(DType::f32);
      // Float sums of n products of values in [-2, 2] in different orders: the absolute error grows
      // with n (conv_tol's 1e-4 is for up to ~100; the input gradient of O 128 sums 1152, and an
      // H100 algorithm was 2e-4 off on one of 768 elements).
      const int64_t n = std::max(c.C, c.O) * c.KH * c.KW;
      at *= std::max(1.0, static_cast<double>(n) / 100);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return conv2d(v[0], v[1], Tensor(), o); }, {x, w}, rt, at))
          << c.str() << " " << way;
      Tensor xs = x.permute({0, 3, 1, 2}).contiguous(), ws = w.permute({1, 0, 2, 3}).contiguous();
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return conv2d(v[0].permute({0, 2, 3, 1}), v[1].permute({1, 0, 2, 3}), v[2], o);
          },
          {xs, ws, b}, rt, at))
          << c.str() << " views " << way;
      EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return conv2d(v[0], v[1], v[2], o); }, {x, w, b}, {0, 1, 2}, rt, at))
          << c.str() << " gradients " << way;
    }
  }
  ConvWay gemm("gemm");
  ConvCase big{8, 64, 64, 64, 3, 3, 2, opts({1, 1}, Padding2d::same())};
  auto [x, w, b] = conv_inputs(big, DType::f32);
  auto o = big.o;
  // Sums of 576 products: float rounding grows with the count.
  EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return conv2d(v[0], v[1], v[2], o); }, {x, w, b}, {0, 1, 2}, 1e-4, 1e-3))
      << big.str() << " in chunks";
}

// Integer inputs are refused (by the ops, before any kernel), on the GPU as on the CPU.
TEST(CudaConv, IntegerDTypeNamesTheOp) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({1, 4, 4, 2}, DType::f32).to(DType::i32).to(kGpu);
  Tensor w = rnd({3, 3, 2, 2}, DType::f32).to(DType::i32).to(kGpu);
  try {
    conv2d(x, w);
    ADD_FAILURE() << "no error for int32";
  } catch (const DTypeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("conv2d"));
  }
  EXPECT_THROW(max_pool2d(x), DTypeError);
  EXPECT_THROW(avg_pool2d(x), DTypeError);
}

// --- pooling

struct PoolCase {
  int64_t N, H, W, C;
  Pool2dOptions o;
};

std::vector<PoolCase> pool_cases() {
  return {
      {2, 6, 8, 3, {.kernel = {2, 2}}},
      {3, 7, 5, 4, {.kernel = {3, 3}, .stride = {1, 1}, .padding = Padding2d::same()}},
      {1, 9, 8, 2, {.kernel = {3, 3}, .stride = {2, 2}, .padding = Padding2d::same()}},  // overlapping, asymmetric
      {2, 7, 9, 5, {.kernel = {3, 2}, .stride = {2, 3}}},
      {1, 5, 5, 33, {.kernel = {2, 2}, .stride = {1, 1}, .padding = Padding2d::explicit_(1, 0, 0, 1)}},
      {3, 1, 1, 2, {.kernel = {1, 1}}},
  };
}

/// Random values from a small set, so that windows hold ties.
Tensor ties(IntList shape, DType dt) {
  Tensor t = rnd(shape, DType::f64, -2, 2).contiguous();
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::round(p[i] * 2.0);
  return t.to(dt);
}

/// The op attrs max_pool2d makes of o for input height H and width W ('same' resolved as Keras).
Attrs pool_op_attrs(const Pool2dOptions& o, int64_t H, int64_t W) {
  int64_t sh = o.stride[0] ? o.stride[0] : o.kernel[0], sw = o.stride[1] ? o.stride[1] : o.kernel[1];
  auto pads = [&](int64_t in, int64_t k, int64_t s, int64_t before, int64_t after) -> std::pair<int64_t, int64_t> {
    if (o.padding.mode == "valid") return {0, 0};
    if (o.padding.mode == "explicit") return {before, after};
    int64_t out = (in + s - 1) / s, total = std::max<int64_t>((out - 1) * s + k - in, 0);
    return {total / 2, total - total / 2};
  };
  auto [t, b] = pads(H, o.kernel[0], sh, o.padding.top, o.padding.bottom);
  auto [l, r] = pads(W, o.kernel[1], sw, o.padding.left, o.padding.right);
  return {{"kernel", I64s{o.kernel[0], o.kernel[1]}}, {"stride", I64s{sh, sw}}, {"pads", I64s{t, b, l, r}}};
}

// Max pooling compares in the accumulation type and copies the winner: values and indices equal
// the CPU's in every dtype, and the gradient (the sum, in float for 16-bit types, of the pooled
// gradients routed to a cell, in the CPU's order, rounded once) is exact for 16-bit types too
// (tol() is 0 for them).
TEST(CudaPool, MaxValuesIndicesTiesAndNaN) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats)
    for (const PoolCase& c : pool_cases()) {
      Tensor x = ties({c.N, c.H, c.W, c.C}, dt);
      {
        no_grad guard;  // NaN takes the max, the last NaN of a window its index
        x.select(0, 0).select(0, 0).select(0, 0).fill_(std::numeric_limits<double>::quiet_NaN());
        if (c.W > 1) x.select(0, 0).select(0, 0).select(0, 1).fill_(std::numeric_limits<double>::quiet_NaN());
      }
      Attrs a = pool_op_attrs(c.o, c.H, c.W);
      for (size_t out : {0, 1})  // values, and the window positions (uint8), compared exactly
        EXPECT_TRUE(
            same_on_gpu([&](auto& v) { return dispatch(op("max_pool2d"), {v[0]}, a)[out].to(DType::f64); }, {x}, 0, 0))
            << name(dt) << " output " << out;
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return max_pool2d(v[0].permute({0, 2, 1, 3}), c.o);
          },
          {x.permute({0, 2, 1, 3}).contiguous()}, 0, 0))
          << name(dt) << " view";
      // Ties route the gradient to the first maximum, as on the CPU.
      auto o = c.o;
      EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return max_pool2d(v[0], o); }, {x}, {0}, tol(dt), 0)) << name(dt);
    }
  // Huge windows index with int32.
  Tensor x = rnd({1, 20, 20, 2}, DType::f32);
  Attrs a{{"kernel", I64s{17, 17}}, {"stride", I64s{3, 3}}, {"pads", I64s{0, 0, 0, 0}}};
  for (size_t out : {0, 1})
    EXPECT_TRUE(
        same_on_gpu([&](auto& v) { return dispatch(op("max_pool2d"), {v[0]}, a)[out].to(DType::f64); }, {x}, 0, 0));
  EXPECT_TRUE(same_grads_on_gpu(
      [](auto& v) {
        return max_pool2d(v[0], {.kernel = {17, 17}, .stride = {3, 3}});
      },
      {x}, {0}, tol(DType::f32), 0));
}

TEST(CudaPool, MaxGradientsAndGather) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats)
    for (const PoolCase& c : pool_cases()) {
      Tensor x = rnd({c.N, c.H, c.W, c.C}, dt);
      auto o = c.o;
      EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return max_pool2d(v[0], o); }, {x}, {0}, tol(dt), 0)) << name(dt);
      // Double backward: the gradient of max_pool2d_backward is max_pool2d_gather.
      Tensor gy = rnd(max_pool2d(x, o).shape(), dt);
      EXPECT_TRUE(same_grads_on_gpu(
          [&](auto& v) {
            Tensor xg = v[0].detach().clone();
            xg.requires_grad_(true);
            Tensor s = sum(max_pool2d(xg, o) * v[1]);
            return glia::grad(s, xg, {.create_graph = true});
          },
          {x, gy}, {1}, tol(dt), 0))
          << name(dt);
    }
}

// Averages. 16-bit: a float sum times the float reciprocal of the count, rounded once, on both
// devices; the CPU's vectorized float32 loop may differ in the last float bit, which can move the
// rounding by one 16-bit ulp.
TEST(CudaPool, AverageAndGradients) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats)
    for (const PoolCase& c : pool_cases()) {
      Tensor x = rnd({c.N, c.H, c.W, c.C}, dt);
      auto o = c.o;
      bool half = is_16bit(dt);
      double rt = half ? ulp16(dt) : tol(dt) * 10, at = half ? 1e-3 * ulp16(dt) : 1e-6;
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return avg_pool2d(v[0], o); }, {x}, rt, at)) << name(dt);
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return avg_pool2d(v[0].permute({0, 2, 1, 3}), o);
          },
          {x.permute({0, 2, 1, 3}).contiguous()}, rt, at))
          << name(dt) << " view";
      EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return avg_pool2d(v[0], o); }, {x}, {0}, rt, at)) << name(dt);
    }
}

TEST(CudaPool, EmptyBatch) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats) {
    Tensor x = rnd({0, 4, 6, 3}, dt);
    Pool2dOptions o{.kernel = {2, 2}};
    Attrs a = pool_op_attrs(o, 4, 6);
    for (size_t out : {0, 1})
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return dispatch(op("max_pool2d"), {v[0]}, a)[out]; }, {x}, 0, 0))
          << name(dt) << " output " << out;
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return avg_pool2d(v[0], o); }, {x}, 0, 0)) << name(dt);
  }
}

// --- batch norm

// The four outputs of batch_norm_train. 16-bit inputs take float32 gamma / beta and give float32
// statistics (as the op): y within an ulp, the statistics at float32 precision.
TEST(CudaBatchNorm, TrainStatisticsMatchCpu) {
  SKIP_WITHOUT_GPU();
  // Row counts below and above one reduction block (256 rows), and far above (many blocks).
  const std::vector<Shape> shapes = {{2, 3}, {3, 5, 7, 4}, {4, 9, 11, 33}, {70001, 3}};
  for (DType dt : kFloats)
    for (const Shape& s : shapes) {
      bool half = is_16bit(dt);
      // An offset mean: the sums must not cancel.
      Tensor x = (rnd(s, DType::f64) + 5.0).to(dt);
      int64_t C = s.back();
      DType pd = half ? DType::f32 : dt;
      Tensor g = rnd({C}, pd), b = rnd({C}, pd);
      for (int i = 0; i < 4; ++i) {
        double rt = half ? (i == 0 ? ulp16(dt) : 1e-5) : (dt == DType::f32 ? 1e-4 : 1e-10);
        double at = half ? (i == 0 ? 1e-2 * ulp16(dt) : 1e-6) : (dt == DType::f32 ? 1e-5 : 1e-12);
        EXPECT_TRUE(same_on_gpu(
            [&](auto& v) {
              return dispatch(op("batch_norm_train"), {v[0], v[1], v[2]}, {{"eps", 1e-3}})[i];
            },
            {x, g, b}, rt, at))
            << to_string(s) << " output " << i << " " << name(dt);
      }
    }
}

// Gradients (batch_norm_backward; for 16-bit inputs dx in 16 bits as y, dgamma / dbeta float32 sums
// in double rounded to gamma's dtype), inference (batch_norm_apply) and its gradients, views.
// More rows than one grid of the per-channel passes covers (65535 blocks of 64 rows): their row
// loops go round, and the statistics sum over 1024 parts.
TEST(CudaBatchNorm, RowsBeyondOneGrid) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({65535 * 64 + 300, 2}, DType::f32), g = rnd({2}, DType::f32), b = rnd({2}, DType::f32);
  auto train = [](const auto& v) {
    return batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], {.training = true, .eps = 1e-3});
  };
  EXPECT_TRUE(same_on_gpu(train, {x, g, b}, 1e-4, 1e-4));
  EXPECT_TRUE(same_grads_on_gpu(train, {x, g, b}, {0, 1, 2}, 1e-3, 1e-4));
}

TEST(CudaBatchNorm, GradientsAndApply) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats)
    for (const Shape& s : std::vector<Shape>{{5, 3}, {3, 5, 7, 4}, {2, 13, 17, 9}}) {
      Tensor x = rnd(s, dt);
      int64_t C = s.back();
      Tensor g = rnd({C}, dt), b = rnd({C}, dt);
      bool half = is_16bit(dt);
      double rt = dt == DType::f32 ? 1e-4 : 1e-9, at = dt == DType::f32 ? 1e-4 : 1e-10;
      // 16-bit gradients pass through more than one rounding (dgamma: a float32 sum rounded to 16
      // bits; batch_norm_apply's: 16-bit products and sums of other ops): up to 2 ulps, and a tenth
      // of an ulp at 1 where float sums of a few hundred products cancel. Outputs: 1 ulp.
      double grt = half ? 2 * ulp16(dt) : rt, gat = half ? 0.1 * ulp16(dt) : at;
      if (half) rt = ulp16(dt), at = 1e-2 * ulp16(dt);
      auto train = [](const auto& v) {
        return batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], {.training = true, .eps = 1e-3});
      };
      if (half) {
        EXPECT_TRUE(same_on_gpu(train, {x, g, b}, rt, at)) << to_string(s) << " " << name(dt);
      }
      EXPECT_TRUE(same_grads_on_gpu(train, {x, g, b}, {0, 1, 2}, grt, gat)) << to_string(s) << " " << name(dt);
      // Double backward through batch_norm_backward (its rule uses public ops).
      Tensor r = rnd(s, dt);
      if (!half) {
        EXPECT_TRUE(same_grads_on_gpu(
            [&](auto& v) {
              Tensor xg = v[0].detach().clone();
              xg.requires_grad_(true);
              Tensor y = batch_norm(xg, Tensor(), Tensor(), v[1], v[2], {.training = true, .eps = 1e-3});
              return glia::grad(sum(y * v[3] * y), xg, {.create_graph = true});
            },
            {x, g, b, r}, {1, 3}, rt * 10, at * 10))
            << to_string(s) << " " << name(dt);
      }
      // Inference: batch_norm_apply with running statistics; its gradients.
      Tensor rm = rnd({C}, dt), rv = rnd({C}, dt, 0.5, 2.0);
      auto infer = [](auto& v) { return batch_norm(v[0], v[3], v[4], v[1], v[2], {.training = false}); };
      EXPECT_TRUE(same_on_gpu(infer, {x, g, b, rm, rv}, rt, at)) << to_string(s) << " " << name(dt);
      EXPECT_TRUE(same_grads_on_gpu(infer, {x, g, b, rm, rv}, {0, 1, 2}, grt, gat)) << to_string(s) << " " << name(dt);
      // A permuted view as input.
      Tensor xt = x.transpose(0, s.size() - 2).contiguous();
      EXPECT_TRUE(same_grads_on_gpu(
          [&](auto& v) {
            return train(std::vector<Tensor>{v[0].transpose(0, static_cast<int64_t>(s.size()) - 2), v[1], v[2]});
          },
          {xt, g, b}, {0, 1, 2}, grt, gat))
          << to_string(s) << " view " << name(dt);
    }
}

TEST(CudaBatchNorm, RunningStatisticsUpdateOnGpu) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({4, 3, 3, 5}, DType::f32);
  auto run = [&](Device d) {
    Tensor rm = zeros({5}, {.device = d}), rv = ones({5}, {.device = d});
    batch_norm(x.to(d), rm, rv, Tensor(), Tensor(), {.training = true, .momentum = 0.9});
    return std::vector<Tensor>{rm.to(Device::cpu()), rv.to(Device::cpu())};
  };
  auto cpu = run(Device::cpu()), gpu = run(kGpu);
  EXPECT_TRUE(testing::all_close(gpu[0], cpu[0], 1e-5, 1e-6));
  EXPECT_TRUE(testing::all_close(gpu[1], cpu[1], 1e-5, 1e-6));
}

// An empty batch in inference, in every float dtype.
TEST(CudaBatchNorm, EmptyBatch) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats) {
    Tensor x = rnd({0, 4, 4, 3}, dt), rm = rnd({3}, dt), rv = rnd({3}, dt, 0.5, 2.0);
    EXPECT_TRUE(
        same_on_gpu([](auto& v) { return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), {.training = false}); },
                    {x, rm, rv}, 0, 0))
        << name(dt);
  }
}

// --- matmul_fused

TEST(CudaMatmulFused, EveryActivationWithAndWithoutBias) {
  SKIP_WITHOUT_GPU();
  Tensor a = rnd({7, 5}, DType::f32), b = rnd({5, 9}, DType::f32), bias = rnd({9}, DType::f32);
  for (const char* act : {"", "relu", "tanh", "sigmoid", "gelu"})
    for (bool approximate : {false, true}) {
      Attrs at{{"activation", std::string(act)}, {"approximate", approximate}};
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return call(op("matmul_fused"), {v[0], v[1], v[2]}, at);
          },
          {a, b, bias}, 1e-5, 1e-5))
          << act << approximate;
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return call(op("matmul_fused"), {v[0], v[1], v[2].reshape({1, 9})}, at);
          },
          {a, b, bias}, 1e-5, 1e-5))
          << act << " [1, N] bias";
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return call(op("matmul_fused"), {v[0].t(), v[1]}, at);
          },
          {a.t().contiguous(), b}, 1e-5, 1e-5))
          << act << " no bias, transposed a";
    }
  // K = 0: the bias through the activation.
  Attrs relu{{"activation", std::string("relu")}};
  EXPECT_TRUE(same_on_gpu(
      [&](auto& v) {
        return call(op("matmul_fused"), {v[0], v[1], v[2]}, relu);
      },
      {zeros({4, 0}), zeros({0, 9}), bias}, 0, 0));
}

}  // namespace
}  // namespace glia
