// Reductions: every reduction against a naive double reference over single,
// multiple, non-consecutive and all dims, keepdim, views, integer and empty
// inputs, NaN; large float32 rows and columns for accuracy; gradients.
#include <cmath>
#include <random>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

using Group = std::vector<double>;

/// Reduces x over dims (empty: all; negative allowed) in double: f maps each group of
/// elements (row-major order within the group) to one value. Also returns the output shape.
std::vector<double> ref_reduce(const Tensor& x, std::vector<int64_t> dims, bool keepdim,
                               const std::function<double(const Group&)>& f, std::vector<int64_t>& out_shape,
                               const std::vector<double>* values = nullptr) {
  auto shape = vshape(x);
  int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<bool> red(shape.size(), dims.empty());
  for (int64_t d : dims) red[static_cast<size_t>(d < 0 ? d + nd : d)] = true;
  out_shape.clear();
  std::vector<int64_t> kept;  // sizes of kept dims
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!red[d]) {
      out_shape.push_back(shape[d]);
      kept.push_back(shape[d]);
    } else if (keepdim) {
      out_shape.push_back(1);
    }
  }
  int64_t n_out = 1;
  for (int64_t k : kept) n_out *= k;
  std::vector<Group> groups(static_cast<size_t>(n_out));
  auto vals = values ? *values : read(x);
  size_t flat = 0;
  for_each_index(IntList(shape), [&](const std::vector<int64_t>& idx) {
    int64_t o = 0;
    for (size_t d = 0; d < shape.size(); ++d)
      if (!red[d]) o = o * shape[d] + idx[d];
    groups[static_cast<size_t>(o)].push_back(vals[flat++]);
  });
  std::vector<double> out;
  for (auto& g : groups) out.push_back(f(g));
  return out;
}

double g_sum(const Group& g) {
  double s = 0;
  for (double v : g) s += v;
  return s;
}
double g_prod(const Group& g) {
  double s = 1;
  for (double v : g) s *= v;
  return s;
}
double g_max(const Group& g) {
  double m = -INFINITY;
  for (double v : g) {
    if (std::isnan(v)) return v;
    m = std::max(m, v);
  }
  return m;
}
double g_min(const Group& g) {
  double m = INFINITY;
  for (double v : g) {
    if (std::isnan(v)) return v;
    m = std::min(m, v);
  }
  return m;
}
double g_argmax(const Group& g) {
  size_t b = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i])) return static_cast<double>(i);
    if (g[i] > g[b]) b = i;
  }
  return static_cast<double>(b);
}
double g_argmin(const Group& g) {
  size_t b = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i])) return static_cast<double>(i);
    if (g[i] < g[b]) b = i;
  }
  return static_cast<double>(b);
}
std::function<double(const Group&)> g_var(int64_t correction) {
  return [=](const Group& g) {
    double m = g_sum(g) / static_cast<double>(g.size()), s = 0;
    for (double v : g) s += (v - m) * (v - m);
    return s / static_cast<double>(static_cast<int64_t>(g.size()) - correction);
  };
}
double g_lse(const Group& g) {
  double m = g_max(g), s = 0;
  for (double v : g) s += std::exp(v - m);
  return m + std::log(s);
}

const std::vector<std::vector<int64_t>> kDimSets = {{},     {0},    {2},    {-1},         {1, 2},
                                                    {0, 2}, {3, 0}, {3, 1}, {0, 1, 2, 3}, {-3, -2}};

struct RCase {
  std::string name;
  std::function<Tensor(const Tensor&, IntList, bool)> f;
  std::function<double(const Group&)> ref;
};

std::vector<RCase> reduce_cases() {
  return {
      {"sum", [](auto& x, IntList d, bool k) { return sum(x, d, k); }, g_sum},
      {"mean", [](auto& x, IntList d, bool k) { return mean(x, d, k); },
       [](const Group& g) { return g_sum(g) / static_cast<double>(g.size()); }},
      {"prod", [](auto& x, IntList d, bool k) { return prod(x, d, k); }, g_prod},
      {"amax", [](auto& x, IntList d, bool k) { return amax(x, d, k); }, g_max},
      {"amin", [](auto& x, IntList d, bool k) { return amin(x, d, k); }, g_min},
      {"var", [](auto& x, IntList d, bool k) { return var(x, d, 1, k); }, g_var(1)},
      {"var0", [](auto& x, IntList d, bool k) { return var(x, d, 0, k); }, g_var(0)},
      {"std", [](auto& x, IntList d, bool k) { return glia::std(x, d, 1, k); },
       [](const Group& g) { return std::sqrt(g_var(1)(g)); }},
      {"logsumexp", [](auto& x, IntList d, bool k) { return logsumexp(x, d, k); }, g_lse},
  };
}

}  // namespace

TEST(Reduce, MatchesReferenceOverAnyDims) {
  manual_seed(20);
  const std::vector<int64_t> shape = {3, 4, 5, 2};
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16})
    for (auto& c : reduce_cases())
      for (Layout l : kLayouts) {
        if (!(dt == DType::f64 || dt == DType::f32) && l == Layout::Strided) continue;
        Tensor x = make_input(shape, l, c.name == "prod" ? 0.5 : -1.0, c.name == "prod" ? 1.5 : 1.0, dt);
        auto xv = read(x);
        for (auto& dims : kDimSets)
          for (bool keep : {false, true}) {
            Tensor y = c.f(x, IntList(dims), keep);
            std::vector<int64_t> os;
            auto want = ref_reduce(x, dims, keep, c.ref, os, &xv);
            EXPECT_EQ(y.dtype(), dt) << c.name;
            // Half types: stored inputs are exact; the result is rounded once (or a few times, for the
            // composite logsumexp and std).
            double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 2e-5 : dt == DType::f16 ? 3e-3 : 2e-2;
            EXPECT_TRUE(matches(y, os, want, tol, tol))
                << c.name << " " << name(dt) << " dims " << to_string(IntList(dims)) << " keepdim " << keep << " "
                << layout_name(l);
          }
      }
}

TEST(Reduce, MaxMinArgmaxAlongOneDim) {
  manual_seed(21);
  const std::vector<int64_t> shape = {3, 4, 5};
  for (DType dt : {DType::f64, DType::f32, DType::i64, DType::bf16})
    for (Layout l : kLayouts)
      for (int64_t d : {0, 1, 2, -1})
        for (bool keep : {false, true}) {
          // Few distinct values, so that ties occur and the first index must win.
          Tensor x = make_input(shape, l, 0, 4, DType::f64);
          {
            no_grad g;
            x = x.to(DType::i64).to(dt);
          }
          std::vector<int64_t> os;
          auto vmax = ref_reduce(x, {d}, keep, g_max, os);
          auto imax = ref_reduce(x, {d}, keep, g_argmax, os);
          auto vmin = ref_reduce(x, {d}, keep, g_min, os);
          auto imin = ref_reduce(x, {d}, keep, g_argmin, os);
          auto [mv, mi] = max(x, d, keep);
          auto [nv, ni] = min(x, d, keep);
          std::string what = std::string(name(dt)) + " dim " + std::to_string(d) + " " + layout_name(l);
          EXPECT_EQ(mv.dtype(), dt);
          EXPECT_EQ(mi.dtype(), DType::i64);
          EXPECT_TRUE(matches(mv, os, vmax, 0, 0)) << what;
          EXPECT_TRUE(matches(mi, os, imax, 0, 0)) << what;
          EXPECT_TRUE(matches(nv, os, vmin, 0, 0)) << what;
          EXPECT_TRUE(matches(ni, os, imin, 0, 0)) << what;
          EXPECT_TRUE(matches(argmax(x, d, keep), os, imax, 0, 0)) << what;
          EXPECT_TRUE(matches(argmin(x, d, keep), os, imin, 0, 0)) << what;
          EXPECT_TRUE(matches(x.argmax(d, keep), os, imax, 0, 0)) << what;
        }
  // Over the flattened tensor, in logical (row-major) order even for a view.
  Tensor x = make_input({4, 6}, Layout::Permuted);
  auto v = read(x);
  Group g(v.begin(), v.end());
  EXPECT_EQ(argmax(x).item<int64_t>(), static_cast<int64_t>(g_argmax(g)));
  EXPECT_EQ(argmin(x).item<int64_t>(), static_cast<int64_t>(g_argmin(g)));
  EXPECT_EQ(argmax(x).dim(), 0);
  EXPECT_DOUBLE_EQ(max(x).item<double>(), g_max(g));
  EXPECT_DOUBLE_EQ(min(x).item<double>(), g_min(g));
  // 0-d input: dim 0 / -1 refer to the single element.
  Tensor s = full({}, 2.5);
  EXPECT_EQ(argmax(s, 0).item<int64_t>(), 0);
  EXPECT_FLOAT_EQ(sum(s, {0}).item<float>(), 2.5f);
  EXPECT_FLOAT_EQ(amax(s).item<float>(), 2.5f);
}

TEST(Reduce, IntegerAndBoolInputs) {
  Tensor i32 = tensor(std::vector<int32_t>{2000000000, 2000000000, -5, 7}, {2, 2});
  Tensor s = sum(i32);
  EXPECT_EQ(s.dtype(), DType::i64);  // no overflow of int32
  EXPECT_EQ(s.item<int64_t>(), 4000000002LL);
  EXPECT_TRUE(matches(sum(i32, {1}), {2}, {4000000000.0, 2}, 0, 0));
  Tensor u = tensor(std::vector<uint8_t>{200, 100, 255});
  EXPECT_EQ(sum(u).dtype(), DType::i64);
  EXPECT_EQ(sum(u).item<int64_t>(), 555);
  Tensor b = tensor({true, false, true, true});
  EXPECT_EQ(sum(b).dtype(), DType::i64);
  EXPECT_EQ(sum(b).item<int64_t>(), 3);
  Tensor i = tensor({3, -2, 5, 4, 1, -6}, {2, 3});
  EXPECT_EQ(prod(i).dtype(), DType::i64);
  EXPECT_EQ(prod(i).item<int64_t>(), 720);
  EXPECT_EQ(prod(tensor(std::vector<int32_t>{100000, 100000})).item<int64_t>(), 10000000000LL);
  EXPECT_TRUE(matches(prod(i, {0}), {3}, {12, -2, -30}, 0, 0));
  EXPECT_EQ(amax(i).dtype(), DType::i64);
  EXPECT_TRUE(matches(amax(i, {1}), {2}, {5, 4}, 0, 0));
  EXPECT_TRUE(matches(amin(i, {0}, true), {1, 3}, {3, -2, -6}, 0, 0));
  EXPECT_EQ(argmax(i).item<int64_t>(), 2);
  EXPECT_TRUE(matches(amax(b), {}, {1}, 0, 0));
  // Large int64 sums stay exact.
  int64_t big = (int64_t(1) << 53) + 1;
  EXPECT_EQ(sum(tensor({big, int64_t(1)})).item<int64_t>(), big + 1);
  // Means and variances need floats, like PyTorch.
  EXPECT_THROW(mean(i), DTypeError);
  EXPECT_THROW(var(i), DTypeError);
  EXPECT_THROW(logsumexp(i, {0}), DTypeError);
  EXPECT_THROW(max(b, 0), DTypeError);
}

TEST(Reduce, AllAndAny) {
  Tensor x = tensor({{1, 0, 2}, {3, 4, 5}});
  EXPECT_EQ(all(x).dtype(), DType::b8);
  EXPECT_FALSE(all(x).item<bool>());
  EXPECT_TRUE(any(x).item<bool>());
  EXPECT_TRUE(all(x.slice(0, 1, 2)).item<bool>());
  EXPECT_FALSE(any(zeros({3, 2})).item<bool>());
  EXPECT_TRUE(all(full({2}, NAN)).item<bool>());  // NaN is nonzero
  EXPECT_TRUE(any(tensor({0.0, -0.5})).item<bool>());
  EXPECT_FALSE(all(tensor({false, true})).item<bool>());
  // Empty: all is true, any is false (vacuous truth, as NumPy and PyTorch).
  EXPECT_TRUE(all(zeros({0})).item<bool>());
  EXPECT_FALSE(any(zeros({2, 0})).item<bool>());
  EXPECT_EQ(all(zeros({0})).dim(), 0);
}

TEST(Reduce, EmptyTensors) {
  Tensor e = zeros({0, 3});
  EXPECT_TRUE(matches(sum(e), {}, {0}, 0, 0));
  EXPECT_TRUE(matches(sum(e, {0}), {3}, {0, 0, 0}, 0, 0));
  EXPECT_TRUE(matches(sum(e, {1}), {0}, {}, 0, 0));
  EXPECT_TRUE(matches(sum(e, {0}, true), {1, 3}, {0, 0, 0}, 0, 0));
  EXPECT_TRUE(matches(prod(e), {}, {1}, 0, 0));
  EXPECT_TRUE(matches(prod(e, {0}), {3}, {1, 1, 1}, 0, 0));
  EXPECT_TRUE(matches(sum(zeros({0}, {.dtype = DType::i32})), {}, {0}, 0, 0));
  EXPECT_TRUE(matches(prod(zeros({0}, {.dtype = DType::i64})), {}, {1}, 0, 0));
  EXPECT_TRUE(std::isnan(mean(e).item<float>()));     // 0 / 0
  EXPECT_TRUE(matches(amax(e, {1}), {0}, {}, 0, 0));  // nothing to reduce per output, and no output
  EXPECT_TRUE(matches(logsumexp(e, {0}), {3}, {-INFINITY, -INFINITY, -INFINITY}, 0, 0));
  for (auto* f : {+[](const Tensor& t) { return amax(t); }, +[](const Tensor& t) { return amin(t, {0}); },
                  +[](const Tensor& t) { return max(t); }, +[](const Tensor& t) { return max(t, 0).first; },
                  +[](const Tensor& t) { return argmin(t, 0); }, +[](const Tensor& t) { return argmax(t); }}) {
    std::string msg = error_of<ValueError>([&] { f(e); });
    EXPECT_NE(msg.find("[0, 3]"), std::string::npos) << msg;
  }
}

TEST(Reduce, NaNPropagates) {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    // Rows (reduce the last dim) and columns (reduce dim 0), NaN in one group only.
    Tensor x = tensor(std::vector<double>{1, 2, NAN, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {3, 4}).to(dt);
    auto row = [&](const Tensor& t) { return read(t); };
    auto r = row(sum(x, {1}));
    EXPECT_TRUE(std::isnan(r[0]) && !std::isnan(r[1]) && !std::isnan(r[2])) << name(dt);
    for (auto& t :
         {amax(x, {1}), amin(x, {1}), prod(x, {1}), mean(x, {1}), max(x, 1).first, logsumexp(x, {1}), var(x, {1})}) {
      auto v = read(t);
      EXPECT_TRUE(std::isnan(v[0]) && !std::isnan(v[1]) && !std::isnan(v[2])) << name(dt);
    }
    for (auto& t : {sum(x, {0}), amax(x, {0}), amin(x, {0}), min(x, 0).first}) {
      auto v = read(t);
      EXPECT_TRUE(!std::isnan(v[0]) && !std::isnan(v[1]) && std::isnan(v[2]) && !std::isnan(v[3])) << name(dt);
    }
    EXPECT_EQ(max(x, 1).second.at<int64_t>({0}), 2);
    EXPECT_EQ(argmin(x, 0).at<int64_t>({2}), 0);
    EXPECT_TRUE(std::isnan(amax(x).item<double>()));
  }
  // NaN in the SIMD body, the SIMD tail, and in each thread's part of a long row / many columns.
  for (int64_t pos : {0, 7, 1000, 99990, 199999}) {
    Tensor big = ones({200000});
    {
      no_grad g;
      big.narrow(0, pos, 1).fill_(NAN);
    }
    EXPECT_TRUE(std::isnan(amax(big).item<float>())) << pos;
    EXPECT_TRUE(std::isnan(amin(big).item<float>())) << pos;
    EXPECT_TRUE(std::isnan(sum(big).item<float>())) << pos;
    Tensor cols = big.reshape({-1, 40});
    auto v = read(amax(cols, {0}));
    for (size_t j = 0; j < v.size(); ++j) EXPECT_EQ(std::isnan(v[j]), static_cast<int64_t>(j) == pos % 40) << pos;
  }
}

// --- large float32: accuracy of the blocked SIMD sums and the threaded splits

namespace {
std::vector<float> random_floats(int64_t n, double lo, double hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(u(gen));
  return v;
}

/// Checks sum/mean/amax/amin of x (given as a float vector with `shape`) over dims against double.
void check_large(const std::vector<float>& data, const std::vector<int64_t>& shape, const std::vector<int64_t>& dims,
                 const Tensor& x) {
  std::vector<int64_t> os;
  // Precomputed groups in double, without reading through the library.
  int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<bool> red(shape.size(), false);
  for (int64_t d : dims) red[static_cast<size_t>(d < 0 ? d + nd : d)] = true;
  std::vector<int64_t> kept;
  for (size_t d = 0; d < shape.size(); ++d)
    if (!red[d]) kept.push_back(shape[d]);
  int64_t n_out = numel(IntList(kept));
  std::vector<double> s(static_cast<size_t>(n_out), 0.0), sa(s), mx(s.size(), -INFINITY), mn(s.size(), INFINITY);
  std::vector<int64_t> cnt(s.size(), 0);
  std::vector<int64_t> idx(shape.size(), 0);
  for (size_t i = 0; i < data.size(); ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < shape.size(); ++d)
      if (!red[d]) o = o * shape[d] + idx[d];
    auto k = static_cast<size_t>(o);
    double v = data[i];
    s[k] += v;
    sa[k] += std::abs(v);
    mx[k] = std::max(mx[k], v);
    mn[k] = std::min(mn[k], v);
    ++cnt[k];
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  Tensor ts = sum(x, IntList(dims)), tm = mean(x, IntList(dims)), tx = amax(x, IntList(dims)),
         tn = amin(x, IntList(dims));
  ASSERT_EQ(ts.numel(), n_out);
  const float *ps = ts.data<float>(), *pm = tm.data<float>(), *px = tx.data<float>(), *pn = tn.data<float>();
  int bad = 0;
  for (size_t k = 0; k < s.size() && bad < 5; ++k) {
    // Within 1e-6 of the sum of magnitudes (and of the result, for all-positive data).
    double tol = 1e-6 * sa[k] + 1e-30;
    auto i = static_cast<int64_t>(k);
    if (std::abs(ps[i] - s[k]) > tol) {
      ++bad;
      ADD_FAILURE() << "sum[" << k << "] = " << ps[i] << ", expected " << s[k] << " shape " << to_string(IntList(shape))
                    << " dims " << to_string(IntList(dims));
    }
    double m = s[k] / static_cast<double>(cnt[k]);
    if (std::abs(pm[i] - m) > tol / static_cast<double>(cnt[k]) + 1e-7 * std::abs(m)) {
      ++bad;
      ADD_FAILURE() << "mean[" << k << "] = " << pm[i] << ", expected " << m;
    }
    if (px[i] != mx[k] || pn[i] != mn[k]) {
      ++bad;
      ADD_FAILURE() << "amax/amin[" << k << "] = " << px[i] << "/" << pn[i] << ", expected " << mx[k] << "/" << mn[k];
    }
  }
}
}  // namespace

TEST(Reduce, LargeFloat32RowsAndColumnsAreAccurate) {
  struct C {
    std::vector<int64_t> shape, dims;
  };
  std::vector<C> cases = {
      {{1, 1000000}, {1}},        // one long row, split across threads
      {{1000000, 1}, {0}},        // the same as a column of width 1
      {{64 * 30 * 30, 32}, {0}},  // many rows of few columns (a batch-norm style reduction)
      {{1000, 1000}, {1}},        // many rows
      {{1000, 1000}, {0}},        // many columns
      {{4, 50000, 3}, {1}},       // few outer slices of narrow columns
      {{64, 100, 32}, {0, 2}},    // non-consecutive dims
      {{300000}, {0}},
  };
  uint32_t seed = 30;
  for (auto& c : cases) {
    int64_t n = numel(IntList(c.shape));
    // All positive (the hard case for summation: no cancellation hides errors), or mixed signs.
    bool positive = seed % 2 == 0 || n >= 1000000;
    auto data = random_floats(n, positive ? 0.0 : -1.0, positive ? 1.0 : 3.0, seed++);
    Tensor x = tensor(data).reshape(IntList(c.shape));
    check_large(data, c.shape, c.dims, x);
  }
  // All-positive sums must be accurate relative to the result itself.
  auto data = random_floats(1 << 21, 0.5, 1.5, 99);
  double exact = 0;
  for (float v : data) exact += v;
  EXPECT_NEAR(sum(tensor(data)).item<float>(), exact, 2e-7 * exact);
}

TEST(Reduce, LargeFloat32NonContiguousInput) {
  const int64_t R = 600, C = 500;
  auto data = random_floats(R * C, -1, 1, 7);
  Tensor xt = tensor(data).reshape({R, C}).t();  // [C, R] view: xt[i][j] = data[j * C + i]
  for (int64_t d : {0, 1}) {
    int64_t n_out = d == 0 ? R : C, n_red = d == 0 ? C : R;
    std::vector<double> ws, wm, wa;
    for (int64_t o = 0; o < n_out; ++o) {
      Group g;
      for (int64_t r = 0; r < n_red; ++r) g.push_back(data[static_cast<size_t>(d == 0 ? o * C + r : r * C + o)]);
      ws.push_back(g_sum(g));
      wm.push_back(g_max(g));
      wa.push_back(g_argmax(g));
    }
    EXPECT_TRUE(near(values(sum(xt, {d})), ws, 1e-5, 1e-4)) << d;
    EXPECT_TRUE(near(values(amax(xt, {d})), wm, 0, 0)) << d;
    EXPECT_TRUE(near(values(argmax(xt, d)), wa, 0, 0)) << d;
  }
}

TEST(Reduce, VarianceOfLargeOffsetData) {
  // Two-pass variance: a large mean does not swamp a small spread.
  auto data = random_floats(100000, 1000.0, 1001.0, 8);
  double m = 0;
  for (float v : data) m += v;
  m /= static_cast<double>(data.size());
  double s = 0;
  for (float v : data) s += (v - m) * (v - m);
  double want = s / static_cast<double>(data.size() - 1);
  EXPECT_NEAR(var(tensor(data)).item<float>(), want, 1e-5 * want);
  EXPECT_NEAR(glia::std(tensor(data)).item<float>(), std::sqrt(want), 1e-5 * std::sqrt(want));
  EXPECT_TRUE(std::isnan(var(ones({1})).item<float>()));  // n - 1 = 0
  EXPECT_FLOAT_EQ(var(ones({1}), {}, 0).item<float>(), 0.f);
}

TEST(Reduce, HalfTypesReduceInFloat) {
  // The mean of 100000 ones is 1 even though their sum is past float16's range (as PyTorch).
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor h = ones({100000}, {.dtype = dt});
    EXPECT_EQ(mean(h).dtype(), dt);
    EXPECT_DOUBLE_EQ(mean(h).item<double>(), 1.0) << name(dt);
    EXPECT_TRUE(matches(mean(ones({3, 70000}, {.dtype = dt}), {1}), {3}, {1, 1, 1}, 0, 0)) << name(dt);
    EXPECT_NEAR(logsumexp(zeros({100000}, {.dtype = dt}), {0}).item<double>(), std::log(1e5), 0.05) << name(dt);
    EXPECT_NEAR(
        var(full({100000}, 300.0, {.dtype = dt}) + glia::repeat(tensor({0.0, 2.0}).to(dt), {50000})).item<double>(),
        1.0, 1e-2)
        << name(dt);
  }
  Tensor h = ones({4, 3}, {.dtype = DType::f16, .requires_grad = true});
  mean(h, {1}).sum().backward();
  EXPECT_EQ(h.grad().dtype(), DType::f16);
  EXPECT_TRUE(matches(h.grad(), {4, 3}, std::vector<double>(12, 1.0 / 3), 1e-3, 0));
}

TEST(Reduce, LogsumexpIsStable) {
  Tensor x = tensor({{1000.0, 1000.0}, {-1000.0, -1001.0}}, {.dtype = DType::f64});
  EXPECT_TRUE(matches(logsumexp(x, {1}), {2}, {1000 + std::log(2.0), -1000 + std::log1p(std::exp(-1.0))}, 1e-14, 0));
  EXPECT_TRUE(
      matches(logsumexp(x, {1}, true), {2, 1}, {1000 + std::log(2.0), -1000 + std::log1p(std::exp(-1.0))}, 1e-14, 0));
  Tensor inf = tensor(std::vector<double>{-INFINITY, -INFINITY, INFINITY, 1.0}, {2, 2});
  EXPECT_TRUE(matches(logsumexp(inf, {1}), {2}, {-INFINITY, INFINITY}, 0, 0));
}

TEST(Reduce, SumTo) {
  manual_seed(22);
  Tensor x = make_input({2, 3, 4}, Layout::Permuted);
  for (auto& target : {std::vector<int64_t>{3, 1}, std::vector<int64_t>{1, 4}, std::vector<int64_t>{},
                       std::vector<int64_t>{2, 1, 4}, std::vector<int64_t>{4}, std::vector<int64_t>{1, 1, 1, 1}}) {
    if (target.size() > 3) {
      EXPECT_THROW(sum_to(x, IntList(target)), ShapeError);
      continue;
    }
    Tensor y = sum_to(x, IntList(target));
    // Reference: add each element into the broadcast position it came from.
    std::vector<double> want(static_cast<size_t>(numel(IntList(target))), 0.0);
    auto v = read(x);
    size_t flat = 0;
    for_each_index(x.shape(), [&](const std::vector<int64_t>& idx) {
      int64_t o = 0;
      size_t lead = 3 - target.size();
      for (size_t d = 0; d < target.size(); ++d) o = o * target[d] + (target[d] == 1 ? 0 : idx[d + lead]);
      want[static_cast<size_t>(o)] += v[flat++];
    });
    EXPECT_TRUE(matches(y, target, want, 1e-12, 1e-12)) << to_string(IntList(target));
  }
  EXPECT_TRUE(sum_to(x, {2, 3, 4}).is_same(x));
  EXPECT_THROW(sum_to(x, {2, 4}), ShapeError);
  EXPECT_THROW(sum_to(ones({3}), {2, 3}), ShapeError);
}

TEST(Reduce, DimErrors) {
  Tensor x = zeros({2, 3});
  EXPECT_THROW(sum(x, {2}), ValueError);
  EXPECT_THROW(sum(x, {-3}), ValueError);
  EXPECT_THROW(sum(x, {1, -1}), ValueError);  // repeated
  EXPECT_THROW(max(x, 2), ValueError);
  EXPECT_THROW(argmax(x, -3), ValueError);
  std::string msg = error_of<ValueError>([&] { amax(x, {5}); });
  EXPECT_NE(msg.find("amax"), std::string::npos) << msg;
}

// --- gradients

namespace {
std::vector<Tensor> leaf(const Tensor& t) { return {t.detach().requires_grad_(true)}; }
}  // namespace

TEST(Reduce, Gradchecks) {
  manual_seed(23);
  Tensor x = uniform({2, 3, 2}, -1, 1);
  Tensor pos = uniform({2, 3, 2}, 0.5, 1.5);
  for (auto& dims :
       {std::vector<int64_t>{}, std::vector<int64_t>{1}, std::vector<int64_t>{0, 2}, std::vector<int64_t>{-1}})
    for (bool keep : {false, true}) {
      IntList d(dims);
      std::string what = to_string(d) + (keep ? " keepdim" : "");
      EXPECT_TRUE(gradcheck([&](auto& in) { return sum(in[0], d, keep); }, leaf(x))) << what;
      EXPECT_TRUE(gradcheck([&](auto& in) { return mean(in[0], d, keep); }, leaf(x))) << what;
      EXPECT_TRUE(gradcheck([&](auto& in) { return prod(in[0], d, keep); }, leaf(pos))) << what;
      EXPECT_TRUE(gradcheck([&](auto& in) { return amax(in[0], d, keep); }, leaf(x))) << what;
      EXPECT_TRUE(gradcheck([&](auto& in) { return amin(in[0], d, keep); }, leaf(x))) << what;
      EXPECT_TRUE(gradcheck([&](auto& in) { return var(in[0], d, 1, keep); }, leaf(x))) << what;
      EXPECT_TRUE(gradcheck([&](auto& in) { return var(in[0], d, 0, keep); }, leaf(x))) << what;
      EXPECT_TRUE(gradcheck([&](auto& in) { return glia::std(in[0], d, 1, keep); }, leaf(x))) << what;
      if (!dims.empty()) {
        EXPECT_TRUE(gradcheck([&](auto& in) { return logsumexp(in[0], d, keep); }, leaf(x))) << what;
      }
    }
  for (int64_t d : {0, 1, -1})
    for (bool keep : {false, true}) {
      EXPECT_TRUE(gradcheck([&](auto& in) { return max(in[0], d, keep).first; }, leaf(x)));
      EXPECT_TRUE(gradcheck([&](auto& in) { return min(in[0], d, keep).first; }, leaf(x)));
    }
  EXPECT_TRUE(gradcheck([&](auto& in) { return sum_to(in[0], {3, 1}); }, leaf(x)));
  EXPECT_TRUE(gradcheck([&](auto& in) { return sum(in[0].permute({2, 0, 1}), {1}); }, leaf(x)));
}

TEST(Reduce, ProdGradientWithZeros) {
  // One zero: the gradient there is the product of the others, zero elsewhere.
  Tensor one = tensor({2.0, 0.0, 3.0, -1.5}, {}, {.dtype = DType::f64}).requires_grad_(true);
  auto g = grad(prod(one), one);
  EXPECT_TRUE(matches(g, {4}, {0, 2 * 3 * -1.5, 0, 0}, 1e-15, 0));
  EXPECT_TRUE(gradcheck([](auto& in) { return prod(in[0]); }, leaf(one)));
  // Two zeros: every gradient is zero.
  Tensor two = tensor({2.0, 0.0, 3.0, 0.0}, {}, {.dtype = DType::f64}).requires_grad_(true);
  EXPECT_TRUE(matches(grad(prod(two), two), {4}, {0, 0, 0, 0}, 0, 0));
  EXPECT_TRUE(gradcheck([](auto& in) { return prod(in[0]); }, leaf(two)));
  // Per group along a dim: rows with no, one and two zeros.
  Tensor m = tensor({{1.5, 2.0, -1.0}, {0.0, 2.0, 3.0}, {0.0, 0.0, 4.0}}, {.dtype = DType::f64});
  Tensor mg = grad(prod(m.requires_grad_(true), {1}).sum(), m);
  EXPECT_TRUE(matches(mg, {3, 3}, {-2, -1.5, 3, 6, 0, 0, 0, 0, 0}, 1e-15, 0));
  EXPECT_TRUE(gradcheck([](auto& in) { return prod(in[0], {1}); }, leaf(m)));
  EXPECT_TRUE(gradcheck([](auto& in) { return prod(in[0], {0}, true); }, leaf(m)));
  // Second order too, with and without zeros.
  EXPECT_TRUE(gradgradcheck([](auto& in) { return prod(in[0], {1}); }, leaf(uniform({2, 3}, 0.5, 1.5))));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return prod(in[0], {1}); }, leaf(m)));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return prod(in[0]); }, leaf(one)));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return prod(in[0]); }, leaf(two)));
}

TEST(Reduce, AmaxTiesSplitTheGradientEvenly) {
  Tensor x = tensor({{1.0, 3.0, 3.0}, {2.0, 2.0, 2.0}}, {.dtype = DType::f64}).requires_grad_(true);
  Tensor w = tensor({10.0, 30.0}, {}, {.dtype = DType::f64});
  // d/dx sum_i w_i amax(x_i) = w_i / (number of maxima of row i) at each maximum.
  auto g = grad(amax(x, {1}), x, {.grad_outputs = {w}});
  EXPECT_TRUE(matches(g, {2, 3}, {0, 5, 5, 10, 10, 10}, 1e-15, 0));
  auto gmin = grad(amin(x, {1}), x, {.grad_outputs = {w}});
  EXPECT_TRUE(matches(gmin, {2, 3}, {10, 0, 0, 10, 10, 10}, 1e-15, 0));
  auto gall = grad(amax(x), x);
  EXPECT_TRUE(matches(gall, {2, 3}, {0, 0.5, 0.5, 0, 0, 0}, 1e-15, 0));
  // max(dim) gives the whole gradient to the index it returns (the first maximum).
  auto gm = grad(max(x, 1).first, x, {.grad_outputs = {w}});
  EXPECT_TRUE(matches(gm, {2, 3}, {0, 10, 0, 30, 0, 0}, 0, 0));
}

TEST(Reduce, Gradgradchecks) {
  manual_seed(24);
  Tensor x = uniform({2, 3}, -1, 1);
  EXPECT_TRUE(gradgradcheck([](auto& in) { return sum(in[0] * in[0], {1}); }, leaf(x)));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return mean(in[0], {0}) * mean(in[0], {0}); }, leaf(x)));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return var(in[0], {1}); }, leaf(x)));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return glia::std(in[0], {0}); }, leaf(x)));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return logsumexp(in[0], {1}); }, leaf(x)));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return amax(in[0], {1}) * amax(in[0], {1}); }, leaf(x)));
}
