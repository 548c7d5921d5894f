// Shared by the CUDA tests: skipping without a GPU, random inputs, and "the same op on the GPU
// gives what it gives on the CPU".
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "glia/core/cuda.h"
#include "glia/glia.h"
#include "testing.h"

namespace glia::cuda_testing {

constexpr Device kGpu = Device::cuda(0);

#define SKIP_WITHOUT_GPU()                                                                                          \
  if (!cuda::is_available()) {                                                                                      \
    GTEST_SKIP() << "no CUDA GPU: " << (cuda::built_with_cuda() ? "none found" : "this build has no CUDA support"); \
  }

/// True on the CPU emulator of tools/cuda-emu (libglia_emulated), whose GPU threads run one at a time.
inline bool emulated() { return cuda::describe().find("CUDA emulator") != std::string::npos; }

inline Tensor rnd(IntList shape, DType dt, double lo = -2.0, double hi = 2.0) {
  return testing::uniform(shape, lo, hi, DType::f64).to(dt);
}

inline double tol(DType dt) { return dt == DType::f32 ? 1e-5 : dt == DType::f64 ? 1e-12 : 0.0; }

/// f on the GPU copies of the inputs, brought back, against f on the CPU.
inline ::testing::AssertionResult same_on_gpu(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                              const std::vector<Tensor>& cpu_in, double rtol, double atol = 1e-6) {
  std::vector<Tensor> gpu_in;
  for (const Tensor& t : cpu_in) gpu_in.push_back(t.to(kGpu));
  Tensor g = f(gpu_in);
  if (g.device() != kGpu) return ::testing::AssertionFailure() << "result on " << g.device().str();
  Tensor c = f(cpu_in);
  // all_close compares values only: a GPU kernel with the wrong output dtype would pass it.
  if (g.dtype() != c.dtype())
    return ::testing::AssertionFailure() << "dtype " << name(g.dtype()) << " on the GPU, " << name(c.dtype())
                                         << " on the CPU";
  return testing::all_close(g.to(Device::cpu()), c, rtol, atol);
}

/// Gradients of sum(f(inputs) * r) for a fixed random r, computed on the GPU and on the CPU, compared
/// for every input in `wrt` (indices into cpu_in; the others get no gradient).
inline ::testing::AssertionResult same_grads_on_gpu(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                                    const std::vector<Tensor>& cpu_in, const std::vector<size_t>& wrt,
                                                    double rtol, double atol = 1e-6) {
  Tensor r;
  auto grads_on = [&](Device d) {
    std::vector<Tensor> in;
    for (const Tensor& t : cpu_in) in.push_back(t.clone().to(d));  // fresh leaves
    for (size_t i : wrt) in[i].requires_grad_(true);
    Tensor y = f(in);
    if (!r.defined()) r = testing::uniform(y.shape(), -1.0, 1.0, DType::f64).to(y.dtype());
    sum(y * r.to(d)).backward();
    std::vector<Tensor> g;
    for (size_t i : wrt) g.push_back(in[i].grad().defined() ? in[i].grad().detach().to(Device::cpu()) : Tensor());
    return g;
  };
  std::vector<Tensor> cpu = grads_on(Device::cpu()), gpu = grads_on(kGpu);
  for (size_t k = 0; k < wrt.size(); ++k) {
    if (!cpu[k].defined() || !gpu[k].defined())
      return ::testing::AssertionFailure()
             << "input " << wrt[k] << " got no gradient on " << (cpu[k].defined() ? "the GPU" : "the CPU");
    auto same = testing::all_close(gpu[k], cpu[k], rtol, atol);
    if (!same) return same << " (gradient of input " << wrt[k] << ")";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace glia::cuda_testing
