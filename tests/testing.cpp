#include "testing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace glia::testing {

Tensor uniform(IntList shape, double low, double high, DType dtype) {
  return rand(shape, {.dtype = DType::f64}, low, high).to(dtype);
}

std::vector<double> values(const Tensor& t) { return t.to(DType::f64).contiguous().to_vector<double>(); }

double at_broadcast(const Tensor& t, const std::vector<int64_t>& idx) {
  int64_t off = t.offset();
  size_t lead = idx.size() - static_cast<size_t>(t.dim());
  for (size_t d = 0; d < static_cast<size_t>(t.dim()); ++d) {
    int64_t i = t.shape()[d] == 1 ? 0 : idx[d + lead];
    off += i * t.strides()[d];
  }
  Tensor v = Tensor::make_view(t.storage(), {}, {}, off, t.dtype());
  return v.item().to_double();
}

void for_each_index(IntList shape, const std::function<void(const std::vector<int64_t>&)>& f) {
  int64_t n = numel(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    f(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

::testing::AssertionResult all_close(const Tensor& actual, const std::vector<double>& e, double rtol, double atol) {
  std::vector<double> a = values(actual);
  if (a.size() != e.size()) return ::testing::AssertionFailure() << "size " << a.size() << " vs expected " << e.size();
  int bad = 0;
  std::ostringstream msg;
  for (size_t i = 0; i < a.size(); ++i) {
    bool ok =
        (std::isnan(a[i]) && std::isnan(e[i])) || a[i] == e[i] || std::abs(a[i] - e[i]) <= atol + rtol * std::abs(e[i]);
    if (!ok && bad++ < 5) msg << "\n  [" << i << "] got " << a[i] << ", expected " << e[i];
  }
  if (bad) return ::testing::AssertionFailure() << bad << " of " << a.size() << " elements differ:" << msg.str();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double rtol, double atol) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << to_string(actual.shape()) << " vs expected "
                                         << to_string(expected.shape());
  return all_close(actual, values(expected), rtol, atol);
}

namespace {

// sum(f(x) * w) with fixed weights w, to check all output elements at once.
double weighted(const Fn& f, const std::vector<Tensor>& in, const std::vector<Tensor>& w) {
  no_grad g;
  Tensor out = f(in);
  double s = 0;
  auto o = values(out);
  auto ww = values(w[0]);
  for (size_t i = 0; i < o.size(); ++i) s += o[i] * ww[i];
  return s;
}

::testing::AssertionResult check_grads(const Fn& f, const std::vector<Tensor>& inputs, double eps, double atol,
                                       double rtol) {
  std::vector<Tensor> diff;
  std::vector<size_t> which;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) {
      diff.push_back(inputs[i]);
      which.push_back(i);
    }
  if (diff.empty()) return ::testing::AssertionFailure() << "gradcheck: no input requires grad";
  Tensor out = f(inputs);
  Tensor w = uniform(out.shape(), 0.5, 1.5);
  // An output that does not depend on the inputs differentiably has zero gradients.
  std::vector<Tensor> analytic(diff.size());
  if (out.requires_grad()) analytic = grad({out}, diff, {.grad_outputs = {w.to(out.dtype())}, .allow_unused = true});
  std::vector<Tensor> wv = {w};
  for (size_t k = 0; k < diff.size(); ++k) {
    Tensor x = diff[k];
    std::vector<double> a =
        analytic[k].defined() ? values(analytic[k]) : std::vector<double>(static_cast<size_t>(x.numel()), 0.0);
    // Perturb a private contiguous copy.
    Tensor base = x.detach().clone();
    double* p = base.data<double>();
    for (int64_t i = 0; i < base.numel(); ++i) {
      double orig = p[i];
      std::vector<Tensor> in = inputs;
      // Perturbed copies are fresh leaves that require grad, so that functions which take
      // gradients inside (gradgradcheck) see the same kind of input.
      p[i] = orig + eps;
      in[which[k]] = base.clone().requires_grad_(true);
      double fp = weighted(f, in, wv);
      p[i] = orig - eps;
      in[which[k]] = base.clone().requires_grad_(true);
      double fm = weighted(f, in, wv);
      p[i] = orig;
      double num = (fp - fm) / (2 * eps);
      double an = a[static_cast<size_t>(i)];
      if (std::abs(num - an) > atol + rtol * std::abs(num))
        return ::testing::AssertionFailure() << "gradient of input " << which[k] << " element " << i << ": autograd "
                                             << an << ", finite differences " << num;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

::testing::AssertionResult gradcheck(const Fn& f, const std::vector<Tensor>& inputs, double eps, double atol,
                                     double rtol) {
  for (auto& t : inputs)
    if (t.defined() && t.requires_grad() && t.dtype() != DType::f64)
      return ::testing::AssertionFailure() << "gradcheck: inputs must be float64";
  return check_grads(f, inputs, eps, atol, rtol);
}

::testing::AssertionResult gradgradcheck(const Fn& f, const std::vector<Tensor>& inputs, double eps, double atol,
                                         double rtol) {
  // Fixed output weights, so that the first-order gradient is a function of the inputs only.
  Tensor probe = [&] {
    no_grad g;
    return f(inputs);
  }();
  Tensor w = uniform(probe.shape(), 0.5, 1.5);
  Fn first = [&f, w](const std::vector<Tensor>& in) {
    std::vector<Tensor> diff;
    for (auto& t : in)
      if (t.defined() && t.requires_grad()) diff.push_back(t);
    enable_grad eg;
    Tensor out = f(in);
    auto g = grad({out}, diff, {.grad_outputs = {w.to(out.dtype())}, .create_graph = true, .allow_unused = true});
    std::vector<Tensor> flat;
    for (size_t i = 0; i < g.size(); ++i)
      flat.push_back(g[i].defined() ? g[i].reshape({-1}) : zeros({diff[i].numel()}, {.dtype = DType::f64}));
    return concat(flat, 0);
  };
  return check_grads(first, inputs, eps, atol, rtol);
}

// --- .npy

void save_npy(const std::string& path, const Tensor& t) {
  Tensor c = t.contiguous();
  const char* descr = nullptr;
  switch (c.dtype()) {
    case DType::f32:
      descr = "<f4";
      break;
    case DType::f64:
      descr = "<f8";
      break;
    case DType::i32:
      descr = "<i4";
      break;
    case DType::i64:
      descr = "<i8";
      break;
    case DType::u8:
      descr = "|u1";
      break;
    case DType::b8:
      descr = "|b1";
      break;
    default:
      throw ValueError("save_npy: unsupported dtype");
  }
  std::string shape = "(";
  for (int64_t d : c.shape()) shape += std::to_string(d) + ",";
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream f(path, std::ios::binary);
  f.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char*>(&len), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
}

Tensor load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError(path, "cannot open");
  char magic[8];
  f.read(magic, 8);
  uint16_t len;
  f.read(reinterpret_cast<char*>(&len), 2);
  std::string header(len, '\0');
  f.read(header.data(), len);
  auto field = [&](const std::string& key) {
    size_t p = header.find("'" + key + "':");
    if (p == std::string::npos) throw IOError(path, "npy header without " + key);
    return header.substr(p + key.size() + 3);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1, 3);
  DType dt = descr == "<f4"   ? DType::f32
             : descr == "<f8" ? DType::f64
             : descr == "<i4" ? DType::i32
             : descr == "<i8" ? DType::i64
             : descr == "|u1" ? DType::u8
             : descr == "|b1" ? DType::b8
                              : throw IOError(path, "unsupported npy dtype " + descr);
  std::string sh = field("shape");
  sh = sh.substr(sh.find('(') + 1, sh.find(')') - sh.find('(') - 1);
  std::vector<int64_t> shape;
  std::stringstream ss(sh);
  std::string item;
  while (std::getline(ss, item, ','))
    if (item.find_first_not_of(' ') != std::string::npos) shape.push_back(std::stoll(item));
  Tensor t = Tensor::empty(IntList(shape.data(), shape.size()), dt);
  f.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  if (!f) throw IOError(path, "truncated npy data");
  return t;
}

std::string temp_dir() {
  static std::vector<std::string> dirs;
  static struct Cleanup {
    ~Cleanup() {
      std::error_code ec;
      for (auto& d : dirs) std::filesystem::remove_all(d, ec);
    }
  } cleanup;
  std::string tmpl = (std::filesystem::temp_directory_path() / "glia-test-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* d = mkdtemp(buf.data());
  if (!d) throw IOError(tmpl, "mkdtemp failed");
  dirs.push_back(d);
  return d;
}

int run_command(const std::vector<std::string>& args, std::string* out) {
  std::string cmd;
  for (auto& a : args) {
    // Single-quoted for the shell; a quote inside becomes '\''.
    std::string q = "'";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += (cmd.empty() ? "" : " ") + q + "'";
  }
  cmd += " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  int status = pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_python(const std::string& script, const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> cmd = {"env", "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp",
                                  "OMP_NUM_THREADS=2", "/usr/bin/python3", script};
  cmd.insert(cmd.end(), args.begin(), args.end());
  return run_command(cmd, out);
}

bool have_torch() {
  static int ok = std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0 ? 1 : 0;
  return ok == 1;
}

}  // namespace glia::testing
