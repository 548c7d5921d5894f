// Shared by the fuzz targets: a scratch path per process (fixed, so that each input costs one
// write and no directory churn) and the rule for what counts as a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "glia/core/error.h"

namespace glia::fuzz {

/// A directory of its own for this process, created once: $TMPDIR (or /tmp)/glia-fuzz-<pid>.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string d = (std::filesystem::temp_directory_path() / ("glia-fuzz-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

/// Writes the fuzzer's bytes to `path`, replacing what was there.
inline void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

/// Runs a reader on untrusted bytes. A glia::Error is the expected answer to bad input; an
/// InternalError is Glia admitting a bug, and any other exception escapes to libFuzzer, which
/// reports it as a crash (as it does sanitizer reports and leaks).
template <class F>
void expect_glia_error_or_success(F&& f) {
  try {
    f();
  } catch (const InternalError& e) {
    std::fprintf(stderr, "fuzz: InternalError on untrusted input: %s\n", e.what());
    std::abort();
  } catch (const Error&) {
  }
}

}  // namespace glia::fuzz
