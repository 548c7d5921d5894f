// File helpers shared by the writers and readers of src/glia/io (internal).
#pragma once

#include <string>

namespace glia::io::detail {

/// "op: <strerror(errno)>".
std::string errno_text(const std::string& op);
/// The bytes of a regular file (at most `max_bytes` of them, from its start). IOError(path):
/// "no such file", "not a regular file", or the system's reason it cannot be opened or read.
std::string read_file(const std::string& path, size_t max_bytes = std::string::npos);
/// Makes a finished temporary file durable and puts it in place: fsync(tmp), rename(tmp, path),
/// then fsync of the folder (best effort). On failure tmp is removed and IOError(path) thrown.
void fsync_and_rename(const std::string& tmp, const std::string& path);

}  // namespace glia::io::detail
