// The autotuner's choice among measured options (used for cuDNN's convolution algorithms and
// layouts on the GPU): checked here with made-up timings, since the measuring needs a GPU.
#include "glia/core/autotune.h"

#include <gtest/gtest.h>

namespace glia::detail {
namespace {

TEST(PickFastest, TheFastestOptionThatRanWins) {
  EXPECT_EQ(pick_fastest({2.0, 1.0, 3.0}), 1);
  EXPECT_EQ(pick_fastest({-1.0, 5.0, 0.5, -1.0}), 2);  // -1: could not run
  EXPECT_EQ(pick_fastest({4.0}), 0);
}

TEST(PickFastest, NoneWhenNothingRan) {
  EXPECT_EQ(pick_fastest({}), -1);
  EXPECT_EQ(pick_fastest({-1.0, -1.0}), -1);
}

TEST(PickFastest, AnEarlierOptionWinsANearTie) {
  // 1.02 is within 3% of 1.0: the first offered (deterministic, or the heuristics' pick) stays.
  EXPECT_EQ(pick_fastest({1.02, 1.0}), 0);
  EXPECT_EQ(pick_fastest({1.04, 1.0}), 1);
  // The earliest within the slack, not the fastest of them.
  EXPECT_EQ(pick_fastest({3.0, 1.025, 1.01, 1.0}), 1);
  // A custom slack; 0 keeps the fastest unless one offered before it is exactly as fast.
  EXPECT_EQ(pick_fastest({1.2, 1.0}, 0.25), 0);
  EXPECT_EQ(pick_fastest({1.001, 1.0}, 0.0), 1);
  EXPECT_EQ(pick_fastest({1.0, 1.0}, 0.0), 0);
  // Options that could not run are never chosen, even first.
  EXPECT_EQ(pick_fastest({-1.0, 1.0, 0.99}), 1);
}

}  // namespace
}  // namespace glia::detail
