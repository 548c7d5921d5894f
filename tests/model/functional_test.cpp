// Functional models (Input + layer calls; several inputs and outputs; shared layers;
// disconnected graphs; layers() and get_layer) and subclassed models that override call().
#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

void randomize(Model& m) {
  std::vector<Tensor> w;
  for (Variable* v : m.weights()) w.push_back(uniform(IntList(v->value.shape()), -1, 1, DType::f32));
  m.set_weights(w);
}

TEST(ModelFunctional, InputAndLayerCalls) {
  KerasTensor in = Input({4});
  EXPECT_EQ(in.shape(), (Shape{-1, 4}));
  layers::Dense d1(8, {.activation = "relu"}), d2(3);
  KerasTensor h = d1(in);
  EXPECT_EQ(h.shape(), (Shape{-1, 8}));
  KerasTensor out = d2(h);
  Model m(in, out, "mlp");
  EXPECT_EQ(m.name(), "mlp");
  EXPECT_EQ(m.class_name(), "Functional");
  EXPECT_TRUE(m.built());
  EXPECT_EQ(m.count_params(), 4 * 8 + 8 + 8 * 3 + 3);
  randomize(m);
  Tensor x = uniform({5, 4}, -1, 1, DType::f32);
  auto want = dense_ref(relu_ref(dense_ref(values(x), 5, d1->kernel->value, d1->bias->value)), 5, d2->kernel->value,
                        d2->bias->value);
  EXPECT_TRUE(all_close(m(x).to(DType::f64), tensor(want, {5, 3}), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(m.predict(x, {.batch_size = 2, .verbose = 0}), m(x), 1e-6, 1e-7));
}

TEST(ModelFunctional, LayersAndGetLayer) {
  KerasTensor in = Input({4}, DType::f32, "features");
  layers::Dense d1(8), d2(2);
  d1->set_name("hidden");
  d2->set_name("head");
  Model m(in, d2(d1(in)));
  auto ls = m.layers();
  ASSERT_EQ(ls.size(), 3u) << "Functional layers() includes the InputLayer, as Keras";
  EXPECT_EQ(ls[0]->class_name(), "InputLayer");
  EXPECT_EQ(ls[0]->name(), "features");
  EXPECT_EQ(ls[1], LayerPtr(d1));
  EXPECT_EQ(ls[2], LayerPtr(d2));
  EXPECT_EQ(m.get_layer("hidden"), LayerPtr(d1));
  EXPECT_EQ(m.get_layer("head"), LayerPtr(d2));
  EXPECT_THAT(error_of<ValueError>([&] { m.get_layer("nope"); }), HasSubstr("nope"));
}

TEST(ModelFunctional, SeveralInputsAndOutputs) {
  KerasTensor a = Input({3}), b = Input({2});
  layers::Dense da(4, {.activation = "relu"}), db(4, {.activation = "relu"}), head1(2), head2(1);
  KerasTensor merged = layers::Concatenate()({da(a), db(b)});
  EXPECT_EQ(merged.shape(), (Shape{-1, 8}));
  KerasTensor o1 = head1(merged);
  KerasTensor o2 = head2(layers::Add()({da(a), db(b)}));
  Model m({a, b}, {o1, o2});
  EXPECT_EQ(m.inputs().size(), 2u);
  EXPECT_EQ(m.outputs().size(), 2u);
  randomize(m);
  Tensor xa = uniform({5, 3}, -1, 1, DType::f32), xb = uniform({5, 2}, -1, 1, DType::f32);
  auto out = m.forward({xa, xb}, false);
  ASSERT_EQ(out.size(), 2u);
  auto ha = relu_ref(dense_ref(values(xa), 5, da->kernel->value, da->bias->value));
  auto hb = relu_ref(dense_ref(values(xb), 5, db->kernel->value, db->bias->value));
  std::vector<double> cat, sum;
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 4; ++j) cat.push_back(ha[static_cast<size_t>(i * 4 + j)]);
    for (int j = 0; j < 4; ++j) cat.push_back(hb[static_cast<size_t>(i * 4 + j)]);
  }
  for (size_t i = 0; i < ha.size(); ++i) sum.push_back(ha[i] + hb[i]);
  EXPECT_TRUE(all_close(out[0].to(DType::f64),
                        tensor(dense_ref(cat, 5, head1->kernel->value, head1->bias->value), {5, 2}), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(out[1].to(DType::f64),
                        tensor(dense_ref(sum, 5, head2->kernel->value, head2->bias->value), {5, 1}), 1e-5, 1e-6));
  auto pred = m.predict(std::vector<Tensor>{xa, xb}, {.batch_size = 3, .verbose = 0});
  ASSERT_EQ(pred.size(), 2u);
  EXPECT_TRUE(all_close(pred[0], out[0], 1e-6, 1e-7));
  EXPECT_TRUE(all_close(pred[1], out[1], 1e-6, 1e-7));
  EXPECT_THROW(m.predict(xa, {.verbose = 0}), ValueError);
}

TEST(ModelFunctional, SharedLayerHasOneSetOfWeights) {
  KerasTensor a = Input({3}), b = Input({3});
  layers::Dense shared(4);
  KerasTensor sum = layers::Add()({shared(a), shared(b)});
  Model m({a, b}, {sum});
  EXPECT_EQ(m.weights().size(), 2u);
  EXPECT_EQ(m.count_params(), 3 * 4 + 4);
  randomize(m);
  Tensor xa = uniform({4, 3}, -1, 1, DType::f32), xb = uniform({4, 3}, -1, 1, DType::f32);
  auto ya = dense_ref(values(xa), 4, shared->kernel->value, shared->bias->value);
  auto yb = dense_ref(values(xb), 4, shared->kernel->value, shared->bias->value);
  for (size_t i = 0; i < ya.size(); ++i) ya[i] += yb[i];
  EXPECT_TRUE(all_close(m.forward({xa, xb}, false)[0].to(DType::f64), tensor(ya, {4, 4}), 1e-5, 1e-6));
  // Training moves the one kernel with gradients from both calls.
  m.compile({.optimizer = std::make_shared<optimizers::SGD>(0.1), .loss = "mse"});
  Tensor before = shared->kernel->value.clone();
  m.fit({xa, xb}, {zeros({4, 4})}, {.epochs = 1, .batch_size = 4, .verbose = 0});
  EXPECT_FALSE(all_close(shared->kernel->value, before, 0, 1e-6));
  // The summary lists the shared layer once, connected to both inputs; its params count once.
  std::string s = m.summary_string();
  std::string row = shared->name() + " (Dense)";
  auto first = s.find(row);
  ASSERT_NE(first, std::string::npos) << s;
  EXPECT_EQ(s.find(row, first + 1), std::string::npos) << s;
  EXPECT_THAT(s, HasSubstr(a.layer()->name() + "[0][0]"));
  EXPECT_THAT(s, HasSubstr(b.layer()->name() + "[0][0]"));
  EXPECT_THAT(s, HasSubstr("Total params: 16 "));
}

TEST(ModelFunctional, DisconnectedGraphIsAValueError) {
  KerasTensor a = Input({3}), b = Input({3});
  KerasTensor out = layers::Dense(2)(layers::Add()({a, b}));
  std::string msg = error_of<ValueError>([&] { Model m(a, out); });
  EXPECT_THAT(msg, HasSubstr("disconnected"));
  EXPECT_THAT(msg, HasSubstr("[-1, 3]"));
  EXPECT_THROW(Model(std::vector<KerasTensor>{}, std::vector<KerasTensor>{out}), ValueError);
  // An input that is not from Input().
  EXPECT_THROW(Model(layers::Dense(2)(a), out), ValueError);
}

TEST(ModelFunctional, SymbolicCallChecksShapes) {
  KerasTensor a = Input({3});
  layers::Dense d(2);
  d(a);
  // The built kernel takes 3 features; a 5-feature input names the layer and both shapes.
  std::string msg = error_of<ShapeError>([&] { d(Input({5})); });
  EXPECT_THAT(msg, HasSubstr(d->name()));
  EXPECT_THAT(msg, HasSubstr("[3]"));
  EXPECT_THAT(msg, HasSubstr("[5]"));
  // Merge layers need matching shapes.
  EXPECT_THROW(layers::Add()({Input({3}), Input({4})}), Error);
}

TEST(ModelFunctional, AModelIsALayerOfAnotherModel) {
  KerasTensor in = Input({4});
  layers::Dense d(3);
  auto inner = std::make_shared<Model>(in, d(in), "inner");
  KerasTensor in2 = Input({4});
  KerasTensor out = layers::Dense(2)((*inner)(in2));
  Model outer(in2, out);
  EXPECT_EQ(outer.count_params(), 4 * 3 + 3 + 3 * 2 + 2);
  Tensor x = uniform({2, 4}, -1, 1, DType::f32);
  EXPECT_TRUE(all_close(outer(x), outer.layers()[2]->operator()((*inner)(x)), 1e-6, 1e-7));
}

// --- subclassed models

class Net : public Model {
 public:
  Net()
      : Model("net"),
        d1(track(layers::Dense(8, {.activation = "relu"}))),
        drop(track(layers::Dropout(0.5))),
        bn(track(layers::BatchNormalization())),
        d2(track(layers::Dense(3, {.activation = "softmax"}))) {}
  Tensor call(const Tensor& x, bool training) override {
    flags.push_back(training);
    return d2(bn(drop(d1(x, training), training), training), training);
  }
  layers::Dense d1;
  layers::Dropout drop;
  layers::BatchNormalization bn;
  layers::Dense d2;
  std::vector<bool> flags;
};

TEST(ModelSubclassed, TrackedLayersGiveTheWeights) {
  Net net;
  EXPECT_EQ(net.class_name(), "Model");
  EXPECT_TRUE(net.weights().empty());
  net(uniform({4, 5}, -1, 1, DType::f32));
  // d1 (kernel, bias), bn (gamma, beta, moving mean / variance), d2 (kernel, bias).
  EXPECT_EQ(net.weights().size(), 8u);
  EXPECT_EQ(net.trainable_weights().size(), 6u);
  EXPECT_EQ(net.non_trainable_weights().size(), 2u);
  EXPECT_EQ(net.count_params(), (5 * 8 + 8) + 4 * 8 + (8 * 3 + 3));
  ASSERT_EQ(net.layers().size(), 4u);
  EXPECT_EQ(net.layers()[2], LayerPtr(net.bn));
}

TEST(ModelSubclassed, TrainingFlagReachesDropoutAndBatchNorm) {
  manual_seed(3);
  Net net;
  Tensor x = uniform({16, 5}, -1, 1, DType::f32);
  net(x);
  Tensor mean0 = net.bn->moving_mean->value.clone();
  // Inference: deterministic, moving statistics untouched.
  Tensor a = net(x, false), b = net(x, false);
  EXPECT_TRUE(all_close(a, b, 0, 0));
  EXPECT_TRUE(all_close(net.bn->moving_mean->value, mean0, 0, 0));
  EXPECT_TRUE(all_close(net.predict(x, {.verbose = 0}), a, 1e-6, 1e-7));
  // Training: dropout draws new masks and batch norm updates its moving mean.
  Tensor c = net(x, true), d = net(x, true);
  EXPECT_FALSE(all_close(c, d, 0, 1e-6));
  EXPECT_FALSE(all_close(net.bn->moving_mean->value, mean0, 0, 1e-7));

  // fit calls with training = true, evaluate and predict with false. Compiled steps call call()
  // once, when they trace (both batches of 8 share one graph); eager steps call it per batch.
  net.compile("sgd", "sparse_categorical_crossentropy");
  Tensor y = randint(0, 3, {16});
  net.flags.clear();
  net.fit(x, y, {.epochs = 1, .batch_size = 8, .verbose = 0});
  EXPECT_EQ(net.flags, (std::vector<bool>{true}));
  net.flags.clear();
  net.evaluate(x, y, {.batch_size = 16, .verbose = 0});
  net.predict(x, {.batch_size = 16, .verbose = 0});
  EXPECT_EQ(net.flags, (std::vector<bool>{false, false}));
  net.compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy", .run_eagerly = true});
  net.flags.clear();
  net.fit(x, y, {.epochs = 1, .batch_size = 8, .verbose = 0});
  EXPECT_EQ(net.flags, (std::vector<bool>{true, true}));
}

TEST(ModelSubclassed, LossUsesTheModelsOutputAsProbabilities) {
  // call() decides what the output is; the loss must read it as probabilities even though the
  // last tracked layer has a softmax (there is no logits path through a user's call()).
  manual_seed(4);
  Net net;
  net.compile(std::make_shared<optimizers::SGD>(0.0), "sparse_categorical_crossentropy");
  Tensor x = uniform({6, 5}, -1, 1, DType::f32);
  Tensor y = tensor(std::vector<int64_t>{0, 1, 2, 0, 1, 2});
  Tensor p = net.predict(x, {.verbose = 0});
  double want = weighted_mean_ref(sparse_ce_ref(values(p), values(y), 3));
  EXPECT_NEAR(net.test_on_batch(x, y).at("loss"), want, 1e-5);
}

TEST(ModelSubclassed, NotOverridingCallIsAnError) {
  Model m;
  EXPECT_THROW(m(uniform({2, 3}, -1, 1, DType::f32)), Error);
}

}  // namespace
