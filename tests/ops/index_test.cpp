// Indexing ops: gather / scatter_add, index_select / index_add, embedding,
// one_hot and dropout against naive loops, their gradients, and errors.
#include <cmath>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// Row-major offset of idx in shape.
int64_t flat(const std::vector<int64_t>& shape, const std::vector<int64_t>& idx) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}

std::vector<double> ref_gather(const Tensor& x, int64_t dim, const Tensor& index) {
  auto xs = vshape(x), is = vshape(index);
  auto xv = read(x), iv = read(index);
  std::vector<double> out;
  for_each_index(IntList(is), [&](const std::vector<int64_t>& i) {
    std::vector<int64_t> j = i;
    j[static_cast<size_t>(dim)] = static_cast<int64_t>(iv[static_cast<size_t>(flat(is, i))]);
    out.push_back(xv[static_cast<size_t>(flat(xs, j))]);
  });
  return out;
}

std::vector<double> ref_scatter_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src) {
  auto bs = vshape(base), is = vshape(index), ss = vshape(src);
  auto out = read(base), iv = read(index), sv = read(src);
  for_each_index(IntList(is), [&](const std::vector<int64_t>& i) {
    std::vector<int64_t> j = i;
    j[static_cast<size_t>(dim)] = static_cast<int64_t>(iv[static_cast<size_t>(flat(is, i))]);
    out[static_cast<size_t>(flat(bs, j))] += sv[static_cast<size_t>(flat(ss, i))];
  });
  return out;
}

std::vector<double> ref_index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  auto xs = vshape(x), os = xs;
  auto xv = read(x), iv = read(index);
  os[static_cast<size_t>(dim)] = index.numel();
  std::vector<double> out;
  for_each_index(IntList(os), [&](const std::vector<int64_t>& i) {
    std::vector<int64_t> j = i;
    j[static_cast<size_t>(dim)] = static_cast<int64_t>(iv[static_cast<size_t>(i[static_cast<size_t>(dim)])]);
    out.push_back(xv[static_cast<size_t>(flat(xs, j))]);
  });
  return out;
}

std::vector<double> ref_index_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src) {
  auto bs = vshape(base), ss = vshape(src);
  auto out = read(base), iv = read(index), sv = read(src);
  for_each_index(IntList(ss), [&](const std::vector<int64_t>& i) {
    std::vector<int64_t> j = i;
    j[static_cast<size_t>(dim)] = static_cast<int64_t>(iv[static_cast<size_t>(i[static_cast<size_t>(dim)])]);
    out[static_cast<size_t>(flat(bs, j))] += sv[static_cast<size_t>(flat(ss, i))];
  });
  return out;
}

}  // namespace

// --- gather / scatter_add

TEST(Gather, MatchesNaiveLoopsOnEveryDimAndLayout) {
  std::vector<int64_t> xs = {4, 5, 6};
  for (Layout layout : kLayouts) {
    for (int64_t dim : {0, 1, 2}) {
      for (DType it : {DType::i64, DType::i32}) {
        Tensor x = make_input(xs, layout);
        // The index is smaller than x outside dim (torch.gather allows it) and longer along dim.
        std::vector<int64_t> is = {3, 4, 5};
        is[static_cast<size_t>(dim)] = 7;
        Tensor index = randint(0, xs[static_cast<size_t>(dim)], IntList(is)).to(it);
        Tensor y = gather(x, dim, index);
        EXPECT_TRUE(matches(y, is, ref_gather(x, dim, index), 0, 0)) << layout_name(layout) << dim;
      }
    }
  }
  // A permuted (non-contiguous) index and int32 values.
  Tensor x = randint(-50, 50, {6, 3}).to(DType::i32);
  Tensor index = randint(0, 6, {3, 6}).permute({1, 0});
  EXPECT_TRUE(matches(gather(x, 0, index), {6, 3}, ref_gather(x, 0, index), 0, 0));
  EXPECT_EQ(gather(x, 0, index).dtype(), DType::i32);
  EXPECT_EQ(gather(uniform({0, 3}), 1, randint(0, 3, {0, 2})).shape(), (Shape{0, 2}));
}

TEST(ScatterAdd, MatchesNaiveLoopsWithRepeatedIndices) {
  for (int64_t dim : {0, 1, -1}) {
    Tensor base = make_input({5, 4, 3}, Layout::Permuted);
    int64_t d = dim < 0 ? dim + 3 : dim;
    std::vector<int64_t> is = {4, 3, 2}, ss = {5, 4, 3};
    is[static_cast<size_t>(d)] = 9;  // more entries than positions: repeats add up
    ss[static_cast<size_t>(d)] = 10;
    Tensor index = randint(0, vshape(base)[static_cast<size_t>(d)], IntList(is));
    Tensor src = make_input(ss, Layout::Strided);
    EXPECT_TRUE(
        matches(scatter_add(base, dim, index, src), vshape(base), ref_scatter_add(base, d, index, src), 1e-14, 1e-15))
        << dim;
  }
  // Large enough to run on several threads: the result must not depend on them.
  Tensor base = zeros({64, 300}, {.dtype = DType::f32});
  Tensor index = randint(0, 64, {2000, 300});
  Tensor src = uniform({2000, 300}, -1, 1, DType::f32);
  EXPECT_TRUE(matches(scatter_add(base, 0, index, src), {64, 300}, ref_scatter_add(base, 0, index, src), 1e-4, 1e-5));
}

TEST(Gather, GradientsFirstAndSecondOrder) {
  Tensor x = uniform({3, 4, 5}).requires_grad_();
  Tensor index = randint(0, 4, {2, 6, 3});
  auto f = [&](const std::vector<Tensor>& in) { return gather(in[0], 1, index); };
  EXPECT_TRUE(gradcheck(f, {x}));
  EXPECT_TRUE(gradgradcheck([&](const std::vector<Tensor>& in) { return square(gather(in[0], 1, index)); }, {x}));
  // Repeated picks accumulate: d/dx sum(gather) counts how often each element was picked.
  Tensor x2 = zeros({3}, {.dtype = DType::f64, .requires_grad = true});
  gather(x2, 0, tensor({2, 2, 0, 2})).sum().backward();
  EXPECT_TRUE(all_close(x2.grad(), {1, 0, 3}));
}

TEST(ScatterAdd, Gradcheck) {
  Tensor base = uniform({4, 3}).requires_grad_();
  Tensor index = randint(0, 4, {6, 2});
  Tensor src = uniform({7, 3}).requires_grad_();  // larger than index: the rest gets zero gradient
  auto f = [&](const std::vector<Tensor>& in) { return scatter_add(in[0], 0, index, in[1]); };
  EXPECT_TRUE(gradcheck(f, {base, src}));
  EXPECT_TRUE(gradgradcheck([&](const std::vector<Tensor>& in) { return square(scatter_add(in[0], 0, index, in[1])); },
                            {base, src}));
}

TEST(Gather, Errors) {
  Tensor x = uniform({3, 4});
  std::string m = error_of<DTypeError>([&] { gather(x, 0, uniform({2, 4})); });
  EXPECT_TRUE(contains(m, "gather") && contains(m, "int32 or int64")) << m;
  m = error_of<DTypeError>([&] { gather(x, 0, tensor({0, 1}).to(DType::u8).reshape({1, 2})); });
  EXPECT_TRUE(contains(m, "uint8")) << m;
  m = error_of<ValueError>([&] { gather(x, 1, tensor({0, 4}).reshape({1, 2})); });
  EXPECT_TRUE(contains(m, "gather") && contains(m, "index 4") && contains(m, "size 4")) << m;
  m = error_of<ValueError>([&] { gather(x, 0, tensor({-1}).reshape({1, 1})); });
  EXPECT_TRUE(contains(m, "-1")) << m;
  m = error_of<ShapeError>([&] { gather(x, 0, tensor({0, 1})); });
  EXPECT_TRUE(contains(m, "gather") && contains(m, "rank")) << m;
  m = error_of<ShapeError>([&] { gather(x, 0, randint(0, 3, {2, 5})); });
  EXPECT_TRUE(contains(m, "dimension 1")) << m;
  m = error_of<DTypeError>([&] { scatter_add(x, 0, randint(0, 3, {2, 4}), uniform({2, 4}, -1, 1, DType::f32)); });
  EXPECT_TRUE(contains(m, "scatter_add") && contains(m, "float32")) << m;
  m = error_of<ShapeError>([&] { scatter_add(x, 0, randint(0, 3, {2, 4}), uniform({2, 3})); });
  EXPECT_TRUE(contains(m, "scatter_add")) << m;
}

// --- index_select / index_add

TEST(IndexSelect, MatchesNaiveLoops) {
  for (Layout layout : kLayouts) {
    for (int64_t dim : {0, 1, 2}) {
      Tensor x = make_input({4, 3, 5}, layout);
      Tensor index = randint(0, vshape(x)[static_cast<size_t>(dim)], {7}).to(DType::i32);
      std::vector<int64_t> os = vshape(x);
      os[static_cast<size_t>(dim)] = 7;
      EXPECT_TRUE(matches(index_select(x, dim, index), os, ref_index_select(x, dim, index), 0, 0))
          << layout_name(layout) << dim;
    }
  }
  Tensor x = uniform({3, 2});
  EXPECT_EQ(index_select(x, 0, tensor(std::vector<int64_t>{}, {0})).shape(), (Shape{0, 2}));
  Tensor strided_index = tensor({2, 9, 0, 9, 1, 9}).slice(0, 0, 6, 2);  // {2, 0, 1}
  EXPECT_TRUE(matches(index_select(x, 0, strided_index), {3, 2}, ref_index_select(x, 0, strided_index), 0, 0));
}

TEST(IndexAdd, MatchesNaiveLoopsWithRepeatedIndices) {
  for (int64_t dim : {0, 1, 2}) {
    Tensor base = make_input({4, 3, 5}, Layout::Strided);
    Tensor index = randint(0, vshape(base)[static_cast<size_t>(dim)], {9});
    std::vector<int64_t> ss = vshape(base);
    ss[static_cast<size_t>(dim)] = 9;
    Tensor src = make_input(ss, Layout::Permuted);
    EXPECT_TRUE(
        matches(index_add(base, dim, index, src), vshape(base), ref_index_add(base, dim, index, src), 1e-14, 1e-15))
        << dim;
  }
  // Wide rows split into column blocks over threads.
  Tensor base = zeros({50, 3000}, {.dtype = DType::f32});
  Tensor index = randint(0, 50, {400});
  Tensor src = uniform({400, 3000}, -1, 1, DType::f32);
  EXPECT_TRUE(matches(index_add(base, 0, index, src), {50, 3000}, ref_index_add(base, 0, index, src), 1e-4, 1e-5));
}

TEST(IndexSelect, GradientsFirstAndSecondOrder) {
  Tensor x = uniform({5, 3}).requires_grad_();
  Tensor index = tensor({4, 0, 4, 2});
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return index_select(in[0], 0, index); }, {x}));
  EXPECT_TRUE(gradgradcheck(
      [&](const std::vector<Tensor>& in) {
        return square(index_select(in[0], 1, tensor({2, 2, 0})));
      },
      {x}));
  Tensor base = uniform({5, 3}).requires_grad_();
  Tensor src = uniform({4, 3}).requires_grad_();
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return index_add(in[0], 0, index, in[1]); }, {base, src}));
  EXPECT_TRUE(gradgradcheck([&](const std::vector<Tensor>& in) { return square(index_add(in[0], 0, index, in[1])); },
                            {base, src}));
}

TEST(IndexSelect, Errors) {
  Tensor x = uniform({3, 4});
  std::string m = error_of<ValueError>([&] { index_select(x, 1, tensor({1, 4})); });
  EXPECT_TRUE(contains(m, "index_select") && contains(m, "index 4") && contains(m, "size 4")) << m;
  m = error_of<ShapeError>([&] { index_select(x, 0, tensor({0, 1}).reshape({1, 2})); });
  EXPECT_TRUE(contains(m, "index_select") && contains(m, "1-D")) << m;
  m = error_of<DTypeError>([&] { index_select(x, 0, uniform({2})); });
  EXPECT_TRUE(contains(m, "index_select") && contains(m, "float64")) << m;
  m = error_of<ShapeError>([&] { index_add(x, 0, tensor({0, 1}), uniform({3, 4})); });
  EXPECT_TRUE(contains(m, "index_add") && contains(m, "[2, 4]")) << m;
  m = error_of<ValueError>([&] { index_add(x, 0, tensor({0, 3}), uniform({2, 4})); });
  EXPECT_TRUE(contains(m, "index_add") && contains(m, "index 3")) << m;
}

// --- embedding

TEST(Embedding, RowsForIdsOfAnyShape) {
  Tensor w = uniform({10, 4});
  Tensor ids = randint(0, 10, {2, 3, 5});
  Tensor e = embedding(w, ids);
  EXPECT_EQ(e.shape(), (Shape{2, 3, 5, 4}));
  auto wv = read(w), iv = read(ids);
  std::vector<double> ref;
  for (double id : iv)
    for (int64_t j = 0; j < 4; ++j) ref.push_back(wv[static_cast<size_t>(static_cast<int64_t>(id) * 4 + j)]);
  EXPECT_TRUE(matches(e, {2, 3, 5, 4}, ref, 0, 0));
  EXPECT_EQ(embedding(w, tensor({3}).reshape({})).shape(), (Shape{4}));  // a 0-d id gives one row
  EXPECT_TRUE(all_close(embedding(w, tensor({7}).to(DType::i32).reshape({})), w[7]));
}

TEST(Embedding, GradientScatterAddsIntoUsedRows) {
  Tensor w = uniform({6, 3}).requires_grad_();
  Tensor ids = tensor({{5, 1}, {5, 5}}).to(DType::i64);
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return embedding(in[0], ids); }, {w}));
  embedding(w, ids).sum().backward();
  // Row 5 was used three times, row 1 once, the others never.
  EXPECT_TRUE(all_close(w.grad().sum({1}), {0, 3, 0, 0, 0, 9}));
}

TEST(Embedding, Errors) {
  Tensor w = uniform({10, 4});
  std::string m = error_of<ValueError>([&] { embedding(w, tensor({3, 12, 1})); });
  EXPECT_TRUE(contains(m, "embedding") && contains(m, "id 12") && contains(m, "10")) << m;
  m = error_of<ValueError>([&] { embedding(w, tensor({-2})); });
  EXPECT_TRUE(contains(m, "id -2")) << m;
  m = error_of<DTypeError>([&] { embedding(w, uniform({3})); });
  EXPECT_TRUE(contains(m, "embedding")) << m;
  m = error_of<ShapeError>([&] { embedding(uniform({10}), tensor({1})); });
  EXPECT_TRUE(contains(m, "embedding") && contains(m, "2-D")) << m;
}

// --- one_hot

TEST(OneHot, MatchesNaiveLoopsAndErrors) {
  Tensor labels = randint(0, 5, {3, 4});
  for (DType dt : {DType::f32, DType::i64, DType::f64}) {
    Tensor o = one_hot(labels, 5, dt);
    EXPECT_EQ(o.dtype(), dt);
    std::vector<double> ref;
    for (double l : read(labels))
      for (int c = 0; c < 5; ++c) ref.push_back(c == static_cast<int>(l) ? 1.0 : 0.0);
    EXPECT_TRUE(matches(o, {3, 4, 5}, ref, 0, 0));
  }
  EXPECT_EQ(one_hot(tensor({1, 0}).to(DType::i32), 2).dtype(), DType::f32);
  std::string m = error_of<ValueError>([] { one_hot(tensor({0, 5, 1}), 5); });
  EXPECT_TRUE(contains(m, "one_hot") && contains(m, "label 5") && contains(m, "5 classes")) << m;
  m = error_of<ValueError>([] { one_hot(tensor({0}), 0); });
  EXPECT_TRUE(contains(m, "num_classes")) << m;
  m = error_of<DTypeError>([] { one_hot(tensor({0.0, 1.0}), 2); });
  EXPECT_TRUE(contains(m, "one_hot")) << m;
}

// --- dropout

TEST(Dropout, SameSeedSameMaskAndScaling) {
  Tensor x = uniform({64, 33}, 1, 2, DType::f32);
  manual_seed(123);
  Tensor a = dropout(x, 0.3, true);
  manual_seed(123);
  Tensor b = dropout(x, 0.3, true);
  EXPECT_TRUE(all_close(a, b, 0, 0));
  Tensor c = dropout(x, 0.3, true);  // the generator moved on: another mask
  EXPECT_FALSE(all_close(a, c, 0, 0));
  // Kept elements are x / (1 - p); dropped ones are exactly 0.
  auto xv = values(x), av = values(a);
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_NEAR(av[i], av[i] == 0.0 ? 0.0 : xv[i] / 0.7, 1e-6);
}

TEST(Dropout, MaskFractionCloseToP) {
  manual_seed(7);
  for (double p : {0.1, 0.5, 0.8}) {
    Tensor y = dropout(ones({200000}, {.dtype = DType::f32}), p, true);
    double dropped = (y == 0.0).to(DType::f64).mean().item<double>();
    // Binomial standard deviation is ~0.001 here.
    EXPECT_NEAR(dropped, p, 0.006) << p;
    EXPECT_NEAR(y.to(DType::f64).mean().item<double>(), 1.0, 0.02) << p;  // unbiased in expectation
  }
}

TEST(Dropout, MaskDoesNotDependOnThreadCount) {
  Tensor x = ones({300000});
  int nt = get_num_threads();
  set_num_threads(1);
  manual_seed(99);
  Tensor a = dropout(x, 0.4, true);
  set_num_threads(std::max(2, nt));
  manual_seed(99);
  Tensor b = dropout(x, 0.4, true);
  set_num_threads(nt);
  EXPECT_TRUE(all_close(a, b, 0, 0));
}

TEST(Dropout, IdentityWhenNotTrainingOrPZeroAndZerosForPOne) {
  Tensor x = uniform({5, 5});
  EXPECT_TRUE(dropout(x, 0.5, false).is_same(x));
  EXPECT_TRUE(dropout(x, 0.0, true).is_same(x));
  Tensor xr = x.clone().requires_grad_();
  Tensor y = dropout(xr, 1.0, true);
  EXPECT_TRUE(all_close(y, std::vector<double>(25, 0.0)));
  y.sum().backward();
  EXPECT_TRUE(all_close(xr.grad(), std::vector<double>(25, 0.0)));
}

TEST(Dropout, GradientIsMaskOverKeep) {
  Tensor x = uniform({6, 7}).requires_grad_();
  auto f = [](const std::vector<Tensor>& in) {
    manual_seed(2024);  // the same mask on every evaluation
    return dropout(in[0], 0.4, true);
  };
  EXPECT_TRUE(gradcheck(f, {x}));
  EXPECT_TRUE(gradgradcheck([&](const std::vector<Tensor>& in) { return square(f(in)); }, {x}));
  Tensor y = f({x});
  y.sum().backward();
  auto yv = values(y), gv = values(x.grad());
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_DOUBLE_EQ(gv[i], yv[i] == 0.0 ? 0.0 : 1.0 / 0.6);
}

TEST(Dropout, Errors) {
  std::string m = error_of<ValueError>([] { dropout(uniform({3}), 1.5, true); });
  EXPECT_TRUE(contains(m, "dropout") && contains(m, "1.5")) << m;
  m = error_of<ValueError>([] { dropout(uniform({3}), -0.1, true); });
  EXPECT_TRUE(contains(m, "dropout")) << m;
  m = error_of<DTypeError>([] { dropout(tensor({1, 2}), 0.5, true); });
  EXPECT_TRUE(contains(m, "dropout")) << m;
}
