// Zip archives, the container of Glia's model files (config, weights, optimizer state as members).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace glia::io {

/// Writes a zip archive atomically: members in order, stored (no compression) or deflated,
/// written to path + ".tmp", fsync'ed and renamed over path. IOError naming the path on failure;
/// ValueError for a member name that read_zip would refuse (empty, absolute, containing "..") or a
/// duplicate name.
void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& members,
               bool compress = false);

/// All members of a zip archive (name -> bytes). IOError(path, problem) for a missing file, a file
/// that is not a zip (wrong magic), a truncated or corrupt archive, a member whose CRC fails, an
/// unsafe member name (absolute or with ".."), a duplicate name, a compression method other than
/// stored/deflate, or sizes beyond the zip-bomb limits (8 GiB a member, 16 GiB in all).
std::map<std::string, std::string> read_zip(const std::string& path);

/// Like read_zip, but requires these members and says which is missing (IOError naming the file
/// and the member).
std::map<std::string, std::string> read_zip(const std::string& path, const std::vector<std::string>& required);

}  // namespace glia::io
