// Graph mode, TF1 style: describe the computation first, run it later in a Session.
// Fits a linear model y = x w + b to data made with known weights by gradient descent, with the
// gradients built symbolically (graph::gradients) and the updates as graph nodes (assign_sub).
#include <glia/glia.h>

#include <cstdio>

using namespace glia;

int main() {
  manual_seed(0);
  // Data from known weights, plus a little noise.
  Tensor true_w = tensor({{2.0f}, {-3.0f}, {0.5f}}), true_b = tensor({1.0f});
  Tensor x_data = randn({256, 3});
  Tensor y_data = matmul(x_data, true_w) + true_b + randn({256, 1}) * 0.01;

  // The graph: placeholders (the batch size is unknown: -1), variables, the loss, its gradients
  // and the update. Nothing runs yet: every op call adds a node.
  graph::Graph g;
  Tensor x = g.placeholder(float32, {-1, 3}, "x");
  Tensor y = g.placeholder(float32, {-1, 1}, "y");
  Tensor w = g.variable(zeros({3, 1}), "w");
  Tensor b = g.variable(zeros({1}), "b");
  Tensor loss = mean(square(matmul(x, w) + b - y));
  std::vector<Tensor> grads = graph::gradients({loss}, {w, b});
  Tensor step_w = graph::assign_sub(w, grads[0] * 0.1);
  Tensor step_b = graph::assign_sub(b, grads[1] * 0.1);

  // A session holds the variables' values; each run computes what the fetches need.
  graph::Session s(g);
  for (int epoch = 0; epoch < 20; ++epoch)
    for (int64_t i = 0; i < 256; i += 32) {
      auto out = s.run({loss}, {{x, x_data.narrow(0, i, 32)}, {y, y_data.narrow(0, i, 32)}}, {step_w, step_b});
      if (i == 0 && epoch % 5 == 0) std::printf("epoch %2d  loss %.6f\n", epoch, out[0].item<double>());
    }
  // The whole data set in one run: the plan for batch 256 is made on first use.
  double final_loss = s.run(loss, {{x, x_data}, {y, y_data}}).item<double>();
  Tensor w_fit = s.value(w), b_fit = s.value(b);
  std::printf("final loss %.6f\nw = [%.3f, %.3f, %.3f], b = %.3f (true: [2, -3, 0.5], 1)\n", final_loss,
              w_fit.flatten()[0].item<double>(), w_fit.flatten()[1].item<double>(), w_fit.flatten()[2].item<double>(),
              b_fit.item<double>());
  bool ok = max(abs(w_fit - true_w)).item<double>() < 0.01 && std::abs(b_fit.item<double>() - 1.0) < 0.01;
  std::printf("%s\n", ok ? "recovered the weights" : "FAILED to recover the weights");
  return ok ? 0 : 1;
}
