// The MLP of TensorFlow's "TensorFlow 2 quickstart for beginners" (tensorflow.org/tutorials/
// quickstart/beginner), translated line by line, on MNIST or Fashion-MNIST.
//
//   mnist_mlp [--dataset fashion_mnist|mnist] [--data DIR] [--epochs 5] [--limit N] [--verbose 1]
//
// Fashion-MNIST (the default) comes from Debian's dataset-fashion-mnist package; for MNIST pass the
// directory of its four IDX files with --data.
//
// The Keras original:
//
//   mnist = tf.keras.datasets.mnist
//   (x_train, y_train), (x_test, y_test) = mnist.load_data()
//   x_train, x_test = x_train / 255.0, x_test / 255.0
//
//   model = tf.keras.models.Sequential([
//     tf.keras.layers.Flatten(input_shape=(28, 28)),
//     tf.keras.layers.Dense(128, activation='relu'),
//     tf.keras.layers.Dropout(0.2),
//     tf.keras.layers.Dense(10)
//   ])
//
//   predictions = model(x_train[:1]).numpy()
//   tf.nn.softmax(predictions).numpy()
//
//   loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
//   loss_fn(y_train[:1], predictions).numpy()
//
//   model.compile(optimizer='adam',
//                 loss=loss_fn,
//                 metrics=['accuracy'])
//
//   model.fit(x_train, y_train, epochs=5)
//
//   model.evaluate(x_test,  y_test, verbose=2)
//
//   probability_model = tf.keras.Sequential([
//     model,
//     tf.keras.layers.Softmax()
//   ])
//   probability_model(x_test[:5])
#include <glia/glia.h>

#include <iostream>

#include "example_args.h"

int main(int argc, char** argv) {
  using namespace glia;
  examples::Args args(argc, argv);
  manual_seed(static_cast<uint64_t>(args.num("--seed", 42)));
  const std::string dataset = args.str("--dataset", "fashion_mnist");

  datasets::Data data;
  try {
    if (dataset == "mnist") {
      if (!args.has("--data")) {
        std::cerr << "mnist_mlp: pass the directory of the MNIST files with --data DIR (or --dataset fashion_mnist)\n";
        return 2;
      }
      data = datasets::mnist::load_data(args.str("--data", ""));
    } else if (dataset == "fashion_mnist") {
      data = datasets::fashion_mnist::load_data(args.str("--data", datasets::fashion_mnist::kDefaultDir));
    } else {
      std::cerr << "mnist_mlp: unknown --dataset '" << dataset << "': expected mnist or fashion_mnist\n";
      return 2;
    }
  } catch (const Error& e) {
    std::cerr << "mnist_mlp: " << e.what() << "\n";
    return 1;
  }
  Tensor x_train = data.train.x, y_train = data.train.y, x_test = data.test.x, y_test = data.test.y;
  if (int64_t limit = args.num("--limit", 0); limit > 0 && limit < x_train.size(0)) {
    x_train = x_train.narrow(0, 0, limit);
    y_train = y_train.narrow(0, 0, limit);
  }
  x_train = x_train.to(float32) / 255.0;
  x_test = x_test.to(float32) / 255.0;

  auto model = std::make_shared<Sequential>(std::vector<LayerPtr>{
      layers::InputLayer({28, 28}),  // Keras's input_shape=(28, 28) on Flatten
      layers::Flatten(),
      layers::Dense(128, {.activation = "relu"}),
      layers::Dropout(0.2),
      layers::Dense(10),
  });

  // The untrained model on the first image: logits, their softmax, and the loss (near
  // -log(1/10) = 2.3 where the probabilities are close to uniform).
  Tensor predictions = (*model)(x_train.narrow(0, 0, 1)).detach();
  std::cout << "predictions (logits) for the first image:\n" << predictions << "\n";
  std::cout << "softmax:\n" << softmax(predictions) << "\n";

  auto loss_fn = std::make_shared<losses::SparseCategoricalCrossentropy>(losses::LossOptions{.from_logits = true});
  std::cout << "untrained loss on it: " << (*loss_fn)(y_train.narrow(0, 0, 1), predictions).item<float>() << "\n";

  model->compile("adam", loss_fn, {"accuracy"});

  model->fit(x_train, y_train,
             {.epochs = args.num("--epochs", 5), .verbose = static_cast<int>(args.num("--verbose", 1))});

  Logs test = model->evaluate(x_test, y_test, {.verbose = 2});

  // Keras's Softmax layer is an Activation("softmax") here.
  Sequential probability_model({model, layers::Activation("softmax")});
  std::cout << "probabilities for the first five test images:\n"
            << probability_model(x_test.narrow(0, 0, 5)).detach() << "\n";
  std::cout << "Test accuracy: " << test["accuracy"] << "\n";
  return 0;
}
