// The choice of an autotuner (cuDNN's convolution algorithms and layouts): which of several measured
// options to keep. Kept apart from the CUDA calls so that it is tested on any machine.
#pragma once

#include <cstddef>
#include <vector>

namespace glia::detail {

/// The index of the option to keep, given each option's measured time in the order the options were
/// offered (their preference: deterministic algorithms first, then the heuristics' order); a
/// negative time is an option that could not run. The fastest wins, but an option offered earlier
/// wins over it when it is at most `slack` (a fraction) slower: timings of a few runs are noisy, and
/// a near-tie should not give up determinism or the heuristics' pick. -1 when none ran.
inline int pick_fastest(const std::vector<double>& ms, double slack = 0.03) {
  int best = -1;
  for (size_t i = 0; i < ms.size(); ++i)
    if (ms[i] >= 0 && (best < 0 || ms[i] < ms[static_cast<size_t>(best)])) best = static_cast<int>(i);
  if (best < 0) return -1;
  double limit = ms[static_cast<size_t>(best)] * (1 + slack);
  for (size_t i = 0; i < static_cast<size_t>(best); ++i)
    if (ms[i] >= 0 && ms[i] <= limit) return static_cast<int>(i);
  return best;
}

}  // namespace glia::detail
