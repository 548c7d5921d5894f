// File readers: whole-file reads (gunzipped with zlib when compressed), the
// IDX format and CSV. Every size read from a file is checked against the bytes
// that are really there before anything is copied.
#include "glia/data/readers.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

namespace glia::data {
namespace {

bool is_gzip(const std::string& b) {
  return b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0x1f && static_cast<unsigned char>(b[1]) == 0x8b;
}

std::string read_raw(const std::string& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) throw IOError(path, "no such file");
  if (std::filesystem::is_directory(st)) throw IOError(path, "is a directory, expected a file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError(path, detail::str("cannot open for reading: ", std::strerror(errno)));
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0) throw IOError(path, "cannot determine the file size");
  f.seekg(0, std::ios::beg);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (size > 0 && !f.read(bytes.data(), size)) throw IOError(path, "read error");
  return bytes;
}

std::string gunzip(const std::string& path, const std::string& in) {
  z_stream z{};
  // 16 + MAX_WBITS: gzip wrapper only.
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw IOError(path, "zlib: cannot initialize inflate");
  std::unique_ptr<z_stream, void (*)(z_stream*)> guard(&z, [](z_stream* s) { inflateEnd(s); });

  // The gzip trailer holds the size mod 2^32: a good first guess, capped by deflate's maximum ratio.
  size_t guess = in.size() * 4;
  if (in.size() >= 18) {
    uint32_t isize;
    std::memcpy(&isize, in.data() + in.size() - 4, 4);
    if constexpr (std::endian::native == std::endian::big) isize = __builtin_bswap32(isize);
    guess = std::min<size_t>(isize, in.size() * 1032 + 1024);
  }
  std::string out(std::max<size_t>(guess, 1024), '\0');
  size_t produced = 0, consumed = 0;
  constexpr size_t kChunk = size_t(1) << 30;  // avail_in / avail_out are 32-bit
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  for (;;) {
    if (produced == out.size()) out.resize(out.size() * 2);
    const size_t in_chunk = std::min(kChunk, in.size() - consumed);
    const size_t out_chunk = std::min(kChunk, out.size() - produced);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()) + consumed);
    z.avail_in = static_cast<uInt>(in_chunk);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    z.avail_out = static_cast<uInt>(out_chunk);
    const int rc = inflate(&z, Z_NO_FLUSH);
    consumed += in_chunk - z.avail_in;
    produced += out_chunk - z.avail_out;
    if (rc == Z_STREAM_END) {
      if (consumed == in.size()) break;
      // Concatenated gzip members (as `cat a.gz b.gz`) form one file.
      const std::string rest = in.substr(consumed, 2);
      if (!is_gzip(rest)) {
        throw IOError(path, detail::str("corrupt gzip file: ", in.size() - consumed,
                                        " bytes of trailing data after the compressed stream"));
      }
      inflateReset(&z);
      continue;
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
      throw IOError(path, detail::str("corrupt gzip data: ", z.msg ? z.msg : "invalid deflate stream"));
    }
    if (rc == Z_MEM_ERROR) throw IOError(path, "out of memory while decompressing");
    if (rc == Z_BUF_ERROR || rc == Z_OK) {
      if (consumed == in.size() && z.avail_out != 0) {
        throw IOError(path, detail::str("truncated gzip file: the compressed stream ends early (", produced,
                                        " bytes decompressed)"));
      }
      continue;
    }
    throw IOError(path, detail::str("zlib error ", rc, " while decompressing"));
  }
  out.resize(produced);
  return out;
}

uint32_t load_be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

template <class T>
T load_be(const unsigned char* p) {
  using U = std::conditional_t<
      sizeof(T) == 1, uint8_t,
      std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
  U u = 0;
  for (size_t i = 0; i < sizeof(T); ++i) u = static_cast<U>((u << 8) | p[i]);
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}

// Converts big-endian file values of type F into the tensor's type T.
template <class F, class T>
void convert_be(const unsigned char* src, T* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(load_be<F>(src + i * static_cast<int64_t>(sizeof(F))));
}

struct IdxType {
  const char* name;
  size_t size;
  DType dtype;
};

bool idx_type(unsigned char code, IdxType& t) {
  switch (code) {
    case 0x08:
      t = {"uint8", 1, DType::u8};
      return true;
    case 0x09:
      t = {"int8", 1, DType::i32};
      return true;
    case 0x0B:
      t = {"int16", 2, DType::i32};
      return true;
    case 0x0C:
      t = {"int32", 4, DType::i32};
      return true;
    case 0x0D:
      t = {"float32", 4, DType::f32};
      return true;
    case 0x0E:
      t = {"float64", 8, DType::f64};
      return true;
    default:
      return false;
  }
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

std::string read_file_bytes(const std::string& path) {
  std::string bytes = read_raw(path);
  return is_gzip(bytes) ? gunzip(path, bytes) : bytes;
}

Tensor read_idx(const std::string& path) {
  std::string raw = read_raw(path);
  const bool gz = is_gzip(raw);
  const std::string bytes = gz ? gunzip(path, raw) : std::move(raw);
  const char* after = gz ? " after decompression" : "";
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t size = bytes.size();

  if (size < 4)
    throw IOError(path, detail::str("not an IDX file: ", size, " bytes", after, ", too short for the magic"));
  const uint32_t magic = load_be32(b);
  IdxType type;
  if (b[0] != 0 || b[1] != 0 || !idx_type(b[2], type)) {
    throw IOError(path, detail::str("not an IDX file: magic number ", hex32(magic),
                                    ", expected 0x0000TTNN with type code TT in 08 09 0b 0c 0d 0e and NN dims "
                                    "(e.g. 0x00000803 for MNIST images)"));
  }
  const size_t ndim = b[3];
  const size_t header = 4 + 4 * ndim;
  if (size < header) {
    throw IOError(path, detail::str("truncated IDX header: magic ", hex32(magic), " announces ", ndim,
                                    " dims (a header of ", header, " bytes), file has ", size, " bytes", after));
  }
  Shape shape;
  uint64_t count = 1;
  bool overflow = false;
  // Strides are int64 and skip zero dims, so the product of the non-zero dims must fit even when
  // a zero dim leaves no data (found by fuzz/idx_fuzz).
  uint64_t span = 1;
  bool span_overflow = false;
  for (size_t d = 0; d < ndim; ++d) {
    const uint32_t n = load_be32(b + 4 + 4 * d);
    shape.push_back(n);
    overflow = overflow || __builtin_mul_overflow(count, uint64_t(n), &count);
    span_overflow = span_overflow || __builtin_mul_overflow(span, uint64_t(std::max<uint32_t>(n, 1)), &span) ||
                    span > uint64_t(std::numeric_limits<int64_t>::max());
  }
  if (span_overflow) {
    throw IOError(path, detail::str("IDX header dims ", shape,
                                    " are too large (their non-zero product exceeds 2^63 - 1); the file is corrupt"));
  }
  uint64_t data_bytes = 0;
  overflow = overflow || __builtin_mul_overflow(count, uint64_t(type.size), &data_bytes) ||
             data_bytes > uint64_t(std::numeric_limits<int64_t>::max()) - header;
  if (count == 0) overflow = false;  // a zero dim makes the product 0 whatever the others are
  if (overflow) {
    throw IOError(path, detail::str("IDX header dims ", shape, " of ", type.name,
                                    " are too large (more than 2^63 bytes); the file is corrupt"));
  }
  const uint64_t expected = header + data_bytes;
  if (size != expected) {
    throw IOError(path, detail::str("expected ", expected, " bytes of data, file has ", size, after, " (a header of ",
                                    header, " bytes, then ", type.name, " ", shape, ")"));
  }

  Tensor t = Tensor::empty(shape, type.dtype);
  const unsigned char* src = b + header;
  const auto n = static_cast<int64_t>(count);
  switch (b[2]) {
    case 0x08:
      if (n) std::memcpy(t.data_ptr(), src, static_cast<size_t>(n));
      break;
    case 0x09:
      convert_be<int8_t>(src, t.data<int32_t>(), n);
      break;
    case 0x0B:
      convert_be<int16_t>(src, t.data<int32_t>(), n);
      break;
    case 0x0C:
      convert_be<int32_t>(src, t.data<int32_t>(), n);
      break;
    case 0x0D:
      convert_be<float>(src, t.data<float>(), n);
      break;
    case 0x0E:
      convert_be<double>(src, t.data<double>(), n);
      break;
  }
  return t;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

Tensor read_csv(const std::string& path, const CsvOptions& o) {
  const DType dt = o.dtype;
  GLIA_CHECK(is_floating(dt) || dt == DType::i32 || dt == DType::i64 || dt == DType::u8, ValueError, "read_csv: dtype ",
             dt, " is not supported; use a float type, int32, int64 or uint8");
  const std::string text = read_file_bytes(path);
  std::string_view rest(text);
  if (rest.starts_with("\xEF\xBB\xBF")) rest.remove_prefix(3);  // UTF-8 byte-order mark

  const bool integral = !is_floating(dt);
  const int64_t lo = dt == DType::u8    ? 0
                     : dt == DType::i32 ? std::numeric_limits<int32_t>::min()
                                        : std::numeric_limits<int64_t>::min();
  const int64_t hi = dt == DType::u8    ? 255
                     : dt == DType::i32 ? std::numeric_limits<int32_t>::max()
                                        : std::numeric_limits<int64_t>::max();
  std::vector<double> reals;
  std::vector<int64_t> ints;
  int64_t rows = 0, cols = -1, cols_line = 0;
  for (int64_t line_no = 1; !rest.empty(); ++line_no) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (line_no == 1 && o.header) continue;
    if (trim(line).empty()) continue;

    int64_t field = 0;
    for (;;) {
      const size_t cut = line.find(o.delimiter);
      std::string_view f = trim(line.substr(0, cut));
      ++field;
      if (cols >= 0 && field > cols) {
        // Count the fields of the whole line for the message.
        int64_t total = field + static_cast<int64_t>(std::count(line.begin(), line.end(), o.delimiter));
        if (cut == std::string_view::npos) total = field;
        throw IOError(
            path, detail::str("line ", line_no, " has ", total, " fields, expected ", cols, " like line ", cols_line));
      }
      if (!f.empty() && f.front() == '+') f.remove_prefix(1);
      const char* first = f.data();
      const char* last = f.data() + f.size();
      auto where = [&] { return detail::str("line ", line_no, ", field ", field, ": "); };
      bool range_error = false;
      if (integral) {
        int64_t v = 0;
        const auto r = std::from_chars(first, last, v);
        if (r.ptr == last && r.ec == std::errc() && v >= lo && v <= hi) {
          ints.push_back(v);
        } else if (r.ptr == last && r.ec != std::errc::invalid_argument) {
          range_error = true;
        } else {
          double d;
          const auto rd = std::from_chars(first, last, d);
          if (rd.ptr == last && rd.ec == std::errc())
            throw IOError(path, detail::str(where(), "\"", f, "\" is not an integer (dtype ", dt, ")"));
          throw IOError(path, detail::str(where(), "\"", f, "\" is not a number"));
        }
      } else {
        double v = 0;
        const auto r = std::from_chars(first, last, v);
        if (r.ptr != last || r.ec == std::errc::invalid_argument)
          throw IOError(path, detail::str(where(), "\"", f, "\" is not a number"));
        range_error = r.ec == std::errc::result_out_of_range;
        reals.push_back(v);
      }
      if (range_error) throw IOError(path, detail::str(where(), f, " is out of range for ", dt));
      if (cut == std::string_view::npos) break;
      line.remove_prefix(cut + 1);
    }
    if (cols < 0) {
      cols = field;
      cols_line = line_no;
    } else if (field != cols) {
      throw IOError(
          path, detail::str("line ", line_no, " has ", field, " fields, expected ", cols, " like line ", cols_line));
    }
    ++rows;
  }
  if (cols < 0) cols = 0;
  if (integral) {
    Tensor t = tensor(ints, Shape{rows, cols}, {.dtype = DType::i64});
    return dt == DType::i64 ? t : t.to(dt);
  }
  Tensor t = tensor(reals, Shape{rows, cols}, {.dtype = DType::f64});
  return dt == DType::f64 ? t : t.to(dt);
}

}  // namespace glia::data
