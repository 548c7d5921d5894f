// The interface between the host side of the CUDA backend (glia types, kernel registration) and the
// .cu kernels: plain pointers, sizes and element strides, so nvcc never compiles glia's headers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "glia/core/strided_loop.h"

namespace glia::cuda::launch {

inline constexpr int kMaxDims = glia::detail::kLoopMaxDims;

/// Element types, numbered as glia::DType.
enum Dt : int { F32, F64, BF16, F16, I32, I64, U8, B8 };

/// An element-wise loop (detail::LoopDims: its dims, operand strides, fast index splitting) over
/// `numel` elements and N operands. Operand 0 is the output. Made by cuda::strided.
template <int N>
struct Strided : glia::detail::LoopDims<N> {
  int64_t numel = 0;
  void* data[N] = {};
};

enum class BinOp : int { Add, Sub, Mul, Div, Max, Min, Pow };
enum class UnOp : int { Neg, Abs, Exp, Log, Sqrt, Rsqrt, Relu, Sigmoid, Tanh, Square, Reciprocal };

/// out[...] = value (converted to dt: `fv` for floating types, `iv` for integer and bool).
void fill(const Strided<1>& it, Dt dt, double fv, int64_t iv, cudaStream_t s);
/// out[...] = in[...] converted from in_dt to out_dt.
void copy(const Strided<2>& it, Dt out_dt, Dt in_dt, cudaStream_t s);
/// out = a op b, all of dtype dt, with the CPU kernel's semantics for every dtype it takes; `number`
/// 1 / 2 (BF16 / F16 only): operand a / b is one float32 number, used in float. Returns false for
/// an unsupported (op, dtype).
bool binary(BinOp op, const Strided<3>& it, Dt dt, cudaStream_t s, int number = 0);
/// out = op(x), both of dtype dt. Returns false for an unsupported (op, dtype).
bool unary(UnOp op, const Strided<2>& it, Dt dt, cudaStream_t s);

/// p[0] = a, p[1] = b, queued on s (a replayed CUDA Graph's random-generator slot).
void set_u64_pair(uint64_t* p, uint64_t a, uint64_t b, cudaStream_t s);

}  // namespace glia::cuda::launch
