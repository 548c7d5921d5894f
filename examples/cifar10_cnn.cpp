// The CNN of TensorFlow's "Convolutional Neural Network (CNN)" tutorial on CIFAR-10
// (tensorflow.org/tutorials/images/cnn), translated line by line (the plots left out).
//
//   cifar10_cnn DIR [--epochs 10] [--limit N] [--verbose 1]
//
// DIR holds CIFAR-10's binary version (data_batch_1.bin .. data_batch_5.bin, test_batch.bin, or
// the cifar-10-batches-bin folder they come in): https://www.cs.toronto.edu/~kriz/cifar.html,
// "CIFAR-10 binary version (suitable for C programs)".
//
// The Keras original:
//
//   (train_images, train_labels), (test_images, test_labels) = datasets.cifar10.load_data()
//
//   # Normalize pixel values to be between 0 and 1
//   train_images, test_images = train_images / 255.0, test_images / 255.0
//
//   model = models.Sequential()
//   model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)))
//   model.add(layers.MaxPooling2D((2, 2)))
//   model.add(layers.Conv2D(64, (3, 3), activation='relu'))
//   model.add(layers.MaxPooling2D((2, 2)))
//   model.add(layers.Conv2D(64, (3, 3), activation='relu'))
//
//   model.summary()
//
//   model.add(layers.Flatten())
//   model.add(layers.Dense(64, activation='relu'))
//   model.add(layers.Dense(10))
//
//   model.summary()
//
//   model.compile(optimizer='adam',
//                 loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
//                 metrics=['accuracy'])
//
//   history = model.fit(train_images, train_labels, epochs=10,
//                       validation_data=(test_images, test_labels))
//
//   test_loss, test_acc = model.evaluate(test_images,  test_labels, verbose=2)
//
//   print(test_acc)
#include <glia/glia.h>

#include <filesystem>
#include <iostream>

#include "example_args.h"

int main(int argc, char** argv) {
  using namespace glia;
  examples::Args args(argc, argv);
  if (args.positional.size() != 1) {
    std::cerr << "usage: cifar10_cnn DIR [--epochs 10] [--limit N] [--verbose 1]\n"
                 "  DIR: the directory of CIFAR-10's binary version (data_batch_1.bin .. data_batch_5.bin,\n"
                 "  test_batch.bin), from https://www.cs.toronto.edu/~kriz/cifar.html\n";
    return 2;
  }
  const std::string dir = args.positional[0];
  if (!std::filesystem::is_directory(dir)) {
    std::cerr << "cifar10_cnn: no CIFAR-10 data: '" << dir << "' is not a directory. Download the binary version "
              << "(cifar-10-binary.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html, extract it and pass "
              << "the directory that holds data_batch_1.bin .. test_batch.bin\n";
    return 1;
  }
  manual_seed(static_cast<uint64_t>(args.num("--seed", 42)));

  datasets::Data data;
  try {
    data = datasets::cifar10::load_data(dir);
  } catch (const Error& e) {
    std::cerr << "cifar10_cnn: " << e.what() << "\n";
    return 1;
  }
  Tensor train_images = data.train.x, train_labels = data.train.y;
  Tensor test_images = data.test.x, test_labels = data.test.y;
  if (int64_t limit = args.num("--limit", 0); limit > 0 && limit < train_images.size(0)) {
    train_images = train_images.narrow(0, 0, limit);
    train_labels = train_labels.narrow(0, 0, limit);
  }

  // Normalize pixel values to be between 0 and 1
  train_images = train_images.to(float32) / 255.0;
  test_images = test_images.to(float32) / 255.0;

  Sequential model;
  model.add(layers::InputLayer({32, 32, 3}));  // Keras's input_shape=(32, 32, 3) on the first layer
  model.add(layers::Conv2D(32, {3, 3}, {.activation = "relu"}));
  model.add(layers::MaxPooling2D({2, 2}));
  model.add(layers::Conv2D(64, {3, 3}, {.activation = "relu"}));
  model.add(layers::MaxPooling2D({2, 2}));
  model.add(layers::Conv2D(64, {3, 3}, {.activation = "relu"}));

  model.summary();

  model.add(layers::Flatten());
  model.add(layers::Dense(64, {.activation = "relu"}));
  model.add(layers::Dense(10));

  model.summary();

  model.compile("adam",
                std::make_shared<losses::SparseCategoricalCrossentropy>(losses::LossOptions{.from_logits = true}),
                {"accuracy"});

  auto history = model.fit(train_images, train_labels,
                           {.epochs = args.num("--epochs", 10),
                            .validation_data = {test_images, test_labels},
                            .verbose = static_cast<int>(args.num("--verbose", 1))});

  Logs test = model.evaluate(test_images, test_labels, {.verbose = 2});

  std::cout << test["accuracy"] << "\n";
  return 0;
}
