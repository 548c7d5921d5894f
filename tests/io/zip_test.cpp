// Zip archives: round trips (binary, empty and large members; stored and deflated), Python's
// zipfile reading Glia's archives and the reverse, every kind of corrupt or hostile file (each an
// IOError naming the file), and atomic replacement.
#include "glia/io/zip.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "glia/core/error.h"
#include "testing.h"

using namespace glia;
using namespace glia::io;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

using Members = std::vector<std::pair<std::string, std::string>>;

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

/// Binary members (NUL bytes, all byte values), an empty one, a compressible one and a 5 MB one,
/// deliberately not in name order.
Members sample_members() {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  return {{"zeta.json", R"({"name": "model"})"},
          {"weights/a.bin", std::string("\0\0\x01\0\xff", 5)},
          {"empty", ""},
          {"all_bytes", all_bytes},
          {"text/repeated.txt", std::string(100000, 'x') + "tail"},
          {"big.bin", random_bytes(5 << 20, 7)}};
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string script() { return std::string(GLIA_SOURCE_DIR) + "/tests/python/zip_check.py"; }

/// The IOError message of read_zip(path), or "" when it does not throw one.
std::string read_error(const std::string& path, const std::vector<std::string>& required = {}) {
  try {
    read_zip(path, required);
  } catch (const IOError& e) {
    return e.what();
  }
  return "";
}

/// Replaces every occurrence of `from` in the file by `to` (same length), e.g. a member name in both
/// its local header and the central directory. Returns how many were replaced.
int patch(const std::string& path, const std::string& from, const std::string& to) {
  std::string bytes = slurp(path);
  int count = 0;
  for (size_t pos = bytes.find(from); pos != std::string::npos; pos = bytes.find(from, pos + 1)) {
    bytes.replace(pos, from.size(), to);
    ++count;
  }
  spit(path, bytes);
  return count;
}

void put_le(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

/// A hand-made zip64 archive whose deflated members each hold an empty deflate stream but declare
/// `declared` uncompressed bytes: what a zip bomb's headers look like, without the bomb.
std::string zip64_with_sizes(const std::vector<std::pair<std::string, uint64_t>>& members) {
  const std::string data("\x03\x00", 2);  // an empty final fixed-Huffman block
  std::string out, cd;
  for (const auto& [name, declared] : members) {
    uint64_t offset = out.size();
    put_le(out, 0x04034b50, 4);
    put_le(out, 45, 2);  // version needed: zip64
    put_le(out, 0, 2);
    put_le(out, 8, 2);  // deflate
    put_le(out, 0, 2);
    put_le(out, 0x21, 2);
    put_le(out, 0, 4);  // CRC, never reached
    put_le(out, 0xffffffff, 4);
    put_le(out, 0xffffffff, 4);
    put_le(out, name.size(), 2);
    put_le(out, 20, 2);
    out += name;
    put_le(out, 1, 2);
    put_le(out, 16, 2);
    put_le(out, declared, 8);
    put_le(out, data.size(), 8);
    out += data;

    put_le(cd, 0x02014b50, 4);
    put_le(cd, 45, 2);
    put_le(cd, 45, 2);
    put_le(cd, 0, 2);
    put_le(cd, 8, 2);
    put_le(cd, 0, 2);
    put_le(cd, 0x21, 2);
    put_le(cd, 0, 4);
    put_le(cd, 0xffffffff, 4);
    put_le(cd, 0xffffffff, 4);
    put_le(cd, name.size(), 2);
    put_le(cd, 28, 2);
    put_le(cd, 0, 2);  // comment
    put_le(cd, 0, 2);  // disk
    put_le(cd, 0, 2);
    put_le(cd, 0, 4);
    put_le(cd, 0xffffffff, 4);
    cd += name;
    put_le(cd, 1, 2);
    put_le(cd, 24, 2);
    put_le(cd, declared, 8);
    put_le(cd, data.size(), 8);
    put_le(cd, offset, 8);
  }
  uint64_t cd_offset = out.size();
  out += cd;
  uint64_t eocd64 = out.size();
  put_le(out, 0x06064b50, 4);
  put_le(out, 44, 8);
  put_le(out, 45, 2);
  put_le(out, 45, 2);
  put_le(out, 0, 4);
  put_le(out, 0, 4);
  put_le(out, members.size(), 8);
  put_le(out, members.size(), 8);
  put_le(out, cd.size(), 8);
  put_le(out, cd_offset, 8);
  put_le(out, 0x07064b50, 4);
  put_le(out, 0, 4);
  put_le(out, eocd64, 8);
  put_le(out, 1, 4);
  put_le(out, 0x06054b50, 4);
  put_le(out, 0, 2);
  put_le(out, 0, 2);
  put_le(out, 0xffff, 2);
  put_le(out, 0xffff, 2);
  put_le(out, 0xffffffff, 4);
  put_le(out, 0xffffffff, 4);
  put_le(out, 0, 2);
  return out;
}

class ZipRoundTrip : public ::testing::TestWithParam<bool> {};

}  // namespace

TEST_P(ZipRoundTrip, BinaryEmptyAndLargeMembers) {
  Members members = sample_members();
  std::string path = temp_dir() + "/model.glia";
  write_zip(path, members, GetParam());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto got = read_zip(path);
  ASSERT_EQ(got.size(), members.size());
  for (const auto& [name, bytes] : members) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(got[name] == bytes) << name << ": " << got[name].size() << " vs " << bytes.size() << " bytes";
  }
  // Deflate shrinks the compressible member; storing keeps every byte.
  uintmax_t size = std::filesystem::file_size(path);
  if (GetParam())
    EXPECT_LT(size, (5u << 20) + 50000);
  else
    EXPECT_GT(size, (5u << 20) + 100000);
}

TEST_P(ZipRoundTrip, PythonReadsGliaArchiveInOrder) {
  Members members = sample_members();
  std::string dir = temp_dir();
  write_zip(dir + "/m.zip", members, GetParam());
  std::string out;
  ASSERT_EQ(run_python(script(), {"read", dir + "/m.zip", dir}, &out), 0) << out;
  auto manifest = nlohmann::json::parse(slurp(dir + "/manifest.json"));
  ASSERT_EQ(manifest["members"].size(), members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    const auto& m = manifest["members"][i];
    EXPECT_EQ(m["name"], members[i].first) << "member order";
    EXPECT_EQ(m["size"], members[i].second.size());
    EXPECT_EQ(m["method"], GetParam() ? 8 : 0) << members[i].first;
    EXPECT_TRUE(slurp(dir + "/" + m["file"].get<std::string>()) == members[i].second) << members[i].first;
  }
}

INSTANTIATE_TEST_SUITE_P(Zip, ZipRoundTrip, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Deflated" : "Stored"; });

TEST(ZipTest, EmptyArchiveRoundTrip) {
  std::string dir = temp_dir();
  write_zip(dir + "/e.zip", {});
  EXPECT_TRUE(read_zip(dir + "/e.zip").empty());
  std::string out;
  ASSERT_EQ(run_python(script(), {"read", dir + "/e.zip", dir}, &out), 0) << out;
  EXPECT_TRUE(nlohmann::json::parse(slurp(dir + "/manifest.json"))["members"].empty());
}

TEST(ZipTest, GliaReadsPythonArchive) {
  Members members = sample_members();
  std::string dir = temp_dir();
  nlohmann::json manifest = {{"members", nlohmann::json::array()}};
  for (size_t i = 0; i < members.size(); ++i) {
    std::string file = "in" + std::to_string(i) + ".bin";
    spit(dir + "/" + file, members[i].second);
    manifest["members"].push_back({{"name", members[i].first}, {"file", file}, {"deflate", i % 2 == 1}});
  }
  spit(dir + "/in.json", manifest.dump());
  std::string out;
  ASSERT_EQ(run_python(script(), {"write", dir + "/in.json", dir + "/py.zip"}, &out), 0) << out;
  auto got = read_zip(dir + "/py.zip");
  ASSERT_EQ(got.size(), members.size());
  for (const auto& [name, bytes] : members) EXPECT_TRUE(got[name] == bytes) << name;
}

TEST(ZipTest, MissingFile) {
  std::string path = temp_dir() + "/nope.zip";
  std::string err = read_error(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("no such file"));
}

TEST(ZipTest, EmptyFile) {
  std::string path = temp_dir() + "/empty.zip";
  spit(path, "");
  std::string err = read_error(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("empty file"));
}

TEST(ZipTest, WrongMagic) {
  std::string path = temp_dir() + "/text.zip";
  spit(path, "this is a text file, not a zip archive\n");
  std::string err = read_error(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("wrong magic"));
}

TEST(ZipTest, DirectoryIsNotAnArchive) {
  std::string path = temp_dir();
  EXPECT_THAT(read_error(path), HasSubstr("not a regular file"));
}

TEST(ZipTest, TruncatedAtEveryCutPoint) {
  for (bool compress : {false, true}) {
    std::string dir = temp_dir();
    write_zip(dir + "/full.zip", {{"config.json", R"({"a": 1})"}, {"w", std::string(300, '\x05')}, {"e", ""}},
              compress);
    std::string full = slurp(dir + "/full.zip");
    ASSERT_GT(full.size(), 100u);
    std::string path = dir + "/cut.zip";
    for (size_t cut = 0; cut < full.size(); ++cut) {
      spit(path, full.substr(0, cut));
      std::string err = read_error(path);
      EXPECT_THAT(err, HasSubstr(path)) << "cut at " << cut << " of " << full.size() << (compress ? " deflated" : "");
    }
  }
}

TEST(ZipTest, FlippedByteFailsCrc) {
  std::string path = temp_dir() + "/m.zip";
  std::string payload = "0123456789abcdefghijklmnopqrstuvwxyz";
  write_zip(path, {{"first", "x"}, {"payload", payload}});
  ASSERT_EQ(patch(path, "0123456789abcdefghij", "0123456789abcdefghiJ"), 1);
  std::string err = read_error(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("payload"));
  EXPECT_THAT(err, HasSubstr("CRC"));
}

TEST(ZipTest, FlippedByteInDeflatedDataFails) {
  std::string dir = temp_dir();
  std::string path = dir + "/m.zip";
  // Text from a small alphabet, so that deflate uses Huffman blocks rather than a stored block.
  std::string text = random_bytes(4000, 3);
  for (auto& c : text) c = static_cast<char>('a' + static_cast<unsigned char>(c) % 6);
  write_zip(path, {{"payload", text}}, true);
  std::string good = slurp(path);
  auto u16 = [&](size_t at) {
    return static_cast<size_t>(static_cast<unsigned char>(good[at]) | static_cast<unsigned char>(good[at + 1]) << 8);
  };
  size_t start = 30 + u16(26) + u16(28);
  size_t comp = u16(18) | u16(20) << 16;
  ASSERT_GT(comp, 100u);
  ASSERT_LT(comp, text.size());
  // Bytes all through the compressed data (not its last, whose padding bits are unused).
  for (size_t pos = start; pos + 1 < start + comp; pos += 37) {
    std::string bad = good;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
    spit(path, bad);
    std::string err = read_error(path);
    EXPECT_THAT(err, HasSubstr(path)) << "flipped byte " << pos;
    EXPECT_THAT(err, HasSubstr("payload")) << "flipped byte " << pos;
  }
}

TEST(ZipTest, FlippedByteAnywhereNeverCrashes) {
  // Headers and central directory included: each corruption is either harmless (a timestamp, say)
  // or an IOError, never a crash or another exception.
  for (bool compress : {false, true}) {
    std::string path = temp_dir() + "/m.zip";
    write_zip(path, {{"config.json", R"({"a": 1})"}, {"w", std::string(200, '\x05')}}, compress);
    std::string good = slurp(path);
    int errors = 0;
    for (size_t pos = 0; pos < good.size(); ++pos) {
      for (unsigned char mask : {0x01, 0x80, 0xff}) {
        std::string bad = good;
        bad[pos] = static_cast<char>(bad[pos] ^ mask);
        spit(path, bad);
        try {
          read_zip(path);
        } catch (const IOError& e) {
          EXPECT_THAT(e.what(), HasSubstr(path));
          ++errors;
        }
      }
    }
    EXPECT_GT(errors, static_cast<int>(good.size()));  // most flips must be caught
  }
}

TEST(ZipTest, RequiredMembers) {
  std::string path = temp_dir() + "/m.zip";
  write_zip(path, {{"config.json", "{}"}, {"weights.safetensors", "w"}});
  auto got = read_zip(path, {"config.json", "weights.safetensors"});
  EXPECT_EQ(got.at("weights.safetensors"), "w");
  std::string err = read_error(path, {"config.json", "optimizer.safetensors"});
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("missing member 'optimizer.safetensors'"));
}

TEST(ZipTest, UnsafeAndDuplicateNamesRefused) {
  std::string dir = temp_dir();
  // The names are patched in place (local header and central directory), so the archive stays valid.
  struct Case {
    std::string name, patched, expect;
  };
  for (const Case& c : std::vector<Case>{{"QQ/evil", "../evil", "contains '..'"},
                                         {"a/QQ/b", "a/../b", "contains '..'"},
                                         {"_etc_passwd", "/etc_passwd", "absolute"},
                                         {"dupX", "dup1", ""}}) {
    std::string path = dir + "/n.zip";
    write_zip(path, {{"dup1", "one"}, {c.name, "two"}});
    ASSERT_EQ(patch(path, c.name, c.patched), 2) << c.name;
    std::string err = read_error(path);
    EXPECT_THAT(err, HasSubstr(path)) << c.patched;
    EXPECT_THAT(err, HasSubstr(c.expect)) << c.patched;
  }
}

TEST(ZipTest, BadNamesRefusedOnWrite) {
  std::string dir = temp_dir();
  for (const std::string& name : {std::string(""), std::string("../x"), std::string("/abs"), std::string("a/../b"),
                                  std::string("C:/x"), std::string("a\0b", 3)})
    EXPECT_THROW(write_zip(dir + "/w.zip", {{name, "x"}}), ValueError) << name;
  EXPECT_THROW(write_zip(dir + "/w.zip", {{"a", "1"}, {"a", "2"}}), ValueError);
  EXPECT_FALSE(std::filesystem::exists(dir + "/w.zip"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/w.zip.tmp"));
  // Names with dots that are not "..": fine.
  write_zip(dir + "/w.zip", {{"a..b/.x/..c", "1"}});
  EXPECT_EQ(read_zip(dir + "/w.zip").at("a..b/.x/..c"), "1");
}

TEST(ZipTest, ZipBombSizesRefused) {
  std::string dir = temp_dir();
  std::string path = dir + "/bomb.zip";
  spit(path, zip64_with_sizes({{"huge", (uint64_t{8} << 30) + 1}}));
  std::string err = read_error(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("8 GiB"));

  spit(path, zip64_with_sizes({{"a", uint64_t{6} << 30}, {"b", uint64_t{6} << 30}, {"c", uint64_t{6} << 30}}));
  err = read_error(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("16 GiB"));

  // Under the limits, but more than deflate can make from two bytes.
  spit(path, zip64_with_sizes({{"a", uint64_t{1} << 30}}));
  err = read_error(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("zip bomb"));

  // The hand-made format itself is sound: the same archive declaring its true size (0, CRC 0) reads.
  spit(path, zip64_with_sizes({{"a", 0}}));
  EXPECT_EQ(read_zip(path).at("a"), "");
}

TEST(ZipTest, WriteToMissingDirectoryFails) {
  std::string dir = temp_dir() + "/no/such/dir";
  std::string path = dir + "/m.zip";
  try {
    write_zip(path, {{"a", "1"}});
    ADD_FAILURE() << "no IOError";
  } catch (const IOError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
  EXPECT_THROW(write_zip(path, {}), IOError);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(ZipTest, ReplacesExistingFileAtomically) {
  std::string dir = temp_dir();
  std::string path = dir + "/m.zip";
  write_zip(path, {{"v", "old"}});
  write_zip(path, {{"v", "new"}, {"w", "2"}}, true);
  auto got = read_zip(path);
  EXPECT_EQ(got.at("v"), "new");
  EXPECT_EQ(got.size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  // A write that fails (its temp path is taken by a directory) leaves the old archive intact.
  std::string before = slurp(path);
  std::filesystem::create_directory(path + ".tmp");
  EXPECT_THROW(write_zip(path, {{"v", "newest"}}), IOError);
  EXPECT_THROW(write_zip(path, {}), IOError);
  EXPECT_TRUE(slurp(path) == before);
  EXPECT_EQ(read_zip(path).at("v"), "new");
  // libzip's own temporary files (path.tmp.XXXXXX) are cleaned up too.
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_TRUE(e.path().filename() == "m.zip" || e.path().filename() == "m.zip.tmp") << e.path();
}
