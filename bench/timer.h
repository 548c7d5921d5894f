// A small timing harness shared by the Glia and libtorch benchmark programs,
// so both sides are measured the same way: warm up, then the best of several
// rounds of at least `min_round_s` each.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace bench {

template <class F>
double seconds_per_call(F&& f, double min_round_s = 0.05, int rounds = 7) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) f();  // warm up: caches, primitive creation, page faults
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    long n = 0;
    auto t0 = clock::now();
    double el = 0;
    do {
      f();
      ++n;
      el = std::chrono::duration<double>(clock::now() - t0).count();
    } while (el < min_round_s);
    best = std::min(best, el / static_cast<double>(n));
  }
  return best;
}

/// One result line: "name<TAB>seconds", read by scripts/run-bench.
inline void report(const std::string& name, double s) { std::printf("%s\t%.9g\n", name.c_str(), s); }

}  // namespace bench
