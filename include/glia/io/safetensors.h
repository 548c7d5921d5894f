// safetensors (Hugging Face's tensor file format): an 8-byte little-endian header length N,
// N bytes of JSON describing each tensor (dtype, shape, data_offsets) plus optional string
// metadata, then the raw little-endian, C-order bytes of all tensors.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glia/core/tensor.h"

namespace glia::io {

/// Named tensors in the caller's order (the order they are written in).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// The bytes of a safetensors file holding these tensors (made contiguous, copied to the CPU) and
/// metadata. Names must be unique, non-empty and not "__metadata__" (ValueError otherwise); every
/// Glia dtype has a safetensors name (F32, F64, BF16, F16, I32, I64, U8, BOOL).
std::string to_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});

/// What a safetensors file holds. Tensors come in file order: sorted by their data_offsets (ties,
/// which only empty tensors can have, in header order).
struct SafetensorsFile {
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;
};

/// Parses the bytes of a safetensors file, checking everything the format requires; `what` names
/// the source in errors (a path or "zip member x"). Anything malformed throws IOError(what, ...).
SafetensorsFile from_safetensors(std::string_view bytes, const std::string& what);

/// Writes a safetensors file atomically: to path + ".tmp", flushed, fsync'ed, then renamed over
/// `path`, so that a crash never leaves a half-written file. IOError on failure.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
/// Reads and parses a safetensors file (IOError naming the path when missing or malformed).
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace glia::io
