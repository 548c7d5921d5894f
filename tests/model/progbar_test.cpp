// Progress output: ProgbarLogger on a terminal (a bar redrawn with '\r', ending each epoch
// with the full bar, step counts, time per step and metrics) and not on one (one clean line
// per epoch, no control characters); verbose 2 and 0; fit's default logger on stdout.
#include <iomanip>
#include <regex>
#include <sstream>

#include "model/model_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;

namespace {

std::shared_ptr<Sequential> compiled_model() {
  auto m = std::make_shared<Sequential>(std::vector<LayerPtr>{
      layers::InputLayer({3}), layers::Dense(4, {.activation = "relu"}), layers::Dense(2, {.activation = "softmax"})});
  m->compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
  return m;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

bool has_control_chars(const std::string& s) {
  for (char c : s)
    if (c == '\r' || c == '\b' || c == '\x1b') return true;
  return false;
}

size_t count(const std::string& s, const std::string& part) {
  size_t n = 0;
  for (size_t p = s.find(part); p != std::string::npos; p = s.find(part, p + 1)) ++n;
  return n;
}

const std::regex kPerStep(R"(\d+(us|ms|s)/step)");

TEST(ModelProgbar, NotATerminalWritesOneCleanLinePerEpoch) {
  auto m = compiled_model();
  XY d = blobs(40, 3, 1), v = blobs(8, 3, 2);
  std::ostringstream os;
  auto bar = std::make_shared<callbacks::ProgbarLogger>(1, &os, false);
  m->fit(d.x, d.y, {.epochs = 3, .batch_size = 4, .validation_data = {v.x, v.y}, .callbacks = {bar}, .verbose = 0});
  std::string s = os.str();
  EXPECT_FALSE(has_control_chars(s)) << s;
  auto lines = lines_of(s);
  ASSERT_EQ(lines.size(), 3u) << s;
  EXPECT_EQ(s.back(), '\n');
  for (size_t e = 0; e < 3; ++e) {
    const std::string& l = lines[e];
    EXPECT_THAT(l, ::testing::StartsWith("Epoch " + std::to_string(e + 1) + "/3 - 10/10 - ")) << l;
    EXPECT_TRUE(std::regex_search(l, kPerStep)) << l;
    EXPECT_THAT(l, HasSubstr(" - loss: "));
    EXPECT_THAT(l, HasSubstr(" - accuracy: "));
    EXPECT_THAT(l, HasSubstr(" - val_loss: "));
    EXPECT_THAT(l, HasSubstr(" - val_accuracy: "));
    EXPECT_LT(l.find(" - loss: "), l.find(" - accuracy: ")) << "loss first, as Keras";
    EXPECT_LT(l.find(" - accuracy: "), l.find(" - val_loss: ")) << "validation metrics last";
  }
}

TEST(ModelProgbar, TerminalRedrawsTheBarInPlace) {
  auto m = compiled_model();
  XY d = blobs(40, 3, 3);
  std::ostringstream os;
  auto bar = std::make_shared<callbacks::ProgbarLogger>(1, &os, true);
  auto h = m->fit(d.x, d.y, {.epochs = 2, .batch_size = 4, .callbacks = {bar}, .verbose = 0});
  std::string s = os.str();
  EXPECT_NE(s.find('\r'), std::string::npos);
  EXPECT_EQ(count(s, "Epoch 1/2\n"), 1u) << s;
  EXPECT_EQ(count(s, "Epoch 2/2\n"), 1u) << s;
  EXPECT_EQ(count(s, "10/10 [==============================] - "), 2u) << s;
  // Each epoch ends with the final bar and a newline; the last redraw of epoch 1 is its final bar.
  auto lines = lines_of(s);
  ASSERT_EQ(lines.size(), 4u) << s;
  for (size_t e = 0; e < 2; ++e) {
    std::string last = lines[2 * e + 1].substr(lines[2 * e + 1].rfind('\r') + 1);
    EXPECT_THAT(last, ::testing::StartsWith("10/10 [==============================] - ")) << last;
    EXPECT_TRUE(std::regex_search(last, kPerStep)) << last;
    EXPECT_THAT(last, HasSubstr(" - loss: "));
    EXPECT_THAT(last, HasSubstr(" - accuracy: "));
    EXPECT_THAT(last, ::testing::Not(HasSubstr("ETA")));
    // The numbers are the epoch's.
    std::ostringstream want;
    want << std::fixed << std::setprecision(4) << h.logs[e].at("loss");
    EXPECT_THAT(last, HasSubstr("loss: " + want.str()));
  }
  // The first redraw comes after the first step, with an ETA and a partial bar (Keras: 30 * 1 / 10
  // characters, the last an arrow), the step right-aligned to the width of the total.
  EXPECT_THAT(lines[1], ::testing::StartsWith("\r 1/10 [==>...."));
  EXPECT_THAT(lines[1], HasSubstr("ETA: "));
}

TEST(ModelProgbar, VerboseTwoIsOneLinePerEpochEvenOnATerminal) {
  auto m = compiled_model();
  XY d = blobs(12, 3, 4);
  std::ostringstream os;
  m->fit(d.x, d.y,
         {.epochs = 4,
          .batch_size = 4,
          .callbacks = {std::make_shared<callbacks::ProgbarLogger>(2, &os, true)},
          .verbose = 0});
  std::string s = os.str();
  EXPECT_FALSE(has_control_chars(s)) << s;
  auto lines = lines_of(s);
  ASSERT_EQ(lines.size(), 4u) << s;
  for (size_t e = 0; e < 4; ++e)
    EXPECT_THAT(lines[e], ::testing::StartsWith("Epoch " + std::to_string(e + 1) + "/4 - 3/3"));
}

TEST(ModelProgbar, EvaluateAndPredictProgress) {
  auto m = compiled_model();
  XY d = blobs(12, 3, 5);
  std::ostringstream tty, log;
  m->evaluate(
      d.x, d.y,
      {.batch_size = 4, .verbose = 0, .callbacks = {std::make_shared<callbacks::ProgbarLogger>(1, &tty, true)}});
  EXPECT_THAT(tty.str(), HasSubstr("3/3 [==============================] - "));
  EXPECT_THAT(tty.str(), HasSubstr(" - loss: "));
  m->evaluate(
      d.x, d.y,
      {.batch_size = 4, .verbose = 0, .callbacks = {std::make_shared<callbacks::ProgbarLogger>(1, &log, false)}});
  EXPECT_FALSE(has_control_chars(log.str()));
  EXPECT_EQ(lines_of(log.str()).size(), 1u);
  EXPECT_THAT(log.str(), HasSubstr(" - accuracy: "));
  std::ostringstream p;
  m->predict(d.x,
             {.batch_size = 4, .verbose = 0, .callbacks = {std::make_shared<callbacks::ProgbarLogger>(1, &p, true)}});
  EXPECT_THAT(p.str(), HasSubstr("3/3 [==============================] - "));
}

TEST(ModelProgbar, VerboseZeroPrintsNothing) {
  auto m = compiled_model();
  XY d = blobs(12, 3, 6);
  ::testing::internal::CaptureStdout();
  m->fit(d.x, d.y, {.epochs = 2, .batch_size = 4, .validation_split = 0.25, .verbose = 0});
  m->evaluate(d.x, d.y, {.verbose = 0});
  m->predict(d.x, {.verbose = 0});
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
}

TEST(ModelProgbar, FitsDefaultLoggerWritesToStdout) {
  auto m = compiled_model();
  XY d = blobs(12, 3, 7);
  ::testing::internal::CaptureStdout();  // a file, not a terminal
  m->fit(d.x, d.y, {.epochs = 2, .batch_size = 4, .verbose = 1});
  std::string one = ::testing::internal::GetCapturedStdout();
  EXPECT_FALSE(has_control_chars(one)) << one;
  auto lines = lines_of(one);
  ASSERT_EQ(lines.size(), 2u) << one;
  EXPECT_THAT(lines[0], ::testing::StartsWith("Epoch 1/2 - 3/3 - "));
  ::testing::internal::CaptureStdout();
  m->fit(d.x, d.y, {.epochs = 3, .batch_size = 4, .verbose = 2});
  EXPECT_EQ(lines_of(::testing::internal::GetCapturedStdout()).size(), 3u);
}

}  // namespace
