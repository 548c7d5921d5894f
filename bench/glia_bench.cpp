// Glia's side of `make bench`: prints "name<TAB>seconds per call" lines.
#include <glia/glia.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstring>
#include <vector>

#include "timer.h"

using namespace glia;

namespace {

void dispatch_overhead() {
  Tensor a = ones({1}), b = ones({1});
  bench::report("add_1elem", bench::seconds_per_call([&] { Tensor c = add(a, b); }));
  Tensor ag = ones({1}, {.requires_grad = true});
  bench::report("add_1elem_autograd", bench::seconds_per_call([&] { Tensor c = add(ag, b); }));
}

void matmul_vs_sgemm() {
  for (int64_t n : {256, 1024, 2048}) {
    Tensor a = randn({n, n}), b = randn({n, n});
    std::string tag = std::to_string(n);
    bench::report("matmul_" + tag, bench::seconds_per_call([&] { Tensor c = matmul(a, b); }, 0.2, 5));
    std::vector<float> c(static_cast<size_t>(n * n));
    const float* pa = a.data<float>();
    const float* pb = b.data<float>();
    bench::report(
        "sgemm_" + tag,
        bench::seconds_per_call([&] { dnnl_sgemm('N', 'N', n, n, n, 1.f, pa, n, pb, n, 0.f, c.data(), n); }, 0.2, 5));
  }
}

void elementwise_bandwidth() {
  const int64_t n = 16 << 20;
  Tensor a = randn({n}), b = randn({n});
  bench::report("add_16M", bench::seconds_per_call([&] { Tensor c = add(a, b); }, 0.3));
  bench::report("mul_16M", bench::seconds_per_call([&] { Tensor c = mul(a, b); }, 0.3));
  bench::report("relu_16M", bench::seconds_per_call([&] { Tensor c = relu(a); }, 0.3));
  // memcpy of one 64 MB buffer into another (read 64 MB + write 64 MB), both threads as glia uses.
  std::vector<char> src(static_cast<size_t>(n) * 4, 1), dst(static_cast<size_t>(n) * 4);
  bench::report("memcpy_64MB", bench::seconds_per_call(
                                   [&] {
                                     size_t half = src.size() / 2;
#pragma omp parallel for num_threads(2)
                                     for (int t = 0; t < 2; ++t)
                                       std::memcpy(dst.data() + t * half, src.data() + t * half, half);
                                   },
                                   0.3));
}

void conv_layers() {
  struct L {
    const char* name;
    int64_t h, w, cin, cout;
  } layers[] = {{"conv1", 32, 32, 3, 32}, {"conv2", 15, 15, 32, 64}, {"conv3", 6, 6, 64, 64}};
  for (auto& l : layers) {
    Tensor x = randn({64, l.h, l.w, l.cin}, {.requires_grad = true});
    Tensor w = randn({3, 3, l.cin, l.cout}, {.requires_grad = true});
    Tensor b = zeros({l.cout}, {.requires_grad = true});
    Tensor g = randn({64, l.h - 2, l.w - 2, l.cout});
    bench::report(std::string(l.name) + "_fwd_bwd", bench::seconds_per_call([&] {
                    Tensor y = conv2d(x, w, b);
                    auto gr = grad({y}, {x, w, b}, {.grad_outputs = {g}});
                  }));
  }
}

void maxpool() {
  struct P {
    const char* name;
    int64_t h, c;
  } pools[] = {{"maxpool_30x30x32", 30, 32}, {"maxpool_13x13x64", 13, 64}};
  for (auto& p : pools) {
    Tensor x = randn({64, p.h, p.h, p.c}, {.requires_grad = true});
    Tensor g = randn({64, p.h / 2, p.h / 2, p.c});
    bench::report(std::string(p.name) + "_fwd_bwd", bench::seconds_per_call([&] {
                    Tensor y = max_pool2d(x);
                    auto gr = grad({y}, {x}, {.grad_outputs = {g}});
                  }));
  }
}

}  // namespace

int main(int argc, char** argv) {
  set_num_threads(2);
  manual_seed(0);
  std::string only = argc > 1 ? argv[1] : "";
  auto want = [&](const char* s) { return only.empty() || only == s; };
  if (want("dispatch")) dispatch_overhead();
  if (want("matmul")) matmul_vs_sgemm();
  if (want("elementwise")) elementwise_bandwidth();
  if (want("conv")) conv_layers();
  if (want("pool")) maxpool();
  return 0;
}
