// Scratch windows of compiled plans (see scratch.h).
#include "glia/core/scratch.h"

#include <utility>

namespace glia::detail {

namespace {
thread_local ScratchWindow* t_window = nullptr;
constexpr int64_t kScratchAlign = 256;  // cuDNN and vector loads like aligned pointers
}  // namespace

ScratchScope::ScratchScope(std::shared_ptr<Storage> storage, int64_t begin, int64_t end)
    : window_{std::move(storage), (begin + kScratchAlign - 1) / kScratchAlign * kScratchAlign, end}, prev_(t_window) {
  t_window = &window_;
}

ScratchScope::~ScratchScope() { t_window = prev_; }

Tensor scratch_empty(IntList shape, DType dtype, Device device) {
  ScratchWindow* w = t_window;
  int64_t bytes = glia::numel(shape) * static_cast<int64_t>(itemsize(dtype));
  if (w && w->storage && w->storage->device() == device && bytes > 0 && w->end - w->next >= bytes) {
    int64_t at = w->next;
    w->next = (at + bytes + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
    return Tensor::make_view(w->storage, shape, contiguous_strides(shape), at / static_cast<int64_t>(itemsize(dtype)),
                             dtype);
  }
  return Tensor::empty(shape, dtype, device);
}

ScratchMark::ScratchMark() : at_(t_window ? t_window->next : -1) {}

ScratchMark::~ScratchMark() {
  if (t_window && at_ >= 0) t_window->next = at_;
}

}  // namespace glia::detail
