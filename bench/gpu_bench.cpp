// Glia's side of the GPU training benchmark (issue #6; PyTorch's side is bench/torch_gpu.py):
// trains the tutorial CNN (bs 256, 32x32x3), the tutorial MLP (bs 1024, 28x28x1) or the
// ResNet-18-style CIFAR network (bs 256, 32x32x3) on synthetic data with Adam and prints
//   gpu_<model>_bs<B>[_eager][_speN]<TAB><ms per step>
//   gpu_<model>_bs<B>[_eager][_speN]_peak_mem<TAB><bytes>
// (_speN with steps_per_execution N > 1: the loss is read once every N steps, not after each.)
// The data lives on the CPU (as a data set would); fit copies each batch to the device.
// Peak memory is the device allocator's peak during the timed epoch minus what was allocated on
// the device before the model was compiled for it, so it counts everything training holds on the
// device: weights, gradients, optimizer state, batches, activations, graph arenas (torch_gpu.py
// measures max_memory_allocated the same way). The CPU data is never on the device.
// Usage: gpu_bench cnn|mlp|resnet18 [steps] [compiled|eager] [device] [steps_per_execution]
//        (device default cuda, steps_per_execution default 1)
//        GLIA_BENCH_BATCH=N overrides the batch size (smoke runs on the CPU emulator: gpu_bench_emulated)
#include <glia/core/cuda.h>
#include <glia/glia.h>
#include <glia/model/zoo.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  using namespace glia;
  if (argc < 2) {
    std::cerr << "usage: gpu_bench cnn|mlp|resnet18 [steps] [compiled|eager] [device] [steps_per_execution]\n";
    return 2;
  }
  try {
    const std::string which = argv[1];
    const int64_t steps = argc > 2 ? std::stoll(argv[2]) : 100;
    const std::string mode = argc > 3 ? argv[3] : "compiled";
    const Device dev = Device::parse(argc > 4 ? argv[4] : "cuda");
    const int64_t per_exec = argc > 5 ? std::stoll(argv[5]) : 1;
    if ((which != "cnn" && which != "mlp" && which != "resnet18") || steps < 1 ||
        (mode != "compiled" && mode != "eager") || per_exec < 1) {
      std::cerr
          << "usage: gpu_bench cnn|mlp|resnet18 [steps >= 1] [compiled|eager] [device] [steps_per_execution >= 1]\n";
      return 2;
    }
    const bool eager = mode == "eager";
    // Plain float32, as torch_gpu.py; GLIA_BENCH_TF32=1 lets both use TF32 tensor cores.
    const char* tf32_env = std::getenv("GLIA_BENCH_TF32");
    const bool tf32 = tf32_env && std::string(tf32_env) == "1";
    if (dev.is_cuda()) cuda::set_allow_tf32(tf32);
    // GLIA_BENCH_BATCH overrides the batch size (for a smoke run on the CPU emulator, where a
    // ResNet-18 step of batch 256 would take hours); the printed names carry it.
    const char* batch_env = std::getenv("GLIA_BENCH_BATCH");
    const int64_t batch = batch_env ? std::stoll(batch_env) : which == "mlp" ? 1024 : 256;
    if (batch < 1) {
      std::cerr << "gpu_bench: GLIA_BENCH_BATCH must be >= 1, got " << batch_env << "\n";
      return 2;
    }
    const Shape image = which == "mlp" ? Shape{28, 28, 1} : Shape{32, 32, 3};
    const int64_t warmup_steps = 5;
    manual_seed(0);

    // Synthetic data made once on the CPU: enough for the warm-up and for the timed epoch.
    const int64_t n = std::max(steps, warmup_steps) * batch;
    Shape xs{n};
    for (int64_t d : image) xs.push_back(d);
    Tensor x = rand(IntList(xs), {.dtype = DType::f32});
    Tensor y = randint(0, 10, {n});

    // What the device held before this model: the baseline of the peak-memory line.
    const bool on_gpu = dev.is_cuda();
    const int64_t base = memory_stats(dev).allocated_bytes;

    std::shared_ptr<Model> model;
    if (which == "cnn")
      model = zoo::tutorial_cnn({32, 32, 3});
    else if (which == "mlp")
      model = zoo::tutorial_mlp({28, 28, 1});
    else
      model = zoo::resnet18_cifar({32, 32, 3});
    // No metrics: the PyTorch loop it is compared with computes none either.
    model->compile({.optimizer = "adam",
                    .loss = "sparse_categorical_crossentropy",
                    .run_eagerly = eager,
                    .device = dev,
                    .steps_per_execution = per_exec});

    // Warm up: tracing on the first compiled step, CUDA Graph recording on the second, replays
    // from the third; cuDNN / cuBLAS plans and the allocator's cache fill up too.
    model->fit(x.narrow(0, 0, warmup_steps * batch), y.narrow(0, 0, warmup_steps * batch),
               {.epochs = 1, .batch_size = batch, .shuffle = true, .verbose = 0});
    if (on_gpu) cuda::synchronize(dev);
    reset_peak_memory_stats(dev);

    Tensor xt = x.narrow(0, 0, steps * batch), yt = y.narrow(0, 0, steps * batch);
    auto t0 = std::chrono::steady_clock::now();
    model->fit(xt, yt, {.epochs = 1, .batch_size = batch, .shuffle = true, .verbose = 0});
    if (on_gpu) cuda::synchronize(dev);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const int64_t peak = memory_stats(dev).peak_allocated_bytes - base;
    const std::string name = "gpu_" + which + "_bs" + std::to_string(batch) + (eager ? "_eager" : "") +
                             (per_exec > 1 ? "_spe" + std::to_string(per_exec) : "");
    std::printf("%s\t%.6f\n%s_peak_mem\t%lld\n", name.c_str(), s * 1e3 / static_cast<double>(steps), name.c_str(),
                static_cast<long long>(peak));
    std::fprintf(stderr, "%s: %lld parameters, %lld steps on %s, %.3f s, TF32 %s\n", name.c_str(),
                 static_cast<long long>(model->count_params()), static_cast<long long>(steps), dev.str().c_str(), s,
                 tf32 ? "on" : "off");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "gpu_bench: " << e.what() << "\n";
    return 1;
  }
}
