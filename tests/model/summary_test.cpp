// Model::summary in Keras's format: header, one row per layer with "name (Type)", output
// shapes, parameter counts with thousands separators, "Connected to" for Functional models,
// and the Total / Trainable / Non-trainable lines, checked against counts computed by hand.
#include <algorithm>
#include <sstream>

#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

/// The line of the summary that holds the row of `layer_name` ("" if none).
std::string row_of(const std::string& summary, const std::string& layer_name, const std::string& type) {
  for (auto& l : lines_of(summary))
    if (l.find(" " + layer_name + " (" + type + ")") == 0) return l;
  return "";
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

TEST(ModelSummary, SequentialCnn) {
  layers::Conv2D conv(32, 3, {.activation = "relu"});
  layers::MaxPooling2D pool(2);
  layers::Flatten flat;
  layers::BatchNormalization bn;
  layers::Dense hidden(128, {.activation = "relu"});
  layers::Dense out(10, {.activation = "softmax"});
  Sequential m({layers::InputLayer({28, 28, 1}), conv, pool, flat, hidden, bn, out}, "cnn");
  std::string s = m.summary_string();
  auto lines = lines_of(s);

  // By hand: conv 3*3*1*32 + 32; the pooled 13x13x32 map flattens to 5408 features.
  const int64_t p_conv = 3 * 3 * 1 * 32 + 32, p_hidden = 13 * 13 * 32 * 128 + 128, p_bn = 4 * 128,
                p_out = 128 * 10 + 10;
  const int64_t total = p_conv + p_hidden + p_bn + p_out, non_trainable = 2 * 128;
  ASSERT_EQ(m.count_params(), total);

  ASSERT_GE(lines.size(), 10u) << s;
  EXPECT_EQ(lines[0], "Model: \"cnn\"");
  EXPECT_THAT(lines[1], ::testing::MatchesRegex("_+"));
  EXPECT_THAT(lines[2], StartsWith(" Layer (type)"));
  EXPECT_THAT(lines[2], HasSubstr("Output Shape"));
  EXPECT_THAT(lines[2], HasSubstr("Param #"));
  EXPECT_THAT(lines[2], ::testing::Not(HasSubstr("Connected to")));
  EXPECT_THAT(lines[3], ::testing::MatchesRegex("=+"));
  EXPECT_EQ(lines[1].size(), lines[3].size());

  struct Want {
    std::string name, type, shape;
    int64_t params;
  };
  std::vector<Want> want = {{conv->name(), "Conv2D", "(None, 26, 26, 32)", p_conv},
                            {pool->name(), "MaxPooling2D", "(None, 13, 13, 32)", 0},
                            {flat->name(), "Flatten", "(None, 5408)", 0},
                            {hidden->name(), "Dense", "(None, 128)", p_hidden},
                            {bn->name(), "BatchNormalization", "(None, 128)", p_bn},
                            {out->name(), "Dense", "(None, 10)", p_out}};
  size_t rows = 0;
  for (auto& l : lines)
    if (l.find(") ") != std::string::npos && l.find("(None") != std::string::npos) ++rows;
  EXPECT_EQ(rows, want.size()) << s;
  size_t last_pos = 0;
  for (auto& w : want) {
    std::string r = row_of(s, w.name, w.type);
    ASSERT_FALSE(r.empty()) << "no row for " << w.name << "\n" << s;
    EXPECT_THAT(r, HasSubstr(w.shape)) << r;
    // The parameter count is the row's last field.
    std::istringstream is(r);
    std::string tok, last;
    while (is >> tok) last = tok;
    EXPECT_EQ(last, with_commas(w.params)) << r;
    size_t pos = s.find(r);
    EXPECT_GT(pos, last_pos) << "rows in layer order";
    last_pos = pos;
  }
  EXPECT_THAT(s, HasSubstr("692,352"));  // the separators, spelled out once
  EXPECT_THAT(s, HasSubstr("Total params: " + with_commas(total) + " ("));
  EXPECT_THAT(s, HasSubstr("Trainable params: " + with_commas(total - non_trainable) + " ("));
  EXPECT_THAT(s, HasSubstr("Non-trainable params: " + with_commas(non_trainable) + " ("));
  EXPECT_THAT(lines.back(), ::testing::MatchesRegex("_+"));
  // The sizes in bytes, float32: 4 bytes a parameter.
  EXPECT_THAT(s, HasSubstr("Non-trainable params: 256 (1.00 KB)"));

  std::ostringstream os;
  m.summary(os);
  EXPECT_EQ(os.str(), s);
}

TEST(ModelSummary, FrozenLayersCountAsNonTrainable) {
  layers::Dense a(3), b(2);
  Sequential m({layers::InputLayer({4}), a, b});
  a->set_trainable(false);
  std::string s = m.summary_string();
  EXPECT_THAT(s, HasSubstr("Total params: 23 "));
  EXPECT_THAT(s, HasSubstr("Trainable params: 8 "));
  EXPECT_THAT(s, HasSubstr("Non-trainable params: 15 "));
}

TEST(ModelSummary, FunctionalHasConnectedTo) {
  KerasTensor in = Input({8, 8, 3}, DType::f32, "image");
  layers::Conv2D c1(4, 3, {.padding = "same"}), c2(4, 3, {.padding = "same"});
  layers::Add add;
  layers::GlobalAveragePooling2D gap;
  layers::Dense head(5);
  KerasTensor x1 = c1(in), x2 = c2(x1);
  KerasTensor out = head(gap(add({x1, x2})));
  Model m(in, out, "resnetish");
  std::string s = m.summary_string();
  auto lines = lines_of(s);
  EXPECT_EQ(lines[0], "Model: \"resnetish\"");
  EXPECT_THAT(lines[2], HasSubstr("Connected to"));
  EXPECT_EQ(row_of(s, "image", "InputLayer").empty(), false) << s;
  EXPECT_THAT(row_of(s, "image", "InputLayer"), HasSubstr("(None, 8, 8, 3)"));
  std::string r_c1 = row_of(s, c1->name(), "Conv2D"), r_c2 = row_of(s, c2->name(), "Conv2D");
  std::string r_add = row_of(s, add->name(), "Add"), r_head = row_of(s, head->name(), "Dense");
  EXPECT_THAT(r_c1, HasSubstr("(None, 8, 8, 4)"));
  EXPECT_THAT(r_c1, HasSubstr("112"));  // 3*3*3*4 + 4
  EXPECT_THAT(r_c1, HasSubstr("image[0][0]"));
  EXPECT_THAT(r_c2, HasSubstr(c1->name() + "[0][0]"));
  EXPECT_THAT(r_c2, HasSubstr("148"));  // 3*3*4*4 + 4
  EXPECT_THAT(r_add, HasSubstr(c1->name() + "[0][0]"));
  EXPECT_THAT(r_add, HasSubstr(c2->name() + "[0][0]"));
  EXPECT_THAT(r_head, HasSubstr("(None, 5)"));
  EXPECT_THAT(r_head, HasSubstr(gap->name() + "[0][0]"));
  EXPECT_THAT(row_of(s, gap->name(), "GlobalAveragePooling2D"), HasSubstr("(None, 4)"));
  EXPECT_EQ(m.count_params(), 112 + 148 + 4 * 5 + 5);
  EXPECT_THAT(s, HasSubstr("Total params: 285 "));
  EXPECT_THAT(s, HasSubstr("Non-trainable params: 0 "));
}

TEST(ModelSummary, SharedLayerWithDifferentShapesReadsMultiple) {
  KerasTensor a = Input({2, 3}, DType::f32, "a"), b = Input({4}, DType::f32, "b");
  layers::Flatten flat;
  KerasTensor out = layers::Concatenate()({flat(a), flat(b)});
  Model m({a, b}, {out});
  std::string s = m.summary_string();
  std::string r = row_of(s, flat->name(), "Flatten");
  EXPECT_THAT(r, HasSubstr("multiple"));
  EXPECT_THAT(r, HasSubstr("a[0][0]"));
  // The second call's input on the next line, under "Connected to".
  auto lines = lines_of(s);
  auto it = std::find(lines.begin(), lines.end(), r);
  ASSERT_NE(it, lines.end());
  ASSERT_NE(it + 1, lines.end());
  EXPECT_THAT(*(it + 1), ::testing::MatchesRegex(" +b\\[0\\]\\[0\\] *"));
  EXPECT_THAT(row_of(s, m.layers().back()->name(), "Concatenate"), HasSubstr("(None, 10)"));
}

TEST(ModelSummary, SubclassedModelAfterFirstCall) {
  struct Tiny : Model {
    Tiny() : Model("tiny"), d(track(layers::Dense(3))) {}
    Tensor call(const Tensor& x, bool) override { return d(x); }
    layers::Dense d;
  };
  Tiny t;
  EXPECT_THROW(t.summary_string(), ValueError);
  t(uniform({2, 4}, -1, 1, DType::f32));
  std::string s = t.summary_string();
  EXPECT_THAT(s, HasSubstr(t.d->name() + " (Dense)"));
  EXPECT_THAT(s, HasSubstr("Total params: 15 "));
  // fit builds a subclassed model as a direct call does.
  Tiny u;
  u.compile("sgd", "mse");
  u.fit(uniform({4, 2}, -1, 1, DType::f32), zeros({4, 3}), {.verbose = 0});
  EXPECT_TRUE(u.built());
  EXPECT_THAT(u.summary_string(), HasSubstr("Total params: 9 "));
}

}  // namespace
