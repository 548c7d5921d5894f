// The eager autograd engine: gradients of small graphs with closed forms,
// accumulation, retain_graph, detach, grad modes, higher-order gradients,
// in-place safety, graph shapes (diamonds, shared subgraphs, deep chains) and
// gradients through views.
#include <pthread.h>

#include <cmath>
#include <thread>

#include "glia/autograd/node.h"
#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {
Tensor f64(std::vector<double> v, bool requires_grad = true) {
  Tensor t = tensor(v);
  if (requires_grad) t.requires_grad_(true);
  return t;
}
bool mentions(const std::string& msg, const std::string& what) { return msg.find(what) != std::string::npos; }

/// Runs f on a thread with a 256 KiB stack.
void run_with_small_stack(const std::function<void()>& f) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t t;
  auto* fp = const_cast<std::function<void()>*>(&f);
  ASSERT_EQ(pthread_create(
                &t, &attr,
                [](void* p) -> void* {
                  (*static_cast<std::function<void()>*>(p))();
                  return nullptr;
                },
                fp),
            0);
  pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
}
}  // namespace

TEST(Autograd, SmallGraphHasKnownGradients) {
  Tensor x = f64({1.0, 2.0, 3.0}), w = f64({0.5, -1.0, 2.0});
  Tensor y = (x * w + exp(x)).sum() + (w * w).mean();
  EXPECT_EQ(y.dim(), 0);
  EXPECT_FALSE(y.is_leaf());
  EXPECT_TRUE(y.requires_grad());
  y.backward();
  EXPECT_TRUE(matches(x.grad(), {3}, {0.5 + std::exp(1.0), -1 + std::exp(2.0), 2 + std::exp(3.0)}, 1e-14, 0));
  EXPECT_TRUE(matches(w.grad(), {3}, {1 + 2 * 0.5 / 3, 2 - 2.0 / 3, 3 + 4.0 / 3}, 1e-14, 0));
  EXPECT_FALSE(x.grad().requires_grad());
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  // A float32 leaf gets a float32 gradient.
  Tensor f = ones({2}, {.requires_grad = true});
  (f * 3.0).sum().backward();
  EXPECT_EQ(f.grad().dtype(), DType::f32);
  EXPECT_TRUE(matches(f.grad(), {2}, {3, 3}, 0, 0));
}

TEST(Autograd, GradientsAccumulateOverBackwardCalls) {
  Tensor x = f64({1.0, -2.0});
  (x * x).sum().backward();
  EXPECT_TRUE(matches(x.grad(), {2}, {2, -4}, 0, 0));
  (x * 3.0).sum().backward();
  EXPECT_TRUE(matches(x.grad(), {2}, {5, -1}, 0, 0));
  // Zeroing in between restarts, as an optimizer does.
  {
    no_grad g;
    x.grad().zero_();
  }
  (x * x * x).sum().backward();
  EXPECT_TRUE(matches(x.grad(), {2}, {3, 12}, 0, 0));
  x.set_grad(Tensor());
  (x * 2.0).sum().backward();
  EXPECT_TRUE(matches(x.grad(), {2}, {2, 2}, 0, 0));
}

TEST(Autograd, RetainGraph) {
  Tensor x = f64({1.0, 2.0});
  Tensor y = (x * x).sum();
  y.backward();
  std::string msg = error_of<ValueError>([&] { y.backward(); });
  EXPECT_TRUE(mentions(msg, "retain_graph")) << msg;
  Tensor z = (x * exp(x)).sum();
  x.set_grad(Tensor());
  z.backward({}, /*retain_graph=*/true);
  z.backward();  // the graph is still there
  Tensor want = (exp(x.detach()) * (x.detach() + 1.0)) * 2.0;
  EXPECT_TRUE(all_close(x.grad(), want, 1e-14));
  EXPECT_THROW(z.backward(), ValueError);  // freed by the second call
  // glia::grad frees the graph too unless asked.
  Tensor u = (x * x).sum();
  grad(u, x);
  EXPECT_THROW(grad(u, x), ValueError);
  Tensor v = (x * x).sum();
  grad(v, x, {.retain_graph = true});
  EXPECT_TRUE(matches(grad(v, x), {2}, {2, 4}, 0, 0));
}

TEST(Autograd, Detach) {
  Tensor x = f64({1.0, 2.0});
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_EQ(d.storage(), x.storage());
  Tensor y = (x * 2.0 + x.detach() * x.detach() * 5.0).sum();
  y.backward();
  EXPECT_TRUE(matches(x.grad(), {2}, {2, 2}, 0, 0));
  // A detached intermediate cuts the graph there.
  Tensor h = (x * x).detach();
  EXPECT_EQ(h.grad_fn(), nullptr);
  EXPECT_FALSE((h * 3.0).requires_grad());
  EXPECT_THROW((h * 3.0).sum().backward(), ValueError);
}

TEST(Autograd, NoGradAndEnableGradScopes) {
  Tensor x = f64({1.0, 2.0});
  EXPECT_TRUE(GradMode::is_enabled());
  {
    no_grad g;
    EXPECT_FALSE(GradMode::is_enabled());
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    {
      enable_grad e;
      EXPECT_TRUE((x * 2.0).requires_grad());
      {
        no_grad g2;
        EXPECT_FALSE((x * 2.0).requires_grad());
      }
      EXPECT_TRUE(GradMode::is_enabled());
    }
    EXPECT_FALSE(GradMode::is_enabled());
  }
  EXPECT_TRUE(GradMode::is_enabled());
  // Restored when an exception leaves the scope.
  try {
    no_grad g;
    matmul(ones({2}), ones({3}));
  } catch (const ShapeError&) {
  }
  EXPECT_TRUE(GradMode::is_enabled());
  // Grad mode is per thread.
  bool other = false;
  {
    no_grad g;
    std::thread t([&] { other = GradMode::is_enabled(); });
    t.join();
  }
  EXPECT_TRUE(other);
}

TEST(Autograd, RequiresGradPropagation) {
  Tensor x = f64({1.0, 2.0}), c = f64({3.0, 4.0}, false);
  EXPECT_TRUE(x.is_leaf());
  EXPECT_TRUE((x * c).requires_grad());
  EXPECT_TRUE((c + x).requires_grad());
  EXPECT_FALSE((c * c).requires_grad());
  EXPECT_TRUE(x.sum().requires_grad());
  EXPECT_TRUE(x.slice(0, 0, 1).requires_grad());
  EXPECT_FALSE(x.slice(0, 0, 1).is_leaf());
  // Integer and boolean results are not differentiable.
  EXPECT_FALSE((x > 1.0).requires_grad());
  EXPECT_FALSE(argmax(x, 0).requires_grad());
  EXPECT_FALSE(max(x, 0).second.requires_grad());
  EXPECT_TRUE(max(x, 0).first.requires_grad());
  EXPECT_FALSE(x.to(DType::i64).requires_grad());
  EXPECT_TRUE(x.to(DType::f32).requires_grad());
  EXPECT_THROW(tensor({1, 2}).requires_grad_(true), DTypeError);
  Tensor y = x * 2.0;
  EXPECT_THROW(y.requires_grad_(false), ValueError);  // only leaves
  Tensor leaf = f64({1.0});
  leaf.requires_grad_(false);
  EXPECT_FALSE((leaf * 2.0).requires_grad());
  EXPECT_EQ((x * c).grad_fn()->name(), "mul");
  // backward from a tensor that does not require grad
  std::string msg = error_of<ValueError>([&] { (c * c).sum().backward(); });
  EXPECT_TRUE(mentions(msg, "backward")) << msg;
}

TEST(Autograd, HigherOrderGradients) {
  Tensor x = f64({0.5, -1.5, 2.0});
  auto xv = read(x);
  for (int form = 0; form < 2; ++form) {
    auto cube = [&](const Tensor& t) { return form == 0 ? pow(t, 3.0) : t * t * t; };
    Tensor y = cube(x).sum();
    Tensor g1 = grad(y, x, {.create_graph = true});
    EXPECT_TRUE(g1.requires_grad());
    Tensor g2 = grad(g1.sum(), x, {.create_graph = true});
    Tensor g3 = grad(g2.sum(), x);
    std::vector<double> w1, w2, w3;
    for (double v : xv) {
      w1.push_back(3 * v * v);
      w2.push_back(6 * v);
      w3.push_back(6);
    }
    EXPECT_TRUE(matches(g1, {3}, w1, 1e-14, 0)) << form;
    EXPECT_TRUE(matches(g2, {3}, w2, 1e-14, 0)) << form;
    EXPECT_TRUE(matches(g3, {3}, w3, 1e-14, 0)) << form;
    EXPECT_FALSE(g3.requires_grad());
  }
  Tensor s = sin(x).sum();
  Tensor d1 = grad(s, x, {.create_graph = true});
  Tensor d2 = grad(d1.sum(), x, {.create_graph = true});
  Tensor d3 = grad(d2.sum(), x);
  std::vector<double> c1, c2, c3;
  for (double v : xv) {
    c1.push_back(std::cos(v));
    c2.push_back(-std::sin(v));
    c3.push_back(-std::cos(v));
  }
  EXPECT_TRUE(matches(d1, {3}, c1, 1e-14, 1e-15));
  EXPECT_TRUE(matches(d2, {3}, c2, 1e-14, 1e-15));
  EXPECT_TRUE(matches(d3, {3}, c3, 1e-14, 1e-15));
  // glia::grad leaves .grad alone.
  EXPECT_FALSE(x.grad().defined());
  // backward with create_graph makes .grad differentiable: d/dx (dy/dx)^2 for y = x^3 is 2 * 3x^2 * 6x.
  Tensor z = f64({1.5});
  pow(z, 3.0).sum().backward({}, false, /*create_graph=*/true);
  Tensor g = z.grad();
  EXPECT_TRUE(g.requires_grad());
  EXPECT_TRUE(matches(grad((g * g).sum(), z), {1}, {2 * 3 * 1.5 * 1.5 * 6 * 1.5}, 1e-14, 0));
  // Mixed partials: d^2/dx dy of x^2 y^3 = 6 x y^2.
  Tensor a = f64({2.0}), b = f64({-1.0});
  Tensor ga = grad((a * a * b * b * b).sum(), a, {.create_graph = true});
  EXPECT_TRUE(matches(grad(ga.sum(), b), {1}, {6 * 2.0 * 1.0}, 1e-14, 0));
}

TEST(Autograd, GradWithAllowUnusedAndSeveralOutputs) {
  Tensor x = f64({1.0, 2.0}), unused = f64({5.0});
  Tensor y = (x * x).sum();
  std::string msg = error_of<ValueError>([&] { grad({y}, {x, unused}, {.retain_graph = true}); });
  EXPECT_TRUE(mentions(msg, "allow_unused")) << msg;
  auto g = grad({y}, {x, unused}, {.retain_graph = true, .allow_unused = true});
  EXPECT_TRUE(matches(g[0], {2}, {2, 4}, 0, 0));
  EXPECT_FALSE(g[1].defined());
  EXPECT_THROW(grad({y}, {f64({1.0}, false)}), ValueError);  // input does not require grad
  // Several outputs with their own weights, and a non-scalar output with grad_outputs.
  Tensor v = x * 3.0;
  auto gv = grad({v, y}, {x}, {.grad_outputs = {f64({1.0, -1.0}, false), full({}, 2.0, {.dtype = DType::f64})}});
  EXPECT_TRUE(matches(gv[0], {2}, {3 + 2 * 2 * 1, -3 + 2 * 2 * 2}, 0, 0));
  // The output itself as the input: the gradient is grad_outputs (ones by default).
  EXPECT_TRUE(matches(grad(x.sum(), x), {2}, {1, 1}, 0, 0));
  Tensor hh = x * 2.0;
  EXPECT_TRUE(matches(grad(hh, hh, {.grad_outputs = {f64({3.0, 4.0}, false)}}), {2}, {3, 4}, 0, 0));
  // backward from a leaf puts the gradient straight into .grad.
  Tensor l = f64({1.0, 2.0});
  l.backward(f64({0.5, 0.25}, false));
  EXPECT_TRUE(matches(l.grad(), {2}, {0.5, 0.25}, 0, 0));
  // Gradient with respect to an intermediate tensor.
  Tensor x2 = f64({1.0, 2.0});
  Tensor h = x2 * 2.0;
  Tensor out = (h * h).sum();
  EXPECT_TRUE(matches(grad(out, h), {2}, {4, 8}, 0, 0));
}

TEST(Autograd, RetainGradOnNonLeaf) {
  Tensor x = f64({1.0, -2.0});
  Tensor h = x * 2.0;
  h.retain_grad();
  Tensor k = h + 1.0;  // not retained
  (k * h).sum().backward();
  // d/dh (h + 1) h = 2h + 1
  EXPECT_TRUE(matches(h.grad(), {2}, {5, -7}, 0, 0));
  EXPECT_FALSE(k.grad().defined());
  EXPECT_TRUE(matches(x.grad(), {2}, {10, -14}, 0, 0));
  EXPECT_THROW(f64({1.0}, false).retain_grad(), ValueError);
}

TEST(Autograd, InPlaceChangesAreCaught) {
  // A saved output modified after it was saved.
  Tensor x = f64({0.5, 1.0});
  Tensor y = exp(x);
  {
    no_grad g;
    y.add_(1.0);
  }
  std::string msg = error_of<ValueError>([&] { y.sum().backward(); });
  EXPECT_TRUE(mentions(msg, "in-place")) << msg;
  EXPECT_TRUE(mentions(msg, "exp")) << msg;
  // A saved input (that does not itself require grad) modified afterwards.
  Tensor w = f64({2.0, 3.0}, false);
  Tensor z = (x * w).sum();
  w.mul_(2.0);
  msg = error_of<ValueError>([&] { z.backward(); });
  EXPECT_TRUE(mentions(msg, "in-place")) << msg;
  // Through a view of the saved tensor: the version is per storage.
  Tensor w2 = f64({2.0, 3.0}, false);
  Tensor z2 = (x * w2).sum();
  w2.slice(0, 1, 2).fill_(0);
  EXPECT_THROW(z2.backward(), ValueError);
  // In-place on a leaf that requires grad, under grad mode: refused; under no_grad: fine (optimizer step).
  msg = error_of<ValueError>([&] { x.add_(1.0); });
  EXPECT_TRUE(mentions(msg, "in-place")) << msg;
  EXPECT_TRUE(mentions(msg, "add")) << msg;
  EXPECT_THROW(x.mul_(tensor({1.0, 2.0})), ValueError);
  EXPECT_THROW(x.copy_(tensor({1.0, 2.0})), ValueError);
  EXPECT_THROW((x * 2.0).zero_(), ValueError);  // a non-leaf in the graph too
  {
    no_grad g;
    x.sub_(tensor({0.5, 0.5}));
  }
  EXPECT_TRUE(matches(x, {2}, {0, 0.5}, 0, 0));
  // Unrelated in-place changes do not disturb a graph that saved nothing from them.
  Tensor p = f64({1.0, 2.0});
  Tensor q = (p + 1.0).sum();
  Tensor other = f64({0.0}, false);
  other.add_(1.0);
  q.backward();
  EXPECT_TRUE(matches(p.grad(), {2}, {1, 1}, 0, 0));
}

TEST(Autograd, BackwardNeedsGradientForNonScalars) {
  Tensor x = f64({1.0, 2.0, 3.0});
  Tensor y = x * 2.0;
  std::string msg = error_of<ValueError>([&] { y.backward(); });
  EXPECT_TRUE(mentions(msg, "[3]")) << msg;
  EXPECT_THROW(y.backward(f64({1.0, 1.0}, false)), ShapeError);
  y.backward(f64({1.0, 0.5, -1.0}, false));
  EXPECT_TRUE(matches(x.grad(), {3}, {2, 1, -2}, 0, 0));
  // A one-element non-0-d output gets an implied gradient of one.
  Tensor z = f64({4.0});
  (z * z).backward();
  EXPECT_TRUE(matches(z.grad(), {1}, {8}, 0, 0));
  EXPECT_THROW(Tensor().backward(), ValueError);
}

TEST(Autograd, DiamondsAndSharedSubgraphs) {
  Tensor x = f64({0.3, -1.2});
  // x used several times in one expression.
  (x * x + x * 3.0 + x).sum().backward();
  EXPECT_TRUE(matches(x.grad(), {2}, {2 * 0.3 + 4, 2 * -1.2 + 4}, 1e-15, 0));
  // A shared intermediate feeding several consumers: y = h^2 + h + sin(h), h = exp(x).
  Tensor x2 = f64({0.3, -1.2});
  Tensor h = exp(x2);
  Tensor y = (h * h + h + sin(h)).sum();
  y.backward();
  auto xv = read(x2);
  std::vector<double> want;
  for (double v : xv) {
    double e = std::exp(v);
    want.push_back((2 * e + 1 + std::cos(e)) * e);
  }
  EXPECT_TRUE(matches(x2.grad(), {2}, want, 1e-14, 0));
  // Two outputs sharing a subgraph, backward together.
  Tensor x3 = f64({2.0});
  Tensor s = x3 * x3;
  Tensor o1 = s * 3.0, o2 = exp(s);
  backward({o1.sum(), o2.sum()});
  EXPECT_TRUE(matches(x3.grad(), {1}, {3 * 2 * 2.0 + std::exp(4.0) * 2 * 2.0}, 1e-14, 0));
  // A wide fan-out: one leaf into many branches summed.
  Tensor x4 = f64({1.0});
  Tensor acc = zeros({1}, {.dtype = DType::f64});
  for (int i = 1; i <= 50; ++i) acc = acc + x4 * static_cast<double>(i);
  acc.sum().backward();
  EXPECT_TRUE(matches(x4.grad(), {1}, {50 * 51 / 2}, 0, 0));
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  const int n = 10000;
  Tensor x = f64({1.0});
  Tensor y = x;
  for (int i = 0; i < n; ++i) y = y * 1.0001 + 0.0;
  y.sum().backward();
  EXPECT_TRUE(matches(x.grad(), {1}, {std::pow(1.0001, n)}, 1e-10, 0));
  // Dropping a deep graph without running it is safe too, even on a thread with a small stack
  // (a recursive teardown needs well over 256 KiB for 10k nodes; 8 MiB overflowed at ~100k).
  {
    Tensor z = x;
    for (int i = 0; i < n; ++i) z = sin(z) * 1.0;
    Tensor w = z * 2.0;
    run_with_small_stack([&] {
      z = Tensor();
      w.sum().backward();  // the engine is iterative as well
      w = Tensor();
    });
  }
  // And a deep graph with create_graph (second order through the chain).
  Tensor u = f64({0.5});
  Tensor v = u;
  for (int i = 0; i < 2000; ++i) v = v * 1.0 + 0.0;
  Tensor g = grad((v * v * v).sum(), u, {.create_graph = true});
  EXPECT_TRUE(matches(grad(g.sum(), u), {1}, {6 * 0.5}, 1e-12, 0));
}

TEST(Autograd, GradientsOfViewsAccumulateIntoTheBase) {
  Tensor x = tensor({{1.0, 2.0, 3.0, 4.0}, {5.0, 6.0, 7.0, 8.0}, {9.0, 10.0, 11.0, 12.0}}, {.dtype = DType::f64});
  x.requires_grad_(true);
  Tensor a = x.slice(1, 0, 4, 2).sum() * 2.0;                                            // columns 0, 2: +2
  Tensor b = x.unsqueeze(0).expand({3, 3, 4}).sum();                                     // every element, 3 times: +3
  Tensor c = (x.permute({1, 0}).select(0, 1) * 5.0).sum();                               // column 1: +5
  Tensor d = (x.select(0, -1).narrow(0, 1, 2) * x.select(0, -1).narrow(0, 1, 2)).sum();  // row 2, cols 1-2: +2x
  (a + b + c + d).backward();
  std::vector<double> want;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      double v = 3 + (j % 2 == 0 ? 2 : 0) + (j == 1 ? 5 : 0);
      if (i == 2 && (j == 1 || j == 2)) v += 2 * (1 + i * 4 + j);
      want.push_back(v);
    }
  EXPECT_TRUE(matches(x.grad(), {3, 4}, want, 0, 0));
  // Views of a leaf are not leaves; their gradient flows back to it.
  Tensor v = x.reshape({12});
  EXPECT_FALSE(v.is_leaf());
  EXPECT_TRUE(matches(grad(v.slice(0, 0, 12, 5).sum(), x), {3, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, 0, 0));
}
