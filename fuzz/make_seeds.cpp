// Writes the seed corpora of the fuzz targets: small valid files of each format, so that the
// fuzzers start from inputs that reach past the first checks. Usage: make_seeds <fuzz/corpus>.
// scripts/fuzz does not run it; rerun it by hand (build-fuzz/fuzz/make_seeds fuzz/corpus) when a
// format changes, and commit the result.
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "glia/glia.h"

namespace fs = std::filesystem;
using namespace glia;

namespace {

std::string out_root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(out_root + "/" + target);
  std::string path = out_root + "/" + target + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw IOError(path, "cannot write");
  std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
}

std::string gzip(const std::string& in) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw Error("deflateInit2");
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw Error("deflate");
  out.resize(z.total_out);
  return out;
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void safetensors_seeds() {
  put("safetensors", "f32_matrix", io::to_safetensors({{"w", arange(0, 6, 1, {.dtype = DType::f32}).reshape({2, 3})}}));
  put("safetensors", "mixed_dtypes_metadata",
      io::to_safetensors({{"a", arange(0, 3, 1, {.dtype = DType::f64})},
                          {"b", arange(0, 4, 1, {.dtype = DType::i64}).reshape({2, 2})},
                          {"c", arange(0, 2, 1, {.dtype = DType::i32})},
                          {"d", arange(0, 3, 1, {.dtype = DType::u8})},
                          {"e", arange(0, 2, 1).to(DType::bf16)},
                          {"f", arange(0, 2, 1).to(DType::f16)},
                          {"g", tensor(std::vector<int64_t>{0, 1, 1}).to(DType::b8)}},
                         {{"format", "pt"}, {"note", "seed"}}));
  put("safetensors", "empty_and_scalar",
      io::to_safetensors({{"empty", Tensor::empty({0, 3}, DType::f32)}, {"scalar", full({}, 2.5)}}));
  put("safetensors", "no_tensors", io::to_safetensors({}, {{"k", "v"}}));
}

void model_zip_seeds() {
  const std::string dir = fs::temp_directory_path() / ("glia-make-seeds-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  manual_seed(1);
  auto compiled = std::make_shared<Sequential>(std::vector<LayerPtr>{layers::InputLayer({2}), layers::Dense(2)});
  compiled->compile("adam", "mse");
  compiled->train_on_batch(ones({1, 2}), zeros({1, 2}));
  compiled->save(dir + "/compiled.glia");
  put("model_zip", "dense_adam.glia", file_bytes(dir + "/compiled.glia"));

  auto plain = std::make_shared<Sequential>(std::vector<LayerPtr>{layers::InputLayer({1}), layers::Dense(1)});
  plain->save(dir + "/plain.glia");
  put("model_zip", "dense_uncompiled.glia", file_bytes(dir + "/plain.glia"));

  io::write_zip(dir + "/stored.zip", {{"a.txt", "hello"}, {"dir/b.bin", std::string(3, '\0')}});
  put("model_zip", "stored.zip", file_bytes(dir + "/stored.zip"));
  io::write_zip(dir + "/deflated.zip", {{"x", std::string(64, 'x')}}, /*compress=*/true);
  put("model_zip", "deflated.zip", file_bytes(dir + "/deflated.zip"));
  io::write_zip(dir + "/empty.zip", {});
  put("model_zip", "empty.zip", file_bytes(dir + "/empty.zip"));
  // model_members_fuzz takes the members joined by its separator.
  for (const char* name : {"compiled", "plain"}) {
    auto members = io::read_zip(dir + "/" + name + ".glia");
    std::string joined;
    for (const char* m : {"metadata.json", "config.json", "model.safetensors", "optimizer.safetensors"})
      joined += (joined.empty() ? "" : "\n@@member@@\n") + members.at(m);
    put("model_members", std::string(name) + ".members", joined);
  }
  fs::remove_all(dir);
}

// An IDX file: magic 0x0000TTNN, big-endian dims, big-endian data.
std::string idx(unsigned char type, const std::vector<uint32_t>& dims, const std::vector<unsigned char>& data) {
  std::string b = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((d >> s) & 0xff));
  b.append(data.begin(), data.end());
  return b;
}

void idx_seeds() {
  put("idx", "u8_images", idx(0x08, {2, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 255}));
  put("idx", "u8_labels", idx(0x08, {4}, {0, 1, 9, 3}));
  put("idx", "i8", idx(0x09, {3}, {0x80, 0x00, 0x7f}));
  put("idx", "i16", idx(0x0B, {2}, {0xff, 0xfe, 0x01, 0x02}));
  put("idx", "i32", idx(0x0C, {1, 2}, {0x80, 0, 0, 0, 0, 0, 0, 42}));
  put("idx", "f32", idx(0x0D, {2}, {0x3f, 0x80, 0, 0, 0xc0, 0x49, 0x0f, 0xdb}));
  put("idx", "f64", idx(0x0E, {1}, {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}));
  put("idx", "empty", idx(0x08, {0, 5}, {}));
  put("idx", "scalar", idx(0x08, {}, {7}));
  put("idx", "u8_images.gz", gzip(idx(0x08, {2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8})));
}

std::string cifar_record(unsigned char label, unsigned char seed) {
  std::string r(1 + 32 * 32 * 3, '\0');
  r[0] = static_cast<char>(label);
  for (size_t i = 1; i < r.size(); ++i) r[i] = static_cast<char>((i * seed) & 0xff);
  return r;
}

void cifar_seeds() {
  // One raw record is 3073 bytes, the smallest valid batch file; gzip keeps the others small.
  put("cifar", "one_record.bin", cifar_record(3, 0));
  put("cifar", "one_record.bin.gz", gzip(cifar_record(9, 1)));
  put("cifar", "two_records.bin.gz", gzip(cifar_record(0, 0) + cifar_record(5, 3)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  out_root = argv[1];
  safetensors_seeds();
  model_zip_seeds();
  idx_seeds();
  cifar_seeds();
  return 0;
}
