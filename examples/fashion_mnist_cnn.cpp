// A convnet on Fashion-MNIST: Keras's "Simple MNIST convnet" example (keras.io/examples/vision/
// mnist_convnet, by fchollet) translated line by line, on Fashion-MNIST's files.
//
//   fashion_mnist_cnn [--epochs 15] [--batch-size 128] [--limit N] [--data DIR] [--verbose 1]
//
// --limit N trains on the first N training images only (the test set stays whole). The data comes
// from Debian's dataset-fashion-mnist package unless --data names another directory.
//
// The Keras original:
//
//   num_classes = 10
//   input_shape = (28, 28, 1)
//   (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
//   x_train = x_train.astype("float32") / 255
//   x_test = x_test.astype("float32") / 255
//   x_train = np.expand_dims(x_train, -1)
//   x_test = np.expand_dims(x_test, -1)
//   print("x_train shape:", x_train.shape)
//   print(x_train.shape[0], "train samples")
//   print(x_test.shape[0], "test samples")
//   y_train = keras.utils.to_categorical(y_train, num_classes)
//   y_test = keras.utils.to_categorical(y_test, num_classes)
//   model = keras.Sequential(
//       [
//           keras.Input(shape=input_shape),
//           layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
//           layers.MaxPooling2D(pool_size=(2, 2)),
//           layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
//           layers.MaxPooling2D(pool_size=(2, 2)),
//           layers.Flatten(),
//           layers.Dropout(0.5),
//           layers.Dense(num_classes, activation="softmax"),
//       ]
//   )
//   model.summary()
//   batch_size = 128
//   epochs = 15
//   model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
//   model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)
//   score = model.evaluate(x_test, y_test, verbose=0)
//   print("Test loss:", score[0])
//   print("Test accuracy:", score[1])
#include <glia/glia.h>

#include <iostream>

#include "example_args.h"

int main(int argc, char** argv) {
  using namespace glia;
  examples::Args args(argc, argv);
  manual_seed(static_cast<uint64_t>(args.num("--seed", 42)));

  // Model / data parameters
  const int64_t num_classes = 10;
  const Shape input_shape = {28, 28, 1};

  // Load the data and split it between train and test sets
  datasets::Data data;
  try {
    data = datasets::fashion_mnist::load_data(args.str("--data", datasets::fashion_mnist::kDefaultDir));
  } catch (const Error& e) {
    std::cerr << "fashion_mnist_cnn: " << e.what() << "\n";
    return 1;
  }
  Tensor x_train = data.train.x, y_train = data.train.y, x_test = data.test.x, y_test = data.test.y;
  if (int64_t limit = args.num("--limit", 0); limit > 0 && limit < x_train.size(0)) {
    x_train = x_train.narrow(0, 0, limit);
    y_train = y_train.narrow(0, 0, limit);
  }

  // Scale images to the [0, 1] range
  x_train = x_train.to(float32) / 255.0;
  x_test = x_test.to(float32) / 255.0;
  // Make sure images have shape (28, 28, 1)
  x_train = x_train.unsqueeze(-1);
  x_test = x_test.unsqueeze(-1);
  std::cout << "x_train shape: " << to_string(x_train.shape()) << "\n";
  std::cout << x_train.size(0) << " train samples\n";
  std::cout << x_test.size(0) << " test samples\n";

  // convert class vectors to binary class matrices
  y_train = utils::to_categorical(y_train, num_classes);
  y_test = utils::to_categorical(y_test, num_classes);

  Sequential model({
      layers::InputLayer(input_shape),
      layers::Conv2D(32, {3, 3}, {.activation = "relu"}),
      layers::MaxPooling2D({2, 2}),
      layers::Conv2D(64, {3, 3}, {.activation = "relu"}),
      layers::MaxPooling2D({2, 2}),
      layers::Flatten(),
      layers::Dropout(0.5),
      layers::Dense(num_classes, {.activation = "softmax"}),
  });

  model.summary();

  const int64_t batch_size = args.num("--batch-size", 128);
  const int64_t epochs = args.num("--epochs", 15);

  model.compile("adam", "categorical_crossentropy", {"accuracy"});

  model.fit(x_train, y_train,
            {.epochs = epochs,
             .batch_size = batch_size,
             .validation_split = 0.1,
             .verbose = static_cast<int>(args.num("--verbose", 1))});

  Logs score = model.evaluate(x_test, y_test, {.batch_size = 256, .verbose = 0});
  std::cout << "Test loss: " << score["loss"] << "\n";
  std::cout << "Test accuracy: " << score["accuracy"] << "\n";
  return 0;
}
