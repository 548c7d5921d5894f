// Movement ops: views and copies against index-mapping references, on views of
// views, size-1, empty and 0-d tensors; gradients; errors.
#include <numeric>
#include <optional>

#include "ops/op_testing.h"

using namespace glia;
using namespace glia::testing;

namespace {

using Idx = std::vector<int64_t>;
/// Maps an output index to the input index it reads (nullopt: a padding value).
using SrcFn = std::function<std::optional<Idx>(const Idx&)>;

/// Checks y element by element against x read through `src` (exactly: movement does not round).
::testing::AssertionResult maps(const Tensor& y, const Tensor& x, const Idx& shape, const SrcFn& src,
                                double fill = 0.0) {
  if (vshape(y) != shape)
    return ::testing::AssertionFailure() << "shape " << to_string(y.shape()) << ", expected "
                                         << to_string(IntList(shape));
  std::vector<double> want;
  for_each_index(IntList(shape), [&](const Idx& o) {
    auto i = src(o);
    want.push_back(i ? at_broadcast(x, *i) : fill);
  });
  return near(read(y), want, 0, 0);
}

/// Row-major flat position of idx in shape, and back.
int64_t flat_of(const Idx& idx, const Idx& shape) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}
Idx idx_of(int64_t f, const Idx& shape) {
  Idx idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = f % shape[d];
    f /= shape[d];
  }
  return idx;
}

std::vector<Tensor> leaf(const Tensor& t) { return {t.detach().requires_grad_(true)}; }

}  // namespace

// --- views

TEST(ShapeOps, ReshapeAndView) {
  manual_seed(40);
  for (Layout l : kLayouts) {
    Tensor x = make_input({2, 3, 4}, l);
    for (auto& target : {Idx{24}, Idx{4, 6}, Idx{2, 12}, Idx{3, 1, 8}, Idx{2, 3, 2, 2}, Idx{-1, 4}, Idx{6, -1}}) {
      Tensor y = x.reshape(IntList(target));
      Idx shape = target;
      for (auto& s : shape)
        if (s == -1) s = 24 / -std::accumulate(target.begin(), target.end(), int64_t(1), std::multiplies<>());
      EXPECT_TRUE(maps(y, x, shape,
                       [&](const Idx& o) {
                         return idx_of(flat_of(o, shape), {2, 3, 4});
                       }))
          << layout_name(l) << " -> " << to_string(IntList(target));
      if (l == Layout::Contiguous) {
        EXPECT_EQ(y.storage(), x.storage());  // a view, no copy
        EXPECT_TRUE(maps(x.view(IntList(target)), x, shape, [&](const Idx& o) {
          return idx_of(flat_of(o, shape), {2, 3, 4});
        }));
      }
    }
  }
  // A permuted tensor can still be viewed where the merged dims stay contiguous.
  Tensor base = make_input({4, 6}, Layout::Contiguous);
  Tensor p = base.t();           // [6, 4], strides (1, 6)
  Tensor v = p.view({3, 2, 4});  // splits the stride-1 dim: no copy
  EXPECT_EQ(v.storage(), base.storage());
  EXPECT_TRUE(maps(v, p, {3, 2, 4}, [](const Idx& o) { return Idx{o[0] * 2 + o[1], o[2]}; }));
  EXPECT_THROW(p.view({24}), ShapeError);
  EXPECT_NE(p.reshape({24}).storage(), base.storage());  // copies instead
  // Size-1, empty and 0-d.
  Tensor s = full({}, 3.5);
  EXPECT_EQ(s.reshape({1, 1}).shape(), (Shape{1, 1}));
  EXPECT_EQ(s.reshape({1}).reshape({}).item<float>(), 3.5f);
  Tensor e = zeros({0, 4});
  EXPECT_EQ(e.reshape({4, 0, 2}).shape(), (Shape{4, 0, 2}));
  EXPECT_EQ(e.reshape({-1, 2}).shape(), (Shape{0, 2}));
  EXPECT_THROW(e.reshape({-1, 0}), ShapeError);  // -1 is ambiguous
  EXPECT_THROW(base.reshape({5, 5}), ShapeError);
  EXPECT_THROW(base.reshape({-1, -1}), ShapeError);
  EXPECT_THROW(base.reshape({-2, 12}), ShapeError);
}

TEST(ShapeOps, PermuteAndTranspose) {
  manual_seed(41);
  for (Layout l : kLayouts) {
    Tensor x = make_input({2, 3, 4}, l);
    for (auto& perm : {Idx{0, 1, 2}, Idx{2, 0, 1}, Idx{1, 2, 0}, Idx{2, 1, 0}, Idx{-1, 0, 1}}) {
      Tensor y = x.permute(IntList(perm));
      Idx p = perm;
      for (auto& d : p) d = d < 0 ? d + 3 : d;
      Idx shape = {x.size(p[0]), x.size(p[1]), x.size(p[2])};
      EXPECT_TRUE(maps(y, x, shape,
                       [&](const Idx& o) {
                         Idx i(3);
                         for (size_t k = 0; k < 3; ++k) i[static_cast<size_t>(p[k])] = o[k];
                         return i;
                       }))
          << to_string(IntList(perm)) << " " << layout_name(l);
      EXPECT_EQ(y.storage(), x.storage());
    }
    Tensor t = x.transpose(0, -1);
    EXPECT_TRUE(maps(t, x, {4, 3, 2}, [](const Idx& o) { return Idx{o[2], o[1], o[0]}; }));
    EXPECT_TRUE(maps(glia::transpose(x, 1, 2), x, {2, 4, 3}, [](const Idx& o) { return Idx{o[0], o[2], o[1]}; }));
  }
  Tensor m = make_input({3, 5}, Layout::Strided);
  EXPECT_TRUE(maps(m.t(), m, {5, 3}, [](const Idx& o) { return Idx{o[1], o[0]}; }));
  EXPECT_EQ(full({}, 1.0).permute({}).dim(), 0);
  EXPECT_EQ(ones({4}).t().shape(), (Shape{4}));
  EXPECT_THROW(m.permute({0}), ShapeError);
  EXPECT_THROW(m.permute({0, 0}), ValueError);
  EXPECT_THROW(m.permute({0, 2}), ValueError);
  EXPECT_THROW(ones({2, 2, 2}).t(), ShapeError);
  EXPECT_THROW(m.transpose(0, 2), ValueError);
}

namespace {
/// Python slicing of [0, n) by (start, end, step > 0): the selected positions.
Idx py_slice(int64_t n, int64_t start, int64_t end, int64_t step) {
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::min(std::max<int64_t>(start, 0), n);
  end = std::min(std::max<int64_t>(end, 0), n);
  Idx r;
  for (int64_t i = start; i < end; i += step) r.push_back(i);
  return r;
}
}  // namespace

TEST(ShapeOps, SliceSelectNarrow) {
  manual_seed(42);
  for (Layout l : kLayouts) {
    Tensor x = make_input({5, 7, 3}, l);
    struct S {
      int64_t dim, start, end, step;
    };
    for (S s : {S{0, 1, 4, 1}, S{1, 0, 7, 2}, S{1, -3, 7, 1}, S{1, -100, 100, 3}, S{2, 1, -1, 1}, S{-1, 0, 3, 5},
                S{0, 4, 2, 1}, S{1, 6, 7, 1}, S{1, 7, 9, 1}, S{0, -2, -1, 1}, S{1, 1, 6, 4}}) {
      Tensor y = x.slice(s.dim, s.start, s.end, s.step);
      int64_t d = s.dim < 0 ? s.dim + 3 : s.dim;
      Idx pos = py_slice(x.size(d), s.start, s.end, s.step);
      Idx shape = vshape(x);
      shape[static_cast<size_t>(d)] = static_cast<int64_t>(pos.size());
      EXPECT_TRUE(maps(y, x, shape,
                       [&](const Idx& o) {
                         Idx i = o;
                         i[static_cast<size_t>(d)] = pos[static_cast<size_t>(o[static_cast<size_t>(d)])];
                         return i;
                       }))
          << "slice(" << s.dim << ", " << s.start << ", " << s.end << ", " << s.step << ") " << layout_name(l);
      EXPECT_EQ(y.storage(), x.storage());
    }
    // Slices of slices.
    Tensor ss = x.slice(1, 1, 7, 2).slice(1, 1, 3).slice(0, -3, 5, 2);
    EXPECT_TRUE(maps(ss, x, {2, 2, 3}, [](const Idx& o) { return Idx{2 + 2 * o[0], 3 + 2 * o[1], o[2]}; }));
    for (int64_t i : {0, 3, -1, -5}) {
      Tensor y = x.select(0, i);
      EXPECT_TRUE(maps(y, x, {7, 3}, [&](const Idx& o) { return Idx{i < 0 ? i + 5 : i, o[0], o[1]}; }));
      Tensor z = x.select(-1, i % 3);
      int64_t k = i % 3 < 0 ? i % 3 + 3 : i % 3;
      EXPECT_TRUE(maps(z, x, {5, 7}, [&](const Idx& o) { return Idx{o[0], o[1], k}; }));
    }
    EXPECT_TRUE(maps(x[2], x, {7, 3}, [](const Idx& o) { return Idx{2, o[0], o[1]}; }));
    EXPECT_TRUE(maps(x.narrow(1, 2, 4), x, {5, 4, 3}, [](const Idx& o) { return Idx{o[0], o[1] + 2, o[2]}; }));
    EXPECT_TRUE(maps(x.narrow(1, -3, 2), x, {5, 2, 3}, [](const Idx& o) { return Idx{o[0], o[1] + 4, o[2]}; }));
    EXPECT_EQ(x.narrow(0, 5, 0).shape(), (Shape{0, 7, 3}));
  }
  Tensor v = ones({3});
  EXPECT_EQ(v.select(0, 1).dim(), 0);
  EXPECT_THROW(v.slice(0, 0, 2, 0), ValueError);
  EXPECT_THROW(v.slice(0, 0, 2, -1), ValueError);
  EXPECT_THROW(v.slice(1, 0, 2), ValueError);
  EXPECT_THROW(full({}, 1.0).slice(0, 0, 1), ShapeError);
  EXPECT_THROW(v.select(0, 3), ValueError);
  EXPECT_THROW(v.select(0, -4), ValueError);
  EXPECT_THROW(full({}, 1.0).select(0, 0), ShapeError);
  EXPECT_THROW(v.narrow(0, 2, 2), ValueError);
  EXPECT_THROW(v.narrow(0, 0, -1), ValueError);
}

TEST(ShapeOps, ExpandSqueezeUnsqueezeFlatten) {
  manual_seed(43);
  Tensor x = make_input({3, 1, 2}, Layout::Strided);
  Tensor e = x.expand({4, 3, 5, 2});
  EXPECT_TRUE(maps(e, x, {4, 3, 5, 2}, [](const Idx& o) { return Idx{o[1], 0, o[3]}; }));
  EXPECT_EQ(e.storage(), x.storage());
  EXPECT_EQ(e.stride(0), 0);
  EXPECT_TRUE(maps(x.expand({-1, 4, -1}), x, {3, 4, 2}, [](const Idx& o) { return Idx{o[0], 0, o[2]}; }));
  EXPECT_TRUE(maps(glia::broadcast_to(x, {3, 0, 2}), x, {3, 0, 2}, [](const Idx& o) { return o; }));
  EXPECT_TRUE(maps(full({}, 2.0).expand({2, 2}), full({}, 2.0), {2, 2}, [](const Idx&) { return Idx{}; }));
  EXPECT_THROW(x.expand({3, 4, 3}), ShapeError);
  EXPECT_THROW(x.expand({2}), ShapeError);
  EXPECT_THROW(x.expand({-1, 3, 1, 2}), ShapeError);

  Tensor y = make_input({1, 3, 1, 2}, Layout::Permuted);
  EXPECT_TRUE(maps(y.squeeze(), y, {3, 2}, [](const Idx& o) { return Idx{0, o[0], 0, o[1]}; }));
  EXPECT_TRUE(maps(y.squeeze(2), y, {1, 3, 2}, [](const Idx& o) { return Idx{0, o[1], 0, o[2]}; }));
  EXPECT_TRUE(maps(y.squeeze(-4), y, {3, 1, 2}, [](const Idx& o) { return Idx{0, o[0], 0, o[2]}; }));
  EXPECT_EQ(y.squeeze(1).shape(), y.shape());  // not size 1: unchanged
  EXPECT_EQ(full({}, 1.0).squeeze().dim(), 0);
  EXPECT_THROW(y.squeeze(4), ValueError);
  EXPECT_TRUE(maps(y.unsqueeze(0), y, {1, 1, 3, 1, 2}, [](const Idx& o) { return Idx{0, o[2], 0, o[4]}; }));
  EXPECT_TRUE(maps(y.unsqueeze(-1), y, {1, 3, 1, 2, 1}, [](const Idx& o) { return Idx{0, o[1], 0, o[3]}; }));
  EXPECT_EQ(y.unsqueeze(4).shape(), (Shape{1, 3, 1, 2, 1}));
  EXPECT_EQ(full({}, 1.0).unsqueeze(0).shape(), (Shape{1}));
  EXPECT_THROW(y.unsqueeze(6), ValueError);

  Tensor z = make_input({2, 3, 4, 5}, Layout::Permuted);
  EXPECT_TRUE(maps(z.flatten(), z, {120}, [](const Idx& o) { return idx_of(o[0], {2, 3, 4, 5}); }));
  EXPECT_TRUE(maps(z.flatten(1, 2), z, {2, 12, 5}, [](const Idx& o) { return Idx{o[0], o[1] / 4, o[1] % 4, o[2]}; }));
  EXPECT_TRUE(maps(z.flatten(-2), z, {2, 3, 20}, [](const Idx& o) { return Idx{o[0], o[1], o[2] / 5, o[2] % 5}; }));
  EXPECT_EQ(full({}, 1.0).flatten().shape(), (Shape{1}));
  EXPECT_THROW(z.flatten(2, 1), ValueError);
}

// --- copies

TEST(ShapeOps, CloneAndContiguous) {
  for (Layout l : kLayouts) {
    Tensor x = make_input({3, 4}, l, -1, 1, DType::f32);
    Tensor c = x.clone();
    EXPECT_TRUE(c.is_contiguous());
    EXPECT_NE(c.storage(), x.storage());
    EXPECT_TRUE(maps(c, x, {3, 4}, [](const Idx& o) { return o; }));
    Tensor k = x.contiguous();
    EXPECT_TRUE(k.is_contiguous());
    EXPECT_EQ(k.storage() == x.storage(), l == Layout::Contiguous);
    EXPECT_TRUE(maps(k, x, {3, 4}, [](const Idx& o) { return o; }));
    {
      no_grad g;
      c.fill_(0);
    }
    EXPECT_NE(read(x)[0], 0.0);  // the clone owns its memory
  }
  for (DType dt : {DType::i64, DType::b8, DType::bf16, DType::u8}) {
    Tensor x = make_input({2, 3}, Layout::Permuted, 0, 3).to(dt);
    EXPECT_EQ(x.clone().dtype(), dt);
    EXPECT_TRUE(maps(x.clone(), x, {2, 3}, [](const Idx& o) { return o; }));
  }
}

TEST(ShapeOps, ConcatAndStack) {
  manual_seed(44);
  for (int64_t dim : {0, 1, 2, -1}) {
    int64_t d = dim < 0 ? dim + 3 : dim;
    std::vector<Tensor> xs;
    Idx sizes = {2, 0, 3, 1};
    for (size_t i = 0; i < sizes.size(); ++i) {
      Idx s = {2, 3, 4};
      s[static_cast<size_t>(d)] = sizes[i];
      xs.push_back(make_input(s, kLayouts[i % 3]));
    }
    Tensor y = concat(xs, dim);
    Idx shape = {2, 3, 4};
    shape[static_cast<size_t>(d)] = 6;
    std::vector<double> want;
    for_each_index(IntList(shape), [&](const Idx& o) {
      int64_t k = o[static_cast<size_t>(d)];
      size_t part = 0;
      while (k >= sizes[part]) k -= sizes[part++];
      Idx i = o;
      i[static_cast<size_t>(d)] = k;
      want.push_back(at_broadcast(xs[part], i));
    });
    EXPECT_TRUE(matches(y, shape, want, 0, 0)) << "concat dim " << dim;
  }
  // Promotion across inputs.
  Tensor c = concat({tensor({1, 2}), tensor({0.5f})});
  EXPECT_EQ(c.dtype(), DType::f32);
  EXPECT_TRUE(matches(c, {3}, {1, 2, 0.5}, 0, 0));
  Tensor one = tensor({1.f});
  EXPECT_TRUE(concat({one}).is_same(one));  // nothing to join
  // stack: a new dim.
  Tensor a = make_input({2, 3}, Layout::Strided), b = make_input({2, 3}, Layout::Permuted);
  for (int64_t dim : {0, 1, 2, -1}) {
    Tensor s = stack({a, b, a}, dim);
    int64_t d = dim < 0 ? dim + 3 : dim;
    Idx shape = {2, 3};
    shape.insert(shape.begin() + d, 3);
    std::vector<double> want;
    for_each_index(IntList(shape), [&](const Idx& o) {
      Idx i = o;
      int64_t k = o[static_cast<size_t>(d)];
      i.erase(i.begin() + d);
      want.push_back(at_broadcast(k == 1 ? b : a, i));
    });
    EXPECT_TRUE(matches(s, shape, want, 0, 0)) << "stack dim " << dim;
  }
  EXPECT_EQ(stack({full({}, 1.0), full({}, 2.0)}).shape(), (Shape{2}));
  EXPECT_THROW(concat({}), ValueError);
  EXPECT_THROW(concat({ones({2, 3}), ones({2, 4})}, 0), ShapeError);
  EXPECT_THROW(concat({ones({2, 3}), ones({3})}, 0), ShapeError);
  EXPECT_THROW(concat({full({}, 1.0), full({}, 1.0)}), ShapeError);
  EXPECT_THROW(concat({ones({2}), ones({2})}, 1), ValueError);
  EXPECT_THROW(stack({ones({2}), ones({3})}), ShapeError);
  EXPECT_THROW(stack({}), ValueError);
  std::string msg = error_of<ShapeError>([] { concat({ones({2, 3}), ones({2, 4})}, 0); });
  EXPECT_NE(msg.find("[2, 4]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("concat"), std::string::npos) << msg;
}

TEST(ShapeOps, SplitAndChunk) {
  Tensor x = make_input({7, 4}, Layout::Permuted);
  auto parts = split(x, 3, 0);
  ASSERT_EQ(parts.size(), 3u);
  Idx sizes = {3, 3, 1};
  int64_t off = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    EXPECT_TRUE(maps(parts[i], x, {sizes[i], 4}, [&](const Idx& o) { return Idx{o[0] + off, o[1]}; }));
    EXPECT_EQ(parts[i].storage(), x.storage());
    off += sizes[i];
  }
  auto p2 = split(x, {1, 4, 2}, 0);
  ASSERT_EQ(p2.size(), 3u);
  EXPECT_TRUE(maps(p2[1], x, {4, 4}, [](const Idx& o) { return Idx{o[0] + 1, o[1]}; }));
  auto p3 = split(x, {4, 0}, -1);
  EXPECT_EQ(p3[1].shape(), (Shape{7, 0}));
  auto c = chunk(x, 3, 0);  // sizes 3, 3, 1
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[2].shape(), (Shape{1, 4}));
  auto c2 = chunk(x, 2, 1);
  ASSERT_EQ(c2.size(), 2u);
  EXPECT_TRUE(maps(c2[1], x, {7, 2}, [](const Idx& o) { return Idx{o[0], o[1] + 2}; }));
  EXPECT_EQ(chunk(x, 10, 1).size(), 4u);  // never empty pieces
  EXPECT_THROW(split(x, 0, 0), ValueError);
  EXPECT_THROW(split(x, {3, 3}, 0), ShapeError);
  EXPECT_THROW(chunk(x, 0, 0), ValueError);
}

namespace {
/// Source position of padded position o along a dim of size n with `before` padding.
std::optional<int64_t> pad_src(int64_t o, int64_t before, int64_t n, const std::string& mode) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  if (mode == "constant") return std::nullopt;
  if (mode == "replicate") return std::min(std::max<int64_t>(i, 0), n - 1);
  while (i < 0 || i >= n) {  // reflect: mirror at the edges (edge not repeated)
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
  }
  return i;
}
}  // namespace

TEST(ShapeOps, PadModes) {
  manual_seed(45);
  struct P {
    Idx shape, pads;
    std::string mode;
  };
  std::vector<P> cases = {
      {{2, 5}, {1, 2}, "constant"},
      {{2, 3, 5}, {2, 0, 1, 1}, "constant"},
      {{3, 4}, {3, 1, 0, 2}, "reflect"},
      {{2, 3, 4}, {1, 1}, "reflect"},
      {{2, 4}, {2, 3, 1, 0}, "replicate"},
      {{1, 3}, {4, 4}, "replicate"},
      {{3, 6}, {-1, -2}, "constant"},
      {{3, 6}, {2, -3, -1, 1}, "constant"},
      {{2, 2, 3}, {0, 0, 0, 0, 1, 1}, "constant"},
      {{4}, {-4, 2}, "constant"},
  };
  for (auto& c : cases)
    for (Layout l : kLayouts) {
      Tensor x = make_input(c.shape, l);
      Tensor y = pad(x, IntList(c.pads), c.mode, 0.75);
      Idx shape = c.shape;
      size_t nd = shape.size();
      for (size_t k = 0; k < c.pads.size() / 2; ++k) shape[nd - 1 - k] += c.pads[2 * k] + c.pads[2 * k + 1];
      EXPECT_TRUE(maps(
          y, x, shape,
          [&](const Idx& o) -> std::optional<Idx> {
            Idx i(nd);
            for (size_t d = 0; d < nd; ++d) {
              size_t k = nd - 1 - d;
              int64_t before = 2 * k < c.pads.size() ? c.pads[2 * k] : 0;
              auto s = pad_src(o[d], before, c.shape[d], c.mode);
              if (!s) return std::nullopt;
              i[d] = *s;
            }
            return i;
          },
          0.75))
          << c.mode << " " << to_string(IntList(c.pads)) << " " << layout_name(l);
    }
  Tensor i = pad(tensor({1, 2, 3}), {1, 1}, "constant", 9);
  EXPECT_EQ(i.dtype(), DType::i64);
  EXPECT_TRUE(matches(i, {5}, {9, 1, 2, 3, 9}, 0, 0));
  EXPECT_THROW(pad(ones({3}), {1}), ValueError);
  EXPECT_THROW(pad(ones({3}), {1, 1, 1, 1}), ValueError);
  EXPECT_THROW(pad(ones({3}), {1, 1}, "wrap"), ValueError);
  EXPECT_THROW(pad(ones({3}), {3, 0}, "reflect"), ValueError);
  EXPECT_THROW(pad(ones({3}), {-1, 0}, "reflect"), ValueError);
  EXPECT_THROW(pad(ones({3}), {-2, -2}), ShapeError);
  EXPECT_THROW(pad(ones({0}), {1, 1}, "replicate"), ValueError);
}

TEST(ShapeOps, RepeatAndTile) {
  Tensor x = make_input({2, 3}, Layout::Permuted);
  EXPECT_TRUE(maps(repeat(x, {2, 2}), x, {4, 6}, [](const Idx& o) { return Idx{o[0] % 2, o[1] % 3}; }));
  EXPECT_TRUE(maps(repeat(x, {3, 1, 2}), x, {3, 2, 6}, [](const Idx& o) { return Idx{o[1], o[2] % 3}; }));
  EXPECT_TRUE(maps(repeat(x, {1, 0}), x, {2, 0}, [](const Idx& o) { return o; }));
  EXPECT_TRUE(maps(tile(x, {2}), x, {2, 6}, [](const Idx& o) { return Idx{o[0], o[1] % 3}; }));
  EXPECT_TRUE(maps(tile(x, {2, 1, 1}), x, {2, 2, 3}, [](const Idx& o) { return Idx{o[1], o[2]}; }));
  EXPECT_TRUE(maps(repeat(full({}, 4.0), {3}), full({}, 4.0), {3}, [](const Idx&) { return Idx{}; }));
  EXPECT_THROW(repeat(x, {2}), ValueError);
  EXPECT_THROW(repeat(x, {2, -1}), ValueError);
}

TEST(ShapeOps, TrilTriuFlip) {
  manual_seed(46);
  for (Layout l : kLayouts) {
    Tensor x = make_input({2, 4, 5}, l);
    for (int64_t k : {0, 1, -1, 3, -5, 10}) {
      EXPECT_TRUE(maps(
          tril(x, k), x, {2, 4, 5},
          [&](const Idx& o) -> std::optional<Idx> { return o[2] - o[1] <= k ? std::optional<Idx>(o) : std::nullopt; }))
          << "tril " << k << " " << layout_name(l);
      EXPECT_TRUE(maps(
          triu(x, k), x, {2, 4, 5},
          [&](const Idx& o) -> std::optional<Idx> { return o[2] - o[1] >= k ? std::optional<Idx>(o) : std::nullopt; }))
          << "triu " << k << " " << layout_name(l);
    }
    EXPECT_TRUE(maps(flip(x, {0}), x, {2, 4, 5}, [](const Idx& o) { return Idx{1 - o[0], o[1], o[2]}; }));
    EXPECT_TRUE(maps(flip(x, {-1, 1}), x, {2, 4, 5}, [](const Idx& o) { return Idx{o[0], 3 - o[1], 4 - o[2]}; }));
    EXPECT_TRUE(maps(flip(x, {}), x, {2, 4, 5}, [](const Idx& o) { return o; }));
  }
  EXPECT_EQ(flip(zeros({0, 3}), {0}).shape(), (Shape{0, 3}));
  EXPECT_EQ(tril(zeros({3, 0})).shape(), (Shape{3, 0}));
  EXPECT_TRUE(matches(tril(ones({2, 2}, {.dtype = DType::i64})), {2, 2}, {1, 0, 1, 1}, 0, 0));
  EXPECT_THROW(tril(ones({3})), ShapeError);
  EXPECT_THROW(triu(full({}, 1.0)), ShapeError);
  EXPECT_THROW(flip(ones({3}), {1}), ValueError);
}

// --- gradients

TEST(ShapeOps, Gradchecks) {
  manual_seed(47);
  Tensor x = uniform({2, 3, 4});
  auto gc = [&](const char* what, const std::function<Tensor(const Tensor&)>& f) {
    EXPECT_TRUE(gradcheck([&](auto& in) { return f(in[0]); }, leaf(x))) << what;
  };
  gc("reshape", [](const Tensor& t) { return t.reshape({4, 6}); });
  gc("reshape of a permute (copy)", [](const Tensor& t) { return t.permute({2, 0, 1}).reshape({-1}); });
  gc("view", [](const Tensor& t) { return t.view({6, 4}); });
  gc("permute", [](const Tensor& t) { return t.permute({1, 2, 0}); });
  gc("transpose", [](const Tensor& t) { return t.transpose(0, 2); });
  gc("slice", [](const Tensor& t) { return t.slice(2, 1, 4, 2); });
  gc("slice negative", [](const Tensor& t) { return t.slice(1, -2, 100); });
  gc("slice of slice", [](const Tensor& t) { return t.slice(2, 0, 4, 2).slice(1, 1, 3); });
  gc("select", [](const Tensor& t) { return t.select(1, -1); });
  gc("narrow", [](const Tensor& t) { return t.narrow(2, 1, 2); });
  gc("expand", [](const Tensor& t) { return t.slice(1, 0, 1).expand({3, 2, 5, 4}); });
  gc("squeeze/unsqueeze", [](const Tensor& t) { return t.unsqueeze(1).slice(2, 0, 1).squeeze(); });
  gc("flatten", [](const Tensor& t) { return t.flatten(0, 1); });
  gc("clone", [](const Tensor& t) { return t.clone(); });
  gc("contiguous", [](const Tensor& t) { return t.transpose(0, 2).contiguous(); });
  gc("concat", [](const Tensor& t) { return concat({t, t.slice(1, 0, 1) * 2.0, t}, 1); });
  gc("stack", [](const Tensor& t) { return stack({t, t * t}, 1); });
  gc("split", [](const Tensor& t) { return split(t, 3, 2)[1] * split(t, 3, 2)[0].slice(2, 0, 1); });
  gc("chunk", [](const Tensor& t) { return chunk(t, 2, 1)[0]; });
  gc("pad constant", [](const Tensor& t) { return pad(t, {1, 2, 0, 1}, "constant", 3.0); });
  gc("pad negative", [](const Tensor& t) { return pad(t, {-1, 1, 1, -2}); });
  gc("pad reflect", [](const Tensor& t) { return pad(t, {3, 2, 2, 1}, "reflect"); });
  gc("pad replicate", [](const Tensor& t) { return pad(t, {2, 3, 1, 1, 1, 0}, "replicate"); });
  gc("repeat", [](const Tensor& t) { return repeat(t, {2, 1, 3, 1}); });
  gc("tile", [](const Tensor& t) { return tile(t, {2, 1}); });
  gc("tril", [](const Tensor& t) { return tril(t, 1); });
  gc("triu", [](const Tensor& t) { return triu(t, -1); });
  gc("flip", [](const Tensor& t) { return flip(t, {0, 2}); });
}

TEST(ShapeOps, Gradgradchecks) {
  manual_seed(48);
  Tensor x = uniform({2, 3});
  auto ggc = [&](const char* what, const std::function<Tensor(const Tensor&)>& f) {
    EXPECT_TRUE(gradgradcheck(
        [&](auto& in) {
          Tensor y = f(in[0]);
          return y * y;
        },
        leaf(x)))
        << what;
  };
  ggc("slice", [](const Tensor& t) { return t.slice(1, 0, 3, 2); });
  ggc("expand", [](const Tensor& t) { return t.unsqueeze(0).expand({2, 2, 3}); });
  ggc("pad reflect", [](const Tensor& t) { return pad(t, {2, 1}, "reflect"); });
  ggc("pad constant", [](const Tensor& t) { return pad(t, {1, -1, 1, 0}); });
  ggc("concat", [](const Tensor& t) { return concat({t, t.t().reshape({2, 3})}, 0); });
  ggc("permute", [](const Tensor& t) { return t.t(); });
  ggc("flip", [](const Tensor& t) { return flip(t, {1}); });
  ggc("tril", [](const Tensor& t) { return tril(t); });
}
