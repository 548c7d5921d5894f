// The programs of the fused_elementwise op (internal): graph fusion writes them, the kernels
// run them. A program is a list of instructions over operand slots: slots [0, inputs) are the
// op's inputs, slots from `inputs` on are registers (one block of values each), and an
// instruction whose destination is kOutput writes the op's output.
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

namespace glia::fused {

enum class Code : int64_t {
  // unary (operand a)
  Neg = 0,
  Abs,
  Exp,
  Expm1,
  Log,
  Log1p,
  Sqrt,
  Rsqrt,
  Reciprocal,
  Sin,
  Cos,
  Tanh,
  Sigmoid,
  Erf,
  Relu,
  LeakyRelu,  // p0 = negative slope
  Elu,        // p0 = alpha
  Gelu,
  GeluTanh,
  Softplus,  // p0 = beta, p1 = threshold
  Square,
  // binary (operands a, b)
  Add = 64,
  Sub,
  Mul,
  Div,
  Maximum,
  Minimum,
  ReluBackward,
  SigmoidBackward,
  TanhBackward,
};
inline bool is_binary(Code c) { return static_cast<int64_t>(c) >= static_cast<int64_t>(Code::Add); }
inline bool is_valid(int64_t c) {
  return (c >= 0 && c <= static_cast<int64_t>(Code::Square)) ||
         (c >= static_cast<int64_t>(Code::Add) && c <= static_cast<int64_t>(Code::TanhBackward));
}

/// How an input is read: a tensor of the output's shape, one number, or a vector along the
/// last axis (a bias).
enum class InputKind : int64_t { Full = 0, Scalar = 1, Bias = 2 };

struct Instr {
  Code code;
  int64_t dst;   // a register slot, or kOutput
  int64_t a, b;  // operand slots (b = -1 for unary ops)
  double p0 = 0, p1 = 0;
};

inline constexpr int64_t kOutput = -1;
inline constexpr int64_t kMaxRegisters = 16;
inline constexpr int64_t kMaxBiasInputs = 4;
inline constexpr size_t kInstrWords = 6;

/// The program as the op's "program" attribute: [registers, then 6 words per instruction].
inline std::vector<int64_t> encode(int64_t registers, const std::vector<Instr>& prog) {
  std::vector<int64_t> out{registers};
  for (const Instr& i : prog) {
    out.insert(out.end(), {static_cast<int64_t>(i.code), i.dst, i.a, i.b, std::bit_cast<int64_t>(i.p0),
                           std::bit_cast<int64_t>(i.p1)});
  }
  return out;
}

/// Decodes a program; false if it is malformed for `inputs` inputs.
inline bool decode(const std::vector<int64_t>& words, int64_t inputs, int64_t& registers, std::vector<Instr>& prog) {
  if (words.empty() || (words.size() - 1) % kInstrWords != 0) return false;
  registers = words[0];
  if (registers < 0 || registers > kMaxRegisters) return false;
  prog.clear();
  int64_t slots = inputs + registers;
  for (size_t k = 1; k < words.size(); k += kInstrWords) {
    if (!is_valid(words[k])) return false;
    Instr i{static_cast<Code>(words[k]),
            words[k + 1],
            words[k + 2],
            words[k + 3],
            std::bit_cast<double>(words[k + 4]),
            std::bit_cast<double>(words[k + 5])};
    bool dst_ok = i.dst == kOutput || (i.dst >= inputs && i.dst < slots);
    bool a_ok = i.a >= 0 && i.a < slots;
    bool b_ok = is_binary(i.code) ? i.b >= 0 && i.b < slots : i.b == -1;
    if (!dst_ok || !a_ok || !b_ok) return false;
    prog.push_back(i);
  }
  return !prog.empty() && prog.back().dst == kOutput;
}

}  // namespace glia::fused
