// keras.datasets-style loaders on files written here in the exact formats,
// the real Fashion-MNIST when installed, and to_categorical.
#include <gmock/gmock.h>

#include <filesystem>
#include <random>

#include "data/data_testing.h"
#include "testing.h"

using namespace glia;
using namespace glia::data_testing;
using ::testing::HasSubstr;

namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(g());
  return v;
}

template <class F>
std::string io_error_of(F&& f) {
  try {
    f();
  } catch (const IOError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

struct MnistFiles {
  std::vector<uint8_t> train_x, train_y, test_x, test_y;
};

// Writes MNIST-layout files with n_train / n_test examples; `gz` picks which are compressed.
MnistFiles write_mnist(const std::string& dir, int64_t n_train, int64_t n_test, bool gz_train, bool gz_test) {
  MnistFiles m{random_bytes(n_train * 784, 1), random_bytes(n_train, 2), random_bytes(n_test * 784, 3),
               random_bytes(n_test, 4)};
  for (auto& y : m.train_y) y %= 10;
  for (auto& y : m.test_y) y %= 10;
  auto name = [](const std::string& n, bool gz) { return gz ? n + ".gz" : n; };
  write_file(dir + "/" + name("train-images-idx3-ubyte", gz_train), idx_bytes(0x08, {n_train, 28, 28}, m.train_x),
             gz_train);
  write_file(dir + "/" + name("train-labels-idx1-ubyte", gz_train), idx_bytes(0x08, {n_train}, m.train_y), gz_train);
  write_file(dir + "/" + name("t10k-images-idx3-ubyte", gz_test), idx_bytes(0x08, {n_test, 28, 28}, m.test_x), gz_test);
  write_file(dir + "/" + name("t10k-labels-idx1-ubyte", gz_test), idx_bytes(0x08, {n_test}, m.test_y), gz_test);
  return m;
}

// A CIFAR-10 record: label, then the R, G and B planes of 32x32 row-major.
std::vector<uint8_t> cifar_records(int64_t n, uint32_t seed) {
  std::vector<uint8_t> out = random_bytes(static_cast<size_t>(n) * 3073, seed);
  for (int64_t r = 0; r < n; ++r) out[static_cast<size_t>(r) * 3073] %= 10;
  return out;
}

}  // namespace

TEST(Datasets, MnistRawAndGzipFiles) {
  for (bool gz : {false, true}) {
    const std::string dir = glia::testing::temp_dir();
    MnistFiles m = write_mnist(dir, 5, 3, gz, !gz);
    datasets::Data d = datasets::mnist::load_data(dir);
    EXPECT_EQ(d.train.x.shape(), (Shape{5, 28, 28}));
    EXPECT_EQ(d.train.x.dtype(), DType::u8);
    EXPECT_EQ(d.train.y.shape(), (Shape{5}));
    EXPECT_EQ(d.train.y.dtype(), DType::u8);
    EXPECT_EQ(d.test.x.shape(), (Shape{3, 28, 28}));
    EXPECT_EQ(d.test.y.shape(), (Shape{3}));
    EXPECT_EQ(d.train.x.to_vector<uint8_t>(), m.train_x);
    EXPECT_EQ(d.train.y.to_vector<uint8_t>(), m.train_y);
    EXPECT_EQ(d.test.x.to_vector<uint8_t>(), m.test_x);
    EXPECT_EQ(d.test.y.to_vector<uint8_t>(), m.test_y);
    // The same layout loads as Fashion-MNIST from another directory.
    EXPECT_EQ(datasets::fashion_mnist::load_data(dir).test.y.to_vector<uint8_t>(), m.test_y);
  }
}

TEST(Datasets, MnistMissingOrInconsistentFiles) {
  const std::string missing = glia::testing::temp_dir() + "/not-here";
  std::string msg = io_error_of([&] { datasets::fashion_mnist::load_data(missing); });
  EXPECT_THAT(msg, HasSubstr(missing));
  EXPECT_THAT(msg, HasSubstr("dataset-fashion-mnist"));
  EXPECT_THAT(msg, HasSubstr("--data"));
  msg = io_error_of([&] { datasets::mnist::load_data(missing); });
  EXPECT_THAT(msg, HasSubstr(missing));
  EXPECT_THAT(msg, HasSubstr("MNIST"));

  // A directory without the label file.
  {
    const std::string dir = glia::testing::temp_dir();
    write_mnist(dir, 2, 2, false, false);
    std::filesystem::remove(dir + "/t10k-labels-idx1-ubyte");
    msg = io_error_of([&] { datasets::fashion_mnist::load_data(dir); });
    EXPECT_THAT(msg, HasSubstr(dir + "/t10k-labels-idx1-ubyte"));
    EXPECT_THAT(msg, HasSubstr("dataset-fashion-mnist"));
  }
  // More labels than images.
  {
    const std::string dir = glia::testing::temp_dir();
    write_mnist(dir, 4, 2, false, false);
    write_file(dir + "/train-labels-idx1-ubyte", idx_bytes(0x08, {5}, {1, 2, 3, 4, 5}));
    msg = io_error_of([&] { datasets::mnist::load_data(dir); });
    EXPECT_THAT(msg, HasSubstr("train-labels-idx1-ubyte"));
    EXPECT_THAT(msg, HasSubstr("5 labels"));
    EXPECT_THAT(msg, HasSubstr("4 images"));
  }
  // Images of the wrong type or rank; a truncated image file.
  {
    const std::string dir = glia::testing::temp_dir();
    write_mnist(dir, 2, 2, false, false);
    write_file(dir + "/t10k-images-idx3-ubyte", idx_bytes(0x0C, {2, 2}, std::vector<uint8_t>(16, 0)));
    msg = io_error_of([&] { datasets::mnist::load_data(dir); });
    EXPECT_THAT(msg, HasSubstr("t10k-images-idx3-ubyte"));
    EXPECT_THAT(msg, HasSubstr("expected uint8 images"));
    write_file(dir + "/t10k-images-idx3-ubyte", idx_bytes(0x08, {2, 28, 28}, std::vector<uint8_t>(100, 0)));
    msg = io_error_of([&] { datasets::mnist::load_data(dir); });
    EXPECT_THAT(msg, HasSubstr("expected 1584 bytes of data, file has 116"));
  }
}

TEST(Datasets, Cifar10RecordsToNhwc) {
  const std::string root = glia::testing::temp_dir();
  const std::string dir = root + "/cifar-10-batches-bin";  // the folder the tarball unpacks to
  std::filesystem::create_directory(dir);
  const std::vector<int64_t> counts = {2, 1, 3, 1, 2};
  std::vector<std::vector<uint8_t>> files;
  for (size_t i = 0; i < counts.size(); ++i) {
    files.push_back(cifar_records(counts[i], static_cast<uint32_t>(10 + i)));
    write_file(dir + "/data_batch_" + std::to_string(i + 1) + ".bin", files.back());
  }
  std::vector<uint8_t> test = cifar_records(4, 99);
  write_file(dir + "/test_batch.bin", test);

  for (const std::string& d : {dir, root}) {
    datasets::Data data = datasets::cifar10::load_data(d);
    ASSERT_EQ(data.train.x.shape(), (Shape{9, 32, 32, 3}));
    EXPECT_EQ(data.train.x.dtype(), DType::u8);
    ASSERT_EQ(data.train.y.shape(), (Shape{9, 1}));
    EXPECT_EQ(data.train.y.dtype(), DType::u8);
    ASSERT_EQ(data.test.x.shape(), (Shape{4, 32, 32, 3}));
    ASSERT_EQ(data.test.y.shape(), (Shape{4, 1}));
    auto check = [](const datasets::Split& s, const std::vector<const std::vector<uint8_t>*>& srcs) {
      auto x = s.x.to_vector<uint8_t>();
      auto y = s.y.to_vector<uint8_t>();
      size_t n = 0;
      for (const auto* f : srcs) {
        for (size_t r = 0; r < f->size() / 3073; ++r, ++n) {
          const uint8_t* rec = f->data() + r * 3073;
          ASSERT_EQ(y[n], rec[0]);
          for (size_t h = 0; h < 32; ++h)
            for (size_t w = 0; w < 32; ++w)
              for (size_t c = 0; c < 3; ++c)
                ASSERT_EQ(x[((n * 32 + h) * 32 + w) * 3 + c], rec[1 + c * 1024 + h * 32 + w])
                    << n << " " << h << " " << w << " " << c;
        }
      }
      EXPECT_EQ(n, y.size());
    };
    check(data.train, {&files[0], &files[1], &files[2], &files[3], &files[4]});
    check(data.test, {&test});
  }
}

TEST(Datasets, Cifar10BadFiles) {
  const std::string dir = glia::testing::temp_dir();
  for (int i = 1; i <= 5; ++i) write_file(dir + "/data_batch_" + std::to_string(i) + ".bin", cifar_records(1, 1));
  write_file(dir + "/test_batch.bin", cifar_records(1, 2));
  EXPECT_EQ(datasets::cifar10::load_data(dir).train.x.size(0), 5);

  // Two records and part of a third.
  auto cut = cifar_records(3, 3);
  cut.resize(2 * 3073 + 100);
  write_file(dir + "/data_batch_3.bin", cut);
  std::string msg = io_error_of([&] { datasets::cifar10::load_data(dir); });
  EXPECT_THAT(msg, HasSubstr(dir + "/data_batch_3.bin"));
  EXPECT_THAT(msg, HasSubstr("2 whole records"));
  EXPECT_THAT(msg, HasSubstr("truncated"));
  // Empty file, a label out of 0..9, a missing file, a missing directory.
  write_file(dir + "/data_batch_3.bin", {});
  EXPECT_THAT(io_error_of([&] { datasets::cifar10::load_data(dir); }), HasSubstr("is empty"));
  auto bad = cifar_records(2, 4);
  bad[3073] = 10;
  write_file(dir + "/data_batch_3.bin", bad);
  msg = io_error_of([&] { datasets::cifar10::load_data(dir); });
  EXPECT_THAT(msg, HasSubstr("data_batch_3.bin"));
  EXPECT_THAT(msg, HasSubstr("record 1 has label 10"));
  write_file(dir + "/data_batch_3.bin", cifar_records(1, 5));
  std::filesystem::remove(dir + "/test_batch.bin");
  EXPECT_THAT(io_error_of([&] { datasets::cifar10::load_data(dir); }), HasSubstr(dir + "/test_batch.bin"));
  EXPECT_THAT(io_error_of([&] { datasets::cifar10::load_data(dir + "/nothing"); }), HasSubstr("--data"));
}

TEST(Datasets, FashionMnistRealData) {
  if (!std::filesystem::is_directory(datasets::fashion_mnist::kDefaultDir))
    GTEST_SKIP() << datasets::fashion_mnist::kDefaultDir << " is missing (Debian package dataset-fashion-mnist)";
  datasets::Data d = datasets::fashion_mnist::load_data();
  ASSERT_EQ(d.train.x.shape(), (Shape{60000, 28, 28}));
  ASSERT_EQ(d.train.y.shape(), (Shape{60000}));
  ASSERT_EQ(d.test.x.shape(), (Shape{10000, 28, 28}));
  ASSERT_EQ(d.test.y.shape(), (Shape{10000}));
  EXPECT_EQ(d.train.x.dtype(), DType::u8);
  EXPECT_EQ(d.train.y.dtype(), DType::u8);
  for (const datasets::Split* s : {&d.train, &d.test}) {
    std::vector<int64_t> per_class(10, 0);
    for (uint8_t y : s->y.to_vector<uint8_t>()) {
      ASSERT_LT(y, 10);
      ++per_class[y];
    }
    const int64_t each = s->y.size(0) / 10;  // both splits are balanced: 6000 and 1000 per class
    EXPECT_EQ(per_class, std::vector<int64_t>(10, each));
    auto px = s->x.to_vector<uint8_t>();
    EXPECT_EQ(*std::min_element(px.begin(), px.end()), 0);
    EXPECT_EQ(*std::max_element(px.begin(), px.end()), 255);
    // Images are not all alike: the mean pixel is that of clothing on black, not 0 or 255.
    double mean = 0;
    for (uint8_t p : px) mean += p;
    mean /= static_cast<double>(px.size());
    EXPECT_GT(mean, 50);
    EXPECT_LT(mean, 100);
  }
}

TEST(Datasets, ToCategorical) {
  Tensor y = tensor({2, 0, 1, 2}, {4}, {.dtype = DType::u8});
  Tensor c = utils::to_categorical(y);
  EXPECT_EQ(c.dtype(), DType::f32);
  EXPECT_EQ(c.shape(), (Shape{4, 3}));
  EXPECT_TRUE(glia::testing::all_close(c, {0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1}));
  EXPECT_EQ(utils::to_categorical(y, 5).shape(), (Shape{4, 5}));
  // [N, 1] labels (CIFAR-10's y) lose the trailing 1, as Keras.
  Tensor col = tensor({1, 3}, {2, 1}, {.dtype = DType::i32});
  Tensor cc = utils::to_categorical(col, 4);
  EXPECT_EQ(cc.shape(), (Shape{2, 4}));
  EXPECT_TRUE(glia::testing::all_close(cc, {0, 1, 0, 0, 0, 0, 0, 1}));
  // Other shapes keep their dims; strided views and whole-number floats work.
  Tensor m = tensor({0, 1, 2, 3, 4, 5}, {2, 3}).t();
  Tensor cm = utils::to_categorical(m);
  EXPECT_EQ(cm.shape(), (Shape{3, 2, 6}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 6; ++k) EXPECT_EQ(cm.at<float>({i, j, k}), k == j * 3 + i ? 1.f : 0.f);
  EXPECT_TRUE(glia::testing::all_close(utils::to_categorical(tensor({1.0, 0.0})), {0, 1, 1, 0}));
  EXPECT_EQ(utils::to_categorical(scalar_tensor(2, {.dtype = DType::i64}), 3).shape(), (Shape{3}));

  auto value_error = [](auto f) {
    try {
      f();
    } catch (const ValueError& e) {
      return std::string(e.what());
    }
    return std::string("no ValueError");
  };
  EXPECT_THAT(value_error([&] { utils::to_categorical(y, 2); }), HasSubstr("label 2 at index 0 is out of range"));
  EXPECT_THAT(value_error([&] { utils::to_categorical(tensor({1, -1})); }), HasSubstr("label -1 at index 1"));
  EXPECT_THAT(value_error([&] { utils::to_categorical(tensor({1.5f})); }), HasSubstr("not an integer"));
  EXPECT_THAT(value_error([&] { utils::to_categorical(zeros({0}, {.dtype = DType::i64})); }), HasSubstr("empty"));
  EXPECT_THAT(value_error([&] { utils::to_categorical(y, 0); }), HasSubstr("num_classes"));
  EXPECT_EQ(utils::to_categorical(zeros({0}, {.dtype = DType::i64}), 3).shape(), (Shape{0, 3}));
}
