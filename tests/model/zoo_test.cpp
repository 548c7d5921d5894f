// Zoo models: the ResNet-18-style CIFAR network (structure, parameter count against the closed
// form, output shape, one CPU training step).
#include <glia/model/zoo.h>

#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

// BatchNormalization holds gamma, beta, moving mean and moving variance.
int64_t conv_bn_params(int64_t k, int64_t cin, int64_t cout) { return k * k * cin * cout + 4 * cout; }

int64_t resnet18_params(int64_t cin, int64_t classes) {
  int64_t n = conv_bn_params(3, cin, 64);
  int64_t prev = 64;
  for (int64_t f : {64, 128, 256, 512}) {
    n += conv_bn_params(3, prev, f) + conv_bn_params(3, f, f);  // first block
    if (f != prev) n += conv_bn_params(1, prev, f);             // projection shortcut
    n += 2 * conv_bn_params(3, f, f);                           // second block
    prev = f;
  }
  return n + 512 * classes + classes;
}

int count_layers(Model& m, const std::string& cls) {
  int n = 0;
  for (const LayerPtr& l : m.layers()) n += l->class_name() == cls;
  return n;
}

TEST(ZooResnet18Cifar, StructureAndParameterCount) {
  auto m = zoo::resnet18_cifar();
  EXPECT_EQ(m->class_name(), "Functional");
  EXPECT_EQ(m->count_params(), resnet18_params(3, 10));
  EXPECT_GT(m->count_params(), 11'000'000);
  // 1 stem + 16 block convolutions + 3 projections, each followed by batch normalization.
  EXPECT_EQ(count_layers(*m, "Conv2D"), 20);
  EXPECT_EQ(count_layers(*m, "BatchNormalization"), 20);
  EXPECT_EQ(count_layers(*m, "Add"), 8);
  EXPECT_EQ(count_layers(*m, "GlobalAveragePooling2D"), 1);
  EXPECT_EQ(count_layers(*m, "Dense"), 1);
  auto small = zoo::resnet18_cifar({16, 16, 1}, 7);
  EXPECT_EQ(small->count_params(), resnet18_params(1, 7));
}

TEST(ZooResnet18Cifar, OutputShapeAndOneTrainingStep) {
  manual_seed(1);
  auto m = zoo::resnet18_cifar();
  Tensor x = uniform({2, 32, 32, 3}, 0, 1, DType::f32);
  Tensor y = tensor(std::vector<int64_t>{3, 7}, {2});
  Tensor p = m->predict(x, {.batch_size = 2, .verbose = 0});
  EXPECT_EQ(p.shape(), (Shape{2, 10}));
  // Softmax output: every row is a distribution.
  auto pv = values(p);
  for (int r = 0; r < 2; ++r) {
    double s = 0;
    for (int c = 0; c < 10; ++c) {
      EXPECT_GE(pv[static_cast<size_t>(r * 10 + c)], 0.0);
      s += pv[static_cast<size_t>(r * 10 + c)];
    }
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
  std::vector<Tensor> before;
  for (Variable* v : m->weights()) before.push_back(v->value.clone());
  m->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy"});
  m->fit(x, y, {.epochs = 1, .batch_size = 2, .verbose = 0});
  auto w = m->weights();
  ASSERT_EQ(w.size(), before.size());
  int changed = 0, trainable = 0, moving_means = 0, moved_means = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const bool same = static_cast<bool>(all_close(w[i]->value, before[i], 0, 0));
    if (w[i]->trainable) {
      ++trainable;
      changed += !same;
    } else if (w[i]->name == "moving_mean") {
      ++moving_means;
      moved_means += !same;
    }
  }
  EXPECT_EQ(trainable, 20 + 2 * 20 + 2);  // conv kernels, gamma and beta, dense kernel and bias
  EXPECT_EQ(changed, trainable) << "Adam moves every trainable weight on the first step";
  // The training step used batch statistics and updated the moving averages.
  EXPECT_EQ(moving_means, 20);
  EXPECT_EQ(moved_means, moving_means);
}

}  // namespace
