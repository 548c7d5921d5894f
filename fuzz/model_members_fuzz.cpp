// libFuzzer target: glia::load_model on well-formed zips with fuzzed members. Mutating a real zip
// (model_zip_fuzz) almost never gets past the members' CRCs, so this target splits its input at
// kSeparator into metadata.json, config.json, model.safetensors and optimizer.safetensors and
// stores them in a zip with correct CRCs: the fuzzer then reaches the config and weight loading.
#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "glia/model/model.h"

namespace {

constexpr std::string_view kSeparator = "\n@@member@@\n";
constexpr std::array<const char*, 4> kNames = {"metadata.json", "config.json", "model.safetensors",
                                               "optimizer.safetensors"};

void put16(std::string& s, uint32_t v) {
  for (int i = 0; i < 2; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

/// A zip archive of stored members, in the plainest layout (no extra fields, DOS date 1980-01-01).
std::string stored_zip(const std::vector<std::pair<std::string, std::string_view>>& members) {
  std::string out, cd;
  for (const auto& [name, data] : members) {
    const auto crc =
        static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const auto offset = static_cast<uint32_t>(out.size());
    const auto size = static_cast<uint32_t>(data.size());
    const auto name_len = static_cast<uint32_t>(name.size());
    put32(out, 0x04034b50);
    for (uint32_t v : {20u, 0u, 0u, 0u, 0x21u}) put16(out, v);  // version, flags, stored, time, date
    for (uint32_t v : {crc, size, size}) put32(out, v);
    put16(out, name_len);
    put16(out, 0);
    out += name;
    out += data;
    put32(cd, 0x02014b50);
    for (uint32_t v : {20u, 20u, 0u, 0u, 0u, 0x21u}) put16(cd, v);  // made by, needed, flags, stored, time, date
    for (uint32_t v : {crc, size, size}) put32(cd, v);
    for (uint32_t v : {name_len, 0u, 0u, 0u, 0u}) put16(cd, v);  // name, extra, comment, disk, internal attrs
    put32(cd, 0);                                                // external attrs
    put32(cd, offset);
    cd += name;
  }
  const auto cd_offset = static_cast<uint32_t>(out.size());
  out += cd;
  put32(out, 0x06054b50);
  for (uint32_t v : {0u, 0u, static_cast<uint32_t>(members.size()), static_cast<uint32_t>(members.size())})
    put16(out, v);
  put32(out, static_cast<uint32_t>(cd.size()));
  put32(out, cd_offset);
  put16(out, 0);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = glia::fuzz::scratch_dir() + "/members.glia";
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::pair<std::string, std::string_view>> members;
  // Parts beyond the fourth stay in the last member; missing parts leave members out, which
  // exercises the "missing member" errors.
  for (size_t i = 0; i < kNames.size() && !rest.empty(); ++i) {
    size_t cut = i + 1 < kNames.size() ? rest.find(kSeparator) : std::string_view::npos;
    members.emplace_back(kNames[i], rest.substr(0, cut));
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + kSeparator.size());
  }
  const std::string zip = stored_zip(members);
  glia::fuzz::write_bytes(path, reinterpret_cast<const uint8_t*>(zip.data()), zip.size());
  glia::fuzz::expect_glia_error_or_success([&] { (void)glia::load_model(path); });
  return 0;
}
