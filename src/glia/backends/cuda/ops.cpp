// CUDA kernels of the core ops: fill, copies and casts, element-wise math with broadcasting,
// and matmul (cuBLAS); sum is with the other reductions in reduce_ops.cpp. Each registers with
// GLIA_KERNEL(op, CUDA, ...) beside the CPU kernel.
#include <algorithm>
#include <limits>
#include <numeric>

#include "glia/autograd/autograd.h"
#include "glia/backends/cuda/runtime.h"
#include "glia/core/cuda.h"
#include "glia/core/scratch.h"
#include "glia/ops/op.h"

namespace glia::cuda {

Tensor input_as(const KernelContext& k, size_t i, DType d) { return on_device(k.input(i), k.output().device(), d); }

void copy_into(const Tensor& src, const Tensor& dst) {
  DeviceGuard g(dst.device().index);
  const Tensor* ops[2] = {&dst, &src};
  launch::copy(strided(dst.shape(), ops), dt(dst.dtype()), dt(src.dtype()), stream(dst.device().index));
  check(cudaGetLastError(), "copy kernel");
}

Tensor as_target(const Tensor& out, DType d) {
  return out.is_contiguous() && out.dtype() == d ? out : detail::scratch_empty(out.shape(), d, out.device());
}

void finish_target(const Tensor& written, const Tensor& out) {
  if (!written.is_same(out)) copy_into(written, out);
}

void fill(const Tensor& out, const Scalar& v) {
  DeviceGuard g(out.device().index);
  const Tensor* ops[1] = {&out};
  bool flt = is_floating(out.dtype());
  // bool as on the CPU (Scalar::to<bool>: 0.5 is true), not through an integer (0.5 -> 0 -> false).
  int64_t iv = flt ? 0 : out.dtype() == DType::b8 ? int64_t(v.to<bool>()) : v.to_int();
  launch::fill(strided(out.shape(), ops), dt(out.dtype()), flt ? v.to_double() : 0.0, iv, stream(out.device().index));
  check(cudaGetLastError(), "fill kernel");
}

namespace {

using launch::BinOp;
using launch::UnOp;

void binary(KernelContext& k, BinOp op) {
  const Tensor& out = k.output();
  const DType t = out.dtype();
  GLIA_CHECK(!(op == BinOp::Sub && t == DType::b8), DTypeError,
             "sub: subtraction of bool tensors is not supported; use logical_xor");
  // As the CPU kernel (map_binary): with a 16-bit result, a number (0-d tensor of another dtype)
  // beside a tensor is used in float32, not rounded to 16 bits first.
  auto number = [&](size_t i) { return k.input(i).dim() == 0 && k.input(i).dtype() != t; };
  int num = 0;
  if (is_16bit(t) && number(0) != number(1)) num = number(0) ? 1 : 2;
  Tensor a = input_as(k, 0, num == 1 ? DType::f32 : t), b = input_as(k, 1, num == 2 ? DType::f32 : t);
  DeviceGuard g(out.device().index);
  const Tensor* ops[3] = {&out, &a, &b};
  bool ok = launch::binary(op, strided(out.shape(), ops), dt(t), stream(out.device().index), num);
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(t));
  check(cudaGetLastError(), k.name());
}

void unary(KernelContext& k, UnOp op) {
  const Tensor& out = k.output();
  GLIA_CHECK(!(op == UnOp::Neg && out.dtype() == DType::b8), DTypeError,
             "neg: negation of a bool tensor; use logical_not");
  Tensor x = input_as(k, 0, out.dtype());
  DeviceGuard g(out.device().index);
  const Tensor* ops[2] = {&out, &x};
  bool ok = launch::unary(op, strided(out.shape(), ops), dt(out.dtype()), stream(out.device().index));
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(out.dtype()));
  check(cudaGetLastError(), k.name());
}

}  // namespace

GLIA_KERNEL(fill, CUDA, [](KernelContext& k) { fill(k.output(), k.attr<Scalar>("value")); });
GLIA_KERNEL(full_like, CUDA, [](KernelContext& k) { fill(k.output(), k.attr<Scalar>("value")); });
GLIA_KERNEL(copy, CUDA, [](KernelContext& k) { copy_into(input_as(k, 1, k.input(1).dtype()), k.output()); });
GLIA_KERNEL(to_device, CUDA, [](KernelContext& k) {
  no_grad guard;  // the kernel's own copy; autograd records the op
  k.output().copy_(k.input(0));
});
GLIA_KERNEL(cast, CUDA, [](KernelContext& k) { copy_into(k.input(0), k.output()); });
GLIA_KERNEL(clone, CUDA, [](KernelContext& k) { copy_into(k.input(0), k.output()); });

GLIA_KERNEL(add, CUDA, [](KernelContext& k) { binary(k, BinOp::Add); });
GLIA_KERNEL(sub, CUDA, [](KernelContext& k) { binary(k, BinOp::Sub); });
GLIA_KERNEL(mul, CUDA, [](KernelContext& k) { binary(k, BinOp::Mul); });
GLIA_KERNEL(div, CUDA, [](KernelContext& k) { binary(k, BinOp::Div); });
GLIA_KERNEL(maximum, CUDA, [](KernelContext& k) { binary(k, BinOp::Max); });
GLIA_KERNEL(minimum, CUDA, [](KernelContext& k) { binary(k, BinOp::Min); });
GLIA_KERNEL(pow, CUDA, [](KernelContext& k) { binary(k, BinOp::Pow); });

GLIA_KERNEL(neg, CUDA, [](KernelContext& k) { unary(k, UnOp::Neg); });
GLIA_KERNEL(abs, CUDA, [](KernelContext& k) { unary(k, UnOp::Abs); });
GLIA_KERNEL(exp, CUDA, [](KernelContext& k) { unary(k, UnOp::Exp); });
GLIA_KERNEL(log, CUDA, [](KernelContext& k) { unary(k, UnOp::Log); });
GLIA_KERNEL(sqrt, CUDA, [](KernelContext& k) { unary(k, UnOp::Sqrt); });
GLIA_KERNEL(rsqrt, CUDA, [](KernelContext& k) { unary(k, UnOp::Rsqrt); });
GLIA_KERNEL(relu, CUDA, [](KernelContext& k) { unary(k, UnOp::Relu); });
GLIA_KERNEL(sigmoid, CUDA, [](KernelContext& k) { unary(k, UnOp::Sigmoid); });
GLIA_KERNEL(tanh, CUDA, [](KernelContext& k) { unary(k, UnOp::Tanh); });
GLIA_KERNEL(square, CUDA, [](KernelContext& k) { unary(k, UnOp::Square); });
GLIA_KERNEL(reciprocal, CUDA, [](KernelContext& k) { unary(k, UnOp::Reciprocal); });

// An operand of a (batched) matmul as cuBLAS reads it: transposed or not, its leading dimension and
// batch stride (0: one matrix shared by every batch). Views whose strides cuBLAS can take (a
// transpose, a slice of rows or columns, broadcast batches that collapse to one stride) are read in
// place; anything else is copied to a contiguous tensor first.
namespace {

struct Operand {
  Tensor t;
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t ld = 0, stride = 0;
};

Operand operand(const Tensor& t, int64_t rows, int64_t cols, const Shape& batch) {
  Shape full = batch;
  full.push_back(rows);
  full.push_back(cols);
  Tensor e = t.dim() == 2 ? t : t.expand(full);
  const Shape &sh = e.shape(), &st = e.strides();
  const size_t nd = sh.size();
  // The batch dims must step by one stride (size-1 dims step by nothing).
  int64_t stride = 0, next = -1;
  bool ok = true;
  for (size_t i = nd - 2; ok && i-- > 0;) {
    if (sh[i] == 1) continue;
    if (next < 0)
      stride = st[i];
    else
      ok = st[i] == next;
    next = st[i] * sh[i];
  }
  const int64_t rs = st[nd - 2], cs = st[nd - 1];
  auto fits = [](int64_t ld) { return ld >= 1 && ld <= std::numeric_limits<int>::max(); };
  if (ok) {
    // Row-major semantics: (rs, 1) is cuBLAS's OP_N with ld = rs, (1, cs) its OP_T with ld = cs.
    if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
      int64_t ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
      if (fits(ld)) return {e, CUBLAS_OP_N, ld, stride};
    }
    if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
      int64_t ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
      if (fits(ld)) return {e, CUBLAS_OP_T, ld, stride};
    }
  }
  return {e.contiguous(), CUBLAS_OP_N, cols, t.dim() == 2 ? 0 : rows * cols};
}

}  // namespace

// Matmul with batch broadcasting. Row-major C = A B is column-major C^T = B^T A^T, so cuBLAS gets
// the operands swapped.
GLIA_KERNEL(matmul, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  const Shape& s = out.shape();
  int64_t M = s[s.size() - 2], N = s.back(), K = k.input(0).shape().back();
  Shape batch(s.begin(), s.end() - 2);
  int64_t nb = 1;
  for (int64_t d : batch) nb *= d;
  if (out.numel() == 0) return;
  constexpr int64_t kMax = std::numeric_limits<int>::max();  // cuBLAS takes int sizes
  GLIA_CHECK(M <= kMax && N <= kMax && K <= kMax && nb <= kMax, ShapeError, "matmul on ", out.device().str(),
             ": sizes up to ", kMax, " each; got M = ", M, ", N = ", N, ", K = ", K, ", batches = ", nb);
  no_grad guard;  // expanded / contiguous operands are temporaries
  if (K == 0) {
    fill(out, 0);
    return;
  }
  Operand a = operand(k.input(0), M, K, batch), b = operand(k.input(1), K, N, batch);
  cudaDataType_t type;
  cublasComputeType_t compute;
  double one_d = 1.0, zero_d = 0.0;
  float one_f = 1.0f, zero_f = 0.0f;
  const void *alpha = &one_f, *beta = &zero_f;
  switch (out.dtype()) {
    case DType::f32:
      type = CUDA_R_32F;
      compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case DType::f64:
      type = CUDA_R_64F;
      compute = CUBLAS_COMPUTE_64F;
      alpha = &one_d;
      beta = &zero_d;
      break;
    case DType::bf16:
      type = CUDA_R_16BF;
      compute = CUBLAS_COMPUTE_32F;
      break;
    case DType::f16:
      type = CUDA_R_16F;
      compute = CUBLAS_COMPUTE_32F;
      break;
    default:
      throw DTypeError(detail::str("matmul: no CUDA kernel for dtype ", name(out.dtype())));
  }
  int dev = out.device().index;
  cublasHandle_t h = cublas(dev);
  DeviceGuard g(dev);
  check(cublasGemmStridedBatchedEx(h, b.op, a.op, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), alpha,
                                   b.t.data_ptr(), type, static_cast<int>(b.ld), b.stride, a.t.data_ptr(), type,
                                   static_cast<int>(a.ld), a.stride, beta, out.data_ptr(), type, static_cast<int>(N),
                                   M * N, static_cast<int>(nb), compute, CUBLAS_GEMM_DEFAULT),
        "matmul (cublasGemmStridedBatchedEx)");
});

}  // namespace glia::cuda
