// CUDA kernels of convolution (cuDNN), pooling, batch norm and matmul_fused, beside their CPU kernels.
//
// Convolutions: float32, bfloat16 and float16 run cuDNN on NHWC with the filter as KRSC [Cout, KH, KW,
// Cin/groups]; float64 runs on NCHW / KCRS, since cuDNN has no double NHWC kernels (and so do the others
// where cuDNN has no NHWC algorithm for the geometry: remembered per geometry). The Keras kernel is
// transposed into a temporary on every call (and the weight gradient transposed back). cuDNN pads
// symmetrically, so asymmetric pads ('same' with an even span or a stride) pad the input explicitly by
// the difference (and the input gradient is cropped). Candidate algorithms come from cuDNN's heuristics,
// deterministic ones first, without TF32 unless cuda::allow_tf32(); with cuda::conv_autotune() (the
// default) the first call of a geometry times them and the layouts (NHWC or NCHW with copies) and
// keeps the fastest, else the first that runs; the choice is cached per geometry. Workspaces are temporaries of the
// caching allocator. 16-bit convolutions accumulate in float (compute type float; heuristics asked with tensor-core
// math, each algorithm run with the math type they report for it), as the CPU's float32 convolution of float32 copies,
// and round once: a bias is loaded into the output first and added by cuDNN in float (beta = 1), so that the sum is
// rounded once as on the CPU (ReLU after the rounding gives the same value as before it). Pooling, batch norm and the
// bias + activation epilogues are own kernels (nn.cu): they follow the CPU's index, NaN and statistics conventions
// exactly.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "glia/autograd/autograd.h"
#include "glia/backends/cuda/launch_nn.h"
#include "glia/backends/cuda/runtime.h"
#include "glia/core/autotune.h"
#include "glia/core/cuda.h"
#include "glia/core/scratch.h"
#include "glia/ops/norm.h"
#include "glia/ops/op.h"

namespace glia::cuda {
namespace {

using I64s = std::vector<int64_t>;

/// The dtype of a floating-point kernel (float32, float64, bfloat16, float16, as the CPU's); others
/// throw DTypeError naming the op.
launch::Dt float_dt(DType t, const char* op) {
  GLIA_CHECK(is_floating(t), DTypeError, op, ": no CUDA kernel for dtype ", name(t),
             " (float32, float64, bfloat16 and float16 are supported)");
  return dt(t);
}

void* ptr(const Tensor& t) { return t.data_ptr(); }
const double* dptr(const Tensor& t) { return static_cast<const double*>(t.data_ptr()); }

// --- convolution

/// Sizes of one convolution: x [N,H,W,C], w [KH,KW,Cg,O] with G groups, y [N,OH,OW,O].
struct Geom {
  int64_t N, H, W, C, KH, KW, Cg, O, OH, OW, G, sh, sw, dh, dw, pt, pb, pl, pr;
  // cuDNN's symmetric pads and the extra rows / columns padded explicitly before / after.
  int64_t ph() const { return std::min(pt, pb); }
  int64_t pw() const { return std::min(pl, pr); }
  int64_t et() const { return pt - ph(); }
  int64_t eb() const { return pb - ph(); }
  int64_t el() const { return pl - pw(); }
  int64_t er() const { return pr - pw(); }
  int64_t Hp() const { return H + et() + eb(); }
  int64_t Wp() const { return W + el() + er(); }
  bool extra() const { return et() || eb() || el() || er(); }
  /// Every size, stride, dilation, group count and pad (the rest derives from them): for cache keys.
  std::string key() const {
    return detail::str(N, ',', H, ',', W, ',', C, ',', KH, ',', KW, ',', Cg, ',', O, ',', G, ',', sh, ',', sw, ',', dh,
                       ',', dw, ',', pt, ',', pb, ',', pl, ',', pr);
  }
  /// The input and weight shapes, for logs.
  std::string shapes() const {
    return detail::str("x [", N, ",", H, ",", W, ",", C, "] w [", KH, ",", KW, ",", Cg, ",", O, "]");
  }
};

Geom make_geom(const Shape& x, const Shape& w, const Shape& y, const Attrs& a) {
  const auto& s = a.get<I64s>("stride");
  const auto& d = a.get<I64s>("dilation");
  const auto& p = a.get<I64s>("pads");
  return {x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], y[1], y[2], a.get<int64_t>("groups"),
          s[0], s[1], d[0], d[1], p[0], p[1], p[2], p[3]};
}

int as_int(int64_t v, const char* op) {
  GLIA_CHECK(v >= 0 && v <= INT_MAX, ValueError, op, ": size ", v, " is too large for cuDNN");
  return static_cast<int>(v);
}

enum class Pass { Fwd, BwdData, BwdFilter };

/// cuDNN's "this algorithm / layout does not take this geometry". cuDNN 9 reports sub-codes of both
/// categories (CUDNN_STATUS_NOT_SUPPORTED_SHAPE, CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER, ...).
bool refusal(cudnnStatus_t st) {
#if CUDNN_MAJOR >= 9
  int cat = CUDNN_STATUS_CATEGORY(static_cast<int>(st));
  return cat == CUDNN_STATUS_NOT_SUPPORTED || cat == CUDNN_STATUS_BAD_PARAM;
#else
  return st == CUDNN_STATUS_NOT_SUPPORTED || st == CUDNN_STATUS_BAD_PARAM;
#endif
}

/// The descriptors of one convolution; destroyed with it.
struct Descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descs() = default;
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;
  ~Descs() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

/// What runs a convolution of one geometry: the algorithm and the math type it ran with.
struct Choice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  bool ok = true;   // false: no algorithm takes the geometry
  bool det = true;  // deterministic
};

bool log_choices() {
  static const bool on = [] {
    const char* e = std::getenv("GLIA_CONV_LOG");
    return e && std::string(e) == "1";
  }();
  return on;
}

/// Whether work queued on the device's stream is being recorded into a CUDA Graph (nothing may wait
/// for the GPU then).
bool capturing(int dev) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(stream(dev), &st), "cudaStreamIsCapturing");
  return st != cudaStreamCaptureStatusNone;
}

/// The GPU time of `reps` runs of f (queued work on the device's stream, between two events), per run,
/// in milliseconds. Waits for the GPU.
template <class F>
double time_ms(int dev, F&& f, int reps = 2) {
  struct Events {
    cudaEvent_t a = nullptr, b = nullptr;
    ~Events() {
      if (a) (void)cudaEventDestroy(a);
      if (b) (void)cudaEventDestroy(b);
    }
  } ev;
  DeviceGuard guard(dev);
  check(cudaEventCreate(&ev.a), "cudaEventCreate");
  check(cudaEventCreate(&ev.b), "cudaEventCreate");
  cudaStream_t s = stream(dev);
  check(cudaEventRecord(ev.a, s), "cudaEventRecord");
  for (int i = 0; i < reps; ++i) f();
  check(cudaEventRecord(ev.b, s), "cudaEventRecord");
  check(cudaEventSynchronize(ev.b), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, ev.a, ev.b), "cudaEventElapsedTime");
  return static_cast<double>(ms) / reps;
}

const char* pass_name(int pass) { return pass == 0 ? "forward" : pass == 1 ? "input grad" : "weight grad"; }

/// One convolution pass on cuDNN. x / y are the padded input and the output, in NHWC or NCHW; w is
/// KRSC or KCRS to match.
class Conv {
 public:
  Conv(const Geom& g, DType t, bool nhwc, int dev, const char* op)
      : g_(g),
        dev_(dev),
        f32_(t == DType::f32),
        f64_(t == DType::f64),
        nhwc_(nhwc),
        elt_(static_cast<int64_t>(itemsize(t))),
        op_(op) {
    cudnnDataType_t type = t == DType::f32    ? CUDNN_DATA_FLOAT
                           : t == DType::f64  ? CUDNN_DATA_DOUBLE
                           : t == DType::bf16 ? CUDNN_DATA_BFLOAT16
                                              : CUDNN_DATA_HALF;
    // 16-bit data accumulates in float (cuDNN's PSEUDO_HALF / PSEUDO_BFLOAT16 configurations).
    cudnnDataType_t compute = f64_ ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    tag_ = t == DType::f32 ? 'f' : t == DType::f64 ? 'd' : t == DType::bf16 ? 'b' : 'h';
    cudnnTensorFormat_t fmt = nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    check(cudnnCreateTensorDescriptor(&d_.x), op);
    check(cudnnCreateTensorDescriptor(&d_.y), op);
    check(cudnnCreateFilterDescriptor(&d_.w), op);
    check(cudnnCreateConvolutionDescriptor(&d_.conv), op);
    check(cudnnSetTensor4dDescriptor(d_.x, fmt, type, as_int(g.N, op), as_int(g.C, op), as_int(g.Hp(), op),
                                     as_int(g.Wp(), op)),
          op);
    check(cudnnSetTensor4dDescriptor(d_.y, fmt, type, as_int(g.N, op), as_int(g.O, op), as_int(g.OH, op),
                                     as_int(g.OW, op)),
          op);
    check(cudnnSetFilter4dDescriptor(d_.w, type, fmt, as_int(g.O, op), as_int(g.Cg, op), as_int(g.KH, op),
                                     as_int(g.KW, op)),
          op);
    check(cudnnSetConvolution2dDescriptor(d_.conv, as_int(g.ph(), op), as_int(g.pw(), op), as_int(g.sh, op),
                                          as_int(g.sw, op), as_int(g.dh, op), as_int(g.dw, op), CUDNN_CROSS_CORRELATION,
                                          compute),
          op);
    check(cudnnSetConvolutionGroupCount(d_.conv, as_int(g.G, op)), op);
    check(cudnnSetConvolutionMathType(d_.conv, plain_math()), op);
  }

  /// False when an earlier run found no algorithm for this pass, geometry and layout.
  bool maybe(Pass pass) const {
    std::lock_guard<std::mutex> lock(mu());
    auto it = cache().find(key_of(pass));
    return it == cache().end() || it->second.ok;
  }

  /// Runs `pass` with the cached or a newly chosen algorithm: out is overwritten (beta = 0), or with
  /// `accumulate` the result is added to what out holds, in the compute type (beta = 1). False when no
  /// algorithm takes this geometry in this layout (remembered); other errors throw.
  bool run(Pass pass, const void* x, const void* w, const void* y, void* out, bool accumulate = false) {
    cudnnHandle_t h = cudnn(dev_);
    std::string key = key_of(pass);
    Choice known;
    bool hit = false;
    {
      std::lock_guard<std::mutex> lock(mu());
      auto it = cache().find(key);
      if (it != cache().end()) {
        known = it->second;
        hit = true;
      }
    }
    if (hit) {
      if (!known.ok) return false;
      check(execute(pass, h, known, x, w, y, out, accumulate), op_);
      return true;
    }
    std::vector<Choice> cands = candidates(pass, h);
    // Measured: the fastest candidate goes first (the loop below runs it and caches it).
    if (cands.size() > 1 && conv_autotune() && !capturing(dev_)) {
      int best = tune(pass, h, cands, x, w, y, out, accumulate);
      if (best > 0) std::rotate(cands.begin(), cands.begin() + best, cands.begin() + best + 1);
    }
    cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
    for (const Choice& c : cands) {
      last = execute(pass, h, c, x, w, y, out, accumulate);
      if (last == CUDNN_STATUS_SUCCESS) {
        std::lock_guard<std::mutex> lock(mu());
        cache()[key] = c;
        return true;
      }
      // Only "this algorithm does not take this geometry" moves on to the next candidate.
      if (!refusal(last)) break;
    }
    if (!refusal(last)) check(last, op_);
    std::lock_guard<std::mutex> lock(mu());
    cache()[key] = Choice{0, CUDNN_DEFAULT_MATH, false};
    return false;
  }

 private:
  /// The math type without TF32 for float32 unless allowed (FMA kernels only); float64 has no TF32;
  /// 16-bit data on tensor cores (they accumulate in float, as the CPU does).
  cudnnMathType_t plain_math() const {
    if (!f32_ && !f64_) return CUDNN_TENSOR_OP_MATH;
    return f32_ && !allow_tf32() ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  }

  bool allowed(cudnnMathType_t m) const {
    return !f32_ || allow_tf32() || (m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
  }

  std::string key_of(Pass pass) const {
    return detail::str(dev_, ':', static_cast<int>(pass), tag_, allow_tf32() ? 1 : 0, nhwc_ ? 'n' : 'c', ':', g_.key());
  }

  /// Whether algorithm `algo` of `pass` sums as a direct convolution would: FFT algorithms (any
  /// dtype) round in the frequency domain, with errors that grow with the image; Winograd's
  /// transforms round 16-bit data before the float sum (the CPU sums exact products and rounds once).
  bool precise(Pass pass, int algo) const {
    bool fft =
        pass == Pass::Fwd ? algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT || algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING
        : pass == Pass::BwdData
            ? algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING
            : algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING;
    bool winograd = pass == Pass::Fwd ? algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD ||
                                            algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED
                    : pass == Pass::BwdData ? algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
                                                  algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED
                                            : algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD ||
                                                  algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
    return !fft && !(winograd && !f32_ && !f64_);
  }

  /// The heuristics' successful algorithms that keep the math type and are precise(), deterministic
  /// ones first.
  template <class Perf>
  std::vector<Choice> filter(Pass pass, const Perf* perf, int n) const {
    std::vector<Choice> det, other;
    for (int i = 0; i < n; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || !allowed(perf[i].mathType) ||
          !precise(pass, static_cast<int>(perf[i].algo)))
        continue;
      Choice c{static_cast<int>(perf[i].algo), allow_tf32() || !f32_ ? perf[i].mathType : plain_math(), true,
               perf[i].determinism == CUDNN_DETERMINISTIC};
      (perf[i].determinism == CUDNN_DETERMINISTIC ? det : other).push_back(c);
    }
    det.insert(det.end(), other.begin(), other.end());
    return det;
  }

  /// The heuristics' candidates; none where cuDNN refuses the geometry in this layout.
  std::vector<Choice> candidates(Pass pass, cudnnHandle_t h) const {
    int n = 0;
    auto refused = [&](cudnnStatus_t st) {
      if (refusal(st)) return true;
      check(st, op_);
      return false;
    };
    if (pass == Pass::Fwd) {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      if (refused(cudnnGetConvolutionForwardAlgorithm_v7(h, d_.x, d_.w, d_.conv, d_.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                         &n, perf)))
        return {};
      return filter(pass, perf, n);
    }
    if (pass == Pass::BwdData) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      if (refused(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d_.w, d_.y, d_.conv, d_.x,
                                                              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf)))
        return {};
      return filter(pass, perf, n);
    }
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    if (refused(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d_.x, d_.y, d_.conv, d_.w,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf)))
      return {};
    return filter(pass, perf, n);
  }

  /// Times each candidate on these operands (cudnn.benchmark) and returns the index of the one to
  /// keep (detail::pick_fastest: the fastest, or an earlier one within 3%), -1 when none ran. A
  /// candidate runs once untimed, then twice timed. Candidates whose workspace is larger than
  /// max(64 MiB, the first runnable candidate's) are not tried: a faster algorithm must not cost more
  /// memory than the heuristics' pick would have. With `accumulate`, the trials write a scratch output.
  int tune(Pass pass, cudnnHandle_t h, const std::vector<Choice>& cands, const void* x, const void* w, const void* y,
           void* out, bool accumulate) const {
    try {
      return tune_or_throw(pass, h, cands, x, w, y, out, accumulate);
    } catch (const DeviceError&) {
      // Out of memory for a trial (scratch output, a workspace): no measured choice; the
      // candidates then run in the heuristics' order, which reports real errors.
      (void)cudaGetLastError();
      return -1;
    }
  }

  int tune_or_throw(Pass pass, cudnnHandle_t h, const std::vector<Choice>& cands, const void* x, const void* w,
                    const void* y, void* out, bool accumulate) const {
    Tensor scratch;
    if (accumulate) {
      int64_t n = pass == Pass::Fwd       ? g_.N * g_.O * g_.OH * g_.OW
                  : pass == Pass::BwdData ? g_.N * g_.C * g_.Hp() * g_.Wp()
                                          : g_.O * g_.Cg * g_.KH * g_.KW;
      scratch = detail::scratch_empty({n * elt_}, DType::u8, Device::cuda(dev_));
      out = scratch.data_ptr();
    }
    std::vector<double> ms(cands.size(), -1.0);
    size_t budget = 0;
    bool have_budget = false;
    for (size_t i = 0; i < cands.size(); ++i) {
      // Results stay deterministic (docs/cuda.md) where a deterministic algorithm exists (listed first).
      if (!cands[i].det && cands.front().det) continue;
      size_t ws = 0;
      cudnnStatus_t st = workspace(pass, h, cands[i], &ws);
      if (st == CUDNN_STATUS_SUCCESS && have_budget && ws > budget) continue;
      if (st == CUDNN_STATUS_SUCCESS) st = execute(pass, h, cands[i], x, w, y, out, false);
      if (st != CUDNN_STATUS_SUCCESS) {
        if (!refusal(st)) check(st, op_);
        continue;
      }
      if (!have_budget) budget = std::max<size_t>(ws, size_t(64) << 20);
      have_budget = true;
      ms[i] = time_ms(dev_, [&] { check(execute(pass, h, cands[i], x, w, y, out, false), op_); });
    }
    int best = detail::pick_fastest(ms);
    if (log_choices()) {
      std::string line = detail::str("glia: ", op_, " ", pass_name(static_cast<int>(pass)), " ", tag_,
                                     nhwc_ ? " NHWC " : " NCHW ", g_.shapes(), " stride ", g_.sh, ":");
      for (size_t i = 0; i < cands.size(); ++i)
        line += ms[i] < 0 ? detail::str(" algo ", cands[i].algo, " -")
                          : detail::str(" algo ", cands[i].algo, cands[i].det ? "" : "*", " ", ms[i], " ms");
      line += best < 0 ? " -> none" : detail::str(" -> algo ", cands[static_cast<size_t>(best)].algo);
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    return best;
  }

  /// The workspace algorithm c needs for `pass`, in *ws.
  cudnnStatus_t workspace(Pass pass, cudnnHandle_t h, const Choice& c, size_t* ws) const {
    cudnnStatus_t st = cudnnSetConvolutionMathType(d_.conv, c.math);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (pass == Pass::Fwd)
      return cudnnGetConvolutionForwardWorkspaceSize(h, d_.x, d_.w, d_.conv, d_.y,
                                                     static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws);
    if (pass == Pass::BwdData)
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d_.w, d_.y, d_.conv, d_.x,
                                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d_.x, d_.y, d_.conv, d_.w,
                                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), ws);
  }

  /// One pass with algorithm c. Fwd: out = conv(x, w). BwdData: out (x-shaped) from y (the output
  /// gradient) and w. BwdFilter: out (w-shaped) from x and y.
  cudnnStatus_t execute(Pass pass, cudnnHandle_t h, const Choice& c, const void* x, const void* w, const void* y,
                        void* out, bool accumulate) const {
    size_t ws = 0;
    cudnnStatus_t st = workspace(pass, h, c, &ws);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    detail::ScratchMark mark;  // the workspace is free again once the call is queued
    Tensor space;
    if (ws > 0) space = detail::scratch_empty({static_cast<int64_t>(ws)}, DType::u8, Device::cuda(dev_));
    void* wsp = ws > 0 ? space.data_ptr() : nullptr;
    // Scaling factors are float for float32 and 16-bit data, double for double.
    float one_f = 1.f, beta_f = accumulate ? 1.f : 0.f;
    double one_d = 1.0, beta_d = accumulate ? 1.0 : 0.0;
    const void* alpha = f64_ ? static_cast<const void*>(&one_d) : static_cast<const void*>(&one_f);
    const void* beta = f64_ ? static_cast<const void*>(&beta_d) : static_cast<const void*>(&beta_f);
    DeviceGuard guard(dev_);
    if (pass == Pass::Fwd)
      return cudnnConvolutionForward(h, alpha, d_.x, x, d_.w, w, d_.conv,
                                     static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), wsp, ws, beta, d_.y, out);
    if (pass == Pass::BwdData)
      return cudnnConvolutionBackwardData(h, alpha, d_.w, w, d_.y, y, d_.conv,
                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), wsp, ws, beta, d_.x, out);
    return cudnnConvolutionBackwardFilter(h, alpha, d_.x, x, d_.y, y, d_.conv,
                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), wsp, ws, beta, d_.w,
                                          out);
  }

  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::unordered_map<std::string, Choice>& cache() {
    static std::unordered_map<std::string, Choice> c;
    return c;
  }

  Geom g_;
  int dev_;  // cached choices are per GPU (another model may lack an algorithm)
  bool f32_, f64_, nhwc_;
  int64_t elt_;  // bytes per element
  char tag_;     // the dtype in cache keys
  const char* op_;
  Descs d_;
};

/// t itself when contiguous, else a contiguous copy in a kernel temporary (detail::scratch_empty:
/// in a compiled plan, the arena's memory that is free while the kernel runs).
Tensor contiguous_temp(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = detail::scratch_empty(t.shape(), t.dtype(), t.device());
  copy_into(t, c);
  return c;
}

/// x [N,H,W,C] with the explicit extra pads as zeros, in NHWC or NCHW.
Tensor conv_input(const Geom& g, const Tensor& x, bool nhwc) {
  Tensor xp;
  if (!g.extra()) {
    xp = contiguous_temp(x);
  } else {
    xp = detail::scratch_empty({g.N, g.Hp(), g.Wp(), g.C}, x.dtype(), x.device());
    fill(xp, 0);
    copy_into(x, xp.slice(1, g.et(), g.et() + g.H).slice(2, g.el(), g.el() + g.W));
  }
  return nhwc ? xp : contiguous_temp(xp.permute({0, 3, 1, 2}));
}

/// The Keras kernel [KH, KW, Cg, O] as KRSC (NHWC) or KCRS (NCHW).
Tensor conv_filter(const Tensor& w, bool nhwc) {
  return contiguous_temp(nhwc ? w.permute({3, 0, 1, 2}) : w.permute({3, 2, 0, 1}));
}

/// An NHWC activation in NHWC or NCHW.
Tensor conv_act(const Tensor& t, bool nhwc) { return contiguous_temp(nhwc ? t : t.permute({0, 3, 1, 2})); }

// --- convolutions as matrix products: im2col (conv_gemm.cu) and cuBLAS, in chunks of images

/// Bytes of one chunk's column matrix (at least one image's).
constexpr int64_t kGemmChunkBytes = int64_t(64) << 20;

/// Whether the GEMM way takes this convolution: float32 (cuDNN's tensor cores serve 16-bit data,
/// float64 keeps NCHW), one group, and cuBLAS's int sizes for one image's matrices.
bool gemm_fits(const Geom& g, DType t) {
  if (t != DType::f32 || g.G != 1) return false;
  const int64_t k = g.KH * g.KW * g.C, rows = g.OH * g.OW;
  return k > 0 && k <= INT_MAX && g.O <= INT_MAX && rows <= INT_MAX && rows * k <= INT_MAX;
}

launch::ColGeom col_geom(const Geom& g) {
  return {g.H, g.W, g.C, g.KH, g.KW, g.OH, g.OW, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl};
}

/// A 1x1 kernel with stride 1 and no padding: the column matrix is the input itself.
bool col_is_input(const Geom& g) {
  return g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pb == 0 && g.pl == 0 && g.pr == 0;
}

/// Images per chunk: a column matrix of at most kGemmChunkBytes (one image at least), and at most
/// INT_MAX rows and elements for cuBLAS.
int64_t gemm_chunk(const Geom& g) {
  const int64_t rows = g.OH * g.OW, k = g.KH * g.KW * g.C;
  int64_t nb = std::max<int64_t>(1, kGemmChunkBytes / std::max<int64_t>(1, rows * k * 4));
  nb = std::min({nb, g.N, INT_MAX / std::max<int64_t>(1, rows * k)});
  return std::max<int64_t>(1, nb);
}

/// Column-major C [m, n] = op(A) op(B) + beta C in float32 on the device's stream (TF32 as
/// allow_tf32(), as the matmul op); the device is current (in_some_way's attempt).
void sgemm(int dev, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, const char* op) {
  const float one = 1.f;
  check(
      cublasGemmStridedBatchedEx(cublas(dev), ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                                 &one, a, CUDA_R_32F, static_cast<int>(lda), 0, b, CUDA_R_32F, static_cast<int>(ldb), 0,
                                 &beta, c, CUDA_R_32F, static_cast<int>(ldc), 0, 1,
                                 allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      op);
}

const float* fptr(const Tensor& t) { return static_cast<const float*>(t.data_ptr()); }
float* fptr_mut(const Tensor& t) { return static_cast<float*>(t.data_ptr()); }

/// Calls f(n0, nb, cols) for each chunk of images [n0, n0 + nb) of x (contiguous), cols its column
/// matrix [nb * OH * OW, KH * KW * C] (im2col into one scratch buffer; x's chunk itself for a 1x1
/// kernel).
template <class F>
void over_column_chunks(const Geom& g, const Tensor& x, F&& f) {
  const int dev = x.device().index;
  const int64_t nb = gemm_chunk(g), k = g.KH * g.KW * g.C;
  const bool same = col_is_input(g);
  Tensor col = same ? Tensor() : detail::scratch_empty({nb * g.OH * g.OW * k}, DType::f32, x.device());
  for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
    const int64_t b = std::min(nb, g.N - n0);
    const float* xs = fptr(x) + n0 * g.H * g.W * g.C;
    if (!same) {
      launch::im2col(xs, fptr_mut(col), col_geom(g), b, stream(dev));
      check(cudaGetLastError(), "im2col");
    }
    f(n0, b, same ? xs : fptr(col));
  }
}

/// y [N, OH, OW, O] = col(x) [rows, K] x w [K, O], per chunk (the Keras kernel [KH, KW, C, O] is
/// the row-major [K, O] matrix). Row-major products are column-major ones transposed: cuBLAS computes
/// y^T = w^T col^T.
void gemm_forward(const Geom& g, const Tensor& x_in, const Tensor& w_in, const Tensor& y, const char* op) {
  Tensor x = contiguous_temp(x_in), w = contiguous_temp(w_in);
  const int64_t rows = g.OH * g.OW, k = g.KH * g.KW * g.C;
  over_column_chunks(g, x, [&](int64_t n0, int64_t b, const float* cols) {
    sgemm(y.device().index, CUBLAS_OP_N, CUBLAS_OP_N, g.O, b * rows, k, fptr(w), g.O, cols, k, 0.f,
          fptr_mut(y) + n0 * rows * g.O, g.O, op);
  });
}

/// gx = col2im(gy [rows, O] x w^T), per chunk; for a 1x1 kernel the product is gx itself.
void gemm_input_grad(const Geom& g, const Tensor& gy_in, const Tensor& w_in, const Tensor& gx, const char* op) {
  const int dev = gx.device().index;
  Tensor gy = contiguous_temp(gy_in), w = contiguous_temp(w_in);
  const int64_t nb = gemm_chunk(g), rows = g.OH * g.OW, k = g.KH * g.KW * g.C;
  const bool direct = col_is_input(g);
  Tensor dcol = direct ? Tensor() : detail::scratch_empty({nb * rows * k}, DType::f32, gx.device());
  for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
    const int64_t b = std::min(nb, g.N - n0);
    float* gxs = fptr_mut(gx) + n0 * g.H * g.W * g.C;
    float* out = direct ? gxs : fptr_mut(dcol);
    sgemm(dev, CUBLAS_OP_T, CUBLAS_OP_N, k, b * rows, g.O, fptr(w), g.O, fptr(gy) + n0 * rows * g.O, g.O, 0.f, out, k,
          op);
    if (!direct) {
      launch::col2im(out, gxs, col_geom(g), b, stream(dev));
      check(cudaGetLastError(), "col2im");
    }
  }
}

/// gw [K, O] = sum over chunks of col(x)^T [K, rows] x gy [rows, O]: cuBLAS computes gw^T = gy^T col.
void gemm_weight_grad(const Geom& g, const Tensor& x_in, const Tensor& gy_in, const Tensor& gw, const char* op) {
  Tensor x = contiguous_temp(x_in), gy = contiguous_temp(gy_in);
  const int64_t rows = g.OH * g.OW, k = g.KH * g.KW * g.C;
  over_column_chunks(g, x, [&](int64_t n0, int64_t b, const float* cols) {
    sgemm(gw.device().index, CUBLAS_OP_N, CUBLAS_OP_T, g.O, k, b * rows, fptr(gy) + n0 * rows * g.O, g.O, cols, k,
          n0 == 0 ? 0.f : 1.f, fptr_mut(gw), g.O, op);
  });
}

/// The ways a convolution pass runs: cuDNN on NHWC, cuDNN on NCHW (with transposed copies), im2col +
/// cuBLAS (float32, one group), or Glia's direct kernels (float32, few input channels; forward and
/// weight gradient).
enum Way : int { kNhwc = 0, kNchw = 1, kGemm = 2, kDirect = 3 };
constexpr const char* kWayNames[] = {"NHWC", "NCHW", "GEMM", "DIRECT"};

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

/// Whether the direct kernels take this convolution.
bool direct_fits(const Geom& g, DType t) {
  return t == DType::f32 && g.G == 1 && launch::direct_fits(col_geom(g), g.O);
}

/// gw = the weight gradient by the direct kernel; false where an operand is not 16-byte aligned.
bool direct_weight_grad(const Geom& g, const Tensor& x_in, const Tensor& gy_in, const Tensor& gw, const char* op) {
  Tensor x = contiguous_temp(x_in), gy = contiguous_temp(gy_in);
  if (!aligned16(gy) || !aligned16(gw)) return false;
  const int64_t blocks = launch::direct_wgrad_blocks(g.N * g.OH * g.OW);
  Tensor part = detail::scratch_empty({blocks * g.KH * g.KW * g.C * g.O}, DType::f32, gw.device());
  const int dev = gw.device().index;
  launch::direct_weight_grad(fptr(x), fptr(gy), fptr_mut(part), fptr_mut(gw), col_geom(g), g.N, g.O, stream(dev));
  check(cudaGetLastError(), op);
  return true;
}

/// The way measured for each convolution (op, dtype, geometry).
struct Ways {
  std::mutex mu;
  std::unordered_map<std::string, int> way;
  static Ways& get() {
    static Ways w;
    return w;
  }
};

/// GLIA_CONV_WAY=nhwc|nchw|gemm: every convolution runs that way where it can (for tests and
/// experiments); -1 otherwise. Read at each call, so that a test can set it.
int forced_way() {
  const char* e = std::getenv("GLIA_CONV_WAY");
  if (!e) return -1;
  std::string v = e;
  return v == "nhwc" ? kNhwc : v == "nchw" ? kNchw : v == "gemm" ? kGemm : v == "direct" ? kDirect : -1;
}

/// Runs attempt(way), which returns false where the way has no algorithm for the geometry and is
/// idempotent (it overwrites its output). float64: NCHW (cuDNN has no double NHWC kernels). float32
/// and 16-bit floats: NHWC first, then NCHW, then GEMM (float32), then DIRECT (where `direct`: the
/// pass has direct kernels, and they take the geometry). With conv_autotune(), the first
/// call of a geometry (outside a CUDA Graph recording) runs each way and times it, and keeps NHWC
/// unless another is at least 10% faster: NCHW's copies and GEMM's column matrix take memory (in a
/// compiled step, the arena's free stretch when it has room, else beside it). cuDNN's NHWC kernels
/// are made for tensor cores; plain float32 can run faster on NCHW even with the copies, and small
/// images, few channels or large strides faster as matrix products on cuBLAS.
template <class F>
void in_some_way(DType t, const char* op, const Geom& g, int dev, bool direct, F&& attempt_in) {
  // Each attempt runs with its device current (every way launches on that device's stream), and its
  // temporaries are free again once its work is queued.
  auto attempt = [&](int way) {
    DeviceGuard guard(dev);
    detail::ScratchMark mark;
    return attempt_in(way);
  };
  const bool gemm = gemm_fits(g, t);
  std::vector<int> ways = t == DType::f64 ? std::vector<int>{kNchw} : std::vector<int>{kNhwc, kNchw};
  if (gemm) ways.push_back(kGemm);
  if (direct && direct_fits(g, t)) ways.push_back(kDirect);
  if (int f = forced_way(); f >= 0 && std::find(ways.begin(), ways.end(), f) != ways.end() && attempt(f)) return;
  if (ways.size() > 1 && conv_autotune()) {
    std::string key = detail::str(op, ' ', dev, ' ', static_cast<int>(t), ' ', allow_tf32(), ' ', g.key());
    Ways& l = Ways::get();
    std::optional<int> known;
    {
      std::lock_guard<std::mutex> lock(l.mu);
      if (auto it = l.way.find(key); it != l.way.end()) known = it->second;
    }
    if (known) {
      if (attempt(*known)) return;
    } else if (!capturing(dev)) {
      std::vector<double> ms(ways.size(), -1.0);
      for (size_t i = 0; i < ways.size(); ++i) {
        try {
          if (attempt(ways[i])) ms[i] = time_ms(dev, [&] { attempt(ways[i]); });
        } catch (const DeviceError&) {
          // Out of memory (NCHW's copies, a workspace, a column matrix): not measured; the plain
          // path below reports errors that are not about this way.
          (void)cudaGetLastError();
          ms[i] = -1;
        }
      }
      int best = detail::pick_fastest(ms, 0.10);
      if (log_choices()) {
        std::string line = detail::str("glia: ", op, " ", g.shapes(), " stride ", g.sh, ":");
        for (size_t i = 0; i < ways.size(); ++i)
          line += detail::str(i ? ", " : " ", kWayNames[ways[i]], " ",
                              ms[i] < 0 ? std::string("-") : detail::str(ms[i]), " ms");
        line += detail::str(" -> ", best < 0 ? "none" : kWayNames[ways[static_cast<size_t>(best)]]);
        std::fprintf(stderr, "%s\n", line.c_str());
      }
      if (best >= 0) {
        const int w = ways[static_cast<size_t>(best)];
        {
          std::lock_guard<std::mutex> lock(l.mu);
          l.way[key] = w;
        }
        // The last way measured wrote the output last: the kept one runs again unless it is that.
        if (static_cast<size_t>(best) + 1 == ways.size() || attempt(w)) return;
      }
    }
  }
  for (int w : ways)
    if (attempt(w)) return;
  throw DeviceError(detail::str(op, ": cuDNN has no algorithm for input [", g.N, ", ", g.H, ", ", g.W, ", ", g.C,
                                "] and weight [", g.KH, ", ", g.KW, ", ", g.Cg, ", ", g.O, "] with stride (", g.sh,
                                ", ", g.sw, "), dilation (", g.dh, ", ", g.dw, "), groups ", g.G));
}

void conv_forward_kernel(KernelContext& k) {
  const Tensor& y = k.output();
  const char* op = k.name();
  launch::Dt d = float_dt(y.dtype(), op);
  bool has_bias = k.num_inputs() > 2;
  bool relu = k.attrs().has("activation");
  Geom g = make_geom(k.input(0).shape(), k.input(1).shape(), y.shape(), k.attrs());
  if (y.numel() == 0) return;
  no_grad guard;  // layout copies are temporaries
  int dev = y.device().index;
  Tensor bias = has_bias ? input_as(k, 2, y.dtype()).contiguous() : Tensor();
  // 16-bit: cuDNN adds the bias (preloaded into the output) to its float sum before rounding.
  bool bias_in_conv = has_bias && is_16bit(y.dtype());
  bool epilogue_done = false;
  if (g.C == 0 || g.KH * g.KW == 0) {  // nothing to sum: the bias or zeros
    fill(y, 0);
    bias_in_conv = false;
  } else {
    // The direct kernel adds the bias and applies ReLU itself (when it ran last, it wrote y last).
    auto run_way = [&](int way) {
      if (way == kDirect) {
        Tensor x = contiguous_temp(k.input(0)), w = contiguous_temp(k.input(1));
        if (!aligned16(w) || !aligned16(y) || (has_bias && !aligned16(bias))) return false;
        launch::direct_forward(fptr(x), fptr(w), has_bias ? fptr(bias) : nullptr, fptr_mut(y), col_geom(g), g.N, g.O,
                               relu, stream(dev));
        check(cudaGetLastError(), op);
        return true;
      }
      if (way == kGemm) {  // float32: the bias is added below, as on NHWC
        gemm_forward(g, k.input(0), k.input(1), y, op);
        return true;
      }
      const bool nhwc = way == kNhwc;
      Conv conv(g, y.dtype(), nhwc, dev, op);
      if (!conv.maybe(Pass::Fwd)) return false;
      Tensor x = conv_input(g, k.input(0), nhwc), w = conv_filter(k.input(1), nhwc);
      Tensor out = nhwc ? y : detail::scratch_empty({g.N, g.O, g.OH, g.OW}, y.dtype(), y.device());
      if (bias_in_conv) copy_into(bias, nhwc ? out : out.permute({0, 2, 3, 1}));
      if (!conv.run(Pass::Fwd, ptr(x), ptr(w), nullptr, ptr(out), bias_in_conv)) return false;
      if (!nhwc) copy_into(out.permute({0, 2, 3, 1}), y);
      return true;
    };
    in_some_way(y.dtype(), op, g, dev, true, [&](int way) {
      bool ok = run_way(way);
      if (ok) epilogue_done = way == kDirect;
      return ok;
    });
  }
  if (epilogue_done) return;
  if (bias_in_conv) has_bias = false;
  if (!has_bias && !relu) return;
  DeviceGuard dg(dev);
  // ReLU as the relu op (NaN stays NaN), not cuDNN's activation.
  launch::bias_act(ptr(y), has_bias ? ptr(bias) : nullptr, y.numel(), g.O, relu ? launch::Act::Relu : launch::Act::None,
                   d, stream(dev));
  check(cudaGetLastError(), op);
}

// --- pooling

launch::PoolGeom pool_geom(const Shape& x, const Shape& y, const Attrs& a) {
  const auto& k = a.get<I64s>("kernel");
  const auto& s = a.get<I64s>("stride");
  const auto& p = a.get<I64s>("pads");
  launch::PoolGeom g;
  g.N = x[0], g.H = x[1], g.W = x[2], g.C = x[3], g.OH = y[1], g.OW = y[2];
  g.KH = k[0], g.KW = k[1], g.sh = s[0], g.sw = s[1], g.pt = p[0], g.pl = p[2];
  return launch::with_dividers(g);
}

bool index_is_i32(const Tensor& idx, const char* op) {
  GLIA_CHECK(idx.dtype() == DType::u8 || idx.dtype() == DType::i32, InternalError, op,
             ": index dtype must be uint8 or int32, got ", name(idx.dtype()));
  return idx.dtype() == DType::i32;
}

void max_forward(KernelContext& k) {
  const Tensor &y = k.output(0), &idx = k.output(1);
  launch::Dt d = float_dt(y.dtype(), "max_pool2d");
  launch::PoolGeom g = pool_geom(k.input(0).shape(), y.shape(), k.attrs());
  if (y.numel() == 0) return;
  bool i32 = index_is_i32(idx, "max_pool2d");
  no_grad guard;
  Tensor x = k.input(0).contiguous();
  int dev = y.device().index;
  DeviceGuard dg(dev);
  launch::max_pool_fwd(g, ptr(x), ptr(y), ptr(idx), i32, d, stream(dev));
  check(cudaGetLastError(), "max_pool2d");
}

/// max_pool2d_backward (kGather false: input 0 is the pooled gradient, the output input-shaped) and
/// max_pool2d_gather (input 0 input-shaped, the output pooled).
template <bool kGather>
void max_route(KernelContext& k) {
  const Tensor& out = k.output();
  const char* op = k.name();
  launch::Dt d = float_dt(out.dtype(), op);
  const Tensor& src_in = k.input(0);
  launch::PoolGeom g =
      kGather ? pool_geom(src_in.shape(), out.shape(), k.attrs()) : pool_geom(out.shape(), src_in.shape(), k.attrs());
  if (out.numel() == 0) return;
  no_grad guard;
  Tensor src = input_as(k, 0, out.dtype()).contiguous();
  Tensor idx = k.input(1).contiguous();
  bool i32 = index_is_i32(idx, op);
  int dev = out.device().index;
  DeviceGuard dg(dev);
  if constexpr (kGather)
    launch::max_pool_gather(g, ptr(src), ptr(idx), i32, ptr(out), d, stream(dev));
  else
    launch::max_pool_bwd(g, ptr(src), ptr(idx), i32, ptr(out), d, stream(dev));
  check(cudaGetLastError(), op);
}

void avg_forward(KernelContext& k) {
  const Tensor& y = k.output();
  launch::Dt d = float_dt(y.dtype(), "avg_pool2d");
  launch::PoolGeom g = pool_geom(k.input(0).shape(), y.shape(), k.attrs());
  if (y.numel() == 0) return;
  no_grad guard;
  Tensor x = k.input(0).contiguous();
  int dev = y.device().index;
  DeviceGuard dg(dev);
  launch::avg_pool_fwd(g, ptr(x), ptr(y), d, stream(dev));
  check(cudaGetLastError(), "avg_pool2d");
}

void avg_backward(KernelContext& k) {
  const Tensor& gx = k.output();
  launch::Dt d = float_dt(gx.dtype(), "avg_pool2d_backward");
  launch::PoolGeom g = pool_geom(gx.shape(), k.input(0).shape(), k.attrs());
  if (gx.numel() == 0) return;
  no_grad guard;
  Tensor gy = input_as(k, 0, gx.dtype()).contiguous();
  int dev = gx.device().index;
  DeviceGuard dg(dev);
  launch::avg_pool_bwd(g, ptr(gy), ptr(gx), d, stream(dev));
  check(cudaGetLastError(), "avg_pool2d_backward");
}

// --- batch norm

/// Per-channel vectors (scale, shift) as contiguous float64 on the output's device.
Tensor channel_vec(const KernelContext& k, size_t i) { return input_as(k, i, DType::f64).contiguous(); }

/// Scratch for the partial sums of bn_partial_sums: [P, 2, C] doubles (at least one element), in
/// the plan's scratch window when there is one.
Tensor partials(int64_t M, int64_t C, Device dev) {
  return detail::scratch_empty({std::max<int64_t>(1, launch::bn_parts(M) * 2 * C)}, DType::f64, dev);
}

void bn_train_forward(KernelContext& k) {
  const Tensor &y = k.output(0), &mean_out = k.output(1), &invstd_out = k.output(2), &var_out = k.output(3);
  launch::Dt d = float_dt(y.dtype(), "batch_norm");
  no_grad guard;
  Tensor x = k.input(0).contiguous();
  int64_t C = x.shape().back(), M = C == 0 ? 0 : x.numel() / C;
  if (C == 0) return;
  double eps = k.attr<double>("eps");
  const DType sd = detail::norm_stat_dtype(x.dtype());
  Tensor gamma = input_as(k, 1, sd).contiguous(), beta = input_as(k, 2, sd).contiguous();
  Tensor mean = as_target(mean_out, sd), invstd = as_target(invstd_out, sd), var = as_target(var_out, sd);
  Device dev = y.device();
  Tensor part = partials(M, C, dev);
  Tensor coef = detail::scratch_empty({2 * C}, DType::f64, dev);  // y = x a + b
  {
    DeviceGuard dg(dev.index);
    cudaStream_t s = stream(dev.index);
    launch::bn_partial_sums(ptr(x), nullptr, nullptr, M, C, static_cast<double*>(ptr(part)), d, s);
    check(cudaGetLastError(), "batch_norm (sums)");
    launch::bn_train_finish(dptr(part), launch::bn_parts(M), ptr(x), d, ptr(gamma), ptr(beta), M, C, eps,
                            static_cast<double*>(ptr(coef)), ptr(mean), ptr(invstd), ptr(var), s);
    check(cudaGetLastError(), "batch_norm (statistics)");
    launch::channel_affine(ptr(x), dptr(coef), dptr(coef) + C, ptr(y), M, C, d, s);
    check(cudaGetLastError(), "batch_norm");
  }
  finish_target(mean, mean_out);
  finish_target(invstd, invstd_out);
  finish_target(var, var_out);
}

void bn_backward(KernelContext& k) {
  const Tensor &dx = k.output(0), &dgamma_out = k.output(1), &dbeta_out = k.output(2);
  launch::Dt d = float_dt(dx.dtype(), "batch_norm_backward");
  no_grad guard;
  Tensor x = k.input(1).contiguous();
  int64_t C = x.shape().back(), M = C == 0 ? 0 : x.numel() / C;
  if (C == 0) return;
  Tensor g = input_as(k, 0, x.dtype()).contiguous();
  const DType sd = detail::norm_stat_dtype(x.dtype());
  Tensor mean = input_as(k, 2, sd).contiguous(), invstd = input_as(k, 3, sd).contiguous(),
         gamma = input_as(k, 4, sd).contiguous();
  Tensor dgamma = as_target(dgamma_out, sd), dbeta = as_target(dbeta_out, sd);
  Device dev = dx.device();
  Tensor part = partials(M, C, dev);
  Tensor coef = detail::scratch_empty({3 * C}, DType::f64, dev);  // dx = g a + x b + d
  {
    DeviceGuard dg(dev.index);
    cudaStream_t s = stream(dev.index);
    launch::bn_partial_sums(ptr(x), ptr(g), ptr(mean), M, C, static_cast<double*>(ptr(part)), d, s);
    check(cudaGetLastError(), "batch_norm_backward (sums)");
    launch::bn_backward_finish(dptr(part), launch::bn_parts(M), ptr(mean), ptr(invstd), ptr(gamma), M, C, dt(sd),
                               static_cast<double*>(ptr(coef)), ptr(dgamma), ptr(dbeta), s);
    check(cudaGetLastError(), "batch_norm_backward (coefficients)");
    const double* cp = dptr(coef);
    launch::channel_affine2(ptr(g), ptr(x), cp, cp + C, cp + 2 * C, ptr(dx), M, C, d, s);
    check(cudaGetLastError(), "batch_norm_backward");
  }
  finish_target(dgamma, dgamma_out);
  finish_target(dbeta, dbeta_out);
}

void bn_apply(KernelContext& k) {
  const Tensor& y = k.output();
  launch::Dt d = float_dt(y.dtype(), "batch_norm");
  no_grad guard;
  Tensor x = k.input(0).contiguous();
  int64_t C = x.shape().back(), M = C == 0 ? 0 : x.numel() / C;
  if (M == 0) return;
  Tensor scale = channel_vec(k, 1), shift = channel_vec(k, 2);
  int dev = y.device().index;
  DeviceGuard dg(dev);
  launch::channel_affine(ptr(x), dptr(scale), dptr(shift), ptr(y), M, C, d, stream(dev));
  check(cudaGetLastError(), "batch_norm");
}

// --- matmul_fused: the CUDA matmul kernel (cuBLAS), then bias + activation in one pass.

void matmul_fused_kernel(KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  // float32 only by the op's definition (as the CPU kernel); float64 would run too.
  GLIA_CHECK(out.dtype() == DType::f32 || out.dtype() == DType::f64, DTypeError,
             "matmul_fused: no CUDA kernel for dtype ", name(out.dtype()));
  launch::Dt d = dt(out.dtype());
  const auto& act = k.attr<std::string>("activation");
  bool approximate = k.attrs().get_or<bool>("approximate", false);
  launch::Act a = act.empty()        ? launch::Act::None
                  : act == "relu"    ? launch::Act::Relu
                  : act == "tanh"    ? launch::Act::Tanh
                  : act == "sigmoid" ? launch::Act::Sigmoid
                  : approximate      ? launch::Act::GeluTanh
                                     : launch::Act::Gelu;
  no_grad guard;
  const OpDef& mm = OpRegistry::instance().get("matmul");
  Tensor ins[2] = {k.input(0), k.input(1)};
  Tensor outs[1] = {out};
  Attrs none;
  KernelContext kc(mm, ins, outs, none);
  (*mm.kernel_for(DeviceType::CUDA))(kc);
  bool has_bias = k.num_inputs() > 2;
  if (!has_bias && a == launch::Act::None) return;
  Tensor bias = has_bias ? input_as(k, 2, out.dtype()).contiguous() : Tensor();
  int dev = out.device().index;
  DeviceGuard dg(dev);
  launch::bias_act(ptr(out), has_bias ? ptr(bias) : nullptr, out.numel(), out.shape().back(), a, d, stream(dev));
  check(cudaGetLastError(), "matmul_fused");
}

}  // namespace

GLIA_KERNEL(conv2d, CUDA, conv_forward_kernel);
GLIA_KERNEL(conv2d_bias, CUDA, conv_forward_kernel);
GLIA_KERNEL(conv2d_fused, CUDA, conv_forward_kernel);

GLIA_KERNEL(conv2d_input_grad, CUDA, [](KernelContext& k) {
  const Tensor& gx = k.output();
  const char* op = "conv2d_input_grad";
  float_dt(gx.dtype(), op);
  const Tensor &gy = k.input(0), &w = k.input(1);
  Geom g = make_geom(gx.shape(), w.shape(), gy.shape(), k.attrs());
  if (gx.numel() == 0) return;
  if (gy.numel() == 0 || g.O == 0) {
    fill(gx, 0);
    return;
  }
  no_grad guard;
  in_some_way(gx.dtype(), op, g, gx.device().index, false, [&](int way) {
    if (way == kGemm) {
      gemm_input_grad(g, gy, w, gx, op);
      return true;
    }
    const bool nhwc = way == kNhwc;
    Conv conv(g, gx.dtype(), nhwc, gx.device().index, op);
    if (!conv.maybe(Pass::BwdData)) return false;
    Tensor dy = conv_act(gy, nhwc), wf = conv_filter(w, nhwc);
    // cuDNN writes the gradient of the padded input; directly into gx when that is gx itself.
    bool direct = nhwc && !g.extra();
    Tensor full = direct
                      ? gx
                      : detail::scratch_empty(nhwc ? Shape{g.N, g.Hp(), g.Wp(), g.C} : Shape{g.N, g.C, g.Hp(), g.Wp()},
                                              gx.dtype(), gx.device());
    if (!conv.run(Pass::BwdData, nullptr, ptr(wf), ptr(dy), ptr(full))) return false;
    if (direct) return true;
    Tensor as_nhwc = nhwc ? full : full.permute({0, 2, 3, 1});
    copy_into(as_nhwc.slice(1, g.et(), g.et() + g.H).slice(2, g.el(), g.el() + g.W), gx);
    return true;
  });
});

GLIA_KERNEL(conv2d_weight_grad, CUDA, [](KernelContext& k) {
  const Tensor& gw = k.output();
  const char* op = "conv2d_weight_grad";
  float_dt(gw.dtype(), op);
  const Tensor &x = k.input(0), &gy = k.input(1);
  Geom g = make_geom(x.shape(), gw.shape(), gy.shape(), k.attrs());
  if (gw.numel() == 0) return;
  if (gy.numel() == 0) {
    fill(gw, 0);
    return;
  }
  no_grad guard;
  in_some_way(gw.dtype(), op, g, gw.device().index, true, [&](int way) {
    if (way == kDirect) return direct_weight_grad(g, x, gy, gw, op);
    if (way == kGemm) {
      gemm_weight_grad(g, x, gy, gw, op);
      return true;
    }
    const bool nhwc = way == kNhwc;
    Conv conv(g, gw.dtype(), nhwc, gw.device().index, op);
    if (!conv.maybe(Pass::BwdFilter)) return false;
    Tensor xin = conv_input(g, x, nhwc), dy = conv_act(gy, nhwc);
    Tensor dw = detail::scratch_empty(nhwc ? Shape{g.O, g.KH, g.KW, g.Cg} : Shape{g.O, g.Cg, g.KH, g.KW}, gw.dtype(),
                                      gw.device());
    if (!conv.run(Pass::BwdFilter, ptr(xin), nullptr, ptr(dy), ptr(dw))) return false;
    copy_into(nhwc ? dw.permute({1, 2, 3, 0}) : dw.permute({2, 3, 1, 0}), gw);
    return true;
  });
});

GLIA_KERNEL(max_pool2d, CUDA, max_forward);
GLIA_KERNEL(max_pool2d_backward, CUDA, max_route<false>);
GLIA_KERNEL(max_pool2d_gather, CUDA, max_route<true>);
GLIA_KERNEL(avg_pool2d, CUDA, avg_forward);
GLIA_KERNEL(avg_pool2d_backward, CUDA, avg_backward);

GLIA_KERNEL(batch_norm_train, CUDA, bn_train_forward);
GLIA_KERNEL(batch_norm_backward, CUDA, bn_backward);
GLIA_KERNEL(batch_norm_apply, CUDA, bn_apply);

GLIA_KERNEL(matmul_fused, CUDA, matmul_fused_kernel);

}  // namespace glia::cuda
