// The loop dims of GPU element-wise kernels (glia::detail::loop_dims / loop_offsets) against the
// offsets computed directly from the original shape and strides, element by element: random
// shapes with size-1 dims, broadcast operands, permuted and sliced strides, for both the 32-bit
// (multiply-high) and the 64-bit index paths.
#include "glia/core/strided_loop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace glia::detail {
namespace {

constexpr int N = 3;

struct Case {
  std::vector<int64_t> shape;
  int64_t strides[N][kLoopMaxDims] = {};
  std::string str() const {
    std::string s = "shape [";
    for (int64_t v : shape) s += std::to_string(v) + ",";
    s += "]";
    for (int k = 0; k < N; ++k) {
      s += " strides" + std::to_string(k) + " [";
      for (size_t d = 0; d < shape.size(); ++d) s += std::to_string(strides[k][d]) + ",";
      s += "]";
    }
    return s;
  }
};

/// A random loop: operand 0 contiguous (an output), operand 1 a permuted and sliced view,
/// operand 2 broadcast along random dims.
Case random_case(std::mt19937_64& rng) {
  Case c;
  int nd = static_cast<int>(rng() % 7);
  for (int d = 0; d < nd; ++d) c.shape.push_back(static_cast<int64_t>(rng() % 5) + (rng() % 4 == 0 ? 0 : 1));
  if (std::count(c.shape.begin(), c.shape.end(), 0) > 0) c.shape[0] = std::max<int64_t>(c.shape[0], 1);
  for (auto& v : c.shape) v = std::max<int64_t>(v, 1);
  // Contiguous.
  int64_t s = 1;
  for (int d = nd - 1; d >= 0; --d) {
    c.strides[0][d] = s;
    s *= c.shape[static_cast<size_t>(d)];
  }
  // A permuted layout of a tensor wider by a random factor along each dim (a slice of it).
  std::vector<int> perm(static_cast<size_t>(nd));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  s = 1;
  for (int j = nd - 1; j >= 0; --j) {
    int d = perm[static_cast<size_t>(j)];
    c.strides[1][d] = s * (rng() % 3 == 0 ? 2 : 1);
    s = c.strides[1][d] * c.shape[static_cast<size_t>(d)] + static_cast<int64_t>(rng() % 2);
  }
  // Broadcast (stride 0) along some dims, contiguous over the others.
  s = 1;
  for (int d = nd - 1; d >= 0; --d) {
    if (rng() % 2) {
      c.strides[2][d] = 0;
    } else {
      c.strides[2][d] = s;
      s *= c.shape[static_cast<size_t>(d)];
    }
  }
  return c;
}

void check(const Case& c) {
  int nd = static_cast<int>(c.shape.size());
  LoopDims<N> l = loop_dims<N>(nd, c.shape.data(), c.strides);
  int64_t numel = 1;
  for (int64_t v : c.shape) numel *= v;
  ASSERT_LE(l.ndim, nd) << c.str();
  for (int d = 0; d < l.ndim; ++d) ASSERT_GT(l.size[d], 1) << c.str();  // size-1 dims are gone
  int64_t prod = 1;
  for (int d = 0; d < l.ndim; ++d) prod *= l.size[d];
  ASSERT_EQ(prod, numel) << c.str();
  EXPECT_TRUE(l.fast);
  LoopDims<N> slow = l;
  slow.fast = false;
  for (int64_t i = 0; i < numel; ++i) {
    int64_t want[N] = {}, rest = i;
    for (int d = nd - 1; d >= 0; --d) {
      int64_t idx = rest % c.shape[static_cast<size_t>(d)];
      rest /= c.shape[static_cast<size_t>(d)];
      for (int k = 0; k < N; ++k) want[k] += idx * c.strides[k][d];
    }
    int64_t got[N], got_slow[N];
    loop_offsets(l, i, got);
    loop_offsets(slow, i, got_slow);
    for (int k = 0; k < N; ++k) {
      ASSERT_EQ(got[k], want[k]) << c.str() << " element " << i << " operand " << k;
      ASSERT_EQ(got_slow[k], want[k]) << c.str() << " element " << i << " operand " << k << " (64-bit)";
    }
  }
}

TEST(StridedLoop, OffsetsMatchTheOriginalLayoutForRandomViews) {
  std::mt19937_64 rng(27112026);
  for (int t = 0; t < 3000; ++t) check(random_case(rng));
}

TEST(StridedLoop, ContiguousOperandsMergeIntoOneDim) {
  Case c;
  c.shape = {4, 1, 5, 6};
  for (int k = 0; k < N; ++k) {
    c.strides[k][0] = 30, c.strides[k][1] = 30, c.strides[k][2] = 6, c.strides[k][3] = 1;
  }
  LoopDims<N> l = loop_dims<N>(4, c.shape.data(), c.strides);
  EXPECT_EQ(l.ndim, 1);
  EXPECT_EQ(l.size[0], 120);
  check(c);
  // A bias broadcast along the rows keeps two dims; a 0-d loop has none.
  c.shape = {7, 3};
  c.strides[0][0] = 3, c.strides[0][1] = 1, c.strides[1][0] = 3, c.strides[1][1] = 1;
  c.strides[2][0] = 0, c.strides[2][1] = 1;
  EXPECT_EQ((loop_dims<N>(2, c.shape.data(), c.strides).ndim), 2);
  check(c);
  c.shape = {};
  EXPECT_EQ((loop_dims<N>(0, c.shape.data(), c.strides).ndim), 0);
  check(c);
}

TEST(StridedLoop, SizesOf2To31AndMoreTakeThe64BitPath) {
  Case c;
  c.shape = {int64_t(1) << 31, 2};
  c.strides[0][0] = 2, c.strides[0][1] = 1;
  c.strides[1][0] = 1, c.strides[1][1] = int64_t(1) << 31;  // transposed: no merge
  c.strides[2][0] = 0, c.strides[2][1] = 1;
  LoopDims<N> l = loop_dims<N>(2, c.shape.data(), c.strides);
  EXPECT_FALSE(l.fast);
  int64_t off[N];
  int64_t i = (int64_t(1) << 32) - 1;  // the last element: row 2^31 - 1, column 1
  loop_offsets(l, i, off);
  EXPECT_EQ(off[0], i);
  EXPECT_EQ(off[1], (int64_t(1) << 31) - 1 + (int64_t(1) << 31));
  EXPECT_EQ(off[2], 1);
  c.shape = {(int64_t(1) << 31) - 1};
  EXPECT_TRUE((loop_dims<N>(1, c.shape.data(), c.strides).fast));
}

}  // namespace
}  // namespace glia::detail
