// Library errors. Every failure a user can cause is one of these, with a
// message that says what was expected and what came.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace glia {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

/// Shapes that do not fit the op (broadcasting, matmul inner dims, ranks).
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A dtype the op does not take (a float op on an int tensor, say).
class DTypeError : public Error {
 public:
  using Error::Error;
};

/// Tensors on different devices, or a device that is not there.
class DeviceError : public Error {
 public:
  using Error::Error;
};

/// Bad arguments: an index out of range, an unknown name, a NaN loss.
class ValueError : public Error {
 public:
  using Error::Error;
};

/// Files: missing, truncated, corrupt. The message names the path.
class IOError : public Error {
 public:
  IOError(const std::string& path, const std::string& msg) : Error(path + ": " + msg), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Something inside Glia that should not happen; a bug to report.
class InternalError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class... A>
std::string str(A&&... a) {
  std::ostringstream os;
  (os << ... << std::forward<A>(a));
  return os.str();
}
}  // namespace detail

}  // namespace glia

/// GLIA_CHECK(cond, ErrorType, message parts...): throws ErrorType(message) when cond is false.
#define GLIA_CHECK(cond, Err, ...)                         \
  do {                                                     \
    if (!(cond)) [[unlikely]]                              \
      throw ::glia::Err(::glia::detail::str(__VA_ARGS__)); \
  } while (0)
