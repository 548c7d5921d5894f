// The CUDA reductions (prod, amax, amin, max / min with indices, argmax, argmin, var), softmax /
// log-softmax and layer norm against their CPU kernels on the same inputs: axes, keepdim, views,
// row lengths around the warp / block switch, long skinny columns, ties and NaN, empty and size-1
// dims, and gradients on the GPU. They need a GPU and skip without one.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cuda/cuda_testing.h"
#include "glia/core/cuda.h"
#include "glia/glia.h"
#include "testing.h"

namespace glia {
namespace {

using namespace glia::cuda_testing;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

double rtol_of(DType dt) { return dt == DType::f64 ? 1e-11 : 1e-4; }
double atol_of(DType dt) { return dt == DType::f64 ? 1e-12 : 1e-5; }

/// A float64 tensor with element i = f(i) (row-major), converted to dt.
Tensor make(IntList shape, const std::function<double(int64_t)>& f, DType dt = DType::f64) {
  Tensor t = zeros(shape, {.dtype = DType::f64});
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = f(i);
  return t.to(dt);
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Every view the tests reduce: the tensor, a permutation of it and a strided slice of it.
std::vector<std::pair<std::string, Fn>> views_of_4d() {
  return {{"plain", [](auto& v) { return v[0]; }},
          {"permuted",
           [](auto& v) {
             return v[0].permute({2, 0, 3, 1});
           }},
          {"sliced", [](auto& v) { return v[0].slice(1, 1, 4, 2); }}};
}

const std::vector<std::vector<int64_t>> kDimSets = {{}, {0}, {3}, {1, 2}, {0, 2}, {1, 3}, {0, 1, 2, 3}, {-1, 0}};

TEST(CudaReductions, ProdAmaxAminVarOverAxesKeepdimAndViews) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = rnd({3, 4, 5, 6}, dt, 0.6, 1.4);  // products stay near 1
    double rt = rtol_of(dt), at = atol_of(dt);
    for (auto& [vname, view] : views_of_4d())
      for (const auto& dims : kDimSets)
        for (bool keep : {false, true}) {
          IntList d(dims.data(), dims.size());
          std::string what = std::string(name(dt)) + " " + vname + " dims " + to_string(d) + (keep ? " keepdim" : "");
          auto red = [&](auto f) { return [=](auto& v) { return f(view(v), d, keep); }; };
          EXPECT_TRUE(same_on_gpu(red([](const Tensor& t, IntList a, bool k) { return prod(t, a, k); }), {x}, rt, at))
              << "prod " << what;
          EXPECT_TRUE(same_on_gpu(red([](const Tensor& t, IntList a, bool k) { return amax(t, a, k); }), {x}, 0, 0))
              << "amax " << what;
          EXPECT_TRUE(same_on_gpu(red([](const Tensor& t, IntList a, bool k) { return amin(t, a, k); }), {x}, 0, 0))
              << "amin " << what;
          for (int64_t c : {0, 1, 2})
            EXPECT_TRUE(
                same_on_gpu(red([c](const Tensor& t, IntList a, bool k) { return var(t, a, c, k); }), {x}, rt, at))
                << "var correction " << c << " " << what;
        }
  }
}

TEST(CudaReductions, MaxMinArgmaxArgminAlongEachDim) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64, DType::u8}) {
    Tensor x = rnd({3, 4, 5, 6}, DType::f64, 0, 50).to(dt);
    for (auto& [vname, view] : views_of_4d())
      for (int64_t d = -1; d < 4; ++d)
        for (bool keep : {false, true}) {
          std::string what =
              std::string(name(dt)) + " " + vname + " dim " + std::to_string(d) + (keep ? " keepdim" : "");
          EXPECT_TRUE(same_on_gpu([&](auto& v) { return max(view(v), d, keep).first; }, {x}, 0, 0)) << what;
          EXPECT_TRUE(same_on_gpu([&](auto& v) { return max(view(v), d, keep).second; }, {x}, 0, 0)) << what;
          EXPECT_TRUE(same_on_gpu([&](auto& v) { return min(view(v), d, keep).first; }, {x}, 0, 0)) << what;
          EXPECT_TRUE(same_on_gpu([&](auto& v) { return min(view(v), d, keep).second; }, {x}, 0, 0)) << what;
          EXPECT_TRUE(same_on_gpu([&](auto& v) { return argmax(view(v), d, keep); }, {x}, 0, 0)) << what;
          EXPECT_TRUE(same_on_gpu([&](auto& v) { return argmin(view(v), d, keep); }, {x}, 0, 0)) << what;
        }
    EXPECT_TRUE(same_on_gpu([](auto& v) { return argmax(v[0]); }, {x}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return argmin(v[0]); }, {x}, 0, 0)) << name(dt);
  }
}

// Rows of 1, 7, 33 (warp per row), 1000, 5000 (block per row), reduced last, first and in the middle
// (columns), for float and integer dtypes.
TEST(CudaReductions, RowLengthsAcrossWarpBlockAndColumnKernels) {
  SKIP_WITHOUT_GPU();
  for (int64_t R : {1, 7, 33, 1000, 5000})
    for (DType dt : {DType::f32, DType::f64, DType::i64}) {
      bool flt = is_floating(dt);
      double rt = flt ? rtol_of(dt) : 0;
      std::string what = std::string(name(dt)) + " R " + std::to_string(R);
      for (auto shape : {Shape{3, R}, Shape{R, 3}, Shape{5, R, 4}}) {
        int64_t d = shape.size() == 3 ? 1 : (shape[1] == R ? 1 : 0);
        Tensor x = rnd(shape, DType::f64, flt ? 0.999 : -3, flt ? 1.001 : 3).to(dt);
        if (!flt) x = rnd(shape, DType::f64, -3, 3).to(DType::i64);
        std::string w = what + " shape " + to_string(shape);
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return amax(v[0], {d}); }, {x}, 0, 0)) << w;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return amin(v[0], {d}, true); }, {x}, 0, 0)) << w;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return max(v[0], d).second; }, {x}, 0, 0)) << w;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return argmin(v[0], d); }, {x}, 0, 0)) << w;
        if (flt) {
          EXPECT_TRUE(same_on_gpu([d](auto& v) { return prod(v[0], {d}); }, {x}, 1e-5, 1e-6)) << w;
          EXPECT_TRUE(same_on_gpu([d](auto& v) { return var(v[0], {d}); }, {x}, rt * 10, 0)) << w;
        } else {
          Tensor small = rnd(shape, DType::f64, 0, 1.9).to(dt);  // 0s and 1s: no overflow
          EXPECT_TRUE(same_on_gpu([d](auto& v) { return prod(v[0], {d}); }, {small}, 0, 0)) << w;
        }
      }
    }
}

// [N, C] over N with few columns and N >= 4096 moves to rows; otherwise the column kernel runs.
TEST(CudaReductions, LongSkinnyAndWideColumns) {
  SKIP_WITHOUT_GPU();
  for (auto shape : {Shape{20000, 5}, Shape{3000, 300}, Shape{2, 6000, 3}}) {
    Tensor x = rnd(shape, DType::f64);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return amax(v[0], {0}); }, {x}, 0, 0)) << to_string(shape);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return argmin(v[0], 0); }, {x}, 0, 0)) << to_string(shape);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return var(v[0], {0}, 0); }, {x}, 1e-11, 1e-12)) << to_string(shape);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return amin(v[0], {1}); }, {x}, 0, 0)) << to_string(shape);
  }
}

// A few long columns (an NHWC bias gradient) are reduced in two passes over slices of the rows, or
// as rows of a transposed copy when R has no divisor to cut it with (4099 is prime).
TEST(CudaReductions, FewLongColumnsSplitOrTranspose) {
  SKIP_WITHOUT_GPU();
  Tensor g = rnd({64, 30, 30, 32}, DType::f32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return sum(v[0], {0, 1, 2}); }, {g}, 1e-4, 1e-3));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return amax(v[0], {0, 1, 2}); }, {g}, 0, 0));
  for (auto shape : {Shape{20000, 5}, Shape{4099, 7}, Shape{3, 8192, 40}}) {
    std::string w = to_string(shape);
    Tensor x = rnd(shape, DType::f64);
    int64_t d = shape.size() == 3 ? 1 : 0;
    EXPECT_TRUE(same_on_gpu([d](auto& v) { return sum(v[0], {d}); }, {x}, 1e-12, 1e-12)) << w;
    EXPECT_TRUE(same_on_gpu([d](auto& v) { return amin(v[0], {d}); }, {x}, 0, 0)) << w;
    Tensor near1 = rnd(shape, DType::f64, 0.9999, 1.0001);
    EXPECT_TRUE(same_on_gpu([d](auto& v) { return prod(v[0], {d}); }, {near1}, 1e-12, 0)) << w;
    Tensor i = rnd(shape, DType::f64, -50, 50).to(DType::i32);
    EXPECT_TRUE(same_on_gpu([d](auto& v) { return sum(v[0], {d}); }, {i}, 0, 0)) << w;
    Tensor b = rnd(shape, DType::f64, 0, 1.5).to(DType::i64).to(DType::b8);
    EXPECT_TRUE(same_on_gpu([d](auto& v) { return sum(v[0], {d}); }, {b}, 0, 0)) << w;
  }
  Tensor h = rnd({20000, 5}, DType::f32).to(DType::bf16);  // 16-bit: transposed, never split
  EXPECT_TRUE(same_on_gpu([](auto& v) { return sum(v[0], {0}); }, {h}, 1e-2, 1e-1));
}

// More rows than one grid covers (65535 * 8 blocks of 8 warp rows; of one column tile each): the
// kernels' grid-stride loops over rows.
// A few long rows (whole-tensor reductions) are cut into slices reduced apart, then combined; a
// row length without a divisor to cut it by (a prime) runs one block per row; 16-bit outputs are
// never split (their partial sums would be rounded).
TEST(CudaReductions, FewLongRowsSplitIntoSlices) {
  SKIP_WITHOUT_GPU();
  for (auto shape : {Shape{1 << 20}, Shape{3, 1 << 18}, Shape{2, 512, 300}, Shape{1048583}}) {
    std::string w = to_string(shape);
    std::vector<int64_t> last;
    for (int64_t d = shape.size() == 3 ? 1 : static_cast<int64_t>(shape.size()) - 1;
         d < static_cast<int64_t>(shape.size()); ++d)
      last.push_back(d);
    Tensor x = rnd(shape, DType::f64);
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return sum(v[0], last); }, {x}, 1e-10, 1e-9)) << w;
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return amax(v[0], last); }, {x}, 0, 0)) << w;
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return amin(v[0], last); }, {x}, 0, 0)) << w;
    Tensor near1 = rnd(shape, DType::f64, 0.99999, 1.00001);
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return prod(v[0], last); }, {near1}, 1e-10, 0)) << w;
    Tensor f = rnd(shape, DType::f32);
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return sum(v[0], last); }, {f}, 1e-4, 1e-2)) << w;
    Tensor i = rnd(shape, DType::f64, -50, 50).to(DType::i32);
    EXPECT_TRUE(same_on_gpu([&](auto& v) { return sum(v[0], last); }, {i}, 0, 0)) << w;
  }
  Tensor h = rnd({1 << 17}, DType::f32).to(DType::bf16);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return sum(v[0]); }, {h}, 1e-2, 1.0));
}

TEST(CudaReductions, ManyRowsRunGridStrideLoops) {
  SKIP_WITHOUT_GPU();
  if (cuda_testing::emulated()) GTEST_SKIP() << "4.5 million rows of a warp each: minutes on the CPU emulator";
  Tensor x = rnd({4500000, 3}, DType::f32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return amax(v[0], {1}); }, {x}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return argmin(v[0], 1); }, {x}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return softmax(v[0], 1); }, {x}, 1e-4, 1e-5));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return layer_norm(v[0], 1); }, {x}, 1e-4, 1e-5));
  Tensor c = rnd({600000, 2, 3}, DType::f32);
  EXPECT_TRUE(same_on_gpu([](auto& v) { return amax(v[0], {1}); }, {c}, 0, 0));
}

TEST(CudaReductions, IntegerAndBoolDtypes) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::i32, DType::i64, DType::u8, DType::b8}) {
    Tensor x = rnd({4, 37, 3}, DType::f64, 0, dt == DType::b8 ? 1.99 : 9).to(DType::i64).to(dt);  // b8: 0 / 1
    for (int64_t d : {0, 1, 2}) {
      EXPECT_TRUE(same_on_gpu([d](auto& v) { return amax(v[0], {d}); }, {x}, 0, 0)) << name(dt) << " " << d;
      EXPECT_TRUE(same_on_gpu([d](auto& v) { return amin(v[0], {d}); }, {x}, 0, 0)) << name(dt) << " " << d;
    }
    Tensor small = rnd({4, 9, 3}, DType::f64, 0, 2.99).to(DType::i64).to(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return prod(v[0], {1}); }, {small}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return prod(v[0]); }, {small.slice(1, 0, 2)}, 0, 0)) << name(dt);
  }
  Tensor b = rnd({50, 40}, DType::f64, 0, 1.02).to(DType::i64).to(DType::b8);  // mostly false
  EXPECT_TRUE(same_on_gpu([](auto& v) { return all(v[0]); }, {b}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return any(v[0]); }, {b}, 0, 0));
}

// Many ties (values 0, 1, 2): the first index wins. NaN: amax / amin give NaN, the indices the first NaN.
TEST(CudaReductions, TiesAndNaNFollowTheCpuRules) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64})
    for (int64_t R : {7, 33, 1000, 5000}) {
      std::string what = std::string(name(dt)) + " R " + std::to_string(R);
      Tensor ties = make(
          {6, R}, [](int64_t i) { return static_cast<double>((i * 7 + i / 5) % 3); }, dt);
      for (Tensor t : {ties, ties.transpose(0, 1)})
        for (int64_t d : {0, 1}) {
          EXPECT_TRUE(same_on_gpu([d](auto& v) { return max(v[0], d).second; }, {t}, 0, 0)) << what;
          EXPECT_TRUE(same_on_gpu([d](auto& v) { return min(v[0], d).second; }, {t}, 0, 0)) << what;
          EXPECT_TRUE(same_on_gpu([d](auto& v) { return argmax(v[0], d); }, {t}, 0, 0)) << what;
          EXPECT_TRUE(same_on_gpu([d](auto& v) { return argmin(v[0], d); }, {t}, 0, 0)) << what;
        }
      // Row 0 no NaN, row 1 one NaN late, row 2 two NaNs, row 3 all NaN, rows 4, 5 NaN first / last.
      Tensor nan = make(
          {6, R},
          [R](int64_t i) {
            int64_t r = i / R, c = i % R;
            bool is_nan = (r == 1 && c == R - 2) || (r == 2 && (c == R / 2 || c == R / 3)) || r == 3 ||
                          (r == 4 && c == 0) || (r == 5 && c == R - 1);
            return is_nan ? kNaN : std::sin(static_cast<double>(i));
          },
          dt);
      for (Tensor t : {nan, nan.transpose(0, 1)}) {
        int64_t d = t.shape()[0] == 6 ? 1 : 0;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return amax(v[0], {d}); }, {t}, 0, 0)) << what;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return amin(v[0], {d}); }, {t}, 0, 0)) << what;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return max(v[0], d).first; }, {t}, 0, 0)) << what;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return max(v[0], d).second; }, {t}, 0, 0)) << what;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return min(v[0], d).second; }, {t}, 0, 0)) << what;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return argmax(v[0], d); }, {t}, 0, 0)) << what;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return argmin(v[0], d); }, {t}, 0, 0)) << what;
        EXPECT_TRUE(same_on_gpu([d](auto& v) { return softmax(v[0], d); }, {t}, rtol_of(dt), atol_of(dt))) << what;
      }
    }
  // -inf everywhere in a row: amax is -inf, argmax the first index.
  Tensor ninf = make({3, 40}, [](int64_t i) { return i < 40 ? -INFINITY : static_cast<double>(i % 7); });
  EXPECT_TRUE(same_on_gpu([](auto& v) { return amax(v[0], {1}); }, {ninf}, 0, 0));
  EXPECT_TRUE(same_on_gpu([](auto& v) { return argmax(v[0], 1); }, {ninf}, 0, 0));
}

TEST(CudaReductions, EmptyAndSizeOneDims) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor e = rnd({3, 0, 4}, dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return prod(v[0], {1}); }, {e}, 0, 0)) << name(dt);  // all ones
    EXPECT_TRUE(same_on_gpu([](auto& v) { return amax(v[0], {2}); }, {e}, 0, 0)) << name(dt);  // empty output
    EXPECT_TRUE(same_on_gpu([](auto& v) { return var(v[0], {0}); }, {e}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return softmax(v[0], 1); }, {e}, 0, 0)) << name(dt);
    Tensor one = rnd({5, 1, 3}, dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return var(v[0], {1}); }, {one}, 0, 0)) << name(dt);  // NaN: 0 / 0
    EXPECT_TRUE(same_on_gpu([](auto& v) { return var(v[0], {1}, 0); }, {one}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return max(v[0], 1).second; }, {one}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return amin(v[0], {1}, true); }, {one}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return softmax(v[0], 1); }, {one}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return log_softmax(v[0], 1); }, {one}, 0, 0)) << name(dt);
    Tensor s = rnd({}, dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return prod(v[0]); }, {s}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return amax(v[0]); }, {s}, 0, 0)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return softmax(v[0], 0); }, {s}, 0, 0)) << name(dt);
  }
}

TEST(CudaSoftmax, SoftmaxAndLogSoftmaxOverEachAxis) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    double rt = rtol_of(dt), at = atol_of(dt);
    for (int64_t R : {1, 7, 33, 1000, 5000}) {
      Tensor x = rnd({4, R}, dt, -20, 20);
      std::string what = std::string(name(dt)) + " R " + std::to_string(R);
      for (int64_t a : {0, 1, -1}) {
        EXPECT_TRUE(same_on_gpu([a](auto& v) { return softmax(v[0], a); }, {x}, rt, at)) << what << " axis " << a;
        EXPECT_TRUE(same_on_gpu([a](auto& v) { return log_softmax(v[0], a); }, {x}, rt, at)) << what << " axis " << a;
      }
    }
    Tensor x = rnd({3, 4, 5, 6}, dt, -5, 5);
    for (auto& [vname, view] : views_of_4d())
      for (int64_t a = 0; a < 4; ++a) {
        EXPECT_TRUE(same_on_gpu([&](auto& v) { return softmax(view(v), a); }, {x}, rt, at)) << vname << " " << a;
        EXPECT_TRUE(same_on_gpu([&](auto& v) { return log_softmax(view(v), a); }, {x}, rt, at)) << vname << " " << a;
      }
    // Large logits (the max shift keeps them finite) and -inf entries.
    Tensor big = make(
        {3, 50}, [](int64_t i) { return i % 11 == 0 ? -INFINITY : 700.0 + static_cast<double>(i % 5); }, dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return softmax(v[0], 1); }, {big}, rt, at)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return log_softmax(v[0], 1); }, {big}, rt, at)) << name(dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return log_softmax(v[0], 0); }, {big}, rt, at)) << name(dt);
  }
}

/// One output of the fused layer-norm forward op.
Fn ln_fwd_output(size_t i, double eps) {
  return [=](auto& v) {
    return dispatch(OpRegistry::instance().get("layer_norm_fwd"), {v[0], v[1], v[2]}, {{"eps", eps}})[i];
  };
}

TEST(CudaLayerNorm, ForwardOutputsAndSavedStatistics) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    DType sd = dt;  // statistics and parameters of float32 / float64 input are in its own dtype
    double rt = rtol_of(dt), at = atol_of(dt);
    for (int64_t H : {1, 7, 33, 1000, 5000})
      for (int64_t R : {1, 9}) {
        Tensor x = rnd({R, H}, dt, -3, 3) + 1.5;
        Tensor g = rnd({H}, sd), b = rnd({H}, sd);
        std::string what = std::string(name(dt)) + " [" + std::to_string(R) + ", " + std::to_string(H) + "]";
        for (size_t i = 0; i < 3; ++i)
          EXPECT_TRUE(same_on_gpu(ln_fwd_output(i, 1e-5), {x, g, b}, rt, at)) << what << " output " << i;
      }
    Tensor x = rnd({2, 5, 4, 6}, dt);
    Tensor g = rnd({4, 6}, dt), b = rnd({4, 6}, dt);
    EXPECT_TRUE(same_on_gpu([](auto& v) { return layer_norm(v[0], 2, v[1], v[2]); }, {x, g, b}, rt, at));
    EXPECT_TRUE(same_on_gpu([](auto& v) { return layer_norm(v[0], 1); }, {x}, rt, at));
    EXPECT_TRUE(same_on_gpu(
        [](auto& v) {
          return layer_norm(v[0].permute({1, 0, 3, 2}), 1, {}, {}, 0.1);
        },
        {x}, rt, at));
    EXPECT_TRUE(same_on_gpu([](auto& v) { return layer_norm(v[0].slice(3, 0, 6, 2), 2); }, {x}, rt, at));
    EXPECT_TRUE(same_on_gpu([](auto& v) { return layer_norm(v[0], 3); }, {rnd({0, 3, 4}, dt)}, 0, 0));
  }
}

TEST(CudaLayerNorm, BackwardOpMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const OpDef& fwd = OpRegistry::instance().get("layer_norm_fwd");
  const OpDef& bwd = OpRegistry::instance().get("layer_norm_backward");
  for (DType dt : {DType::f32, DType::f64}) {
    double rt = dt == DType::f64 ? 1e-10 : 1e-3, at = dt == DType::f64 ? 1e-10 : 1e-4;
    for (auto [R, H] : std::vector<std::pair<int64_t, int64_t>>{{1, 7}, {9, 33}, {3000, 5}, {20, 1000}, {3, 5000}}) {
      Tensor x = rnd({R, H}, dt), g = rnd({H}, dt), b = rnd({H}, dt), gy = rnd({R, H}, dt);
      TensorList st = dispatch(fwd, {x, g, b}, {{"eps", 1e-5}});
      for (size_t i = 0; i < 3; ++i) {
        Fn f = [i, &bwd](auto& v) { return dispatch(bwd, {v[0], v[1], v[2], v[3], v[4]})[i]; };
        EXPECT_TRUE(same_on_gpu(f, {gy, x, st[1], st[2], g}, rt, at))
            << name(dt) << " [" << R << ", " << H << "] output " << i;
      }
      Fn gt = [&bwd](auto& v) { return dispatch(bwd, {v[0].transpose(0, 1), v[1], v[2], v[3], v[4]})[0]; };
      EXPECT_TRUE(same_on_gpu(gt, {gy.transpose(0, 1).contiguous(), x, st[1], st[2], g}, rt, at)) << name(dt);
    }
  }
}

TEST(CudaReductions, GradientsOnGpuMatchCpu) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({4, 5, 6}, DType::f64, 0.5, 1.5);
  double rt = 1e-10, at = 1e-10;
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return prod(v[0], {1}); }, {x}, {0}, rt, at));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return amax(v[0], {0, 2}); }, {x}, {0}, rt, at));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return amin(v[0], {2}, true); }, {x}, {0}, rt, at));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return max(v[0], 1).first; }, {x}, {0}, rt, at));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return min(v[0].permute({2, 0, 1}), 2, true).first; }, {x}, {0}, rt, at));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return var(v[0], {0, 2}); }, {x}, {0}, rt, at));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return softmax(v[0], 1); }, {x}, {0}, rt, at));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return log_softmax(v[0], -1); }, {x}, {0}, rt, at));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return softmax(v[0], 0) * v[0]; }, {x}, {0}, rt, at));
}

TEST(CudaLayerNorm, GradientsOnGpuMatchCpu) {
  SKIP_WITHOUT_GPU();
  Tensor x = rnd({6, 3, 8}, DType::f64), g = rnd({3, 8}, DType::f64), b = rnd({3, 8}, DType::f64);
  EXPECT_TRUE(
      same_grads_on_gpu([](auto& v) { return layer_norm(v[0], 2, v[1], v[2]); }, {x, g, b}, {0, 1, 2}, 1e-10, 1e-10));
  EXPECT_TRUE(same_grads_on_gpu([](auto& v) { return layer_norm(v[0], 1); }, {x}, {0}, 1e-10, 1e-10));
  Tensor xf = rnd({40, 300}, DType::f32), gf = rnd({300}, DType::f32), bf = rnd({300}, DType::f32);
  EXPECT_TRUE(
      same_grads_on_gpu([](auto& v) { return layer_norm(v[0], 1, v[1], v[2]); }, {xf, gf, bf}, {0, 1, 2}, 1e-3, 1e-4));
  // Double backward runs the backward op's own rule on the GPU.
  auto grads_of = [](Device d, const Tensor& x0, const Tensor& g0) {
    Tensor xx = x0.clone().to(d).requires_grad_(true), gg = g0.clone().to(d).requires_grad_(true);
    Tensor y = layer_norm(xx, 1, gg);
    Tensor gx = grad({sum(y * y * y)}, {xx}, {.create_graph = true})[0];
    return grad({sum(gx * gx)}, {xx, gg})[1].to(Device::cpu());
  };
  Tensor x2 = rnd({5, 9}, DType::f64), g2 = rnd({9}, DType::f64);
  EXPECT_TRUE(testing::all_close(grads_of(kGpu, x2, g2), grads_of(Device::cpu(), x2, g2), 1e-9, 1e-9));
}

}  // namespace
}  // namespace glia
