// libFuzzer target: glia::data::read_idx on arbitrary bytes (raw or gzip, written to a file).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "glia/data/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = glia::fuzz::scratch_dir() + "/data.idx";
  glia::fuzz::write_bytes(path, data, size);
  glia::fuzz::expect_glia_error_or_success([&] { (void)glia::data::read_idx(path); });
  return 0;
}
