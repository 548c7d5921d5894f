#include "glia/core/random.h"

#include <mutex>

namespace glia {
namespace {

struct GlobalGenerator {
  std::mutex mu;
  uint64_t seed = 5489;  // fixed default, so unseeded runs repeat too
  uint64_t offset = 0;
};

GlobalGenerator& gen() {
  static GlobalGenerator g;
  return g;
}

}  // namespace

void manual_seed(uint64_t seed) {
  auto& g = gen();
  std::lock_guard<std::mutex> l(g.mu);
  g.seed = seed;
  g.offset = 0;
}

uint64_t initial_seed() {
  auto& g = gen();
  std::lock_guard<std::mutex> l(g.mu);
  return g.seed;
}

namespace random {

std::array<uint32_t, 4> philox(uint64_t key, uint64_t counter_hi, uint64_t counter_lo) {
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = static_cast<uint64_t>(M0) * c0;
    uint64_t p1 = static_cast<uint64_t>(M1) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = static_cast<uint32_t>(p1);
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += W0;
    k1 += W1;
  }
  return {c0, c1, c2, c3};
}

Draw reserve(uint64_t n_blocks) {
  auto& g = gen();
  std::lock_guard<std::mutex> l(g.mu);
  Draw d{g.seed, g.offset};
  g.offset += n_blocks;
  return d;
}

GeneratorState get_state() {
  auto& g = gen();
  std::lock_guard<std::mutex> l(g.mu);
  return {g.seed, g.offset};
}

void set_state(GeneratorState s) {
  auto& g = gen();
  std::lock_guard<std::mutex> l(g.mu);
  g.seed = s.seed;
  g.offset = s.offset;
}

}  // namespace random
}  // namespace glia
