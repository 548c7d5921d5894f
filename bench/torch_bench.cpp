// libtorch's side of the dispatch-overhead benchmark (same harness as glia_bench).
#include <torch/torch.h>

#include "timer.h"

int main() {
  torch::set_num_threads(2);
  torch::Tensor a = torch::ones({1}), b = torch::ones({1});
  bench::report("add_1elem", bench::seconds_per_call([&] { torch::Tensor c = torch::add(a, b); }));
  torch::Tensor ag = torch::ones({1}, torch::requires_grad());
  bench::report("add_1elem_autograd", bench::seconds_per_call([&] { torch::Tensor c = torch::add(ag, b); }));
  return 0;
}
