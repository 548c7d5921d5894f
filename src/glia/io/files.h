// File helpers shared by the writers and readers of src/glia/io (internal).
#pragma once

#include <string>
#include <string_view>

namespace glia::io::detail {

/// "op: <strerror(errno)>".
std::string errno_text(const std::string& op);
/// The bytes of a regular file (at most `max_bytes` of them, from its start). IOError(path):
/// "no such file", "not a regular file", or the system's reason it cannot be opened or read.
std::string read_file(const std::string& path, size_t max_bytes = std::string::npos);
/// Makes a finished temporary file durable and puts it in place: fsync(tmp), rename(tmp, path),
/// then fsync of the folder (best effort). On failure tmp is removed and IOError(path) thrown.
void fsync_and_rename(const std::string& tmp, const std::string& path);
/// Writes `bytes` as the file `path`, atomically: to `path.tmp`, then fsync_and_rename. A crash
/// leaves the old file or the new one. IOError(path) with the system's reason on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace glia::io::detail
