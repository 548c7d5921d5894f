// CUDA emulator (tools/cuda-emu): cuDNN's legacy convolution API on the CPU (see include/cudnn.h for what is
// emulated). Each call checks its descriptors as cuDNN does, then queues its work on the handle's stream with the
// geometry, pointers and scalars copied into the closure (descriptors may be destroyed before the work runs). The
// convolutions are naive loops over operands converted to double, in N, C, H, W order, with double sums.
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "emu.h"

namespace {

/// A tensor's (n, c, h, w) or a filter's (k, c per group, r, s) descriptor, packed: NCHW / KCRS or NHWC / KRSC.
struct Desc4d {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int64_t dim[4] = {0, 0, 0, 0};
};

}  // namespace

struct cudnnContext {
  cudaStream_t stream = nullptr;
};

struct cudnnTensorStruct : Desc4d {};
struct cudnnFilterStruct : Desc4d {};

struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CONVOLUTION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  int groups = 1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

// --- data

bool is_float_type(cudnnDataType_t t) {
  return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
}

bool is_data_type(cudnnDataType_t t) { return t >= CUDNN_DATA_FLOAT && t <= CUDNN_DATA_FP4_E2M1; }

int64_t elem_size(cudnnDataType_t t) {
  return t == CUDNN_DATA_DOUBLE ? 8 : t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16 ? 2 : 4;
}

glia_emu::Elem elem(cudnnDataType_t t) {
  using glia_emu::Elem;
  return t == CUDNN_DATA_DOUBLE     ? Elem::F64
         : t == CUDNN_DATA_HALF     ? Elem::F16
         : t == CUDNN_DATA_BFLOAT16 ? Elem::BF16
                                    : Elem::F32;
}
double load(const void* p, cudnnDataType_t t, int64_t i, bool tf32) {
  return glia_emu::load_elem(p, elem(t), i, tf32 ? glia_emu::Round::Tf32 : glia_emu::Round::None);
}
void store(void* p, cudnnDataType_t t, int64_t i, double v) { glia_emu::store_elem(p, elem(t), i, v); }

/// A 4-d operand in memory: dims (n, c, h, w) or (k, c, r, s) and their strides in elements.
struct View {
  int64_t dim[4];
  int64_t stride[4];
  int64_t offset(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return a * stride[0] + b * stride[1] + c * stride[2] + d * stride[3];
  }
  /// One past the largest element offset.
  int64_t extent() const {
    int64_t e = 1;
    for (int i = 0; i < 4; ++i) e += (dim[i] - 1) * stride[i];
    return e;
  }
};

/// The operand as doubles in a, b, c, d order (flipping the last two dims when `flip`).
std::vector<double> gather(const void* p, cudnnDataType_t t, const View& v, bool tf32, bool flip = false) {
  std::vector<double> out(static_cast<size_t>(v.dim[0] * v.dim[1] * v.dim[2] * v.dim[3]));
  size_t i = 0;
  for (int64_t a = 0; a < v.dim[0]; ++a)
    for (int64_t b = 0; b < v.dim[1]; ++b)
      for (int64_t c = 0; c < v.dim[2]; ++c)
        for (int64_t d = 0; d < v.dim[3]; ++d) {
          int64_t cc = flip ? v.dim[2] - 1 - c : c, dd = flip ? v.dim[3] - 1 - d : d;
          out[i++] = load(p, t, v.offset(a, b, cc, dd), tf32);
        }
  return out;
}

/// out = alpha acc + beta out over the operand (acc in a, b, c, d order, flipped as gather); beta == 0: out unread.
void scatter(void* p, cudnnDataType_t t, const View& v, const std::vector<double>& acc, double alpha, double beta,
             bool flip = false) {
  size_t i = 0;
  for (int64_t a = 0; a < v.dim[0]; ++a)
    for (int64_t b = 0; b < v.dim[1]; ++b)
      for (int64_t c = 0; c < v.dim[2]; ++c)
        for (int64_t d = 0; d < v.dim[3]; ++d) {
          int64_t cc = flip ? v.dim[2] - 1 - c : c, dd = flip ? v.dim[3] - 1 - d : d;
          int64_t o = v.offset(a, b, cc, dd);
          double r = alpha * acc[i++];
          store(p, t, o, beta == 0 ? r : r + beta * load(p, t, o, false));
        }
}

// --- geometry

enum class Pass { Fwd, BwdData, BwdFilter };

/// One convolution's sizes and layouts, checked: x [N, C, H, W], w [K, C / G, R, S], y [N, K, P, Q].
struct Geom {
  int64_t N, C, H, W, K, Cg, Kg, R, S, P, Q, G, ph, pw, u, v, dh, dw;
  bool flip;  // CUDNN_CONVOLUTION: the filter is flipped
  bool nhwc;  // an operand in NHWC
  cudnnDataType_t type;
  View x, w, y;
};

View view(const Desc4d* d) {
  View v{};
  for (int i = 0; i < 4; ++i) v.dim[i] = d->dim[i];
  const int64_t c = d->dim[1], h = d->dim[2], w = d->dim[3];
  if (d->format == CUDNN_TENSOR_NHWC) {
    v.stride[0] = h * w * c, v.stride[1] = 1, v.stride[2] = w * c, v.stride[3] = c;
  } else {
    v.stride[0] = c * h * w, v.stride[1] = h * w, v.stride[2] = w, v.stride[3] = 1;
  }
  return v;
}

/// The output size of one spatial dim, or -1 when the dilated filter is wider than the padded input.
int64_t out_size(int64_t in, int64_t pad, int64_t k, int64_t dil, int64_t stride) {
  const int64_t span = dil * (k - 1) + 1;
  if (in + 2 * pad < span) return -1;
  return (in + 2 * pad - span) / stride + 1;
}

cudnnStatus_t geometry(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv,
                       const cudnnTensorStruct* y, Geom* g) {
  if (!x || !w || !conv || !y || !x->set || !w->set || !conv->set || !y->set) return CUDNN_STATUS_BAD_PARAM;
  if (x->type != w->type || x->type != y->type) return CUDNN_STATUS_BAD_PARAM;
  const cudnnDataType_t t = x->type;
  if (!is_float_type(t)) return CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE;
  const cudnnDataType_t c = conv->compute;
  bool ok_compute = t == CUDNN_DATA_DOUBLE ? c == CUDNN_DATA_DOUBLE
                    : t == CUDNN_DATA_HALF ? c == CUDNN_DATA_HALF || c == CUDNN_DATA_FLOAT
                                           : c == CUDNN_DATA_FLOAT;
  if (!ok_compute) return CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE;
  g->N = x->dim[0], g->C = x->dim[1], g->H = x->dim[2], g->W = x->dim[3];
  g->K = w->dim[0], g->Cg = w->dim[1], g->R = w->dim[2], g->S = w->dim[3];
  g->G = conv->groups, g->ph = conv->pad_h, g->pw = conv->pad_w, g->u = conv->u, g->v = conv->v;
  g->dh = conv->dil_h, g->dw = conv->dil_w, g->flip = conv->mode == CUDNN_CONVOLUTION, g->type = t;
  if (g->C != g->G * g->Cg || g->K % g->G != 0) return CUDNN_STATUS_BAD_PARAM;
  g->Kg = g->K / g->G;
  g->P = out_size(g->H, g->ph, g->R, g->dh, g->u);
  g->Q = out_size(g->W, g->pw, g->S, g->dw, g->v);
  if (g->P <= 0 || g->Q <= 0) return CUDNN_STATUS_BAD_PARAM;
  if (y->dim[0] != g->N || y->dim[1] != g->K || y->dim[2] != g->P || y->dim[3] != g->Q) return CUDNN_STATUS_BAD_PARAM;
  g->x = view(x), g->y = view(y), g->w = view(w);
  g->nhwc = x->format == CUDNN_TENSOR_NHWC || y->format == CUDNN_TENSOR_NHWC || w->format == CUDNN_TENSOR_NHWC;
  return CUDNN_STATUS_SUCCESS;
}

// --- algorithms

bool no_nhwc() {
  static const bool on = [] {
    const char* e = std::getenv("CUDA_EMU_CUDNN_NO_NHWC");
    return e && std::strcmp(e, "1") == 0;
  }();
  return on;
}

int algo_count(Pass p) {
  return p == Pass::Fwd       ? int{CUDNN_CONVOLUTION_FWD_ALGO_COUNT}
         : p == Pass::BwdData ? int{CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT}
                              : int{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT};
}

bool is_fft(Pass p, int a) {
  return p == Pass::Fwd ? a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING
         : p == Pass::BwdData
             ? a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING
             : a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING;
}

bool is_winograd(Pass p, int a) {
  return p == Pass::Fwd ? a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED
         : p == Pass::BwdData
             ? a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED
             : a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

/// Whether algorithm a of pass p takes the geometry (as a status: the one its run would return).
cudnnStatus_t support(Pass p, int a, const Geom& g) {
  if (a < 0 || a >= algo_count(p)) return CUDNN_STATUS_BAD_PARAM;
  if (g.nhwc && no_nhwc()) return CUDNN_STATUS_NOT_SUPPORTED_LAYOUT;
  if ((p == Pass::Fwd && a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT) ||
      (p == Pass::BwdFilter && a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD))
    return CUDNN_STATUS_NOT_SUPPORTED;  // not implemented in cuDNN
  const bool unit = g.u == 1 && g.v == 1 && g.dh == 1 && g.dw == 1 && g.G == 1;
  if (is_fft(p, a)) {
    if (g.type == CUDNN_DATA_DOUBLE) return CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE;
    if (g.nhwc) return CUDNN_STATUS_NOT_SUPPORTED_LAYOUT;
    if (!unit) return CUDNN_STATUS_NOT_SUPPORTED_SHAPE;
  }
  if (is_winograd(p, a)) {
    if (g.type == CUDNN_DATA_DOUBLE) return CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE;
    if (!unit || g.R != 3 || g.S != 3) return CUDNN_STATUS_NOT_SUPPORTED_SHAPE;
  }
  return CUDNN_STATUS_SUCCESS;
}

size_t round_up(int64_t bytes) { return static_cast<size_t>((bytes + 255) / 256 * 256); }

/// The workspace of algorithm a (taking the geometry): zero for some, more for others (made-up sizes of the right
/// order, from the geometry alone, the same for every math type).
size_t workspace_bytes(Pass p, int a, const Geom& g) {
  const int64_t e = std::max<int64_t>(4, elem_size(g.type));  // transforms are in the compute type
  const int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw;
  if (is_fft(p, a)) {
    const bool tiling = p == Pass::Fwd       ? a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING
                        : p == Pass::BwdData ? a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING
                                             : a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING;
    const int64_t plane = tiling ? 32 * 32 : Hp * Wp;
    return round_up(2 * e * (g.N * g.C + g.K * g.Cg + g.N * g.K) * plane);
  }
  if (is_winograd(p, a)) {
    const bool fused = p == Pass::Fwd       ? a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD
                       : p == Pass::BwdData ? a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD
                                            : false;
    if (fused) return 0;
    const int64_t tiles = ((g.P + 1) / 2) * ((g.Q + 1) / 2);
    return round_up(16 * e * (g.K * g.Cg + (g.N * g.C + g.N * g.K) * tiles));
  }
  switch (p) {
    case Pass::Fwd:
      if (a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) return round_up(4 * g.Cg * g.R * g.S);
      if (a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM) return round_up(e * g.Cg * g.R * g.S * g.P * g.Q);
      return 0;
    case Pass::BwdData:
      return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 ? round_up(4 * g.Kg * g.R * g.S) : 0;
    case Pass::BwdFilter:
      if (a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1) return round_up(4 * g.Cg * g.R * g.S);
      if (a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3) return round_up(4 * e * g.K * g.Cg * g.R * g.S);
      return 0;
  }
  return 0;
}

/// One entry of the heuristics' list.
struct Entry {
  int algo;
  cudnnMathType_t math;
  bool det;
};

// The heuristics' lists (cuDNN's own order varies with the GPU and geometry): tensor-core and FMA variants,
// deterministic and not, with and without workspaces, some refused by some geometries.
constexpr Entry kFwd[] = {
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_TENSOR_OP_MATH, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_FMA_MATH, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, CUDNN_DEFAULT_MATH, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_DEFAULT_MATH, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_FMA_MATH, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_FMA_MATH, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING, CUDNN_DEFAULT_MATH, true},
    {CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, CUDNN_DEFAULT_MATH, true},
};
constexpr Entry kBwdData[] = {
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_TENSOR_OP_MATH, true},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_TENSOR_OP_MATH, false},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, CUDNN_DEFAULT_MATH, true},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_FMA_MATH, true},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, CUDNN_DEFAULT_MATH, true},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_FMA_MATH, false},
};
constexpr Entry kBwdFilter[] = {
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_TENSOR_OP_MATH, true},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_TENSOR_OP_MATH, false},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, CUDNN_FMA_MATH, false},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, CUDNN_DEFAULT_MATH, true},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_FMA_MATH, true},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED, CUDNN_DEFAULT_MATH, true},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_FMA_MATH, false},
};

/// Fills perf (successful entries first, then the refused ones with their status) and *returned.
template <class Perf, class Algo, size_t N>
cudnnStatus_t heuristics(Pass p, const Entry (&list)[N], const Geom& g, int requested, int* returned, Perf* perf) {
  if (requested < 1 || !returned || !perf) return CUDNN_STATUS_BAD_PARAM;
  std::vector<Perf> ok, refused;
  for (const Entry& e : list) {
    Perf r{};
    r.algo = static_cast<Algo>(e.algo);
    r.status = support(p, e.algo, g);
    if (r.status == CUDNN_STATUS_SUCCESS && e.math != CUDNN_FMA_MATH && e.math != CUDNN_DEFAULT_MATH &&
        g.type == CUDNN_DATA_DOUBLE)
      r.status = CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE;  // no tensor-core kernels for double
    r.time = -1.0f;
    r.memory = r.status == CUDNN_STATUS_SUCCESS ? workspace_bytes(p, e.algo, g) : 0;
    r.determinism = e.det ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
    r.mathType = e.math;
    (r.status == CUDNN_STATUS_SUCCESS ? ok : refused).push_back(r);
  }
  ok.insert(ok.end(), refused.begin(), refused.end());
  const int n = std::min(requested, static_cast<int>(ok.size()));
  for (int i = 0; i < n; ++i) perf[i] = ok[static_cast<size_t>(i)];
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t workspace_size(Pass p, int algo, const Geom& g, size_t* size) {
  if (!size) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = support(p, algo, g);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  *size = workspace_bytes(p, algo, g);
  return CUDNN_STATUS_SUCCESS;
}

// --- the convolutions

const char* pass_fn(Pass p) {
  return p == Pass::Fwd       ? "cudnnConvolutionForward"
         : p == Pass::BwdData ? "cudnnConvolutionBackwardData"
                              : "cudnnConvolutionBackwardFilter";
}

/// One queued pass: in0 / in1 are x and w (Fwd), w and dy (BwdData), x and dy (BwdFilter).
struct Work {
  Pass pass;
  Geom g;
  const void *in0, *in1;
  void* out;
  double alpha, beta;
  bool tf32;
  void* workspace;
  size_t workspace_bytes;

  void operator()() const {
    if (workspace_bytes > 0) std::memset(workspace, 0xff, workspace_bytes);  // cuDNN's scratch: NaN everywhere
    if (pass == Pass::Fwd) {
      std::vector<double> X = gather(in0, g.type, g.x, tf32), Wt = gather(in1, g.type, g.w, tf32, g.flip);
      scatter(out, g.type, g.y, forward(X, Wt), alpha, beta);
    } else if (pass == Pass::BwdData) {
      std::vector<double> Wt = gather(in0, g.type, g.w, tf32, g.flip), DY = gather(in1, g.type, g.y, tf32);
      scatter(out, g.type, g.x, backward_data(Wt, DY), alpha, beta);
    } else {
      std::vector<double> X = gather(in0, g.type, g.x, tf32), DY = gather(in1, g.type, g.y, tf32);
      scatter(out, g.type, g.w, backward_filter(X, DY), alpha, beta, g.flip);
    }
  }

  // Index helpers over the dense N, C, H, W (and K, Cg, R, S) copies.
  int64_t xi(int64_t n, int64_t c, int64_t h, int64_t w) const { return ((n * g.C + c) * g.H + h) * g.W + w; }
  int64_t wi(int64_t k, int64_t c, int64_t r, int64_t s) const { return ((k * g.Cg + c) * g.R + r) * g.S + s; }
  int64_t yi(int64_t n, int64_t k, int64_t p, int64_t q) const { return ((n * g.K + k) * g.P + p) * g.Q + q; }

  /// Calls f(x index, w index, y index) for every product of the convolution.
  template <class F>
  void each(F&& f) const {
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t k = 0; k < g.K; ++k) {
        const int64_t c0 = k / g.Kg * g.Cg;
        for (int64_t p = 0; p < g.P; ++p)
          for (int64_t q = 0; q < g.Q; ++q) {
            const int64_t y = yi(n, k, p, q);
            for (int64_t c = 0; c < g.Cg; ++c)
              for (int64_t r = 0; r < g.R; ++r) {
                const int64_t h = p * g.u - g.ph + r * g.dh;
                if (h < 0 || h >= g.H) continue;
                for (int64_t s = 0; s < g.S; ++s) {
                  const int64_t w = q * g.v - g.pw + s * g.dw;
                  if (w < 0 || w >= g.W) continue;
                  f(xi(n, c0 + c, h, w), wi(k, c, r, s), y);
                }
              }
          }
      }
  }

  std::vector<double> forward(const std::vector<double>& X, const std::vector<double>& Wt) const {
    std::vector<double> Y(static_cast<size_t>(g.N * g.K * g.P * g.Q), 0.0);
    each([&](int64_t x, int64_t w, int64_t y) { Y[size_t(y)] += X[size_t(x)] * Wt[size_t(w)]; });
    return Y;
  }

  std::vector<double> backward_data(const std::vector<double>& Wt, const std::vector<double>& DY) const {
    std::vector<double> DX(static_cast<size_t>(g.N * g.C * g.H * g.W), 0.0);
    each([&](int64_t x, int64_t w, int64_t y) { DX[size_t(x)] += DY[size_t(y)] * Wt[size_t(w)]; });
    return DX;
  }

  std::vector<double> backward_filter(const std::vector<double>& X, const std::vector<double>& DY) const {
    std::vector<double> DW(static_cast<size_t>(g.K * g.Cg * g.R * g.S), 0.0);
    each([&](int64_t x, int64_t w, int64_t y) { DW[size_t(w)] += X[size_t(x)] * DY[size_t(y)]; });
    return DW;
  }
};

cudnnStatus_t diagnose(Pass p, cudnnStatus_t st, const char* what) {
  std::fprintf(stderr, "CUDA emulator: %s: %s\n", pass_fn(p), what);
  return st;
}

bool overlap(const void* a, int64_t a_bytes, const void* b, int64_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + static_cast<uintptr_t>(b_bytes) &&
         pb < pa + static_cast<uintptr_t>(a_bytes);
}

/// Checks one pass's arguments as cuDNN does (and what the GPU would fault on), then queues it.
cudnnStatus_t convolve(Pass p, cudnnHandle_t handle, const void* alpha, const Geom& g, int algo,
                       const cudnnConvolutionStruct* conv, const void* in0, const View& v0, const void* in1,
                       const View& v1, void* out, const View& vo, void* workspace, size_t workspace_bytes_given,
                       const void* beta) {
  cudnnStatus_t st = support(p, algo, g);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  if (!alpha || !beta || !in0 || !in1 || !out) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
  const size_t need = workspace_bytes(p, algo, g);
  if (need > 0 && (!workspace || workspace_bytes_given < need)) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "algorithm %d needs a workspace of %zu bytes, given %zu at %p", algo, need,
                  workspace_bytes_given, workspace);
    return diagnose(p, CUDNN_STATUS_BAD_PARAM, msg);
  }
  const int64_t e = elem_size(g.type);
  for (const void* q : {in0, in1, static_cast<const void*>(out)})
    if (reinterpret_cast<uintptr_t>(q) % static_cast<uintptr_t>(e) != 0)
      return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
  if (!glia_emu::is_device_pointer(in0) || !glia_emu::is_device_pointer(in1) || !glia_emu::is_device_pointer(out))
    return diagnose(p, CUDNN_STATUS_EXECUTION_FAILED, "an operand is not device memory");
  if (need > 0 && !glia_emu::is_device_pointer(workspace))
    return diagnose(p, CUDNN_STATUS_EXECUTION_FAILED, "the workspace is not device memory");
  if (glia_emu::is_device_pointer(alpha) || glia_emu::is_device_pointer(beta))
    return diagnose(p, CUDNN_STATUS_EXECUTION_FAILED, "alpha / beta must be host memory");
  const int64_t out_bytes = vo.extent() * e;
  if (overlap(out, out_bytes, in0, v0.extent() * e) || overlap(out, out_bytes, in1, v1.extent() * e))
    return diagnose(p, CUDNN_STATUS_BAD_PARAM, "the output overlaps an input");
  const auto need_bytes = static_cast<int64_t>(need);
  if (overlap(workspace, need_bytes, out, out_bytes) || overlap(workspace, need_bytes, in0, v0.extent() * e) ||
      overlap(workspace, need_bytes, in1, v1.extent() * e))
    return diagnose(p, CUDNN_STATUS_BAD_PARAM, "the workspace overlaps an operand");

  Work work{};
  work.pass = p, work.g = g, work.in0 = in0, work.in1 = in1, work.out = out;
  const bool dbl = g.type == CUDNN_DATA_DOUBLE;  // scalars: double for double data, else float
  work.alpha = dbl ? *static_cast<const double*>(alpha) : *static_cast<const float*>(alpha);
  work.beta = dbl ? *static_cast<const double*>(beta) : *static_cast<const float*>(beta);
  work.tf32 = g.type == CUDNN_DATA_FLOAT && conv->math != CUDNN_FMA_MATH;
  work.workspace = workspace, work.workspace_bytes = need;
  glia_emu::enqueue(handle->stream, [work] { work(); });
  return CUDNN_STATUS_SUCCESS;
}

/// Sets a tensor or filter descriptor (dims positive, NCHW or NHWC, at most 2^31 elements, as cuDNN).
cudnnStatus_t set_4d(Desc4d* d, cudnnDataType_t type, cudnnTensorFormat_t format, int n, int c, int h, int w) {
  if (!d || !is_data_type(type) || n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  if (format == CUDNN_TENSOR_NCHW_VECT_C) return CUDNN_STATUS_NOT_SUPPORTED;
  if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC) return CUDNN_STATUS_BAD_PARAM;
  if (int64_t{n} * c * h * w > INT_MAX) return CUDNN_STATUS_NOT_SUPPORTED;
  d->set = true, d->type = type, d->format = format;
  d->dim[0] = n, d->dim[1] = c, d->dim[2] = h, d->dim[3] = w;
  return CUDNN_STATUS_SUCCESS;
}

template <class T>
cudnnStatus_t create(T** p) {
  if (!p) return CUDNN_STATUS_BAD_PARAM;
  *p = new T;
  return CUDNN_STATUS_SUCCESS;
}

template <class T>
cudnnStatus_t destroy(T* p) {
  delete p;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

// --- the library

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
#define GLIA_EMU_NAME(s) \
  case s:                \
    return #s;
    GLIA_EMU_NAME(CUDNN_STATUS_SUCCESS)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_INITIALIZED)
    GLIA_EMU_NAME(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
    GLIA_EMU_NAME(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
    GLIA_EMU_NAME(CUDNN_STATUS_DEPRECATED)
    GLIA_EMU_NAME(CUDNN_STATUS_LICENSE_ERROR)
    GLIA_EMU_NAME(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
    GLIA_EMU_NAME(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
    GLIA_EMU_NAME(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM)
    GLIA_EMU_NAME(CUDNN_STATUS_INVALID_VALUE)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
    GLIA_EMU_NAME(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
    GLIA_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
    GLIA_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR)
    GLIA_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
    GLIA_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
    GLIA_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
    GLIA_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
    GLIA_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
    GLIA_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
    GLIA_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED)
    GLIA_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
    GLIA_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
    GLIA_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
    GLIA_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
#undef GLIA_EMU_NAME
  }
  return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) { return create(handle); }

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  handle->stream = streamId;
  return CUDNN_STATUS_SUCCESS;
}

// --- descriptors

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* tensorDesc) { return create(tensorDesc); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) { return destroy(tensorDesc); }
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* filterDesc) { return create(filterDesc); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) { return destroy(filterDesc); }
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* convDesc) { return create(convDesc); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) { return destroy(convDesc); }

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
  return set_4d(tensorDesc, dataType, format, n, c, h, w);
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  return set_4d(filterDesc, dataType, format, k, c, h, w);
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u, int v,
                                              int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
  if (!convDesc || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0 ||
      (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) || !is_data_type(computeType))
    return CUDNN_STATUS_BAD_PARAM;
  cudnnConvolutionStruct& c = *convDesc;
  c.set = true, c.pad_h = pad_h, c.pad_w = pad_w, c.u = u, c.v = v, c.dil_h = dilation_h, c.dil_w = dilation_w;
  c.mode = mode, c.compute = computeType;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount) {
  if (!convDesc || groupCount < 1) return CUDNN_STATUS_BAD_PARAM;
  convDesc->groups = groupCount;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType) {
  if (!convDesc || mathType < CUDNN_DEFAULT_MATH || mathType > CUDNN_FMA_MATH) return CUDNN_STATUS_BAD_PARAM;
  convDesc->math = mathType;
  return CUDNN_STATUS_SUCCESS;
}

// --- algorithms

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount, int* returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(srcDesc, filterDesc, convDesc, destDesc, &g);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return heuristics<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(Pass::Fwd, kFwd, g, requestedAlgoCount,
                                                                              returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc, const cudnnTensorDescriptor_t diffDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount,
    int* returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t* perfResults) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(gradDesc, filterDesc, convDesc, diffDesc, &g);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return heuristics<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
      Pass::BwdData, kBwdData, g, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                            const cudnnTensorDescriptor_t diffDesc,
                                                            const cudnnConvolutionDescriptor_t convDesc,
                                                            const cudnnFilterDescriptor_t gradDesc,
                                                            const int requestedAlgoCount, int* returnedAlgoCount,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perfResults) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(srcDesc, gradDesc, convDesc, diffDesc, &g);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return heuristics<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      Pass::BwdFilter, kBwdFilter, g, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t* sizeInBytes) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(xDesc, wDesc, convDesc, yDesc, &g);
  return st != CUDNN_STATUS_SUCCESS ? st : workspace_size(Pass::Fwd, algo, g, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                           const cudnnTensorDescriptor_t dyDesc,
                                                           const cudnnConvolutionDescriptor_t convDesc,
                                                           const cudnnTensorDescriptor_t dxDesc,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* sizeInBytes) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(dxDesc, wDesc, convDesc, dyDesc, &g);
  return st != CUDNN_STATUS_SUCCESS ? st : workspace_size(Pass::BwdData, algo, g, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                             const cudnnTensorDescriptor_t dyDesc,
                                                             const cudnnConvolutionDescriptor_t convDesc,
                                                             const cudnnFilterDescriptor_t gradDesc,
                                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                                             size_t* sizeInBytes) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(xDesc, gradDesc, convDesc, dyDesc, &g);
  return st != CUDNN_STATUS_SUCCESS ? st : workspace_size(Pass::BwdFilter, algo, g, sizeInBytes);
}

// --- convolutions

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void* x, const cudnnFilterDescriptor_t wDesc, const void* w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void* workSpace, size_t workSpaceSizeInBytes, const void* beta,
                                      const cudnnTensorDescriptor_t yDesc, void* y) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(xDesc, wDesc, convDesc, yDesc, &g);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return convolve(Pass::Fwd, handle, alpha, g, algo, convDesc, x, g.x, w, g.w, y, g.y, workSpace, workSpaceSizeInBytes,
                  beta);
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha, const cudnnFilterDescriptor_t wDesc,
                                           const void* w, const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                                           size_t workSpaceSizeInBytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxDesc, void* dx) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(dxDesc, wDesc, convDesc, dyDesc, &g);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return convolve(Pass::BwdData, handle, alpha, g, algo, convDesc, w, g.w, dy, g.y, dx, g.x, workSpace,
                  workSpaceSizeInBytes, beta);
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void* x,
                                             const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* workSpace,
                                             size_t workSpaceSizeInBytes, const void* beta,
                                             const cudnnFilterDescriptor_t dwDesc, void* dw) {
  if (!handle) return CUDNN_STATUS_BAD_PARAM;
  Geom g{};
  cudnnStatus_t st = geometry(xDesc, dwDesc, convDesc, dyDesc, &g);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  return convolve(Pass::BwdFilter, handle, alpha, g, algo, convDesc, x, g.x, dy, g.y, dw, g.w, workSpace,
                  workSpaceSizeInBytes, beta);
}
