// Dataset pipeline semantics against tf.data's: order, batching, repeat,
// take/skip, cardinality, map, seeded shuffling, prefetch on a thread.
#include <gmock/gmock.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <numeric>
#include <set>
#include <thread>

#include "testing.h"

using namespace glia;
using namespace glia::data;
using ::testing::HasSubstr;

namespace {

// x[i] = [i*10 + 0, i*10 + 1, i*10 + 2] (float32), y[i] = i (int64).
Dataset numbers(int64_t n) {
  std::vector<float> xv;
  std::vector<int64_t> yv;
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < 3; ++j) xv.push_back(static_cast<float>(i * 10 + j));
    yv.push_back(i);
  }
  return Dataset::from_tensors({tensor(xv, Shape{n, 3}), tensor(yv, Shape{n})});
}

// Forces the element-by-element path (map hides the rows from the operators after it).
Dataset identity_map(const Dataset& ds) {
  return ds.map([](Element e) { return e; });
}

// The y values of one pass, flattened over batches; checks every x row matches its y.
std::vector<int64_t> labels(const Dataset& ds) {
  std::vector<int64_t> out;
  for (const Element& e : ds) {
    EXPECT_EQ(e.size(), 2u);
    auto y = e[1].to_vector<int64_t>();
    auto x = glia::testing::values(e[0]);
    EXPECT_EQ(x.size(), y.size() * 3);
    for (size_t i = 0; i < y.size(); ++i)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(x[i * 3 + j], static_cast<double>(y[i] * 10 + j));
    out.insert(out.end(), y.begin(), y.end());
  }
  return out;
}

// The size of dim 0 of component 0 of each element of a batched pass.
std::vector<int64_t> batch_sizes(const Dataset& ds) {
  std::vector<int64_t> out;
  for (const Element& e : ds) out.push_back(e[0].size(0));
  return out;
}

std::vector<int64_t> iota(int64_t begin, int64_t end) {
  std::vector<int64_t> v(static_cast<size_t>(end - begin));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

bool is_permutation_of_iota(std::vector<int64_t> v, int64_t n) {
  std::sort(v.begin(), v.end());
  return v == iota(0, n);
}

int64_t count(const Dataset& ds) {
  int64_t n = 0;
  for (const Element& e : ds) n += e.empty() ? 0 : 1;
  return n;
}

}  // namespace

TEST(Dataset, FromTensorsYieldsSlicesInOrder) {
  Dataset ds = numbers(7);
  int64_t i = 0;
  for (const Element& e : ds) {
    ASSERT_EQ(e.size(), 2u);
    EXPECT_EQ(e[0].shape(), (Shape{3}));
    EXPECT_EQ(e[1].dim(), 0);
    EXPECT_EQ(e[1].item<int64_t>(), i);
    EXPECT_EQ(e[0].at<float>({2}), static_cast<float>(i * 10 + 2));
    ++i;
  }
  EXPECT_EQ(i, 7);
  EXPECT_EQ(labels(ds), iota(0, 7));
  EXPECT_EQ(labels(ds), iota(0, 7));  // a second pass starts over
}

TEST(Dataset, FromTensorsOfNonContiguousViews) {
  // xt is [5, 4] with column-major strides; its rows are the columns of base.
  Tensor base = arange(20).reshape({4, 5});
  Tensor xt = base.t();
  ASSERT_FALSE(xt.is_contiguous());
  Dataset ds = Dataset::from_tensors({xt});
  int64_t i = 0;
  for (const Element& e : ds) {
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(e[0].at<int64_t>({j}), j * 5 + i);
    ++i;
  }
  EXPECT_EQ(i, 5);
  for (const Element& b : ds.shuffle(5, 1).batch(5)) {
    for (int64_t r = 0; r < 5; ++r) {
      const int64_t col = b[0].at<int64_t>({r, 0});
      for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(b[0].at<int64_t>({r, j}), j * 5 + col);
    }
  }
  // Elements carry no autograd state even when the source requires grad.
  Tensor w = ones({3, 2}, {.dtype = DType::f64, .requires_grad = true});
  for (const Element& e : Dataset::from_tensors({w})) EXPECT_FALSE(e[0].requires_grad());
}

TEST(Dataset, FromTensorsErrors) {
  try {
    Dataset::from_tensors({zeros({10, 2}), zeros({7})});
    FAIL() << "no throw";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("from_tensors"));
    EXPECT_THAT(e.what(), HasSubstr("10"));
    EXPECT_THAT(e.what(), HasSubstr("7"));
  }
  EXPECT_THROW(Dataset::from_tensors({}), ValueError);
  EXPECT_THROW(Dataset::from_tensors({scalar_tensor(1.0)}), ShapeError);
  EXPECT_THROW(Dataset::from_tensors({Tensor()}), ValueError);
}

TEST(Dataset, BatchSizesOrderAndDropRemainder) {
  for (bool generic : {false, true}) {
    Dataset ds = generic ? identity_map(numbers(10)) : numbers(10);
    EXPECT_EQ(batch_sizes(ds.batch(4)), (std::vector<int64_t>{4, 4, 2}));
    EXPECT_EQ(batch_sizes(ds.batch(4, true)), (std::vector<int64_t>{4, 4}));
    EXPECT_EQ(batch_sizes(ds.batch(5, true)), (std::vector<int64_t>{5, 5}));
    EXPECT_EQ(batch_sizes(ds.batch(20)), (std::vector<int64_t>{10}));
    EXPECT_EQ(batch_sizes(ds.batch(20, true)), (std::vector<int64_t>{}));
    EXPECT_EQ(labels(ds.batch(3)), iota(0, 10));
    EXPECT_EQ(labels(ds.batch(3, true)), iota(0, 9));
    for (const Element& b : ds.batch(4)) {
      EXPECT_EQ(b[0].dim(), 2);
      EXPECT_EQ(b[0].size(1), 3);
      EXPECT_EQ(b[0].dtype(), DType::f32);
      EXPECT_EQ(b[1].dim(), 1);
      EXPECT_EQ(b[1].dtype(), DType::i64);
      EXPECT_TRUE(b[0].is_contiguous());
    }
  }
  // Batches of batches add a dimension each.
  for (const Element& b : numbers(8).batch(2).batch(2)) EXPECT_EQ(b[0].shape(), (Shape{2, 2, 3}));
  // Batches are copies: writing into one leaves the dataset alone.
  Dataset ds = numbers(4);
  for (const Element& b : ds.batch(4)) {
    no_grad g;
    b[0].fill_(-1);
  }
  EXPECT_EQ(labels(ds), iota(0, 4));
}

TEST(Dataset, BatchOfUnequalElementsIsAnError) {
  Dataset ds = numbers(4).map([](Element e) {
    int64_t i = e[1].item<int64_t>();
    return Element{zeros({i + 1})};
  });
  try {
    for (const Element& b : ds.batch(2)) (void)b;
    FAIL() << "no throw";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("batch"));
    EXPECT_THAT(e.what(), HasSubstr("[2]"));
    EXPECT_THAT(e.what(), HasSubstr("[1]"));
  }
}

TEST(Dataset, MapAppliesToEachElementWithoutGrad) {
  Tensor w = tensor({2.0f}).requires_grad_();
  Dataset ds = numbers(5).map([&](Element e) {
    EXPECT_FALSE(GradMode::is_enabled());
    Tensor x = e[0] * w;
    EXPECT_FALSE(x.requires_grad());
    return Element{x, e[1], e[1] * 3};
  });
  int64_t i = 0;
  for (const Element& e : ds) {
    ASSERT_EQ(e.size(), 3u);
    EXPECT_EQ(e[0].at<float>({1}), 2.0f * static_cast<float>(i * 10 + 1));
    EXPECT_EQ(e[2].item<int64_t>(), 3 * i);
    ++i;
  }
  EXPECT_EQ(i, 5);
  EXPECT_TRUE(GradMode::is_enabled());
  // map after batch sees whole batches.
  for (const Element& b : numbers(6).batch(4).map([](Element e) { return Element{e[1].sum()}; })) {
    EXPECT_EQ(b[0].dim(), 0);
  }
  EXPECT_THROW(numbers(2).map(nullptr), ValueError);
}

TEST(Dataset, RepeatTakeSkip) {
  for (bool generic : {false, true}) {
    Dataset ds = generic ? identity_map(numbers(4)) : numbers(4);
    std::vector<int64_t> three;
    for (int r = 0; r < 3; ++r) {
      auto p = iota(0, 4);
      three.insert(three.end(), p.begin(), p.end());
    }
    EXPECT_EQ(labels(ds.repeat(3)), three);
    EXPECT_EQ(labels(ds.repeat(0)), std::vector<int64_t>{});
    EXPECT_EQ(labels(ds.repeat().take(10)), (std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2, 3, 0, 1}));
    EXPECT_EQ(labels(ds.take(3)), iota(0, 3));
    EXPECT_EQ(labels(ds.take(0)), std::vector<int64_t>{});
    EXPECT_EQ(labels(ds.take(-1)), iota(0, 4));
    EXPECT_EQ(labels(ds.take(100)), iota(0, 4));
    EXPECT_EQ(labels(ds.skip(1)), iota(1, 4));
    EXPECT_EQ(labels(ds.skip(0)), iota(0, 4));
    EXPECT_EQ(labels(ds.skip(9)), std::vector<int64_t>{});
    EXPECT_EQ(labels(ds.skip(-1)), std::vector<int64_t>{});
    EXPECT_EQ(labels(ds.skip(1).take(2)), iota(1, 3));
    EXPECT_EQ(labels(ds.take(3).repeat(2)), (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
    EXPECT_EQ(labels(ds.repeat(2).skip(3).batch(3)), (std::vector<int64_t>{3, 0, 1, 2, 3}));
    EXPECT_EQ(batch_sizes(ds.repeat(2).skip(3).batch(3)), (std::vector<int64_t>{3, 2}));
    // repeat of an empty dataset ends instead of looping forever.
    EXPECT_EQ(count(ds.take(0).repeat()), 0);
  }
  EXPECT_THROW(numbers(2).repeat(-2), ValueError);
  EXPECT_THROW(numbers(2).take(-2), ValueError);
  EXPECT_THROW(numbers(2).skip(-2), ValueError);
  EXPECT_THROW(numbers(2).batch(0), ValueError);
  EXPECT_THROW(numbers(2).shuffle(0), ValueError);
  EXPECT_THROW(numbers(2).prefetch(0), ValueError);
}

TEST(Dataset, CardinalityMatchesThePassLength) {
  Dataset ds = numbers(10);
  const std::vector<std::pair<Dataset, int64_t>> finite = {
      {ds, 10},
      {ds.batch(4), 3},
      {ds.batch(4, true), 2},
      {ds.batch(5), 2},
      {ds.repeat(3), 30},
      {ds.repeat(0), 0},
      {ds.take(3), 3},
      {ds.take(30), 10},
      {ds.take(-1), 10},
      {ds.skip(3), 7},
      {ds.skip(30), 0},
      {ds.skip(-1), 0},
      {ds.shuffle(4, 1), 10},
      {identity_map(ds), 10},
      {ds.prefetch(), 10},
      {ds.repeat().take(25), 25},
      {ds.repeat().take(25).batch(10), 3},
      {ds.take(0).repeat(), 0},
      {ds.skip(2).repeat(2).batch(3, true), 5},
  };
  for (const auto& [d, n] : finite) {
    EXPECT_EQ(d.cardinality(), std::optional<int64_t>(n));
    EXPECT_EQ(count(d), n);
  }
  EXPECT_EQ(ds.repeat().cardinality(), INFINITE_CARDINALITY);
  EXPECT_EQ(ds.repeat().batch(4).cardinality(), INFINITE_CARDINALITY);
  EXPECT_EQ(ds.repeat().skip(4).shuffle(3).prefetch().cardinality(), INFINITE_CARDINALITY);
}

TEST(Dataset, SeededShuffleIsAReproduciblePermutation) {
  for (bool generic : {false, true}) {
    auto make = [&](uint64_t seed) {
      Dataset base = generic ? identity_map(numbers(100)) : numbers(100);
      return base.shuffle(100, seed);
    };
    auto a = labels(make(42)), b = labels(make(42)), c = labels(make(43));
    EXPECT_TRUE(is_permutation_of_iota(a, 100));
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_NE(a, iota(0, 100));
  }
  // Row mode (rows gathered by index) and element mode shuffle identically.
  EXPECT_EQ(labels(numbers(50).shuffle(16, 3).skip(2).take(40).repeat(2).batch(7)),
            labels(identity_map(numbers(50)).shuffle(16, 3).skip(2).take(40).repeat(2).batch(7)));
}

TEST(Dataset, ShuffleReshufflesEachPass) {
  Dataset ds = numbers(64).shuffle(64, 5);
  auto a = labels(ds), b = labels(ds);
  EXPECT_TRUE(is_permutation_of_iota(a, 64));
  EXPECT_TRUE(is_permutation_of_iota(b, 64));
  EXPECT_NE(a, b);
  // The sequence of epochs is itself reproducible.
  Dataset again = numbers(64).shuffle(64, 5);
  EXPECT_EQ(labels(again), a);
  EXPECT_EQ(labels(again), b);
  // Without reshuffling every pass has the same order.
  Dataset fixed = numbers(64).shuffle(64, 5, false);
  auto f = labels(fixed);
  EXPECT_EQ(labels(fixed), f);
  EXPECT_NE(f, iota(0, 64));
  // repeat() starts new passes of the shuffle: each repetition is reshuffled.
  auto r = labels(numbers(64).shuffle(64, 5).repeat(2));
  ASSERT_EQ(r.size(), 128u);
  EXPECT_EQ(std::vector<int64_t>(r.begin(), r.begin() + 64), a);
  EXPECT_EQ(std::vector<int64_t>(r.begin() + 64, r.end()), b);
}

TEST(Dataset, UnseededShuffleFollowsManualSeed) {
  manual_seed(7);
  auto a = labels(numbers(50).shuffle(50));
  manual_seed(7);
  auto b = labels(numbers(50).shuffle(50));
  manual_seed(8);
  auto c = labels(numbers(50).shuffle(50));
  EXPECT_TRUE(is_permutation_of_iota(a, 50));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Two unseeded shuffles made one after the other differ.
  manual_seed(7);
  Dataset s1 = numbers(50).shuffle(50), s2 = numbers(50).shuffle(50);
  EXPECT_NE(labels(s1), labels(s2));
}

TEST(Dataset, ShuffleBufferSemantics) {
  // A buffer of 1 keeps the order; a buffer of k emits output i from the first i + k inputs.
  EXPECT_EQ(labels(numbers(20).shuffle(1, 9)), iota(0, 20));
  for (int64_t k : {2, 3, 7}) {
    auto v = labels(numbers(40).shuffle(k, 11));
    EXPECT_TRUE(is_permutation_of_iota(v, 40));
    for (size_t i = 0; i < v.size(); ++i) EXPECT_LT(v[i], static_cast<int64_t>(i) + k) << "k " << k;
  }
  // A full buffer gives a uniform permutation: each element lands in each position 1/n of the time.
  const int n = 5, epochs = 5000;
  Dataset ds = numbers(n).shuffle(n, 1234);
  std::vector<std::vector<int>> hits(n, std::vector<int>(n, 0));
  std::set<std::vector<int64_t>> orders;
  for (int e = 0; e < epochs; ++e) {
    auto v = labels(ds);
    orders.insert(v);
    for (int p = 0; p < n; ++p) ++hits[static_cast<size_t>(v[p])][p];
  }
  EXPECT_EQ(orders.size(), 120u);  // all 5! orders occur
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < n; ++p) EXPECT_NEAR(hits[i][p], epochs / n, 120) << i << " at " << p;  // ~4.2 sigma
}

TEST(Dataset, ShuffledBatchesGatherMatchingRows) {
  const int64_t n = 103;
  Tensor x = glia::testing::uniform({n, 5, 2}, -1, 1, DType::f32);
  Tensor y = arange(n).to(DType::i32);
  Dataset ds = Dataset::from_tensors({x, y}).shuffle(n, 17).batch(8);
  std::vector<int64_t> seen;
  std::vector<int64_t> sizes;
  auto xv = glia::testing::values(x);
  for (const Element& b : ds) {
    ASSERT_EQ(b[0].shape(), (Shape{b[1].size(0), 5, 2}));
    sizes.push_back(b[1].size(0));
    auto bx = glia::testing::values(b[0]);
    auto by = b[1].to_vector<int64_t>();
    for (size_t r = 0; r < by.size(); ++r) {
      for (size_t k = 0; k < 10; ++k) ASSERT_EQ(bx[r * 10 + k], xv[static_cast<size_t>(by[r]) * 10 + k]);
      seen.push_back(by[r]);
    }
  }
  EXPECT_TRUE(is_permutation_of_iota(seen, n));
  EXPECT_EQ(sizes.size(), 13u);
  EXPECT_EQ(sizes.back(), 103 % 8);
}

TEST(Dataset, PrefetchGivesTheSameSequence) {
  auto make = [] { return numbers(37).shuffle(37, 21).batch(5).map([](Element e) { return e; }); };
  Dataset plain = make(), fetched = make().prefetch(2);
  for (int epoch = 0; epoch < 3; ++epoch) {
    auto a = labels(plain), b = labels(fetched);
    EXPECT_EQ(a, b) << "epoch " << epoch;
    EXPECT_TRUE(is_permutation_of_iota(b, 37));
  }
  EXPECT_EQ(batch_sizes(numbers(37).batch(5).prefetch(1)), batch_sizes(numbers(37).batch(5)));
  EXPECT_EQ(labels(numbers(9).prefetch(AUTOTUNE).batch(4)), iota(0, 9));
  EXPECT_EQ(labels(numbers(9).prefetch(100)), iota(0, 9));
}

TEST(Dataset, PrefetchRethrowsAnErrorFromMap) {
  Dataset ds = numbers(10)
                   .map([](Element e) {
                     if (e[1].item<int64_t>() == 6) throw ValueError("bad element 6");
                     return e;
                   })
                   .prefetch(3);
  std::vector<int64_t> got;
  try {
    for (const Element& e : ds) got.push_back(e[1].item<int64_t>());
    FAIL() << "no throw";
  } catch (const ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad element 6"));
  }
  EXPECT_EQ(got, iota(0, 6));  // everything before the error arrives first
}

TEST(Dataset, BreakingOutOfAPrefetchedLoopDoesNotHang) {
  std::atomic<int> made{0};
  Dataset ds = numbers(10)
                   .repeat()
                   .map([&](Element e) {
                     ++made;
                     return e;
                   })
                   .batch(2)
                   .prefetch(2);
  for (int trial = 0; trial < 20; ++trial) {
    int seen = 0;
    for (const Element& e : ds) {
      (void)e;
      if (++seen == 3) break;
    }
    EXPECT_EQ(seen, 3);
  }
  // A slow producer in the middle of an element is waited for, then stopped.
  Dataset slow = numbers(100)
                     .map([](Element e) {
                       std::this_thread::sleep_for(std::chrono::milliseconds(5));
                       return e;
                     })
                     .prefetch(1);
  for (int trial = 0; trial < 3; ++trial) {
    auto it = slow.begin();
    EXPECT_EQ((*it)[1].item<int64_t>(), 0);
  }
  // Abandoning a pass before reading anything.
  { auto it = ds.begin(); }
  EXPECT_GT(made.load(), 0);
}

TEST(Dataset, PrefetchThreadRunsKernelsOnOneThread) {
  std::atomic<int> threads{-1};
  Dataset ds = numbers(4)
                   .map([&](Element e) {
                     threads = get_num_threads();
                     return e;
                   })
                   .prefetch(2);
  EXPECT_EQ(count(ds), 4);
  EXPECT_EQ(threads.load(), 1);
}

TEST(Dataset, IteratorKeepsThePipelineAlive) {
  Dataset::iterator it;
  {
    Dataset tmp = numbers(5).shuffle(5, 2).batch(2).prefetch();
    it = tmp.begin();
  }
  std::vector<int64_t> sizes;
  for (; it != Dataset::iterator(); ++it) sizes.push_back((*it)[0].size(0));
  EXPECT_EQ(sizes, (std::vector<int64_t>{2, 2, 1}));
}

TEST(Dataset, ShuffleBatchEpochOfMnistSizeIsFast) {
  // 60000 x 28 x 28 x 1 float32 into batches of 128: one row gather per batch, not per element.
  Tensor x = zeros({60000, 28, 28, 1});
  Tensor y = zeros({60000}, {.dtype = DType::u8});
  Dataset ds = Dataset::from_tensors({x, y}).shuffle(60000, 1).batch(128);
  double best = 1e9;
  for (int epoch = 0; epoch < 3; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    int64_t rows = 0;
    for (const Element& b : ds) rows += b[0].size(0);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, ms);
    EXPECT_EQ(rows, 60000);
  }
  std::printf("[          ] shuffle(60000).batch(128) epoch of 60000x28x28x1 float32: %.1f ms\n", best);
  // The target is well under 100 ms; the bound here leaves room for a loaded test machine.
  EXPECT_LT(best, 250.0);
}
