// Zip archives through libzip. Reading treats the file as untrusted: the magic is checked before
// libzip sees the file (libzip takes an empty file for an empty archive), the central directory is
// checked against the local headers (ZIP_CHECKCONS), every member is read to its end so that libzip
// verifies its CRC, and declared sizes are bounded before anything is allocated.
#include "glia/io/zip.h"

#include <zip.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <set>

#include "glia/core/error.h"
#include "glia/io/files.h"

namespace glia::io {

namespace {

constexpr uint64_t kMaxMemberSize = uint64_t{8} << 30;
constexpr uint64_t kMaxTotalSize = uint64_t{16} << 30;
// Deflate cannot expand data by more than about 1032:1, so a larger declared size is a lie (or a
// bomb): refusing it bounds the allocation by the size of the file itself.
constexpr uint64_t kMaxDeflateRatio = 1032;

std::string zip_error_text(int code) {
  zip_error_t err;
  zip_error_init_with_code(&err, code);
  std::string text = zip_error_strerror(&err);
  zip_error_fini(&err);
  return text;
}

/// Why a member name is unsafe to hand to anything that might turn it into a path, or "".
std::string name_problem(const std::string& name) {
  if (name.empty()) return "empty member name";
  if (name.front() == '/' || name.front() == '\\' ||
      (name.size() >= 2 && std::isalpha(static_cast<unsigned char>(name[0])) && name[1] == ':'))
    return "absolute member name '" + name + "'";
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find_first_of("/\\", start);
    if (end == std::string::npos) end = name.size();
    if (name.compare(start, end - start, "..") == 0) return "member name '" + name + "' contains '..'";
    start = end + 1;
  }
  return "";
}

void write_with_libzip(const std::string& path, const std::string& tmp,
                       const std::vector<std::pair<std::string, std::string>>& members, bool compress) {
  int code = 0;
  zip_t* za = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!za) throw IOError(path, "cannot create " + tmp + ": " + zip_error_text(code));
  auto fail = [&](const std::string& what) {
    std::string text = what + ": " + zip_strerror(za);
    zip_discard(za);
    throw IOError(path, text);
  };
  for (const auto& [name, bytes] : members) {
    // The buffers are not copied: `members` outlives zip_close, which is when libzip reads them.
    zip_source_t* src = zip_source_buffer(za, bytes.data(), bytes.size(), 0);
    if (!src) fail("cannot add member '" + name + "'");
    zip_int64_t idx = zip_file_add(za, name.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(src);
      fail("cannot add member '" + name + "'");
    }
    if (zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) != 0)
      fail("cannot set the compression of member '" + name + "'");
  }
  // libzip writes everything here, into its own temporary file that it renames to `tmp`.
  if (zip_close(za) != 0) fail("cannot write " + tmp);
}

}  // namespace

void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& members,
               bool compress) {
  std::set<std::string> seen;
  for (const auto& m : members) {
    std::string problem = name_problem(m.first);
    if (!problem.empty()) throw ValueError("write_zip: " + problem + " (writing " + path + ")");
    if (m.first.find('\0') != std::string::npos)
      throw ValueError("write_zip: member name with a NUL byte (writing " + path + ")");
    if (!seen.insert(m.first).second)
      throw ValueError("write_zip: duplicate member name '" + m.first + "' (writing " + path + ")");
  }
  if (members.empty()) {
    // libzip writes no file at all for an empty archive, but an empty model file is still a valid
    // (if useless) zip: the end-of-central-directory record alone.
    static const char kEmpty[22] = {'P', 'K', 5, 6};
    detail::write_file_atomic(path, std::string_view(kEmpty, sizeof kEmpty));
    return;
  }
  std::string tmp = path + ".tmp";
  write_with_libzip(path, tmp, members, compress);
  // libzip does not fsync.
  detail::fsync_and_rename(tmp, path);
}

namespace {

/// Checks that `path` is a regular file starting like a zip archive, before libzip opens it.
void check_magic(const std::string& path) {
  const std::string head = detail::read_file(path, 4);
  const size_t done = head.size();
  if (done == 0) throw IOError(path, "empty file, not a zip archive");
  // A member's local header, or the end record of an archive without members.
  static const unsigned char kLocal[4] = {'P', 'K', 3, 4}, kEnd[4] = {'P', 'K', 5, 6};
  bool local = std::memcmp(head.data(), kLocal, done) == 0, end = std::memcmp(head.data(), kEnd, done) == 0;
  if (!local && !end) throw IOError(path, "not a zip archive (wrong magic)");
  if (done < sizeof kLocal) throw IOError(path, "truncated zip archive (" + std::to_string(done) + " bytes)");
}

/// Closes the archive on every path out of read_zip.
struct Archive {
  zip_t* za = nullptr;
  ~Archive() {
    if (za) zip_discard(za);
  }
};

struct File {
  zip_file_t* zf = nullptr;
  ~File() {
    if (zf) zip_fclose(zf);
  }
};

}  // namespace

std::map<std::string, std::string> read_zip(const std::string& path) {
  check_magic(path);
  int code = 0;
  Archive a;
  a.za = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!a.za) {
    std::string what = code == ZIP_ER_NOZIP    ? "truncated or corrupt zip archive (no central directory)"
                       : code == ZIP_ER_INCONS ? "corrupt zip archive"
                                               : "cannot open zip archive";
    throw IOError(path, what + ": " + zip_error_text(code));
  }
  zip_int64_t n = zip_get_num_entries(a.za, 0);
  if (n < 0) throw IOError(path, "cannot list zip archive: " + std::string(zip_strerror(a.za)));

  // All declared sizes are checked before any member is read, so a bomb allocates nothing.
  std::vector<zip_stat_t> stats(static_cast<size_t>(n));
  std::set<std::string> names;
  uint64_t total = 0;
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t& st = stats[static_cast<size_t>(i)];
    zip_stat_init(&st);
    if (zip_stat_index(a.za, static_cast<zip_uint64_t>(i), 0, &st) != 0)
      throw IOError(path, "cannot read member " + std::to_string(i) + ": " + zip_strerror(a.za));
    const zip_uint64_t need = ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
    if ((st.valid & need) != need || !st.name)
      throw IOError(path, "member " + std::to_string(i) + " lacks its name, sizes or compression method");
    std::string name = st.name;
    std::string problem = name_problem(name);
    if (!problem.empty()) throw IOError(path, "unsafe " + problem);
    if (!names.insert(name).second) throw IOError(path, "duplicate member '" + name + "'");
    if (st.size > kMaxMemberSize)
      throw IOError(path, "member '" + name + "' declares " + std::to_string(st.size) + " bytes, over the 8 GiB limit");
    total += st.size;
    if (total > kMaxTotalSize) throw IOError(path, "members declare more than 16 GiB in all");
  }
  for (const zip_stat_t& st : stats) {
    std::string name = st.name;
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
      throw IOError(path, "member '" + name + "' is encrypted");
    if (st.comp_method == ZIP_CM_STORE) {
      if (st.size != st.comp_size)
        throw IOError(path, "corrupt zip archive: stored member '" + name + "' declares " + std::to_string(st.size) +
                                " bytes but holds " + std::to_string(st.comp_size));
    } else if (st.comp_method == ZIP_CM_DEFLATE) {
      if (st.size / kMaxDeflateRatio > st.comp_size)
        throw IOError(path, "corrupt zip archive (or zip bomb): member '" + name + "' declares " +
                                std::to_string(st.size) + " bytes from " + std::to_string(st.comp_size) +
                                " compressed bytes");
    } else {
      throw IOError(path, "member '" + name + "' uses compression method " + std::to_string(st.comp_method) +
                              " (only stored and deflate are supported)");
    }
  }

  std::map<std::string, std::string> out;
  for (zip_int64_t i = 0; i < n; ++i) {
    const zip_stat_t& st = stats[static_cast<size_t>(i)];
    std::string name = st.name;
    File f;
    f.zf = zip_fopen_index(a.za, static_cast<zip_uint64_t>(i), 0);
    if (!f.zf) throw IOError(path, "cannot open member '" + name + "': " + zip_strerror(a.za));
    std::string bytes(static_cast<size_t>(st.size), '\0');
    size_t done = 0;
    // Reads one byte past the declared size: libzip checks the CRC only on reaching the end.
    char extra = 0;
    for (;;) {
      char* dst = done < bytes.size() ? bytes.data() + done : &extra;
      zip_uint64_t want = done < bytes.size() ? bytes.size() - done : 1;
      zip_int64_t r = zip_fread(f.zf, dst, want);
      if (r < 0) {
        zip_error_t* err = zip_file_get_error(f.zf);
        std::string what = zip_error_code_zip(err) == ZIP_ER_CRC ? "CRC error, corrupt data" : zip_file_strerror(f.zf);
        throw IOError(path, "member '" + name + "': " + what);
      }
      if (r == 0) break;
      if (done >= bytes.size())
        throw IOError(path, "corrupt zip archive: member '" + name + "' holds more than its declared " +
                                std::to_string(st.size) + " bytes");
      done += static_cast<size_t>(r);
    }
    if (done != bytes.size())
      throw IOError(path, "truncated or corrupt member '" + name + "': " + std::to_string(done) + " of " +
                              std::to_string(st.size) + " bytes");
    int rc = zip_fclose(f.zf);
    f.zf = nullptr;
    if (rc != 0) throw IOError(path, "member '" + name + "': " + zip_error_text(rc));
    out.emplace(std::move(name), std::move(bytes));
  }
  return out;
}

std::map<std::string, std::string> read_zip(const std::string& path, const std::vector<std::string>& required) {
  auto members = read_zip(path);
  for (const auto& name : required)
    if (!members.count(name)) throw IOError(path, "missing member '" + name + "'");
  return members;
}

}  // namespace glia::io
