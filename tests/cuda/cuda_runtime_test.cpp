// The CUDA entry points where no GPU (or no CUDA build) is at hand: they report it clearly, and the
// CPU side and the op registry are unaffected. These run on every machine.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "glia/core/cuda.h"
#include "glia/glia.h"
#include "glia/ops/op.h"
#include "testing.h"

namespace glia {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

std::string device_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const DeviceError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a DeviceError";
  return "";
}

TEST(CudaRuntime, IsAvailableNeverThrows) {
  bool avail = false;
  EXPECT_NO_THROW(avail = cuda::is_available());
  EXPECT_EQ(avail, cuda::device_count() > 0);
  if (!cuda::built_with_cuda()) {
    EXPECT_FALSE(avail);
  }
}

// describe() names the versions and each GPU, or why there is none; it never throws. (gpu-check
// prints it first: the versions the GPU machine actually loaded.)
TEST(CudaRuntime, DescribeNamesVersionsAndEachGpu) {
  std::string d;
  EXPECT_NO_THROW(d = cuda::describe());
  std::cout << "cuda::describe(): " << d << "\n";
  if (!cuda::built_with_cuda()) {
    EXPECT_EQ(d, "this build of Glia has no CUDA support");
    return;
  }
  EXPECT_THAT(d, HasSubstr("CUDA runtime 13."));
  EXPECT_THAT(d, HasSubstr(", cuDNN 9."));
  EXPECT_THAT(d, HasSubstr(", cuBLAS 13."));
  if (cuda::is_available()) {
    EXPECT_THAT(d, HasSubstr("; cuda:0 "));
    EXPECT_THAT(d, HasSubstr(" MiB, "));
    EXPECT_THAT(d, ::testing::Not(HasSubstr("no usable GPU")));
  } else {
    EXPECT_THAT(d, HasSubstr("; no usable GPU: "));
  }
}

TEST(CudaRuntime, FirstUseWithoutGpuThrowsDeviceErrorNamingDeviceAndReason) {
  if (cuda::is_available()) GTEST_SKIP() << "a CUDA GPU is present: this checks the no-GPU path";
  std::string msg = device_error([] { Tensor::empty({2, 3}, DType::f32, Device::cuda(0)); });
  EXPECT_THAT(msg, HasSubstr("Device::cuda(0)"));
  EXPECT_THAT(msg, AnyOf(HasSubstr("no CUDA GPU is available (cudaGetDeviceCount: "),
                         HasSubstr("this build of Glia has no CUDA support")));
  if (cuda::built_with_cuda()) {
    EXPECT_THAT(msg, HasSubstr("cudaGetDeviceCount"));
  }
  // The same for the other entry points, and again on a second try (no half-initialized state).
  EXPECT_THAT(device_error([] { zeros({4}, {.device = Device::cuda(0)}); }), HasSubstr("Device::cuda(0)"));
  EXPECT_THAT(device_error([] { ones({4}).to(Device::cuda(0)); }), HasSubstr("Device::cuda(0)"));
  EXPECT_THAT(device_error([] { cuda::synchronize(Device::cuda(0)); }), HasSubstr("Device::cuda(0)"));
  EXPECT_THAT(device_error([] { memory_stats(Device::cuda(0)); }), HasSubstr("Device::cuda(0)"));
  EXPECT_THAT(device_error([] { Tensor::empty({1}, DType::f32, Device::cuda(1)); }), HasSubstr("Device::cuda(1)"));
  // Page-locked memory needs CUDA too; a tensor is never pinned without it.
  EXPECT_THAT(device_error([] { cuda::pin_memory(ones({4})); }),
              AnyOf(HasSubstr("no CUDA GPU is available"), HasSubstr("no CUDA support")));
  EXPECT_THAT(device_error([] { cuda::empty_pinned({4}); }),
              AnyOf(HasSubstr("no CUDA GPU is available"), HasSubstr("no CUDA support")));
  EXPECT_THAT(device_error([] { data::Dataset::from_tensors({ones({4})}).batch(2, false, true); }),
              HasSubstr("pin_memory needs a CUDA GPU"));
  EXPECT_FALSE(cuda::is_pinned(ones({4})));
  EXPECT_FALSE(cuda::is_pinned(Tensor()));
}

TEST(CudaRuntime, CpuUseIsUnaffectedByAFailedCudaUse) {
  if (!cuda::is_available()) {
    EXPECT_THROW(Tensor::empty({8}, DType::f32, Device::cuda(0)), DeviceError);
  }
  Tensor a = testing::uniform({3, 4}), b = testing::uniform({4});
  Tensor c = a + b;
  EXPECT_EQ(c.device(), Device::cpu());
  std::vector<double> av = testing::values(a), bv = testing::values(b), cv = testing::values(c);
  for (size_t i = 0; i < cv.size(); ++i) EXPECT_DOUBLE_EQ(cv[i], av[i] + bv[i % 4]);
  EXPECT_NO_THROW(memory_stats(Device::cpu()));
  EXPECT_EQ(a.to(Device::cpu()).device(), Device::cpu());
}

// A CUDA build gives every op a CUDA kernel beside its CPU kernel; a CPU-only build gives none.
TEST(CudaRegistry, EveryOpHasACpuAndACudaKernel) {
  size_t ops = 0;
  for (const OpDef* op : OpRegistry::instance().all()) {
    if (!op->kernel_for(DeviceType::CPU) && !op->kernel_for(DeviceType::CUDA)) continue;  // views
    ++ops;
    EXPECT_NE(op->kernel_for(DeviceType::CPU), nullptr) << op->name() << " has a CUDA kernel but no CPU kernel";
    if (cuda::built_with_cuda())
      EXPECT_NE(op->kernel_for(DeviceType::CUDA), nullptr) << op->name() << " has no CUDA kernel";
    else
      EXPECT_EQ(op->kernel_for(DeviceType::CUDA), nullptr) << op->name();
  }
  EXPECT_GT(ops, 100u);
  for (const char* name : {"conv2d", "fused_elementwise", "dropout", "optim_adam_update", "to_device", "sum"})
    EXPECT_NE(OpRegistry::instance().find(name), nullptr) << name;
}

// A tensor that claims to live on cuda:0 but wraps host memory: enough to reach the device check of
// dispatch without a GPU (its data is never read).
Tensor fake_cuda(IntList shape, std::vector<float>& host) {
  host.assign(static_cast<size_t>(numel(shape)), 0.f);
  auto storage = std::make_shared<Storage>(host.data(), host.size() * sizeof(float), Device::cuda(0), nullptr);
  return Tensor::make_view(std::move(storage), shape, contiguous_strides(shape), 0, DType::f32);
}

TEST(CudaRuntime, OpsAcrossDevicesNameBothDevices) {
  std::vector<float> host;
  Tensor g = fake_cuda({2, 3}, host);
  Tensor c = testing::uniform({2, 3}, -1, 1, DType::f32);
  for (auto f : {std::function<void()>([&] { add(c, g); }), std::function<void()>([&] { mul(g, c); }),
                 std::function<void()>([&] { matmul(c, g.t()); })}) {
    std::string msg = device_error(f);
    EXPECT_THAT(msg, HasSubstr("cpu"));
    EXPECT_THAT(msg, HasSubstr("cuda:0"));
  }
  // A CPU number (0-d tensor) goes with any device: that is not a device mismatch.
  if (!cuda::is_available()) {
    std::string msg = device_error([&] { g * 2.0; });
    EXPECT_THAT(msg, ::testing::Not(HasSubstr("expected all tensors on one device")));
  }
}

// With two GPUs (the emulated tests run with two): tensors move between them (with autograd), ops
// run on the second one, and an op mixing the two names both.
TEST(CudaRuntime, TwoGpusCopyComputeAndNameEachOther) {
  if (cuda::device_count() < 2) GTEST_SKIP() << "needs two CUDA GPUs; found " << cuda::device_count();
  const Device d0 = Device::cuda(0), d1 = Device::cuda(1);
  Tensor a = testing::uniform({5, 7}, -1, 1, DType::f32), b = testing::uniform({7, 3}, -1, 1, DType::f32);
  Tensor a0 = a.to(d0), a1 = a0.to(d1);
  EXPECT_EQ(a1.device(), d1);
  EXPECT_TRUE(testing::all_close(a1.to(Device::cpu()), a, 0, 0));
  Tensor p = matmul(a1, b.to(d1));
  EXPECT_EQ(p.device(), d1);
  EXPECT_TRUE(testing::all_close(p.to(Device::cpu()), matmul(a, b), 1e-5, 1e-6));
  Tensor x = a.clone();
  x.requires_grad_(true);
  sum(x.to(d0).to(d1) * 3.0).backward();
  EXPECT_TRUE(testing::all_close(x.grad(), full(a.shape(), 3.0), 0, 0));
  std::string msg = device_error([&] { add(a0, a1); });
  EXPECT_THAT(msg, HasSubstr("cuda:0"));
  EXPECT_THAT(msg, HasSubstr("cuda:1"));
  // A convolution and its gradients on the second GPU while cuda:0 is current, each way it can run
  // (GLIA_CONV_WAY; the GEMM and direct ways launch their own kernels): the CPU's values.
  Tensor img = testing::uniform({2, 6, 6, 4}, -1, 1, DType::f32), k = testing::uniform({3, 3, 4, 8}, -1, 1, DType::f32);
  auto conv_and_grads = [](const Tensor& xi, const Tensor& ki, Device d) {
    Tensor xv = xi.to(d).detach(), kv = ki.to(d).detach();
    xv.requires_grad_(true);
    kv.requires_grad_(true);
    Tensor y = conv2d(xv, kv, Tensor(), {.padding = Padding2d::same()});
    sum(y * y).backward();
    return std::vector<Tensor>{y.detach().to(Device::cpu()), xv.grad().to(Device::cpu()), kv.grad().to(Device::cpu())};
  };
  std::vector<Tensor> want = conv_and_grads(img, k, Device::cpu());
  for (const char* way : {"nhwc", "nchw", "gemm", "direct"}) {
    setenv("GLIA_CONV_WAY", way, 1);
    std::vector<Tensor> got = conv_and_grads(img, k, d1);
    unsetenv("GLIA_CONV_WAY");
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_TRUE(testing::all_close(got[i], want[i], 1e-4, 1e-4)) << way << " result " << i;
  }
}

// Moving a tensor that requires grad is recorded by autograd (the gradient moves back); the
// move itself still needs the device, so without a GPU it is the usual DeviceError.
TEST(CudaRuntime, MovingATensorThatRequiresGradIsRecorded) {
  Tensor x = testing::uniform({3});
  x.requires_grad_(true);
  if (cuda::is_available()) {
    Tensor y = x.to(Device::cuda(0));
    EXPECT_TRUE(y.requires_grad());
    return;
  }
  std::string msg = device_error([&] { x.to(Device::cuda(0)); });
  EXPECT_THAT(msg, HasSubstr("cuda"));
}

// Random draws asked for on a GPU are made there (their op runs on the device of its options),
// never silently on the CPU; without a GPU that is the DeviceError of the first use.
TEST(CudaRuntime, RandomDrawsAreMadeOnTheDeviceAskedFor) {
  std::vector<std::function<Tensor()>> draws = {[] {
                                                  return rand({2, 3}, {.device = Device::cuda(0)});
                                                },
                                                [] {
                                                  return randn({2, 3}, {.device = Device::cuda(0)});
                                                },
                                                [] { return randint(0, 5, {4}, {.device = Device::cuda(0)}); }};
  for (auto& draw : draws) {
    if (cuda::is_available()) {
      EXPECT_EQ(draw().device(), Device::cuda(0));
    } else {
      EXPECT_THAT(device_error([&] { draw(); }), HasSubstr("cuda(0)"));
    }
  }
}

}  // namespace
}  // namespace glia
