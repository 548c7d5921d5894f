// ONNX export: every exported model passes the official checker (python3-onnx, full_check) and
// computes what Glia computes (max abs difference <= 1e-5) when ONNX Runtime (npm
// onnxruntime-node, driven by tests/onnx/run_ort.js) runs it at batch 1, 3 and 7.
#include "glia/onnx/export.h"

#include <gmock/gmock.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "glia/glia.h"
#include "testing.h"

namespace glia::testing {
namespace {

using namespace glia::layers;
using ::testing::HasSubstr;

std::string source(const std::string& rel) { return std::string(GLIA_SOURCE_DIR) + "/" + rel; }

bool have_ort() {
  static const bool ok =
      run_command({"node", "-e", "require(process.argv[1])", source("tests/onnx/node_modules/onnxruntime-node")}) == 0;
  return ok;
}

bool have_onnx_python() {
  static const bool ok = run_command({"/usr/bin/python3", "-c", "import onnx"}) == 0;
  return ok;
}

#define REQUIRE_ORT()                                                                                 \
  if (!have_onnx_python() || !have_ort())                                                             \
  GTEST_SKIP() << "needs python3-onnx and node with onnxruntime-node (tests/onnx/node_modules): run " \
                  "scripts/install-deps"

/// The checker's line for a file ("<path> opset=17 inputs=name:batch,28,... outputs=...").
std::string check_with_onnx(const std::string& path) {
  std::string out;
  int rc = run_command({"/usr/bin/python3", source("tests/python/onnx_check.py"), path}, &out);
  EXPECT_EQ(rc, 0) << out;
  return out;
}

/// Biases, batch-norm parameters and statistics made random: their defaults (0 and 1) would hide
/// a mistake. Kernels keep their random initial values (moderate outputs, so 1e-5 is meaningful).
void randomize(Model& m, uint32_t seed) {
  std::mt19937 gen(seed);
  for (Variable* v : m.weights()) {
    double lo = -0.5, hi = 0.5;
    if (v->name == "gamma" || v->name == "moving_variance")
      lo = 0.5, hi = 1.5;
    else if (v->name != "bias" && v->name != "beta" && v->name != "moving_mean")
      continue;
    v->assign(uniform(v->value.shape(), lo, hi, DType::f64).to(v->value.dtype()));
  }
  (void)gen;
}

struct In {
  Shape shape;  // without the batch
  DType dtype = DType::f32;
  int64_t ids = 0;  // int64 inputs: values in [0, ids)
};

Tensor make_input(const In& in, int64_t batch, uint32_t seed) {
  Shape s{batch};
  for (int64_t d : in.shape) s.push_back(d);
  if (in.dtype == DType::i64) {
    std::mt19937 gen(seed);
    std::vector<int64_t> v(static_cast<size_t>(numel(s)));
    for (auto& x : v) x = static_cast<int64_t>(gen() % static_cast<uint32_t>(in.ids));
    return tensor(v, s);
  }
  return uniform(s, -1.0, 1.0, DType::f64).to(DType::f32);
}

/// Exports m, checks the file with the ONNX checker, runs it with ONNX Runtime at batch 1, 3 and
/// 7 and compares every output with Glia's eager forward pass.
void expect_same_as_ort(Model& m, const std::vector<In>& ins, const std::string& tag) {
  std::string dir = temp_dir();
  std::string path = dir + "/" + tag + ".onnx";
  glia::onnx::export_model(m, path);
  std::string line = check_with_onnx(path);
  EXPECT_THAT(line, HasSubstr("opset=17")) << line;
  std::vector<std::string> cmd = {"node", source("tests/onnx/run_ort.js"), path};
  std::vector<std::vector<Tensor>> refs;
  const int64_t batches[] = {1, 3, 7};
  for (size_t b = 0; b < 3; ++b) {
    std::vector<Tensor> xs;
    if (b > 0) cmd.push_back("--");
    cmd.push_back(dir + "/out_" + std::to_string(b) + "_");
    for (size_t i = 0; i < ins.size(); ++i) {
      xs.push_back(make_input(ins[i], batches[b], static_cast<uint32_t>(100 * b + i)));
      std::string f = dir + "/in_" + std::to_string(b) + "_" + std::to_string(i) + ".npy";
      save_npy(f, xs.back());
      cmd.push_back(f);
    }
    no_grad ng;
    refs.push_back(m.forward(xs, false));
  }
  std::string out;
  ASSERT_EQ(run_command(cmd, &out), 0) << out;
  for (size_t b = 0; b < 3; ++b) {
    for (size_t k = 0; k < refs[b].size(); ++k) {
      Tensor got = load_npy(dir + "/out_" + std::to_string(b) + "_" + std::to_string(k) + ".npy");
      Tensor want = refs[b][k];
      ASSERT_EQ(got.shape(), want.shape()) << tag << " output " << k << " at batch " << batches[b];
      std::vector<double> g = values(got), w = values(want);
      double worst = 0;
      for (size_t j = 0; j < g.size(); ++j) worst = std::max(worst, std::abs(g[j] - w[j]));
      EXPECT_LE(worst, 1e-5) << tag << " output " << k << " at batch " << batches[b];
      // Not vacuous: the outputs are not all (near) zero.
      double big = 0;
      for (double x : w) big = std::max(big, std::abs(x));
      EXPECT_GT(big, 1e-3) << tag << " output " << k;
    }
  }
}

ModelPtr seq(std::vector<LayerPtr> ls, const std::string& name = "") {
  auto m = std::make_shared<Sequential>(std::move(ls), name);
  return m;
}

// --- the models of the issue

TEST(OnnxExport, TutorialMlpMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(1);
  auto m = zoo::tutorial_mlp({28, 28, 1});
  randomize(*m, 1);
  expect_same_as_ort(*m, {{{28, 28, 1}}}, "mlp");
}

TEST(OnnxExport, CnnWithBatchNormalizationMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(2);
  auto m = zoo::default_cnn({28, 28, 1});
  randomize(*m, 2);
  expect_same_as_ort(*m, {{{28, 28, 1}}}, "default_cnn");
}

TEST(OnnxExport, TutorialCnnMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(3);
  auto m = zoo::tutorial_cnn({32, 32, 3});
  randomize(*m, 3);
  expect_same_as_ort(*m, {{{32, 32, 3}}}, "tutorial_cnn");
  // Each convolution and pooling is wrapped in NHWC <-> NCHW Transposes; the two round trips from
  // a pooling straight into a convolution cancel and are gone (10 - 4).
  std::string dir = temp_dir();
  glia::onnx::export_model(*m, dir + "/cnn.onnx");
  EXPECT_THAT(check_with_onnx(dir + "/cnn.onnx"),
              HasSubstr("ops=Add:2,Conv:3,MatMul:2,MaxPool:2,Relu:4,Reshape:1,Softmax:1,Transpose:6"));
}

TEST(OnnxExport, TrainedCnnWithBatchNormalizationMatchesOnnxRuntime) {
  // Moving statistics from real training steps (and not only from randomize).
  REQUIRE_ORT();
  manual_seed(4);
  auto m = zoo::default_cnn({12, 12, 1}, 3);
  m->compile("adam", "sparse_categorical_crossentropy");
  Tensor x = uniform({32, 12, 12, 1}, 0.0, 2.0, DType::f64).to(DType::f32);
  std::vector<int64_t> labels(32);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 3);
  m->fit(x, tensor(labels, {32}), {.epochs = 2, .batch_size = 8, .verbose = 0});
  expect_same_as_ort(*m, {{{12, 12, 1}}}, "trained_cnn");
}

TEST(OnnxExport, FunctionalAddConcatenateTwoInputsMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(5);
  KerasTensor a = Input({6}, DType::f32, "a"), b = Input({6}, DType::f32, "b");
  KerasTensor ha = Dense(8, {.activation = "relu"})(a);
  KerasTensor hb = Dense(8, {.activation = "tanh"})(b);
  KerasTensor sum = Add()({ha, hb});
  KerasTensor cat = Concatenate()({sum, ha, b});
  KerasTensor out = Dense(3, {.activation = "softmax"})(cat);
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{a, b}, std::vector<KerasTensor>{out, sum}, "two_in");
  randomize(*m, 5);
  expect_same_as_ort(*m, {{{6}}, {{6}}}, "functional");
}

// --- one small model per built-in layer family

TEST(OnnxExport, DenseMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(6);
  auto m = seq({InputLayer({4, 5}), Dense(6), Dense(3, {.use_bias = false})});  // 3-D input
  randomize(*m, 6);
  expect_same_as_ort(*m, {{{4, 5}}}, "dense");
}

TEST(OnnxExport, EveryActivationMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(7);
  KerasTensor x = Input({10});
  KerasTensor h = Dense(10)(x);
  std::vector<KerasTensor> outs;
  for (const std::string& name : activations::names()) outs.push_back(Activation(name)(h));
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{x}, outs, "activations");
  randomize(*m, 7);
  // Pre-activations up to about +-3 reach the bends (relu6 aside) while exp stays small enough for
  // an absolute 1e-5 in float32.
  for (Variable* v : m->weights())
    if (v->name == "kernel") v->assign(v->value * 1.5);
  expect_same_as_ort(*m, {{{10}}}, "activations");
}

TEST(OnnxExport, Conv1DMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(8);
  KerasTensor x = Input({11, 4});
  std::vector<KerasTensor> outs = {
      Conv1D(3, 3)(x),
      Conv1D(5, 3, {.strides = 2, .padding = "same", .activation = "relu"})(x),
      Conv1D(2, 2, {.padding = "causal", .dilation_rate = 2})(x),
      Conv1D(6, 3, {.padding = "same", .groups = 2, .use_bias = false})(x),
  };
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{x}, outs, "conv1d");
  randomize(*m, 8);
  expect_same_as_ort(*m, {{{11, 4}}}, "conv1d");
}

TEST(OnnxExport, Conv2DAndDepthwiseMatchOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(9);
  KerasTensor x = Input({9, 8, 4});
  std::vector<KerasTensor> outs = {
      Conv2D(3, {3, 2})(x),
      Conv2D(4, 3, {.strides = 2, .padding = "same", .activation = "relu"})(x),
      Conv2D(2, 3, {.dilation_rate = 2})(x),
      Conv2D(6, 3, {.padding = "same", .groups = 2})(x),
      DepthwiseConv2D(3, {.padding = "same", .depth_multiplier = 2})(x),
      DepthwiseConv2D({2, 3}, {.strides = {2, 1}, .use_bias = false})(x),
  };
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{x}, outs, "conv2d");
  randomize(*m, 9);
  expect_same_as_ort(*m, {{{9, 8, 4}}}, "conv2d");
}

TEST(OnnxExport, PoolingMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(10);
  KerasTensor x = Input({7, 9, 3});
  std::vector<KerasTensor> outs = {
      MaxPooling2D(2)(x),
      MaxPooling2D(3, {.strides = Size2(2), .padding = "same"})(x),
      MaxPooling2D(2, {.padding = "same"})(x),  // pads only after (bottom, right)
      AveragePooling2D(2)(x),
      AveragePooling2D(3, {.strides = Size2(2), .padding = "same"})(x),  // padded cells are not counted
      AveragePooling2D({2, 3}, {.strides = Size2(1, 2), .padding = "same"})(x),
      GlobalAveragePooling2D()(x),
      GlobalAveragePooling2D(true)(x),
  };
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{x}, outs, "pooling");
  expect_same_as_ort(*m, {{{7, 9, 3}}}, "pooling");
}

TEST(OnnxExport, ReshapingLayersMatchOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(11);
  KerasTensor x = Input({4, 6});
  std::vector<KerasTensor> outs = {
      Flatten()(x),
      Reshape({3, -1})(x),
      Permute({2, 1})(x),
      Dropout(0.5)(x),
  };
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{x}, outs, "reshaping");
  expect_same_as_ort(*m, {{{4, 6}}}, "reshaping");
}

TEST(OnnxExport, NormalizationMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(12);
  KerasTensor x = Input({5, 6});
  std::vector<KerasTensor> outs = {
      BatchNormalization()(x),
      BatchNormalization({.epsilon = 0.1, .center = false})(Dense(4)(x)),
      LayerNormalization()(x),
      LayerNormalization({.epsilon = 1e-5, .scale = false})(x),
  };
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{x}, outs, "norms");
  randomize(*m, 12);
  expect_same_as_ort(*m, {{{5, 6}}}, "norms");
}

TEST(OnnxExport, EmbeddingMatchesOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(13);
  KerasTensor ids = Input({5}, DType::i64, "ids");
  KerasTensor e = Embedding(20, 4)(ids);
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{ids}, std::vector<KerasTensor>{Flatten()(e), e}, "emb");
  expect_same_as_ort(*m, {{{5}, DType::i64, 20}}, "embedding");
  // A Sequential model's InputLayer gives the ids' dtype too.
  auto s = seq({InputLayer({3}, DType::i64), Embedding(7, 2), Flatten(), Dense(2)});
  randomize(*s, 13);
  expect_same_as_ort(*s, {{{3}, DType::i64, 7}}, "embedding_seq");
}

TEST(OnnxExport, RescalingAndMergingMatchOnnxRuntime) {
  REQUIRE_ORT();
  manual_seed(14);
  KerasTensor a = Input({3, 4}), b = Input({3, 4}), c = Input({3, 2});
  KerasTensor r = Rescaling(1.0 / 3.0, 0.25)(a);
  std::vector<KerasTensor> outs = {
      r, Rescaling(2.0)(b), Add()({a, b, r}), Multiply()({a, b}), Concatenate()({a, c}), Concatenate(1)({a, b}),
  };
  auto m = std::make_shared<Model>(std::vector<KerasTensor>{a, b, c}, outs, "merging");
  expect_same_as_ort(*m, {{{3, 4}}, {{3, 4}}, {{3, 2}}}, "merging");
}

TEST(OnnxExport, AugmentationLayersAreIdentitiesAtInference) {
  REQUIRE_ORT();
  manual_seed(15);
  auto m = seq({InputLayer({6, 5, 2}), RandomFlip(), RandomTranslation(0.2, 0.2), Conv2D(2, 3)});
  randomize(*m, 15);
  expect_same_as_ort(*m, {{{6, 5, 2}}}, "augmentation");
}

// --- the file itself

TEST(OnnxExport, SymbolicBatchOpsetAndNames) {
  if (!have_onnx_python()) GTEST_SKIP() << "needs python3-onnx: run scripts/install-deps";
  manual_seed(16);
  auto m = zoo::tutorial_mlp({28, 28, 1});
  std::string dir = temp_dir();
  glia::onnx::export_model(*m, dir + "/dyn.onnx");
  std::string line = check_with_onnx(dir + "/dyn.onnx");
  EXPECT_THAT(line, HasSubstr("opset=17 inputs=input:batch,28,28,1 outputs=output:batch,10")) << line;
  glia::onnx::export_model(*m, dir + "/fixed.onnx", {.dynamic_batch = false});
  line = check_with_onnx(dir + "/fixed.onnx");
  EXPECT_THAT(line, HasSubstr("inputs=input:1,28,28,1 outputs=output:1,10")) << line;
  // The bytes are the file's, and name the producer and the weights by layer.
  std::string bytes = glia::onnx::export_model_bytes(*m, {.producer = "glia-test"});
  std::ifstream f(dir + "/dyn.onnx", std::ios::binary);
  std::string file((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_THAT(bytes, HasSubstr("glia-test"));
  EXPECT_THAT(file, HasSubstr("glia"));
  for (const LayerPtr& l : m->layers()) {
    if (l->class_name() == "Dense") {
      EXPECT_THAT(file, HasSubstr(l->name() + "/kernel"));
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/dyn.onnx.tmp"));
}

TEST(OnnxExport, ExportedFileHasNoRandomOrTrainingOps) {
  // Dropout and the augmentation layers vanish at inference: no RandomUniform, no Dropout node.
  auto m = seq({InputLayer({4, 4, 1}), RandomFlip(), Flatten(), Dropout(0.5), Dense(2)});
  std::string bytes = glia::onnx::export_model_bytes(*m);
  EXPECT_THAT(bytes, HasSubstr("MatMul"));
  EXPECT_THAT(bytes, ::testing::Not(HasSubstr("Dropout")));
  EXPECT_THAT(bytes, ::testing::Not(HasSubstr("Random")));
}

TEST(OnnxExport, GliaExportCommandConvertsASavedModel) {
  REQUIRE_ORT();
  std::string cli = std::string(GLIA_BINARY_DIR) + "/tools/glia";
  if (!std::filesystem::exists(cli)) GTEST_SKIP() << "the glia command line is not built (" << cli << ")";
  manual_seed(17);
  auto m = zoo::default_cnn({8, 8, 1}, 4);
  randomize(*m, 17);
  std::string dir = temp_dir();
  m->save(dir + "/cnn.glia");
  std::string out;
  ASSERT_EQ(run_command({cli, "export", dir + "/cnn.glia", dir + "/cnn.onnx"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("cnn.onnx"));
  // The loaded model computes what m computes, so the file must match m.
  std::string line = check_with_onnx(dir + "/cnn.onnx");
  EXPECT_THAT(line, HasSubstr("inputs=input:batch,8,8,1 outputs=output:batch,4")) << line;
  save_npy(dir + "/x.npy", make_input({{8, 8, 1}}, 3, 7));
  ASSERT_EQ(run_command({"node", source("tests/onnx/run_ort.js"), dir + "/cnn.onnx", dir + "/y", dir + "/x.npy"}, &out),
            0)
      << out;
  no_grad ng;
  std::vector<double> want = values(m->forward({load_npy(dir + "/x.npy")}, false)[0]);
  std::vector<double> got = values(load_npy(dir + "/y0.npy"));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  // A file that is not a model: an error naming it, and no output.
  std::ofstream(dir + "/bad.glia") << "not a zip";
  EXPECT_NE(run_command({cli, "export", dir + "/bad.glia", dir + "/bad.onnx"}, &out), 0);
  EXPECT_THAT(out, HasSubstr("bad.glia"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.onnx"));
}

// --- errors

class Shifter : public Layer {
 public:
  Shifter() : Layer("shifter") {}
  std::string class_name() const override { return "Shifter"; }
  Tensor call(const Tensor& x, bool) override {
    Tensor zero = sum(x, {1, 2, 3}) * 0.0;  // one shift per image, known only with the batch
    return translate_images(x, zero, zero);
  }
};

TEST(OnnxExport, OpWithoutExporterNamesOpAndLayer) {
  KerasTensor x = Input({4, 4, 1});
  KerasTensor y = LayerPtr(std::make_shared<Shifter>())->operator()(x);
  Model m(x, Dense(2)(Flatten()(y)), "shifty");
  std::string msg = error_of<ValueError>([&] { glia::onnx::export_model_bytes(m); });
  EXPECT_THAT(msg, HasSubstr("ONNX export: op 'translate_images' (layer 'shifter') has no ONNX equivalent"));
}

TEST(OnnxExport, ModelNotBuiltIsValueError) {
  Sequential m({Dense(3)}, "unbuilt");
  std::string msg = error_of<ValueError>([&] { glia::onnx::export_model_bytes(m); });
  EXPECT_THAT(msg, HasSubstr("ONNX export: model \"unbuilt\" is not built"));
}

TEST(OnnxExport, OldOpsetIsValueError) {
  auto m = zoo::tutorial_mlp({4, 4, 1});
  std::string msg = error_of<ValueError>([&] { glia::onnx::export_model_bytes(*m, {.opset = 13}); });
  EXPECT_THAT(msg, HasSubstr("ONNX export: opset must be 17 or newer (the operators used need it), got 13"));
}

TEST(OnnxExport, UnwritablePathIsIOErrorAndLeavesNothing) {
  auto m = zoo::tutorial_mlp({4, 4, 1});
  std::string dir = temp_dir();
  std::string path = dir + "/missing_folder/model.onnx";
  try {
    glia::onnx::export_model(*m, path);
    ADD_FAILURE() << "did not throw";
  } catch (const IOError& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_THAT(e.what(), HasSubstr("cannot create"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  // An existing file is replaced whole or not at all: a failed export leaves it as it was.
  std::string keep = dir + "/keep.onnx";
  { std::ofstream(keep) << "old"; }
  Sequential unbuilt({Dense(3)});
  EXPECT_THROW(glia::onnx::export_model(unbuilt, keep), ValueError);
  std::ifstream f(keep);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "old");
}

}  // namespace
}  // namespace glia::testing
