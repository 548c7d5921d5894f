// Bad input to the model API: each is a glia::Error with a message that says what is wrong,
// never a crash.
#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

std::shared_ptr<Sequential> classifier(bool with_input = true) {
  std::vector<LayerPtr> ls;
  if (with_input) ls.push_back(layers::InputLayer({4}));
  ls.push_back(layers::Dense(5, {.activation = "relu"}));
  ls.push_back(layers::Dense(3, {.activation = "softmax"}));
  auto m = std::make_shared<Sequential>(ls);
  m->compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
  return m;
}

TEST(ModelErrors, LabelsOutOfRange) {
  auto m = classifier();
  XY d = random_classification(8, 4, 3, 1);
  Tensor bad = d.y.clone();
  bad.select(0, 5).fill_(3);
  std::string msg = error_of<Error>([&] { m->fit(d.x, bad, {.verbose = 0}); });
  EXPECT_THAT(msg, HasSubstr("out of range"));
  EXPECT_THAT(msg, HasSubstr("3"));
  bad.select(0, 5).fill_(-1);
  EXPECT_THROW(m->evaluate(d.x, bad, {.verbose = 0}), Error);
  EXPECT_THROW(m->train_on_batch(d.x, bad), Error);
}

TEST(ModelErrors, XAndYLengthsDiffer) {
  auto m = classifier();
  XY d = random_classification(8, 4, 3, 2);
  std::string msg = error_of<ValueError>([&] { m->fit(d.x, d.y.narrow(0, 0, 7), {.verbose = 0}); });
  EXPECT_THAT(msg, HasSubstr("fit"));
  EXPECT_THAT(msg, HasSubstr("8"));
  EXPECT_THAT(msg, HasSubstr("7"));
  EXPECT_THROW(m->evaluate(d.x, d.y.narrow(0, 0, 7), {.verbose = 0}), ValueError);
  EXPECT_THROW(m->fit(d.x, d.y, {.batch_size = 0, .verbose = 0}), ValueError);
  EXPECT_THROW(m->fit(d.x, d.y, {.verbose = 0, .sample_weight = ones({3})}), ShapeError);
}

TEST(ModelErrors, WrongInputShapeNamesTheLayerAndShapes) {
  XY d = random_classification(8, 5, 3, 3);
  // Built from an InputLayer: the InputLayer reports.
  auto m = classifier();
  std::string msg = error_of<ShapeError>([&] { m->fit(d.x, d.y, {.verbose = 0}); });
  EXPECT_THAT(msg, HasSubstr("[4]"));
  EXPECT_THAT(msg, HasSubstr("[8, 5]"));
  // Built lazily from data with 4 features: the first Dense reports.
  auto lazy = classifier(false);
  lazy->predict(random_classification(2, 4, 3, 4).x, {.verbose = 0});
  std::string first = lazy->layers()[0]->name();
  msg = error_of<ShapeError>([&] { lazy->fit(d.x, d.y, {.verbose = 0}); });
  EXPECT_THAT(msg, HasSubstr(first));
  EXPECT_THAT(msg, HasSubstr("4"));
  EXPECT_THAT(msg, HasSubstr("5"));
  // A Functional model's input.
  KerasTensor in = Input({4}, DType::f32, "pixels");
  Model f(in, layers::Dense(2)(in));
  msg = error_of<ShapeError>([&] { f.predict(d.x, {.verbose = 0}); });
  EXPECT_THAT(msg, HasSubstr("pixels"));
  EXPECT_THAT(msg, HasSubstr("[4]"));
  EXPECT_THAT(msg, HasSubstr("[8, 5]"));
  // A wrong number of inputs.
  EXPECT_THROW(f.predict(std::vector<Tensor>{d.x, d.x}, {.verbose = 0}), ValueError);
  EXPECT_THROW(m->fit(std::vector<Tensor>{d.x, d.x}, {d.y}, {.verbose = 0}), ValueError);
}

TEST(ModelErrors, UnknownNames) {
  auto m = classifier();
  std::string msg = error_of<ValueError>([&] { m->compile("adamx", "mse"); });
  EXPECT_THAT(msg, HasSubstr("adamx"));
  msg = error_of<ValueError>([&] { m->compile("adam", "mean_squared_errorr"); });
  EXPECT_THAT(msg, HasSubstr("mean_squared_errorr"));
  msg = error_of<ValueError>([&] { layers::Dense(3, {.activation = "relux"}); });
  EXPECT_THAT(msg, HasSubstr("relux"));
  msg = error_of<ValueError>([&] { m->compile("adam", "sparse_categorical_crossentropy", {"acuracy"}); });
  EXPECT_THAT(msg, HasSubstr("acuracy"));
  EXPECT_THROW(layers::Activation("nope"), ValueError);
}

TEST(ModelErrors, TrainingBeforeCompile) {
  Sequential m({layers::InputLayer({4}), layers::Dense(2)});
  XY d = random_classification(4, 4, 2, 5);
  for (auto& f :
       std::vector<std::function<void()>>{[&] { m.fit(d.x, d.y, {.verbose = 0}); },
                                          [&] {
                                            m.fit(data::Dataset::from_tensors({d.x, d.y}).batch(2), {.verbose = 0});
                                          },
                                          [&] { m.evaluate(d.x, d.y, {.verbose = 0}); },
                                          [&] { m.train_on_batch(d.x, d.y); }, [&] { m.test_on_batch(d.x, d.y); }}) {
    std::string msg = error_of<ValueError>(f);
    EXPECT_THAT(msg, HasSubstr("compile"));
  }
  EXPECT_NO_THROW(m.predict(d.x, {.verbose = 0}));
}

TEST(ModelErrors, NanLossInTrainOnBatchLeavesTheWeights) {
  auto m = classifier();
  XY d = random_classification(4, 4, 3, 6);
  auto before = m->get_weights();
  Tensor x = d.x.clone();
  x.select(0, 1).fill_(NAN);
  std::string msg = error_of<ValueError>([&] { m->train_on_batch(x, d.y); });
  EXPECT_THAT(msg, HasSubstr("not updated"));
  EXPECT_TRUE(same_weights(m->get_weights(), before));
}

TEST(ModelErrors, DatasetElementsOfTheWrongArity) {
  auto m = classifier();
  XY d = random_classification(4, 4, 3, 7);
  std::string msg = error_of<ValueError>([&] { m->fit(data::Dataset::from_tensors({d.x}).batch(2), {.verbose = 0}); });
  EXPECT_THAT(msg, HasSubstr("1 tensors"));
  EXPECT_THROW(m->fit(data::Dataset::from_tensors({d.x, d.y}).take(0), {.verbose = 0}), ValueError);
}

TEST(ModelErrors, MissingDatasetDirectory) {
  std::string dir = temp_dir() + "/no-fashion-here";
  std::string msg = error_of<IOError>([&] { datasets::fashion_mnist::load_data(dir); });
  EXPECT_THAT(msg, HasSubstr(dir));
  EXPECT_THAT(msg, HasSubstr("dataset-fashion-mnist"));
  EXPECT_THAT(msg, HasSubstr("--data"));
  msg = error_of<IOError>([&] { datasets::cifar10::load_data(dir); });
  EXPECT_THAT(msg, HasSubstr("CIFAR-10"));
}

}  // namespace
