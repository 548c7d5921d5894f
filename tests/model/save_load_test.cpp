// Model::save / glia::load_model: architecture, weights, compile configuration and optimizer
// state round trip, so that a loaded model predicts the same and keeps training to the same
// weights as the model that was never saved.
#include <gmock/gmock.h>

#include <fstream>

#include "model/model_testing.h"

using namespace glia;
using glia::testing::all_close;
using glia::testing::error_of;
using glia::testing::temp_dir;
using glia::testing::uniform;
using ::testing::HasSubstr;

namespace {

std::shared_ptr<Sequential> mlp() {
  return std::make_shared<Sequential>(
      std::vector<LayerPtr>{layers::InputLayer({6}), layers::Dense(8, {.activation = "relu"}),
                            layers::BatchNormalization(), layers::Dense(3, {.activation = "softmax"})});
}

void expect_same_weights(Model& a, Model& b) {
  auto wa = a.get_weights(), wb = b.get_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(all_close(wb[i], wa[i], 0, 0)) << "weight " << i;
}

}  // namespace

TEST(ModelSave, ContinuesTrainingExactlyForEveryOptimizer) {
  Tensor x = uniform({8, 6}, -1, 1, DType::f32);
  Tensor y = tensor(std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0, 1});
  for (const char* opt : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}) {
    SCOPED_TRACE(opt);
    manual_seed(7);
    auto m = mlp();
    m->compile(opt, "sparse_categorical_crossentropy", {"accuracy"});
    for (int i = 0; i < 2; ++i) m->train_on_batch(x, y);
    std::string path = temp_dir() + "/" + opt + ".glia";
    m->save(path);
    ModelPtr loaded = load_model(path);
    EXPECT_EQ(loaded->optimizer()->class_name(), m->optimizer()->class_name());
    EXPECT_EQ(loaded->config(), m->config());
    EXPECT_TRUE(all_close(loaded->predict(x, {.verbose = 0}), m->predict(x, {.verbose = 0}), 0, 0));
    for (int i = 0; i < 3; ++i) {
      double a = m->train_on_batch(x, y).at("loss"), b = loaded->train_on_batch(x, y).at("loss");
      EXPECT_EQ(a, b) << "step " << i;
    }
    expect_same_weights(*m, *loaded);
  }
}

TEST(ModelSave, FunctionalWithSharedLayerAndUncompiled) {
  manual_seed(3);
  KerasTensor a = Input({4}, DType::f32, "a"), b = Input({4}, DType::f32, "b");
  auto shared = layers::Dense(5, {.activation = "tanh"});
  KerasTensor merged = layers::Concatenate()({shared(a), shared(b)});
  Model m({a, b}, {layers::Dense(2)(merged)});
  std::string path = temp_dir() + "/functional.glia";
  m.save(path);
  ModelPtr loaded = load_model(path);
  EXPECT_FALSE(loaded->compiled());
  std::vector<Tensor> xs = {uniform({3, 4}, -1, 1, DType::f32), uniform({3, 4}, -1, 1, DType::f32)};
  auto pa = m.predict(xs, {.verbose = 0}), pb = loaded->predict(xs, {.verbose = 0});
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(all_close(pb[i], pa[i], 0, 0));
}

TEST(ModelSave, CompileOptionsRoundTrip) {
  auto m = mlp();
  m->compile({.optimizer = "adam",
              .loss = "sparse_categorical_crossentropy",
              .metrics = {"accuracy"},
              .run_eagerly = true,
              .steps_per_execution = 7});
  std::string path = temp_dir() + "/options.glia";
  m->save(path);
  ModelPtr loaded = load_model(path);
  ASSERT_TRUE(loaded->compiled());
  EXPECT_TRUE(loaded->compile_options().run_eagerly);
  EXPECT_EQ(loaded->compile_options().steps_per_execution, 7);
  ASSERT_EQ(loaded->compile_options().metrics.size(), 1u);
  EXPECT_EQ(loaded->compile_options().metrics[0].name(), "accuracy");
}

TEST(ModelSave, BadFilesNameTheFileAndTheProblem) {
  std::string dir = temp_dir();
  EXPECT_THAT(error_of<IOError>([&] { load_model(dir + "/missing.glia"); }), HasSubstr("missing.glia"));
  std::ofstream(dir + "/text.glia") << "not a zip";
  EXPECT_THAT(error_of<IOError>([&] { load_model(dir + "/text.glia"); }), HasSubstr("text.glia"));
  // A zip without the weights.
  io::write_zip(dir + "/partial.glia", {{"metadata.json", "{\"format_version\": 1}"}, {"config.json", "{}"}});
  EXPECT_THAT(error_of<IOError>([&] { load_model(dir + "/partial.glia"); }), HasSubstr("model.safetensors"));
  // Every member present, but config.json is not JSON.
  auto m = mlp();
  m->save(dir + "/good.glia");
  auto members = io::read_zip(dir + "/good.glia");
  members["config.json"] = "{ not json";
  std::vector<std::pair<std::string, std::string>> list(members.begin(), members.end());
  io::write_zip(dir + "/badjson.glia", list);
  EXPECT_THAT(error_of<IOError>([&] { load_model(dir + "/badjson.glia"); }), HasSubstr("config.json"));
  // A format from the future.
  members = io::read_zip(dir + "/good.glia");
  members["metadata.json"] = "{\"format_version\": 99}";
  list.assign(members.begin(), members.end());
  io::write_zip(dir + "/future.glia", list);
  EXPECT_THAT(error_of<IOError>([&] { load_model(dir + "/future.glia"); }), HasSubstr("format_version 99"));
}

namespace {

/// A subclassed model with a residual connection, batch norm and dropout, registered so that
/// load_model can rebuild it. It is built on its first call, not when constructed.
class ResidualNet : public Model {
 public:
  explicit ResidualNet(int64_t units, const std::string& name = "residual_net")
      : Model(name),
        units_(units),
        in(track(layers::Dense(units, {.activation = "relu"}))),
        norm(track(layers::BatchNormalization())),
        drop(track(layers::Dropout(0.2))),
        mid(track(layers::Dense(units, {.activation = "tanh"}))),
        out(track(layers::Dense(3, {.activation = "softmax"}))) {}
  std::string class_name() const override { return "ResidualNet"; }
  Tensor call(const Tensor& x, bool training) override {
    Tensor h = norm(in(x, training), training);
    return out(h + mid(drop(h, training), training), training);
  }
  Config config() const override {
    Config c = Model::config();
    c["units"] = units_;
    return c;
  }
  static LayerPtr from_config(const Config& c) {
    return std::make_shared<ResidualNet>(c.at("units").get<int64_t>(), c.at("name").get<std::string>());
  }

 private:
  int64_t units_;

 public:
  layers::Dense in;
  layers::BatchNormalization norm;
  layers::Dropout drop;
  layers::Dense mid, out;
};
GLIA_REGISTER_LAYER(ResidualNet);

/// Not registered: a saved one cannot be loaded.
class Unregistered : public Model {
 public:
  Unregistered() : Model("unregistered"), d(track(layers::Dense(2))) {}
  std::string class_name() const override { return "Unregistered"; }
  Tensor call(const Tensor& x, bool training) override { return d(x, training); }
  layers::Dense d;
};

/// Trains `m` two steps, saves and loads it, then checks that the copy predicts the same and
/// continues training (losses and weights) bit for bit. `xs` and `y` are one batch.
void check_continuation(Model& m, const std::vector<Tensor>& xs, const Tensor& y, const std::string& file) {
  std::vector<Tensor> ys = {y};
  for (int i = 0; i < 2; ++i) m.fit(xs, ys, {.batch_size = 64, .verbose = 0});
  std::string path = temp_dir() + "/" + file;
  m.save(path);
  ModelPtr loaded = load_model(path);
  EXPECT_EQ(loaded->class_name(), m.class_name());
  EXPECT_EQ(loaded->optimizer()->config(), m.optimizer()->config());
  auto pa = m.predict(xs, {.verbose = 0}), pb = loaded->predict(xs, {.verbose = 0});
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(all_close(pb[i], pa[i], 0, 0));
  // Both draw dropout masks from the global generator: give each the same generator state.
  auto rng = random::get_state();
  std::vector<double> la, lb;
  for (int i = 0; i < 3; ++i) la.push_back(m.fit(xs, ys, {.batch_size = 64, .verbose = 0})["loss"][0]);
  random::set_state(rng);
  for (int i = 0; i < 3; ++i) lb.push_back(loaded->fit(xs, ys, {.batch_size = 64, .verbose = 0})["loss"][0]);
  EXPECT_EQ(la, lb);
  expect_same_weights(m, *loaded);
}

}  // namespace

TEST(ModelSave, SubclassedModelContinuesExactlyForEveryOptimizer) {
  Tensor x = uniform({16, 6}, -1, 1, DType::f32);
  Tensor y = tensor(std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0});
  for (const char* opt : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}) {
    SCOPED_TRACE(opt);
    manual_seed(5);
    ResidualNet m(8);
    m.compile(opt, "sparse_categorical_crossentropy", {"accuracy"});
    check_continuation(m, {x}, y, std::string("residual_") + opt + ".glia");
  }
}

TEST(ModelSave, FunctionalWithTwoInputsAndASharedLayerContinuesExactlyForEveryOptimizer) {
  std::vector<Tensor> xs = {uniform({16, 4}, -1, 1, DType::f32), uniform({16, 4}, -1, 1, DType::f32)};
  Tensor y = tensor(std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0});
  for (const char* opt : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}) {
    SCOPED_TRACE(opt);
    manual_seed(6);
    KerasTensor a = Input({4}, DType::f32, "a"), b = Input({4}, DType::f32, "b");
    auto shared = layers::Dense(6, {.activation = "relu"});
    KerasTensor h = layers::Concatenate()({shared(a), shared(b), layers::Multiply()({a, b})});
    Model m({a, b}, {layers::Dense(3, {.activation = "softmax"})(layers::Dropout(0.1)(h))});
    m.compile(opt, "sparse_categorical_crossentropy", {"accuracy"});
    check_continuation(m, xs, y, std::string("functional_") + opt + ".glia");
  }
}

TEST(ModelSave, SequentialWithoutAnInputLayerIsBuiltFromTheSavedShape) {
  manual_seed(8);
  Sequential m({layers::Dense(5, {.activation = "relu"}), layers::Dense(2)});
  Tensor x = uniform({4, 3}, -1, 1, DType::f32);
  m.predict(x, {.verbose = 0});  // builds it for [3]
  EXPECT_EQ(m.config()["build_input_shape"], Config::parse("[null, 3]"));
  std::string path = temp_dir() + "/no_input_layer.glia";
  m.save(path);
  ModelPtr loaded = load_model(path);
  EXPECT_TRUE(loaded->built());
  EXPECT_TRUE(all_close(loaded->predict(x, {.verbose = 0}), m.predict(x, {.verbose = 0}), 0, 0));
  // model_from_config reads Keras's build_input_shape too.
  EXPECT_TRUE(model_from_config(m.config())->built());
}

TEST(ModelSave, EveryBuiltInLayerRoundTrips) {
  manual_seed(9);
  // Images: every image layer in one Functional model with two branches.
  KerasTensor img = Input({8, 8, 3}, DType::f32, "img");
  KerasTensor t = layers::RandomTranslation(0.1, 0.1)(layers::RandomFlip()(layers::Rescaling(0.5, 0.1)(img)));
  KerasTensor c = layers::BatchNormalization()(layers::Conv2D(4, 3, {.padding = "same", .groups = 1})(t));
  c = layers::DepthwiseConv2D(3, {.padding = "same", .depth_multiplier = 2})(c);
  KerasTensor p1 = layers::GlobalAveragePooling2D()(layers::MaxPooling2D()(c));
  KerasTensor p2 = layers::Flatten()(layers::Permute({2, 1, 3})(layers::AveragePooling2D()(
      layers::Conv2D(8, 3, {.strides = 2, .padding = "same", .groups = 2, .activation = "relu"})(c))));
  KerasTensor r = layers::Reshape({-1})(layers::Activation("gelu")(p2));
  KerasTensor merged = layers::Concatenate()({p1, layers::Dense(8)(r)});
  Model images(img, layers::Dense(3, {.activation = "softmax"})(layers::Dropout(0.5)(merged)), "images");
  // Sequences: embedding, 1-D convolution, layer norm, element-wise merges.
  KerasTensor ids = Input({10}, DType::i64, "ids");
  KerasTensor e = layers::Embedding(20, 6)(ids);
  KerasTensor s1 = layers::Conv1D(6, 3, {.padding = "causal", .activation = "elu"})(e);
  KerasTensor s = layers::LayerNormalization()(layers::Add()({e, s1}));
  s = layers::Multiply()({s, layers::Activation("sigmoid")(s)});
  Model sequences(ids, layers::Dense(2)(layers::Flatten()(s)), "sequences");

  Tensor x_img = uniform({5, 8, 8, 3}, 0, 1, DType::f32);
  std::vector<int64_t> idv(50);
  for (size_t i = 0; i < idv.size(); ++i) idv[i] = static_cast<int64_t>((i * 7) % 20);
  Tensor x_ids = tensor(idv, {5, 10});
  for (auto [model, x] : {std::pair<Model*, Tensor>{&images, x_img}, {&sequences, x_ids}}) {
    SCOPED_TRACE(model->name());
    // Non-trivial batch-norm statistics and fitted weights, not the initial ones.
    model->compile("adam", "sparse_categorical_crossentropy");
    model->fit(x, tensor(std::vector<int64_t>{0, 1, 1, 0, 1}), {.epochs = 2, .batch_size = 5, .verbose = 0});
    std::string path = temp_dir() + "/" + model->name() + ".glia";
    model->save(path);
    ModelPtr loaded = load_model(path);
    EXPECT_EQ(loaded->config(), model->config());
    EXPECT_EQ(loaded->summary_string(), model->summary_string());
    EXPECT_TRUE(all_close(loaded->predict(x, {.verbose = 0}), model->predict(x, {.verbose = 0}), 0, 0));
  }
}

TEST(ModelSave, AnUnregisteredClassSaysWhichNameAndHowToRegisterIt) {
  Unregistered m;
  m.predict(uniform({2, 3}, -1, 1, DType::f32), {.verbose = 0});
  std::string path = temp_dir() + "/unregistered.glia";
  m.save(path);
  std::string msg = error_of<ValueError>([&] { load_model(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("Unregistered"));
  EXPECT_THAT(msg, HasSubstr("GLIA_REGISTER_LAYER(Unregistered)"));
}

TEST(ModelSave, AConfigAskingForHugeLayersFailsBeforeAllocatingThem) {
  // The fuzzer's case: "units": 1 made 1000000000 would allocate gigabytes while building.
  std::string dir = temp_dir();
  auto m = mlp();
  m->save(dir + "/good.glia");
  auto members = io::read_zip(dir + "/good.glia");
  std::string& config = members["config.json"];
  size_t at = config.find("\"units\": 8");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, 10, "\"units\": 1000000000");
  io::write_zip(dir + "/huge.glia", std::vector<std::pair<std::string, std::string>>(members.begin(), members.end()));
  int64_t before = memory_stats().peak_allocated_bytes;
  std::string msg = error_of<ValueError>([&] { load_model(dir + "/huge.glia"); });
  EXPECT_THAT(msg, HasSubstr("huge.glia"));
  EXPECT_THAT(msg, HasSubstr("config.json describes a model larger than its weights"));
  EXPECT_LT(memory_stats().peak_allocated_bytes - before, int64_t(1) << 30);
  // Budgets nest and end with their scope.
  {
    AllocationBudget outer(1 << 20, "outer");
    EXPECT_THAT(error_of<ValueError>([] { zeros({1 << 19}); }), HasSubstr("outer: asks to allocate 2097152 bytes"));
    {
      AllocationBudget inner(100, "inner");
      EXPECT_THAT(error_of<ValueError>([] { zeros({64}); }), HasSubstr("inner"));
    }
    EXPECT_NO_THROW(zeros({1024}));
  }
  EXPECT_NO_THROW(zeros({1 << 19}));
}
