// What core code needs from the CUDA backend. Implemented in src/glia/backends/cuda when it is
// built, and by src/glia/core/cuda_none.cpp (which throws "no CUDA support") otherwise.
#pragma once

#include <functional>
#include <memory>

#include "glia/core/storage.h"
#include "glia/core/tensor.h"

namespace glia::detail {

/// The caching allocator of CUDA device `index`; throws DeviceError when the device cannot be used.
Allocator& cuda_allocator(int index);
/// dst[...] = src[...] (converted, broadcast) where the two live on different devices.
void cross_device_copy(const Tensor& dst, const Tensor& src);

/// Work recorded once from a device's stream as a CUDA Graph and replayed with one launch. It keeps
/// the memory its kernels used while being recorded, so their addresses stay valid for replays.
class CudaGraph {
 public:
  virtual ~CudaGraph() = default;
  /// Queues the recorded work again on the device's stream. Random kernels in it draw the numbers
  /// that eager calls would draw now (their generator counters are shifted per replay).
  virtual void replay() = 0;
};

/// Records what `work` queues on CUDA device `index`'s stream (nothing runs yet), then instantiates
/// it. If work throws or the capture fails, the capture is ended and discarded and the error goes on.
/// While recording, copies to the CPU are errors and copies from the CPU become part of the graph.
std::unique_ptr<CudaGraph> cuda_capture(int index, const std::function<void()>& work);

}  // namespace glia::detail
