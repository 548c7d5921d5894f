// oneDNN's CPU engine and stream, shared by the kernels that run its primitives.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

namespace glia::cpu::onednn {

dnnl::engine& engine();
dnnl::stream& stream();

}  // namespace glia::cpu::onednn
