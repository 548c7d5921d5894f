// Fused optimizer updates on CPU: one pass reads the parameter, its gradient and its
// slots and writes the parameter and slots back (PyTorch 1.13's Adam makes several).
// The float32 / float64 loops are Highway vectors compiled per x86 target and picked at
// run time; the tail goes through the same code with one-lane vectors, and only IEEE
// add / sub / mul / div / sqrt are used (no FMA), so every element gets the same rounding
// whatever the target or the split across threads.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "glia/backends/cpu/optim.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <vector>

#include "glia/backends/cpu/kernel_utils.h"
#include "glia/backends/update_operands.h"

#ifndef GLIA_CPU_OPTIM_ARGS
#define GLIA_CPU_OPTIM_ARGS
namespace glia::cpu::optim {

/// One update's operands (contiguous, of one dtype) and hyper-parameters.
struct Args {
  void* w = nullptr;
  const void* g = nullptr;
  void* s[3] = {nullptr, nullptr, nullptr};                 // the rule's slots, in the op's order; null when absent
  double lr = 0, grad_scale = 1, clipvalue = 0, decay = 0;  // decay = lr * weight_decay
  double momentum = 0;                                      // SGD, RMSprop
  bool nesterov = false;                                    // SGD
  double alpha = 0, beta_1 = 0, beta_2 = 0;                 // Adam (alpha: the bias-corrected rate)
  double rho = 0;                                           // RMSprop
  double epsilon = 0;                                       // Adam, RMSprop, Adagrad
};

}  // namespace glia::cpu::optim
#endif

HWY_BEFORE_NAMESPACE();
namespace glia::cpu::optim::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// The hyper-parameters in the element type.
template <class T>
struct P {
  T lr, scale, clip, decay, momentum, alpha, b1c, b2c, rho, rho1, eps;
  bool has_scale, has_clip, has_decay, nesterov;
  explicit P(const Args& a)
      : lr(T(a.lr)),
        scale(T(a.grad_scale)),
        clip(T(a.clipvalue)),
        decay(T(a.decay)),
        momentum(T(a.momentum)),
        alpha(T(a.alpha)),
        b1c(T(1.0 - a.beta_1)),
        b2c(T(1.0 - a.beta_2)),
        rho(T(a.rho)),
        rho1(T(1.0 - a.rho)),
        eps(T(a.epsilon)),
        has_scale(a.grad_scale != 1.0),
        has_clip(a.clipvalue > 0),
        has_decay(a.decay != 0.0),
        nesterov(a.nesterov) {}
};

/// The gradient, scaled and clipped (NaN stays NaN).
template <class D, class T = hn::TFromD<D>>
HWY_INLINE hn::Vec<D> Grad(D d, const T* g, const P<T>& p) {
  auto x = hn::LoadU(d, g);
  if (p.has_scale) x = hn::Mul(x, hn::Set(d, p.scale));
  if (p.has_clip) {
    auto c = hn::Set(d, p.clip), nc = hn::Neg(c);
    x = hn::IfThenElse(hn::Gt(x, c), c, hn::IfThenElse(hn::Lt(x, nc), nc, x));
  }
  return x;
}

/// The parameter after the decoupled weight decay.
template <class D, class T = hn::TFromD<D>>
HWY_INLINE hn::Vec<D> Param(D d, const T* w, const P<T>& p) {
  auto x = hn::LoadU(d, w);
  if (p.has_decay) x = hn::Sub(x, hn::Mul(x, hn::Set(d, p.decay)));
  return x;
}

// --- the rules at one vector of elements (Keras 3's formulas, operation for operation)

template <class D, class T = hn::TFromD<D>>
HWY_INLINE void SgdAt(D d, T* w, const T* g, T* m, const P<T>& p) {
  auto gv = Grad(d, g, p);
  auto wv = Param(d, w, p);
  auto lrg = hn::Mul(gv, hn::Set(d, p.lr));
  if (m) {
    auto mom = hn::Set(d, p.momentum);
    auto mv = hn::Sub(hn::Mul(hn::LoadU(d, m), mom), lrg);
    hn::StoreU(mv, d, m);
    wv = p.nesterov ? hn::Add(wv, hn::Sub(hn::Mul(mv, mom), lrg)) : hn::Add(wv, mv);
  } else {
    wv = hn::Sub(wv, lrg);
  }
  hn::StoreU(wv, d, w);
}

template <class D, class T = hn::TFromD<D>>
HWY_INLINE void AdamAt(D d, T* w, const T* g, T* m, T* v, T* vhat, const P<T>& p) {
  auto gv = Grad(d, g, p);
  auto wv = Param(d, w, p);
  auto mv = hn::LoadU(d, m);
  auto vv = hn::LoadU(d, v);
  mv = hn::Add(mv, hn::Mul(hn::Sub(gv, mv), hn::Set(d, p.b1c)));
  vv = hn::Add(vv, hn::Mul(hn::Sub(hn::Mul(gv, gv), vv), hn::Set(d, p.b2c)));
  hn::StoreU(mv, d, m);
  hn::StoreU(vv, d, v);
  if (vhat) {
    vv = hn::Max(hn::LoadU(d, vhat), vv);
    hn::StoreU(vv, d, vhat);
  }
  auto step = hn::Div(hn::Mul(mv, hn::Set(d, p.alpha)), hn::Add(hn::Sqrt(vv), hn::Set(d, p.eps)));
  hn::StoreU(hn::Sub(wv, step), d, w);
}

template <class D, class T = hn::TFromD<D>>
HWY_INLINE void RmspropAt(D d, T* w, const T* g, T* vel, T* mom, T* avg, const P<T>& p) {
  auto gv = Grad(d, g, p);
  auto wv = Param(d, w, p);
  auto rho = hn::Set(d, p.rho), rho1 = hn::Set(d, p.rho1), eps = hn::Set(d, p.eps);
  auto vv = hn::Add(hn::Mul(rho, hn::LoadU(d, vel)), hn::Mul(rho1, hn::Mul(gv, gv)));
  hn::StoreU(vv, d, vel);
  hn::Vec<D> denom;
  if (avg) {
    auto av = hn::Add(hn::Mul(rho, hn::LoadU(d, avg)), hn::Mul(rho1, gv));
    hn::StoreU(av, d, avg);
    denom = hn::Add(hn::Sub(vv, hn::Mul(av, av)), eps);
  } else {
    denom = hn::Add(vv, eps);
  }
  auto inc = hn::Div(hn::Mul(hn::Set(d, p.lr), gv), hn::Sqrt(denom));
  if (mom) {
    auto mv = hn::Add(hn::Mul(hn::Set(d, p.momentum), hn::LoadU(d, mom)), inc);
    hn::StoreU(mv, d, mom);
    wv = hn::Sub(wv, mv);
  } else {
    wv = hn::Sub(wv, inc);
  }
  hn::StoreU(wv, d, w);
}

template <class D, class T = hn::TFromD<D>>
HWY_INLINE void AdagradAt(D d, T* w, const T* g, T* acc, const P<T>& p) {
  auto gv = Grad(d, g, p);
  auto wv = Param(d, w, p);
  auto av = hn::Add(hn::LoadU(d, acc), hn::Mul(gv, gv));
  hn::StoreU(av, d, acc);
  auto step = hn::Div(hn::Mul(hn::Set(d, p.lr), gv), hn::Sqrt(hn::Add(av, hn::Set(d, p.eps))));
  hn::StoreU(hn::Sub(wv, step), d, w);
}

// --- loops over [b, e): full vectors, then one-lane vectors for the tail

template <class T>
T* at(void* p, int64_t i) {
  return p ? static_cast<T*>(p) + i : nullptr;
}

template <class T>
void Sgd(const Args& a, int64_t b, int64_t e) {
  const P<T> p(a);
  const hn::ScalableTag<T> d;
  const hn::CappedTag<T, 1> d1;
  T* w = static_cast<T*>(a.w);
  const T* g = static_cast<const T*>(a.g);
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = b;
  for (; i + N <= e; i += N) SgdAt(d, w + i, g + i, at<T>(a.s[0], i), p);
  for (; i < e; ++i) SgdAt(d1, w + i, g + i, at<T>(a.s[0], i), p);
}

template <class T>
void Adam(const Args& a, int64_t b, int64_t e) {
  const P<T> p(a);
  const hn::ScalableTag<T> d;
  const hn::CappedTag<T, 1> d1;
  T* w = static_cast<T*>(a.w);
  const T* g = static_cast<const T*>(a.g);
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = b;
  for (; i + N <= e; i += N) AdamAt(d, w + i, g + i, at<T>(a.s[0], i), at<T>(a.s[1], i), at<T>(a.s[2], i), p);
  for (; i < e; ++i) AdamAt(d1, w + i, g + i, at<T>(a.s[0], i), at<T>(a.s[1], i), at<T>(a.s[2], i), p);
}

template <class T>
void Rmsprop(const Args& a, int64_t b, int64_t e) {
  const P<T> p(a);
  const hn::ScalableTag<T> d;
  const hn::CappedTag<T, 1> d1;
  T* w = static_cast<T*>(a.w);
  const T* g = static_cast<const T*>(a.g);
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = b;
  for (; i + N <= e; i += N) RmspropAt(d, w + i, g + i, at<T>(a.s[0], i), at<T>(a.s[1], i), at<T>(a.s[2], i), p);
  for (; i < e; ++i) RmspropAt(d1, w + i, g + i, at<T>(a.s[0], i), at<T>(a.s[1], i), at<T>(a.s[2], i), p);
}

template <class T>
void Adagrad(const Args& a, int64_t b, int64_t e) {
  const P<T> p(a);
  const hn::ScalableTag<T> d;
  const hn::CappedTag<T, 1> d1;
  T* w = static_cast<T*>(a.w);
  const T* g = static_cast<const T*>(a.g);
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = b;
  for (; i + N <= e; i += N) AdagradAt(d, w + i, g + i, at<T>(a.s[0], i), p);
  for (; i < e; ++i) AdagradAt(d1, w + i, g + i, at<T>(a.s[0], i), p);
}

void SgdF32(const Args& a, int64_t b, int64_t e) { Sgd<float>(a, b, e); }
void SgdF64(const Args& a, int64_t b, int64_t e) { Sgd<double>(a, b, e); }
void AdamF32(const Args& a, int64_t b, int64_t e) { Adam<float>(a, b, e); }
void AdamF64(const Args& a, int64_t b, int64_t e) { Adam<double>(a, b, e); }
void RmspropF32(const Args& a, int64_t b, int64_t e) { Rmsprop<float>(a, b, e); }
void RmspropF64(const Args& a, int64_t b, int64_t e) { Rmsprop<double>(a, b, e); }
void AdagradF32(const Args& a, int64_t b, int64_t e) { Adagrad<float>(a, b, e); }
void AdagradF64(const Args& a, int64_t b, int64_t e) { Adagrad<double>(a, b, e); }

}  // namespace glia::cpu::optim::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace glia::cpu::optim {

HWY_EXPORT(SgdF32);
HWY_EXPORT(SgdF64);
HWY_EXPORT(AdamF32);
HWY_EXPORT(AdamF64);
HWY_EXPORT(RmspropF32);
HWY_EXPORT(RmspropF64);
HWY_EXPORT(AdagradF32);
HWY_EXPORT(AdagradF64);

namespace {

using Fn = void (*)(const Args&, int64_t, int64_t);

/// The step's learning rate and iteration count: from the step-state input [lr, iterations] when
/// there is one (so a compiled graph reads them at run time), else from the attrs.
std::pair<double, int64_t> lr_and_step(KernelContext& k) {
  if (!k.attrs().has("step_state")) return {k.attr<double>("lr"), k.attr<int64_t>("step")};
  const Tensor& s = k.input(k.num_inputs() - 1 - (k.attrs().has("guard") ? 1 : 0));
  GLIA_CHECK(s.dtype() == DType::f64 && s.numel() == 2, InternalError, k.name(), ": bad step-state input");
  const double* p = static_cast<const double*>(s.data_ptr());
  return {p[0], static_cast<int64_t>(p[1])};
}

/// False when the step's guard input (a compiled step's isfinite(loss)) says to skip the update.
bool guard_open(KernelContext& k) {
  if (!k.attrs().has("guard")) return true;
  return *static_cast<const bool*>(k.input(k.num_inputs() - 1).data_ptr());
}

/// Runs `fn` over the update's operands (see backends/update_operands.h): slot i goes to
/// Args::s[place[i]]; parameter and slots are written in place.
void run(KernelContext& k, Args a, Fn f32, Fn f64) {
  std::vector<int> place = detail::update_slot_places(k);  // checks the slot count first
  const Tensor& w = k.input(0);
  if (w.numel() == 0) return;
  GLIA_CHECK(w.dtype() == DType::f32 || w.dtype() == DType::f64, DTypeError, k.name(),
             ": the CPU kernel takes float32 or float64 parameters, got ", name(w.dtype()));
  if (!guard_open(k)) return;
  Tensor g = k.input(1).contiguous();
  detail::UpdateBuffers b(k);
  a.w = b.bufs[0].data_ptr();
  a.g = g.data_ptr();
  for (size_t i = 0; i < place.size(); ++i) a.s[place[i]] = b.bufs[i + 1].data_ptr();
  Fn fn = w.dtype() == DType::f32 ? f32 : f64;
  // About 28 bytes move per element (Adam); below ~64K elements a second thread costs more than it saves.
  parallel_for(w.numel(), 1 << 15, [&](int64_t b0, int64_t e) { fn(a, b0, e); });
  b.write_back([](const Tensor& from, const Tensor& to) { cast_copy(from, to); });
}

/// The attrs every update op takes.
Args common(KernelContext& k) {
  Args a;
  a.lr = lr_and_step(k).first;
  a.grad_scale = k.attr<double>("grad_scale");
  a.clipvalue = k.attr<double>("clipvalue");
  a.decay = a.lr * k.attr<double>("weight_decay");
  return a;
}

}  // namespace

GLIA_KERNEL(optim_sgd_update, CPU, [](KernelContext& k) {
  Args a = common(k);
  a.momentum = k.attr<double>("momentum");
  a.nesterov = k.attr<bool>("nesterov");
  run(k, a, HWY_DYNAMIC_DISPATCH(SgdF32), HWY_DYNAMIC_DISPATCH(SgdF64));
});

GLIA_KERNEL(optim_adam_update, CPU, [](KernelContext& k) {
  Args a = common(k);
  a.beta_1 = k.attr<double>("beta_1");
  a.beta_2 = k.attr<double>("beta_2");
  a.epsilon = k.attr<double>("epsilon");
  // Keras 3: t = iterations + 1 and alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t).
  double t = static_cast<double>(lr_and_step(k).second + 1);
  a.alpha = a.lr * std::sqrt(1 - std::pow(a.beta_2, t)) / (1 - std::pow(a.beta_1, t));
  run(k, a, HWY_DYNAMIC_DISPATCH(AdamF32), HWY_DYNAMIC_DISPATCH(AdamF64));
});

GLIA_KERNEL(optim_rmsprop_update, CPU, [](KernelContext& k) {
  Args a = common(k);
  a.rho = k.attr<double>("rho");
  a.momentum = k.attr<double>("momentum");
  a.epsilon = k.attr<double>("epsilon");
  run(k, a, HWY_DYNAMIC_DISPATCH(RmspropF32), HWY_DYNAMIC_DISPATCH(RmspropF64));
});

GLIA_KERNEL(optim_adagrad_update, CPU, [](KernelContext& k) {
  Args a = common(k);
  a.epsilon = k.attr<double>("epsilon");
  run(k, a, HWY_DYNAMIC_DISPATCH(AdagradF32), HWY_DYNAMIC_DISPATCH(AdagradF64));
});

}  // namespace glia::cpu::optim
#endif
