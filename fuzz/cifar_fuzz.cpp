// libFuzzer target: the CIFAR-10 binary reader (glia::datasets::cifar10::load_data). It only takes a
// directory, so the bytes become data_batch_1.bin (raw or gzip, as the reader accepts both) beside
// fixed one-record files for the other batches, written once per process.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "glia/data/datasets.h"

namespace {

const std::string& cifar_dir() {
  static const std::string dir = [] {
    std::string d = glia::fuzz::scratch_dir() + "/cifar";
    std::filesystem::create_directories(d);
    std::vector<uint8_t> record(1 + 32 * 32 * 3);
    for (size_t i = 0; i < record.size(); ++i) record[i] = static_cast<uint8_t>(i % 7);  // label 0
    for (const char* name :
         {"data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"})
      glia::fuzz::write_bytes(d + "/" + name, record.data(), record.size());
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = cifar_dir();
  glia::fuzz::write_bytes(dir + "/data_batch_1.bin", data, size);
  glia::fuzz::expect_glia_error_or_success([&] { (void)glia::datasets::cifar10::load_data(dir); });
  return 0;
}
