// Glia's side of the training benchmark: trains the tutorial CNN or MLP on Fashion-MNIST for one
// epoch with Adam and prints images/s and the process's peak memory (VmHWM), as
// "name<TAB>seconds-per-image", "name_peak_rss<TAB>bytes" and "name_peak_mem<TAB>bytes" (the
// allocator's peak while training, above the data) lines. Steps run as compiled graphs
// (fit's default) or, with "eager", op by op; eager lines are named train_eager_*.
// Usage: train_bench cnn|mlp BATCH [LIMIT] [compiled|eager]
#include <glia/glia.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

namespace {

long peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6)) * 1024;
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace glia;
  if (argc < 3) {
    std::cerr << "usage: train_bench cnn|mlp BATCH [LIMIT] [compiled|eager]\n";
    return 2;
  }
  std::string which = argv[1];
  int64_t batch = std::stoll(argv[2]);
  int64_t limit = argc > 3 ? std::stoll(argv[3]) : 60000;
  bool eager = argc > 4 && std::string(argv[4]) == "eager";
  set_num_threads(2);
  manual_seed(0);
  auto d = datasets::fashion_mnist::load_data();
  Tensor x = (d.train.x.narrow(0, 0, limit).to(float32) / 255.0).unsqueeze(-1);
  Tensor y = d.train.y.narrow(0, 0, limit).to(int64);
  auto model = which == "cnn" ? zoo::tutorial_cnn({28, 28, 1}) : zoo::tutorial_mlp({28, 28, 1});
  // No metrics: the PyTorch loop it is compared with computes none either.
  model->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .run_eagerly = eager});
  // Training memory: the allocator's peak above what the data and the fresh model hold (the
  // compiled steps' arenas, gradients, optimizer slots, batches, activations).
  reset_peak_memory_stats();
  const int64_t base = memory_stats().allocated_bytes;
  // Warm up (allocator cache, oneDNN primitives, traced graphs), then time one full epoch.
  model->fit(x.narrow(0, 0, 4 * batch), y.narrow(0, 0, 4 * batch), {.batch_size = batch, .verbose = 0});
  auto t0 = std::chrono::steady_clock::now();
  model->fit(x, y, {.epochs = 1, .batch_size = batch, .verbose = 0});
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string name = std::string(eager ? "train_eager_" : "train_") + which + "_bs" + std::to_string(batch);
  std::printf("%s\t%.9g\n%s_peak_rss\t%ld\n%s_peak_mem\t%lld\n", name.c_str(), s / static_cast<double>(limit),
              name.c_str(), peak_rss_bytes(), name.c_str(),
              static_cast<long long>(memory_stats().peak_allocated_bytes - base));
  return 0;
}
