#include <cmath>

#include "testing.h"

using namespace glia;
using glia::testing::all_close;
using glia::testing::values;

TEST(Tensor, CreationShapesAndDtypes) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_EQ(z.numel(), 6);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_TRUE(all_close(z, std::vector<double>(6, 0.0)));
  EXPECT_TRUE(all_close(ones({4}, {.dtype = DType::i32}), std::vector<double>(4, 1.0)));
  EXPECT_TRUE(all_close(full({2, 2}, 7.5, {.dtype = DType::f64}), {7.5, 7.5, 7.5, 7.5}));
  EXPECT_TRUE(all_close(arange(5), {0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(5).dtype(), DType::i64);
  EXPECT_TRUE(all_close(arange(1.0, 2.0, 0.25, {.dtype = DType::f64}), {1.0, 1.25, 1.5, 1.75}));
  EXPECT_TRUE(all_close(linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1.0}));
  EXPECT_TRUE(all_close(eye(2, 3), {1, 0, 0, 0, 1, 0}));
  Tensor t = tensor({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(t.dtype(), DType::i64);
  EXPECT_EQ(t.at<int64_t>({1, 0}), 3);
  EXPECT_EQ(t.at<int64_t>({-1, -1}), 4);
  EXPECT_EQ(tensor({1.5, 2.5}).dtype(), DType::f32);
  EXPECT_EQ(tensor(std::vector<double>{1.5}).dtype(), DType::f64);
  Tensor m = tensor({{1, 2}, {3, 4}});
  EXPECT_EQ(m.shape(), (Shape{2, 2}));
  EXPECT_FLOAT_EQ(m.at<float>({1, 1}), 4.f);
}

TEST(Tensor, SixteenBitFloatsRoundTrip) {
  std::vector<float> v = {0.f, 1.f, -2.5f, 65504.f, 1e-5f, 3.14159f, -0.f, 1e-8f};
  Tensor f = tensor(v);
  Tensor h = f.to(DType::f16).to(DType::f32);
  Tensor b = f.to(DType::bf16).to(DType::f32);
  auto hv = values(h), bv = values(b);
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_NEAR(hv[i], v[i], std::abs(v[i]) * 1e-3 + 6e-8) << i;   // 10-bit mantissa
    EXPECT_NEAR(bv[i], v[i], std::abs(v[i]) * 8e-3 + 1e-38) << i;  // 7-bit mantissa
  }
  EXPECT_TRUE(std::isinf(values(tensor({70000.f}).to(DType::f16))[0]));
  EXPECT_TRUE(std::isnan(values(tensor({std::nanf("")}).to(DType::bf16))[0]));
}

TEST(Tensor, ViewsShareStorage) {
  Tensor x = arange(24).reshape({2, 3, 4});
  Tensor v = x.permute({2, 0, 1});
  EXPECT_EQ(v.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(v.storage(), x.storage());
  EXPECT_FALSE(v.is_contiguous());
  EXPECT_EQ(v.at<int64_t>({3, 1, 2}), x.at<int64_t>({1, 2, 3}));
  Tensor s = x.slice(2, 1, 4, 2);  // columns 1 and 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_TRUE(all_close(s.slice(0, 0, 1).reshape({-1}), {1, 3, 5, 7, 9, 11}));
  EXPECT_TRUE(all_close(x.slice(2, -2, 100).select(0, -1).select(0, 0), {14, 15}));
  Tensor e = tensor({1.f, 2.f, 3.f}).reshape({3, 1}).expand({3, 4});
  EXPECT_EQ(e.strides(), (Shape{1, 0}));
  EXPECT_TRUE(all_close(e.contiguous().reshape({-1}), {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}));
  EXPECT_EQ(x.unsqueeze(0).shape(), (Shape{1, 2, 3, 4}));
  EXPECT_EQ(x.unsqueeze(-1).shape(), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(x.unsqueeze(1).squeeze(1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(x.flatten(1).shape(), (Shape{2, 12}));
  // Writing through a view changes the base.
  {
    no_grad g;
    x.select(1, 1).fill_(-1);
  }
  EXPECT_EQ(x.at<int64_t>({0, 1, 2}), -1);
  EXPECT_EQ(x.at<int64_t>({0, 0, 2}), 2);
}

TEST(Tensor, ReshapeCopiesOnlyWhenNeeded) {
  Tensor x = arange(6).reshape({2, 3});
  EXPECT_EQ(x.reshape({3, 2}).storage(), x.storage());
  Tensor t = x.t();
  Tensor r = t.reshape({6});
  EXPECT_NE(r.storage(), x.storage());
  EXPECT_TRUE(all_close(r, {0, 3, 1, 4, 2, 5}));
  EXPECT_THROW(t.view({6}), ShapeError);
  EXPECT_THROW(x.reshape({4, 2}), ShapeError);
  EXPECT_THROW(x.reshape({-1, -1}), ShapeError);
}

TEST(Tensor, PrintsLikePyTorch) {
  EXPECT_EQ(tensor({{1.5, 2}, {3, 4}}).str(), "tensor([[1.5000, 2.0000],\n        [3.0000, 4.0000]])");
  EXPECT_EQ(tensor({1, 2, 3}).str(), "tensor([1, 2, 3])");
  EXPECT_EQ(tensor({1.0, 2.0}).str(), "tensor([1., 2.])");
  EXPECT_EQ(tensor({1.0, 2.0}, {}, {.dtype = DType::f64}).str(), "tensor([1., 2.], dtype=float64)");
  EXPECT_EQ((tensor({1, 2}) > 1).str(), "tensor([False,  True])");
  Tensor w = ones({2}, {.requires_grad = true});
  EXPECT_EQ(w.str(), "tensor([1., 1.], requires_grad=True)");
  EXPECT_EQ((w * 2).str(), "tensor([2., 2.], grad_fn=<mul>)");
  std::string big = arange(2000).str();
  EXPECT_NE(big.find("..."), std::string::npos);
}

TEST(Tensor, RandomIsSeededAndThreadIndependent) {
  manual_seed(42);
  Tensor a = randn({1000});
  Tensor u = rand({1000});
  Tensor i = randint(0, 10, {1000});
  manual_seed(42);
  set_num_threads(1);
  Tensor b = randn({1000});
  set_num_threads(2);
  EXPECT_TRUE(all_close(a, b, 0, 0));
  auto av = values(a);
  double m = 0, v = 0;
  for (double x : av) m += x;
  m /= 1000;
  for (double x : av) v += (x - m) * (x - m);
  v /= 999;
  EXPECT_NEAR(m, 0.0, 0.12);
  EXPECT_NEAR(v, 1.0, 0.15);
  for (double x : values(u)) {
    EXPECT_GE(x, 0.0);
    EXPECT_LT(x, 1.0);
  }
  for (double x : values(i)) {
    EXPECT_GE(x, 0.0);
    EXPECT_LE(x, 9.0);
  }
}

TEST(Tensor, FromBlobDoesNotCopy) {
  std::vector<float> buf = {1, 2, 3, 4, 5, 6};
  Tensor t = from_blob(buf.data(), {2, 3}, DType::f32);
  EXPECT_EQ(t.data_ptr(), buf.data());
  buf[4] = 50;
  EXPECT_FLOAT_EQ(t.at<float>({1, 1}), 50.f);
  bool freed = false;
  {
    float* mem = new float[4]{1, 2, 3, 4};
    Tensor owned = from_blob(mem, {4}, DType::f32, [&freed](void* p) {
      delete[] static_cast<float*>(p);
      freed = true;
    });
    EXPECT_FLOAT_EQ(owned.sum().item<float>(), 10.f);
  }
  EXPECT_TRUE(freed);
}

TEST(Tensor, InPlaceBumpsVersion) {
  Tensor x = zeros({3});
  uint32_t v0 = x.version();
  x.add_(1);
  x.mul_(tensor({1.f, 2.f, 3.f}));
  EXPECT_EQ(x.version(), v0 + 2);
  EXPECT_TRUE(all_close(x, {1, 2, 3}));
  x.sub_(0.5).div_(2);
  EXPECT_TRUE(all_close(x, {0.25, 0.75, 1.25}));
  x.copy_(tensor({7, 8, 9}));
  EXPECT_TRUE(all_close(x, {7, 8, 9}));
  x.clamp_(7.5, 8.5);
  EXPECT_TRUE(all_close(x, {7.5, 8, 8.5}));
  x.zero_();
  EXPECT_TRUE(all_close(x, {0, 0, 0}));
  EXPECT_THROW(x.add_(ones({2})), ShapeError);
  Tensor i = zeros({2}, {.dtype = DType::i64});
  EXPECT_THROW(i.add_(tensor({0.5f, 0.5f})), DTypeError);
}

TEST(Tensor, ItemAndElementAccessErrors) {
  EXPECT_THROW(zeros({2}).item(), ValueError);
  EXPECT_THROW(zeros({2, 2}).at<float>({2, 0}), ValueError);
  EXPECT_THROW(zeros({2, 2}).at<float>({0}), ValueError);
  EXPECT_THROW(zeros({2}).data<double>(), DTypeError);
  EXPECT_THROW(Tensor().shape(), ValueError);
}

TEST(Allocator, CachesFreedBlocks) {
  empty_cache();
  { Tensor a = empty({1 << 20}); }
  auto s1 = memory_stats();
  { Tensor b = empty({1 << 20}); }
  auto s2 = memory_stats();
  EXPECT_EQ(s2.system_allocs, s1.system_allocs);  // served from the cache
  EXPECT_EQ(s2.alloc_calls, s1.alloc_calls + 1);
  EXPECT_GE(s2.reserved_bytes, int64_t(4) << 20);
  empty_cache();
  EXPECT_LT(memory_stats().reserved_bytes, s2.reserved_bytes);
}
