#include "glia/backends/cpu/onednn.h"

#include <array>
#include <memory>

#include "glia/backends/cpu/kernel_utils.h"
#include "glia/core/storage.h"

namespace glia::cpu {

namespace onednn {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

}  // namespace onednn

void* scratch(int slot, size_t bytes) {
  GLIA_CHECK(slot >= 0 && slot < kScratchSlots, InternalError, "scratch: slot ", slot, " out of range");
  thread_local std::array<std::shared_ptr<Storage>, kScratchSlots> buffers;
  auto& b = buffers[static_cast<size_t>(slot)];
  bytes = std::max<size_t>(bytes, 64);
  if (!b || b->nbytes() < bytes) {
    b.reset();  // give the old block back first, so the cache can serve the new one
    b = std::make_shared<Storage>(bytes, Device::cpu());
  }
  return b->data();
}

}  // namespace glia::cpu
