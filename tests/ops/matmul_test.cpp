// matmul and linear against a naive double reference: every rank combination,
// broadcast batches, transposed / sliced / expanded operand views, empty dims,
// float32 (incl. a large product), float64, bfloat16 / float16; gradients; errors.
#include <random>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

using Idx = std::vector<int64_t>;

/// NumPy matmul in double: returns the values and sets `shape`; `abs_out` gets sum_k |a b| per element.
std::vector<double> ref_matmul(const Tensor& a, const Tensor& b, Idx& shape, std::vector<double>* abs_out = nullptr) {
  Idx sa = vshape(a), sb = vshape(b);
  bool a1 = sa.size() == 1, b1 = sb.size() == 1;
  if (a1) sa.insert(sa.begin(), 1);
  if (b1) sb.push_back(1);
  int64_t M = sa[sa.size() - 2], K = sa.back(), N = sb.back();
  Idx ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  Idx batch = bshape(ba, bb);
  Idx full = batch;
  full.push_back(M);
  full.push_back(N);
  // Read both operands (as 2-D-promoted views) once.
  Tensor av = a1 ? a.unsqueeze(0) : a, bv = b1 ? b.unsqueeze(1) : b;
  Idx fa = batch, fb = batch;
  fa.push_back(M);
  fa.push_back(K);
  fb.push_back(K);
  fb.push_back(N);
  auto A = read_as(av, fa), B = read_as(bv, fb);
  int64_t nb = numel(IntList(batch));
  std::vector<double> out(static_cast<size_t>(nb * M * N), 0.0);
  if (abs_out) abs_out->assign(out.size(), 0.0);
  for (int64_t p = 0; p < nb; ++p)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) {
        double x = A[static_cast<size_t>((p * M + i) * K + k)];
        for (int64_t j = 0; j < N; ++j) {
          double y = B[static_cast<size_t>((p * K + k) * N + j)];
          out[static_cast<size_t>((p * M + i) * N + j)] += x * y;
          if (abs_out) (*abs_out)[static_cast<size_t>((p * M + i) * N + j)] += std::abs(x * y);
        }
      }
  shape = batch;
  if (!a1) shape.push_back(M);
  if (!b1) shape.push_back(N);
  return out;
}

/// |got - want| <= tol * sum_k |a_ik b_kj| (+ tiny), the natural error scale of a dot product.
::testing::AssertionResult close_dot(const Tensor& y, const Idx& shape, const std::vector<double>& want,
                                     const std::vector<double>& mag, double tol) {
  if (vshape(y) != shape)
    return ::testing::AssertionFailure() << "shape " << to_string(y.shape()) << ", expected "
                                         << to_string(IntList(shape));
  auto got = values(y);
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want[i]) <= tol * mag[i] + 1e-30))
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", expected " << want[i];
  return ::testing::AssertionSuccess();
}

struct MCase {
  Idx sa, sb;
};
const std::vector<MCase> kCases = {
    {{4}, {4}},
    {{3}, {3, 5}},
    {{3, 5}, {5}},
    {{2, 3}, {3, 4}},
    {{1, 1}, {1, 1}},
    {{2, 3, 4}, {2, 4, 5}},
    {{2, 1, 3, 4}, {5, 4, 2}},
    {{4}, {2, 4, 3}},
    {{2, 3, 4}, {4}},
    {{3, 4}, {2, 4, 5}},
    {{2, 3, 4}, {4, 6}},
    {{1, 2, 3}, {4, 1, 3, 2}},
    {{0, 3}, {3, 4}},
    {{3, 0}, {0, 4}},
    {{2, 3}, {3, 0}},
    {{0, 2, 3}, {3, 4}},
    {{2, 17, 33}, {33, 9}},
};

}  // namespace

TEST(Matmul, MatchesReferenceForAllRanksAndLayouts) {
  manual_seed(60);
  for (DType dt : {DType::f64, DType::f32})
    for (auto& c : kCases)
      for (auto [la, lb] :
           {std::pair{Layout::Contiguous, Layout::Contiguous}, std::pair{Layout::Permuted, Layout::Permuted},
            std::pair{Layout::Strided, Layout::Permuted}, std::pair{Layout::Permuted, Layout::Strided}}) {
        Tensor a = make_input(c.sa, la, -1, 1, dt), b = make_input(c.sb, lb, -1, 1, dt);
        Idx shape;
        std::vector<double> mag;
        auto want = ref_matmul(a, b, shape, &mag);
        Tensor y = matmul(a, b);
        EXPECT_EQ(y.dtype(), dt);
        EXPECT_TRUE(close_dot(y, shape, want, mag, dt == DType::f64 ? 1e-14 : 1e-6))
            << name(dt) << " " << to_string(IntList(c.sa)) << " @ " << to_string(IntList(c.sb)) << " ("
            << layout_name(la) << ", " << layout_name(lb) << ")";
      }
}

TEST(Matmul, TransposedSlicedAndExpandedOperands) {
  manual_seed(61);
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    double tol = dt == DType::bf16 ? 1e-2 : dt == DType::f32 ? 1e-6 : 1e-14;
    Tensor base = uniform({6, 8}, -1, 1, dt), base2 = uniform({9, 10}, -1, 1, dt);
    std::vector<std::pair<Tensor, Tensor>> ops = {
        {base.t(), base2.slice(0, 0, 6).slice(1, 1, 9)},                 // A^T, B sliced (row stride 10)
        {base.slice(1, 0, 8, 2), base2.t().slice(0, 0, 4)},              // A with column stride 2, B^T
        {base.slice(0, 1, 5), base2.slice(1, 0, 10, 3).slice(0, 0, 8)},  // offset rows, B column stride 3
        {base.t().slice(0, 2, 7), base2.t().slice(0, 0, 6)},             // both transposed
        {base.narrow(0, 2, 1), base2.slice(0, 0, 8)},                    // a single row
        {base.unsqueeze(0).expand({3, 6, 8}), base2.slice(0, 0, 8).unsqueeze(0).expand({3, 8, 10})},
        {base.slice(0, 0, 2).unsqueeze(0).expand({4, 2, 8}).transpose(1, 2).transpose(1, 2),
         base2.t().t().slice(0, 1, 9)},
        {base.select(1, 3).unsqueeze(1).expand({6, 5}), base2.slice(0, 0, 5)},  // column stride 0
    };
    for (size_t i = 0; i < ops.size(); ++i) {
      auto& [a, b] = ops[i];
      Idx shape;
      std::vector<double> mag;
      auto want = ref_matmul(a, b, shape, &mag);
      EXPECT_TRUE(close_dot(matmul(a, b), shape, want, mag, tol)) << name(dt) << " case " << i;
      EXPECT_TRUE(matmul(a, b).is_contiguous());
    }
  }
}

TEST(Matmul, HalfTypesComputeInFloat) {
  manual_seed(62);
  for (DType dt : {DType::bf16, DType::f16})
    for (auto& c : {MCase{{5, 7}, {7, 3}}, MCase{{2, 3, 16}, {16, 4}}, MCase{{9}, {9}}}) {
      Tensor a = make_input(c.sa, Layout::Permuted, -1, 1, dt), b = make_input(c.sb, Layout::Contiguous, -1, 1, dt);
      Idx shape;
      std::vector<double> mag;
      auto want = ref_matmul(a, b, shape, &mag);  // exact products of the stored values
      Tensor y = matmul(a, b);
      EXPECT_EQ(y.dtype(), dt);
      // One rounding of the float result to dt.
      EXPECT_TRUE(close_dot(y, shape, want, mag, dt == DType::bf16 ? 4e-3 : 5e-4)) << name(dt);
    }
}

TEST(Matmul, LargeFloat32IsAccurate) {
  const int64_t M = 512, K = 1024, N = 768;
  std::mt19937 gen(63);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> av(static_cast<size_t>(M * K)), bv(static_cast<size_t>(K * N));
  for (auto& v : av) v = u(gen);
  for (auto& v : bv) v = u(gen);
  Tensor a = tensor(av).reshape({M, K}), b = tensor(bv).reshape({K, N});
  Tensor y = matmul(a, b);
  ASSERT_EQ(y.shape(), (Shape{M, N}));
  // Reference in double (i-k-j order), with the magnitude sum per element.
  std::vector<double> want(static_cast<size_t>(M * N), 0.0), mag(want.size(), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      double x = av[static_cast<size_t>(i * K + k)];
      const float* brow = bv.data() + k * N;
      double* w = want.data() + i * N;
      double* m = mag.data() + i * N;
      for (int64_t j = 0; j < N; ++j) {
        w[j] += x * brow[j];
        m[j] += std::abs(x * brow[j]);
      }
    }
  const float* p = y.data<float>();
  int bad = 0;
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double err = std::abs(p[i] - want[i]) / mag[i];
    worst = std::max(worst, err);
    if (err > 2e-6 && bad++ < 5) ADD_FAILURE() << "element " << i << ": got " << p[i] << ", expected " << want[i];
  }
  EXPECT_LT(worst, 2e-6);
  // The transposed product reads the same memory: (B^T A^T) = (A B)^T.
  Tensor yt = matmul(b.t(), a.t());
  EXPECT_TRUE(all_close(yt, y.t(), 1e-5, 1e-4));
}

TEST(Matmul, EmptyDims) {
  EXPECT_TRUE(matches(matmul(zeros({3, 0}), zeros({0, 4})), {3, 4}, std::vector<double>(12, 0.0), 0, 0));
  EXPECT_TRUE(matches(matmul(zeros({3, 0}, {.dtype = DType::f64}), zeros({0, 2}, {.dtype = DType::f64})), {3, 2},
                      std::vector<double>(6, 0.0), 0, 0));
  EXPECT_TRUE(matches(matmul(zeros({0}), zeros({0})), {}, {0}, 0, 0));
  EXPECT_EQ(matmul(zeros({0, 3}), zeros({3, 4})).shape(), (Shape{0, 4}));
  EXPECT_EQ(matmul(zeros({2, 0, 3}), zeros({3, 4})).shape(), (Shape{2, 0, 4}));
  EXPECT_EQ(matmul(zeros({0, 2, 3}), zeros({5, 1, 3, 4})).shape(), (Shape{5, 0, 2, 4}));
  // K = 0 with a gradient: zeros of the right shapes.
  Tensor a = zeros({2, 0}, {.dtype = DType::f64, .requires_grad = true});
  Tensor b = zeros({0, 3}, {.dtype = DType::f64, .requires_grad = true});
  auto g = grad({matmul(a, b).sum()}, {a, b});
  EXPECT_EQ(g[0].shape(), (Shape{2, 0}));
  EXPECT_EQ(g[1].shape(), (Shape{0, 3}));
}

TEST(Matmul, Linear) {
  manual_seed(64);
  Tensor x = uniform({4, 5}), w = uniform({5, 3}), bias = uniform({3});
  Idx shape;
  auto want = ref_matmul(x, w, shape);
  auto bv = read(bias);
  EXPECT_TRUE(matches(linear(x, w), shape, want, 1e-14, 1e-14));
  for (size_t i = 0; i < want.size(); ++i) want[i] += bv[i % 3];
  EXPECT_TRUE(matches(linear(x, w, bias), shape, want, 1e-14, 1e-14));
  Tensor x3 = make_input({2, 4, 5}, Layout::Permuted);
  auto want3 = ref_matmul(x3, w, shape);
  for (size_t i = 0; i < want3.size(); ++i) want3[i] += bv[i % 3];
  EXPECT_TRUE(matches(linear(x3, w, bias), {2, 4, 3}, want3, 1e-14, 1e-14));
  EXPECT_EQ(linear(uniform({5}), w, bias).shape(), (Shape{3}));
  EXPECT_THROW(linear(x, uniform({4, 3})), ShapeError);
  EXPECT_THROW(linear(x, uniform({5})), ShapeError);
  EXPECT_THROW(linear(x, w, uniform({4})), ShapeError);
  EXPECT_THROW(linear(x, w, uniform({1, 3})), ShapeError);
  std::string msg = error_of<ShapeError>([&] { linear(x, uniform({4, 3})); });
  EXPECT_NE(msg.find("[4, 5]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4, 3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("linear"), std::string::npos) << msg;
}

TEST(Matmul, Gradchecks) {
  manual_seed(65);
  for (auto& c :
       {MCase{{3}, {3}}, MCase{{3}, {3, 2}}, MCase{{2, 3}, {3}}, MCase{{2, 3}, {3, 4}}, MCase{{2, 2, 3}, {2, 3, 2}},
        MCase{{2, 1, 2, 3}, {3, 3, 2}}, MCase{{3}, {2, 3, 2}}, MCase{{2, 3}, {2, 3, 1}}}) {
    Tensor a = uniform(IntList(c.sa)).requires_grad_(true), b = uniform(IntList(c.sb)).requires_grad_(true);
    std::string what = to_string(IntList(c.sa)) + " @ " + to_string(IntList(c.sb));
    EXPECT_TRUE(gradcheck([](auto& in) { return matmul(in[0], in[1]); }, {a, b})) << what;
    EXPECT_TRUE(gradgradcheck([](auto& in) { return matmul(in[0], in[1]); }, {a, b})) << what;
  }
  // Through transposed views of leaves.
  Tensor a = uniform({3, 2}).requires_grad_(true), b = uniform({4, 3}).requires_grad_(true);
  EXPECT_TRUE(gradcheck([](auto& in) { return matmul(in[0].t(), in[1].t()); }, {a, b}));
  Tensor x = uniform({2, 3, 4}).requires_grad_(true), w = uniform({4, 2}).requires_grad_(true),
         bias = uniform({2}).requires_grad_(true);
  EXPECT_TRUE(gradcheck([](auto& in) { return linear(in[0], in[1], in[2]); }, {x, w, bias}));
  EXPECT_TRUE(gradcheck([](auto& in) { return linear(in[0], in[1]); }, {x, w}));
  EXPECT_TRUE(gradgradcheck([](auto& in) { return linear(in[0], in[1], in[2]); }, {x, w, bias}));
  // float32 gradients keep float32 and match float64.
  Tensor af = uniform({3, 4}, -1, 1, DType::f32).requires_grad_(true);
  Tensor bf = uniform({4, 2}, -1, 1, DType::f32).requires_grad_(true);
  auto gf = grad({matmul(af, bf).sum()}, {af, bf});
  Tensor ad = af.detach().to(DType::f64).requires_grad_(true), bd = bf.detach().to(DType::f64).requires_grad_(true);
  auto gd = grad({matmul(ad, bd).sum()}, {ad, bd});
  EXPECT_EQ(gf[0].dtype(), DType::f32);
  EXPECT_TRUE(all_close(gf[0], gd[0], 1e-5, 1e-6));
  EXPECT_TRUE(all_close(gf[1], gd[1], 1e-5, 1e-6));
}

TEST(Matmul, Errors) {
  std::string msg = error_of<ShapeError>([] { matmul(ones({2, 3}), ones({4, 5})); });
  EXPECT_NE(msg.find("matmul"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4, 5]"), std::string::npos) << msg;
  msg = error_of<ShapeError>([] { matmul(ones({3}), ones({4})); });
  EXPECT_NE(msg.find("[3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4]"), std::string::npos) << msg;
  msg = error_of<ShapeError>([] { matmul(ones({2, 2, 3}), ones({3, 3, 4})); });  // batch 2 vs 3
  EXPECT_NE(msg.find("matmul"), std::string::npos) << msg;
  msg = error_of<DTypeError>([] { matmul(tensor({{1, 2}}).to(DType::i64), tensor({1, 2}).reshape({2, 1})); });
  EXPECT_NE(msg.find("matmul"), std::string::npos) << msg;
  EXPECT_NE(msg.find("int64"), std::string::npos) << msg;
  EXPECT_THROW(matmul(ones({2, 2}, {.dtype = DType::i32}), ones({2, 2}, {.dtype = DType::i32})), DTypeError);
  EXPECT_THROW(matmul(ones({2, 2}), ones({2, 2}, {.dtype = DType::f64})), DTypeError);
  msg = error_of<ShapeError>([] { matmul(full({}, 1.0), ones({2})); });
  EXPECT_NE(msg.find("matmul"), std::string::npos) << msg;
  EXPECT_THROW(matmul(ones({2}), full({}, 2.0)), ShapeError);
  EXPECT_THROW(ones({2, 3}).matmul(ones({2, 3})), ShapeError);
}
