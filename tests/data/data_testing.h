// Writing test files for the data readers: IDX headers, big-endian values,
// gzip (with zlib, independent of the reader's own decompression).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace glia::data_testing {

/// Writes bytes to path, gzip-compressed when gz.
inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes, bool gz = false) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb9");
    if (!f) throw std::runtime_error("gzopen failed: " + path);
    if (!bytes.empty() &&
        gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) != static_cast<int>(bytes.size()))
      throw std::runtime_error("gzwrite failed: " + path);
    if (gzclose(f) != Z_OK) throw std::runtime_error("gzclose failed: " + path);
    return;
  }
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("write failed: " + path);
}

inline void write_text(const std::string& path, const std::string& text) {
  write_file(path, std::vector<uint8_t>(text.begin(), text.end()));
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

/// An IDX file: magic 0x0000TTNN (type code, number of dims), big-endian uint32 dims, then data.
inline std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<int64_t>& dims,
                                      const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (int64_t d : dims) put_be32(out, static_cast<uint32_t>(d));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

/// The big-endian bytes of values.
template <class T>
std::vector<uint8_t> be_bytes(const std::vector<T>& values) {
  std::vector<uint8_t> out;
  for (const T& v : values) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    for (size_t i = sizeof(T); i-- > 0;) out.push_back(b[i]);  // the host is little-endian (x86, ARM)
  }
  return out;
}

}  // namespace glia::data_testing
