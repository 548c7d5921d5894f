// Sequential: construction from a list and with add(), eager build from an InputLayer and
// lazy build from the first data, pop(), and the forward pass against a plain-double
// reference of the stacked layers.
#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

TEST(ModelSequential, FromListAndWithAddGiveTheSameStack) {
  layers::Dense a1(5, {.activation = "relu"}), a2(3);
  Sequential from_list({a1, a2});
  layers::Dense b1(5, {.activation = "relu"}), b2(3);
  Sequential added;
  added.add(b1);
  added.add(b2);
  ASSERT_EQ(from_list.layers().size(), 2u);
  ASSERT_EQ(added.layers().size(), 2u);
  EXPECT_EQ(from_list.layers()[0], LayerPtr(a1));
  EXPECT_EQ(from_list.layers()[1], LayerPtr(a2));
  EXPECT_EQ(added.layers()[0], LayerPtr(b1));
  EXPECT_EQ(added.layers()[1], LayerPtr(b2));
  EXPECT_FALSE(from_list.built());
  EXPECT_FALSE(added.built());

  Tensor x = uniform({6, 4}, -1, 1, DType::f32);
  from_list(x);
  added(x);
  added.set_weights(from_list.get_weights());
  EXPECT_TRUE(all_close(added.predict(x, {.verbose = 0}), from_list.predict(x, {.verbose = 0}), 0, 0));
}

TEST(ModelSequential, InputLayerBuildsImmediately) {
  Sequential m({layers::InputLayer({7}), layers::Dense(4), layers::Dense(2)});
  EXPECT_TRUE(m.built());
  ASSERT_EQ(m.layers().size(), 2u) << "the InputLayer is not one of layers(), as in Keras";
  EXPECT_EQ(m.layers()[0]->class_name(), "Dense");
  EXPECT_EQ(m.layers()[0]->weights()[0]->value.shape(), (Shape{7, 4}));
  EXPECT_EQ(m.count_params(), (7 * 4 + 4) + (4 * 2 + 2));
  // add() after the build extends the built shapes.
  m.add(layers::Dense(3));
  EXPECT_TRUE(m.layers()[2]->built());
  EXPECT_EQ(m.count_params(), (7 * 4 + 4) + (4 * 2 + 2) + (2 * 3 + 3));
  EXPECT_THAT(m.summary_string(), HasSubstr("(None, 3)"));
}

TEST(ModelSequential, LazyBuildFromFirstData) {
  Sequential m({layers::Dense(4, {.activation = "tanh"}), layers::Dense(2)});
  EXPECT_FALSE(m.built());
  EXPECT_EQ(m.count_params(), 0);
  EXPECT_TRUE(m.weights().empty());
  Tensor y = m(uniform({3, 9}, -1, 1, DType::f32));
  EXPECT_TRUE(m.built());
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(m.layers()[0]->weights()[0]->value.shape(), (Shape{9, 4}));
  EXPECT_EQ(m.count_params(), 9 * 4 + 4 + 4 * 2 + 2);
  // Built by the first data, the summary knows every output shape.
  std::string s = m.summary_string();
  EXPECT_THAT(s, HasSubstr("(None, 4)"));
  EXPECT_THAT(s, HasSubstr("(None, 2)"));
}

TEST(ModelSequential, SummaryBeforeBuildIsAValueError) {
  Sequential m({layers::Dense(4)});
  std::string msg = error_of<ValueError>([&] { m.summary_string(); });
  EXPECT_THAT(msg, HasSubstr("not been built"));
  Sequential empty;
  EXPECT_THROW(empty.summary_string(), ValueError);
}

TEST(ModelSequential, PopRemovesTheLastLayerAndItsWeights) {
  Sequential m({layers::InputLayer({5}), layers::Dense(4), layers::Dense(3), layers::Dense(2)});
  ASSERT_EQ(m.predict(uniform({2, 5}, -1, 1, DType::f32), {.verbose = 0}).shape(), (Shape{2, 2}));
  m.pop();
  ASSERT_EQ(m.layers().size(), 2u);
  EXPECT_EQ(m.predict(uniform({2, 5}, -1, 1, DType::f32), {.verbose = 0}).shape(), (Shape{2, 3}));
  EXPECT_EQ(m.weights().size(), 4u);
  EXPECT_EQ(m.count_params(), 5 * 4 + 4 + 4 * 3 + 3);
  std::string s = m.summary_string();
  EXPECT_THAT(s, HasSubstr("(None, 3)"));
  EXPECT_THAT(s, ::testing::Not(HasSubstr("(None, 2)")));
  m.pop();
  m.pop();
  EXPECT_TRUE(m.layers().empty());
  EXPECT_THROW(m.pop(), ValueError);
}

TEST(ModelSequential, ForwardEqualsTheLayersAppliedByHand) {
  layers::Dense d1(6, {.activation = "relu"}), d2(3, {.activation = "softmax"});
  Sequential m({layers::InputLayer({4}), d1, d2});
  // Non-trivial biases so that a missing bias would show.
  std::vector<Tensor> w;
  for (Variable* v : m.weights()) w.push_back(uniform(IntList(v->value.shape()), -1, 1, DType::f32));
  m.set_weights(w);
  Tensor x = uniform({5, 8}, -2, 2, DType::f32).slice(1, 0, 8, 2);  // a strided view
  auto h = relu_ref(dense_ref(values(x), 5, d1->kernel->value, d1->bias->value));
  auto p = softmax_ref(dense_ref(h, 5, d2->kernel->value, d2->bias->value), 5, 3);
  Tensor want = tensor(p, {5, 3}, {.dtype = DType::f64});
  EXPECT_TRUE(all_close(m(x).to(DType::f64), want, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(m.predict(x, {.batch_size = 2, .verbose = 0}).to(DType::f64), want, 1e-5, 1e-6));
  EXPECT_TRUE(all_close(d2(d1(x)), m(x), 0, 0));
}

TEST(ModelSequential, AddRejectsWhatCannotBeStacked) {
  Sequential m;
  EXPECT_THROW(m.add(nullptr), ValueError);
  EXPECT_THAT(error_of<ValueError>([&] { m.add(layers::Add()); }), HasSubstr("Functional"));
  m.add(layers::Dense(2));
  EXPECT_THAT(error_of<ValueError>([&] { m.add(layers::InputLayer({3})); }), HasSubstr("InputLayer"));
}

}  // namespace
