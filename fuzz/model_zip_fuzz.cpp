// libFuzzer target: glia::load_model and glia::io::read_zip on arbitrary bytes (written to a file,
// as both read paths).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "glia/io/zip.h"
#include "glia/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = glia::fuzz::scratch_dir() + "/model.glia";
  glia::fuzz::write_bytes(path, data, size);
  glia::fuzz::expect_glia_error_or_success([&] { (void)glia::io::read_zip(path); });
  glia::fuzz::expect_glia_error_or_success([&] { (void)glia::load_model(path); });
  return 0;
}
