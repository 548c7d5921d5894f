// Keras metrics (glia::metrics): accuracies, top-k, errors, precision / recall and AUC against
// references computed here, accumulated over batches with sample weights; reset; names; and
// resolve(), which picks binary / sparse / categorical accuracy from the shapes as Keras does.
#include <cmath>
#include <functional>

#include "nn/nn_testing.h"

using namespace glia;
using namespace glia::testing;
using ::testing::HasSubstr;
namespace M = glia::metrics;

namespace {

/// The weighted mean Keras's MeanMetricWrapper reports over all batches: sum(v w) / sum(w).
struct Running {
  double total = 0, count = 0;
  void add(const std::vector<double>& v, const std::vector<double>& w) {
    for (size_t i = 0; i < v.size(); ++i) {
      double wi = w.empty() ? 1.0 : w[i];
      total += v[i] * wi;
      count += wi;
    }
  }
  double result() const { return count > 0 ? total / count : 0.0; }
};

size_t argmax_row(const std::vector<double>& v, size_t r, size_t C) {
  size_t best = 0;
  for (size_t c = 1; c < C; ++c)
    if (v[r * C + c] > v[r * C + best]) best = c;
  return best;
}

/// Per-sample values of a metric given y_true, y_pred (as doubles) and the class count C.
using PerSample = std::function<std::vector<double>(const std::vector<double>&, const std::vector<double>&, size_t)>;

/// Feeds `batches` batches to `m` (odd ones weighted) and compares with the running reference.
void check_accumulates(M::Metric& m, const std::function<std::pair<Tensor, Tensor>()>& draw, const PerSample& ref,
                       size_t C, int batches = 3) {
  Running want;
  m.reset_state();
  EXPECT_EQ(m.result(), 0.0);
  for (int b = 0; b < batches; ++b) {
    auto [yt, yp] = draw();
    Tensor sw;
    std::vector<double> w;
    if (b % 2) {
      sw = uniform({yp.shape()[0]}, 0, 2, DType::f32);
      w = values(sw);
    }
    m.update_state(yt, yp, sw);
    want.add(ref(values(yt), values(yp), C), w);
    EXPECT_NEAR(m.result(), want.result(), 1e-6) << "after batch " << b;
  }
  m.reset_state();
  EXPECT_EQ(m.result(), 0.0);
}

Tensor one_hot_rows(const std::vector<int64_t>& labels, int64_t C) {
  std::vector<float> v(labels.size() * static_cast<size_t>(C), 0.0f);
  for (size_t i = 0; i < labels.size(); ++i) v[i * static_cast<size_t>(C) + static_cast<size_t>(labels[i])] = 1.0f;
  return tensor<float>(v, {static_cast<int64_t>(labels.size()), C});
}

std::vector<int64_t> random_labels(int64_t n, int64_t C) {
  std::vector<int64_t> out;
  for (double v : values(uniform({n}, 0, static_cast<double>(C)))) out.push_back(static_cast<int64_t>(v));
  return out;
}

/// Exact ROC AUC (Mann-Whitney): the weighted probability that a positive scores above a
/// negative, ties counting one half.
double exact_auc(const std::vector<double>& label, const std::vector<double>& score, const std::vector<double>& w) {
  double num = 0, wp = 0, wn = 0;
  for (size_t i = 0; i < label.size(); ++i) (label[i] > 0.5 ? wp : wn) += w[i];
  for (size_t i = 0; i < label.size(); ++i)
    for (size_t j = 0; j < label.size(); ++j)
      if (label[i] > 0.5 && label[j] <= 0.5)
        num += w[i] * w[j] * (score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0);
  return num / (wp * wn);
}

}  // namespace

TEST(Metrics, AccuracyVariants) {
  const int64_t N = 10, C = 4;
  // Accuracy: exact match of labels.
  M::Accuracy acc;
  check_accumulates(
      acc,
      [&] {
        auto l = random_labels(N, 3), p = random_labels(N, 3);
        return std::pair{tensor<int64_t>(l, {N}), tensor<int64_t>(p, {N}).to(DType::f32)};
      },
      [](const std::vector<double>& t, const std::vector<double>& p, size_t) {
        std::vector<double> v;
        for (size_t i = 0; i < t.size(); ++i) v.push_back(t[i] == p[i] ? 1.0 : 0.0);
        return v;
      },
      1);

  // Categorical: argmax of one-hot targets against argmax of the predictions.
  M::CategoricalAccuracy cat;
  EXPECT_EQ(cat.name(), "categorical_accuracy");
  auto argmax_match = [](const std::vector<double>& t, const std::vector<double>& p, size_t c) {
    std::vector<double> v;
    for (size_t r = 0; r < t.size() / c; ++r) v.push_back(argmax_row(t, r, c) == argmax_row(p, r, c) ? 1.0 : 0.0);
    return v;
  };
  check_accumulates(
      cat,
      [&] {
        return std::pair{one_hot_rows(random_labels(N, C), C), uniform({N, C}, 0, 1, DType::f32)};
      },
      argmax_match, C);

  // Sparse: integer labels [N], [N, 1] or floats holding integers.
  M::SparseCategoricalAccuracy sparse;
  auto label_match = [](const std::vector<double>& t, const std::vector<double>& p, size_t c) {
    std::vector<double> v;
    for (size_t r = 0; r < t.size(); ++r) v.push_back(static_cast<double>(argmax_row(p, r, c)) == t[r] ? 1.0 : 0.0);
    return v;
  };
  int form = 0;
  check_accumulates(
      sparse,
      [&] {
        Tensor l = tensor<int64_t>(random_labels(N, C), {N});
        Tensor forms[] = {l, l.reshape({N, 1}).to(DType::i32), l.to(DType::f32)};
        return std::pair{forms[form++ % 3], uniform({N, C}, 0, 1, DType::f32)};
      },
      label_match, C, 3);

  // Binary: predictions above the threshold, averaged over the last axis per sample.
  for (double threshold : {0.5, 0.3}) {
    M::BinaryAccuracy bin("binary_accuracy", threshold);
    check_accumulates(
        bin,
        [&] {
          return std::pair{(uniform({N, 3}, 0, 1, DType::f32) > 0.5).to(DType::f32), uniform({N, 3}, 0, 1, DType::f32)};
        },
        [threshold](const std::vector<double>& t, const std::vector<double>& p, size_t) {
          std::vector<double> v;
          for (size_t r = 0; r < t.size() / 3; ++r) {
            double s = 0;
            for (size_t d = 0; d < 3; ++d) s += ((p[r * 3 + d] > threshold) == (t[r * 3 + d] > 0.5)) ? 1.0 : 0.0;
            v.push_back(s / 3);
          }
          return v;
        },
        3);
  }
  // y_true [N] next to y_pred [N, 1].
  M::BinaryAccuracy b1;
  b1.update_state(tensor<float>({1, 0, 1, 0}, {4}), tensor<float>({0.9f, 0.2f, 0.4f, 0.7f}, {4, 1}));
  EXPECT_DOUBLE_EQ(b1.result(), 0.5);
}

TEST(Metrics, TopK) {
  const int64_t N = 12, C = 6;
  for (int64_t k : {1, 2, 4}) {
    SCOPED_TRACE(k);
    auto in_top_k = [k](const std::vector<double>& t, const std::vector<double>& p, size_t c, bool sparse) {
      std::vector<double> v;
      for (size_t r = 0; r < p.size() / c; ++r) {
        size_t label = sparse ? static_cast<size_t>(t[r]) : argmax_row(t, r, c);
        int64_t better = 0;  // classes scored strictly higher than the true one (ties favour it, as TF's in_top_k)
        for (size_t j = 0; j < c; ++j) better += p[r * c + j] > p[r * c + label];
        v.push_back(better < k ? 1.0 : 0.0);
      }
      return v;
    };
    M::TopKCategoricalAccuracy topk(k);
    check_accumulates(
        topk,
        [&] {
          return std::pair{one_hot_rows(random_labels(N, C), C), uniform({N, C}, 0, 1, DType::f32)};
        },
        [&](auto& t, auto& p, size_t c) { return in_top_k(t, p, c, false); }, C);
    M::SparseTopKCategoricalAccuracy stopk(k);
    check_accumulates(
        stopk,
        [&] {
          return std::pair{tensor<int64_t>(random_labels(N, C), {N}), uniform({N, C}, 0, 1, DType::f32)};
        },
        [&](auto& t, auto& p, size_t c) { return in_top_k(t, p, c, true); }, C);
  }
  // Ties at the boundary count for the true class.
  M::SparseTopKCategoricalAccuracy t2(2);
  t2.update_state(tensor<int64_t>({2}, {1}), tensor<float>({0.5f, 0.3f, 0.3f, 0.1f}, {1, 4}));
  EXPECT_EQ(t2.result(), 1.0);
  EXPECT_EQ(M::TopKCategoricalAccuracy().config()["k"], 5);  // Keras's default k
}

TEST(Metrics, MeanSquaredAndAbsoluteError) {
  const int64_t N = 7, D = 3;
  auto per_sample = [](bool squared) {
    return [squared](const std::vector<double>& t, const std::vector<double>& p, size_t) {
      std::vector<double> v;
      for (size_t r = 0; r < t.size() / 3; ++r) {
        double s = 0;
        for (size_t d = 0; d < 3; ++d) {
          double e = p[r * 3 + d] - t[r * 3 + d];
          s += squared ? e * e : std::abs(e);
        }
        v.push_back(s / 3);
      }
      return v;
    };
  };
  auto draw = [&] { return std::pair{uniform({N, D}, -2, 2, DType::f32), uniform({N, D}, -2, 2, DType::f32)}; };
  M::MeanSquaredError mse;
  M::MeanAbsoluteError mae;
  check_accumulates(mse, draw, per_sample(true), D);
  check_accumulates(mae, draw, per_sample(false), D);
  // y_true [N] next to y_pred [N, 1].
  M::MeanAbsoluteError m1;
  m1.update_state(tensor<float>({1, 2, 3}, {3}), tensor<float>({1.5f, 2.0f, 2.0f}, {3, 1}));
  EXPECT_NEAR(m1.result(), 0.5, 1e-7);
}

TEST(Metrics, MeanOfValues) {
  M::Mean m("loss");
  m.update_state(tensor<float>({1, 2, 3, 6}, {4}));
  EXPECT_DOUBLE_EQ(m.result(), 3.0);
  m.update_state(tensor<float>({10, 20}, {2}), {}, tensor<float>({3, 1}, {2}));
  EXPECT_DOUBLE_EQ(m.result(), (12.0 + 50.0) / 8.0);
  m.update(4.0, 2.0);
  EXPECT_DOUBLE_EQ(m.result(), (12.0 + 50.0 + 8.0) / 10.0);
  m.reset_state();
  EXPECT_EQ(m.result(), 0.0);
  EXPECT_EQ(m.name(), "loss");
}

TEST(Metrics, PrecisionAndRecall) {
  for (double th : {0.5, 0.3}) {
    SCOPED_TRACE(th);
    M::Precision prec(th);
    M::Recall rec(th);
    double tp = 0, fp = 0, fn = 0;
    for (int b = 0; b < 3; ++b) {
      // Multi-label [N, 2] batches: every element counts; weights [N] cover a row.
      Tensor yt = (uniform({9, 2}, 0, 1, DType::f32) > 0.6).to(DType::f32), yp = uniform({9, 2}, 0, 1, DType::f32);
      Tensor sw = b == 1 ? uniform({9}, 0, 2, DType::f32) : Tensor();
      std::vector<double> t = values(yt), p = values(yp), w = sw.defined() ? values(sw) : std::vector<double>(9, 1.0);
      for (size_t i = 0; i < t.size(); ++i) {
        bool pos = t[i] > 0.5, pred = p[i] > th;
        double wi = w[i / 2];
        if (pred && pos) tp += wi;
        if (pred && !pos) fp += wi;
        if (!pred && pos) fn += wi;
      }
      prec.update_state(yt, yp, sw);
      rec.update_state(yt, yp, sw);
      EXPECT_NEAR(prec.result(), tp / (tp + fp), 1e-9);
      EXPECT_NEAR(rec.result(), tp / (tp + fn), 1e-9);
    }
    prec.reset_state();
    rec.reset_state();
    EXPECT_EQ(prec.result(), 0.0);  // no predicted positives: 0, as Keras's divide_no_nan
    EXPECT_EQ(rec.result(), 0.0);
  }
  M::Precision p;
  p.update_state(tensor<float>({0, 0}, {2}), tensor<float>({0.1f, 0.2f}, {2}));
  EXPECT_EQ(p.result(), 0.0);
  EXPECT_THROW(p.update_state(zeros({3}), zeros({4})), ShapeError);
}

TEST(Metrics, AucMatchesTheExactRocArea) {
  // Scores on a grid whose points are further apart than the thresholds (1/199) and never on
  // one: the 200-threshold trapezoidal sum is then the exact area, ties included.
  const int64_t N = 300;
  std::vector<double> grid_scores, labels;
  for (double u : values(uniform({N}, 0, 1))) {
    bool pos = u < 0.4;
    labels.push_back(pos ? 1.0 : 0.0);
  }
  Tensor raw = uniform({N}, 0, 1);
  std::vector<double> rv = values(raw);
  for (size_t i = 0; i < rv.size(); ++i) {
    double s = std::clamp(rv[i] * 0.8 + (labels[i] > 0.5 ? 0.25 : 0.0), 0.0, 0.999);
    grid_scores.push_back((std::floor(s * 20) + 0.5) / 20);
  }
  std::vector<double> ones_w(static_cast<size_t>(N), 1.0);
  Tensor sw = uniform({N}, 0.1, 2);
  std::vector<double> w = values(sw);
  {
    M::AUC auc;
    // Two batches accumulate into one curve.
    Tensor yt = tensor<double>(labels, {N}), ys = tensor<double>(grid_scores, {N});
    auc.update_state(yt.slice(0, 0, 100), ys.slice(0, 0, 100));
    auc.update_state(yt.slice(0, 100, N), ys.slice(0, 100, N));
    EXPECT_NEAR(auc.result(), exact_auc(labels, grid_scores, ones_w), 1e-9);
    auc.reset_state();
    auc.update_state(yt.reshape({N, 1}), ys.reshape({N, 1}).to(DType::f32), sw);
    EXPECT_NEAR(auc.result(), exact_auc(labels, grid_scores, w), 1e-6);
  }
  // Continuous scores: Keras's 200-threshold approximation is within about 1e-2.
  std::vector<double> cont;
  for (size_t i = 0; i < rv.size(); ++i)
    cont.push_back(std::clamp(rv[i] * 0.7 + (labels[i] > 0.5 ? 0.2 : 0.0), 0.0, 1.0));
  M::AUC auc;
  auc.update_state(tensor<double>(labels, {N}), tensor<double>(cont, {N}).to(DType::f32));
  double exact = exact_auc(labels, cont, ones_w);
  EXPECT_GT(exact, 0.6);
  EXPECT_LT(exact, 0.95);
  EXPECT_NEAR(auc.result(), exact, 1e-2);
  // Fewer thresholds approximate worse but still bracket the area.
  M::AUC coarse(5);
  coarse.update_state(tensor<double>(labels, {N}), tensor<double>(cont, {N}));
  EXPECT_NEAR(coarse.result(), exact, 0.1);
  EXPECT_EQ(coarse.config()["num_thresholds"], 5);
  // Perfect separation and its reverse.
  M::AUC perfect, reversed;
  perfect.update_state(tensor<float>({0, 0, 1, 1}, {4}), tensor<float>({0.1f, 0.2f, 0.8f, 0.9f}, {4}));
  reversed.update_state(tensor<float>({1, 1, 0, 0}, {4}), tensor<float>({0.1f, 0.2f, 0.8f, 0.9f}, {4}));
  EXPECT_NEAR(perfect.result(), 1.0, 1e-12);
  EXPECT_NEAR(reversed.result(), 0.0, 1e-12);
  // A prediction equal to a threshold counts as negative (Keras compares pred > threshold): with
  // thresholds {-eps, 0.5, 1 + eps}, a positive at 0.5 is never ranked above the negative.
  M::AUC three(3);
  three.update_state(tensor<float>({1, 0}, {2}), tensor<float>({0.5f, 0.2f}, {2}));
  EXPECT_NEAR(three.result(), 0.5, 1e-12);
  EXPECT_THROW(M::AUC(1), ValueError);
}

TEST(Metrics, ResolveAccuracyAsKeras) {
  auto cls = [](const std::string& name, const std::string& loss, const Shape& t, const Shape& p) {
    M::MetricPtr m = M::resolve(name, loss, t, p);
    EXPECT_EQ(m->name(), name);
    return m->class_name();
  };
  // Keras's is_binary_or_sparse_categorical: one prediction column is binary; targets of lower
  // rank, or one target column next to several predictions, are sparse; otherwise categorical.
  EXPECT_EQ(cls("accuracy", "SparseCategoricalCrossentropy", {32}, {32, 10}), "SparseCategoricalAccuracy");
  EXPECT_EQ(cls("accuracy", "SparseCategoricalCrossentropy", {32, 1}, {32, 10}), "SparseCategoricalAccuracy");
  EXPECT_EQ(cls("acc", "CategoricalCrossentropy", {32, 10}, {32, 10}), "CategoricalAccuracy");
  EXPECT_EQ(cls("accuracy", "BinaryCrossentropy", {32, 1}, {32, 1}), "BinaryAccuracy");
  EXPECT_EQ(cls("accuracy", "BinaryCrossentropy", {32}, {32, 1}), "BinaryAccuracy");
  EXPECT_EQ(cls("accuracy", "MeanSquaredError", {32, 1}, {32, 1}), "BinaryAccuracy");
  EXPECT_EQ(cls("accuracy", "SparseCategoricalCrossentropy", {8, 20}, {8, 20, 5}), "SparseCategoricalAccuracy");
  // Other names are not resolved.
  EXPECT_EQ(cls("mae", "CategoricalCrossentropy", {32, 10}, {32, 10}), "MeanAbsoluteError");
  EXPECT_EQ(cls("precision", "BinaryCrossentropy", {32, 1}, {32, 1}), "Precision");
}

TEST(Metrics, ByName) {
  std::vector<std::pair<std::string, std::string>> names = {
      {"accuracy", "Accuracy"},
      {"acc", "Accuracy"},
      {"categorical_accuracy", "CategoricalAccuracy"},
      {"sparse_categorical_accuracy", "SparseCategoricalAccuracy"},
      {"binary_accuracy", "BinaryAccuracy"},
      {"top_k_categorical_accuracy", "TopKCategoricalAccuracy"},
      {"sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy"},
      {"mse", "MeanSquaredError"},
      {"mean_squared_error", "MeanSquaredError"},
      {"mae", "MeanAbsoluteError"},
      {"mean_absolute_error", "MeanAbsoluteError"},
      {"precision", "Precision"},
      {"recall", "Recall"},
      {"auc", "AUC"},
  };
  for (auto& [name, cls] : names) {
    M::MetricPtr m = M::get(name);
    EXPECT_EQ(m->class_name(), cls) << name;
    EXPECT_EQ(m->name(), name);  // shown in logs under the name asked for, as Keras
    EXPECT_EQ(m->config()["name"], name);
  }
  std::string msg = error_of<ValueError>([] { M::get("f1"); });
  EXPECT_THAT(msg, HasSubstr("f1"));
  EXPECT_THAT(msg, HasSubstr("accuracy"));
  EXPECT_DOUBLE_EQ(M::Precision(0.7).config()["thresholds"].get<double>(), 0.7);
}
