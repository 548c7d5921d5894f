// The CPU element-wise loop: walks the broadcast shape of an output and its
// operands with per-operand byte strides, after merging dimensions that are
// contiguous in every operand, so most loops become one flat 1-D loop that
// the SIMD kernels take whole. Large loops are split across OpenMP threads.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <span>

#include "glia/core/tensor.h"

namespace glia::cpu {

inline constexpr int kMaxLoopDims = 16;
inline constexpr int kMaxLoopOps = 4;

struct Loop {
  int nops = 0;
  int ndim = 0;  // innermost first
  int64_t numel = 0;
  int64_t size[kMaxLoopDims];
  int64_t stride[kMaxLoopOps][kMaxLoopDims];  // bytes
  char* data[kMaxLoopOps];
};

/// Builds the loop over `shape` for operands (outputs first); each operand's
/// shape must broadcast to `shape`.
Loop make_loop(std::span<const Tensor* const> ops, IntList shape);

/// Inner-loop callback: pointers to the first element of each operand, their
/// byte strides along the run, and the run length.
template <class F>
void loop_range(const Loop& L, int64_t begin, int64_t end, F&& f) {
  if (begin >= end) return;
  int64_t idx[kMaxLoopDims];
  char* ptr[kMaxLoopOps];
  int64_t rem = begin;
  for (int op = 0; op < L.nops; ++op) ptr[op] = L.data[op];
  for (int d = 0; d < L.ndim; ++d) {
    idx[d] = rem % L.size[d];
    rem /= L.size[d];
    for (int op = 0; op < L.nops; ++op) ptr[op] += idx[d] * L.stride[op][d];
  }
  int64_t inner[kMaxLoopOps];
  for (int op = 0; op < L.nops; ++op) inner[op] = L.ndim ? L.stride[op][0] : 0;
  int64_t pos = begin;
  while (pos < end) {
    int64_t n = L.ndim ? std::min(L.size[0] - idx[0], end - pos) : 1;
    f(ptr, inner, n);
    pos += n;
    if (pos >= end || L.ndim == 0) break;
    for (int op = 0; op < L.nops; ++op) ptr[op] += n * inner[op];
    idx[0] += n;
    for (int d = 0; d < L.ndim - 1 && idx[d] == L.size[d]; ++d) {
      for (int op = 0; op < L.nops; ++op) ptr[op] += L.stride[op][d + 1] - L.size[d] * L.stride[op][d];
      idx[d] = 0;
      ++idx[d + 1];
    }
  }
}

/// Number of threads for `work` units when each thread should get at least `grain`.
inline int threads_for(int64_t work, int64_t grain) {
  if (work < 2 * grain || omp_in_parallel()) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), work / grain));
}

/// Runs f(begin, end) over [0, n) split into contiguous chunks across threads.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  int nt = threads_for(n, grain);
  if (nt <= 1) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t chunk = (n + T - 1) / T;
    // Keep chunk edges on 64-element boundaries so threads do not share cache lines.
    chunk = (chunk + 63) / 64 * 64;
    int64_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    f(b, e);
  }
}

template <class F>
void parallel_loop(const Loop& L, F&& f, int64_t grain = 32768) {
  parallel_for(L.numel, grain, [&](int64_t b, int64_t e) { loop_range(L, b, e, f); });
}

}  // namespace glia::cpu
