// The interface between the host side and elementwise.cu: comparisons, logic, where, the float
// math of activations and their backward ops, and the interpreter of fused_elementwise programs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "launch.h"

namespace glia::cuda::launch {

/// Comparisons and logic: out (bool) = a op b, both of dtype dt. And/Or/Xor take B8 operands.
enum class CmpOp : int { Eq, Ne, Lt, Le, Gt, Ge, And, Or, Xor };
bool compare(CmpOp op, const Strided<3>& it, Dt dt, cudaStream_t s);

/// Codes of the float math, numbered as glia::fused::Code (elementwise_ops.cpp checks it), so the
/// single ops and the fused interpreter share one device implementation.
enum class MathOp : int {
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

/// out = op(x) (a unary MathOp), floating dt (F32, F64, BF16, F16). False for other dtypes.
bool math_unary(MathOp op, const Strided<2>& it, Dt dt, double p0, double p1, cudaStream_t s);
/// out = op(a, b) (a binary MathOp), floating dt. False for other dtypes.
bool math_binary(MathOp op, const Strided<3>& it, Dt dt, cudaStream_t s);

/// out (bool) = isnan(x) or isfinite(x), x of a floating dt. False for other dtypes.
bool float_class(bool finite, const Strided<2>& it, Dt dt, cudaStream_t s);

/// Unary ops on any dtype (F32, F64, BF16, F16, I32, I64, U8, B8); false for the others.
enum class ArithOp : int { Sign, Clamp, PowScalar };
struct ArithParams {
  bool has_lo = false, has_hi = false;
  double lo = 0, hi = 0, exponent = 0;  // bounds for floating dtypes, and pow_scalar's exponent
  int64_t ilo = 0, ihi = 0;             // bounds for integer dtypes
};
bool arith_unary(ArithOp op, const Strided<2>& it, Dt dt, const ArithParams& p, cudaStream_t s);

/// out = cond ? a : b; operand 0 out, 1 a, 2 b, 3 cond (bool); out, a and b of `itemsize` bytes.
bool where(const Strided<4>& it, int itemsize, cudaStream_t s);

// --- fused_elementwise

// Graph fusion makes groups of at most 24 ops, so at most 24 instructions and 25 inputs.
inline constexpr int kFusedMaxInstr = 64;
inline constexpr int kFusedMaxInputs = 32;
inline constexpr int kFusedMaxRegisters = 16;

struct FusedInstr {
  int16_t code;  // a MathOp
  int8_t dst;    // a slot (input i, register inputs + r), or -1 for the output
  int8_t a, b;   // operand slots (b = -1 for unary)
  float p0, p1;
};

/// A program and its operands, passed to the kernel by value. Full inputs and the output are
/// contiguous float32 of `numel` elements; a Bias input is a contiguous vector of `cols` floats read
/// at (element % cols); a Scalar input is `scalar[i]`, or `*scalar_ptr[i]` (float32 on the device)
/// where that is set.
struct FusedArgs {
  int n_instr = 0, n_inputs = 0, n_regs = 0;
  int64_t numel = 0, cols = 1;
  float* out = nullptr;
  FusedInstr instr[kFusedMaxInstr];
  int8_t kind[kFusedMaxInputs];  // 0 Full, 1 Scalar, 2 Bias (glia::fused::InputKind)
  const float* ptr[kFusedMaxInputs];
  const float* scalar_ptr[kFusedMaxInputs];
  float scalar[kFusedMaxInputs];
};

void fused_elementwise(const FusedArgs& args, cudaStream_t s);

}  // namespace glia::cuda::launch
