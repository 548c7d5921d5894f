// CPU kernels of the ops graph fusion makes. fused_elementwise runs its program block by block:
// each block of values goes through every instruction while it sits in L1 (registers are
// stack buffers of one block), so memory is read and written once; the instructions are the
// same SIMD loops the single ops use, so the results match theirs. matmul_fused is a oneDNN
// matmul primitive with the bias and an eltwise post-op, cached per geometry.
#include "glia/ops/fused.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "glia/backends/cpu/kernel_utils.h"
#include "glia/backends/cpu/onednn.h"

namespace glia::cpu {
namespace {

using I64s = std::vector<int64_t>;
using fused::Code;

// --- fused_elementwise

constexpr int64_t kBlock = 256;

simd::Unary unary_of(Code c) {
  switch (c) {
    case Code::Neg:
      return simd::Unary::Neg;
    case Code::Abs:
      return simd::Unary::Abs;
    case Code::Exp:
      return simd::Unary::Exp;
    case Code::Expm1:
      return simd::Unary::Expm1;
    case Code::Log:
      return simd::Unary::Log;
    case Code::Log1p:
      return simd::Unary::Log1p;
    case Code::Sqrt:
      return simd::Unary::Sqrt;
    case Code::Rsqrt:
      return simd::Unary::Rsqrt;
    case Code::Reciprocal:
      return simd::Unary::Reciprocal;
    case Code::Sin:
      return simd::Unary::Sin;
    case Code::Cos:
      return simd::Unary::Cos;
    case Code::Tanh:
      return simd::Unary::Tanh;
    case Code::Sigmoid:
      return simd::Unary::Sigmoid;
    case Code::Erf:
      return simd::Unary::Erf;
    case Code::Relu:
      return simd::Unary::Relu;
    case Code::LeakyRelu:
      return simd::Unary::LeakyRelu;
    case Code::Elu:
      return simd::Unary::Elu;
    case Code::Gelu:
      return simd::Unary::Gelu;
    case Code::GeluTanh:
      return simd::Unary::GeluTanh;
    case Code::Softplus:
      return simd::Unary::Softplus;
    case Code::Square:
      return simd::Unary::Square;
    default:
      throw InternalError("fused_elementwise: not a unary opcode");
  }
}

simd::Binary binary_of(Code c) {
  switch (c) {
    case Code::Add:
      return simd::Binary::Add;
    case Code::Sub:
      return simd::Binary::Sub;
    case Code::Mul:
      return simd::Binary::Mul;
    case Code::Div:
      return simd::Binary::Div;
    case Code::Maximum:
      return simd::Binary::Max;
    case Code::Minimum:
      return simd::Binary::Min;
    case Code::ReluBackward:
      return simd::Binary::ReluBackward;
    case Code::SigmoidBackward:
      return simd::Binary::SigmoidBackward;
    case Code::TanhBackward:
      return simd::Binary::TanhBackward;
    default:
      throw InternalError("fused_elementwise: not a binary opcode");
  }
}

/// An instruction with its SIMD op resolved once per call.
struct Step {
  bool binary;
  simd::Unary u;
  simd::Binary b;
  int64_t dst, a, bop;
  float p0, p1;
};

/// The value of a one-element tensor as float (as the single ops convert a number operand).
float scalar_value(const Tensor& t) {
  float v = 0;
  visit_dtype(t.dtype(), [&]<class T>() {
    T x = *static_cast<const T*>(t.data_ptr());
    if constexpr (std::is_same_v<T, bool>)
      v = x ? 1.f : 0.f;
    else
      v = static_cast<float>(static_cast<acc_t<T>>(x));
  });
  return v;
}

void fused_elementwise_kernel(KernelContext& k) {
  const Tensor& out = k.output();
  const int64_t total = out.numel();
  if (total == 0) return;
  const auto n = static_cast<int64_t>(k.num_inputs());
  const auto& kinds = k.attr<I64s>("kinds");
  int64_t regs = 0;
  std::vector<fused::Instr> prog;
  GLIA_CHECK(fused::decode(k.attr<I64s>("program"), n, regs, prog), InternalError,
             "fused_elementwise: malformed program");
  SmallVec<Step, 16> steps;
  for (const auto& i : prog)
    steps.push_back({fused::is_binary(i.code), fused::is_binary(i.code) ? simd::Unary::Neg : unary_of(i.code),
                     fused::is_binary(i.code) ? binary_of(i.code) : simd::Binary::Add, i.dst, i.a, i.b,
                     static_cast<float>(i.p0), static_cast<float>(i.p1)});

  SmallVec<Tensor, 8> keep;  // contiguous copies of strided inputs, alive for the call
  SmallVec<const float*, 8> base;
  SmallVec<float, 8> scalars;
  SmallVec<int64_t, 8> kind, bias_slot;
  int64_t nbias = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Tensor& t = k.input(static_cast<size_t>(i));
    kind.push_back(kinds[static_cast<size_t>(i)]);
    scalars.push_back(0.f);
    bias_slot.push_back(-1);
    if (kind.back() == static_cast<int64_t>(fused::InputKind::Scalar)) {
      scalars.back() = scalar_value(t);
      base.push_back(nullptr);
      continue;
    }
    if (!t.is_contiguous()) keep.push_back(t.contiguous());
    const Tensor& c = t.is_contiguous() ? t : keep.back();
    base.push_back(c.data<float>());
    if (kind.back() == static_cast<int64_t>(fused::InputKind::Bias)) bias_slot.back() = nbias++;
  }
  const int64_t C = out.dim() ? out.shape().back() : 1;
  float* y = out.data<float>();
  constexpr int64_t kScalar = static_cast<int64_t>(fused::InputKind::Scalar);
  constexpr int64_t kBias = static_cast<int64_t>(fused::InputKind::Bias);

  parallel_for(total, 16384, [&](int64_t lo, int64_t hi) {
    alignas(64) float reg[fused::kMaxRegisters][kBlock];
    alignas(64) float tile[fused::kMaxBiasInputs][kBlock];
    SmallVec<const float*, 24> slots(static_cast<size_t>(n + regs));
    for (int64_t r = 0; r < regs; ++r) slots[static_cast<size_t>(n + r)] = reg[r];
    for (int64_t s = lo; s < hi; s += kBlock) {
      const int64_t len = std::min(kBlock, hi - s);
      for (int64_t i = 0; i < n; ++i) {
        auto ii = static_cast<size_t>(i);
        if (kind[ii] == kScalar) {
          slots[ii] = &scalars[ii];
        } else if (kind[ii] == kBias) {
          int64_t j = s % C;
          if (j + len <= C) {  // the block lies in one row: read the bias where it is
            slots[ii] = base[ii] + j;
            continue;
          }
          float* t = tile[bias_slot[ii]];
          for (int64_t m = 0; m < len;) {
            int64_t run = std::min(C - j, len - m);
            std::memcpy(t + m, base[ii] + j, static_cast<size_t>(run) * sizeof(float));
            m += run;
            j = 0;
          }
          slots[ii] = t;
        } else {
          slots[ii] = base[ii] + s;
        }
      }
      for (const Step& st : steps) {
        float* dst = st.dst == fused::kOutput ? y + s : reg[st.dst - n];
        const float* a = slots[static_cast<size_t>(st.a)];
        if (!st.binary) {
          simd::unary_f32(st.u, a, dst, len, st.p0, st.p1);
          continue;
        }
        const float* b = slots[static_cast<size_t>(st.bop)];
        bool sa = st.a < n && kind[static_cast<size_t>(st.a)] == kScalar;
        bool sb = st.bop < n && kind[static_cast<size_t>(st.bop)] == kScalar;
        simd::binary_f32(st.b, sa ? simd::Mode::SV : sb ? simd::Mode::VS : simd::Mode::VV, a, b, dst, len);
      }
    }
  });
}

// --- matmul_fused

namespace dn = dnnl;

/// Strides of a [rows, cols] view oneDNN can read (one unit stride, the other covering it), with
/// size-1 dims given the strides of a contiguous matrix; false if there are none.
bool plain_strides(int64_t rows, int64_t cols, int64_t& rs, int64_t& cs) {
  if (rows == 1) rs = cs == 1 ? std::max<int64_t>(cols, 1) : 1;
  if (cols == 1) cs = rs == 1 && rows > 1 ? rows : 1;
  return (cs == 1 && rs >= cols) || (rs == 1 && cs >= rows);
}

struct MatmulPrim {
  dn::matmul prim;
  size_t scratchpad = 0;
  bool ok = true;
};

dn::algorithm activation_alg(const std::string& a, bool approximate) {
  if (a == "relu") return dn::algorithm::eltwise_relu;
  if (a == "tanh") return dn::algorithm::eltwise_tanh;
  if (a == "sigmoid") return dn::algorithm::eltwise_logistic;
  return approximate ? dn::algorithm::eltwise_gelu_tanh : dn::algorithm::eltwise_gelu_erf;
}

std::shared_ptr<MatmulPrim> matmul_prim(int64_t M, int64_t N, int64_t K, const int64_t* st, bool bias,
                                        const std::string& act, bool approximate, bool serial) {
  std::string key = std::to_string(M) + "," + std::to_string(N) + "," + std::to_string(K) + ":" +
                    std::to_string(st[0]) + "," + std::to_string(st[1]) + "," + std::to_string(st[2]) + "," +
                    std::to_string(st[3]) + ":" + (bias ? "b" : "") + act + (approximate ? "~" : "") +
                    (serial ? "s" : "");
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<MatmulPrim>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[key];
  if (!slot) {
    slot = std::make_shared<MatmulPrim>();
    try {
      const auto f32 = dn::memory::data_type::f32;
      dn::memory::desc a({M, K}, f32, {st[0], st[1]}), b({K, N}, f32, {st[2], st[3]});
      dn::memory::desc y({M, N}, f32, dn::memory::format_tag::ab), bd({1, N}, f32, dn::memory::format_tag::ab);
      dn::matmul::desc d = bias ? dn::matmul::desc(a, b, bd, y) : dn::matmul::desc(a, b, y);
      dn::primitive_attr attr;
      attr.set_scratchpad_mode(dn::scratchpad_mode::user);
      // ReLU runs after, in the epilogue: oneDNN's ReLU post-op turns NaN into 0, and the relu
      // op keeps NaN (a NaN loss must show, so that training stops).
      if (!act.empty() && act != "relu") {
        dn::post_ops po;
        po.append_eltwise(1.f, activation_alg(act, approximate), 0.f, 0.f);
        attr.set_post_ops(po);
      }
      dn::matmul::primitive_desc pd(d, attr, onednn::engine());
      slot->prim = dn::matmul(pd);
      slot->scratchpad = pd.scratchpad_desc().get_size();
    } catch (const dn::error&) {
      slot->ok = false;
    }
  }
  return slot->ok ? slot : nullptr;
}

/// y += bias per row, then y = act(y), with the single ops' SIMD loops.
void epilogue(float* y, int64_t M, int64_t N, const float* bias, const std::string& act, bool approximate) {
  if (bias)
    for (int64_t i = 0; i < M; ++i) simd::binary_f32(simd::Binary::Add, simd::Mode::VV, y + i * N, bias, y + i * N, N);
  if (act.empty()) return;
  simd::Unary u = act == "relu"      ? simd::Unary::Relu
                  : act == "tanh"    ? simd::Unary::Tanh
                  : act == "sigmoid" ? simd::Unary::Sigmoid
                  : approximate      ? simd::Unary::GeluTanh
                                     : simd::Unary::Gelu;
  simd::unary_f32(u, y, y, M * N);
}

void matmul_fused_kernel(KernelContext& k) {
  const Tensor& out = k.output();
  Tensor a = k.input(0), b = k.input(1);
  bool has_bias = k.num_inputs() > 2;
  Tensor bias = has_bias ? k.input(2).contiguous() : Tensor();
  const auto& act = k.attr<std::string>("activation");
  bool approximate = k.attrs().get_or<bool>("approximate", false);
  const int64_t M = out.shape()[0], N = out.shape()[1], K = a.shape()[1];
  if (M == 0 || N == 0) return;
  float* y = out.data<float>();
  const float* bp = has_bias ? bias.data<float>() : nullptr;
  if (K == 0) {
    out.zero_();
    epilogue(y, M, N, bp, act, approximate);
    return;
  }
  int64_t st[4] = {a.strides()[0], a.strides()[1], b.strides()[0], b.strides()[1]};
  if (!plain_strides(M, K, st[0], st[1])) {
    a = a.contiguous();
    st[0] = K;
    st[1] = 1;
  }
  if (!plain_strides(K, N, st[2], st[3])) {
    b = b.contiguous();
    st[2] = N;
    st[3] = 1;
  }
  bool serial = M * N * K < serial_gemm_limit();
  bool done = false;
  with_threads(serial, [&] {
    auto p = matmul_prim(M, N, K, st, has_bias, act, approximate, serial);
    if (!p) return;
    const auto f32 = dn::memory::data_type::f32;
    auto& e = onednn::engine();
    std::unordered_map<int, dn::memory> args{
        {DNNL_ARG_SRC, dn::memory(dn::memory::desc({M, K}, f32, {st[0], st[1]}), e, a.data_ptr())},
        {DNNL_ARG_WEIGHTS, dn::memory(dn::memory::desc({K, N}, f32, {st[2], st[3]}), e, b.data_ptr())},
        {DNNL_ARG_DST, dn::memory(dn::memory::desc({M, N}, f32, dn::memory::format_tag::ab), e, y)},
        {DNNL_ARG_SCRATCHPAD, dn::memory(dn::memory::desc({static_cast<int64_t>(std::max<size_t>(p->scratchpad, 1))},
                                                          dn::memory::data_type::u8, dn::memory::format_tag::a),
                                         e, scratch(0, p->scratchpad))}};
    if (has_bias)
      args.insert({DNNL_ARG_BIAS,
                   dn::memory(dn::memory::desc({1, N}, f32, dn::memory::format_tag::ab), e, const_cast<float*>(bp))});
    p->prim.execute(onednn::stream(), args);
    onednn::stream().wait();
    if (act == "relu") simd::unary_f32(simd::Unary::Relu, y, y, M * N);
    done = true;
  });
  if (done) return;
  // No primitive for this geometry: the matmul kernel, then the epilogue.
  const OpDef& mm = OpRegistry::instance().get("matmul");
  Tensor ins[2] = {a, b};
  Tensor outs[1] = {out};
  Attrs none;
  KernelContext kc(mm, ins, outs, none);
  (*mm.kernel_for(DeviceType::CPU))(kc);
  epilogue(y, M, N, bp, act, approximate);
}

}  // namespace

GLIA_KERNEL(fused_elementwise, CPU, fused_elementwise_kernel);
GLIA_KERNEL(matmul_fused, CPU, matmul_fused_kernel);

}  // namespace glia::cpu
