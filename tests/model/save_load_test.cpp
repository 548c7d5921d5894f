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
