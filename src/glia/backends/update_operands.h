// The operands of the fused optimizer-update ops, arranged the same way for every backend's kernel:
// input 0 is the parameter, 1 the gradient, then the slots, then the step state and the guard when
// their attrs say so. Parameter and slots are written in place, through contiguous buffers.
#pragma once

#include <vector>

#include "glia/ops/op.h"

namespace glia::detail {

/// Number of slot inputs (after param and grad, before the step state and the guard).
inline size_t update_num_slots(const KernelContext& k) {
  return k.num_inputs() - 2 - (k.attrs().has("step_state") ? 1 : 0) - (k.attrs().has("guard") ? 1 : 0);
}

/// Where slot i goes in a kernel's fixed slot table, after checking the slot count where attrs set
/// it: SGD has its momentum slot only with momentum > 0; RMSprop's velocity, [momentum],
/// [average_gradient] keep their places 0, 1, 2; the others go in order.
inline std::vector<int> update_slot_places(const KernelContext& k) {
  size_t n = update_num_slots(k);
  GLIA_CHECK(n <= 3, InternalError, k.name(), ": too many slots");
  const std::string op = k.name();
  if (op == "optim_sgd_update")
    GLIA_CHECK(n == (k.attr<double>("momentum") > 0 ? 1u : 0u), InternalError, k.name(),
               ": the momentum slot goes with momentum > 0");
  if (op == "optim_rmsprop_update") {
    bool momentum = k.attr<double>("momentum") > 0, centered = k.attr<bool>("centered");
    size_t want = 1 + momentum + centered;
    GLIA_CHECK(n == want, InternalError, k.name(), ": expected ", want, " slots, got ", n);
    std::vector<int> place{0};
    if (momentum) place.push_back(1);
    if (centered) place.push_back(2);
    return place;
  }
  std::vector<int> place;
  for (size_t i = 0; i < n; ++i) place.push_back(static_cast<int>(i));
  return place;
}

/// The parameter (buffer 0) and the slots (1...) as contiguous tensors: themselves, or copies
/// (rare: a transposed leaf) that write_back copies into them after the update.
struct UpdateBuffers {
  std::vector<Tensor> targets, bufs;
  explicit UpdateBuffers(const KernelContext& k) {
    for (size_t i = 0; i < update_num_slots(k) + 1; ++i) {
      const Tensor& t = k.input(i == 0 ? 0 : i + 1);
      targets.push_back(t);
      bufs.push_back(t.is_contiguous() ? t : t.contiguous());
    }
  }
  template <class Copy>
  void write_back(Copy&& copy) const {
    for (size_t i = 0; i < targets.size(); ++i)
      if (!bufs[i].is_same(targets[i])) copy(bufs[i], targets[i]);
  }
};

}  // namespace glia::detail
