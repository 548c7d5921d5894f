#include "glia/io/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "glia/core/error.h"

namespace glia::io::detail {

std::string errno_text(const std::string& op) { return op + ": " + std::strerror(errno); }

std::string read_file(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IOError(path, errno == ENOENT ? "no such file" : errno_text("cannot open"));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IOError(path, "not a regular file");
  }
  std::string bytes(std::min(static_cast<size_t>(st.st_size), max_bytes), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t r = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      std::string text = errno_text("cannot read");
      ::close(fd);
      throw IOError(path, text);
    }
    if (r == 0) break;  // the file shrank while reading
    done += static_cast<size_t>(r);
  }
  ::close(fd);
  bytes.resize(done);
  return bytes;
}

void fsync_and_rename(const std::string& tmp, const std::string& path) {
  // Without the fsync, a crash after the rename could leave an empty or partial file in place.
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    std::string text = errno_text("cannot fsync " + tmp);
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw IOError(path, text);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string text = errno_text("cannot rename " + tmp);
    ::unlink(tmp.c_str());
    throw IOError(path, text);
  }
  // Makes the rename itself durable; best effort, as some file systems refuse to fsync folders.
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IOError(path, errno_text("cannot create " + tmp));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      std::string text = errno_text("cannot write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw IOError(path, text);
    }
    done += static_cast<size_t>(w);
  }
  if (::close(fd) != 0) {
    std::string text = errno_text("cannot close " + tmp);
    ::unlink(tmp.c_str());
    throw IOError(path, text);
  }
  fsync_and_rename(tmp, path);
}

}  // namespace glia::io::detail
