// The interface between the host side of the CUDA reductions, softmax and layer norm
// (reduce_ops.cpp) and their kernels (reduce.cu): plain pointers and sizes only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "launch.h"

namespace glia::cuda::launch {

enum class RedOp : int { Sum, Prod, Max, Min, ArgMax, ArgMin };

/// Reduces the middle axis of x (contiguous, viewed as [outer, R, inner]) into `vals` (dtype out_dt,
/// [outer, inner]) and, for ArgMax / ArgMin, the first index of the extreme (NaN first) into `idx`
/// (`vals` may be null there). Sum / Prod: floats into the same dtype (16-bit also into F32),
/// integers and bool into I64; Max / Min / Arg: the input dtype. One warp per row for rows up to
/// 1024, a block per row beyond, and a coalesced column kernel when inner > 1. Deterministic.
/// Returns false for an unsupported (op, dtype) pair.
bool reduce(RedOp op, const void* x, Dt in_dt, void* vals, Dt out_dt, int64_t* idx, int64_t outer, int64_t R,
            int64_t inner, cudaStream_t s);

/// out[o] = sum_r (x[o, r] - mean_o)^2 / (R - correction) (NaN when that is <= 0), x contiguous
/// [outer, R], accumulated in double (two passes). dt: F32, F64, BF16, F16.
bool var_rows(const void* x, void* out, Dt dt, int64_t outer, int64_t R, int64_t correction, cudaStream_t s);

/// Softmax (or log-softmax) of x contiguous [outer, R, inner] over the middle axis, shifted by the
/// max (any NaN makes its group NaN). dt: F32, F64, BF16, F16.
bool softmax(const void* x, void* y, Dt dt, int64_t outer, int64_t R, int64_t inner, bool log, cudaStream_t s);

/// Layer norm of x contiguous [R, H] (dtype dt): y, and per row mean and rstd = 1/sqrt(var + eps).
/// gamma, beta [H], mean and rstd [R] are in the accumulation type (F64 for F64, F32 otherwise).
bool layer_norm_fwd(const void* x, const void* gamma, const void* beta, void* y, void* mean, void* rstd, Dt dt,
                    int64_t R, int64_t H, double eps, cudaStream_t s);

/// How many row chunks layer_norm_bwd splits dgamma / dbeta into: `partial` holds 2 * H * that doubles.
int64_t layer_norm_bwd_chunks(int64_t R);

/// The gradients of layer norm: g and x contiguous [R, H] of dtype dt; mean, rstd, gamma and the
/// outputs dgamma / dbeta in the accumulation type, dx in dt. R > 0.
bool layer_norm_bwd(const void* g, const void* x, const void* mean, const void* rstd, const void* gamma, void* dx,
                    double* partial, void* dgamma, void* dbeta, Dt dt, int64_t R, int64_t H, cudaStream_t s);

}  // namespace glia::cuda::launch
