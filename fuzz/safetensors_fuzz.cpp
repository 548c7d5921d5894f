// libFuzzer target: glia::io::from_safetensors on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_common.h"
#include "glia/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  glia::fuzz::expect_glia_error_or_success([&] {
    // libFuzzer hands over a buffer of exactly `size` bytes, so ASan catches any read past the end.
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    glia::io::SafetensorsFile f = glia::io::from_safetensors(bytes, "fuzz input");
    // Touches every element, so that a tensor whose storage is smaller than its shape says is caught.
    for (auto& [name, t] : f.tensors) {
      const auto* p = static_cast<const volatile unsigned char*>(t.data_ptr());
      unsigned char sum = 0;
      for (size_t i = 0; i < t.nbytes(); ++i) sum = static_cast<unsigned char>(sum + p[i]);
      (void)sum;
    }
  });
  return 0;
}
