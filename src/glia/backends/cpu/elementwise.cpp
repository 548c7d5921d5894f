// CPU kernels of the element-wise ops.
#include <cmath>
#include <cstring>

#include "glia/backends/cpu/kernel_utils.h"

namespace glia::cpu {

void cast_copy(const Tensor& src, const Tensor& dst) {
  if (dst.numel() == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous() && src.shape() == dst.shape()) {
    const char* s = static_cast<const char*>(src.data_ptr());
    char* d = static_cast<char*>(dst.data_ptr());
    size_t item = dst.itemsize();
    parallel_for(dst.numel(), 1 << 18, [&](int64_t b, int64_t e) {
      std::memcpy(d + b * item, s + b * item, static_cast<size_t>(e - b) * item);
    });
    return;
  }
  const Tensor* ops[2] = {&dst, &src};
  Loop L = make_loop(ops, dst.shape());
  visit_dtype(dst.dtype(), [&]<class D>() {
    visit_dtype(src.dtype(), [&]<class S>() {
      parallel_loop(L, [&](char** p, const int64_t* st, int64_t n) {
        char* o = p[0];
        const char* a = p[1];
        for (int64_t i = 0; i < n; ++i, o += st[0], a += st[1]) {
          S v = *reinterpret_cast<const S*>(a);
          if constexpr (std::is_same_v<D, bool>)
            *reinterpret_cast<D*>(o) = static_cast<acc_t<S>>(v) != acc_t<S>(0);
          else if constexpr (std::is_same_v<S, bool>)
            *reinterpret_cast<D*>(o) = static_cast<D>(static_cast<float>(v ? 1 : 0));
          else
            *reinterpret_cast<D*>(o) = static_cast<D>(static_cast<acc_t<S>>(v));
        }
      });
    });
  });
}

Tensor as_dtype(const Tensor& t, DType d) {
  if (t.dtype() == d) return t;
  Tensor out = Tensor::empty(t.shape(), d, t.device());
  cast_copy(t, out);
  return out;
}

namespace {

using simd::Binary;
using simd::Unary;

template <class F>
void arith(KernelContext& k, F f, const Binary* simd_op = nullptr) {
  const Tensor& out = k.output();
  visit_dtype(out.dtype(), [&]<class T>() { map_binary<T, T>(k.input(0), k.input(1), out, f, simd_op); });
}

/// Comparison / logic: inputs promoted, bool out.
template <class F>
void compare(KernelContext& k, F f) {
  DType t = result_type(k.inputs());
  visit_dtype(t, [&]<class T>() { map_binary<T, bool>(k.input(0), k.input(1), k.output(), f); });
}

template <class F>
void float_unary(KernelContext& k, F f, const Unary* simd_op = nullptr, float p0 = 0.f, float p1 = 0.f) {
  const Tensor& out = k.output();
  visit_float(out.dtype(), k.name(), [&]<class T>() { map_unary<T>(k.input(0), out, f, simd_op, p0, p1, 8192); });
}

template <class F>
void any_unary(KernelContext& k, F f, const Unary* simd_op = nullptr) {
  const Tensor& out = k.output();
  visit_dtype(out.dtype(), [&]<class T>() { map_unary<T>(k.input(0), out, f, simd_op); });
}

constexpr Binary kAdd = Binary::Add, kSub = Binary::Sub, kMul = Binary::Mul, kDiv = Binary::Div, kMax = Binary::Max,
                 kMin = Binary::Min, kReluBw = Binary::ReluBackward, kSigBw = Binary::SigmoidBackward,
                 kTanhBw = Binary::TanhBackward;

template <class T>
T py_max(T a, T b) {
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(a) || std::isnan(b)) return a + b;
  return a > b ? a : b;
}
template <class T>
T py_min(T a, T b) {
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(a) || std::isnan(b)) return a + b;
  return a < b ? a : b;
}

template <Unary op>
const Unary* su() {
  static constexpr Unary v = op;
  return &v;
}

double erf_d(double x) { return std::erf(x); }

}  // namespace

GLIA_KERNEL(add, CPU, [](KernelContext& k) {
  arith(
      k, [](auto a, auto b) { return a + b; }, &kAdd);
});
GLIA_KERNEL(sub, CPU, [](KernelContext& k) {
  GLIA_CHECK(k.output().dtype() != DType::b8, DTypeError,
             "sub: subtraction of bool tensors is not supported; use "
             "logical_xor");
  arith(
      k, [](auto a, auto b) { return a - b; }, &kSub);
});
GLIA_KERNEL(mul, CPU, [](KernelContext& k) {
  arith(
      k, [](auto a, auto b) { return a * b; }, &kMul);
});
GLIA_KERNEL(div, CPU, [](KernelContext& k) {
  arith(
      k, [](auto a, auto b) { return a / b; }, &kDiv);
});
GLIA_KERNEL(pow, CPU, [](KernelContext& k) {
  arith(k, [](auto a, auto b) {
    using T = decltype(a);
    if constexpr (std::is_same_v<T, bool>)
      return static_cast<bool>(a || !b);
    else if constexpr (std::is_integral_v<T>) {
      T r = 1;
      for (T i = 0; i < b; ++i) r *= a;
      return r;
    } else
      return std::pow(a, b);
  });
});
GLIA_KERNEL(pow_scalar, CPU, [](KernelContext& k) {
  double e = k.attr<double>("exponent");
  const Tensor& out = k.output();
  if (e == 2.0 && out.dtype() == DType::f32) {
    map_unary<float>(
        k.input(0), out, [](float x) { return x * x; }, su<Unary::Square>());
    return;
  }
  visit_dtype(out.dtype(), [&]<class T>() {
    map_unary<T>(k.input(0), out, [e](auto x) {
      using A = decltype(x);
      if constexpr (std::is_same_v<A, bool>)
        return x;
      else
        return static_cast<A>(std::pow(static_cast<double>(x), e));
    });
  });
});
GLIA_KERNEL(maximum, CPU, [](KernelContext& k) {
  arith(
      k, [](auto a, auto b) { return py_max(a, b); }, &kMax);
});
GLIA_KERNEL(minimum, CPU, [](KernelContext& k) {
  arith(
      k, [](auto a, auto b) { return py_min(a, b); }, &kMin);
});
GLIA_KERNEL(neg, CPU, [](KernelContext& k) {
  GLIA_CHECK(k.output().dtype() != DType::b8, DTypeError, "neg: negation of a bool tensor; use logical_not");
  any_unary(
      k, [](auto x) { return -x; }, su<Unary::Neg>());
});
GLIA_KERNEL(abs, CPU, [](KernelContext& k) {
  any_unary(
      k,
      [](auto x) {
        using T = decltype(x);
        if constexpr (std::is_same_v<T, bool> || std::is_unsigned_v<T>)
          return x;
        else
          return x < T(0) ? -x : x;
      },
      su<Unary::Abs>());
});
GLIA_KERNEL(sign, CPU, [](KernelContext& k) {
  any_unary(k, [](auto x) {
    using T = decltype(x);
    if constexpr (std::is_same_v<T, bool>)
      return x;
    else if constexpr (std::is_floating_point_v<T>)
      return std::isnan(x) ? x : static_cast<T>((T(0) < x) - (x < T(0)));
    else
      return static_cast<T>((T(0) < x) - (x < T(0)));
  });
});
GLIA_KERNEL(square, CPU, [](KernelContext& k) {
  any_unary(
      k, [](auto x) { return x * x; }, su<Unary::Square>());
});
GLIA_KERNEL(clamp, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  bool has_lo = k.attrs().has("min"), has_hi = k.attrs().has("max");
  visit_dtype(out.dtype(), [&]<class T>() {
    using A = acc_t<T>;
    A lo = has_lo ? k.attr<Scalar>("min").to<A>() : A(0);
    A hi = has_hi ? k.attr<Scalar>("max").to<A>() : A(0);
    map_unary<T>(k.input(0), out, [=](A x) {
      if constexpr (std::is_floating_point_v<A>)
        if (std::isnan(x)) return x;
      if (has_lo && x < lo) x = lo;
      if (has_hi && x > hi) x = hi;
      return x;
    });
  });
});

GLIA_KERNEL(eq, CPU, [](KernelContext& k) { compare(k, [](auto a, auto b) { return a == b; }); });
GLIA_KERNEL(ne, CPU, [](KernelContext& k) { compare(k, [](auto a, auto b) { return a != b; }); });
GLIA_KERNEL(lt, CPU, [](KernelContext& k) { compare(k, [](auto a, auto b) { return a < b; }); });
GLIA_KERNEL(le, CPU, [](KernelContext& k) { compare(k, [](auto a, auto b) { return a <= b; }); });
GLIA_KERNEL(gt, CPU, [](KernelContext& k) { compare(k, [](auto a, auto b) { return a > b; }); });
GLIA_KERNEL(ge, CPU, [](KernelContext& k) { compare(k, [](auto a, auto b) { return a >= b; }); });
GLIA_KERNEL(logical_and, CPU, [](KernelContext& k) {
  map_binary<bool, bool>(k.input(0), k.input(1), k.output(), [](bool a, bool b) { return a && b; });
});
GLIA_KERNEL(logical_or, CPU, [](KernelContext& k) {
  map_binary<bool, bool>(k.input(0), k.input(1), k.output(), [](bool a, bool b) { return a || b; });
});
GLIA_KERNEL(logical_xor, CPU, [](KernelContext& k) {
  map_binary<bool, bool>(k.input(0), k.input(1), k.output(), [](bool a, bool b) { return a != b; });
});
GLIA_KERNEL(logical_not, CPU, [](KernelContext& k) {
  map_unary<bool>(as_dtype(k.input(0), DType::b8), k.output(), [](bool x) { return !x; });
});
GLIA_KERNEL(isnan, CPU, [](KernelContext& k) {
  const Tensor& x = k.input(0);
  Tensor out = k.output();
  if (!is_floating(x.dtype())) {
    out.zero_();
    return;
  }
  visit_float(x.dtype(), "isnan",
              [&]<class T>() { map_binary<T, bool>(x, x, out, [](auto a, auto) { return std::isnan(a); }); });
});
GLIA_KERNEL(isfinite, CPU, [](KernelContext& k) {
  const Tensor& x = k.input(0);
  Tensor out = k.output();
  if (!is_floating(x.dtype())) {
    out.fill_(true);
    return;
  }
  visit_float(x.dtype(), "isfinite",
              [&]<class T>() { map_binary<T, bool>(x, x, out, [](auto a, auto) { return std::isfinite(a); }); });
});

GLIA_KERNEL(where, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  Tensor a = as_dtype(k.input(1), out.dtype()), b = as_dtype(k.input(2), out.dtype());
  const Tensor& c = k.input(0);
  const Tensor* ops[4] = {&out, &c, &a, &b};
  Loop L = make_loop(ops, out.shape());
  visit_dtype(out.dtype(), [&]<class T>() {
    parallel_loop(L, [&](char** p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const bool*>(p[1] + i * s[1])
                                                     ? *reinterpret_cast<const T*>(p[2] + i * s[2])
                                                     : *reinterpret_cast<const T*>(p[3] + i * s[3]);
    });
  });
});

GLIA_KERNEL(exp, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::exp(x); }, su<Unary::Exp>());
});
GLIA_KERNEL(expm1, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::expm1(x); }, su<Unary::Expm1>());
});
GLIA_KERNEL(log, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::log(x); }, su<Unary::Log>());
});
GLIA_KERNEL(log1p, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::log1p(x); }, su<Unary::Log1p>());
});
GLIA_KERNEL(sqrt, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::sqrt(x); }, su<Unary::Sqrt>());
});
GLIA_KERNEL(rsqrt, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return decltype(x)(1) / std::sqrt(x); }, su<Unary::Rsqrt>());
});
GLIA_KERNEL(reciprocal, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return decltype(x)(1) / x; }, su<Unary::Reciprocal>());
});
GLIA_KERNEL(sin, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::sin(x); }, su<Unary::Sin>());
});
GLIA_KERNEL(cos, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::cos(x); }, su<Unary::Cos>());
});
GLIA_KERNEL(tanh, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::tanh(x); }, su<Unary::Tanh>());
});
GLIA_KERNEL(sigmoid, CPU, [](KernelContext& k) {
  float_unary(
      k,
      [](auto x) {
        using T = decltype(x);
        if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
        T e = std::exp(x);
        return e / (T(1) + e);
      },
      su<Unary::Sigmoid>());
});
GLIA_KERNEL(erf, CPU, [](KernelContext& k) {
  float_unary(
      k, [](auto x) { return std::erf(x); }, su<Unary::Erf>());
});

GLIA_KERNEL(relu, CPU, [](KernelContext& k) {
  any_unary(
      k,
      [](auto x) {
        using T = decltype(x);
        return x < T(0) ? T(0) : x;
      },
      su<Unary::Relu>());
});
GLIA_KERNEL(leaky_relu, CPU, [](KernelContext& k) {
  double s = k.attr<double>("negative_slope");
  float_unary(
      k,
      [s](auto x) {
        using T = decltype(x);
        return x < T(0) ? static_cast<T>(x * s) : x;
      },
      su<Unary::LeakyRelu>(), static_cast<float>(s));
});
GLIA_KERNEL(elu, CPU, [](KernelContext& k) {
  double a = k.attr<double>("alpha");
  float_unary(
      k,
      [a](auto x) {
        using T = decltype(x);
        return x > T(0) ? x : static_cast<T>(a * std::expm1(x));
      },
      su<Unary::Elu>(), static_cast<float>(a));
});
GLIA_KERNEL(gelu, CPU, [](KernelContext& k) {
  if (k.attr<bool>("approximate")) {
    float_unary(
        k,
        [](auto x) {
          using T = decltype(x);
          const T c = static_cast<T>(0.7978845608028654), a = static_cast<T>(0.044715);
          return T(0.5) * x * (T(1) + std::tanh(c * (x + a * x * x * x)));
        },
        su<Unary::GeluTanh>());
  } else {
    float_unary(
        k,
        [](auto x) {
          using T = decltype(x);
          return T(0.5) * x * (T(1) + static_cast<T>(erf_d(static_cast<double>(x) * M_SQRT1_2)));
        },
        su<Unary::Gelu>());
  }
});
GLIA_KERNEL(softplus, CPU, [](KernelContext& k) {
  double beta = k.attr<double>("beta"), th = k.attr<double>("threshold");
  float_unary(
      k,
      [beta, th](auto x) {
        using T = decltype(x);
        double bx = static_cast<double>(x) * beta;
        return bx > th ? x : static_cast<T>(std::log1p(std::exp(bx)) / beta);
      },
      su<Unary::Softplus>(), static_cast<float>(beta), static_cast<float>(th));
});

GLIA_KERNEL(relu_backward, CPU, [](KernelContext& k) {
  arith(
      k, [](auto g, auto y) { return y > decltype(y)(0) ? g : decltype(g)(0); }, &kReluBw);
});
GLIA_KERNEL(sigmoid_backward, CPU, [](KernelContext& k) {
  arith(
      k, [](auto g, auto y) { return g * y * (decltype(y)(1) - y); }, &kSigBw);
});
GLIA_KERNEL(tanh_backward, CPU, [](KernelContext& k) {
  arith(
      k, [](auto g, auto y) { return g * (decltype(y)(1) - y * y); }, &kTanhBw);
});

GLIA_KERNEL(cast, CPU, [](KernelContext& k) { cast_copy(k.input(0), k.output()); });
GLIA_KERNEL(copy, CPU, [](KernelContext& k) { cast_copy(k.input(1), k.output()); });
GLIA_KERNEL(full_like, CPU, [](KernelContext& k) { k.output().fill_(k.attr<Scalar>("value")); });
GLIA_KERNEL(fill, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  const Scalar& v = k.attr<Scalar>("value");
  if (out.numel() == 0) return;
  if (out.is_contiguous() && v.to_double() == 0.0 && !(v.is_float() && std::signbit(v.to_double()))) {
    char* d = static_cast<char*>(out.data_ptr());
    size_t item = out.itemsize();
    parallel_for(out.numel(), 1 << 18,
                 [&](int64_t b, int64_t e) { std::memset(d + b * item, 0, static_cast<size_t>(e - b) * item); });
    return;
  }
  const Tensor* ops[1] = {&out};
  Loop L = make_loop(ops, out.shape());
  visit_dtype(out.dtype(), [&]<class T>() {
    T val = v.to<T>();
    parallel_loop(L, [&](char** p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = val;
    });
  });
});

}  // namespace glia::cpu
