// CUDA kernels of comparisons and logic, where, clamp / sign / pow_scalar, the float math of
// activations and their backward ops, the broadcast helpers of autograd (sum_to_like, expand_like,
// count_like) and fused_elementwise. Each matches its CPU kernel (src/glia/backends/cpu/).
#include <string>
#include <vector>

#include "glia/autograd/autograd.h"
#include "glia/backends/cuda/launch_elementwise.h"
#include "glia/backends/cuda/runtime.h"
#include "glia/ops/fused.h"
#include "glia/ops/op.h"
#include "glia/ops/reduce.h"

namespace glia::cuda {
namespace {

using I64s = std::vector<int64_t>;
using launch::ArithOp;
using launch::CmpOp;
using launch::MathOp;

// The fused interpreter runs fused::Code values as MathOp: the numbering must agree.
#define GLIA_SAME_CODE(c)                                                                      \
  static_assert(static_cast<int>(MathOp::c) == static_cast<int>(fused::Code::c), "MathOp::" #c \
                                                                                 " != "        \
                                                                                 "fused::Code::" #c);
GLIA_SAME_CODE(Neg)
GLIA_SAME_CODE(Abs)
GLIA_SAME_CODE(Exp)
GLIA_SAME_CODE(Expm1)
GLIA_SAME_CODE(Log)
GLIA_SAME_CODE(Log1p)
GLIA_SAME_CODE(Sqrt)
GLIA_SAME_CODE(Rsqrt)
GLIA_SAME_CODE(Reciprocal)
GLIA_SAME_CODE(Sin)
GLIA_SAME_CODE(Cos)
GLIA_SAME_CODE(Tanh)
GLIA_SAME_CODE(Sigmoid)
GLIA_SAME_CODE(Erf)
GLIA_SAME_CODE(Relu)
GLIA_SAME_CODE(LeakyRelu)
GLIA_SAME_CODE(Elu)
GLIA_SAME_CODE(Gelu)
GLIA_SAME_CODE(GeluTanh)
GLIA_SAME_CODE(Softplus)
GLIA_SAME_CODE(Square)
GLIA_SAME_CODE(Add)
GLIA_SAME_CODE(Sub)
GLIA_SAME_CODE(Mul)
GLIA_SAME_CODE(Div)
GLIA_SAME_CODE(Maximum)
GLIA_SAME_CODE(Minimum)
GLIA_SAME_CODE(ReluBackward)
GLIA_SAME_CODE(SigmoidBackward)
GLIA_SAME_CODE(TanhBackward)
#undef GLIA_SAME_CODE
static_assert(launch::kFusedMaxRegisters >= fused::kMaxRegisters);

void compare(KernelContext& k, CmpOp op) {
  const Tensor& out = k.output();
  // Logic reads its operands as bool; comparisons compare in the promoted dtype, as the CPU.
  DType t = op == CmpOp::And || op == CmpOp::Or || op == CmpOp::Xor ? DType::b8 : result_type(k.inputs());
  if (out.numel() == 0) return;
  Tensor a = input_as(k, 0, t), b = input_as(k, 1, t);
  int dev = out.device().index;
  DeviceGuard g(dev);
  const Tensor* ops[3] = {&out, &a, &b};
  bool ok = launch::compare(op, strided(out.shape(), ops), dt(t), stream(dev));
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(t));
  check(cudaGetLastError(), k.name());
}

void math_unary(KernelContext& k, MathOp op, double p0 = 0, double p1 = 0) {
  const Tensor& out = k.output();
  Tensor x = input_as(k, 0, out.dtype());
  int dev = out.device().index;
  DeviceGuard g(dev);
  const Tensor* ops[2] = {&out, &x};
  bool ok = launch::math_unary(op, strided(out.shape(), ops), dt(out.dtype()), p0, p1, stream(dev));
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(out.dtype()),
             " (float32, float64, bfloat16, float16 are supported)");
  check(cudaGetLastError(), k.name());
}

void math_binary(KernelContext& k, MathOp op) {
  const Tensor& out = k.output();
  Tensor a = input_as(k, 0, out.dtype()), b = input_as(k, 1, out.dtype());
  int dev = out.device().index;
  DeviceGuard g(dev);
  const Tensor* ops[3] = {&out, &a, &b};
  bool ok = launch::math_binary(op, strided(out.shape(), ops), dt(out.dtype()), stream(dev));
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(out.dtype()),
             " (float32, float64, bfloat16, float16 are supported)");
  check(cudaGetLastError(), k.name());
}

void arith_unary(KernelContext& k, ArithOp op, const launch::ArithParams& p) {
  const Tensor& out = k.output();
  Tensor x = input_as(k, 0, out.dtype());
  int dev = out.device().index;
  DeviceGuard g(dev);
  const Tensor* ops[2] = {&out, &x};
  bool ok = launch::arith_unary(op, strided(out.shape(), ops), dt(out.dtype()), p, stream(dev));
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(out.dtype()),
             " (float32, float64, bfloat16, float16, int32, int64, uint8, bool are supported)");
  check(cudaGetLastError(), k.name());
}

void float_class(KernelContext& k, bool finite) {
  const Tensor& out = k.output();
  const Tensor& in = k.input(0);
  if (!is_floating(in.dtype())) {  // integers are never NaN and always finite
    fill(out, finite ? 1 : 0);
    return;
  }
  Tensor x = input_as(k, 0, in.dtype());
  int dev = out.device().index;
  DeviceGuard g(dev);
  const Tensor* ops[2] = {&out, &x};
  bool ok = launch::float_class(finite, strided(out.shape(), ops), dt(x.dtype()), stream(dev));
  GLIA_CHECK(ok, DTypeError, k.name(), ": no CUDA kernel for dtype ", name(x.dtype()));
  check(cudaGetLastError(), k.name());
}

void where_kernel(KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  Tensor c = input_as(k, 0, DType::b8), a = input_as(k, 1, out.dtype()), b = input_as(k, 2, out.dtype());
  const Tensor* ops[4] = {&out, &a, &b, &c};
  launch::Strided<4> it = strided(out.shape(), ops);
  int dev = out.device().index;
  DeviceGuard g(dev);
  bool ok = launch::where(it, static_cast<int>(out.itemsize()), stream(dev));
  GLIA_CHECK(ok, DTypeError, "where: no CUDA kernel for dtype ", name(out.dtype()));
  check(cudaGetLastError(), "where");
}

void fused_elementwise_kernel(KernelContext& k) {
  const char* op = "fused_elementwise";
  const Tensor& out = k.output();
  const auto n = static_cast<int64_t>(k.num_inputs());
  const auto& kinds = k.attr<I64s>("kinds");
  int64_t regs = 0;
  std::vector<fused::Instr> prog;
  GLIA_CHECK(fused::decode(k.attr<I64s>("program"), n, regs, prog), InternalError, op, ": malformed program");
  GLIA_CHECK(static_cast<int64_t>(prog.size()) <= launch::kFusedMaxInstr, ValueError, op,
             ": the CUDA kernel runs programs of at most ", launch::kFusedMaxInstr, " instructions, got ", prog.size());
  GLIA_CHECK(n <= launch::kFusedMaxInputs, ValueError, op, ": the CUDA kernel takes at most ", launch::kFusedMaxInputs,
             " inputs, got ", n);
  GLIA_CHECK(regs <= launch::kFusedMaxRegisters, ValueError, op, ": the CUDA kernel has at most ",
             launch::kFusedMaxRegisters, " registers, got ", regs);
  GLIA_CHECK(out.dtype() == DType::f32, DTypeError, op, ": no CUDA kernel for dtype ", name(out.dtype()),
             " (float32 is supported)");
  if (out.numel() == 0) return;
  no_grad guard;  // contiguous copies and casts below are temporaries

  launch::FusedArgs a;
  a.n_instr = static_cast<int>(prog.size());
  a.n_inputs = static_cast<int>(n);
  a.n_regs = static_cast<int>(regs);
  a.numel = out.numel();
  a.cols = out.dim() ? out.shape().back() : 1;
  a.out = static_cast<float*>(out.data_ptr());
  std::vector<Tensor> keep;  // inputs made contiguous / float32, alive until the launch is queued
  keep.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const Tensor& t = k.input(static_cast<size_t>(i));
    const int64_t kind = kinds[static_cast<size_t>(i)];
    a.kind[i] = static_cast<int8_t>(kind);
    a.ptr[i] = nullptr;
    a.scalar_ptr[i] = nullptr;
    a.scalar[i] = 0.f;
    if (kind == static_cast<int64_t>(fused::InputKind::Scalar)) {
      if (t.device().is_cpu()) {  // a number in code: its value goes in the launch
        a.scalar[i] = static_cast<float>(t.item().to_double());
      } else {  // a value on the GPU is read there, never brought to the host
        keep.push_back(on_device(t, out.device(), DType::f32));
        a.scalar_ptr[i] = static_cast<const float*>(keep.back().data_ptr());
      }
      continue;
    }
    GLIA_CHECK(
        kind == static_cast<int64_t>(fused::InputKind::Full) || kind == static_cast<int64_t>(fused::InputKind::Bias),
        ValueError, op, ": input ", i, " has unknown kind ", kind);
    Tensor c = on_device(t, out.device(), DType::f32);
    if (!c.is_contiguous()) c = c.contiguous();
    keep.push_back(c);
    a.ptr[i] = static_cast<const float*>(c.data_ptr());
  }
  for (size_t j = 0; j < prog.size(); ++j) {
    const fused::Instr& in = prog[j];
    launch::FusedInstr& f = a.instr[j];
    f.code = static_cast<int16_t>(in.code);
    f.dst = static_cast<int8_t>(in.dst == fused::kOutput ? -1 : in.dst);
    f.a = static_cast<int8_t>(in.a);
    f.b = static_cast<int8_t>(in.b);
    f.p0 = static_cast<float>(in.p0);
    f.p1 = static_cast<float>(in.p1);
  }
  int dev = out.device().index;
  DeviceGuard g(dev);
  launch::fused_elementwise(a, stream(dev));
  check(cudaGetLastError(), op);
}

}  // namespace

GLIA_KERNEL(eq, CUDA, [](KernelContext& k) { compare(k, CmpOp::Eq); });
GLIA_KERNEL(ne, CUDA, [](KernelContext& k) { compare(k, CmpOp::Ne); });
GLIA_KERNEL(lt, CUDA, [](KernelContext& k) { compare(k, CmpOp::Lt); });
GLIA_KERNEL(le, CUDA, [](KernelContext& k) { compare(k, CmpOp::Le); });
GLIA_KERNEL(gt, CUDA, [](KernelContext& k) { compare(k, CmpOp::Gt); });
GLIA_KERNEL(ge, CUDA, [](KernelContext& k) { compare(k, CmpOp::Ge); });
GLIA_KERNEL(logical_and, CUDA, [](KernelContext& k) { compare(k, CmpOp::And); });
GLIA_KERNEL(logical_or, CUDA, [](KernelContext& k) { compare(k, CmpOp::Or); });
GLIA_KERNEL(logical_xor, CUDA, [](KernelContext& k) { compare(k, CmpOp::Xor); });
// not x is (x xor true): the bool copy of x against a broadcast true.
GLIA_KERNEL(logical_not, CUDA, [](KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  Tensor x = input_as(k, 0, DType::b8);
  Tensor t = Tensor::empty(Shape{}, DType::b8, out.device());
  fill(t, 1);
  int dev = out.device().index;
  DeviceGuard g(dev);
  const Tensor* ops[3] = {&out, &x, &t};
  launch::compare(CmpOp::Xor, strided(out.shape(), ops), launch::B8, stream(dev));
  check(cudaGetLastError(), "logical_not");
});
GLIA_KERNEL(isnan, CUDA, [](KernelContext& k) { float_class(k, false); });
GLIA_KERNEL(isfinite, CUDA, [](KernelContext& k) { float_class(k, true); });
GLIA_KERNEL(where, CUDA, where_kernel);

GLIA_KERNEL(sign, CUDA, [](KernelContext& k) { arith_unary(k, ArithOp::Sign, {}); });
GLIA_KERNEL(clamp, CUDA, [](KernelContext& k) {
  launch::ArithParams p;
  p.has_lo = k.attrs().has("min");
  p.has_hi = k.attrs().has("max");
  // bool: the CPU converts the bounds to bool first (any nonzero bound is true).
  const bool b8 = k.output().dtype() == DType::b8;
  if (p.has_lo) {
    p.lo = k.attr<Scalar>("min").to_double();
    p.ilo = b8 ? k.attr<Scalar>("min").to<bool>() : k.attr<Scalar>("min").to_int();
  }
  if (p.has_hi) {
    p.hi = k.attr<Scalar>("max").to_double();
    p.ihi = b8 ? k.attr<Scalar>("max").to<bool>() : k.attr<Scalar>("max").to_int();
  }
  arith_unary(k, ArithOp::Clamp, p);
});
GLIA_KERNEL(pow_scalar, CUDA, [](KernelContext& k) {
  launch::ArithParams p;
  p.exponent = k.attr<double>("exponent");
  arith_unary(k, ArithOp::PowScalar, p);
});

GLIA_KERNEL(expm1, CUDA, [](KernelContext& k) { math_unary(k, MathOp::Expm1); });
GLIA_KERNEL(log1p, CUDA, [](KernelContext& k) { math_unary(k, MathOp::Log1p); });
GLIA_KERNEL(sin, CUDA, [](KernelContext& k) { math_unary(k, MathOp::Sin); });
GLIA_KERNEL(cos, CUDA, [](KernelContext& k) { math_unary(k, MathOp::Cos); });
GLIA_KERNEL(erf, CUDA, [](KernelContext& k) { math_unary(k, MathOp::Erf); });
GLIA_KERNEL(gelu, CUDA,
            [](KernelContext& k) { math_unary(k, k.attr<bool>("approximate") ? MathOp::GeluTanh : MathOp::Gelu); });
GLIA_KERNEL(elu, CUDA, [](KernelContext& k) { math_unary(k, MathOp::Elu, k.attr<double>("alpha")); });
GLIA_KERNEL(leaky_relu, CUDA,
            [](KernelContext& k) { math_unary(k, MathOp::LeakyRelu, k.attr<double>("negative_slope")); });
GLIA_KERNEL(softplus, CUDA, [](KernelContext& k) {
  math_unary(k, MathOp::Softplus, k.attr<double>("beta"), k.attr<double>("threshold"));
});
GLIA_KERNEL(relu_backward, CUDA, [](KernelContext& k) { math_binary(k, MathOp::ReluBackward); });
GLIA_KERNEL(sigmoid_backward, CUDA, [](KernelContext& k) { math_binary(k, MathOp::SigmoidBackward); });
GLIA_KERNEL(tanh_backward, CUDA, [](KernelContext& k) { math_binary(k, MathOp::TanhBackward); });

// Autograd's broadcast helpers: the sum runs through the sum kernel, then converts into the output.
GLIA_KERNEL(sum_to_like, CUDA, [](KernelContext& k) {
  no_grad guard;
  Tensor x = input_as(k, 0, k.input(0).dtype());
  copy_into(sum_to(x, k.output().shape()), k.output());
});
GLIA_KERNEL(expand_like, CUDA, [](KernelContext& k) { copy_into(input_as(k, 0, k.input(0).dtype()), k.output()); });
GLIA_KERNEL(count_like, CUDA, [](KernelContext& k) {
  int64_t n = 1;
  for (int64_t d : k.attr<I64s>("dims")) n *= k.input(0).shape()[static_cast<size_t>(d)];
  fill(k.output(), n);
});
GLIA_KERNEL(fused_elementwise, CUDA, fused_elementwise_kernel);

}  // namespace glia::cuda
