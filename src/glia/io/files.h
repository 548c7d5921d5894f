// File helpers shared by the writers and readers of src/glia/io (internal).
#pragma once

#include <string>

namespace glia::io::detail {

/// "op: <strerror(errno)>".
std::string errno_text(const std::string& op);
/// Makes a finished temporary file durable and puts it in place: fsync(tmp), rename(tmp, path),
/// then fsync of the folder (best effort). On failure tmp is removed and IOError(path) thrown.
void fsync_and_rename(const std::string& tmp, const std::string& path);

}  // namespace glia::io::detail
