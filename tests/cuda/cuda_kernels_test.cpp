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
