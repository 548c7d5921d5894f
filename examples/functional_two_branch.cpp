// A Functional model with two branches: a small convnet and a dense network read the same
// image; their features are merged with Add and Concatenate before the classifier.
//
//   functional_two_branch [--synthetic] [--data DIR] [--epochs 3] [--limit 10000] [--verbose 1]
//
// On Fashion-MNIST by default (Debian's dataset-fashion-mnist); --synthetic trains on generated
// images instead (each class a bright square at its own place on noise), which needs no files.
//
// In Keras:
//
//   inputs = keras.Input(shape=(28, 28, 1), name="image")
//   a = layers.Conv2D(16, 3, activation="relu", padding="same")(inputs)
//   a = layers.MaxPooling2D(2)(a)
//   a = layers.Conv2D(32, 3, activation="relu")(a)
//   a = layers.GlobalAveragePooling2D()(a)
//   b = layers.Flatten()(inputs)
//   b = layers.Dense(64, activation="relu")(b)
//   b = layers.Dense(32, activation="relu")(b)
//   added = layers.Add()([a, b])
//   merged = layers.Concatenate()([a, b, added])
//   x = layers.Dropout(0.3)(merged)
//   outputs = layers.Dense(10, activation="softmax")(x)
//   model = keras.Model(inputs, outputs, name="two_branch")
#include <glia/glia.h>

#include <iostream>
#include <random>

#include "example_args.h"

namespace {

/// n images [n, 28, 28, 1] in [0, 1]: noise plus, for class k, a 6x6 square at cell k of a 4x3 grid.
glia::datasets::Split synthetic(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> noise(0.0f, 0.3f);
  std::vector<float> x(static_cast<size_t>(n * 28 * 28));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t k = static_cast<int64_t>(gen() % 10);
    y[static_cast<size_t>(i)] = k;
    float* img = x.data() + i * 28 * 28;
    for (int p = 0; p < 28 * 28; ++p) img[p] = noise(gen);
    int64_t r0 = 1 + (k / 4) * 9, c0 = 1 + (k % 4) * 7;
    for (int64_t r = r0; r < r0 + 6; ++r)
      for (int64_t c = c0; c < c0 + 6; ++c) img[r * 28 + c] = 1.0f;
  }
  return {glia::tensor(x, {n, 28, 28, 1}), glia::tensor(y, {n})};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace glia;
  examples::Args args(argc, argv, {"--synthetic"});
  manual_seed(static_cast<uint64_t>(args.num("--seed", 42)));
  const int64_t limit = args.num("--limit", 10000);

  datasets::Split train, test;
  if (args.has("--synthetic")) {
    train = synthetic(limit > 0 ? limit : 10000, 1);
    test = synthetic(1000, 2);
  } else {
    try {
      datasets::Data d = datasets::fashion_mnist::load_data(args.str("--data", datasets::fashion_mnist::kDefaultDir));
      auto images = [](const Tensor& x) { return (x.to(float32) / 255.0).unsqueeze(-1); };
      train = {images(d.train.x), d.train.y.to(int64)};
      test = {images(d.test.x), d.test.y.to(int64)};
    } catch (const Error& e) {
      std::cerr << "functional_two_branch: " << e.what() << "\n(or run with --synthetic)\n";
      return 1;
    }
    if (limit > 0 && limit < train.x.size(0)) train = {train.x.narrow(0, 0, limit), train.y.narrow(0, 0, limit)};
  }

  KerasTensor inputs = Input({28, 28, 1}, float32, "image");
  KerasTensor a = layers::Conv2D(16, 3, {.padding = "same", .activation = "relu"})(inputs);
  a = layers::MaxPooling2D(2)(a);
  a = layers::Conv2D(32, 3, {.activation = "relu"})(a);
  a = layers::GlobalAveragePooling2D()(a);
  KerasTensor b = layers::Flatten()(inputs);
  b = layers::Dense(64, {.activation = "relu"})(b);
  b = layers::Dense(32, {.activation = "relu"})(b);
  KerasTensor added = layers::Add()({a, b});
  KerasTensor merged = layers::Concatenate()({a, b, added});
  KerasTensor x = layers::Dropout(0.3)(merged);
  KerasTensor outputs = layers::Dense(10, {.activation = "softmax"})(x);
  Model model(inputs, outputs, "two_branch");

  model.summary();
  model.compile(std::make_shared<optimizers::Adam>(2e-3), "sparse_categorical_crossentropy", {"accuracy"});
  model.fit(train.x, train.y,
            {.epochs = args.num("--epochs", 3),
             .batch_size = 64,
             .validation_split = 0.1,
             .verbose = static_cast<int>(args.num("--verbose", 1))});
  Logs score = model.evaluate(test.x, test.y, {.batch_size = 256, .verbose = 0});
  std::cout << "Test loss: " << score["loss"] << "\n";
  std::cout << "Test accuracy: " << score["accuracy"] << "\n";
  return 0;
}
