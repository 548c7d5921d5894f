// Ready-made datasets from local files, as keras.datasets (x, y as uint8 like
// Keras), and keras.utils.to_categorical.
#pragma once

#include <string>

#include "glia/core/tensor.h"

namespace glia::datasets {

struct Split {
  Tensor x, y;
};
struct Data {
  Split train, test;
};

namespace mnist {
/// MNIST from `dir` (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-... , raw or .gz):
/// x uint8 [N, 28, 28], y uint8 [N].
Data load_data(const std::string& dir);
}  // namespace mnist

namespace fashion_mnist {
/// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr const char* kDefaultDir = "/usr/share/datasets/fashion-mnist";
/// Fashion-MNIST (the MNIST file layout): x uint8 [N, 28, 28], y uint8 [N].
Data load_data(const std::string& dir = kDefaultDir);
}  // namespace fashion_mnist

namespace cifar10 {
/// CIFAR-10's binary version from `dir` (or its cifar-10-batches-bin subfolder): data_batch_1.bin ..
/// data_batch_5.bin and test_batch.bin. x uint8 [N, 32, 32, 3] (NHWC), y uint8 [N, 1], like Keras.
Data load_data(const std::string& dir);
}  // namespace cifar10

}  // namespace glia::datasets

namespace glia::utils {

/// One-hot float32 encoding of integer labels (keras.utils.to_categorical): shape y.shape + [num_classes],
/// a trailing dim of 1 dropped first ([N, 1] -> [N, num_classes]). num_classes -1: max label + 1.
Tensor to_categorical(const Tensor& y, int64_t num_classes = -1);

}  // namespace glia::utils
