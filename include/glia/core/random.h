// The one seeded generator all randomness comes from (glia::manual_seed).
//
// It is counter-based (Philox 4x32-10): a draw of n numbers reserves a range
// of counters, and element i depends only on (seed, counter + i), so results
// do not depend on the number of threads or the device.
#pragma once

#include <array>
#include <cstdint>

namespace glia {

/// Seeds the global generator; the same seed repeats a run exactly.
void manual_seed(uint64_t seed);
/// The seed the global generator was last given.
uint64_t initial_seed();

namespace random {

/// Philox 4x32-10: four 32-bit random words for a (key, counter) pair.
std::array<uint32_t, 4> philox(uint64_t key, uint64_t counter_hi, uint64_t counter_lo);

/// A seed and a counter range for one draw of `n` 128-bit blocks from the global generator.
struct Draw {
  uint64_t seed;
  uint64_t offset;
};
Draw reserve(uint64_t n_blocks);

/// Uniform float in [0, 1) from 24 bits; uniform double in [0, 1) from 53 bits.
inline float to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }
inline double to_unit_double(uint32_t hi, uint32_t lo) {
  uint64_t v = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(v & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/// The generator's state, to save in checkpoints and restore exactly.
struct GeneratorState {
  uint64_t seed;
  uint64_t offset;
};
GeneratorState get_state();
void set_state(GeneratorState s);

}  // namespace random
}  // namespace glia
