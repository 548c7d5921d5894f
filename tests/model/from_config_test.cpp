// model_from_config: Sequential, Functional (two inputs, a shared layer, merges, two outputs),
// nested and subclassed models rebuilt from their configs (directly and through JSON text)
// give the same config, summary and, with the original's weights, bit-identical predictions;
// malformed configs are ValueErrors that say what is wrong.
#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

/// A subclassed model that rebuilds itself from its config: its sublayers get names derived from
/// its own, so that two instances have equal summaries.
class TwoDense : public Model {
 public:
  explicit TwoDense(int64_t units, const std::string& name = "two_dense")
      : Model(name),
        units_(units),
        d1(track(layers::Dense(units, {.activation = "relu"}))),
        d2(track(layers::Dense(2))) {
    d1->set_name(name + "_hidden");
    d2->set_name(name + "_out");
  }
  std::string class_name() const override { return "TwoDense"; }
  Tensor call(const Tensor& x, bool training) override { return d2(d1(x, training), training); }
  Config config() const override {
    Config c = Model::config();
    c["units"] = units_;
    return c;
  }
  static LayerPtr from_config(const Config& c) {
    return std::make_shared<TwoDense>(c.at("units").get<int64_t>(), c.at("name").get<std::string>());
  }

 private:
  int64_t units_;

 public:
  layers::Dense d1, d2;
};
GLIA_REGISTER_LAYER(TwoDense);

/// Random values for every weight (positive for variances), so that fresh weights would show.
void randomize(Model& m) {
  for (Variable* v : m.weights()) {
    bool positive = v->name.find("variance") != std::string::npos;
    v->assign(uniform(v->value.shape(), positive ? 0.5 : -1.0, 1.5, DType::f32));
  }
}

bool identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && values(a) == values(b);
}

/// Rebuilds `m` from `config_of(m)`, as given and after a JSON dump/parse, and checks that the
/// copy has the same config, summary and weight count, differs before the weights are copied
/// and predicts bit-identically after.
template <class ConfigOf>
void check_round_trip(Model& m, const std::vector<Tensor>& xs, ConfigOf config_of) {
  manual_seed(11);
  randomize(m);
  const Config c = config_of(m);
  std::vector<Tensor> want = m.predict(xs, {.verbose = 0});
  for (bool via_text : {false, true}) {
    SCOPED_TRACE(via_text ? "through JSON text" : "from the Config");
    Config in = via_text ? Config::parse(c.dump(2)) : c;
    ModelPtr r = model_from_config(in);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->class_name(), m.class_name());
    EXPECT_EQ(r->name(), m.name());
    std::vector<Tensor> fresh = r->predict(xs, {.verbose = 0});  // builds a lazily built model
    EXPECT_EQ(config_of(*r), c) << config_of(*r).dump(1) << "\nvs\n" << c.dump(1);
    ASSERT_EQ(r->weights().size(), m.weights().size());
    for (size_t i = 0; i < m.weights().size(); ++i) {
      EXPECT_EQ(r->weights()[i]->name, m.weights()[i]->name);
      EXPECT_NE(r->weights()[i]->value.data_ptr(), m.weights()[i]->value.data_ptr()) << "weights must be fresh";
    }
    ASSERT_EQ(fresh.size(), want.size());
    EXPECT_FALSE(identical(fresh[0], want[0])) << "fresh weights should not predict like the random ones";
    r->set_weights(m.get_weights());
    std::vector<Tensor> got = r->predict(xs, {.verbose = 0});
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(identical(got[i], want[i])) << "output " << i;
    EXPECT_EQ(r->summary_string(), m.summary_string());
  }
}

Config plain_config(const Model& m) { return m.config(); }

/// Two inputs, a Dense shared by both, Add and Concatenate, and two outputs.
Model two_heads() {
  KerasTensor a = Input({6}, DType::f32, "left"), b = Input({6}, DType::f32, "right");
  layers::Dense shared(5, {.activation = "tanh"});
  KerasTensor ha = shared(a), hb = shared(b);
  KerasTensor sum = layers::Add()({ha, hb});
  KerasTensor cat = layers::Concatenate()({ha, hb, sum});
  KerasTensor out1 = layers::Dense(3, {.activation = "softmax"})(cat);
  KerasTensor out2 = layers::Dense(1)(layers::Dropout(0.3)(sum));
  return Model({a, b}, {out1, out2}, "two_heads");
}

std::vector<Tensor> two_inputs() { return {uniform({4, 6}, -1, 1, DType::f32), uniform({4, 6}, -1, 1, DType::f32)}; }

}  // namespace

TEST(ModelFromConfig, SequentialConvStack) {
  Sequential m({layers::InputLayer({8, 8, 2}), layers::Conv2D(4, {3, 3}, {.padding = "same", .activation = "relu"}),
                layers::BatchNormalization(), layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dropout(0.25),
                layers::Dense(3, {.activation = "softmax"})},
               "convnet");
  check_round_trip(m, {uniform({3, 8, 8, 2}, -1, 1, DType::f32)}, plain_config);
}

TEST(ModelFromConfig, SequentialBuiltFromDataAndWrappedForm) {
  // No InputLayer: the copy is built by its first data, as the original was.
  Sequential m({layers::Dense(4, {.activation = "relu"}), layers::Dense(2)});
  Tensor x = uniform({5, 3}, -1, 1, DType::f32);
  m.predict(x, {.verbose = 0});
  check_round_trip(m, {x}, [](const Model& mm) { return layer_to_config(mm); });
}

TEST(ModelFromConfig, FunctionalTwoInputsSharedLayerTwoOutputs) {
  Model m = two_heads();
  check_round_trip(m, two_inputs(), plain_config);
  // The shared layer is one layer called twice, not two copies.
  ModelPtr r = model_from_config(m.config());
  ASSERT_EQ(r->layers().size(), m.layers().size());
  for (size_t i = 0; i < m.layers().size(); ++i) EXPECT_EQ(r->layers()[i]->name(), m.layers()[i]->name());
  int dense_calls = 0;
  const Config rc = r->config();
  for (auto& n : rc["layers"])
    if (n["class_name"] == "Dense" && n["inbound_nodes"].size() == 2) ++dense_calls;
  EXPECT_EQ(dense_calls, 1);
  EXPECT_EQ(r->inputs()[0].layer()->name(), "left");
  EXPECT_EQ(r->inputs()[1].layer()->name(), "right");
}

TEST(ModelFromConfig, FunctionalLayerOrderInTheConfigDoesNotMatter) {
  // Replay waits for each call's inputs, so layers listed outputs-first still rebuild.
  Model m = two_heads();
  Config c = m.config();
  Config reversed = c;
  reversed["layers"] = Config::array();
  for (auto it = c["layers"].rbegin(); it != c["layers"].rend(); ++it) reversed["layers"].push_back(*it);
  ModelPtr r = model_from_config(reversed);
  EXPECT_EQ(r->config(), c);
  r->set_weights(m.get_weights());
  std::vector<Tensor> xs = two_inputs();
  auto want = m.predict(xs, {.verbose = 0}), got = r->predict(xs, {.verbose = 0});
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(identical(got[i], want[i]));
}

TEST(ModelFromConfig, NestedSequentialAndSubclassedLayersInAFunctional) {
  auto inner = std::make_shared<Sequential>(
      std::vector<LayerPtr>{layers::Dense(4, {.activation = "relu"}), layers::Dense(4)}, "inner_stack");
  auto sub = std::make_shared<TwoDense>(3, "inner_sub");
  KerasTensor x = Input({5});
  KerasTensor y = layers::Concatenate()({(*inner)(x), (*sub)(x)});
  Model m(x, layers::Dense(2)(y), "outer");
  check_round_trip(m, {uniform({3, 5}, -1, 1, DType::f32)}, plain_config);
  ModelPtr r = model_from_config(m.config());
  EXPECT_EQ(r->get_layer("inner_stack")->class_name(), "Sequential");
  EXPECT_EQ(r->get_layer("inner_sub")->class_name(), "TwoDense");
}

TEST(ModelFromConfig, NestedFunctionalInAFunctional) {
  KerasTensor a = Input({4});
  auto block = std::make_shared<Model>(a, layers::Dense(4, {.activation = "tanh"})(a), "block");
  KerasTensor x = Input({4});
  Model m(x, layers::Dense(2)((*block)(x)), "wrapper");
  check_round_trip(m, {uniform({3, 4}, -1, 1, DType::f32)}, plain_config);
}

TEST(ModelFromConfig, SubclassedModelByRegisteredName) {
  TwoDense m(6, "regnet");
  Tensor x = uniform({4, 3}, -1, 1, DType::f32);
  m.predict(x, {.verbose = 0});
  check_round_trip(m, {x}, [](const Model& mm) { return layer_to_config(mm); });
}

TEST(ModelFromConfig, FrozenModelStaysFrozen) {
  Sequential m({layers::InputLayer({3}), layers::Dense(2)}, "frozen");
  m.set_trainable(false);
  ModelPtr r = model_from_config(m.config());
  EXPECT_FALSE(r->trainable());
  EXPECT_TRUE(r->trainable_weights().empty());
  EXPECT_EQ(r->config(), m.config());
  // A frozen Functional model whose head was unfrozen afterwards, around a frozen nested stack.
  KerasTensor x = Input({3});
  auto base = std::make_shared<Sequential>(std::vector<LayerPtr>{layers::Dense(4), layers::Dense(4)}, "base");
  layers::Dense head(2);
  Model f(x, head((*base)(x)), "tuned");
  f.set_trainable(false);
  head->set_trainable(true);
  base->layers()[1]->set_trainable(true);
  ModelPtr g = model_from_config(f.config());
  EXPECT_EQ(g->config(), f.config());
  EXPECT_FALSE(g->trainable());
  EXPECT_TRUE(g->get_layer(head->name())->trainable());
  EXPECT_FALSE(g->get_layer("base")->trainable());
  auto g_base = std::dynamic_pointer_cast<Model>(g->get_layer("base"));
  ASSERT_NE(g_base, nullptr);
  EXPECT_FALSE(g_base->layers()[0]->trainable());
  EXPECT_TRUE(g_base->layers()[1]->trainable());
  EXPECT_EQ(g->get_layer(head->name())->trainable_weights().size(), 2u);
}

// --- errors

TEST(ModelFromConfig, UnknownClassNamesItAndHowToRegister) {
  std::string msg = error_of<ValueError>([] {
    model_from_config(Config{{"class_name", "NoSuchNet"}, {"config", {{"name", "n"}}}});
  });
  EXPECT_THAT(msg, HasSubstr("NoSuchNet"));
  EXPECT_THAT(msg, HasSubstr("GLIA_REGISTER_LAYER(NoSuchNet)"));
  // Inside a Sequential's layer list too.
  Sequential s({layers::Dense(2)}, "s");
  Config c = s.config();
  c["layers"][0]["class_name"] = "Dense3000";
  msg = error_of<ValueError>([&] { model_from_config(c); });
  EXPECT_THAT(msg, HasSubstr("Dense3000"));
  EXPECT_THAT(msg, HasSubstr("GLIA_REGISTER_LAYER"));
  // A registered layer that is not a model.
  msg = error_of<ValueError>([] { model_from_config(layer_to_config(*layers::Dense(2).ptr())); });
  EXPECT_THAT(msg, HasSubstr("not a model"));
}

TEST(ModelFromConfig, DanglingInboundReference) {
  Model m = two_heads();
  Config c = m.config();
  // The Add layer's call refers to a layer that does not exist.
  Config bad = c;
  for (auto& l : bad["layers"])
    if (l["class_name"] == "Add") l["inbound_nodes"][0][1][0] = "ghost";
  std::string msg = error_of<ValueError>([&] { model_from_config(bad); });
  EXPECT_THAT(msg, HasSubstr("'ghost'"));
  EXPECT_THAT(msg, HasSubstr("not among the model's layers"));
  // ... or to a call the layer never makes.
  bad = c;
  for (auto& l : bad["layers"])
    if (l["class_name"] == "Add") l["inbound_nodes"][0][0][1] = 7;
  msg = error_of<ValueError>([&] { model_from_config(bad); });
  EXPECT_THAT(msg, HasSubstr("call 7"));
  // An output that refers to a missing layer.
  bad = c;
  bad["output_layers"][0][0] = "nowhere";
  msg = error_of<ValueError>([&] { model_from_config(bad); });
  EXPECT_THAT(msg, HasSubstr("'nowhere'"));
  EXPECT_THAT(msg, HasSubstr("output_layers"));
}

TEST(ModelFromConfig, CallsThatWaitOnEachOther) {
  Config c = Config::parse(R"({
    "name": "loop",
    "layers": [
      {"class_name": "Dense", "config": {"name": "p", "units": 2}, "name": "p", "inbound_nodes": [[["q", 0]]]},
      {"class_name": "Dense", "config": {"name": "q", "units": 2}, "name": "q", "inbound_nodes": [[["p", 0]]]}
    ],
    "input_layers": [["p", 0]],
    "output_layers": [["q", 0]]
  })");
  EXPECT_THAT(error_of<ValueError>([&] { model_from_config(c); }), HasSubstr("cycle"));
}

TEST(ModelFromConfig, MissingKeys) {
  Model m = two_heads();
  Config c = m.config();
  c.erase("layers");
  std::string msg = error_of<ValueError>([&] { model_from_config(c); });
  EXPECT_THAT(msg, HasSubstr("\"layers\""));
  Sequential s({layers::Dense(2)}, "s");
  Config sc = s.config();
  sc.erase("layers");
  EXPECT_THAT(error_of<ValueError>([&] { model_from_config(sc); }), HasSubstr("\"layers\""));
  Config nc = m.config();
  nc["layers"][1].erase("inbound_nodes");
  EXPECT_THAT(error_of<ValueError>([&] { model_from_config(nc); }), HasSubstr("\"inbound_nodes\""));
  EXPECT_THAT(error_of<ValueError>([] {
                model_from_config(Config{{"class_name", "Sequential"}});
              }),
              HasSubstr("\"config\""));
  // A layer config missing one of its own required keys.
  Config dc = m.config();
  for (auto& l : dc["layers"])
    if (l["class_name"] == "Dense") l["config"].erase("units");
  EXPECT_THAT(error_of<ValueError>([&] { model_from_config(dc); }), HasSubstr("units"));
}

// Integers in a config: 2.0 (as JSON written by Python may hold) is 2; a fraction, a value out of
// int64's range or a string is a ValueError naming the key, never a silent cast.
TEST(ModelFromConfig, IntegerFieldsTakeIntegralFloatsAndRefuseOthers) {
  Sequential s({layers::Dense(2)}, "s");
  auto with_units = [&](const Config& units) {
    Config c = s.config();
    c["layers"][0]["config"]["units"] = units;
    return c;
  };
  ModelPtr m = model_from_config(with_units(Config(2.0)));
  EXPECT_EQ(m->config()["layers"][0]["config"]["units"], 2);
  for (const Config& bad : {Config(2.5), Config(2e103), Config(-2e103), Config("2")})
    EXPECT_THAT(error_of<ValueError>([&] { model_from_config(with_units(bad)); }), HasSubstr("units")) << bad.dump();
}
