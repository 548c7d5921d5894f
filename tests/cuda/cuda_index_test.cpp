// The CUDA kernels of indexing, shape, image, random, dropout and optimizer-update ops against the
// CPU kernels on the same inputs (views, empty and size-1 dims, several dtypes), their gradients,
// and the random streams: the GPU draws the CPU's numbers for the same generator state. They need
// a GPU and skip without one.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda/cuda_testing.h"
#include "glia/core/cuda.h"
#include "glia/core/random.h"
#include "glia/glia.h"
#include "testing.h"

namespace glia {
namespace {

using namespace glia::cuda_testing;

Tensor ids(IntList shape, int64_t hi, DType dt = DType::i64) { return randint(0, hi, shape).to(dt); }

const std::vector<DType> kFloats = {DType::f32, DType::f64};

TEST(CudaIndex, GatherAndIndexSelectMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::i32, DType::bf16, DType::b8}) {
    Tensor x = rnd({6, 5, 4}, DType::f64, -3, 3).to(dt);
    for (int64_t dim : {0, 1, 2}) {
      Shape is = {4, 3, 2};
      is[static_cast<size_t>(dim)] = 7;  // longer than x along dim: indices repeat
      Tensor idx = ids(is, x.shape()[static_cast<size_t>(dim)]);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return gather(v[0], dim, v[1]); }, {x, idx}, 0, 0)) << name(dt) << dim;
      Tensor sel = ids({9}, x.shape()[static_cast<size_t>(dim)], DType::i32);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return index_select(v[0], dim, v[1]); }, {x, sel}, 0, 0))
          << name(dt) << dim;
    }
    // Views: a permuted input and a sliced index.
    Tensor xp = rnd({5, 6, 4}, DType::f64).to(dt);
    Tensor big = ids({8, 6, 4}, 5);
    EXPECT_TRUE(same_on_gpu(
        [](auto& v) {
          return gather(v[0].permute({2, 1, 0}), 2, v[1].slice(0, 0, 8, 2).permute({2, 1, 0}));
        },
        {xp, big}, 0, 0))
        << name(dt);
    EXPECT_TRUE(same_on_gpu(
        [](auto& v) {
          return index_select(v[0].permute({1, 0, 2}), 1, v[1].slice(0, 1, 7, 3));
        },
        {xp, ids({7}, 5)}, 0, 0))
        << name(dt);
  }
  // Empty and size-1 cases.
  Tensor x = rnd({3, 1, 4}, DType::f32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return gather(v[0], 1, v[1]); }, {x, ids({3, 5, 4}, 1)}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return gather(v[0], 0, v[1]); }, {x, ids({0, 1, 4}, 3)}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return index_select(v[0], 2, v[1]); }, {x, ids({0}, 4)}, 0, 0));
}

TEST(CudaIndex, ScatterAddAndIndexAddMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64}) {
    double t = tol(dt);  // atomics: float order varies
    Tensor base = rnd({5, 4, 3}, DType::f64, -5, 5).to(dt);
    for (int64_t dim : {0, 1, 2}) {
      Shape is = {4, 3, 2};
      is[static_cast<size_t>(dim)] = 6;
      Tensor src = rnd({8, 8, 8}, DType::f64, -5, 5).to(dt);
      Tensor idx = ids(is, base.shape()[static_cast<size_t>(dim)]);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return scatter_add(v[0], dim, v[1], v[2]); }, {base, idx, src}, t, t))
          << name(dt) << dim;
      Shape ss = base.shape();
      ss[static_cast<size_t>(dim)] = 8;
      Tensor isrc = rnd(ss, DType::f64, -5, 5).to(dt);
      Tensor sel = ids({8}, base.shape()[static_cast<size_t>(dim)]);  // repeats are likely
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return index_add(v[0], dim, v[1], v[2]); }, {base, sel, isrc}, t, t))
          << name(dt) << dim;
    }
    // Strided base, src and index.
    Tensor b2 = rnd({3, 5}, DType::f64).to(dt);
    Tensor s2 = rnd({7, 5}, DType::f64).to(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return scatter_add(v[0].t(), 1, v[1].t(), v[2].t()); },
                            {b2, ids({2, 4}, 3), s2}, t, t))
        << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return index_add(v[0].t(), 1, v[1].slice(0, 0, 6, 2), v[2]); },
                            {b2, ids({6}, 3), rnd({5, 3}, DType::f64).to(dt)}, t, t))
        << name(dt);
  }
  Tensor base = rnd({2, 3}, DType::f32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return scatter_add(v[0], 1, v[1], v[2]); },
                          {base, ids({2, 0}, 3), rnd({2, 3}, DType::f32)}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return index_add(v[0], 0, v[1], v[2]); },
                          {base, ids({0}, 2), rnd({0, 3}, DType::f32)}, 0, 0));
}

TEST(CudaIndex, OneHotMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::u8, DType::b8}) {
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return one_hot(v[0], 7, dt); }, {ids({4, 5}, 7)}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return one_hot(v[0].t(), 3, dt); }, {ids({2, 3}, 3, DType::i32)}, 0, 0));
  }
  EXPECT_TRUE(same_on_gpu([](auto& v) { return one_hot(v[0], 4); }, {ids({0}, 4)}, 0, 0));
}

// The GPU cannot check index values without a host sync: documented behaviour is that gather
// reads an out-of-range index as 0 and scatter_add skips it (the CPU throws ValueError).
TEST(CudaIndex, OutOfRangeIndicesReadZeroAndAreSkipped) {
  SKIP_WITHOUT_GPU();
  Tensor x = tensor(std::vector<float>{1, 2, 3}, {3}).to(kGpu);
  Tensor idx = tensor(std::vector<int64_t>{2, 5, -1, 0}, {4}).to(kGpu);
  EXPECT_TRUE(testing::all_close(gather(x, 0, idx).to(Device::cpu()), {3, 0, 0, 1}, 0, 0));
  Tensor src = tensor(std::vector<float>{10, 20, 30, 40}, {4}).to(kGpu);
  EXPECT_TRUE(testing::all_close(scatter_add(x, 0, idx, src).to(Device::cpu()), {41, 2, 13}, 0, 0));
}

TEST(CudaIndex, GradientsMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats) {
    double t = tol(dt);
    Tensor x = rnd({5, 4, 3}, dt);
    Tensor idx = ids({5, 6, 3}, 4);
    EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return gather(v[0], 1, v[1]); }, {x, idx}, {0}, t, t));
    Tensor sel = ids({7}, 4);
    EXPECT_TRUE(same_grads_on_gpu(
        [&](auto& v) {
          return index_select(v[0].permute({1, 0, 2}), 0, v[1]);
        },
        {x, sel}, {0}, t, t));
    Tensor src = rnd({5, 6, 3}, dt);
    EXPECT_TRUE(
        same_grads_on_gpu([&](auto& v) { return scatter_add(v[0], 1, v[1], v[2]); }, {x, idx, src}, {0, 2}, t, t));
    EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return index_add(v[0], 1, v[1], v[2]); }, {x, sel, rnd({5, 7, 3}, dt)},
                                  {0, 2}, t, t));
  }
}

TEST(CudaShape, ConcatSliceScatterFlipTrianglesMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16, DType::u8, DType::b8}) {
    Tensor a = rnd({3, 4, 5}, DType::f64, 0, 9).to(dt), b = rnd({3, 2, 5}, DType::f64, 0, 9).to(dt);
    Tensor e = rnd({3, 0, 5}, DType::f64).to(dt);
    EXPECT_TRUE(same_on_gpu(
        [](auto& v) {
          return concat({v[0], v[2], v[1].slice(1, 0, 2, 1)}, 1);
        },
        {a, b, e}, 0, 0))
        << name(dt);
    EXPECT_TRUE(same_on_gpu(
        [](auto& v) {
          return concat({v[0].permute({0, 2, 1}), v[1].permute({0, 2, 1})}, 2);
        },
        {a, b}, 0, 0))
        << name(dt);
    for (const Shape& dims : {Shape{0}, Shape{1, 2}, Shape{0, 1, 2}, Shape{}})
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return flip(v[0].permute({2, 0, 1}), dims); }, {a}, 0, 0)) << name(dt);
    for (int64_t diag : {-2, -1, 0, 1, 3}) {
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return tril(v[0].permute({2, 1, 0}), diag); }, {a}, 0, 0)) << name(dt);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return triu(v[0], diag); }, {a}, 0, 0)) << name(dt);
    }
    const OpDef& ss = define_op("slice_scatter");
    EXPECT_TRUE(same_on_gpu(
        [&](auto& v) {
          return call(ss, {v[0].permute({1, 0, 2}), v[1]},
                      {{"dim", int64_t{2}}, {"start", int64_t{1}}, {"end", int64_t{5}}, {"step", int64_t{2}}});
        },
        {a, rnd({4, 3, 2}, DType::f64, 0, 9).to(dt)}, 0, 0))
        << name(dt);
  }
  Tensor z = rnd({0, 3}, DType::f32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return flip(v[0], {0, 1}); }, {z}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return tril(v[0]); }, {z}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return concat({v[0], v[0]}, 0); }, {z}, 0, 0));
}

TEST(CudaShape, PadMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::bf16, DType::b8}) {
    Tensor x = rnd({3, 5, 4}, DType::f64, 0, 5).to(dt);
    for (std::string mode : {"constant", "replicate", "reflect"}) {
      for (const Shape& pads : {Shape{1, 2}, Shape{3, 0, 2, 1}, Shape{0, 0, 1, 1, 2, 1}, Shape{-1, 2, 1, -2}}) {
        if (pads[0] < 0 && mode != "constant") continue;  // cropping is constant mode only
        EXPECT_TRUE(same_on_gpu(
            [&](auto& v) {
              return pad(v[0].permute({1, 0, 2}), pads, mode, 1.5);
            },
            {x}, 0, 0))
            << name(dt) << mode << to_string(pads);
      }
    }
  }
  Tensor one = rnd({2, 1}, DType::f32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return pad(v[0], {3, 2}, "replicate"); }, {one}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return pad(v[0], {0, 0, 1, 1}, "reflect"); }, {rnd({2, 3}, DType::f32)}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return pad(v[0], {1, 1}); }, {rnd({0, 3}, DType::f32)}, 0, 0));
}

TEST(CudaShape, GradientsMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats) {
    double t = tol(dt);
    Tensor a = rnd({3, 4, 5}, dt), b = rnd({3, 2, 5}, dt);
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return concat({v[0], v[1]}, 1); }, {a, b}, {0, 1}, t, t));
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return flip(v[0].permute({2, 0, 1}), {0, 2}); }, {a}, {0}, t, t));
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return v[0].slice(2, 1, 5, 2); }, {a}, {0}, t, t));
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return tril(v[0], 1); }, {a}, {0}, t, t));
    for (std::string mode : {"constant", "replicate", "reflect"}) {
      for (const Shape& pads : {Shape{2, 3}, Shape{3, 1, 2, 2}, Shape{-1, 2, 0, 3, 1, 1}}) {
        if (pads[0] < 0 && mode != "constant") continue;  // cropping is constant mode only
        EXPECT_TRUE(same_grads_on_gpu([&](auto& v) { return pad(v[0], pads, mode); }, {a}, {0}, t, t))
            << name(dt) << mode << to_string(pads);
      }
    }
    // A size-1 dim: every cell replicated from the one element; zero pads: the identity.
    Tensor one = rnd({3, 1}, dt);
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return pad(v[0], {0, 0, 0, 0}, "reflect"); }, {one}, {0}, t, t));
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return pad(v[0], {4, 5}, "replicate"); }, {one}, {0}, t, t));
  }
}

TEST(CudaRandom, DrawsEqualTheCpuDraws) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats) {
    for (int64_t n : {1, 2, 1001, 70001}) {
      manual_seed(1234);
      Tensor c1 = rand({n}, {.dtype = dt}, -2.0, 3.0);
      Tensor c2 = randn({n}, {.dtype = dt}, 0.5, 2.0);
      Tensor c3 = randint(-5, 1000, {n}, {.dtype = DType::i64});
      Tensor c4 = randint(0, 7, {n}, {.dtype = dt});
      manual_seed(1234);
      Tensor g1 = rand({n}, {.dtype = dt, .device = kGpu}, -2.0, 3.0);
      Tensor g2 = randn({n}, {.dtype = dt, .device = kGpu}, 0.5, 2.0);
      Tensor g3 = randint(-5, 1000, {n}, {.dtype = DType::i64, .device = kGpu});
      Tensor g4 = randint(0, 7, {n}, {.dtype = dt, .device = kGpu});
      EXPECT_TRUE(testing::all_close(g1.to(Device::cpu()), c1, 0, 0)) << name(dt) << n;
      EXPECT_TRUE(testing::all_close(g2.to(Device::cpu()), c2, 1e-6, 1e-6)) << name(dt) << n;
      EXPECT_TRUE(testing::all_close(g3.to(Device::cpu()), c3, 0, 0)) << n;
      EXPECT_TRUE(testing::all_close(g4.to(Device::cpu()), c4, 0, 0)) << name(dt) << n;
    }
  }
  // CPU and GPU draws share one counter: alternating devices continues the same stream.
  manual_seed(9);
  Tensor a = rand({33}), b = rand({17}, {.device = kGpu}),
         c = randint(0, 100, {5}, {.dtype = DType::i32, .device = kGpu});
  manual_seed(9);
  Tensor a2 = rand({33}, {.device = kGpu}), b2 = rand({17}), c2 = randint(0, 100, {5}, {.dtype = DType::i32});
  EXPECT_TRUE(testing::all_close(a2.to(Device::cpu()), a, 0, 0));
  EXPECT_TRUE(testing::all_close(b.to(Device::cpu()), b2, 0, 0));
  EXPECT_TRUE(testing::all_close(c.to(Device::cpu()), c2, 0, 0));
  EXPECT_EQ(rand({0}, {.device = kGpu}).numel(), 0);
}

TEST(CudaRandom, DropoutMasksAndGradientsMatchCpu) {
  SKIP_WITHOUT_GPU();
  // 16-bit (tol 0): x * (scale * keep) in float, rounded once to 16 bits on both devices.
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (double p : {0.1, 0.5, 0.9, 1.0}) {
      for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{4099}}) {
        Tensor x = rnd({n, 3}, dt);
        auto f = [p](const std::vector<Tensor>& v) {
          manual_seed(77);
          return dropout(v[0].t(), p, true);
        };
        EXPECT_TRUE(same_on_gpu(f, {x}, 0, 0)) << name(dt) << p << n;
        if (p < 1.0) {  // p = 1 gives zeros that do not depend on x
          EXPECT_TRUE(same_grads_on_gpu(f, {x}, {0}, tol(dt), tol(dt))) << name(dt) << p << n;
        }
      }
    }
  }
  // The mask itself (dropout's second output) is the CPU's.
  Tensor x = rnd({1000}, DType::f32);
  manual_seed(5);
  TensorList cpu = dispatch(define_op("dropout"), {x}, {{"p", 0.3}});
  manual_seed(5);
  TensorList gpu = dispatch(define_op("dropout"), {x.to(kGpu)}, {{"p", 0.3}});
  EXPECT_TRUE(testing::all_close(gpu[1].to(Device::cpu()), cpu[1], 0, 0));
  EXPECT_TRUE(testing::all_close(gpu[0].to(Device::cpu()), cpu[0], 0, 0));
}

// --- optimizer updates: several steps of the fused kernels, called as the optimizers call them

struct Update {
  std::string op;
  Attrs attrs;
  int nslots;
  bool zero_last = false;  // centered RMSprop: an average gradient of 0 keeps v - avg^2 >= 0
};

/// The parameter and slots after `steps` updates on device d. With `state`, lr and the step count
/// come from a step-state tensor (as in a compiled step); `guard` adds a guard that is false on
/// odd steps (those updates must not happen).
std::vector<Tensor> run_updates(const Update& u, Device d, DType dt, bool transposed, bool state, bool guard) {
  manual_seed(21);
  std::vector<Tensor> t;
  Tensor w0 = transposed ? rnd({6, 5}, dt) : rnd({5, 6}, dt);
  t.push_back(transposed ? w0.to(d).t() : w0.to(d));
  for (int i = 0; i < u.nslots; ++i) {
    Tensor s = u.zero_last && i + 1 == u.nslots ? zeros({5, 6}, {.dtype = dt}) : rnd({5, 6}, dt, 0.0, 0.5);
    t.push_back(s.to(d));  // v and accumulators must be >= 0
  }
  for (int64_t step = 0; step < 4; ++step) {
    Tensor g = rnd({5, 6}, dt, -3, 3).to(d);
    std::vector<Tensor> in{t[0], g};
    for (int i = 0; i < u.nslots; ++i) in.push_back(t[static_cast<size_t>(1 + i)]);
    Attrs a = u.attrs;
    double lr = 0.05 + 0.01 * static_cast<double>(step);
    a.set("lr", state ? 99.0 : lr);  // with a step state the attrs are not read
    a.set("step", state ? int64_t{1000} : step);
    if (state) {
      a.set("step_state", true);
      in.push_back(tensor(std::vector<double>{lr, static_cast<double>(step)}, {2}).to(d));
    }
    if (guard) {
      a.set("guard", true);
      in.push_back(tensor(std::vector<uint8_t>{step % 2 == 0}, {1}).to(DType::b8).to(d));
    }
    dispatch(define_op(u.op), std::span<const Tensor>(in.data(), in.size()), a);
  }
  std::vector<Tensor> out;
  for (const Tensor& x : t) out.push_back(x.to(Device::cpu()).contiguous());
  return out;
}

TEST(CudaOptim, FusedUpdatesMatchCpu) {
  SKIP_WITHOUT_GPU();
  auto base = [](std::initializer_list<std::pair<const char*, AttrValue>> extra, double clip = 0, double wd = 0,
                 double scale = 1) {
    Attrs a{{"weight_decay", wd}, {"grad_scale", scale}, {"clipvalue", clip}};
    for (auto& [k, v] : extra) a.set(k, v);
    return a;
  };
  std::vector<Update> updates = {
      {"optim_sgd_update", base({{"momentum", 0.0}, {"nesterov", false}}), 0},
      {"optim_sgd_update", base({{"momentum", 0.9}, {"nesterov", false}}, 1.0), 1},
      {"optim_sgd_update", base({{"momentum", 0.8}, {"nesterov", true}}, 0, 0.01, 0.5), 1},
      {"optim_adam_update", base({{"beta_1", 0.9}, {"beta_2", 0.999}, {"epsilon", 1e-7}}), 2},
      {"optim_adam_update", base({{"beta_1", 0.8}, {"beta_2", 0.99}, {"epsilon", 1e-6}}, 2.0, 0.004), 3},
      {"optim_rmsprop_update", base({{"rho", 0.9}, {"momentum", 0.0}, {"epsilon", 1e-7}, {"centered", false}}), 1},
      {"optim_rmsprop_update", base({{"rho", 0.8}, {"momentum", 0.5}, {"epsilon", 1e-7}, {"centered", false}}), 2},
      {"optim_rmsprop_update", base({{"rho", 0.9}, {"momentum", 0.3}, {"epsilon", 1e-3}, {"centered", true}}, 0, 0.01),
       3, true},
      {"optim_adagrad_update", base({{"epsilon", 1e-7}}, 1.5, 0, 2.0), 1},
  };
  for (const Update& u : updates)
    for (DType dt : kFloats)
      for (int mode = 0; mode < 4; ++mode) {
        bool transposed = mode == 1, state = mode >= 2, guard = mode == 3;
        auto c = run_updates(u, Device::cpu(), dt, transposed, state, guard);
        auto g = run_updates(u, kGpu, dt, transposed, state, guard);
        // Same operations in the same order, each rounded alone, so the results agree to the last bits;
        // Adam's rate uses pow, whose last bit may differ between the host and device libraries.
        double rt = dt == DType::f32 ? 1e-6 : 1e-13;
        for (size_t i = 0; i < c.size(); ++i)
          EXPECT_TRUE(testing::all_close(g[i], c[i], rt, rt))
              << u.op << " " << name(dt) << " mode " << mode << " t" << i;
      }
}

// --- 16-bit floats, uint8 and bool: the dtypes the CPU kernels accept beyond float32 / float64

const std::vector<DType> kHalves = {DType::bf16, DType::f16};

/// One unit in the last place at 1 of a 16-bit float type: 1 ulp as a relative tolerance.
double ulp16(DType dt) { return dt == DType::bf16 ? 1.0 / 128 : 1.0 / 1024; }

/// Random integers in [lo, hi) as dt: sums of a few stay exact in 16-bit floats (|x| <= 256).
Tensor ints(IntList shape, DType dt, int64_t lo, int64_t hi) { return randint(lo, hi, shape).to(dt); }

/// Index values that never repeat along dim (needs is[dim] <= n): (k + 7 * rest) mod n, with k the
/// coordinate along dim and rest the flat offset of the other coordinates.
Tensor unique_ids(const Shape& is, int64_t dim, int64_t n) {
  Shape st = contiguous_strides(is);
  auto d = static_cast<size_t>(dim);
  std::vector<int64_t> v(static_cast<size_t>(numel(is)));
  for (int64_t f = 0; f < static_cast<int64_t>(v.size()); ++f) {
    int64_t k = (f / st[d]) % is[d];
    v[static_cast<size_t>(f)] = (k + 7 * (f - k * st[d])) % n;
  }
  return tensor(v, is);
}

TEST(CudaIndex, ScatterAddAndIndexAddOf16BitAndUint8MatchCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::bf16, DType::f16, DType::u8}) {
    // Integers with repeated indices: every partial sum is exact in 16 bits, so the order in which the
    // GPU's atomics land cannot show and the results must be equal; uint8 wraps modulo 256 in any order.
    int64_t lo = dt == DType::u8 ? 0 : -8, hi = dt == DType::u8 ? 256 : 8;
    Tensor base = ints({5, 4, 3}, dt, lo, hi);
    for (int64_t dim : {0, 1, 2}) {
      Shape is = {4, 3, 2};
      is[static_cast<size_t>(dim)] = 6;
      Tensor src = ints({8, 8, 8}, dt, lo, hi);
      Tensor idx = ids(is, base.shape()[static_cast<size_t>(dim)]);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return scatter_add(v[0], dim, v[1], v[2]); }, {base, idx, src}, 0, 0))
          << name(dt) << dim;
      Shape ss = base.shape();
      ss[static_cast<size_t>(dim)] = 8;
      Tensor sel = ids({8}, base.shape()[static_cast<size_t>(dim)]);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return index_add(v[0], dim, v[1], v[2]); },
                              {base, sel, ints(ss, dt, lo, hi)}, 0, 0))
          << name(dt) << dim;
    }
    // Strided base, src and index; empty index and source.
    Tensor b2 = ints({3, 5}, dt, lo, hi), s2 = ints({7, 5}, dt, lo, hi);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return scatter_add(v[0].t(), 1, v[1].t(), v[2].t()); },
                            {b2, ids({2, 4}, 3), s2}, 0, 0))
        << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return index_add(v[0].t(), 1, v[1].slice(0, 0, 6, 2), v[2]); },
                            {b2, ids({6}, 3), ints({5, 3}, dt, lo, hi)}, 0, 0))
        << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return scatter_add(v[0], 1, v[1], v[2]); }, {b2, ids({3, 0}, 5), s2}, 0, 0))
        << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return index_add(v[0], 0, v[1], v[2]); },
                            {b2, ids({0}, 3), ints({0, 5}, dt, lo, hi)}, 0, 0))
        << name(dt);
  }
  for (DType dt : kHalves) {
    Tensor base = rnd({5, 4, 3}, dt, -1, 1);
    for (int64_t dim : {0, 1, 2}) {
      Shape is = {4, 3, 2};
      is[static_cast<size_t>(dim)] = 3;
      Tensor src = rnd({8, 8, 8}, dt, -1, 1);
      // No index repeats: one add, rounded once, per element, as on the CPU.
      Tensor uidx = unique_ids(is, dim, base.shape()[static_cast<size_t>(dim)]);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return scatter_add(v[0], dim, v[1], v[2]); }, {base, uidx, src}, 0, 0))
          << name(dt) << dim;
      Shape ss = base.shape();
      ss[static_cast<size_t>(dim)] = 3;
      Tensor usel = unique_ids({3}, 0, base.shape()[static_cast<size_t>(dim)]);
      EXPECT_TRUE(same_on_gpu(
          [&](auto& v) {
            return index_add(v[0].permute({2, 1, 0}), dim, v[1], v[2]);  // a transposed base
          },
          {base.permute({2, 1, 0}).contiguous(), usel, rnd(ss, dt, -1, 1)}, 0, 0))
          << name(dt) << dim;
      // Repeats: both devices round after every add, the CPU in index order and the GPU in the order
      // the atomics land, so each side is off the exact sum by up to (adds) half ulps of the running
      // sums (|sum| < 8): the two differ by at most 8 ulps at 8.
      Shape rs = is;
      rs[static_cast<size_t>(dim)] = 7;
      double atol = 8 * 8 * ulp16(dt);
      EXPECT_TRUE(same_on_gpu([&](auto& v) { return scatter_add(v[0], dim, v[1], v[2]); },
                              {base, ids(rs, base.shape()[static_cast<size_t>(dim)]), src}, 0, atol))
          << name(dt) << dim;
    }
  }
  // bool has no sum, on either device.
  Tensor bb = ints({3, 2}, DType::b8, 0, 2);
  for (Device d : {Device::cpu(), kGpu}) {
    EXPECT_THROW(scatter_add(bb.to(d), 0, ids({2, 2}, 3).to(d), bb.to(d)), DTypeError);
    EXPECT_THROW(index_add(bb.to(d), 0, ids({2}, 3).to(d), ints({2, 2}, DType::b8, 0, 2).to(d)), DTypeError);
  }
}

// The gradients of gathers and embeddings of 16-bit weights are index_add / scatter_add of 16-bit
// gradients: they must run, and agree with the CPU.
TEST(CudaIndex, GradientsOf16BitWeightsMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kHalves) {
    // Distinct ids: every gradient row is one 16-bit value (exact).
    Tensor w = rnd({6, 5}, dt);
    Tensor perm = tensor(std::vector<int64_t>{4, 0, 5, 2}, {2, 2});
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return embedding(v[0], v[1]); }, {w, perm}, {0}, 0, 0)) << name(dt);
    // Repeated ids: sums of up to 9 values of |r| <= 1 rounded after each add in different orders
    // (see ScatterAddAndIndexAddOf16BitAndUint8MatchCpu): at most 9 ulps at 8 apart.
    double atol = 9 * 8 * ulp16(dt);
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return embedding(v[0], v[1]); }, {w, ids({3, 3}, 6)}, {0}, 0, atol))
        << name(dt);
    Tensor x = rnd({5, 4, 3}, dt);
    EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return gather(v[0], 1, v[1]); }, {x, ids({5, 6, 3}, 4)}, {0}, 0, atol))
        << name(dt);
    EXPECT_TRUE(same_grads_on_gpu(
        [](auto& v) {
          return index_select(v[0].permute({1, 0, 2}), 0, v[1]);
        },
        {x, ids({7}, 4)}, {0}, 0, atol))
        << name(dt);
  }
}

TEST(CudaShape, PadBackwardOfUint8BoolAnd16BitMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const OpDef& pb = define_op("pad_backward");
  const Shape in = {4, 3, 5};
  for (DType dt : {DType::u8, DType::b8, DType::bf16, DType::f16}) {
    // uint8 wraps (values up to 255, up to 16 adds), bool sums are ors, 16-bit sums of integers are exact.
    int64_t lo = dt == DType::u8 || dt == DType::b8 ? 0 : -8, hi = dt == DType::u8 ? 256 : dt == DType::b8 ? 2 : 8;
    for (std::string mode : {"constant", "replicate", "reflect"}) {
      for (const Shape& pads : {Shape{2, 3}, Shape{3, 1, 2, 2}, Shape{-1, 2, 0, 2, 1, 1}}) {
        if (pads[0] < 0 && mode != "constant") continue;  // cropping is constant mode only
        Shape gs = in;
        for (size_t i = 0; i < pads.size() / 2; ++i) gs[in.size() - 1 - i] += pads[2 * i] + pads[2 * i + 1];
        // Given transposed: the kernel reads a permuted view.
        Tensor g = ints({gs[1], gs[0], gs[2]}, dt, lo, hi);
        EXPECT_TRUE(same_on_gpu(
            [&](auto& v) {
              return call(pb, {v[0].permute({1, 0, 2})},
                          {{"pads", IntList(pads).vec()}, {"mode", mode}, {"input_shape", IntList(in).vec()}});
            },
            {g}, 0, 0))
            << name(dt) << mode << to_string(pads);
      }
    }
    Tensor empty = ints({0, 7}, dt, lo, hi);
    EXPECT_TRUE(same_on_gpu(
        [&](auto& v) {
          return call(pb, {v[0]},
                      {{"pads", std::vector<int64_t>{1, 1}},
                       {"mode", std::string("replicate")},
                       {"input_shape", std::vector<int64_t>{0, 5}}});
        },
        {empty}, 0, 0))
        << name(dt);
  }
}

TEST(CudaImage, TranslateImagesMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    // 16-bit (tol 0): both compute each sample in double with the same separately rounded
    // operations and round the result through float to 16 bits: equal.
    double t = tol(dt);
    Tensor x = rnd({4, 7, 6, 2}, dt);
    Tensor dy = tensor(std::vector<float>{1.5f, -7.25f, 0.0f, 0.3f}, {4});
    Tensor dx = tensor(std::vector<float>{-2.75f, 3.0f, 13.5f, 0.5f}, {4});
    for (std::string fm : {"reflect", "wrap", "nearest", "constant"})
      for (std::string interp : {"bilinear", "nearest"}) {
        TranslateOptions o{fm, interp, 0.25};
        EXPECT_TRUE(same_on_gpu([&](auto& v) { return translate_images(v[0], v[1], v[2], o); }, {x, dy, dx}, t, t))
            << name(dt) << fm << interp;
        EXPECT_TRUE(same_on_gpu(
            [&](auto& v) {
              return translate_images(v[0].permute({0, 2, 1, 3}), v[1], v[2], o);  // a transposed view
            },
            {x, dy, dx}, t, t))
            << name(dt) << fm << interp << " view";
      }
    Tensor none = rnd({0, 4, 4, 1}, dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return translate_images(v[0], v[1], v[2], {}); },
                            {none, tensor(std::vector<float>{}, {0}), tensor(std::vector<float>{}, {0})}, 0, 0));
  }
}

TEST(CudaRandom, DrawsOf16BitBoolAndUint8EqualTheCpuDraws) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kHalves) {
    for (int64_t n : {1, 2, 1001, 70001}) {
      manual_seed(4321);
      Tensor c1 = rand({n}, {.dtype = dt}, -2.0, 3.0);
      Tensor c2 = randn({n}, {.dtype = dt}, 0.5, 2.0);
      Tensor c3 = randint(-300, 300, {n}, {.dtype = dt});
      Tensor c4 = rand({n}, {.dtype = dt}, 0.0, 1.0);  // rounding up to 1 must wrap to 0, as on the CPU
      manual_seed(4321);
      Tensor g1 = rand({n}, {.dtype = dt, .device = kGpu}, -2.0, 3.0);
      Tensor g2 = randn({n}, {.dtype = dt, .device = kGpu}, 0.5, 2.0);
      Tensor g3 = randint(-300, 300, {n}, {.dtype = dt, .device = kGpu});
      Tensor g4 = rand({n}, {.dtype = dt, .device = kGpu}, 0.0, 1.0);
      EXPECT_TRUE(testing::all_close(g1.to(Device::cpu()), c1, 0, 0)) << name(dt) << n;
      // log / cos of the device library may differ in the last bit of a double: at most 1 ulp here.
      EXPECT_TRUE(testing::all_close(g2.to(Device::cpu()), c2, ulp16(dt), 0)) << name(dt) << n;
      EXPECT_TRUE(testing::all_close(g3.to(Device::cpu()), c3, 0, 0)) << name(dt) << n;
      EXPECT_TRUE(testing::all_close(g4.to(Device::cpu()), c4, 0, 0)) << name(dt) << n;
    }
  }
  for (DType dt : {DType::b8, DType::u8, DType::i32}) {
    manual_seed(8);
    Tensor c = randint(-2, 3, {5001}, {.dtype = dt});  // bool: nonzero is true
    manual_seed(8);
    Tensor g = randint(-2, 3, {5001}, {.dtype = dt, .device = kGpu});
    EXPECT_EQ(g.dtype(), dt);
    EXPECT_TRUE(testing::all_close(g.to(Device::cpu()), c, 0, 0)) << name(dt);
  }
  EXPECT_EQ(randint(0, 2, {0}, {.dtype = DType::b8, .device = kGpu}).numel(), 0);
}

// The CPU's fused updates take float32 / float64 parameters only; so does the GPU (same error).
TEST(CudaOptim, FusedUpdatesRefuse16BitParametersAsTheCpu) {
  SKIP_WITHOUT_GPU();
  Attrs a{{"weight_decay", 0.0}, {"grad_scale", 1.0}, {"clipvalue", 0.0}, {"lr", 0.1},
          {"step", int64_t{0}},  {"momentum", 0.0},   {"nesterov", false}};
  for (DType dt : kHalves)
    for (Device d : {Device::cpu(), kGpu}) {
      Tensor w = rnd({4, 3}, dt).to(d), g = rnd({4, 3}, dt).to(d);
      std::vector<Tensor> in{w, g};
      EXPECT_THROW(dispatch(define_op("optim_sgd_update"), std::span<const Tensor>(in.data(), in.size()), a),
                   DTypeError)
          << name(dt) << d.str();
    }
}

}  // namespace
}  // namespace glia
