// The interface between the host side and index.cu: indexing (gather / scatter), padding,
// triangles, image translation, Philox random draws, dropout and the fused optimizer updates.
// Plain types only, so nvcc never compiles glia's headers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "launch.h"

namespace glia::cuda::launch {

/// A walk over `size` (row-major) for gather / scatter. At each position, `a` is the element of the
/// walked operand and `b` the element of the indexed operand at the same position with the
/// coordinate along `dim` replaced by the index value, read from `index` at the position's offset
/// in i_stride (index_select / index_add: only i_stride[dim] is nonzero).
struct Walk {
  int ndim = 0;
  int dim = 0;
  int64_t numel = 0;
  int64_t dim_size = 0;  // size of the indexed operand along dim: indices outside [0, dim_size) are skipped
  int64_t size[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
  int64_t i_stride[kMaxDims] = {};
};

/// a[...] = b[..., index, ...] (a: the output; out-of-range indices give 0).
void gather(const Walk& w, void* a, const void* b, const int64_t* index, Dt dt, cudaStream_t s);
/// b[..., index, ...] += a[...] with atomics (a: the source): every dtype but bool (false), 16-bit
/// floats rounded once per add as on the CPU, in the order the atomics land.
bool scatter_add(const Walk& w, const void* a, void* b, const int64_t* index, Dt dt, cudaStream_t s);
/// out[i, c] = (labels[i] == c) for c < C.
void one_hot(const int64_t* labels, void* out, int64_t n, int64_t C, Dt dt, cudaStream_t s);

/// Padding modes, as the CPU kernel's strings.
enum PadMode : int { PadConstant, PadReplicate, PadReflect };

struct PadArgs {
  int ndim = 0;
  int mode = PadConstant;
  int64_t numel = 0;  // of the output
  int64_t out_size[kMaxDims] = {};
  int64_t in_size[kMaxDims] = {};
  int64_t in_stride[kMaxDims] = {};
  int64_t before[kMaxDims] = {};
};
void pad(const PadArgs& a, void* out, const void* in, double value, Dt dt, cudaStream_t s);
/// One dim of pad's adjoint: out[o, i, c] = sum of g[o, j, c] over the padded positions j (of Lg)
/// that copy position i (of n). g and out contiguous. Every dtype (bool sums are ors, as on the CPU).
void pad_backward_dim(const void* g, void* out, int64_t outer, int64_t Lg, int64_t n, int64_t inner, int64_t before,
                      int mode, Dt dt, cudaStream_t s);

/// out = tril / triu of contiguous [batch, R, C] matrices.
void triangle(const void* in, void* out, int64_t batch, int64_t R, int64_t C, int64_t diag, bool lower, Dt dt,
              cudaStream_t s);

/// translate_images on contiguous NHWC images; mode: 0 reflect, 1 wrap, 2 nearest, 3 constant.
/// False unless dt is a floating dtype (as the random draws and dropout).
bool translate_images(const void* x, void* out, const float* dy, const float* dx, int64_t N, int64_t H, int64_t W,
                      int64_t C, int mode, bool bilinear, double fill, Dt dt, cudaStream_t s);

/// Where a random kernel's Philox stream starts: seed and counter, shifted by slot (when not null,
/// read on the device: seed = slot[0], counter = offset + slot[1]) for CUDA Graph replays.
struct Rng {
  uint64_t seed = 0;
  uint64_t offset = 0;
  const uint64_t* slot = nullptr;
};
bool random_uniform(void* out, int64_t n, double low, double high, Rng r, Dt dt, cudaStream_t s);
bool random_normal(void* out, int64_t n, double mean, double sd, Rng r, Dt dt, cudaStream_t s);
void random_int(void* out, int64_t n, int64_t low, uint64_t range, Rng r, Dt dt, cudaStream_t s);
/// y = x * mask * scale with mask[i] = (word i%4 of block i/4) >> 8 >= threshold (x, y contiguous).
bool dropout(const void* x, void* y, bool* mask, int64_t n, double scale, uint32_t threshold, Rng r, Dt dt,
             cudaStream_t s);

enum class OptRule : int { Sgd, Adam, Rmsprop, Adagrad };

/// One fused optimizer update over n contiguous elements (the CPU's optim::Args, plus the step
/// state and guard, which live on the device and are read there).
struct OptimArgs {
  void* w = nullptr;
  const void* g = nullptr;
  void* s[3] = {nullptr, nullptr, nullptr};
  int64_t n = 0;
  double lr = 0, grad_scale = 1, clipvalue = 0, weight_decay = 0;
  double momentum = 0;
  bool nesterov = false;
  double beta_1 = 0, beta_2 = 0;
  double rho = 0;
  double epsilon = 0;
  int64_t step = 0;
  const double* state = nullptr;  // [lr, iterations] replacing lr and step when not null
  const bool* guard = nullptr;    // when not null and false, nothing is updated
};
bool optim_update(OptRule rule, const OptimArgs& a, Dt dt, cudaStream_t s);

}  // namespace glia::cuda::launch
