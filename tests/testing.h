// Test helpers: random inputs, element-wise comparison, finite-difference
// gradient checks, .npy files and running Python (PyTorch) for references.
#pragma once

#include <glia/glia.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace glia::testing {

/// Uniform random tensor in [low, high) of the given dtype (float64 by default).
Tensor uniform(IntList shape, double low = -1.0, double high = 1.0, DType dtype = DType::f64);
inline Tensor uniform(std::initializer_list<int64_t> s, double low = -1.0, double high = 1.0,
                      DType dtype = DType::f64) {
  return uniform(IntList(s.begin(), s.size()), low, high, dtype);
}

/// All elements as doubles, row-major (any layout, any dtype).
std::vector<double> values(const Tensor& t);

/// The element of t at the multi-index `idx` of a broadcast shape (t is broadcast to it).
double at_broadcast(const Tensor& t, const std::vector<int64_t>& idx);

/// Calls f(multi_index) for every index of shape, row-major.
void for_each_index(IntList shape, const std::function<void(const std::vector<int64_t>&)>& f);
inline void for_each_index(const Shape& s, const std::function<void(const std::vector<int64_t>&)>& f) {
  for_each_index(IntList(s), f);
}

/// Checks shapes equal and |a - b| <= atol + rtol |b| element-wise (NaNs must match).
::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double rtol = 1e-5,
                                     double atol = 1e-8);
::testing::AssertionResult all_close(const Tensor& actual, const std::vector<double>& expected, double rtol = 1e-5,
                                     double atol = 1e-8);

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Compares the autograd gradient of sum(f(inputs) * w) (w random) with central differences,
/// for every input that requires grad. Inputs should be float64.
::testing::AssertionResult gradcheck(const Fn& f, const std::vector<Tensor>& inputs, double eps = 1e-6,
                                     double atol = 1e-5, double rtol = 1e-4);
/// The same for the gradient function itself (second order).
::testing::AssertionResult gradgradcheck(const Fn& f, const std::vector<Tensor>& inputs, double eps = 1e-6,
                                         double atol = 1e-5, double rtol = 1e-4);

/// Runs f and returns the what() of the glia::Error subclass E it throws ("" and a test failure
/// when it throws nothing or something else).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

/// .npy files (version 1, little-endian, C order) for exchanging arrays with NumPy.
void save_npy(const std::string& path, const Tensor& t);
Tensor load_npy(const std::string& path);

/// A fresh, empty temporary directory (removed at exit).
std::string temp_dir();

/// Runs a program (args[0], found on PATH) with arguments, without a shell's word splitting.
/// Returns the exit code; stdout and stderr together go to `out`.
int run_command(const std::vector<std::string>& args, std::string* out = nullptr);
/// Runs Debian's python3 (the one with PyTorch) on a script file with arguments, with the
/// fair settings for PyTorch (OpenMP OpenBLAS). Returns the exit code; output goes to `out`.
int run_python(const std::string& script, const std::vector<std::string>& args, std::string* out = nullptr);
/// True when /usr/bin/python3 can import torch.
bool have_torch();

}  // namespace glia::testing
