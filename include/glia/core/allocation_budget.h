// A cap on what one thread may allocate while it builds objects from untrusted input.
#pragma once

#include <cstdint>
#include <string>

namespace glia {

/// While alive, new tensor storage allocated on this thread may total at most `bytes` (counted
/// cumulatively, freed memory is not given back); a request beyond that throws a ValueError that
/// names `what`. For readers whose input says how much to allocate: a model file whose config asks
/// for a billion units fails at once instead of allocating gigabytes. Budgets nest; the innermost
/// applies.
class AllocationBudget {
 public:
  AllocationBudget(int64_t bytes, std::string what);
  ~AllocationBudget();
  AllocationBudget(const AllocationBudget&) = delete;
  AllocationBudget& operator=(const AllocationBudget&) = delete;
  /// Called by the allocator: counts `nbytes` against the innermost budget of this thread.
  static void charge(size_t nbytes);

 private:
  int64_t left_;
  std::string what_;
  AllocationBudget* prev_;
};

}  // namespace glia
