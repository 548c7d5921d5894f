// Threads used by CPU kernels (OpenMP, shared with oneDNN: one pool).
#pragma once

namespace glia {

/// Sets the number of threads CPU kernels use (default: all cores).
void set_num_threads(int n);
int get_num_threads();

}  // namespace glia
