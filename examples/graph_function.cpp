// Graph mode by tracing: glia::function turns an eager training step into a compiled graph.
// The same step runs eagerly and compiled from the same weights; the losses agree, and the
// compiled graph is printed before and after the optimization passes.
#include <glia/glia.h>

#include <chrono>
#include <cstdio>
#include <fstream>

using namespace glia;

int main(int argc, char** argv) {
  manual_seed(0);
  const int64_t n = 2048, batch = 64;
  Tensor x = randn({n, 20});
  Tensor y = (x.narrow(1, 0, 1) * x.narrow(1, 1, 1) > 0.0).to(float32);  // an XOR-like target

  // Parameters of a two-layer MLP, made before tracing: the graph reads them by reference.
  auto init = [](int64_t in, int64_t out) { return (randn({in, out}) * std::sqrt(2.0 / in)).requires_grad_(); };
  std::vector<Tensor> params = {init(20, 64), zeros({64}).requires_grad_(), init(64, 1), zeros({1}).requires_grad_()};
  std::vector<Tensor> eager_params;
  for (auto& p : params) eager_params.push_back(p.detach().clone().requires_grad_());
  optimizers::SGD opt(0.1, {.momentum = 0.9}), eager_opt(0.1, {.momentum = 0.9});

  // One step written as ordinary eager code: forward, loss, gradients, update.
  auto step_fn = [](std::vector<Tensor>& p, optimizers::Optimizer& o, const Tensor& xb, const Tensor& yb) {
    Tensor h = relu(matmul(xb, p[0]) + p[1]);
    Tensor logits = matmul(h, p[2]) + p[3];
    Tensor loss = binary_cross_entropy_with_logits(logits, yb);
    o.apply(grad({loss}, p), p);
    return loss;
  };
  // The compiled step: traced on its first call, then run as an optimized graph.
  Function step = glia::function(
      [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{step_fn(params, opt, in[0], in[1])}; });

  double worst = 0;
  auto t_eager = 0.0, t_compiled = 0.0;
  for (int epoch = 0; epoch < 5; ++epoch) {
    double sum = 0;
    for (int64_t i = 0; i < n; i += batch) {
      Tensor xb = x.narrow(0, i, batch), yb = y.narrow(0, i, batch);
      auto t0 = std::chrono::steady_clock::now();
      double lc = step({xb, yb})[0].item<double>();
      auto t1 = std::chrono::steady_clock::now();
      double le = step_fn(eager_params, eager_opt, xb, yb).item<double>();
      auto t2 = std::chrono::steady_clock::now();
      if (epoch > 0) {  // the first epoch traces and warms up
        t_compiled += std::chrono::duration<double>(t1 - t0).count();
        t_eager += std::chrono::duration<double>(t2 - t1).count();
      }
      worst = std::max(worst, std::abs(lc - le) / std::max(1e-12, std::abs(le)));
      sum += lc;
    }
    std::printf("epoch %d  loss %.4f\n", epoch + 1, sum / static_cast<double>(n / batch));
  }
  std::printf("compiled vs eager: largest relative loss difference %.2e; %.1f vs %.1f us per step\n", worst,
              t_compiled / (4.0 * n / batch) * 1e6, t_eager / (4.0 * n / batch) * 1e6);

  std::vector<Tensor> sig = {x.narrow(0, 0, batch), y.narrow(0, 0, batch)};
  const auto& stats = step.pass_stats(sig);
  std::printf("traces: %lld; passes: %d folded, %d merged, %d simplified, %d fused, %d updates moved up\n",
              static_cast<long long>(step.traces()), stats.folded, stats.merged, stats.simplified, stats.fused,
              stats.scheduled);
  if (argc > 1) {  // write the graphs: graph_function before.dot after.dot
    std::ofstream(argv[1]) << step.dot_before_passes(sig);
    if (argc > 2) std::ofstream(argv[2]) << step.graph_for(sig).to_dot();
  }
  bool ok = worst < 1e-4;
  std::printf("%s\n", ok ? "compiled and eager agree" : "FAILED: compiled and eager differ");
  return ok ? 0 : 1;
}
