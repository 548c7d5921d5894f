// Every CUDA kernel against the CPU kernel on the same random inputs (broadcasting, views, several
// dtypes), plus the allocator and copies. They need a GPU and skip without one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "cuda/cuda_testing.h"
#include "glia/core/cuda.h"
#include "glia/glia.h"
#include "testing.h"

namespace glia {
namespace {

using ::testing::HasSubstr;
using namespace glia::cuda_testing;

TEST(CudaCopy, RoundTripAndStridedToContiguousAnyRank) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16, DType::f16, DType::u8, DType::b8}) {
    Tensor x = rnd({3, 4, 5, 2}, DType::f64, 0, 5).to(dt);
    EXPECT_TRUE(testing::all_close(x.to(kGpu).to(Device::cpu()), x, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0].permute({3, 1, 0, 2}).contiguous(); }, {x}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0].slice(1, 1, 4, 2).contiguous(); }, {x}, 0, 0)) << name(dt);
  }
  Tensor big = rnd({7, 1, 9}, DType::f32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0].expand({7, 6, 9}).contiguous(); }, {big}, 0, 0));
  // Copies into views on the GPU, from the CPU and from the GPU.
  Tensor dst = zeros({4, 6}, {.device = kGpu});
  Tensor src = rnd({4, 3}, DType::f64);
  {
    no_grad guard;
    dst.slice(1, 0, 6, 2).copy_(src);
    dst.slice(1, 1, 6, 2).copy_(src.to(kGpu).to(DType::f32));
  }
  Tensor back = dst.to(Device::cpu());
  Tensor want = zeros({4, 6});
  want.slice(1, 0, 6, 2).copy_(src);
  want.slice(1, 1, 6, 2).copy_(src);
  EXPECT_TRUE(testing::all_close(back, want, 1e-6));
}

// Numbers in code reach the GPU through a ring of pinned slots: more copies than slots, each still
// arriving intact, and large copies beside them through the other staging buffer.
TEST(CudaCopy, ManySmallAndLargeCopiesInOrder) {
  SKIP_WITHOUT_GPU();
  Tensor x = zeros({3}, {.dtype = DType::f64, .device = kGpu});
  Tensor big = rnd({5000}, DType::f64);
  Tensor acc = zeros({5000}, {.dtype = DType::f64, .device = kGpu});
  for (int i = 1; i <= 200; ++i) {
    x = x + static_cast<double>(i);
    if (i % 50 == 0) acc = acc + big.to(kGpu);
  }
  EXPECT_TRUE(testing::all_close(x.to(Device::cpu()), std::vector<double>(3, 200.0 * 201 / 2), 0, 0));
  EXPECT_TRUE(testing::all_close(acc.to(Device::cpu()), big * 4.0, 1e-12));
}

// Page-locked copies: the values, shape and dtype of the original (a strided one made contiguous);
// pinning a pinned tensor gives it back; copies to the GPU from pinned memory are asynchronous and
// the storage is held until they are done, so dropping the tensor at once loses nothing, over more
// copies than any ring would hold and with the GPU kept busy in between.
TEST(CudaCopy, PinnedTensorsCopyAsynchronouslyAndSafely) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::bf16}) {
    Tensor x = rnd({6, 5}, DType::f64).to(dt);
    Tensor view = x.permute({1, 0});
    Tensor p = cuda::pin_memory(view);
    EXPECT_TRUE(cuda::is_pinned(p));
    EXPECT_TRUE(p.is_contiguous());
    EXPECT_EQ(p.dtype(), dt);
    EXPECT_EQ(p.device(), Device::cpu());
    EXPECT_TRUE(testing::all_close(p, view, 0, 0)) << name(dt);
    EXPECT_EQ(cuda::pin_memory(p).data_ptr(), p.data_ptr());
    EXPECT_TRUE(testing::all_close(p.to(kGpu).to(Device::cpu()), view, 0, 0)) << name(dt);
  }
  EXPECT_FALSE(cuda::is_pinned(ones({3})));
  EXPECT_FALSE(cuda::is_pinned(ones({3}).to(kGpu)));
  EXPECT_EQ(cuda::pin_memory(Tensor::empty({0, 3})).shape(), (Shape{0, 3}));  // nothing to pin, no error
  std::vector<Tensor> on_gpu;
  Tensor busy = rnd({512, 512}, DType::f32).to(kGpu);
  for (int i = 0; i < 64; ++i) {
    Tensor p = cuda::pin_memory(full({1000}, static_cast<double>(i), {.dtype = DType::f32}));
    on_gpu.push_back(p.to(kGpu));
    busy = matmul(busy, busy) * 1e-3;  // queued work ahead of the next copies
  }
  for (int i = 0; i < 64; ++i)
    EXPECT_TRUE(testing::all_close(on_gpu[static_cast<size_t>(i)].to(Device::cpu()),
                                   full({1000}, static_cast<double>(i), {.dtype = DType::f32}), 0, 0))
        << "copy " << i;
}

// cuda::BatchStager (fit's copies of the next batch during a replayed step): a staged batch arrives
// whole in the step's buffers; a take of other tensors than those uploaded, a second take, or an
// upload of pageable memory does nothing; new shapes get new staging buffers. The third upload waits
// on the host for the second (its host batch is let go), and with it for the copy stream; that
// stream's copy of batch 2 must still wait for the device stream's copy of batch 1 out of the
// staging buffers (the emulator runs queued work only then, so a missing wait shows as batch 2 in
// dst1).
TEST(CudaCopy, StagedBatchesArriveWholeAndInOrder) {
  SKIP_WITHOUT_GPU();
  auto pinned = [](Shape s, DType dt) { return cuda::pin_memory(rnd(s, dt)); };
  cuda::BatchStager stager(kGpu);
  std::vector<Tensor> b1 = {pinned({5, 3}, DType::f32), pinned({5}, DType::f64)};
  std::vector<Tensor> b2 = {pinned({5, 3}, DType::f32), pinned({5}, DType::f64)};
  std::vector<Tensor> b3 = {pinned({5, 3}, DType::f32), pinned({5}, DType::f64)};
  auto on_gpu = [](const std::vector<Tensor>& b) {
    return std::vector<Tensor>{empty({5, 3}, {.device = kGpu}), empty({5}, {.dtype = b[1].dtype(), .device = kGpu})};
  };
  std::vector<Tensor> dst1 = on_gpu(b1), dst2 = on_gpu(b2);
  ASSERT_TRUE(stager.upload(b1));
  EXPECT_FALSE(stager.take(b2, dst1));  // not the uploaded tensors: nothing copied, the batch dropped
  EXPECT_FALSE(stager.take(b1, dst1));  // used up
  ASSERT_TRUE(stager.upload(b1));
  ASSERT_TRUE(stager.take(b1, dst1));
  ASSERT_TRUE(stager.upload(b2));
  ASSERT_TRUE(stager.take(b2, dst2));
  ASSERT_TRUE(stager.upload(b3));
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(testing::all_close(dst1[i].to(Device::cpu()), b1[i], 0, 0)) << "batch 1, tensor " << i;
    EXPECT_TRUE(testing::all_close(dst2[i].to(Device::cpu()), b2[i], 0, 0)) << "batch 2, tensor " << i;
  }
  // Pageable memory is refused; a batch of another shape gets new staging buffers.
  EXPECT_FALSE(stager.upload({rnd({5, 3}, DType::f32)}));
  std::vector<Tensor> b4 = {pinned({2, 7}, DType::f32)}, dst4 = {empty({2, 7}, {.device = kGpu})};
  ASSERT_TRUE(stager.upload(b4));
  ASSERT_TRUE(stager.take(b4, dst4));
  EXPECT_TRUE(testing::all_close(dst4[0].to(Device::cpu()), b4[0], 0, 0));
}

// Batches made in page-locked memory (what fit does on a GPU): the rows of ordinary batches, in
// both of batch's paths (rows gathered from from_tensors, elements stacked after a map), each
// component pinned, contiguous and of its dtype; and they copy to the GPU intact.
TEST(CudaCopy, PinnedBatchesHoldTheSameRows) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({10, 3, 2}, DType::f32), y = arange(10);
  for (bool stacked : {false, true}) {
    data::Dataset ds = data::Dataset::from_tensors({x, y}).shuffle(10, 7, false);
    if (stacked) ds = ds.map([](data::Element e) { return e; });
    std::vector<data::Element> plain, pinned;
    for (const data::Element& b : ds.batch(4)) plain.push_back(b);
    for (const data::Element& b : ds.batch(4, false, true)) pinned.push_back(b);
    ASSERT_EQ(pinned.size(), 3u);
    ASSERT_EQ(plain.size(), pinned.size());
    for (size_t i = 0; i < plain.size(); ++i)
      for (size_t c = 0; c < 2; ++c) {
        const Tensor& p = pinned[i][c];
        EXPECT_TRUE(cuda::is_pinned(p)) << "batch " << i << " component " << c << " stacked " << stacked;
        EXPECT_TRUE(p.is_contiguous());
        EXPECT_EQ(p.dtype(), plain[i][c].dtype());
        EXPECT_TRUE(testing::all_close(p, plain[i][c], 0, 0)) << "batch " << i << " component " << c;
        EXPECT_TRUE(testing::all_close(p.to(kGpu).to(Device::cpu()), plain[i][c], 0, 0));
      }
  }
  // Batches of 1 MiB or more are gathered on several threads: the same rows, the last one short.
  Tensor big = rnd({2500, 1024}, DType::f32);
  data::Dataset bds = data::Dataset::from_tensors({big}).shuffle(2500, 3, false);
  std::vector<Tensor> plain_big, pinned_big;
  for (const data::Element& b : bds.batch(1024)) plain_big.push_back(b[0]);
  for (const data::Element& b : bds.batch(1024, false, true)) pinned_big.push_back(b[0]);
  ASSERT_EQ(pinned_big.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(cuda::is_pinned(pinned_big[i]));
    EXPECT_TRUE(testing::all_close(pinned_big[i], plain_big[i], 0, 0)) << "big batch " << i;
  }
  Tensor e = cuda::empty_pinned({3, 0, 2}, DType::i64);
  EXPECT_EQ(e.shape(), (Shape{3, 0, 2}));
  EXPECT_EQ(e.dtype(), DType::i64);
  Tensor f = cuda::empty_pinned({5, 4}, DType::bf16);
  EXPECT_TRUE(cuda::is_pinned(f));
  EXPECT_EQ(f.shape(), (Shape{5, 4}));
  EXPECT_TRUE(f.is_contiguous());
  EXPECT_THROW(cuda::empty_pinned({2, -1}), ShapeError);
}

TEST(CudaCopy, CastBetweenDTypes) {
  SKIP_WITHOUT_GPU();
  const DType all[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::b8};
  for (DType from : all)
    for (DType to : all) {
      Tensor x = rnd({5, 7}, DType::f64, 0, 9).to(from);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return v[0].t().to(to); }, {x}, 0, 0)) << name(from) << "->" << name(to);
    }
}

TEST(CudaFill, FullAndFullLike) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16, DType::b8}) {
    Tensor g = full({3, 5}, 3, {.dtype = dt, .device = kGpu});
    EXPECT_TRUE(testing::all_close(g.to(Device::cpu()), full({3, 5}, 3, {.dtype = dt}), 0, 0)) << name(dt);
    EXPECT_TRUE(testing::all_close(zeros_like(g).to(Device::cpu()), zeros({3, 5}, {.dtype = dt}), 0, 0));
  }
  Tensor g = zeros({4, 4}, {.device = kGpu});
  {
    no_grad guard;
    g.slice(0, 1, 4, 2).fill_(-2.5);
  }
  Tensor want = zeros({4, 4});
  want.slice(0, 1, 4, 2).fill_(-2.5);
  EXPECT_TRUE(testing::all_close(g.to(Device::cpu()), want, 0, 0));
}

TEST(CudaElementwise, BinaryWithBroadcastingAndViews) {
  SKIP_WITHOUT_GPU();
  using Bin = Tensor (*)(const Tensor&, const Tensor&);
  const std::pair<const char*, Bin> ops[] = {{"add", add}, {"sub", sub},         {"mul", mul},
                                             {"div", div}, {"maximum", maximum}, {"minimum", minimum}};
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64}) {
    Tensor a = rnd({3, 1, 5}, dt, -9, 9), b = rnd({4, 1}, dt, 1, 9);  // b > 0: integer division
    Tensor c = rnd({5, 4}, dt, -9, 9);
    for (auto [nm, f] : ops) {
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0], v[1]); }, {a, b}, tol(dt))) << nm << " " << name(dt);
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0].t(), v[1]); }, {c, rnd({1, 5}, dt, 1, 9)}, tol(dt)))
          << nm << " (transposed view) " << name(dt);
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0], v[1]); }, {rnd({0, 3}, dt), rnd({3}, dt, 1, 9)}, 0))
          << nm << " (empty) " << name(dt);
    }
    // A number from code (a 0-d CPU tensor) with a GPU tensor.
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] * 3 + 1; }, {a}, tol(dt))) << name(dt);
  }
  Tensor base = rnd({6, 3}, DType::f64, 0.5, 2), ex = rnd({3}, DType::f64, -2, 2);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return pow(v[0], v[1]); }, {base, ex}, 1e-12));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return pow(v[0], v[1]); },
                          {rnd({6}, DType::i64, -3, 3), rnd({6}, DType::i64, 0, 4)}, 0));
}

TEST(CudaElementwise, Unary) {
  SKIP_WITHOUT_GPU();
  using Un = Tensor (*)(const Tensor&);
  const std::pair<const char*, Un> any[] = {{"neg", neg}, {"abs", abs}, {"relu", relu}, {"square", square}};
  const std::pair<const char*, Un> flt[] = {
      {"exp", exp},     {"sigmoid", sigmoid},      {"tanh", tanh}, {"log", log}, {"sqrt", sqrt},
      {"rsqrt", rsqrt}, {"reciprocal", reciprocal}};
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64}) {
    Tensor x = rnd({4, 6}, dt, -5, 5);
    for (auto [nm, f] : any) {
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0]); }, {x}, tol(dt))) << nm << " " << name(dt);
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0].t()); }, {x}, tol(dt))) << nm << " view " << name(dt);
    }
  }
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = rnd({4, 6}, dt, 0.1, 4);  // positive: log, sqrt, rsqrt
    for (auto [nm, f] : flt) {
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0]); }, {x}, 10 * tol(dt))) << nm << " " << name(dt);
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0].t()); }, {x}, 10 * tol(dt))) << nm << " view";
    }
    EXPECT_TRUE(same_on_gpu([](auto& v) { return sigmoid(v[0]); }, {rnd({50}, dt, -40, 40)}, 10 * tol(dt)));
  }
}

// Integers in [lo, hi) (truncated draws, so bool gets both values).
Tensor ints(IntList shape, DType dt, double lo, double hi) {
  return rnd(shape, DType::f64, lo, hi).to(DType::i64).to(dt);
}

// One unit in the last place of a 16-bit float, relative: the GPU's and the CPU's math libraries may
// differ by that after rounding (exp, pow, ...); plain arithmetic rounds the same float once on both.
double ulp16(DType dt) { return (dt == DType::bf16 ? 1.0 / 128 : 1.0 / 1024) * 1.001; }
// The same for float16's subnormals (sigmoid(-12)), whose steps are absolute.
constexpr double kSub16 = 6e-8;

using Bin = Tensor (*)(const Tensor&, const Tensor&);
using Un = Tensor (*)(const Tensor&);

using Make = std::function<Tensor(IntList)>;

// Contiguous (the flat path), a number broadcast to all (flat), broadcasting, a transposed and a
// strided slice (the offset calculator), and an empty result.
::testing::AssertionResult binary_cases(Bin f, const Make& make, double rtol, double atol) {
  const std::vector<std::vector<Tensor>> cases = {
      {make({4, 7}), make({4, 7})},    {make({5, 3}), make({1})},     {make({1}), make({13})},
      {make({3, 1, 5}), make({4, 1})}, {make({7, 4}).t(), make({7})}, {make({6, 9}).slice(1, 1, 9, 3), make({6, 3})},
      {make({0, 3}), make({3})},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto same = same_on_gpu([f](auto& v) { return f(v[0], v[1]); }, cases[i], rtol, atol);
    if (!same) return same << " (case " << i << ")";
    same = same_on_gpu([f](auto& v) { return f(v[1], v[0]); }, cases[i], rtol, atol);
    if (!same) return same << " (case " << i << ", operands swapped)";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult unary_cases(Un f, const Make& make, double rtol, double atol) {
  const std::vector<Tensor> cases = {make({5, 7}), make({3}), make({6, 4}).t(), make({4, 9}).slice(1, 2, 9, 2),
                                     make({2, 0})};
  for (size_t i = 0; i < cases.size(); ++i) {
    auto same = same_on_gpu([f](auto& v) { return f(v[0]); }, {cases[i]}, rtol, atol);
    if (!same) return same << " (case " << i << ")";
  }
  return ::testing::AssertionSuccess();
}

TEST(CudaElementwise, BinarySixteenBitAsOnCpu) {
  SKIP_WITHOUT_GPU();
  const std::pair<const char*, Bin> exact[] = {{"add", add}, {"sub", sub},         {"mul", mul},
                                               {"div", div}, {"maximum", maximum}, {"minimum", minimum}};
  for (DType dt : {DType::bf16, DType::f16}) {
    // Both compute in float and round once: the same bits (NaN aside).
    auto wide = [dt](IntList s) { return rnd(s, dt, -9, 9); };
    for (auto [nm, f] : exact) EXPECT_TRUE(binary_cases(f, wide, 0, 0)) << nm << " " << name(dt);
    auto base = [dt](IntList s) { return rnd(s, dt, 0.25, 3); };
    EXPECT_TRUE(binary_cases(pow, base, ulp16(dt), kSub16)) << "pow " << name(dt);
    // NaN propagates through maximum / minimum; x / 0 is inf.
    Tensor nan = tensor(std::vector<float>{1.f, NAN, -2.f, 3.f, NAN, 0.f}, {6}).to(dt);
    Tensor other = tensor(std::vector<float>{NAN, 1.f, 5.f, -1.f, NAN, 0.f}, {6}).to(dt);
    const Bin nan_ops[] = {maximum, minimum, div};
    for (Bin f : nan_ops)
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0], v[1]); }, {nan, other}, 0, 0)) << name(dt);

    // Numbers of another dtype are used in float, not rounded to 16 bits first (1e5 is inf in
    // float16; 1.7 is not a bfloat16): on either side, from code (0-d CPU) or as a 0-d GPU tensor.
    Tensor x = rnd({4, 5}, dt, -3, 3);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] / 1e5; }, {x}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] * 1.7 + 1; }, {x}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return 3.3 - v[0]; }, {x}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return 1000.3 / v[0].t(); }, {x}, 0, 0)) << name(dt);
    Tensor f32 = tensor(std::vector<float>{1.7f}, {}), i64 = tensor(std::vector<int64_t>{7}, {});
    for (auto [nm, f] : exact) {
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0], v[1]); }, {x, f32}, 0, 0)) << nm << " " << name(dt);
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[1], v[0].t()); }, {x, f32}, 0, 0)) << nm << " " << name(dt);
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0], v[1]); }, {x, i64}, 0, 0)) << nm << " " << name(dt);
    }
    EXPECT_TRUE(same_on_gpu([](auto& v) { return pow(v[0], v[1]); }, {rnd({6}, dt, 0.5, 2), f32}, ulp16(dt), kSub16));
    // A 0-d tensor of the same dtype is no such number; nor are two 0-d tensors.
    Tensor s = tensor(std::vector<float>{1.7f}, {}).to(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] * v[1]; }, {x, s}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] * v[1]; }, {s, f32}, 0, 0)) << name(dt);
    // An integer tensor with a 16-bit 0-d tensor.
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] * v[1]; }, {ints({3, 4}, DType::i32, -300, 300), s}, 0, 0));
  }
}

TEST(CudaElementwise, BinaryBoolAndUint8AsOnCpu) {
  SKIP_WITHOUT_GPU();
  // uint8 wraps (250 + 10 is 4, 10 - 250 is 16, 16 * 16 is 0); div gives float32.
  auto u8 = [](IntList s) { return ints(s, DType::u8, 0, 256); };
  const std::pair<const char*, Bin> u8_ops[] = {
      {"add", add}, {"sub", sub}, {"mul", mul}, {"maximum", maximum}, {"minimum", minimum}};
  for (auto [nm, f] : u8_ops) EXPECT_TRUE(binary_cases(f, u8, 0, 0)) << nm << " uint8";
  EXPECT_TRUE(binary_cases(div, u8, 1e-6, 0)) << "div uint8";
  Tensor a = tensor(std::vector<uint8_t>{250, 10, 16, 0}, {4}), b = tensor(std::vector<uint8_t>{10, 250, 16, 0}, {4});
  EXPECT_TRUE(testing::all_close((a.to(kGpu) + b.to(kGpu)).to(Device::cpu()), {4, 4, 32, 0}, 0, 0));
  EXPECT_TRUE(testing::all_close((a.to(kGpu) - b.to(kGpu)).to(Device::cpu()), {240, 16, 0, 0}, 0, 0));
  EXPECT_TRUE(testing::all_close((a.to(kGpu) * b.to(kGpu)).to(Device::cpu()), {196, 196, 0, 0}, 0, 0));
  // Integer powers wrap too; x^0 is 1 (0^0 included).
  EXPECT_TRUE(same_on_gpu([](auto& v) { return pow(v[0], v[1]); }, {u8({5, 6}), ints({6}, DType::u8, 0, 5)}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return pow(v[0].t(), v[1]); }, {u8({6, 5}), ints({6}, DType::u8, 0, 5)}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0] + 7; }, {u8({3, 4})}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return 200 * v[0].t(); }, {u8({3, 4})}, 0, 0));

  // bool: add and maximum are or, mul and minimum are and, pow is a || !b, div gives float32.
  auto bl = [](IntList s) { return ints(s, DType::b8, 0, 2); };
  const std::pair<const char*, Bin> b8_ops[] = {
      {"add", add}, {"mul", mul}, {"maximum", maximum}, {"minimum", minimum}, {"pow", pow}};
  for (auto [nm, f] : b8_ops) EXPECT_TRUE(binary_cases(f, bl, 0, 0)) << nm << " bool";
  EXPECT_TRUE(binary_cases(div, bl, 1e-6, 0)) << "div bool";
  Tensor p = tensor(std::vector<uint8_t>{0, 0, 1, 1}, {4}).to(DType::b8).to(kGpu);
  Tensor q = tensor(std::vector<uint8_t>{0, 1, 0, 1}, {4}).to(DType::b8).to(kGpu);
  EXPECT_TRUE(testing::all_close((p + q).to(Device::cpu()), {0, 1, 1, 1}, 0, 0));
  EXPECT_TRUE(testing::all_close((p * q).to(Device::cpu()), {0, 0, 0, 1}, 0, 0));
  EXPECT_TRUE(testing::all_close(pow(p, q).to(Device::cpu()), {1, 0, 1, 1}, 0, 0));
  EXPECT_EQ(pow(p, q).dtype(), DType::b8);
  // As on the CPU: bool subtraction is refused, naming the op and the way out.
  std::string msg = testing::error_of<DTypeError>([&] { (void)sub(p, q); });
  EXPECT_THAT(msg, HasSubstr("sub"));
  EXPECT_THAT(msg, HasSubstr("logical_xor"));
}

TEST(CudaElementwise, UnarySixteenBitBoolAndUint8AsOnCpu) {
  SKIP_WITHOUT_GPU();
  const std::pair<const char*, Un> any[] = {{"neg", neg}, {"abs", abs}, {"relu", relu}, {"square", square}};
  // sqrt, rsqrt and reciprocal are correctly rounded in float on both: the same bits.
  const std::pair<const char*, Un> exact[] = {{"sqrt", sqrt}, {"rsqrt", rsqrt}, {"reciprocal", reciprocal}};
  const std::pair<const char*, Un> libm[] = {{"exp", exp}, {"sigmoid", sigmoid}, {"tanh", tanh}, {"log", log}};
  for (DType dt : {DType::bf16, DType::f16}) {
    auto wide = [dt](IntList s) { return rnd(s, dt, -5, 5); };
    auto positive = [dt](IntList s) { return rnd(s, dt, 0.1, 4); };
    for (auto [nm, f] : any) EXPECT_TRUE(unary_cases(f, wide, 0, 0)) << nm << " " << name(dt);
    for (auto [nm, f] : exact) EXPECT_TRUE(unary_cases(f, positive, 0, 0)) << nm << " " << name(dt);
    for (auto [nm, f] : libm) EXPECT_TRUE(unary_cases(f, positive, ulp16(dt), kSub16)) << nm << " " << name(dt);
    const Un signed_ok[] = {exp, sigmoid, tanh};
    for (Un f : signed_ok) EXPECT_TRUE(unary_cases(f, wide, ulp16(dt), kSub16)) << name(dt);
    // Large |x| (sigmoid's two branches, overflow of exp and of square in float16), NaN and -0.
    Tensor edge = tensor(std::vector<float>{-40.f, -12.f, 12.f, 40.f, 300.f, NAN, -0.f, 0.f}, {8}).to(dt);
    const Un exact_edge[] = {neg, abs, relu, square, sqrt, reciprocal};
    for (Un f : exact_edge) EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0]); }, {edge}, 0, 0)) << name(dt);
    for (Un f : signed_ok)
      EXPECT_TRUE(same_on_gpu([f](auto& v) { return f(v[0]); }, {edge}, ulp16(dt), kSub16)) << name(dt);
  }
  // uint8: neg wraps (256 - x), square wraps, abs and relu leave every value (128..255 included).
  auto u8 = [](IntList s) { return ints(s, DType::u8, 0, 256); };
  for (auto [nm, f] : any) EXPECT_TRUE(unary_cases(f, u8, 0, 0)) << nm << " uint8";
  Tensor a = tensor(std::vector<uint8_t>{0, 1, 200, 16}, {4}).to(kGpu);
  EXPECT_TRUE(testing::all_close(neg(a).to(Device::cpu()), {0, 255, 56, 240}, 0, 0));
  EXPECT_TRUE(testing::all_close(square(a).to(Device::cpu()), {0, 1, 64, 0}, 0, 0));
  EXPECT_TRUE(testing::all_close(relu(a).to(Device::cpu()), {0, 1, 200, 16}, 0, 0));
  // bool: abs, relu and square are the identity; neg is refused as on the CPU.
  auto bl = [](IntList s) { return ints(s, DType::b8, 0, 2); };
  const Un identity[] = {abs, relu, square};
  for (Un f : identity) EXPECT_TRUE(unary_cases(f, bl, 0, 0)) << "bool";
  Tensor p = tensor(std::vector<uint8_t>{0, 1, 1, 0}, {4}).to(DType::b8).to(kGpu);
  for (Un f : identity) {
    Tensor y = f(p);
    EXPECT_EQ(y.dtype(), DType::b8);
    EXPECT_TRUE(testing::all_close(y.to(Device::cpu()), {0, 1, 1, 0}, 0, 0));
  }
  std::string msg = testing::error_of<DTypeError>([&] { (void)neg(p); });
  EXPECT_THAT(msg, HasSubstr("neg"));
  EXPECT_THAT(msg, HasSubstr("logical_not"));
}

TEST(CudaMatmul, BatchedBroadcastAndTransposedAgainstCpu) {
  SKIP_WITHOUT_GPU();
  ASSERT_FALSE(cuda::allow_tf32());  // off by default: float32 results match the CPU closely
  for (DType dt : {DType::f32, DType::f64}) {
    double rt = dt == DType::f32 ? 1e-4 : 1e-12;
    auto same = [&](auto f, const std::vector<Tensor>& in) {
      return same_on_gpu(f, in, rt, dt == DType::f32 ? 1e-4 : 1e-10);
    };
    auto mm = [](auto& v) { return matmul(v[0], v[1]); };
    EXPECT_TRUE(same(mm, {rnd({7, 5}, dt), rnd({5, 3}, dt)})) << name(dt);
    EXPECT_TRUE(same(mm, {rnd({2, 3, 7, 5}, dt), rnd({5, 4}, dt)})) << name(dt);
    EXPECT_TRUE(same(mm, {rnd({6, 5}, dt), rnd({2, 5, 4}, dt)})) << name(dt);
    EXPECT_TRUE(same(mm, {rnd({2, 1, 6, 5}, dt), rnd({3, 5, 4}, dt)})) << name(dt);
    EXPECT_TRUE(same([](auto& v) { return matmul(v[0].t(), v[1].t()); }, {rnd({5, 7}, dt), rnd({3, 5}, dt)}));
    // Views cuBLAS reads in place (transposed, sliced rows / columns, batches of one stride, shared
    // batches) and views it cannot (every other column: copied first).
    auto tr = [](const Tensor& t) { return t.transpose(-1, -2); };
    EXPECT_TRUE(same([&](auto& v) { return matmul(tr(v[0]), tr(v[1])); }, {rnd({2, 5, 7}, dt), rnd({2, 3, 5}, dt)}));
    EXPECT_TRUE(same([&](auto& v) { return matmul(v[0], tr(v[1])); }, {rnd({2, 3, 7, 5}, dt), rnd({3, 4, 5}, dt)}));
    EXPECT_TRUE(same([](auto& v) { return matmul(v[0].slice(1, 1, 6), v[1].slice(0, 2, 7)); },
                     {rnd({4, 8}, dt), rnd({9, 3}, dt)}));
    EXPECT_TRUE(
        same([](auto& v) { return matmul(v[0].slice(1, 0, 10, 2), v[1]); }, {rnd({4, 10}, dt), rnd({5, 3}, dt)}));
    EXPECT_TRUE(same([&](auto& v) { return matmul(tr(v[0]).slice(0, 1, 4), v[1].slice(1, 0, 2)); },
                     {rnd({6, 5}, dt), rnd({6, 4}, dt)}));
    EXPECT_TRUE(same([&](auto& v) { return matmul(tr(v[0]), v[1]); }, {rnd({3, 1, 5}, dt), rnd({3, 1, 2}, dt)}))
        << "outer products";
    EXPECT_TRUE(same([&](auto& v) { return matmul(v[0], tr(v[1])); }, {rnd({1, 6}, dt), rnd({1, 6}, dt)})) << "dot";
    EXPECT_TRUE(same(mm, {rnd({2, 4, 6, 5}, dt).permute({1, 0, 2, 3}), rnd({5, 3}, dt)})) << "permuted batches";
    EXPECT_TRUE(same(mm, {rnd({4, 0}, dt), rnd({0, 3}, dt)})) << "K = 0";
    EXPECT_TRUE(same(mm, {rnd({5}, dt), rnd({5, 3}, dt)})) << "vector @ matrix";
  }
}

TEST(CudaReduce, SumOverAxes) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64}) {
    Tensor x = rnd({3, 4, 5}, dt, -5, 5);
    // Summation order differs from the CPU's: float32 sums near zero need an absolute tolerance.
    double rt = dt == DType::f32 ? 1e-5 : 1e-12, at = dt == DType::f32 ? 1e-4 : 1e-10;
    EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0].sum(); }, {x}, rt, at)) << name(dt);
    for (int64_t d = 0; d < 3; ++d)
      EXPECT_TRUE(same_on_gpu([d](auto& v) { return sum(v[0], {d}); }, {x}, rt, at)) << name(dt) << " dim " << d;
    EXPECT_TRUE(same_on_gpu([](auto& v) { return sum(v[0], {0, 2}, true); }, {x}, rt, at)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return sum(v[0].permute({2, 0, 1}), {1}); }, {x}, rt, at)) << name(dt);
  }
  EXPECT_TRUE(same_on_gpu([](auto& v) { return v[0].sum(); }, {rnd({100000}, DType::f64)}, 1e-10));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return sum(v[0], {1}); }, {rnd({3, 0}, DType::f32)}, 0));
}

// The gradient rules are device independent: on the GPU they run on the kernels above.
TEST(CudaAutograd, GradientsOnGpuMatchCpu) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({3, 5}, DType::f64), w = rnd({5, 4}, DType::f64), b = rnd({4}, DType::f64);
  auto grads_on = [&](Device d) {
    std::vector<Tensor> in = {x.clone().to(d), w.clone().to(d), b.clone().to(d)};  // fresh leaves
    for (Tensor& t : in) t.requires_grad_(true);
    Tensor loss = sum(square(matmul(in[0], in[1]) + in[2])) + sum(exp(in[0]) / (in[0] * in[0] + 1.0));
    loss.backward();
    std::vector<Tensor> g;
    for (Tensor& t : in) g.push_back(t.grad().detach().to(Device::cpu()));
    EXPECT_EQ(in[0].grad().device(), d);
    return g;
  };
  std::vector<Tensor> cpu = grads_on(Device::cpu()), gpu = grads_on(kGpu);
  for (size_t i = 0; i < cpu.size(); ++i) EXPECT_TRUE(testing::all_close(gpu[i], cpu[i], 1e-10, 1e-12)) << i;
}

// to(Device) is differentiable: a CPU leaf used on the GPU gets its gradient back on the CPU, and a
// GPU leaf used on the CPU gets it on the GPU; second order works through the moves too.
TEST(CudaAutograd, GradientsFlowThroughMovesBetweenDevices) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({4, 3}, DType::f64);
  x.requires_grad_(true);
  Tensor y = sum(exp(x.to(kGpu)) * 2.0).to(Device::cpu());
  y.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().device(), Device::cpu());
  EXPECT_TRUE(testing::all_close(x.grad(), exp(x.detach()) * 2.0, 1e-12));

  Tensor g = rnd({5}, DType::f64).to(kGpu);
  g.requires_grad_(true);
  Tensor z = sum(g.to(Device::cpu()) * g.to(Device::cpu()) * g.to(Device::cpu()));
  Tensor dg = grad(z, g, {.create_graph = true});
  EXPECT_EQ(dg.device(), kGpu);
  Tensor ddg = grad(sum(dg), g);  // d/dg sum(3 g^2) = 6 g
  EXPECT_TRUE(testing::all_close(ddg.to(Device::cpu()), g.detach().to(Device::cpu()) * 6.0, 1e-12));
}

TEST(CudaAllocator, CachesReusesSplitsAndEmpties) {
  SKIP_WITHOUT_GPU();
  empty_cache(kGpu);
  reset_peak_memory_stats(kGpu);
  AllocatorStats s0 = memory_stats(kGpu);
  { Tensor a = Tensor::empty({1000}, DType::f32, kGpu); }  // 4000 B -> 4096 B from a 2 MiB segment
  AllocatorStats s1 = memory_stats(kGpu);
  EXPECT_EQ(s1.alloc_calls, s0.alloc_calls + 1);
  EXPECT_EQ(s1.allocated_bytes, s0.allocated_bytes);
  EXPECT_GE(s1.reserved_bytes, s0.reserved_bytes);
  EXPECT_GE(s1.peak_allocated_bytes, s0.allocated_bytes + 4096);
  {
    // Served from the cached segment: no new system allocation.
    Tensor b = Tensor::empty({100}, DType::f32, kGpu), c = Tensor::empty({200}, DType::f32, kGpu);
    EXPECT_EQ(memory_stats(kGpu).system_allocs, s1.system_allocs);
    EXPECT_NE(b.data_ptr(), c.data_ptr());
  }
  { Tensor big = Tensor::empty({3 << 20}, DType::f32, kGpu); }  // 12 MiB: a large block
  int64_t sys = memory_stats(kGpu).system_allocs;
  { Tensor big2 = Tensor::empty({3 << 20}, DType::f32, kGpu); }
  EXPECT_EQ(memory_stats(kGpu).system_allocs, sys);
  int64_t reserved = memory_stats(kGpu).reserved_bytes;
  empty_cache(kGpu);
  EXPECT_LE(memory_stats(kGpu).reserved_bytes, reserved - (int64_t(12) << 20));  // the large segment went back
  EXPECT_GE(memory_stats(kGpu).reserved_bytes, memory_stats(kGpu).allocated_bytes);
}

TEST(CudaAllocator, OutOfMemorySaysAskedAllocatedAndFree) {
  SKIP_WITHOUT_GPU();
  try {
    Tensor::empty({int64_t(1) << 48}, DType::f32, kGpu);
    ADD_FAILURE() << "expected out of memory";
  } catch (const DeviceError& e) {
    std::string m = e.what();
    EXPECT_THAT(m, HasSubstr("out of memory on Device::cuda(0)"));
    EXPECT_THAT(m, HasSubstr("asked for " + std::to_string(int64_t(4) << 48) + " bytes"));
    EXPECT_THAT(m, HasSubstr("allocated"));
    EXPECT_THAT(m, HasSubstr("free"));
  }
  Tensor ok = ones({10}, {.device = kGpu});  // still usable after the failure
  EXPECT_EQ(ok.sum().item().to_double(), 10.0);
}

TEST(CudaRuntime, RealTensorsAcrossDevicesNameBothDevices) {
  SKIP_WITHOUT_GPU();
  Tensor g = ones({2, 3}, {.device = kGpu}), c = ones({2, 3});
  try {
    add(c, g);
    ADD_FAILURE() << "expected a DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("cpu"));
    EXPECT_THAT(std::string(e.what()), HasSubstr("cuda:0"));
  }
  EXPECT_NO_THROW(cuda::synchronize(kGpu));
}

}  // namespace
}  // namespace glia
