#include "glia/core/threads.h"

#include <omp.h>

#include "glia/core/error.h"

namespace glia {

void set_num_threads(int n) {
  GLIA_CHECK(n >= 1, ValueError, "set_num_threads: expected a positive number of threads, got ", n);
  omp_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace glia
