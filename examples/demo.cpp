// A first look at Glia: tensors, broadcasting, views and eager autograd.
#include <glia/glia.h>

#include <iostream>

int main() {
  using namespace glia;
  manual_seed(0);

  Tensor a = tensor({{1, 2, 3}, {4, 5, 6}});
  Tensor b = arange(3).to(float32);
  std::cout << "a =\n" << a << "\n";
  std::cout << "a + b (broadcast) =\n" << a + b << "\n";
  std::cout << "a.t() (a view, no copy) =\n" << a.t() << "\n";

  // Autograd: fit y = 3x + 1 by gradient descent on a tiny batch.
  Tensor x = linspace(-1, 1, 16).reshape({16, 1});
  Tensor y = x * 3.0 + 1.0;
  Tensor w = zeros({1, 1}, {.requires_grad = true});
  Tensor bias = zeros({1}, {.requires_grad = true});
  for (int step = 0; step < 200; ++step) {
    Tensor loss = mean(square(matmul(x, w) + bias - y));
    loss.backward();
    no_grad guard;
    w.sub_(w.grad() * 0.1);
    bias.sub_(bias.grad() * 0.1);
    w.grad().zero_();
    bias.grad().zero_();
    if (step % 50 == 0) std::cout << "step " << step << " loss " << loss.item<float>() << "\n";
  }
  std::cout << "learned w = " << w.item<float>() << ", b = " << bias.item<float>() << " (true: 3, 1)\n";

  // Gradients of gradients: d/dx of d/dx tanh(x) at 0.5.
  Tensor t = tensor({0.5}, {}, {.dtype = float64, .requires_grad = true});
  Tensor g1 = grad(tanh(t).sum(), t, {.create_graph = true});
  Tensor g2 = grad(g1.sum(), t);
  std::cout << "tanh'(0.5) = " << g1.item<double>() << ", tanh''(0.5) = " << g2.item<double>() << "\n";
  return 0;
}
