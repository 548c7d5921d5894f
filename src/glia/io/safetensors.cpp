// safetensors reading and writing, following Hugging Face's specification
// (https://github.com/huggingface/safetensors): every check the reference implementation makes on
// untrusted input is made here, with integer arithmetic checked for overflow, so that a corrupt
// file gives an IOError and never a crash or a huge allocation.
#include "glia/io/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "glia/core/error.h"
#include "glia/io/files.h"

namespace glia::io {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::ordered_json;  // keeps header order, to break ties between empty tensors

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit

const char* st_name(DType d) {
  switch (d) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::bf16:
      return "BF16";
    case DType::f16:
      return "F16";
    case DType::i32:
      return "I32";
    case DType::i64:
      return "I64";
    case DType::u8:
      return "U8";
    case DType::b8:
      return "BOOL";
  }
  throw InternalError("to_safetensors: unknown dtype");
}

bool st_dtype(const std::string& s, DType& out) {
  static const std::pair<const char*, DType> table[] = {{"F32", DType::f32}, {"F64", DType::f64}, {"BF16", DType::bf16},
                                                        {"F16", DType::f16}, {"I32", DType::i32}, {"I64", DType::i64},
                                                        {"U8", DType::u8},   {"BOOL", DType::b8}};
  for (auto& [n, d] : table)
    if (s == n) {
      out = d;
      return true;
    }
  return false;
}

std::string in_quotes(const std::string& name) { return "\"" + name + "\""; }

/// A JSON number that is a non-negative integer fitting uint64 (nlohmann keeps those as unsigned).
bool as_u64(const json& j, uint64_t& out) {
  if (!j.is_number_unsigned()) return false;
  out = j.get<uint64_t>();
  return true;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
  size_t header_index;
};

Entry parse_entry(const std::string& what, const std::string& name, const json& v, size_t index) {
  auto fail = [&](const std::string& msg) { throw IOError(what, "tensor " + in_quotes(name) + ": " + msg); };
  if (!v.is_object()) fail("entry must be a JSON object, got " + std::string(v.type_name()));
  Entry e{name, DType::f32, {}, 0, 0, index};
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail(std::string("missing \"") + key + "\"");
  const json& dt = v["dtype"];
  if (!dt.is_string()) fail("\"dtype\" must be a string, got " + std::string(dt.type_name()));
  if (!st_dtype(dt.get<std::string>(), e.dtype))
    fail("unknown dtype \"" + dt.get<std::string>() + "\" (Glia reads F32, F64, BF16, F16, I32, I64, U8, BOOL)");
  const json& sh = v["shape"];
  if (!sh.is_array()) fail("\"shape\" must be an array of integers, got " + std::string(sh.type_name()));
  // Glia sizes and strides are int64: the product of the non-zero dimensions must fit.
  uint64_t prod = 1;
  for (const json& d : sh) {
    uint64_t n = 0;
    if (d.is_number_integer() && !d.is_number_unsigned()) fail("negative dimension " + d.dump() + " in shape");
    if (!as_u64(d, n)) fail("shape entries must be non-negative integers, got " + d.dump());
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail("dimension " + d.dump() + " is too large");
    uint64_t f = n == 0 ? 1 : n;
    if (__builtin_mul_overflow(prod, f, &prod) || prod > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("shape " + sh.dump() + " has too many elements (overflow)");
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2) fail("\"data_offsets\" must be [begin, end], got " + off.dump());
  if (!as_u64(off[0], e.begin) || !as_u64(off[1], e.end))
    fail("\"data_offsets\" must be two non-negative integers, got " + off.dump());
  if (e.begin > e.end) fail("\"data_offsets\" " + off.dump() + " has begin > end");
  uint64_t numel = 1;
  for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);  // no overflow: checked above
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(itemsize(e.dtype)), &bytes))
    fail("shape " + sh.dump() + " has too many bytes (overflow)");
  if (bytes != e.end - e.begin)
    fail("data_offsets " + off.dump() + " span " + std::to_string(e.end - e.begin) + " bytes but shape " + sh.dump() +
         " of " + dt.get<std::string>() + " needs " + std::to_string(bytes));
  return e;
}

/// Parses with a callback that rejects duplicate keys in any object: nlohmann would keep the last
/// value silently, and the specification gives a name one tensor.
json parse_header(const std::string& what, std::string_view text) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json h;
  try {
    h = json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    throw IOError(what, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) throw IOError(what, "header has the key " + in_quotes(duplicate) + " twice");
  if (!h.is_object()) throw IOError(what, "header must be a JSON object, got " + std::string(h.type_name()));
  return h;
}

}  // namespace

std::string to_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  std::unordered_set<std::string> seen;
  std::vector<Tensor> data;
  json header = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {
    GLIA_CHECK(!name.empty(), ValueError, "to_safetensors: tensor names must be non-empty");
    GLIA_CHECK(name != "__metadata__", ValueError, "to_safetensors: \"__metadata__\" is reserved, not a tensor name");
    GLIA_CHECK(seen.insert(name).second, ValueError, "to_safetensors: duplicate tensor name \"", name, "\"");
    GLIA_CHECK(t.defined(), ValueError, "to_safetensors: tensor \"", name, "\" is undefined");
    GLIA_CHECK(!t.is_symbolic(), ValueError, "to_safetensors: tensor \"", name, "\" is symbolic (has no values)");
    Tensor c = t.device().is_cpu() ? t.contiguous() : t.to(Device::cpu()).contiguous();
    json shape = json::array();
    for (int64_t d : c.shape()) shape.push_back(d);
    uint64_t n = c.nbytes();
    header[name] = {{"dtype", st_name(c.dtype())}, {"shape", shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(std::move(c));
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // names or metadata that are not UTF-8
    throw ValueError(std::string("to_safetensors: names and metadata must be valid UTF-8: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // aligns the data area to 8 bytes, as the reference writer
  std::string out;
  out.reserve(8 + text.size() + offset);
  uint64_t n = text.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += text;
  for (const Tensor& c : data)
    if (c.nbytes() > 0) out.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  return out;
}

SafetensorsFile from_safetensors(std::string_view bytes, const std::string& what) {
  if (bytes.size() < 8)
    throw IOError(what, "too short for a safetensors file: " + std::to_string(bytes.size()) +
                            " bytes, the 8-byte header length alone needs 8");
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  if (n > kMaxHeader)
    throw IOError(what, "header length " + std::to_string(n) + " is absurdly large (the limit is 100000000 bytes)");
  if (n > bytes.size() - 8)
    throw IOError(what, "header length " + std::to_string(n) + " is larger than the file (" +
                            std::to_string(bytes.size()) + " bytes)");
  json h = parse_header(what, bytes.substr(8, n));
  std::string_view area = bytes.substr(8 + n);

  SafetensorsFile out;
  std::vector<Entry> entries;
  size_t index = 0;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) throw IOError(what, "\"__metadata__\" must be an object of strings, got " + v.dump());
      for (auto& [k, s] : v.items()) {
        if (!s.is_string())
          throw IOError(what, "\"__metadata__\" values must be strings, got " + in_quotes(k) + ": " + s.dump());
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    if (name.empty()) throw IOError(what, "a tensor has an empty name");
    entries.push_back(parse_entry(what, name, v, index++));
  }
  // The specification requires the tensors to cover the data area exactly: no holes, no overlaps.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.header_index) < std::tie(b.begin, b.end, b.header_index);
  });
  uint64_t pos = 0;
  for (const Entry& e : entries) {
    if (e.begin > area.size() || e.end > area.size())
      throw IOError(what, "tensor " + in_quotes(e.name) + ": data_offsets [" + std::to_string(e.begin) + ", " +
                              std::to_string(e.end) + "] lie outside the data area of " + std::to_string(area.size()) +
                              " bytes");
    if (e.begin < pos)
      throw IOError(what, "tensor " + in_quotes(e.name) + ": data_offsets [" + std::to_string(e.begin) + ", " +
                              std::to_string(e.end) + "] overlap the previous tensor, which ends at " +
                              std::to_string(pos));
    if (e.begin > pos)
      throw IOError(what, "tensor " + in_quotes(e.name) + ": data_offsets [" + std::to_string(e.begin) + ", " +
                              std::to_string(e.end) + "] leave a hole: the previous tensor ends at " +
                              std::to_string(pos) + " (tensors must be contiguous)");
    pos = e.end;
  }
  if (pos != area.size())
    throw IOError(what, "the tensors cover " + std::to_string(pos) + " bytes but the data area has " +
                            std::to_string(area.size()) + " (trailing bytes not covered by any tensor)");
  for (const Entry& e : entries) {
    const char* src = area.data() + e.begin;
    size_t len = e.end - e.begin;
    if (e.dtype == DType::b8)  // a bool byte other than 0 or 1 is undefined behaviour to read as bool
      for (size_t i = 0; i < len; ++i)
        if (static_cast<unsigned char>(src[i]) > 1)
          throw IOError(what, "tensor " + in_quotes(e.name) + ": BOOL element " + std::to_string(i) + " is byte " +
                                  std::to_string(static_cast<unsigned char>(src[i])) + " (must be 0 or 1)");
    Tensor t = Tensor::empty(IntList(e.shape), e.dtype);
    if (len > 0) std::memcpy(t.data_ptr(), src, len);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  detail::write_file_atomic(path, to_safetensors(tensors, metadata));
}

SafetensorsFile load_safetensors(const std::string& path) { return from_safetensors(detail::read_file(path), path); }

}  // namespace glia::io
