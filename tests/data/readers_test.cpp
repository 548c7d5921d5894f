// IDX and CSV readers: files written here byte by byte in the exact formats,
// raw and gzip-compressed, read back exactly; every kind of bad file gives an
// IOError naming the path and the problem.
#include <gmock/gmock.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <random>

#include "data/data_testing.h"
#include "testing.h"

using namespace glia;
using namespace glia::data;
using namespace glia::data_testing;
using ::testing::HasSubstr;

namespace {

template <class E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

// Expects an IOError from f whose message names `path` and contains each of `parts`.
void expect_io_error(const std::function<void()>& f, const std::string& path, std::vector<std::string> parts) {
  const std::string msg = message_of<IOError>(f);
  EXPECT_THAT(msg, HasSubstr(path));
  for (const auto& p : parts) EXPECT_THAT(msg, HasSubstr(p));
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(g());
  return v;
}

}  // namespace

TEST(ReadIdx, MnistLayoutRawAndGzip) {
  const std::string dir = glia::testing::temp_dir();
  const int64_t n = 3;
  auto pixels = random_bytes(n * 28 * 28, 1);
  auto labels = std::vector<uint8_t>{7, 0, 9};
  for (bool gz : {false, true}) {
    const std::string xp = dir + (gz ? "/images.gz" : "/images"), yp = dir + (gz ? "/labels.gz" : "/labels");
    write_file(xp, idx_bytes(0x08, {n, 28, 28}, pixels), gz);
    write_file(yp, idx_bytes(0x08, {n}, labels), gz);
    Tensor x = read_idx(xp), y = read_idx(yp);
    EXPECT_EQ(x.dtype(), DType::u8);
    EXPECT_EQ(x.shape(), (Shape{3, 28, 28}));
    EXPECT_EQ(y.shape(), (Shape{3}));
    EXPECT_EQ(x.to_vector<uint8_t>(), pixels);
    EXPECT_EQ(y.to_vector<uint8_t>(), labels);
    // Pixel (i, r, c) is byte 16 + i*784 + r*28 + c of the file.
    EXPECT_EQ(x.at<int>({2, 27, 3}), pixels[2 * 784 + 27 * 28 + 3]);
  }
  // The magic is 0x00000803 for images and 0x00000801 for labels.
  auto b = idx_bytes(0x08, {n, 28, 28}, pixels);
  EXPECT_EQ((std::vector<uint8_t>(b.begin(), b.begin() + 8)), (std::vector<uint8_t>{0, 0, 8, 3, 0, 0, 0, 3}));
}

TEST(ReadIdx, EveryTypeIsBigEndian) {
  const std::string dir = glia::testing::temp_dir();
  // int8
  {
    std::vector<int8_t> v = {-128, -1, 0, 1, 127, 5};
    write_file(dir + "/i8", idx_bytes(0x09, {2, 3}, be_bytes(v)));
    Tensor t = read_idx(dir + "/i8");
    EXPECT_EQ(t.dtype(), DType::i32);
    EXPECT_EQ(t.shape(), (Shape{2, 3}));
    EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{-128, -1, 0, 1, 127, 5}));
  }
  // int16
  {
    std::vector<int16_t> v = {-32768, -2, 300, 32767};
    write_file(dir + "/i16", idx_bytes(0x0B, {4}, be_bytes(v)));
    Tensor t = read_idx(dir + "/i16");
    EXPECT_EQ(t.dtype(), DType::i32);
    EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{-32768, -2, 300, 32767}));
  }
  // int32
  {
    std::vector<int32_t> v = {INT32_MIN, -70000, 0, 123456789, INT32_MAX, 1};
    write_file(dir + "/i32", idx_bytes(0x0C, {3, 1, 2}, be_bytes(v)), true);
    Tensor t = read_idx(dir + "/i32");
    EXPECT_EQ(t.shape(), (Shape{3, 1, 2}));
    EXPECT_EQ(t.to_vector<int32_t>(), v);
  }
  // float32 and float64
  {
    std::vector<float> f = {1.5f, -0.0f, 3.4e38f, 1e-40f, -2.25f};
    write_file(dir + "/f32", idx_bytes(0x0D, {5}, be_bytes(f)));
    Tensor t = read_idx(dir + "/f32");
    EXPECT_EQ(t.dtype(), DType::f32);
    auto got = t.to_vector<float>();
    ASSERT_EQ(got.size(), f.size());
    EXPECT_EQ(std::memcmp(got.data(), f.data(), f.size() * 4), 0);
    std::vector<double> d = {3.141592653589793, -1e300, 5e-324};
    write_file(dir + "/f64", idx_bytes(0x0E, {1, 3}, be_bytes(d)), true);
    Tensor u = read_idx(dir + "/f64");
    EXPECT_EQ(u.dtype(), DType::f64);
    EXPECT_EQ(u.to_vector<double>(), d);
  }
  // Empty dims and 0-d files.
  write_file(dir + "/empty", idx_bytes(0x08, {0, 28, 28}, {}));
  EXPECT_EQ(read_idx(dir + "/empty").shape(), (Shape{0, 28, 28}));
  write_file(dir + "/scalar", idx_bytes(0x08, {}, {42}));
  EXPECT_EQ(read_idx(dir + "/scalar").item<int>(), 42);
}

TEST(ReadIdx, BadFilesAreIOErrors) {
  const std::string dir = glia::testing::temp_dir();
  auto read = [](const std::string& p) { return [p] { read_idx(p); }; };

  expect_io_error(read(dir + "/nope"), dir + "/nope", {"no such file"});
  expect_io_error(read(dir), dir, {"directory"});

  write_file(dir + "/short", {0, 0});
  expect_io_error(read(dir + "/short"), dir + "/short", {"not an IDX file", "2 bytes"});
  write_file(dir + "/empty", {});
  expect_io_error(read(dir + "/empty"), dir + "/empty", {"not an IDX file"});
  write_file(dir + "/magic", {0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0});
  expect_io_error(read(dir + "/magic"), dir + "/magic", {"not an IDX file", "0x12345678"});
  write_file(dir + "/type", {0, 0, 0x07, 1, 0, 0, 0, 1, 5});
  expect_io_error(read(dir + "/type"), dir + "/type", {"0x00000701"});

  // The header announces more dims than the file holds.
  write_file(dir + "/header", {0, 0, 8, 3, 0, 0, 0, 1});
  expect_io_error(read(dir + "/header"), dir + "/header", {"truncated IDX header", "3 dims", "8 bytes"});

  // MNIST's training images cut short.
  {
    auto b = idx_bytes(0x08, {60000, 28, 28}, {});
    b.resize(1000, 0);
    write_file(dir + "/trunc", b);
    expect_io_error(read(dir + "/trunc"), dir + "/trunc", {"expected 47040016 bytes of data, file has 1000"});
    write_file(dir + "/trunc.gz", b, true);
    expect_io_error(read(dir + "/trunc.gz"), dir + "/trunc.gz",
                    {"expected 47040016 bytes of data, file has 1000 after decompression"});
  }
  // Extra bytes after the data.
  write_file(dir + "/long", idx_bytes(0x08, {2}, {1, 2, 3}));
  expect_io_error(read(dir + "/long"), dir + "/long", {"expected 10 bytes of data, file has 11"});
  // Data of a wider type cut mid-element.
  write_file(dir + "/f64", idx_bytes(0x0E, {2}, std::vector<uint8_t>(12, 0)));
  expect_io_error(read(dir + "/f64"), dir + "/f64", {"expected 24 bytes", "has 20"});

  // Absurd dims whose product overflows 64 bits.
  write_file(dir + "/huge", idx_bytes(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
  expect_io_error(read(dir + "/huge"), dir + "/huge", {"too large"});
  write_file(dir + "/huge2", idx_bytes(0x0C, {0x7FFFFFFF, 0x7FFFFFFF, 4}, {}));
  expect_io_error(read(dir + "/huge2"), dir + "/huge2", {"too large"});
  // Large but representable dims: a size check, no allocation.
  write_file(dir + "/big", idx_bytes(0x0D, {0xFFFFFFFF, 0xFFFFFFF}, {}));
  expect_io_error(read(dir + "/big"), dir + "/big", {"expected", "file has 12"});
}

// Found by fuzz/idx_fuzz: a zero dim makes the data empty, but the other dims still give the
// strides, whose product overflowed int64 (undefined behaviour) instead of being refused.
TEST(ReadIdx, ZeroDimBesideDimsTooLargeForStridesIsAnIOError) {
  const std::string dir = glia::testing::temp_dir();
  write_file(dir + "/fuzz", {0, 0, 0x0c, 5, 0xb3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 8, 0x28, 3, 0x5b, 0, 0});
  expect_io_error([&] { read_idx(dir + "/fuzz"); }, dir + "/fuzz", {"too large", "non-zero product"});
  write_file(dir + "/zero_first", idx_bytes(0x08, {0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
  expect_io_error([&] { read_idx(dir + "/zero_first"); }, dir + "/zero_first", {"too large"});
  // Zero dims beside dims whose product fits are an empty tensor of that shape.
  write_file(dir + "/empty", idx_bytes(0x0D, {0xFFFFFFFF, 0, 0xFFFF}, {}));
  Tensor t = read_idx(dir + "/empty");
  EXPECT_EQ(t.shape(), (Shape{0xFFFFFFFF, 0, 0xFFFF}));
  EXPECT_EQ(t.numel(), 0);
}

TEST(ReadIdx, CorruptGzipIsAnIOError) {
  const std::string dir = glia::testing::temp_dir();
  auto raw = idx_bytes(0x08, {50, 28, 28}, random_bytes(50 * 784, 3));
  const std::string good = dir + "/good.gz";
  write_file(good, raw, true);
  const std::vector<uint8_t> gz = read_bytes(good);
  ASSERT_GT(gz.size(), 100u);
  EXPECT_EQ(read_idx(good).to_vector<uint8_t>(), std::vector<uint8_t>(raw.begin() + 16, raw.end()));

  // Cut in the middle of the deflate stream, or just before the trailer.
  for (size_t keep : {size_t(12), gz.size() / 2, gz.size() - 4}) {
    const std::string p = dir + "/cut" + std::to_string(keep) + ".gz";
    write_file(p, std::vector<uint8_t>(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(keep)));
    expect_io_error([&] { read_idx(p); }, p, {"truncated gzip"});
  }
  // Garbage in the deflate data.
  {
    auto bad = gz;
    for (size_t i = 20; i < 60; ++i) bad[i] = static_cast<uint8_t>(bad[i] ^ 0x5a);
    const std::string p = dir + "/garbage.gz";
    write_file(p, bad);
    expect_io_error([&] { read_idx(p); }, p, {"gzip"});
  }
  // A wrong CRC in the trailer.
  {
    auto bad = gz;
    bad[bad.size() - 6] ^= 0xff;
    const std::string p = dir + "/crc.gz";
    write_file(p, bad);
    expect_io_error([&] { read_idx(p); }, p, {"corrupt gzip"});
  }
  // Only the gzip magic.
  write_file(dir + "/magic.gz", {0x1f, 0x8b});
  expect_io_error([&] { read_idx(dir + "/magic.gz"); }, dir + "/magic.gz", {"gzip"});
  // Trailing junk after the stream.
  {
    auto bad = gz;
    bad.push_back(1);
    bad.push_back(2);
    bad.push_back(3);
    const std::string p = dir + "/junk.gz";
    write_file(p, bad);
    expect_io_error([&] { read_idx(p); }, p, {"trailing data"});
  }
  // Two concatenated members are one file.
  {
    auto a = idx_bytes(0x08, {4}, {1, 2, 3, 4});
    std::vector<uint8_t> first(a.begin(), a.begin() + 10), second(a.begin() + 10, a.end());
    write_file(dir + "/m1.gz", first, true);
    write_file(dir + "/m2.gz", second, true);
    auto both = read_bytes(dir + "/m1.gz");
    auto b2 = read_bytes(dir + "/m2.gz");
    both.insert(both.end(), b2.begin(), b2.end());
    write_file(dir + "/members.gz", both);
    EXPECT_EQ(read_idx(dir + "/members.gz").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 2, 3, 4}));
  }
}

TEST(ReadCsv, NumbersIntoRowsAndColumns) {
  const std::string dir = glia::testing::temp_dir();
  write_text(dir + "/a.csv", "1,2.5,-3\n4e2, 5 ,+6\r\n\n7,nan,-inf\n");
  Tensor t = read_csv(dir + "/a.csv");
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.shape(), (Shape{3, 3}));
  auto v = glia::testing::values(t);
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[1], 2.5);
  EXPECT_EQ(v[2], -3);
  EXPECT_EQ(v[3], 400);
  EXPECT_EQ(v[4], 5);
  EXPECT_EQ(v[5], 6);
  EXPECT_EQ(v[6], 7);
  EXPECT_TRUE(std::isnan(v[7]));
  EXPECT_TRUE(std::isinf(v[8]) && v[8] < 0);

  write_text(dir + "/h.csv", "a;b\n0.1;0.2\n0.3;0.4");  // no final newline
  Tensor h = read_csv(dir + "/h.csv", {.delimiter = ';', .header = true, .dtype = DType::f64});
  EXPECT_EQ(h.dtype(), DType::f64);
  EXPECT_EQ(h.shape(), (Shape{2, 2}));
  EXPECT_EQ(h.to_vector<double>(), (std::vector<double>{0.1, 0.2, 0.3, 0.4}));

  write_text(dir + "/i.csv", "1\t-2\n9223372036854775807\t0\n");
  Tensor i = read_csv(dir + "/i.csv", {.delimiter = '\t', .dtype = DType::i64});
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, -2, INT64_MAX, 0}));
  write_text(dir + "/u.csv", "0,255\n");
  EXPECT_EQ(read_csv(dir + "/u.csv", {.dtype = DType::u8}).to_vector<int>(), (std::vector<int>{0, 255}));

  // One column, an empty file, a file with only a header, gzip.
  write_text(dir + "/one.csv", "5\n6\n");
  EXPECT_EQ(read_csv(dir + "/one.csv").shape(), (Shape{2, 1}));
  write_text(dir + "/empty.csv", "");
  EXPECT_EQ(read_csv(dir + "/empty.csv").shape(), (Shape{0, 0}));
  write_text(dir + "/hdr.csv", "x,y\n");
  EXPECT_EQ(read_csv(dir + "/hdr.csv", {.header = true}).shape(), (Shape{0, 0}));
  const std::string text = "1,2\n3,4\n";
  write_file(dir + "/z.csv.gz", std::vector<uint8_t>(text.begin(), text.end()), true);
  EXPECT_EQ(read_csv(dir + "/z.csv.gz").to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
}

TEST(ReadCsv, BadFilesAreIOErrors) {
  const std::string dir = glia::testing::temp_dir();
  auto csv = [&](const std::string& name, const std::string& text, CsvOptions o = {}) {
    write_text(dir + "/" + name, text);
    return [p = dir + "/" + name, o] { read_csv(p, o); };
  };
  expect_io_error([&] { read_csv(dir + "/missing.csv"); }, dir + "/missing.csv", {"no such file"});
  expect_io_error(csv("ragged.csv", "1,2,3\n4,5,6\n7,8\n"), dir + "/ragged.csv",
                  {"line 3 has 2 fields, expected 3 like line 1"});
  expect_io_error(csv("long.csv", "x\n1,2\n3,4,5\n", {.header = true}), dir + "/long.csv",
                  {"line 3 has 3 fields, expected 2 like line 2"});
  expect_io_error(csv("word.csv", "1,2\n3,abc\n"), dir + "/word.csv", {"line 2, field 2", "\"abc\" is not a number"});
  expect_io_error(csv("emptyfield.csv", "1,,3\n"), dir + "/emptyfield.csv", {"line 1, field 2", "not a number"});
  expect_io_error(csv("trail.csv", "1,2x\n"), dir + "/trail.csv", {"\"2x\" is not a number"});
  expect_io_error(csv("hdr.csv", "a,b\n1,2\n"), dir + "/hdr.csv", {"line 1, field 1", "\"a\""});
  expect_io_error(csv("frac.csv", "1,2.5\n", {.dtype = DType::i32}), dir + "/frac.csv", {"\"2.5\" is not an integer"});
  expect_io_error(csv("big.csv", "1,256\n", {.dtype = DType::u8}), dir + "/big.csv", {"256 is out of range for uint8"});
  expect_io_error(csv("neg.csv", "-1\n", {.dtype = DType::u8}), dir + "/neg.csv", {"out of range"});
  expect_io_error(csv("i32.csv", "3000000000\n", {.dtype = DType::i32}), dir + "/i32.csv", {"out of range"});
  expect_io_error(csv("i64.csv", "99999999999999999999\n", {.dtype = DType::i64}), dir + "/i64.csv", {"out of range"});
  expect_io_error(csv("f.csv", "1e999\n", {.dtype = DType::f64}), dir + "/f.csv", {"out of range"});
  EXPECT_THROW(read_csv(dir + "/word.csv", {.dtype = DType::b8}), ValueError);
}

TEST(ReadIdx, RandomDamageGivesAnIOErrorOrAValidTensor) {
  // Truncations and byte flips anywhere in raw and gzip files: never a crash, never another error.
  const std::string dir = glia::testing::temp_dir();
  std::mt19937 g(5);
  const auto raw = idx_bytes(0x0C, {3, 7, 5}, random_bytes(3 * 7 * 5 * 4, 6));
  write_file(dir + "/ref.gz", raw, true);
  const auto gz = read_bytes(dir + "/ref.gz");
  int errors = 0, reads = 0;
  for (int trial = 0; trial < 400; ++trial) {
    auto b = trial % 2 ? gz : raw;
    if (g() % 2) {
      b.resize(g() % b.size());
    } else {
      for (int k = 0, n = 1 + static_cast<int>(g() % 4); k < n; ++k) b[g() % b.size()] = static_cast<uint8_t>(g());
    }
    const std::string p = dir + "/damaged";
    write_file(p, b);
    try {
      Tensor t = read_idx(p);
      ++reads;
      EXPECT_EQ(static_cast<size_t>(t.numel()) * t.itemsize() + 4 + 4 * static_cast<size_t>(t.dim()),
                trial % 2 ? raw.size() : b.size());
    } catch (const IOError& e) {
      ++errors;
      EXPECT_THAT(e.what(), HasSubstr(p));
    }
  }
  EXPECT_GT(errors, 100);
  EXPECT_GT(reads, 0);  // flips in the data bytes leave a valid file
}
