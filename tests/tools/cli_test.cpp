// glia summary and glia predict on a saved model: the printed summary is the model's, and the
// predictions read from IDX and CSV files are the model's predict() on the same samples.
#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "glia/core/cuda.h"
#include "testing.h"

using namespace glia;
using glia::testing::run_command;
using glia::testing::temp_dir;
using ::testing::HasSubstr;

namespace {

const std::string kGlia = std::string(GLIA_BINARY_DIR) + "/tools/glia";

void write_be32(std::ofstream& f, uint32_t v) {
  unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                        static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

/// Parses CSV text of numbers into rows.
std::vector<std::vector<double>> parse_csv(const std::string& text) {
  std::vector<std::vector<double>> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<double> row;
    std::istringstream ls(line);
    std::string field;
    while (std::getline(ls, field, ',')) row.push_back(std::stod(field));
    rows.push_back(row);
  }
  return rows;
}

struct Saved {
  std::shared_ptr<Sequential> model;
  std::string path;
};

Saved saved_model(const std::string& dir) {
  manual_seed(4);
  auto m = std::make_shared<Sequential>(
      std::vector<LayerPtr>{layers::InputLayer({6, 4, 1}), layers::Conv2D(3, 3, {.padding = "same"}), layers::Flatten(),
                            layers::Dense(5, {.activation = "softmax"})});
  m->compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  m->train_on_batch(glia::testing::uniform({4, 6, 4, 1}, 0, 1, DType::f32), tensor(std::vector<int64_t>{0, 1, 2, 3}));
  std::string path = dir + "/small.glia";
  m->save(path);
  return {m, path};
}

}  // namespace

TEST(Cli, SummaryPrintsTheSavedModelAndItsOptimizer) {
  if (!std::filesystem::exists(kGlia)) GTEST_SKIP() << "the glia tool is not built";
  std::string dir = temp_dir();
  Saved s = saved_model(dir);
  std::string out;
  ASSERT_EQ(run_command({kGlia, "summary", s.path}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr(s.model->summary_string()));
  EXPECT_THAT(out, HasSubstr("Optimizer: Adam"));
  EXPECT_THAT(out, HasSubstr("Optimizer iterations: 1"));
  EXPECT_THAT(out, HasSubstr("sparse_categorical_crossentropy"));
  EXPECT_EQ(run_command({kGlia, "summary", dir + "/nope.glia"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("nope.glia"));
}

TEST(Cli, PredictOnIdxAndCsvGivesTheModelsOutputs) {
  if (!std::filesystem::exists(kGlia)) GTEST_SKIP() << "the glia tool is not built";
  std::string dir = temp_dir();
  Saved s = saved_model(dir);
  // Seven 6x4 8-bit images, as an IDX file (magic 0x00000803: unsigned bytes, 3 dims).
  const int64_t n = 7;
  std::vector<uint8_t> pixels(n * 24);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  {
    std::ofstream f(dir + "/images.idx", std::ios::binary);
    write_be32(f, 0x00000803);
    write_be32(f, n);
    write_be32(f, 6);
    write_be32(f, 4);
    f.write(reinterpret_cast<const char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
  }
  std::vector<float> xf(pixels.begin(), pixels.end());
  Tensor x = tensor(xf, {n, 6, 4, 1}) / 255.0;
  auto want = s.model->predict(x, {.verbose = 0}).to(DType::f64).to_vector<double>();

  std::string out;
  ASSERT_EQ(run_command({kGlia, "predict", s.path, dir + "/images.idx", "--scale", "255"}, &out), 0) << out;
  auto rows = parse_csv(out);
  ASSERT_EQ(rows.size(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(rows[i].size(), 5u);
    for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(rows[i][j], want[i * 5 + j], 1e-7) << i << "," << j;
  }

  // The same samples as CSV rows of 24 values, classes only, into a file.
  {
    std::ofstream f(dir + "/images.csv");
    f << "header line\n";
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < 24; ++j) f << int(pixels[i * 24 + j]) << (j == 23 ? "\n" : ",");
  }
  ASSERT_EQ(run_command({kGlia, "predict", s.path, dir + "/images.csv", "--header", "--scale", "255", "--argmax", "-o",
                         dir + "/classes.csv"},
                        &out),
            0)
      << out;
  std::ifstream f(dir + "/classes.csv");
  std::stringstream ss;
  ss << f.rdbuf();
  auto classes = parse_csv(ss.str());
  ASSERT_EQ(classes.size(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < 5; ++j)
      if (want[i * 5 + j] > want[i * 5 + best]) best = j;
    EXPECT_EQ(classes[i][0], best) << "sample " << i;
  }

  // Samples of the wrong size say what the model takes.
  std::ofstream(dir + "/short.csv") << "1,2,3\n4,5,6\n";
  EXPECT_EQ(run_command({kGlia, "predict", s.path, dir + "/short.csv"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("takes samples of shape [6, 4, 1] (24 values)"));
  EXPECT_EQ(run_command({kGlia, "predict", s.path, dir + "/missing.idx"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("missing.idx"));
}

namespace {

// glia train --device: a bad name is refused before any work; cuda trains on the GPU when there is
// one and otherwise fails with the device named (exit status 1, no crash).
TEST(Cli, TrainDeviceOption) {
  if (!std::filesystem::exists(kGlia)) GTEST_SKIP() << "the glia tool is not built";
  std::string dir = temp_dir();
  std::string out;
  std::vector<std::string> base = {kGlia,      "train", "--model",   "mlp", "--limit",   "256",
                                   "--epochs", "1",     "--verbose", "0",   "--history", dir + "/h.csv"};
  auto with = [&](std::string device) {
    auto args = base;
    args.push_back("--device");
    args.push_back(std::move(device));
    return args;
  };
  EXPECT_EQ(run_command(with("tpu"), &out), 1) << out;
  EXPECT_THAT(out, HasSubstr("expected cpu, cuda or cuda:N, got 'tpu'"));
  int rc = run_command(with("cuda"), &out);
  if (glia::cuda::is_available()) {
    EXPECT_EQ(rc, 0) << out;
    EXPECT_TRUE(std::filesystem::exists(dir + "/h.csv"));
  } else {
    EXPECT_EQ(rc, 1) << out;
    EXPECT_THAT(out, HasSubstr("cuda(0)"));
  }
}

// glia --version: the version, then what CUDA this build and machine have.
TEST(Cli, VersionSaysWhatCudaThereIs) {
  if (!std::filesystem::exists(kGlia)) GTEST_SKIP() << "the glia tool is not built";
  std::string out;
  ASSERT_EQ(run_command({kGlia, "--version"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr(std::string("glia ") + version() + "\n"));
  EXPECT_THAT(out, HasSubstr(cuda::describe()));
}

// glia train --steps-per-execution: the same training, the loss read every 4 steps: the same
// history (compiled steps are deterministic on the CPU).
TEST(Cli, TrainStepsPerExecution) {
  if (!std::filesystem::exists(kGlia)) GTEST_SKIP() << "the glia tool is not built";
  std::string dir = temp_dir();
  std::string out;
  auto run = [&](const std::string& spe, const std::string& csv) {
    return run_command({kGlia, "train", "--model", "mlp", "--limit", "300", "--epochs", "2", "--verbose", "0",
                        "--history", csv, "--steps-per-execution", spe},
                       &out);
  };
  ASSERT_EQ(run("1", dir + "/one.csv"), 0) << out;
  ASSERT_EQ(run("4", dir + "/four.csv"), 0) << out;
  auto read_file = [](const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  std::string one = read_file(dir + "/one.csv"), four = read_file(dir + "/four.csv");
  EXPECT_THAT(one, HasSubstr("\n1,"));  // a header and two epochs
  EXPECT_EQ(one, four);
  EXPECT_NE(run("0", dir + "/zero.csv"), 0);  // a bad count is refused by the parser
  EXPECT_THAT(out, HasSubstr("steps-per-execution"));
}

}  // namespace
