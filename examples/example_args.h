// The few command-line options the examples share ("--epochs 3", "--limit 2000", "--data DIR"),
// kept dependency-free so that each example reads as plain Glia code.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace examples {

class Args {
 public:
  /// `flags` are the options that take no value (e.g. "--synthetic"); all others take one.
  Args(int argc, char** argv, std::vector<std::string> flags = {}) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) {
        positional.push_back(a);
        continue;
      }
      bool is_flag = false;
      for (auto& f : flags) is_flag = is_flag || f == a;
      if (is_flag) {
        opts_.insert_or_assign(a, std::string(1, '1'));
      } else if (i + 1 < argc) {
        opts_.insert_or_assign(a, std::string(argv[++i]));
      } else {
        std::cerr << argv[0] << ": option " << a << " needs a value\n";
        std::exit(2);
      }
    }
  }
  bool has(const std::string& name) const { return opts_.count(name) > 0; }
  std::string str(const std::string& name, const std::string& fallback) const {
    auto it = opts_.find(name);
    return it == opts_.end() ? fallback : it->second;
  }
  int64_t num(const std::string& name, int64_t fallback) const {
    auto it = opts_.find(name);
    if (it == opts_.end()) return fallback;
    char* end = nullptr;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (end == it->second.c_str() || *end != '\0' || v < 0) {
      std::cerr << "option " << name << " expects a non-negative integer, got '" << it->second << "'\n";
      std::exit(2);
    }
    return static_cast<int64_t>(v);
  }
  std::vector<std::string> positional;

 private:
  std::map<std::string, std::string> opts_;
};

}  // namespace examples
