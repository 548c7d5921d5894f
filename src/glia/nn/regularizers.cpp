#include "glia/nn/regularizers.h"

#include "glia/ops/functions.h"

namespace glia::regularizers {

Tensor L1L2::operator()(const Tensor& w) const {
  Tensor r;
  if (l1_ != 0.0) r = sum(abs(w)) * l1_;
  if (l2_ != 0.0) {
    Tensor t = sum(square(w)) * l2_;
    r = r.defined() ? r + t : t;
  }
  return r.defined() ? r : zeros({}, {.dtype = w.dtype()});
}

RegularizerPtr l1(double f) { return std::make_shared<L1L2>(f, 0.0); }
RegularizerPtr l2(double f) { return std::make_shared<L1L2>(0.0, f); }
RegularizerPtr l1_l2(double a, double b) { return std::make_shared<L1L2>(a, b); }

RegularizerPtr get(const std::string& name) {
  if (name == "l1") return l1();
  if (name == "l2") return l2();
  if (name == "l1_l2") return l1_l2();
  throw ValueError("unknown regularizer '" + name + "': expected l1, l2 or l1_l2");
}

RegularizerPtr from_config(const Config& c) {
  const Config& a = c.contains("config") ? c["config"] : Config::object();
  std::string cls = c.at("class_name").get<std::string>();
  double l1v = a.contains("l1") ? a["l1"].get<double>() : 0.0, l2v = a.contains("l2") ? a["l2"].get<double>() : 0.0;
  if (cls == "L1L2") return std::make_shared<L1L2>(l1v, l2v);
  if (cls == "L1") return l1(l1v);
  if (cls == "L2") return l2(l2v);
  throw ValueError("unknown regularizer class '" + cls + "'");
}

Config to_config(const RegularizerPtr& r) { return {{"class_name", r->class_name()}, {"config", r->config()}}; }

}  // namespace glia::regularizers
