// What core code needs from the CUDA backend. Implemented in src/glia/backends/cuda when it is
// built, and by src/glia/core/cuda_none.cpp (which throws "no CUDA support") otherwise.
#pragma once

#include "glia/core/storage.h"
#include "glia/core/tensor.h"

namespace glia::detail {

/// The caching allocator of CUDA device `index`; throws DeviceError when the device cannot be used.
Allocator& cuda_allocator(int index);
/// dst[...] = src[...] (converted, broadcast) where the two live on different devices.
void cross_device_copy(const Tensor& dst, const Tensor& src);

}  // namespace glia::detail
