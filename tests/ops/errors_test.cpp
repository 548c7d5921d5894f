// User errors: each bad call throws the right glia::Error subclass with a
// message that names the op and the shapes (or dtypes) involved; none aborts.
#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

/// Expects f to throw E (a glia::Error) whose message contains every one of `parts`.
template <class E>
void expect_error(const char* what, const std::function<void()>& f, std::initializer_list<std::string> parts) {
  static_assert(std::is_base_of_v<Error, E>);
  std::string msg = error_of<E>(f);
  for (auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << what << ": \"" << p << "\" not in: " << msg;
}

}  // namespace

TEST(Errors, MismatchedBroadcastShapes) {
  Tensor a = ones({2, 3}), b = ones({4});
  using Bin = Tensor (*)(const Tensor&, const Tensor&);
  std::vector<std::pair<const char*, Bin>> ops = {
      {"add", [](const Tensor& x, const Tensor& y) { return x + y; }},
      {"sub", [](const Tensor& x, const Tensor& y) { return x - y; }},
      {"mul", [](const Tensor& x, const Tensor& y) { return x * y; }},
      {"div", [](const Tensor& x, const Tensor& y) { return x / y; }},
      {"pow", [](const Tensor& x, const Tensor& y) { return pow(x, y); }},
      {"maximum", [](const Tensor& x, const Tensor& y) { return maximum(x, y); }},
      {"minimum", [](const Tensor& x, const Tensor& y) { return minimum(x, y); }},
      {"eq", [](const Tensor& x, const Tensor& y) { return x == y; }},
      {"lt", [](const Tensor& x, const Tensor& y) { return x < y; }},
      {"logical_and", [](const Tensor& x, const Tensor& y) { return logical_and(x, y); }},
  };
  for (auto& [op, f] : ops) {
    expect_error<ShapeError>(op, [&] { f(a, b); }, {op, "[2, 3]", "[4]"});
    expect_error<ShapeError>(op, [&] { f(ones({5, 1, 3}), ones({2, 2, 1})); }, {op, "[5, 1, 3]", "[2, 2, 1]"});
  }
  expect_error<ShapeError>("where", [&] { where(a > 0, a, b); }, {"where", "[2, 3]", "[4]"});
  expect_error<ShapeError>("add_", [&] { ones({3}).add_(ones({2, 3})); }, {"add", "[2, 3]", "[3]"});
  expect_error<ShapeError>("add_", [&] { ones({3}).add_(ones({4})); }, {"add", "[3]", "[4]"});
  expect_error<ShapeError>("copy_", [&] { ones({3}).copy_(ones({2})); }, {"copy_", "[2]", "[3]"});
  expect_error<ShapeError>("expand", [&] { ones({3}).expand({2, 4}); }, {"expand", "[3]", "[2, 4]"});
  expect_error<ShapeError>("reshape", [&] { ones({2, 3}).reshape({4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"});
  expect_error<ShapeError>("view", [&] { ones({2, 3}).t().view({6}); }, {"view", "[3, 2]"});
  expect_error<ShapeError>("sum_to", [&] { sum_to(ones({2, 3}), {4, 3}); }, {"sum_to", "[2, 3]", "[4, 3]"});
  expect_error<ShapeError>("stack", [&] { stack({ones({2}), ones({3})}); }, {"stack", "[2]", "[3]"});
}

TEST(Errors, MatmulInnerDimensions) {
  expect_error<ShapeError>("matmul", [] { matmul(ones({2, 3}), ones({2, 3})); }, {"matmul", "[2, 3]", "3", "2"});
  expect_error<ShapeError>("matmul 1-D", [] { matmul(ones({5}), ones({4, 2})); }, {"matmul", "[5]", "[4, 2]"});
  expect_error<ShapeError>("matmul batch", [] { matmul(ones({3, 2, 2}), ones({4, 2, 2})); }, {"matmul", "[3]", "[4]"});
  expect_error<ShapeError>("linear", [] { linear(ones({2, 3}), ones({4, 5})); }, {"linear", "[2, 3]", "[4, 5]"});
  expect_error<DTypeError>("matmul int",
                           [] {
                             matmul(ones({2, 2}, {.dtype = DType::i64}), ones({2, 2}, {.dtype = DType::i64}));
                           },
                           {"matmul", "int64"});
}

TEST(Errors, FloatOpOnIntegerTensor) {
  Tensor i = tensor({1, 2, 3});
  using Un = Tensor (*)(const Tensor&);
  std::vector<std::pair<const char*, Un>> ops = {
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"log", [](const Tensor& x) { return log(x); }},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }},
      {"sin", [](const Tensor& x) { return sin(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"erf", [](const Tensor& x) { return erf(x); }},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"softplus", [](const Tensor& x) { return softplus(x); }},
      {"elu", [](const Tensor& x) { return elu(x); }},
      {"mean", [](const Tensor& x) { return mean(x); }},
      {"var", [](const Tensor& x) { return var(x); }},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }},
  };
  for (auto& [op, f] : ops) {
    expect_error<DTypeError>(op, [&] { f(i); }, {op, "int64"});
    expect_error<DTypeError>(op, [&] { f(tensor({true, false})); }, {op, "bool"});
  }
  expect_error<DTypeError>("requires_grad_", [&] { tensor({1, 2}).requires_grad_(true); }, {"requires_grad_", "int64"});
  expect_error<DTypeError>("where", [] { where(tensor({1, 0}), ones({2}), ones({2})); }, {"where", "int64"});
  expect_error<DTypeError>("data", [] { ones({2}).data<double>(); }, {"float64", "float32"});
  expect_error<DTypeError>("add_", [] { tensor({1, 2}).add_(ones({2})); }, {"add", "float32", "int64"});
  expect_error<DTypeError>("sub bool", [] { tensor({true}) - tensor({false}); }, {"sub", "bool"});
}

TEST(Errors, IndexOutOfRange) {
  Tensor x = zeros({2, 3});
  expect_error<ValueError>("select", [&] { x.select(1, 3); }, {"select", "3", "[2, 3]"});
  expect_error<ValueError>("select negative", [&] { x.select(0, -3); }, {"select", "-3", "[2, 3]"});
  expect_error<ValueError>("operator[]", [&] { x[2]; }, {"select", "[2, 3]"});
  expect_error<ValueError>("at", [&] { x.at<float>({0, 3}); }, {"at", "3", "[2, 3]"});
  expect_error<ValueError>("at negative", [&] { x.at<float>({-3, 0}); }, {"at", "-3", "[2, 3]"});
  expect_error<ValueError>("at rank", [&] { x.at<float>({0}); }, {"at", "[2, 3]"});
  expect_error<ValueError>("narrow", [&] { x.narrow(1, 2, 2); }, {"narrow", "3"});
  expect_error<ValueError>("item", [&] { x.item(); }, {"item", "[2, 3]"});
  // Axes out of range name the op and the rank.
  expect_error<ValueError>("sum axis", [&] { sum(x, {2}); }, {"sum", "2"});
  expect_error<ValueError>("argmax axis", [&] { argmax(x, -3); }, {"argmax", "-3"});
  expect_error<ValueError>("permute", [&] { x.permute({0, 2}); }, {"permute", "2"});
  expect_error<ValueError>("unsqueeze", [&] { x.unsqueeze(4); }, {"unsqueeze", "4"});
  expect_error<ValueError>("concat axis", [&] { concat({x, x}, 2); }, {"concat", "2"});
  expect_error<ValueError>("amax empty", [] { amax(zeros({0, 3})); }, {"amax", "[0, 3]"});
}

TEST(Errors, OtherBadArguments) {
  expect_error<ShapeError>("zeros", [] { zeros({2, -1}); }, {"[2, -1]"});
  expect_error<ShapeError>("tensor", [] { tensor(std::vector<float>{1, 2, 3}, {2, 2}); }, {"tensor", "[2, 2]"});
  expect_error<ValueError>("arange", [] { arange(0, 5, 0); }, {"arange"});
  expect_error<ValueError>("clamp", [] { clamp(ones({2}), 1.0, 0.0); }, {"clamp"});
  expect_error<ValueError>("pad mode", [] { pad(ones({3}), {1, 1}, "circular"); }, {"pad", "circular"});
  expect_error<ValueError>("pad reflect", [] { pad(ones({2, 3}), {3, 3}, "reflect"); }, {"pad", "3"});
  expect_error<ValueError>("softplus", [] { softplus(ones({2}), -1.0); }, {"softplus", "beta"});
  expect_error<ValueError>("undefined", [] { Tensor().shape(); }, {"undefined"});
  expect_error<ValueError>("undefined input", [] { ones({2}) + Tensor(); }, {"add", "undefined"});
  expect_error<ValueError>("dtype name", [] { dtype_from_name("float128"); }, {"float128"});
  expect_error<ValueError>("backward", [] { (ones({2}, {.requires_grad = true}) * 2.0).backward(); },
                           {"backward", "[2]"});
  expect_error<ShapeError>("tril", [] { tril(ones({3})); }, {"tril", "[3]"});
  expect_error<ShapeError>("slice 0-d", [] { full({}, 1.0).slice(0, 0, 1); }, {"slice", "0-d"});
  // Every error above is a glia::Error, catchable as one.
  EXPECT_THROW(ones({2}) + ones({3}), Error);
  EXPECT_THROW(exp(tensor({1})), Error);
  EXPECT_THROW(zeros({2}).select(0, 5), Error);
}
