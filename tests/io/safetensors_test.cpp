// safetensors: round trips of every dtype (0-d, empty, non-contiguous), an independent Python
// reader/writer written from the specification, every kind of corrupt file, and
// Model::save_weights / load_weights.
#include "glia/io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "glia/glia.h"
#include "testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

const std::vector<DType> kAllDTypes = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                       DType::i32, DType::i64, DType::u8,   DType::b8};

Tensor sample(DType d, IntList shape) {
  switch (d) {
    case DType::i32:
    case DType::i64:
      return randint(-1000000, 1000000, shape, {.dtype = d});
    case DType::u8:
      return randint(0, 256, shape, {.dtype = DType::u8});
    case DType::b8:
      return randint(0, 2, shape, {.dtype = DType::i64}).to(DType::b8);
    default:
      return uniform(shape, -100, 100, DType::f64).to(d);
  }
}

/// Same dtype, shape and bytes (bit-exact, NaN payloads and signed zeros included).
::testing::AssertionResult same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    return ::testing::AssertionFailure() << "dtypes " << name(a.dtype()) << " vs " << name(b.dtype());
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shapes " << to_string(a.shape()) << " vs " << to_string(b.shape());
  Tensor ca = a.contiguous(), cb = b.contiguous();
  if (ca.nbytes() && std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) != 0)
    return ::testing::AssertionFailure() << "values differ";
  return ::testing::AssertionSuccess();
}

/// The 16-bit patterns of a bf16/f16 tensor as int32 (how they travel through .npy files).
Tensor bits_i32(const Tensor& t) {
  Tensor c = t.contiguous();
  Tensor out = Tensor::empty(IntList(c.shape()), DType::i32);  // tensor() would make a 0-d input 1-d
  const auto* p = static_cast<const uint16_t*>(c.data_ptr());
  int32_t* o = out.data<int32_t>();
  for (int64_t i = 0; i < c.numel(); ++i) o[i] = p[i];
  return out;
}

const char* st_dtype_name(DType d) {
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
    default:
      return "BOOL";
  }
}

/// A mix of every dtype with 0-d, empty and non-contiguous tensors, and a non-ASCII name.
io::NamedTensors mixed_tensors() {
  io::NamedTensors ts;
  for (DType d : kAllDTypes) {
    std::string n = std::string(st_dtype_name(d));
    ts.emplace_back(n + "/matrix", sample(d, {3, 4}));
    ts.emplace_back(n + "/scalar", sample(d, {}));
    ts.emplace_back(n + "/empty", sample(d, {2, 0, 3}));
    ts.emplace_back(n + "/permuted", sample(d, {2, 3, 5}).permute({2, 0, 1}));
    ts.emplace_back(n + "/strided", sample(d, {7, 6}).slice(0, 1, 7, 2).slice(1, 0, 6, 3));
  }
  ts.emplace_back("w\xc3\xa9ight/\xc3\xbc", sample(DType::f32, {2}));
  return ts;
}

std::string with_header(const std::string& header, const std::string& data = "") {
  uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

std::string write_file(const std::string& bytes, const std::string& name = "bad.safetensors") {
  std::string path = temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

/// Loading these bytes from a file throws IOError naming the file and containing `problem`.
void expect_corrupt(const std::string& bytes, const std::string& problem) {
  std::string path = write_file(bytes);
  std::string msg = error_of<IOError>([&] { io::load_safetensors(path); });
  EXPECT_THAT(msg, HasSubstr(path)) << problem;
  EXPECT_THAT(msg, HasSubstr(problem));
}

bool have_numpy() {
  static int ok = std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0 ? 1 : 0;
  return ok == 1;
}

std::string script() { return std::string(GLIA_SOURCE_DIR) + "/tests/python/safetensors_check.py"; }

// --- round trips

TEST(Safetensors, RoundTripEveryDType) {
  for (DType d : kAllDTypes) {
    io::NamedTensors ts = {{"a", sample(d, {3, 4})},
                           {"scalar", sample(d, {})},
                           {"empty", sample(d, {0})},
                           {"empty2", sample(d, {2, 0, 3})},
                           {"b", sample(d, {5})}};
    io::SafetensorsFile f = io::from_safetensors(io::to_safetensors(ts), "mem");
    ASSERT_EQ(f.tensors.size(), ts.size()) << name(d);
    for (size_t i = 0; i < ts.size(); ++i) {
      EXPECT_EQ(f.tensors[i].first, ts[i].first) << name(d);
      EXPECT_TRUE(same_bits(f.tensors[i].second, ts[i].second)) << name(d) << " " << ts[i].first;
    }
    EXPECT_TRUE(f.metadata.empty());
  }
}

TEST(Safetensors, RoundTripNonContiguousViewsAndFile) {
  io::NamedTensors ts = mixed_tensors();
  for (auto& [n, t] : ts)
    if (n.find("permuted") != std::string::npos || n.find("strided") != std::string::npos) {
      ASSERT_FALSE(t.is_contiguous()) << n;
    }
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "caf\xc3\xa9 \"quoted\"\n"}, {"", "empty key"}};
  std::string path = temp_dir() + "/mixed.safetensors";
  io::save_safetensors(path, ts, meta);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  io::SafetensorsFile f = io::load_safetensors(path);
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_EQ(f.tensors[i].first, ts[i].first);
    EXPECT_TRUE(same_bits(f.tensors[i].second, ts[i].second)) << ts[i].first;
  }
}

TEST(Safetensors, LayoutFollowsTheSpecification) {
  // Header padded with spaces to 8 bytes; data in the caller's order, contiguous from offset 0.
  Tensor a = tensor<float>({1.5f, -2.0f}), b = tensor<int64_t>({7});
  std::string bytes = io::to_safetensors({{"z", a}, {"a", b}}, {{"k", "v"}});
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 8 + 8);
  auto h = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(h["z"]["dtype"], "F32");
  EXPECT_EQ(h["z"]["shape"], nlohmann::json::array({2}));
  EXPECT_EQ(h["z"]["data_offsets"], nlohmann::json::array({0, 8}));
  EXPECT_EQ(h["a"]["dtype"], "I64");
  EXPECT_EQ(h["a"]["data_offsets"], nlohmann::json::array({8, 16}));
  EXPECT_EQ(h["__metadata__"]["k"], "v");
  float f0;
  std::memcpy(&f0, bytes.data() + 8 + n, 4);
  EXPECT_EQ(f0, 1.5f);
  int64_t i0;
  std::memcpy(&i0, bytes.data() + 8 + n + 8, 8);
  EXPECT_EQ(i0, 7);
}

TEST(Safetensors, LoadReturnsFileOrder) {
  // Header lists b first but a's data comes first: tensors come back in data order.
  std::string hdr =
      R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  io::SafetensorsFile f = io::from_safetensors(with_header(hdr, std::string("\x05\x06\x07", 3)), "mem");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].first, "a");
  EXPECT_EQ(f.tensors[1].first, "b");
  EXPECT_EQ(f.tensors[0].second.to_vector<int64_t>(), (std::vector<int64_t>{5}));
  EXPECT_EQ(f.tensors[1].second.to_vector<int64_t>(), (std::vector<int64_t>{6, 7}));
}

TEST(Safetensors, SaveReplacesAndReportsErrors) {
  std::string path = temp_dir() + "/replace.safetensors";
  io::save_safetensors(path, {{"x", tensor<float>({1.0f})}});
  io::save_safetensors(path, {{"y", tensor<float>({2.0f, 3.0f})}});
  auto f = io::load_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].first, "y");
  std::string bad = temp_dir() + "/no/such/dir/x.safetensors";
  EXPECT_THAT(error_of<IOError>([&] { io::save_safetensors(bad, {{"x", tensor<float>({1.0f})}}); }), HasSubstr(bad));
  EXPECT_THAT(error_of<IOError>([&] { io::load_safetensors(temp_dir()); }), HasSubstr("not a regular file"));
}

TEST(Safetensors, WriterRejectsBadNames) {
  Tensor t = tensor<float>({1.0f});
  EXPECT_THAT(error_of<ValueError>([&] { io::to_safetensors({{"", t}}); }), HasSubstr("non-empty"));
  EXPECT_THAT(error_of<ValueError>([&] {
                io::to_safetensors({{"a", t}, {"b", t}, {"a", t}});
              }),
              HasSubstr("duplicate tensor name \"a\""));
  EXPECT_THAT(error_of<ValueError>([&] { io::to_safetensors({{"__metadata__", t}}); }), HasSubstr("reserved"));
  EXPECT_THAT(error_of<ValueError>([&] { io::to_safetensors({{"a", Tensor()}}); }), HasSubstr("\"a\" is undefined"));
  EXPECT_THAT(error_of<ValueError>([&] { io::to_safetensors({{"bad\xff", t}}); }), HasSubstr("UTF-8"));
}

// --- corrupt files

const std::string kU8x4 = R"({"dtype":"U8","shape":[4],"data_offsets":[0,4]})";

TEST(SafetensorsCorrupt, FileAndHeaderLength) {
  std::string missing = temp_dir() + "/missing.safetensors";
  EXPECT_THAT(error_of<IOError>([&] { io::load_safetensors(missing); }), HasSubstr(missing + ": no such file"));
  expect_corrupt("", "too short");
  expect_corrupt("abcdefg", "too short");
  std::string big(8, '\0');
  uint64_t n = 100;
  std::memcpy(big.data(), &n, 8);
  expect_corrupt(big + "{}", "larger than the file");
  n = uint64_t(1) << 40;
  std::memcpy(big.data(), &n, 8);
  expect_corrupt(big + "{}", "absurdly large");
  n = ~uint64_t(0);
  std::memcpy(big.data(), &n, 8);
  expect_corrupt(big + "{}", "absurdly large");
}

TEST(SafetensorsCorrupt, HeaderJson) {
  expect_corrupt(with_header(R"({"a":)"), "not valid JSON");
  expect_corrupt(with_header("{\"a\xff\":1}"), "not valid JSON");  // not UTF-8
  expect_corrupt(with_header(""), "not valid JSON");
  expect_corrupt(with_header("[1, 2]"), "header must be a JSON object");
  expect_corrupt(with_header(R"("x")"), "header must be a JSON object");
  expect_corrupt(with_header(R"({"a":3})"), "tensor \"a\": entry must be a JSON object");
  expect_corrupt(with_header(R"({"a":)" + kU8x4 + R"(,"a":)" + kU8x4 + "}", "xxxx"), "key \"a\" twice");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","dtype":"F32","shape":[4],"data_offsets":[0,4]}})", "xxxx"),
                 "key \"dtype\" twice");
  expect_corrupt(with_header(R"({"":)" + kU8x4 + "}", "xxxx"), "empty name");
  expect_corrupt(with_header(R"({"__metadata__":[1]})"), "\"__metadata__\" must be an object");
  expect_corrupt(with_header(R"({"__metadata__":{"k":1}})"), "\"__metadata__\" values must be strings");
}

TEST(SafetensorsCorrupt, EntryFields) {
  expect_corrupt(with_header(R"({"a":{"shape":[4],"data_offsets":[0,4]}})", "xxxx"), "tensor \"a\": missing \"dtype\"");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","data_offsets":[0,4]}})", "xxxx"),
                 "tensor \"a\": missing \"shape\"");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4]}})", "xxxx"), "tensor \"a\": missing \"data_offsets\"");
  expect_corrupt(with_header(R"({"a":{"dtype":5,"shape":[4],"data_offsets":[0,4]}})", "xxxx"),
                 "\"dtype\" must be a string");
  expect_corrupt(with_header(R"({"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", "xxxx"),
                 "unknown dtype \"F8_E4M3\"");
  expect_corrupt(with_header(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", "xxxx"),
                 "unknown dtype \"f32\"");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":"4","data_offsets":[0,4]}})", "xxxx"),
                 "\"shape\" must be an array");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4.0],"data_offsets":[0,4]}})", "xxxx"),
                 "non-negative integers");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":["4"],"data_offsets":[0,4]}})", "xxxx"),
                 "non-negative integers");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0]}})", "xxxx"),
                 "\"data_offsets\" must be [begin, end]");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":{"b":0}}})", "xxxx"),
                 "\"data_offsets\" must be [begin, end]");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":["0",4]}})", "xxxx"),
                 "two non-negative integers");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[-1,3]}})", "xxxx"),
                 "two non-negative integers");
}

TEST(SafetensorsCorrupt, ShapesAndSizes) {
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})"), "negative dimension -1");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"),
                 "overflow");
  // Overflow is checked even when another dimension is 0 (Glia's strides would overflow).
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})"),
                 "overflow");
  expect_corrupt(with_header(R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})"),
                 "too many bytes");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}})"),
                 "too large");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[100000000000000000000000],"data_offsets":[0,0]}})"),
                 "non-negative integers");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4,0]}})", "xxxx"), "begin > end");
  expect_corrupt(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "xxxx"),
                 "span 4 bytes but shape [2] of F32 needs 8");
  expect_corrupt(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "xx"),
                 "outside the data area of 2 bytes");
  expect_corrupt(
      with_header(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})"),
      "outside the data area");
}

TEST(SafetensorsCorrupt, Coverage) {
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                             "xxxxxx"),
                 "tensor \"b\": data_offsets [2, 6] overlap");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})",
                             "xxxxxxxxxx"),
                 "tensor \"b\": data_offsets [6, 10] leave a hole");
  expect_corrupt(with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", "xxxxxx"), "leave a hole");
  expect_corrupt(with_header(R"({"a":)" + kU8x4 + "}", "xxxxxxxx"), "trailing bytes");
  expect_corrupt(with_header(R"({"__metadata__":{}})", "x"), "trailing bytes");
  expect_corrupt(
      with_header(R"({"a":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", std::string("\x01\x00\x02", 3)),
      "BOOL element 2 is byte 2");
}

TEST(SafetensorsCorrupt, EveryTruncationOfAValidFile) {
  // No prefix of a valid file parses, and none crashes.
  std::string bytes = io::to_safetensors({{"a", sample(DType::f32, {3})}, {"b", sample(DType::i64, {2})}});
  for (size_t len = 0; len < bytes.size(); ++len) {
    std::string what = "prefix " + std::to_string(len);
    std::string msg = error_of<IOError>([&] { io::from_safetensors(std::string_view(bytes).substr(0, len), what); });
    EXPECT_THAT(msg, HasSubstr(what + ":"));
  }
}

// --- cross-check with an independent Python implementation

TEST(SafetensorsPython, GliaWritesPythonReads) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 lacks numpy";
  io::NamedTensors ts = mixed_tensors();
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"who", "glia \xe2\x9c\x93"}};
  std::string dir = temp_dir();
  io::save_safetensors(dir + "/g.safetensors", ts, meta);
  std::string out;
  ASSERT_EQ(run_python(script(), {"read", dir + "/g.safetensors", dir}, &out), 0) << out;
  std::ifstream mf(dir + "/manifest.json");
  auto m = nlohmann::json::parse(mf);
  EXPECT_EQ(m["metadata"].get<decltype(meta)>(), meta);
  ASSERT_EQ(m["tensors"].size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& e = m["tensors"][i];
    const Tensor& want = ts[i].second;
    EXPECT_EQ(e["name"].get<std::string>(), ts[i].first);
    EXPECT_EQ(e["dtype"].get<std::string>(), st_dtype_name(want.dtype())) << ts[i].first;
    EXPECT_EQ(e["shape"].get<std::vector<int64_t>>(), std::vector<int64_t>(want.shape().begin(), want.shape().end()));
    Tensor got = load_npy(dir + "/" + e["npy"].get<std::string>());
    bool half = is_16bit(want.dtype());
    EXPECT_TRUE(same_bits(got, half ? bits_i32(want) : want)) << ts[i].first;
  }
}

TEST(SafetensorsPython, PythonWritesGliaReads) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 lacks numpy";
  io::NamedTensors ts = mixed_tensors();
  std::string dir = temp_dir();
  nlohmann::json m = {{"metadata", {{"source", "numpy"}, {"n", "42"}}}, {"tensors", nlohmann::json::array()}};
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i].second;
    bool half = is_16bit(t.dtype());
    std::string npy = "in" + std::to_string(i) + ".npy";
    save_npy(dir + "/" + npy, half ? bits_i32(t) : t);
    m["tensors"].push_back({{"name", ts[i].first}, {"dtype", st_dtype_name(t.dtype())}, {"npy", npy}});
  }
  std::ofstream(dir + "/in.json") << m.dump();
  std::string out;
  ASSERT_EQ(run_python(script(), {"write", dir + "/in.json", dir + "/py.safetensors"}, &out), 0) << out;
  io::SafetensorsFile f = io::load_safetensors(dir + "/py.safetensors");
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"source", "numpy"}, {"n", "42"}}));
  ASSERT_EQ(f.tensors.size(), ts.size());
  // The script writes the data in reverse order: Glia returns file (data) order. Empty tensors
  // share offsets with their neighbours, so compare the order of the non-empty ones.
  std::vector<std::string> got_order, want_order;
  for (auto& [n, t] : f.tensors)
    if (t.numel() > 0) got_order.push_back(n);
  for (auto it = ts.rbegin(); it != ts.rend(); ++it)
    if (it->second.numel() > 0) want_order.push_back(it->first);
  EXPECT_EQ(got_order, want_order);
  std::map<std::string, Tensor> got(f.tensors.begin(), f.tensors.end());
  for (auto& [n, t] : ts) {
    ASSERT_TRUE(got.count(n)) << n;
    EXPECT_TRUE(same_bits(got[n], t)) << n;
  }
}

// --- Model::save_weights / load_weights

std::shared_ptr<Sequential> mlp() {
  return std::make_shared<Sequential>(std::vector<LayerPtr>{layers::InputLayer({5}),
                                                            layers::Dense(8, {.activation = "relu"}),
                                                            layers::BatchNormalization(), layers::Dense(3)});
}

std::shared_ptr<Model> shared_functional() {
  KerasTensor in = Input({4});
  layers::Dense shared(4, {.activation = "tanh"}), head(2);
  KerasTensor a = shared(in);
  KerasTensor b = shared(a);
  return std::make_shared<Model>(in, head(layers::Concatenate()({a, b})));
}

std::vector<std::string> names_in(const std::string& path) {
  std::vector<std::string> out;
  for (auto& [n, t] : io::load_safetensors(path).tensors) out.push_back(n);
  return out;
}

TEST(SafetensorsWeights, SequentialRoundTrip) {
  auto m = mlp();
  // Non-default moving statistics, so that non-trainable weights are seen to travel too.
  for (Variable* v : m->weights()) v->assign(uniform(IntList(v->value.shape()), 0.5, 1.5, DType::f32));
  std::string path = temp_dir() + "/mlp.safetensors";
  m->save_weights(path);
  EXPECT_EQ(names_in(path),
            (std::vector<std::string>{"dense/kernel", "dense/bias", "batch_normalization/gamma",
                                      "batch_normalization/beta", "batch_normalization/moving_mean",
                                      "batch_normalization/moving_variance", "dense_1/kernel", "dense_1/bias"}));
  auto fresh = mlp();
  Tensor x = uniform({6, 5}, -1, 1, DType::f32);
  Tensor want = m->predict(x, {.verbose = 0});
  EXPECT_FALSE(same_bits(fresh->predict(x, {.verbose = 0}), want)) << "the test needs different initial weights";
  fresh->load_weights(path);
  EXPECT_TRUE(same_bits(fresh->predict(x, {.verbose = 0}), want));
  auto w0 = m->get_weights(), w1 = fresh->get_weights();
  ASSERT_EQ(w0.size(), w1.size());
  for (size_t i = 0; i < w0.size(); ++i) EXPECT_TRUE(same_bits(w0[i], w1[i]));
}

TEST(SafetensorsWeights, FunctionalWithSharedLayer) {
  auto m = shared_functional();
  std::string path = temp_dir() + "/fn.safetensors";
  m->save_weights(path);
  EXPECT_EQ(names_in(path), (std::vector<std::string>{"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}));
  auto fresh = shared_functional();
  Tensor x = uniform({5, 4}, -1, 1, DType::f32);
  Tensor want = m->predict(x, {.verbose = 0});
  EXPECT_FALSE(same_bits(fresh->predict(x, {.verbose = 0}), want));
  fresh->load_weights(path);
  EXPECT_TRUE(same_bits(fresh->predict(x, {.verbose = 0}), want));
}

TEST(SafetensorsWeights, Errors) {
  auto m = mlp();
  std::string dir = temp_dir();
  std::string path = dir + "/mlp.safetensors";
  m->save_weights(path);

  // Wrong shape: a model whose first Dense is wider. Nothing is assigned when a shape is wrong.
  auto wide = std::make_shared<Sequential>(std::vector<LayerPtr>{layers::InputLayer({5}),
                                                                 layers::Dense(9, {.activation = "relu"}),
                                                                 layers::BatchNormalization(), layers::Dense(3)});
  auto before = wide->get_weights();
  std::string msg = error_of<ShapeError>([&] { wide->load_weights(path); });
  EXPECT_THAT(msg, HasSubstr("\"dense/kernel\""));
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("[5, 8]"));
  auto after = wide->get_weights();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(same_bits(before[i], after[i]));

  // Missing weights: the file lacks the last Dense.
  io::NamedTensors part;
  for (auto& [n, t] : io::load_safetensors(path).tensors)
    if (n.rfind("dense_1/", 0) != 0) part.emplace_back(n, t);
  io::save_safetensors(dir + "/part.safetensors", part);
  msg = error_of<IOError>([&] { mlp()->load_weights(dir + "/part.safetensors"); });
  EXPECT_THAT(msg, HasSubstr(dir + "/part.safetensors"));
  EXPECT_THAT(msg, HasSubstr("dense_1/kernel, dense_1/bias"));

  // Extra weights.
  io::NamedTensors more = io::load_safetensors(path).tensors;
  more.emplace_back("dense_2/kernel", zeros({3, 3}));
  more.emplace_back("stray", zeros({1}));
  io::save_safetensors(dir + "/more.safetensors", more);
  msg = error_of<ValueError>([&] { mlp()->load_weights(dir + "/more.safetensors"); });
  EXPECT_THAT(msg, HasSubstr("dense_2/kernel, stray"));

  // Unbuilt model; missing file.
  auto unbuilt = std::make_shared<Sequential>(std::vector<LayerPtr>{layers::Dense(3)});
  EXPECT_THAT(error_of<ValueError>([&] { unbuilt->save_weights(dir + "/u.safetensors"); }), HasSubstr("not built"));
  EXPECT_THAT(error_of<ValueError>([&] { unbuilt->load_weights(path); }), HasSubstr("build it or call it"));
  EXPECT_THAT(error_of<IOError>([&] { m->load_weights(dir + "/none.safetensors"); }), HasSubstr("no such file"));
}

}  // namespace
