// Learning-rate schedules, with Keras's formulas and config keys (computed in double,
// where Keras computes in the dtype of the initial rate, float32).
#include "glia/optim/schedules.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numbers>

#include "glia/core/error.h"
#include "glia/nn/config_int.h"

namespace glia::optimizers::schedules {

ExponentialDecay::ExponentialDecay(double initial_learning_rate, int64_t decay_steps, double decay_rate, bool staircase)
    : initial_(initial_learning_rate), rate_(decay_rate), steps_(decay_steps), staircase_(staircase) {
  GLIA_CHECK(decay_steps > 0, ValueError, "ExponentialDecay: decay_steps must be > 0, got ", decay_steps);
}

double ExponentialDecay::operator()(int64_t step) const {
  double p = static_cast<double>(step) / static_cast<double>(steps_);
  if (staircase_) p = std::floor(p);
  return initial_ * std::pow(rate_, p);
}

Config ExponentialDecay::config() const {
  return {{"initial_learning_rate", initial_},
          {"decay_steps", steps_},
          {"decay_rate", rate_},
          {"staircase", staircase_},
          {"name", "ExponentialDecay"}};
}

CosineDecay::CosineDecay(double initial_learning_rate, int64_t decay_steps, CosineDecayOptions o)
    : initial_(initial_learning_rate), steps_(decay_steps), o_(o) {
  GLIA_CHECK(decay_steps > 0, ValueError, "CosineDecay: decay_steps must be > 0, got ", decay_steps);
  GLIA_CHECK(o.warmup_steps >= 0, ValueError, "CosineDecay: warmup_steps must be >= 0, got ", o.warmup_steps);
}

double CosineDecay::operator()(int64_t step) const {
  double decay_steps = static_cast<double>(steps_);
  auto decay = [&](double s, double from) {
    double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * (s / decay_steps)));
    return from * ((1.0 - o_.alpha) * cosine + o_.alpha);
  };
  double s = static_cast<double>(step);
  // Keras ignores warmup_steps when there is no warmup_target.
  if (!o_.warmup_target) return decay(std::min(s, decay_steps), initial_);
  double target = *o_.warmup_target;
  double warmup = static_cast<double>(o_.warmup_steps);
  s = std::min(s, decay_steps + warmup);
  if (s < warmup) return (target - initial_) * (s / warmup) + initial_;
  return decay(s - warmup, target);
}

Config CosineDecay::config() const {
  Config c = {{"initial_learning_rate", initial_},
              {"decay_steps", steps_},
              {"alpha", o_.alpha},
              {"name", "CosineDecay"},
              {"warmup_target", nullptr},
              {"warmup_steps", o_.warmup_steps}};
  if (o_.warmup_target) c["warmup_target"] = *o_.warmup_target;
  return c;
}

PiecewiseConstantDecay::PiecewiseConstantDecay(std::vector<int64_t> boundaries, std::vector<double> values)
    : boundaries_(std::move(boundaries)), values_(std::move(values)) {
  GLIA_CHECK(values_.size() == boundaries_.size() + 1, ValueError,
             "PiecewiseConstantDecay: values must have one more entry than boundaries, got ", boundaries_.size(),
             " boundaries and ", values_.size(), " values");
  for (size_t i = 1; i < boundaries_.size(); ++i)
    GLIA_CHECK(boundaries_[i] > boundaries_[i - 1], ValueError,
               "PiecewiseConstantDecay: boundaries must increase strictly, got ", boundaries_[i - 1], " then ",
               boundaries_[i]);
}

double PiecewiseConstantDecay::operator()(int64_t step) const {
  for (size_t i = 0; i < boundaries_.size(); ++i)
    if (step <= boundaries_[i]) return values_[i];
  return values_.back();
}

Config PiecewiseConstantDecay::config() const {
  return {{"boundaries", boundaries_}, {"values", values_}, {"name", "PiecewiseConstant"}};
}

// --- serialization

namespace {

const Config& field(const Config& c, const char* cls, const char* key) {
  auto it = c.find(key);
  GLIA_CHECK(it != c.end() && !it->is_null(), ValueError, cls, ".from_config: missing '", key, "'");
  return *it;
}

double number(const Config& c, const char* cls, const char* key, std::optional<double> def = {}) {
  auto it = c.find(key);
  if ((it == c.end() || it->is_null()) && def) return *def;
  const Config& v = field(c, cls, key);
  GLIA_CHECK(v.is_number(), ValueError, cls, ".from_config: '", key, "' must be a number, got ", v.dump());
  return v.get<double>();
}

int64_t integer(const Config& c, const char* cls, const char* key, std::optional<int64_t> def = {}) {
  auto it = c.find(key);
  if ((it == c.end() || it->is_null()) && def) return *def;
  // Keras configs written by Python may hold 1000.0 for an integer (detail::config_int takes it).
  return detail::config_int(field(c, cls, key), detail::str(cls, ".from_config: '", key, "'").c_str());
}

bool boolean(const Config& c, const char* cls, const char* key, bool def) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return def;
  GLIA_CHECK(it->is_boolean(), ValueError, cls, ".from_config: '", key, "' must be true or false, got ", it->dump());
  return it->get<bool>();
}

void check_keys(const Config& c, const char* cls, std::initializer_list<const char*> known) {
  GLIA_CHECK(c.is_object(), ValueError, cls, ".from_config: expected a JSON object, got ", c.dump());
  for (auto it = c.begin(); it != c.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) {
      std::string names;
      for (const char* k : known) names += std::string(names.empty() ? "" : ", ") + k;
      throw ValueError(detail::str(cls, ".from_config: unknown argument '", it.key(), "' (known: ", names, ")"));
    }
  }
}

using Factory = std::function<SchedulePtr(const Config&)>;

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> f = {
      {"ExponentialDecay",
       [](const Config& c) -> SchedulePtr {
         const char* n = "ExponentialDecay";
         check_keys(c, n, {"initial_learning_rate", "decay_steps", "decay_rate", "staircase", "name"});
         return std::make_shared<ExponentialDecay>(number(c, n, "initial_learning_rate"), integer(c, n, "decay_steps"),
                                                   number(c, n, "decay_rate"), boolean(c, n, "staircase", false));
       }},
      {"CosineDecay",
       [](const Config& c) -> SchedulePtr {
         const char* n = "CosineDecay";
         check_keys(c, n, {"initial_learning_rate", "decay_steps", "alpha", "name", "warmup_target", "warmup_steps"});
         CosineDecayOptions o;
         o.alpha = number(c, n, "alpha", 0.0);
         o.warmup_steps = integer(c, n, "warmup_steps", 0);
         if (c.contains("warmup_target") && !c["warmup_target"].is_null())
           o.warmup_target = number(c, n, "warmup_target");
         return std::make_shared<CosineDecay>(number(c, n, "initial_learning_rate"), integer(c, n, "decay_steps"), o);
       }},
      {"PiecewiseConstantDecay",
       [](const Config& c) -> SchedulePtr {
         const char* n = "PiecewiseConstantDecay";
         check_keys(c, n, {"boundaries", "values", "name"});
         const Config& b = field(c, n, "boundaries");
         const Config& v = field(c, n, "values");
         GLIA_CHECK(b.is_array() && v.is_array(), ValueError, n,
                    ".from_config: 'boundaries' and 'values' must be lists");
         std::vector<int64_t> bs;
         std::vector<double> vs;
         for (const Config& x : b) {
           GLIA_CHECK(x.is_number(), ValueError, n, ".from_config: boundaries must be numbers, got ", x.dump());
           bs.push_back(detail::config_int(x, "boundaries"));
         }
         for (const Config& x : v) {
           GLIA_CHECK(x.is_number(), ValueError, n, ".from_config: values must be numbers, got ", x.dump());
           vs.push_back(x.get<double>());
         }
         return std::make_shared<PiecewiseConstantDecay>(std::move(bs), std::move(vs));
       }},
  };
  return f;
}

}  // namespace

SchedulePtr from_config(const Config& c) {
  GLIA_CHECK(c.is_object() && c.contains("class_name") && c["class_name"].is_string(), ValueError,
             "schedules::from_config: expected {\"class_name\": ..., \"config\": {...}}, got ", c.dump());
  std::string cls = c["class_name"].get<std::string>();
  auto& f = factories();
  auto it = f.find(cls);
  if (it == f.end()) {
    std::string names;
    for (auto& [k, v] : f) names += (names.empty() ? "" : ", ") + k;
    throw ValueError(
        detail::str("schedules::from_config: unknown learning-rate schedule '", cls, "' (known: ", names, ")"));
  }
  return it->second(c.contains("config") ? c["config"] : Config::object());
}

Config to_config(const SchedulePtr& s) {
  GLIA_CHECK(s != nullptr, ValueError, "schedules::to_config: null schedule");
  return {{"module", "keras.optimizers.schedules"},
          {"class_name", s->class_name()},
          {"config", s->config()},
          {"registered_name", nullptr}};
}

}  // namespace glia::optimizers::schedules
