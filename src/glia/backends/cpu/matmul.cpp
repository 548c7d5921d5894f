// CPU matmul: oneDNN's sgemm for float32 (reading transposed views without
// a copy), a blocked loop for float64, float32 compute for 16-bit floats.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdlib>

#include "glia/backends/cpu/kernel_utils.h"

namespace glia::cpu {

int64_t serial_gemm_limit() {
  static const int64_t limit = [] {
    const char* e = std::getenv("GLIA_SERIAL_GEMM");
    return e ? std::atoll(e) : int64_t(1) << 23;
  }();
  return limit;
}

namespace {

/// How a 2-D matrix view (rows, cols, row stride, col stride) can be read by gemm.
struct MatView {
  bool ok = false;
  char trans = 'N';
  int64_t ld = 0;
};

MatView gemm_view(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if (cs == 1 && (rs >= std::max<int64_t>(cols, 1) || rows == 1)) return {true, 'N', std::max(rs, cols)};
  if (rs == 1 && (cs >= std::max<int64_t>(rows, 1) || cols == 1)) return {true, 'T', std::max(cs, rows)};
  return {};
}

/// Offsets (in elements) of each batch matrix of t, for the broadcast batch shape.
std::vector<int64_t> batch_offsets(const Tensor& t, const Shape& batch) {
  std::vector<int64_t> offs;
  int64_t nb = numel(batch);
  offs.reserve(static_cast<size_t>(nb));
  size_t tb = static_cast<size_t>(t.dim()) - 2, lead = batch.size() - tb;
  std::vector<int64_t> idx(batch.size(), 0);
  for (int64_t k = 0; k < nb; ++k) {
    int64_t off = 0;
    for (size_t d = 0; d < tb; ++d)
      if (t.shape()[d] != 1) off += idx[d + lead] * t.strides()[d];
    offs.push_back(off);
    for (size_t d = batch.size(); d-- > 0;) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  return offs;
}

template <class T>
void gemm_naive(int64_t M, int64_t N, int64_t K, const T* A, int64_t ars, int64_t acs, const T* B, int64_t brs,
                int64_t bcs, T* C) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * N;
    for (int64_t j = 0; j < N; ++j) c[j] = T(0);
    for (int64_t k = 0; k < K; ++k) {
      T a = A[i * ars + k * acs];
      const T* b = B + k * brs;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j * bcs];
    }
  }
}

void matmul_f32(const Tensor& a, const Tensor& b, const Tensor& out) {
  const Shape& s = out.shape();
  int64_t M = s[s.size() - 2], N = s.back(), K = a.shape().back();
  Shape batch(s.begin(), s.end() - 2);
  int64_t nb = numel(batch);
  if (out.numel() == 0) return;
  if (K == 0) {
    out.zero_();
    return;
  }
  int64_t ars = a.strides()[a.dim() - 2], acs = a.strides()[a.dim() - 1];
  int64_t brs = b.strides()[b.dim() - 2], bcs = b.strides()[b.dim() - 1];
  MatView va = gemm_view(M, K, ars, acs), vb = gemm_view(K, N, brs, bcs);
  Tensor ac = a, bc = b;
  if (!va.ok) {
    ac = a.contiguous();
    va = {true, 'N', K};
  }
  if (!vb.ok) {
    bc = b.contiguous();
    vb = {true, 'N', N};
  }
  const float* A = static_cast<const float*>(ac.data_ptr());
  const float* B = static_cast<const float*>(bc.data_ptr());
  float* C = static_cast<float*>(out.data_ptr());
  auto ao = batch_offsets(ac, batch), bo = batch_offsets(bc, batch);
  auto one = [&](int64_t k) {
    dnnl_sgemm(va.trans, vb.trans, M, N, K, 1.0f, A + ao[static_cast<size_t>(k)], va.ld, B + bo[static_cast<size_t>(k)],
               vb.ld, 0.0f, C + k * M * N, N);
  };
  // Many small matrices: one per thread (sgemm runs single-threaded inside a parallel region),
  // but only when each thread gets real work: waking a team costs more than a tiny gemm.
  if (nb > 1 && M * N * K < (int64_t(1) << 21)) {
    parallel_for(nb, std::max<int64_t>(1, 65536 / (M * N * K)), [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) one(k);
    });
  } else {
    with_threads(M * N * K < serial_gemm_limit(), [&] {
      for (int64_t k = 0; k < nb; ++k) one(k);
    });
  }
}

}  // namespace

GLIA_KERNEL(matmul, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  const Tensor &a = k.input(0), &b = k.input(1);
  if (out.dtype() == DType::f32) {
    matmul_f32(a, b, out);
    return;
  }
  if (is_16bit(out.dtype())) {
    Tensor tmp = Tensor::empty(out.shape(), DType::f32);
    matmul_f32(as_dtype(a, DType::f32), as_dtype(b, DType::f32), tmp);
    cast_copy(tmp, out);
    return;
  }
  // float64: a plain blocked loop (used for gradient checks, not speed).
  const Shape& s = out.shape();
  int64_t M = s[s.size() - 2], N = s.back(), K = a.shape().back();
  Shape batch(s.begin(), s.end() - 2);
  auto ao = batch_offsets(a, batch), bo = batch_offsets(b, batch);
  const double* A = static_cast<const double*>(a.data_ptr());
  const double* B = static_cast<const double*>(b.data_ptr());
  double* C = static_cast<double*>(out.data_ptr());
  int64_t ars = a.strides()[a.dim() - 2], acs = a.strides()[a.dim() - 1];
  int64_t brs = b.strides()[b.dim() - 2], bcs = b.strides()[b.dim() - 1];
  int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(M * N * K, 1));
  parallel_for(numel(batch), grain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      gemm_naive(M, N, K, A + ao[static_cast<size_t>(i)], ars, acs, B + bo[static_cast<size_t>(i)], brs, bcs,
                 C + i * M * N);
  });
});

}  // namespace glia::cpu
