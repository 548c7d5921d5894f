#include <glia/glia.h>

#include <cmath>
#include <iostream>

int main() {
  glia::Tensor x = glia::tensor({1.0, 2.0, 3.0}, {}, {.dtype = glia::float64, .requires_grad = true});
  glia::Tensor y = (x * x).sum();
  y.backward();
  // d/dx sum(x^2) = 2x
  double g = x.grad().at<double>({2});
  std::cout << "glia " << glia::version() << ": y = " << y.item<double>() << ", dy/dx[2] = " << g << "\n";
  return (std::abs(y.item<double>() - 14.0) < 1e-12 && std::abs(g - 6.0) < 1e-12) ? 0 : 1;
}
