// keras.datasets-style loaders for files on disk, and to_categorical.
#include "glia/data/datasets.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "glia/data/readers.h"

namespace glia::datasets {
namespace {

namespace fs = std::filesystem;

void check_dir(const std::string& dir, const char* what, const std::string& hint) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw IOError(dir, detail::str(what, " directory not found; ", hint));
}

// `name` or `name.gz` in dir.
std::string find_file(const std::string& dir, const std::string& name, const std::string& hint) {
  std::error_code ec;
  for (const std::string& n : {name, name + ".gz"}) {
    fs::path p = fs::path(dir) / n;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  throw IOError((fs::path(dir) / name).string(), detail::str("not found (nor ", name, ".gz); ", hint));
}

Split load_idx_split(const std::string& dir, const std::string& prefix, const std::string& hint) {
  const std::string xp = find_file(dir, prefix + "-images-idx3-ubyte", hint);
  const std::string yp = find_file(dir, prefix + "-labels-idx1-ubyte", hint);
  Tensor x = data::read_idx(xp);
  Tensor y = data::read_idx(yp);
  if (x.dtype() != DType::u8 || x.dim() != 3) {
    throw IOError(xp, detail::str("expected uint8 images [N, rows, cols], got ", x.dtype(), " ", x.shape()));
  }
  if (y.dtype() != DType::u8 || y.dim() != 1) {
    throw IOError(yp, detail::str("expected uint8 labels [N], got ", y.dtype(), " ", y.shape()));
  }
  if (x.size(0) != y.size(0)) {
    throw IOError(yp, detail::str("has ", y.size(0), " labels but ", xp, " has ", x.size(0), " images"));
  }
  return {x, y};
}

Data load_idx_data(const std::string& dir, const char* what, const std::string& hint) {
  check_dir(dir, what, hint);
  return {load_idx_split(dir, "train", hint), load_idx_split(dir, "t10k", hint)};
}

constexpr int64_t kCifarPixels = 32 * 32 * 3;
constexpr int64_t kCifarRecord = 1 + kCifarPixels;

// One CIFAR-10 binary file, checked to hold whole records.
struct CifarFile {
  std::string path, bytes;
  int64_t records;
};

CifarFile read_cifar_file(const std::string& path) {
  std::string bytes = data::read_file_bytes(path);
  const auto size = static_cast<int64_t>(bytes.size());
  if (size == 0) throw IOError(path, detail::str("is empty, expected records of ", kCifarRecord, " bytes"));
  if (size % kCifarRecord != 0) {
    throw IOError(
        path, detail::str("truncated: ", size, " bytes hold ", size / kCifarRecord, " whole records of ", kCifarRecord,
                          " bytes (1 label + 3072 pixels) and ", size % kCifarRecord, " bytes of a partial record"));
  }
  return {path, std::move(bytes), size / kCifarRecord};
}

Split load_cifar_split(const std::vector<CifarFile>& files) {
  int64_t n = 0;
  for (const auto& f : files) n += f.records;
  Tensor x = Tensor::empty({n, 32, 32, 3}, DType::u8);
  Tensor y = Tensor::empty({n, 1}, DType::u8);
  uint8_t* xd = x.data<uint8_t>();
  uint8_t* yd = y.data<uint8_t>();
  int64_t row = 0;
  for (const auto& f : files) {
    const auto* b = reinterpret_cast<const uint8_t*>(f.bytes.data());
    for (int64_t r = 0; r < f.records; ++r, ++row) {
      const uint8_t* rec = b + r * kCifarRecord;
      if (rec[0] > 9) {
        throw IOError(f.path, detail::str("record ", r, " has label ", int(rec[0]), ", expected 0..9"));
      }
      yd[row] = rec[0];
      // The file stores three 32x32 planes (R, G, B); Keras's layout is pixel-major (NHWC).
      uint8_t* out = xd + row * kCifarPixels;
      for (int64_t c = 0; c < 3; ++c) {
        const uint8_t* plane = rec + 1 + c * 1024;
        for (int64_t p = 0; p < 1024; ++p) out[p * 3 + c] = plane[p];
      }
    }
  }
  return {x, y};
}

}  // namespace

namespace mnist {
Data load_data(const std::string& dir) {
  return load_idx_data(dir, "MNIST",
                       "pass the directory that holds the MNIST files train-images-idx3-ubyte(.gz), "
                       "train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) "
                       "(--data for the command line)");
}
}  // namespace mnist

namespace fashion_mnist {
Data load_data(const std::string& dir) {
  return load_idx_data(dir, "Fashion-MNIST",
                       "install the Debian package dataset-fashion-mnist (apt install dataset-fashion-mnist) or "
                       "pass another directory (--data for the command line)");
}
}  // namespace fashion_mnist

namespace cifar10 {
Data load_data(const std::string& dir) {
  const std::string hint =
      "pass the directory of CIFAR-10's binary version (data_batch_1.bin .. data_batch_5.bin, test_batch.bin; "
      "--data for the command line)";
  check_dir(dir, "CIFAR-10", hint);
  std::error_code ec;
  std::string d = dir;
  if (!fs::exists(fs::path(d) / "data_batch_1.bin", ec) && fs::is_directory(fs::path(d) / "cifar-10-batches-bin", ec))
    d = (fs::path(d) / "cifar-10-batches-bin").string();
  auto file = [&](const std::string& name) {
    fs::path p = fs::path(d) / name;
    if (!fs::is_regular_file(p, ec)) throw IOError(p.string(), detail::str("not found; ", hint));
    return read_cifar_file(p.string());
  };
  std::vector<CifarFile> train;
  for (int i = 1; i <= 5; ++i) train.push_back(file(detail::str("data_batch_", i, ".bin")));
  Split tr = load_cifar_split(train);
  train.clear();  // frees 150 MB before reading the test file
  return {std::move(tr), load_cifar_split({file("test_batch.bin")})};
}
}  // namespace cifar10

}  // namespace glia::datasets

namespace glia::utils {

Tensor to_categorical(const Tensor& y, int64_t num_classes) {
  GLIA_CHECK(y.defined(), ValueError, "to_categorical: labels are undefined");
  GLIA_CHECK(num_classes == -1 || num_classes >= 1, ValueError,
             "to_categorical: num_classes must be positive or -1 (inferred), got ", num_classes);
  GLIA_CHECK(y.device().is_cpu(), DeviceError, "to_categorical: labels must be on the CPU, got ", y.device());
  std::vector<int64_t> labels;
  if (y.is_floating_point()) {
    const std::vector<double> v = y.to_vector<double>();
    labels.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      GLIA_CHECK(std::isfinite(v[i]) && v[i] == std::floor(v[i]) && std::abs(v[i]) < 9.0e18, ValueError,
                 "to_categorical: label ", v[i], " at index ", i, " is not an integer");
      labels.push_back(static_cast<int64_t>(v[i]));
    }
  } else {
    labels = y.to_vector<int64_t>();
  }
  for (size_t i = 0; i < labels.size(); ++i)
    GLIA_CHECK(labels[i] >= 0, ValueError, "to_categorical: label ", labels[i], " at index ", i, " is negative");
  if (num_classes == -1) {
    GLIA_CHECK(!labels.empty(), ValueError, "to_categorical: cannot infer num_classes from empty labels; pass it");
    num_classes = *std::max_element(labels.begin(), labels.end()) + 1;
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    GLIA_CHECK(labels[i] < num_classes, ValueError, "to_categorical: label ", labels[i], " at index ", i,
               " is out of range for ", num_classes, " classes (0..", num_classes - 1, ")");
  }
  Shape shape = y.shape();
  if (shape.size() >= 2 && shape.back() == 1) shape.pop_back();
  shape.push_back(num_classes);
  Tensor out = zeros(shape);
  float* o = out.data<float>();
  for (size_t i = 0; i < labels.size(); ++i) o[static_cast<int64_t>(i) * num_classes + labels[i]] = 1.0f;
  return out;
}

}  // namespace glia::utils
