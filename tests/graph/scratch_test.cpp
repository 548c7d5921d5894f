// Kernel temporaries in a compiled plan's arena (detail::scratch_empty): a test op whose kernel
// fills a temporary four times its input's size with garbage runs inside a function whose other
// values must survive it. Its temporaries come from the arena (the free stretch the executor
// offers around each kernel) and clobber nothing live; outside a plan they are ordinary tensors.
#include "glia/core/scratch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "glia/core/cuda.h"
#include "glia/glia.h"
#include "glia/graph/function.h"
#include "glia/ops/op.h"
#include "testing.h"

namespace glia {
namespace {

std::atomic<int> g_from_arena{0}, g_calls{0};

// out = x + 1, after filling a temporary of 4 * numel floats with garbage; a second temporary
// given back by a ScratchMark is where the next one lands.
void scratch_kernel(KernelContext& k) {
  const Tensor& x = k.input(0);
  const Tensor& out = k.output();
  const int64_t n = x.numel();
  ++g_calls;
  {
    detail::ScratchMark mark;
    Tensor t = detail::scratch_empty({4 * n}, DType::f32, x.device());
    std::vector<float> junk(static_cast<size_t>(4 * n), 1e30f);
    std::memcpy(t.data_ptr(), junk.data(), junk.size() * sizeof(float));
    const bool in_arena = t.storage() == out.storage();
    if (in_arena) ++g_from_arena;
    void* inner_at = nullptr;
    {
      detail::ScratchMark inner;
      Tensor u = detail::scratch_empty({n}, DType::f32, x.device());
      if (in_arena && u.data_ptr() == t.data_ptr()) throw std::logic_error("scratch reused while held");
      inner_at = u.data_ptr();
    }
    Tensor again = detail::scratch_empty({n}, DType::f32, x.device());
    if (in_arena && again.data_ptr() != inner_at) throw std::logic_error("a marked temporary was not given back");
  }
  Tensor xc = x.contiguous();
  const float* xp = static_cast<const float*>(xc.data_ptr());
  float* op = static_cast<float*>(out.data_ptr());
  for (int64_t i = 0; i < n; ++i) op[i] = xp[i] + 1.0f;
}

GLIA_OP(test_scratch_add_one).inputs({"x"}).infer(same_as_input(0));
GLIA_KERNEL(test_scratch_add_one, CPU, scratch_kernel);
// A CUDA build gives every op a CUDA kernel (CudaRegistry checks it); this one is CPU-only.
[[maybe_unused]] const bool g_cuda_kernel = [] {
  if (cuda::built_with_cuda())
    define_op("test_scratch_add_one").kernel(DeviceType::CUDA, [](KernelContext&) {
      throw DeviceError("test_scratch_add_one runs on the CPU only");
    });
  return true;
}();

Tensor add_one(const Tensor& x) { return call(OpRegistry::instance().get("test_scratch_add_one"), {x}); }

std::vector<Tensor> body(const std::vector<Tensor>& in) {
  const Tensor& x = in[0];
  // A large value that is dead before the test op runs: the arena has a free stretch there.
  Tensor h = x * 3.0;
  Tensor s = sum(concat({h, h, h, h, h, h, h, h}));
  Tensor a = x * 2.0 + s * 1e-30;  // (keeps the sum, and so the concat, in the graph)
  Tensor b = add_one(a);
  Tensor c = add_one(b);
  return {a * c + b};
}

TEST(Scratch, KernelTemporariesUseTheArenaAndClobberNothingLive) {
  const int64_t n = 16384;  // 64 KiB a value: the temporaries (256 KiB) fit in the dead concat
  Tensor x = testing::uniform({n}, -1.0, 1.0, DType::f32);
  std::vector<double> xv = testing::values(x), want(static_cast<size_t>(n));
  for (size_t i = 0; i < want.size(); ++i) {
    double a = 2.0 * xv[i], b = a + 1, c = b + 1;
    want[i] = a * c + b;
  }
  g_from_arena = 0;
  Tensor eager = body({x})[0];
  EXPECT_EQ(g_from_arena.load(), 0);  // no plan: ordinary tensors
  EXPECT_TRUE(testing::all_close(eager, want, 1e-5, 1e-5));
  Function f(body);
  for (int call = 0; call < 3; ++call) {
    g_from_arena = 0;
    g_calls = 0;
    Tensor got = f({x})[0];
    EXPECT_TRUE(testing::all_close(got, want, 1e-5, 1e-5)) << "call " << call;
    EXPECT_EQ(g_calls.load(), 2);
    EXPECT_EQ(g_from_arena.load(), 2) << "call " << call;
  }
}

}  // namespace
}  // namespace glia
