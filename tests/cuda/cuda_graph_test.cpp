// Compiled graphs and Keras training on the GPU: plans run their kernels there, replay as CUDA
// Graphs from the third call, random numbers in replays are the ones eager calls would draw, and a
// model trained on the GPU ends where the same model trained on the CPU does. The tests that need a
// GPU skip without one; the device option's parsing and errors are checked everywhere.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "cuda/cuda_testing.h"
#include "glia/glia.h"
#include "glia/graph/function.h"
#include "testing.h"

namespace glia {
namespace {

using ::testing::HasSubstr;
using namespace glia::cuda_testing;

TEST(CudaDevice, ParseNamesAndRejectsOthers) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  for (const char* bad : {"", "CUDA", "cuda:", "cuda:x", "cuda:-1", "tpu", "cuda:123456"}) {
    try {
      Device::parse(bad);
      ADD_FAILURE() << bad;
    } catch (const ValueError& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr("expected cpu, cuda or cuda:N")) << bad;
    }
  }
}

// Without a GPU, asking a model for one fails when the weights move, with the device in the message.
TEST(CudaDevice, CompileOnAMissingGpuSaysSo) {
  if (cuda::is_available()) GTEST_SKIP() << "a GPU is present";
  auto model = zoo::tutorial_mlp({4, 4, 1}, 3);
  model->build({{4, 4, 1}});
  try {
    model->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .device = Device::cuda(0)});
    ADD_FAILURE() << "expected a DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("cuda(0)"));
  }
  // The CPU model still works.
  EXPECT_EQ(model->predict(zeros({2, 4, 4, 1}), {.verbose = 0}).shape(), (Shape{2, 3}));
}

// A function of GPU tensors: the first call runs kernel by kernel, the second records, later ones
// replay; every result matches the CPU function on the same inputs, also as the inputs change.
TEST(CudaGraphMode, FunctionRunsRecordsAndReplaysOnTheGpu) {
  SKIP_WITHOUT_GPU();
  Tensor w = rnd({6, 5}, DType::f32);
  auto body = [](const Tensor& wv) {
    return [wv](const std::vector<Tensor>& in) {
      Tensor h = relu(matmul(in[0], wv) + 0.5);
      return std::vector<Tensor>{sum(h * h, {1}), exp(-h)};
    };
  };
  Tensor wg = w.to(kGpu);
  Function on_gpu(body(wg)), on_cpu(body(w));
  for (int call = 0; call < 5; ++call) {
    Tensor x = rnd({3, 6}, DType::f32);
    auto g = on_gpu({x.to(kGpu)});
    auto c = on_cpu({x});
    ASSERT_EQ(g.size(), 2u);
    EXPECT_EQ(g[0].device(), kGpu);
    EXPECT_TRUE(testing::all_close(g[0].to(Device::cpu()), c[0], 1e-5, 1e-5)) << "call " << call;
    EXPECT_TRUE(testing::all_close(g[1].to(Device::cpu()), c[1], 1e-5, 1e-5)) << "call " << call;
  }
  EXPECT_EQ(on_gpu.traces(), 1);
  EXPECT_TRUE(on_gpu.plan_for({rnd({3, 6}, DType::f32).to(kGpu)}).replays_cuda_graph());
  EXPECT_EQ(on_gpu.plan_for({rnd({3, 6}, DType::f32).to(kGpu)}).device(), kGpu);
}

// Random numbers in a replayed graph move on with the generator: call k on the GPU gives what call
// k on the CPU gives from the same seed (the generators are counter-based and shared).
TEST(CudaGraphMode, ReplaysDrawTheNumbersEagerCallsWould) {
  SKIP_WITHOUT_GPU();
  auto f = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{in[0] + rand({4, 7}, {.device = in[0].device()}), dropout(in[0], 0.5, true)};
  };
  Function on_gpu(f), on_cpu(f);
  Tensor x = ones({4, 7});
  manual_seed(11);
  std::vector<std::vector<Tensor>> gpu, cpu;
  for (int call = 0; call < 4; ++call) gpu.push_back(on_gpu({x.to(kGpu)}));
  manual_seed(11);
  for (int call = 0; call < 4; ++call) cpu.push_back(on_cpu({x}));
  for (int call = 0; call < 4; ++call)
    for (size_t i = 0; i < 2; ++i)
      EXPECT_TRUE(testing::all_close(gpu[call][i].to(Device::cpu()), cpu[call][i], 0, 0))
          << "call " << call << " output " << i;
  EXPECT_FALSE(testing::all_close(gpu[2][0].to(Device::cpu()), gpu[3][0].to(Device::cpu()), 0, 0));
}

// A feed that is not where the plan runs is moved there; a captured CPU tensor that is not a number
// cannot be used by a graph on the GPU, and the error says which and where.
TEST(CudaGraphMode, CpuTensorsInAGpuGraph) {
  SKIP_WITHOUT_GPU();
  Tensor wg = rnd({3, 3}, DType::f32).to(kGpu);
  Function f([wg](const std::vector<Tensor>& in) { return std::vector<Tensor>{matmul(in[0], wg)}; });
  Tensor x = rnd({2, 3}, DType::f32);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(testing::all_close(f({x})[0].to(Device::cpu()), matmul(x, wg.to(Device::cpu())), 1e-5, 1e-6));
  Tensor w_cpu = rnd({3, 3}, DType::f32);
  Function g([w_cpu](const std::vector<Tensor>& in) { return std::vector<Tensor>{matmul(in[0], w_cpu)}; });
  try {
    g({x.to(kGpu)});
    ADD_FAILURE() << "expected a DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("cpu"));
    EXPECT_THAT(std::string(e.what()), HasSubstr("cuda:0"));
  }
}

/// The tutorial MLP or CNN, trained for a few steps on the given device from the same start.
std::vector<Tensor> train_on(Device d, bool eager, const std::string& which, int64_t epochs, int64_t per_exec = 1) {
  manual_seed(3);
  std::shared_ptr<Sequential> model =
      which == "mlp" ? zoo::tutorial_mlp({8, 8, 1}, 4) : zoo::default_cnn({12, 12, 1}, 4);
  Shape in = which == "mlp" ? Shape{8, 8, 1} : Shape{12, 12, 1};
  model->build({in});
  std::optional<Device> dev;
  if (!d.is_cpu()) dev = d;
  model->compile({.optimizer = "adam",
                  .loss = "sparse_categorical_crossentropy",
                  .metrics = {"accuracy"},
                  .run_eagerly = eager,
                  .device = dev,
                  .steps_per_execution = per_exec});
  manual_seed(5);
  Shape xs = in;
  xs.insert(xs.begin(), 64);
  Tensor x = testing::uniform(xs, 0.0, 1.0, DType::f32);
  Tensor y = (testing::uniform({64}, 0.0, 3.999, DType::f64)).to(DType::i64);
  auto h = model->fit(x, y, {.epochs = epochs, .batch_size = 16, .verbose = 0});
  std::vector<Tensor> w;
  for (Variable* v : model->weights()) {
    EXPECT_EQ(v->value.device(), d) << v->name;
    w.push_back(v->value.detach().to(Device::cpu()));
  }
  w.push_back(model->predict(x, {.verbose = 0}));
  EXPECT_EQ(w.back().device(), Device::cpu());
  w.push_back(scalar_tensor(h["loss"].back()));
  w.push_back(scalar_tensor(h["accuracy"].back()));
  return w;
}

// fit on the GPU, compiled (replayed) and eager, ends where fit on the CPU ends: weights,
// predictions, the logged loss and accuracy. The default CNN brings batch norm, dropout (same
// random numbers on both devices), convolution and pooling.
TEST(CudaKeras, FitOnTheGpuMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  for (std::string which : {"mlp", "cnn"}) {
    std::vector<Tensor> cpu = train_on(Device::cpu(), false, which, 3);
    for (bool eager : {false, true}) {
      std::vector<Tensor> gpu = train_on(kGpu, eager, which, 3);
      ASSERT_EQ(gpu.size(), cpu.size());
      for (size_t i = 0; i < cpu.size(); ++i)
        EXPECT_TRUE(testing::all_close(gpu[i], cpu[i], 2e-3, 2e-4)) << which << (eager ? " eager " : " compiled ") << i;
    }
  }
}

// steps_per_execution on the GPU: the same steps (bit for bit: one stream, the same kernels), the
// losses read 3 steps at a time and the accuracy summed on the device, the same logs.
TEST(CudaKeras, StepsPerExecutionTrainsTheSameStepsOnTheGpu) {
  SKIP_WITHOUT_GPU();
  for (std::string which : {"mlp", "cnn"}) {
    std::vector<Tensor> one = train_on(kGpu, false, which, 2), three = train_on(kGpu, false, which, 2, 3);
    ASSERT_EQ(one.size(), three.size());
    for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(testing::all_close(three[i], one[i], 0, 1e-12)) << which << i;
  }
}

// Once a compiled step replays its CUDA Graph, each batch is copied from (pinned) host memory
// straight into the graph's input buffers, the next one during the current step into the model's
// staging buffers (cuda::BatchStager, one batch kept on the GPU from the first replay on) and from
// there into the inputs: a replayed step holds no batch-sized temporary on the GPU (a 12.5 MiB batch
// here, for a model of 220 KB), and training still ends where the same steps end on the CPU (so the
// staged batches arrived whole, in order). SGD, not Adam: Adam moves each weight by about lr whatever
// its gradient's size, so where a gradient is near zero the float rounding of its sign (summation
// order differs between the devices) moved weights by 3e-4 on an H100; SGD's differences stay those
// of the gradients.
TEST(CudaKeras, ReplayedStepsCopyBatchesStraightIntoTheGraph) {
  SKIP_WITHOUT_GPU();
  const int64_t batch = 4096;
  auto make = [&](Device d) {
    manual_seed(7);
    auto model = zoo::tutorial_mlp({28, 28, 1}, 10);
    model->build({Shape{28, 28, 1}});
    std::optional<Device> dev;
    if (!d.is_cpu()) dev = d;
    model->compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy", .device = dev});
    return model;
  };
  manual_seed(9);
  Tensor x = testing::uniform({9 * batch, 28, 28, 1}, 0.0, 1.0, DType::f32);
  Tensor y = testing::uniform({9 * batch}, 0.0, 9.999, DType::f64).to(DType::i64);
  auto gpu = make(kGpu), cpu = make(Device::cpu());
  FitOptions o{.epochs = 1, .batch_size = batch, .shuffle = false, .verbose = 0};
  auto part = [&](const Tensor& t, int64_t i) { return t.narrow(0, 3 * i * batch, 3 * batch); };
  gpu->fit(part(x, 0), part(y, 0), o);  // traces, runs, records, replays
  gpu->fit(part(x, 1), part(y, 1), o);  // replays, staging the next batch from the first one on
  cuda::synchronize(kGpu);
  const int64_t before = memory_stats(kGpu).allocated_bytes;
  reset_peak_memory_stats(kGpu);
  gpu->fit(part(x, 2), part(y, 2), o);  // replays, with staging buffers already there
  cuda::synchronize(kGpu);
  const int64_t grown = memory_stats(kGpu).peak_allocated_bytes - before;
  EXPECT_LT(grown, batch * 28 * 28 * 4 / 4) << "a replayed step allocated " << grown << " bytes";
  for (int64_t i = 0; i < 3; ++i) cpu->fit(part(x, i), part(y, i), o);
  std::vector<Variable*> wg = gpu->weights(), wc = cpu->weights();
  ASSERT_EQ(wg.size(), wc.size());
  for (size_t i = 0; i < wg.size(); ++i)
    EXPECT_TRUE(testing::all_close(wg[i]->value.to(Device::cpu()), wc[i]->value, 2e-3, 2e-4)) << wg[i]->name;
}

}  // namespace
}  // namespace glia
