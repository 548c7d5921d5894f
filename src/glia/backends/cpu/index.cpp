// CPU kernels of the indexing ops. Scatters are parallel only across
// positions that cannot collide, so they are deterministic without atomics.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "glia/backends/cpu/kernel_utils.h"
#include "glia/core/random.h"

namespace glia::cpu {
namespace {

/// `tmpl` with every "{index}" replaced by the bad index and every "{size}" by the size.
std::string index_message(std::string tmpl, int64_t index, int64_t size) {
  for (auto [key, val] : {std::pair<std::string, int64_t>{"{index}", index}, {"{size}", size}})
    for (size_t p = tmpl.find(key); p != std::string::npos; p = tmpl.find(key, p))
      tmpl.replace(p, key.size(), std::to_string(val));
  return tmpl;
}

/// Index values (contiguous, int64) after checking they lie in [0, size). An op called
/// for another function (cross_entropy's targets, embedding's ids) passes the error
/// message as the attribute "index_error", so that it speaks of labels or ids.
std::vector<int64_t> checked_indices(KernelContext& k, const Tensor& index, int64_t size, int64_t dim) {
  Tensor idx = as_dtype(index, DType::i64).contiguous();
  const int64_t* p = idx.data<int64_t>();
  std::vector<int64_t> v(p, p + idx.numel());
  for (int64_t i : v) {
    if (i >= 0 && i < size) [[likely]]
      continue;
    if (k.attrs().has("index_error")) throw ValueError(index_message(k.attr<std::string>("index_error"), i, size));
    throw ValueError(detail::str(k.name(), ": index ", i, " is out of range for dimension ", dim, " of size ", size));
  }
  return v;
}

/// The gather / scatter walk over the index shape S along `dim`: for every position of S,
/// calls f(at, into) with `at` the element offset of that position in operand A and `into`
/// the offset in operand B of the same position with dim replaced by the index value.
/// Positions that differ outside dim go to different threads, so scatters never race.
template <class F>
void walk_along(const Shape& S, int64_t dim, const std::vector<int64_t>& idx, const Shape& a_strides,
                const Shape& b_strides, F f) {
  auto d = static_cast<size_t>(dim);
  int64_t K = S[d];
  if (K == 0 || numel(S) == 0) return;
  int64_t outer = numel(S) / K;
  Shape idx_strides = contiguous_strides(S);
  parallel_for(outer, std::max<int64_t>(1, 8192 / K), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t rem = o, oi = 0, oa = 0, ob = 0;
      for (size_t q = S.size(); q-- > 0;) {
        if (q == d) continue;
        int64_t m = rem % S[q];
        rem /= S[q];
        oi += m * idx_strides[q];
        oa += m * a_strides[q];
        ob += m * b_strides[q];
      }
      for (int64_t k = 0; k < K; ++k)
        f(oa + k * a_strides[d], ob + idx[static_cast<size_t>(oi + k * idx_strides[d])] * b_strides[d]);
    }
  });
}

/// [outer, n, inner] sizes of a shape around dim.
void split3(const Shape& s, int64_t dim, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t q = 0; q < static_cast<int64_t>(s.size()); ++q) {
    if (q < dim) outer *= s[static_cast<size_t>(q)];
    if (q > dim) inner *= s[static_cast<size_t>(q)];
  }
}

}  // namespace

GLIA_KERNEL(gather, CPU, [](KernelContext& k) {
  const Tensor& x = k.input(0);
  const Tensor& out = k.output();
  int64_t dim = k.attr<int64_t>("dim");
  auto idx = checked_indices(k, k.input(1), x.shape()[static_cast<size_t>(dim)], dim);
  visit_dtype(out.dtype(), [&]<class T>() {
    const T* xp = static_cast<const T*>(x.data_ptr());
    T* op = static_cast<T*>(out.data_ptr());
    walk_along(out.shape(), dim, idx, contiguous_strides(out.shape()), x.strides(),
               [&](int64_t at, int64_t from) { op[at] = xp[from]; });
  });
});

GLIA_KERNEL(scatter_add, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  const Tensor& src = k.input(2);
  int64_t dim = k.attr<int64_t>("dim");
  cast_copy(k.input(0), out);
  auto idx = checked_indices(k, k.input(1), out.shape()[static_cast<size_t>(dim)], dim);
  visit_dtype(out.dtype(), [&]<class T>() {
    if constexpr (std::is_same_v<T, bool>) {
      throw DTypeError("scatter_add: not supported for bool tensors");
    } else {
      const T* sp = static_cast<const T*>(src.data_ptr());
      T* op = static_cast<T*>(out.data_ptr());
      walk_along(k.input(1).shape(), dim, idx, src.strides(), contiguous_strides(out.shape()),
                 [&](int64_t at, int64_t into) {
                   op[into] = static_cast<T>(static_cast<acc_t<T>>(op[into]) + static_cast<acc_t<T>>(sp[at]));
                 });
    }
  });
});

GLIA_KERNEL(index_select, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  if (out.numel() == 0) return;
  Tensor x = k.input(0).contiguous();
  int64_t dim = k.attr<int64_t>("dim");
  int64_t N = x.shape()[static_cast<size_t>(dim)];
  auto idx = checked_indices(k, k.input(1), N, dim);
  int64_t outer, inner;
  split3(x.shape(), dim, outer, inner);
  auto K = static_cast<int64_t>(idx.size());
  size_t row = static_cast<size_t>(inner) * x.itemsize();
  const char* xp = static_cast<const char*>(x.data_ptr());
  char* op = static_cast<char*>(out.data_ptr());
  parallel_for(outer * K, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      int64_t o = t / K, j = t % K;
      std::memcpy(op + static_cast<size_t>(t) * row,
                  xp + static_cast<size_t>(o * N + idx[static_cast<size_t>(j)]) * row, row);
    }
  });
});

GLIA_KERNEL(index_add, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  int64_t dim = k.attr<int64_t>("dim");
  cast_copy(k.input(0), out);
  int64_t N = out.shape()[static_cast<size_t>(dim)];
  auto idx = checked_indices(k, k.input(1), N, dim);
  Tensor src = k.input(2).contiguous();
  if (src.numel() == 0) return;
  int64_t outer, inner;
  split3(out.shape(), dim, outer, inner);
  auto K = static_cast<int64_t>(idx.size());
  // Tasks are (outer slice, column block): every task owns its columns, so repeated ids
  // add up in index order in one thread.
  constexpr int64_t kCols = 512;
  int64_t nblk = (inner + kCols - 1) / kCols;
  visit_dtype(out.dtype(), [&]<class T>() {
    if constexpr (std::is_same_v<T, bool>) {
      throw DTypeError("index_add: not supported for bool tensors");
    } else {
      const T* sp = static_cast<const T*>(src.data_ptr());
      T* op = static_cast<T*>(out.data_ptr());
      parallel_for(outer * nblk, std::max<int64_t>(1, 16384 / std::max<int64_t>(K * std::min(inner, kCols), 1)),
                   [&](int64_t b, int64_t e) {
                     for (int64_t t = b; t < e; ++t) {
                       int64_t o = t / nblk, j0 = (t % nblk) * kCols, j1 = std::min(inner, j0 + kCols);
                       for (int64_t j = 0; j < K; ++j) {
                         const T* s = sp + (o * K + j) * inner;
                         T* d = op + (o * N + idx[static_cast<size_t>(j)]) * inner;
                         for (int64_t c = j0; c < j1; ++c)
                           d[c] = static_cast<T>(static_cast<acc_t<T>>(d[c]) + static_cast<acc_t<T>>(s[c]));
                       }
                     }
                   });
    }
  });
});

GLIA_KERNEL(one_hot, CPU, [](KernelContext& k) {
  Tensor out = k.output();
  int64_t C = k.attr<int64_t>("num_classes");
  Tensor idx = as_dtype(k.input(0), DType::i64).contiguous();
  const int64_t* p = idx.data<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i)
    GLIA_CHECK(p[i] >= 0 && p[i] < C, ValueError, "one_hot: label ", p[i], " is out of range for ", C,
               " classes (labels must be in [0, ", C, "))");
  out.zero_();
  visit_dtype(out.dtype(), [&]<class T>() {
    T* o = static_cast<T*>(out.data_ptr());
    for (int64_t i = 0; i < idx.numel(); ++i) o[i * C + p[i]] = static_cast<T>(1);
  });
});

GLIA_KERNEL(dropout, CPU, [](KernelContext& k) {
  const Tensor& y = k.output(0);
  const Tensor& mask = k.output(1);
  Tensor x = k.input(0).contiguous();
  int64_t n = x.numel();
  double p = k.attr<double>("p");
  double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  // Element i keeps the draw of word i % 4 of block i / 4 (the same mask for any thread count);
  // it is dropped when the top 24 bits of that word, as a fraction of 2^24, are below p.
  auto draw = random::reserve(static_cast<uint64_t>((n + 3) / 4));
  const auto threshold = static_cast<uint32_t>(std::ceil(p * 16777216.0));
  bool* m = mask.data<bool>();
  visit_float(y.dtype(), "dropout", [&]<class T>() {
    using A = acc_t<T>;
    const T* xp = static_cast<const T*>(x.data_ptr());
    T* yp = static_cast<T*>(y.data_ptr());
    const auto s = static_cast<A>(scale);
    parallel_for(n, 32768, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e;) {
        auto blk = static_cast<uint64_t>(i / 4);
        std::array<uint32_t, 4> w = random::philox(draw.seed, 0, draw.offset + blk);
        int64_t end = std::min(e, static_cast<int64_t>(blk + 1) * 4);
        for (; i < end; ++i) {
          bool keep = (w[static_cast<size_t>(i & 3)] >> 8) >= threshold;
          m[i] = keep;
          // A multiply by 0 / 1 rather than a branch: masks are random, branches would mispredict.
          yp[i] = static_cast<T>(static_cast<A>(xp[i]) * (s * static_cast<A>(keep)));
        }
      }
    });
  });
});

}  // namespace glia::cpu
