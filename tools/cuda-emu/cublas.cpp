// CUDA emulator (tools/cuda-emu): cuBLAS on the CPU (see include/cublas_v2.h for what is emulated). Matrix products
// are naive loops with double sums; each call checks its arguments as cuBLAS does, then queues its work on the
// handle's stream with everything it needs copied into the closure (the call's arguments may be gone when it runs).
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "emu.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

// --- the product

using glia_emu::Elem;
using glia_emu::Round;

Elem elem(cudaDataType_t t) {
  return t == CUDA_R_64F ? Elem::F64 : t == CUDA_R_16F ? Elem::F16 : t == CUDA_R_16BF ? Elem::BF16 : Elem::F32;
}
double load(const void* p, cudaDataType_t t, int64_t i, Round r) { return glia_emu::load_elem(p, elem(t), i, r); }
void store(void* p, cudaDataType_t t, int64_t i, double v) { glia_emu::store_elem(p, elem(t), i, v); }

size_t type_size(cudaDataType_t t) { return t == CUDA_R_64F ? 8 : t == CUDA_R_16F || t == CUDA_R_16BF ? 2 : 4; }

/// A scalar (alpha, beta) of type 0 float, 1 double, 2 half.
double read_scalar(const void* p, int type) {
  return type == 1   ? *static_cast<const double*>(p)
         : type == 2 ? glia_emu::f16_bits_to_f32(*static_cast<const uint16_t*>(p))
                     : *static_cast<const float*>(p);
}

/// One strided batched product, with the scalars' values.
struct Gemm {
  bool ta, tb;
  int64_t m, n, k;
  const void *A, *B;
  void* C;
  cudaDataType_t at, bt, ct;
  int64_t lda, ldb, ldc, sa, sb, sc;
  int64_t batches;
  Round round;
  double alpha, beta;

  void operator()() const {
    std::vector<double> a, b;  // op(A) row-major m x k, op(B) column-major k x n: both with k contiguous
    bool have_a = false, have_b = false;
    for (int64_t i = 0; i < batches; ++i) {
      void* c = static_cast<char*>(C) + i * sc * static_cast<int64_t>(type_size(ct));
      if (alpha == 0 || k == 0) {  // C = beta C, A and B unread (as BLAS)
        for (int64_t col = 0; col < n; ++col)
          for (int64_t row = 0; row < m; ++row) {
            int64_t ci = row + col * ldc;
            store(c, ct, ci, beta == 0 ? 0.0 : beta * load(c, ct, ci, Round::None));
          }
        continue;
      }
      if (!have_a || sa != 0) {
        const void* ap = static_cast<const char*>(A) + i * sa * static_cast<int64_t>(type_size(at));
        a.resize(static_cast<size_t>(m * k));
        for (int64_t row = 0; row < m; ++row)
          for (int64_t l = 0; l < k; ++l)
            a[static_cast<size_t>(row * k + l)] = load(ap, at, ta ? l + row * lda : row + l * lda, round);
        have_a = true;
      }
      if (!have_b || sb != 0) {
        const void* bp = static_cast<const char*>(B) + i * sb * static_cast<int64_t>(type_size(bt));
        b.resize(static_cast<size_t>(k * n));
        for (int64_t col = 0; col < n; ++col)
          for (int64_t l = 0; l < k; ++l)
            b[static_cast<size_t>(col * k + l)] = load(bp, bt, tb ? col + l * ldb : l + col * ldb, round);
        have_b = true;
      }
      for (int64_t col = 0; col < n; ++col) {
        const double* bc = b.data() + col * k;
        for (int64_t row = 0; row < m; ++row) {
          const double* ar = a.data() + row * k;
          double s = 0;
          for (int64_t l = 0; l < k; ++l) s += ar[l] * bc[l];
          int64_t ci = row + col * ldc;
          store(c, ct, ci, beta == 0 ? alpha * s : alpha * s + beta * load(c, ct, ci, Round::None));
        }
      }
    }
  }
};

bool is_type(cudaDataType_t t) { return t == CUDA_R_32F || t == CUDA_R_64F || t == CUDA_R_16F || t == CUDA_R_16BF; }

/// The scalar type (0 float, 1 double, 2 half) of a supported combination of compute and data types, else -1.
int combination(cublasComputeType_t compute, cudaDataType_t at, cudaDataType_t bt, cudaDataType_t ct) {
  if (at != bt) return -1;
  switch (compute) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
      if (at == CUDA_R_32F) return ct == CUDA_R_32F ? 0 : -1;
      if (at == CUDA_R_16F || at == CUDA_R_16BF) return ct == at || ct == CUDA_R_32F ? 0 : -1;
      return -1;
    case CUBLAS_COMPUTE_32F_FAST_TF32:
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
      return at == CUDA_R_32F && ct == CUDA_R_32F ? 0 : -1;
    case CUBLAS_COMPUTE_64F:
    case CUBLAS_COMPUTE_64F_PEDANTIC:
      return at == CUDA_R_64F && ct == CUDA_R_64F ? 1 : -1;
    case CUBLAS_COMPUTE_16F:
    case CUBLAS_COMPUTE_16F_PEDANTIC:
      return at == CUDA_R_16F && ct == CUDA_R_16F ? 2 : -1;
    default:
      return -1;
  }
}

bool is_compute_type(cublasComputeType_t c) {
  switch (c) {
    case CUBLAS_COMPUTE_16F:
    case CUBLAS_COMPUTE_16F_PEDANTIC:
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32:
    case CUBLAS_COMPUTE_64F:
    case CUBLAS_COMPUTE_64F_PEDANTIC:
    case CUBLAS_COMPUTE_32I:
    case CUBLAS_COMPUTE_32I_PEDANTIC:
      return true;
  }
  return false;
}

bool is_algo(cublasGemmAlgo_t a) {
  return (a >= CUBLAS_GEMM_DEFAULT && a <= CUBLAS_GEMM_ALGO23) ||
         (a >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && a <= CUBLAS_GEMM_ALGO15_TENSOR_OP);
}

bool is_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

cublasStatus_t fail(cublasStatus_t st, const char* what) {
  std::fprintf(stderr, "CUDA emulator: cublasGemmStridedBatchedEx: %s\n", what);
  return st;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value) {
  if (!value) return CUBLAS_STATUS_INVALID_VALUE;
  switch (type) {
    case MAJOR_VERSION:
      *value = CUBLAS_VER_MAJOR;
      return CUBLAS_STATUS_SUCCESS;
    case MINOR_VERSION:
      *value = CUBLAS_VER_MINOR;
      return CUBLAS_STATUS_SUCCESS;
    case PATCH_LEVEL:
      *value = CUBLAS_VER_PATCH;
      return CUBLAS_STATUS_SUCCESS;
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "error detected trying to check the license";
  }
  return "unknown error";
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (workspace && workspaceSizeInBytes > 0 && !glia_emu::is_device_pointer(workspace)) {
    std::fprintf(stderr, "CUDA emulator: cublasSetWorkspace: the workspace %p is not device memory\n", workspace);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  if (base < CUBLAS_DEFAULT_MATH || base > CUBLAS_TF32_TENSOR_OP_MATH) return CUBLAS_STATUS_INVALID_VALUE;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void* alpha, const void* A, cudaDataType_t Atype,
                                          int lda, long long int strideA, const void* B, cudaDataType_t Btype, int ldb,
                                          long long int strideB, const void* beta, void* C, cudaDataType_t Ctype,
                                          int ldc, long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  // Arguments, as cuBLAS checks them.
  if (m < 0 || n < 0 || k < 0 || batchCount < 0 || !is_op(transa) || !is_op(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;  // real types: C is T
  if (lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  if (!is_type(Atype) || !is_type(Btype) || !is_type(Ctype) || !is_compute_type(computeType) || !is_algo(algo))
    return CUBLAS_STATUS_INVALID_VALUE;
  const int scalar = combination(computeType, Atype, Btype, Ctype);
  if (scalar < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;

  Gemm g{};
  g.ta = ta, g.tb = tb, g.m = m, g.n = n, g.k = k, g.A = A, g.B = B, g.C = C;
  g.at = Atype, g.bt = Btype, g.ct = Ctype, g.lda = lda, g.ldb = ldb, g.ldc = ldc;
  g.sa = strideA, g.sb = strideB, g.sc = strideC, g.batches = batchCount;
  if (glia_emu::is_device_pointer(alpha) || glia_emu::is_device_pointer(beta))
    return fail(CUBLAS_STATUS_INVALID_VALUE, "alpha / beta are device memory (host pointer mode)");
  g.alpha = read_scalar(alpha, scalar), g.beta = read_scalar(beta, scalar);
  // TF32 (or 16-bit) inputs where the compute type or the handle's math mode asks for them.
  const int math = handle->math & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  if (Atype == CUDA_R_32F) {
    g.round =
        computeType == CUBLAS_COMPUTE_32F_FAST_TF32  ? Round::Tf32
        : computeType == CUBLAS_COMPUTE_32F_FAST_16F ? Round::Half
        : computeType == CUBLAS_COMPUTE_32F_FAST_16BF
            ? Round::Bf16
            : (computeType == CUBLAS_COMPUTE_32F && math == CUBLAS_TF32_TENSOR_OP_MATH ? Round::Tf32 : Round::None);
  }

  // Memory, as the GPU would touch it: C always (beta == 0 writes it), A and B unless alpha or k is 0.
  if (!glia_emu::is_device_pointer(C)) return fail(CUBLAS_STATUS_EXECUTION_FAILED, "C is not device memory");
  if (k > 0 && g.alpha != 0) {
    if (!glia_emu::is_device_pointer(A)) return fail(CUBLAS_STATUS_EXECUTION_FAILED, "A is not device memory");
    if (!glia_emu::is_device_pointer(B)) return fail(CUBLAS_STATUS_EXECUTION_FAILED, "B is not device memory");
  }
  // Batches of C that overlap would race on the GPU.
  const long long c_span = static_cast<long long>(n - 1) * ldc + m;
  if (batchCount > 1 && (strideC < 0 ? -strideC : strideC) < c_span)
    return fail(CUBLAS_STATUS_INVALID_VALUE, "the batches of C overlap (|strideC| < (n - 1) * ldc + m)");

  glia_emu::enqueue(handle->stream, [g] { g(); });
  return CUBLAS_STATUS_SUCCESS;
}
