// Scratch memory for the temporaries of a kernel of a compiled plan: the part of the plan's arena
// that holds nothing while that kernel runs. The executor sets the window around each kernel; a
// kernel asks for its temporaries (cuDNN workspaces, layout copies) with scratch_empty and gets
// views of the window while it has room, else ordinary tensors. Temporaries in the window add
// nothing to the memory a step needs (the arena is sized for the step's intermediates anyway) and
// take the same addresses on every run, so a recorded CUDA Graph can replay them.
#pragma once

#include <cstdint>
#include <memory>

#include "glia/core/tensor.h"

namespace glia::detail {

/// Free bytes [next, end) of `storage`.
struct ScratchWindow {
  std::shared_ptr<Storage> storage;
  int64_t next = 0, end = 0;
};

/// Sets the calling thread's scratch window to bytes [begin, end) of `storage` for its lifetime
/// (restoring the previous window after). Everything queued in the window must be ordered after
/// the window's earlier users and before its later ones (one stream per device does that).
class ScratchScope {
 public:
  ScratchScope(std::shared_ptr<Storage> storage, int64_t begin, int64_t end);
  ~ScratchScope();
  ScratchScope(const ScratchScope&) = delete;
  ScratchScope& operator=(const ScratchScope&) = delete;

 private:
  ScratchWindow window_;
  ScratchWindow* prev_;
};

/// A tensor for a kernel's temporary: a view of the scratch window when one is set on this
/// device with room for it (the window then moves past it), else Tensor::empty. A view is valid
/// only while the kernel runs: it must not be kept, returned or saved.
Tensor scratch_empty(IntList shape, DType dtype, Device device);

/// Gives back, at scope exit, the window space taken since its construction: for temporaries
/// that are done with (their work queued) before the kernel makes the next ones.
class ScratchMark {
 public:
  ScratchMark();
  ~ScratchMark();
  ScratchMark(const ScratchMark&) = delete;
  ScratchMark& operator=(const ScratchMark&) = delete;

 private:
  int64_t at_ = -1;
};

}  // namespace glia::detail
