// The multiply-high division of GPU index arithmetic (glia::detail::fast_quot) against the
// built-in division: every divisor up to 2^12 with numerators at the edges, the largest divisors,
// and a million random (numerator, divisor) pairs below 2^31.
#include "glia/core/fast_div.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace glia::detail {
namespace {

constexpr uint32_t kMax = (uint32_t(1) << 31) - 1;  // the largest numerator and divisor allowed

std::vector<uint32_t> edges(uint32_t d) {
  std::vector<uint32_t> n = {0, 1, d - 1, d, d + 1, kMax, kMax - 1, kMax - d};
  for (uint32_t k : {2u, 3u, 1000u, 65535u, 65536u}) {
    uint64_t m = uint64_t(k) * d;
    if (m <= kMax) n.push_back(static_cast<uint32_t>(m));
    if (m - 1 <= kMax) n.push_back(static_cast<uint32_t>(m - 1));
  }
  return n;
}

TEST(FastDiv, SmallDivisorsAtTheEdges) {
  for (uint32_t d = 1; d <= 4096; ++d) {
    FastDiv f = fast_div(d);
    for (uint32_t n : edges(d)) {
      if (n > kMax) continue;
      ASSERT_EQ(fast_quot(n, f), n / d) << n << " / " << d;
    }
  }
}

TEST(FastDiv, LargestDivisorsAndPowersOfTwo) {
  std::vector<uint32_t> ds = {kMax, kMax - 1, (1u << 30) + 1, 1u << 30, (1u << 30) - 1, 65537, 65536, 46341};
  for (int s = 0; s < 31; ++s) ds.push_back(uint32_t(1) << s);
  for (uint32_t d : ds) {
    FastDiv f = fast_div(d);
    for (uint32_t n : edges(d)) {
      if (n > kMax) continue;
      ASSERT_EQ(fast_quot(n, f), n / d) << n << " / " << d;
    }
  }
}

TEST(FastDiv, RandomPairs) {
  std::mt19937_64 rng(20261127);
  std::uniform_int_distribution<uint32_t> num(0, kMax);
  for (int i = 0; i < 1000000; ++i) {
    // Divisors spread over every magnitude: a random bit length, then random bits.
    uint32_t bits = 1 + static_cast<uint32_t>(rng() % 31);
    uint32_t d = static_cast<uint32_t>(rng() & ((uint64_t(1) << bits) - 1));
    if (d == 0) d = 1;
    uint32_t n = num(rng);
    ASSERT_EQ(fast_quot(n, fast_div(d)), n / d) << n << " / " << d;
  }
}

}  // namespace
}  // namespace glia::detail
