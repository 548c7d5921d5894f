// Movement ops: views (reshape, permute, slice, expand) and copies
// (clone, concat, pad, tril/triu, flip). Views are device independent.
#include "glia/ops/shape_ops.h"

#include <algorithm>
#include <numeric>

#include "glia/autograd/autograd.h"
#include "glia/ops/device_attrs.h"
#include "glia/ops/elementwise.h"
#include "glia/ops/op.h"
#include "glia/ops/reduce.h"

namespace glia {
namespace {

std::vector<int64_t> vec(IntList l) { return {l.begin(), l.end()}; }
IntList il(const std::vector<int64_t>& v) { return IntList(v.data(), v.size()); }

/// Resolves one -1 in a requested shape against numel.
Shape infer_size(IntList req, int64_t numel, const char* op, IntList from) {
  Shape s(req.begin(), req.end());
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      GLIA_CHECK(infer < 0, ShapeError, op, ": only one dimension can be -1, got ", to_string(req));
      infer = static_cast<int64_t>(i);
    } else {
      GLIA_CHECK(s[i] >= 0, ShapeError, op, ": invalid dimension ", s[i], " in shape ", to_string(req));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    GLIA_CHECK(known != 0 && numel % known == 0, ShapeError, op, ": cannot reshape a tensor of shape ", to_string(from),
               " (", numel, " elements) into ", to_string(req));
    s[static_cast<size_t>(infer)] = numel / known;
  } else {
    GLIA_CHECK(known == numel, ShapeError, op, ": cannot reshape a tensor of shape ", to_string(from), " (", numel,
               " elements) into ", to_string(req), " (", known, " elements)");
  }
  return s;
}

/// Strides for viewing (shape, strides) as new_shape without a copy, if possible (PyTorch's computeStride).
bool view_strides(IntList shape, IntList strides, IntList new_shape, Shape& out) {
  out = Shape(new_shape.size());
  if (numel(shape) == 0 || shape.empty()) {  // no elements, or one (a 0-d tensor): any layout views it
    out = contiguous_strides(new_shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor alias_view(const Tensor& x, IntList shape, IntList strides, int64_t offset) {
  Tensor t = Tensor::make_view(x.storage(), shape, strides, offset, x.dtype());
  return t;
}

}  // namespace

// --- views

GLIA_OP(reshape)
    .inputs({"x"})
    .view([](const Tensor& x, const Attrs& a) {
      const auto& req = a.get<std::vector<int64_t>>("shape");
      Shape s = infer_size(il(req), x.numel(), "reshape", x.shape());
      Shape st;
      if (view_strides(x.shape(), x.strides(), s, st)) return alias_view(x, s, st, x.offset());
      Tensor c = Tensor::empty(x.shape(), x.dtype(), x.device());
      c.copy_(x.detach());
      return alias_view(c, s, contiguous_strides(s), 0);
    })
    .save_inputs({})
    .grad([](GradContext& c) { return grads{c.reshape_to_input(c.grad_out(), 0)}; });

GLIA_OP(view)
    .inputs({"x"})
    .view([](const Tensor& x, const Attrs& a) {
      const auto& req = a.get<std::vector<int64_t>>("shape");
      Shape s = infer_size(il(req), x.numel(), "view", x.shape());
      Shape st;
      GLIA_CHECK(view_strides(x.shape(), x.strides(), s, st), ShapeError, "view: a tensor of shape ",
                 to_string(x.shape()), " with strides ", to_string(x.strides()), " cannot be viewed as ", to_string(s),
                 " without a copy; use reshape");
      return alias_view(x, s, st, x.offset());
    })
    .save_inputs({})
    .grad([](GradContext& c) { return grads{c.reshape_to_input(c.grad_out(), 0)}; });

GLIA_OP(permute)
    .inputs({"x"})
    .view([](const Tensor& x, const Attrs& a) {
      const auto& dims = a.get<std::vector<int64_t>>("dims");
      Shape s(dims.size()), st(dims.size());
      for (size_t i = 0; i < dims.size(); ++i) {
        s[i] = x.shape()[static_cast<size_t>(dims[i])];
        st[i] = x.strides()[static_cast<size_t>(dims[i])];
      }
      return alias_view(x, s, st, x.offset());
    })
    .save_inputs({})
    .grad([](GradContext& c) {
      const auto& dims = c.attr<std::vector<int64_t>>("dims");
      std::vector<int64_t> inv(dims.size());
      for (size_t i = 0; i < dims.size(); ++i) inv[static_cast<size_t>(dims[i])] = static_cast<int64_t>(i);
      return grads{permute(c.grad_out(), il(inv))};
    });

GLIA_OP(slice)
    .inputs({"x"})
    .view([](const Tensor& x, const Attrs& a) {
      auto d = static_cast<size_t>(a.get<int64_t>("dim"));
      int64_t start = a.get<int64_t>("start"), end = a.get<int64_t>("end"), step = a.get<int64_t>("step");
      Shape s = x.shape(), st = x.strides();
      s[d] = end > start ? (end - start + step - 1) / step : 0;
      st[d] *= step;
      return alias_view(x, s, st, x.offset() + start * x.strides()[d]);
    })
    .save_inputs({})
    .grad([](GradContext& c) {
      Tensor out = c.zeros_like_input(0, c.grad_out().dtype());
      // The adjoint of slicing: the gradient placed into zeros. Differentiable through slice_scatter.
      return grads{call(define_op("slice_scatter"), {out, c.grad_out()}, Attrs(c.attrs()))};
    });

// base with the slice (dim, start, end, step) replaced by src.
GLIA_OP(slice_scatter).inputs({"base", "src"}).infer(same_as_input(0)).save_inputs({}).grad([](GradContext& c) {
  const Attrs& a = c.attrs();
  Tensor g = c.grad_out();
  Tensor gsrc = slice(g, a.get<int64_t>("dim"), a.get<int64_t>("start"), a.get<int64_t>("end"), a.get<int64_t>("step"));
  Tensor gbase = call(op_slice_scatter, {g, zeros_like(gsrc)}, Attrs(a));
  return grads{gbase, gsrc};
});

GLIA_OP(expand)
    .inputs({"x"})
    .view([](const Tensor& x, const Attrs& a) {
      const auto& req = a.get<std::vector<int64_t>>("shape");
      size_t n = req.size(), xd = static_cast<size_t>(x.dim());
      GLIA_CHECK(n >= xd, ShapeError, "expand: cannot expand shape ", to_string(x.shape()), " to fewer dimensions ",
                 to_string(il(req)));
      Shape s(n), st(n);
      for (size_t i = 0; i < n; ++i) {
        int64_t xi = static_cast<int64_t>(i) - static_cast<int64_t>(n - xd);
        int64_t size = xi >= 0 ? x.shape()[static_cast<size_t>(xi)] : 1;
        int64_t want = req[i] == -1 ? size : req[i];
        GLIA_CHECK(xi >= 0 || req[i] != -1, ShapeError, "expand: -1 is not allowed for new leading dimension ", i);
        if (size == want) {
          s[i] = size;
          st[i] = xi >= 0 ? x.strides()[static_cast<size_t>(xi)] : 0;
        } else {
          GLIA_CHECK(size == 1, ShapeError, "expand: shape ", to_string(x.shape()), " cannot be expanded to ",
                     to_string(il(req)), " (dimension ", i, ": ", size, " vs ", want, ")");
          s[i] = want;
          st[i] = 0;
        }
      }
      return alias_view(x, s, st, x.offset());
    })
    .save_inputs({})
    .grad([](GradContext& c) { return grads{c.sum_to_input(c.grad_out(), 0)}; });

Tensor reshape(const Tensor& x, IntList shape) {
  if (x.shape() == Shape(shape.begin(), shape.end())) return x;
  return call(op_reshape, {x}, {{"shape", vec(shape)}});
}
Tensor view(const Tensor& x, IntList shape) { return call(op_view, {x}, {{"shape", vec(shape)}}); }

Tensor permute(const Tensor& x, IntList dims) {
  int64_t n = x.dim();
  GLIA_CHECK(static_cast<int64_t>(dims.size()) == n, ShapeError, "permute: got ", dims.size(),
             " dims for a tensor of rank ", n, " (shape ", to_string(x.shape()), ")");
  std::vector<int64_t> d(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    d[i] = wrap_axis(dims[i], n, "permute");
    GLIA_CHECK(!seen[static_cast<size_t>(d[i])], ValueError, "permute: dimension ", d[i], " appears twice in ",
               to_string(dims));
    seen[static_cast<size_t>(d[i])] = true;
  }
  return call(op_permute, {x}, {{"dims", d}});
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  int64_t n = x.dim();
  std::vector<int64_t> d(static_cast<size_t>(n));
  std::iota(d.begin(), d.end(), 0);
  std::swap(d[static_cast<size_t>(wrap_axis(a, n, "transpose"))], d[static_cast<size_t>(wrap_axis(b, n, "transpose"))]);
  return permute(x, il(d));
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  GLIA_CHECK(x.dim() > 0, ShapeError, "slice: cannot slice a 0-d tensor");
  dim = wrap_axis(dim, x.dim(), "slice");
  GLIA_CHECK(step > 0, ValueError, "slice: step must be positive, got ", step);
  int64_t n = x.shape()[static_cast<size_t>(dim)];
  // Clamping against a graph's unknown dim (-1, a placeholder's batch) would give a wrong shape.
  GLIA_CHECK(n >= 0, ValueError, "slice: dimension ", dim, " of shape ", to_string(x.shape()),
             " has a size known only when the graph runs; slicing along it is not supported");
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  return call(op_slice, {x}, {{"dim", dim}, {"start", start}, {"end", end}, {"step", step}});
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  GLIA_CHECK(x.dim() > 0, ShapeError, "select: cannot index a 0-d tensor");
  dim = wrap_axis(dim, x.dim(), "select");
  int64_t n = x.shape()[static_cast<size_t>(dim)];
  GLIA_CHECK(index >= -n && index < n, ValueError, "select: index ", index, " is out of range for dimension ", dim,
             " of size ", n, " (shape ", to_string(x.shape()), ")");
  if (index < 0) index += n;
  return squeeze(slice(x, dim, index, index + 1), dim);
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  dim = wrap_axis(dim, x.dim(), "narrow");
  int64_t n = x.shape()[static_cast<size_t>(dim)];
  if (start < 0) start += n;
  GLIA_CHECK(start >= 0 && length >= 0 && start + length <= n, ValueError, "narrow: [", start, ", ", start + length,
             ") is out of range for dimension ", dim, " of size ", n);
  return slice(x, dim, start, start + length);
}

Tensor expand(const Tensor& x, IntList shape) {
  if (x.shape() == Shape(shape.begin(), shape.end())) return x;
  return call(op_expand, {x}, {{"shape", vec(shape)}});
}
Tensor broadcast_to(const Tensor& x, IntList shape) { return expand(x, shape); }

Tensor squeeze(const Tensor& x) {
  std::vector<int64_t> s;
  for (int64_t d : x.shape())
    if (d != 1) s.push_back(d);
  return reshape(x, il(s));
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  if (x.dim() == 0) return x;
  dim = wrap_axis(dim, x.dim(), "squeeze");
  if (x.shape()[static_cast<size_t>(dim)] != 1) return x;
  std::vector<int64_t> s = vec(x.shape());
  s.erase(s.begin() + dim);
  return reshape(x, il(s));
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  dim = wrap_axis(dim, x.dim() + 1, "unsqueeze");
  std::vector<int64_t> s = vec(x.shape());
  s.insert(s.begin() + dim, 1);
  return reshape(x, il(s));
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  start_dim = wrap_axis(start_dim, x.dim(), "flatten");
  end_dim = wrap_axis(end_dim, x.dim(), "flatten");
  GLIA_CHECK(start_dim <= end_dim, ValueError, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  std::vector<int64_t> s;
  for (int64_t d = 0; d < start_dim; ++d) s.push_back(x.shape()[static_cast<size_t>(d)]);
  int64_t m = 1;
  bool unknown = false;
  for (int64_t d = start_dim; d <= end_dim; ++d) {
    int64_t n = x.shape()[static_cast<size_t>(d)];
    unknown = unknown || n < 0;
    m *= n;
  }
  // A graph's unknown dim (-1) among the flattened ones: reshape infers the product at run time.
  s.push_back(unknown ? -1 : m);
  for (int64_t d = end_dim + 1; d < x.dim(); ++d) s.push_back(x.shape()[static_cast<size_t>(d)]);
  return reshape(x, il(s));
}

// --- copies

GLIA_OP(clone).inputs({"x"}).infer(same_as_input(0)).save_inputs({}).grad([](GradContext& c) {
  return grads{c.grad_out()};
});

Tensor clone(const Tensor& x) { return call(op_clone, {x}); }
Tensor contiguous(const Tensor& x) { return x.is_contiguous() ? x : clone(x); }

GLIA_OP(concat)
    .inputs({"xs"})
    .variadic()
    .infer([](InferContext& c) {
      GLIA_CHECK(c.num_inputs() > 0, ValueError, "concat: expected at least one tensor");
      const Shape& s0 = c.shape(0);
      int64_t dim = c.attr<int64_t>("dim");
      Shape out = s0;
      out[static_cast<size_t>(dim)] = 0;
      for (size_t i = 0; i < c.num_inputs(); ++i) {
        const Shape& s = c.shape(i);
        GLIA_CHECK(s.size() == s0.size(), ShapeError, "concat: tensor ", i, " has shape ", to_string(s),
                   ", expected rank ", s0.size(), " like tensor 0 of shape ", to_string(s0));
        for (size_t d = 0; d < s.size(); ++d)
          GLIA_CHECK(static_cast<int64_t>(d) == dim || s[d] == s0[d], ShapeError, "concat: tensor ", i, " has shape ",
                     to_string(s), ", which differs from tensor 0's ", to_string(s0), " outside dimension ", dim);
        out[static_cast<size_t>(dim)] += s[static_cast<size_t>(dim)];
      }
      c.set_output(out, result_type(std::span<const Tensor>(&c.input(0), c.num_inputs())));
    })
    .save_inputs({})
    .grad([](GradContext& c) {
      int64_t dim = c.attr<int64_t>("dim");
      grads g;
      int64_t off = 0;
      for (size_t i = 0; i < c.num_inputs(); ++i) {
        int64_t len = c.input_shape(i)[static_cast<size_t>(dim)];
        g.push_back(narrow(c.grad_out(), dim, off, len));
        off += len;
      }
      return g;
    });

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  GLIA_CHECK(!xs.empty(), ValueError, "concat: expected at least one tensor");
  GLIA_CHECK(xs[0].dim() > 0, ShapeError, "concat: cannot concatenate 0-d tensors; use stack");
  dim = wrap_axis(dim, xs[0].dim(), "concat");
  if (xs.size() == 1) return xs[0];
  return call(op_concat, std::span<const Tensor>(xs.data(), xs.size()), {{"dim", dim}});
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  GLIA_CHECK(!xs.empty(), ValueError, "stack: expected at least one tensor");
  dim = wrap_axis(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (size_t i = 0; i < xs.size(); ++i) {
    GLIA_CHECK(xs[i].shape() == xs[0].shape(), ShapeError, "stack: tensor ", i, " has shape ", to_string(xs[i].shape()),
               ", expected ", to_string(xs[0].shape()), " like tensor 0");
    u.push_back(unsqueeze(xs[i], dim));
  }
  if (u.size() == 1) return u[0];
  return call(op_concat, std::span<const Tensor>(u.data(), u.size()), {{"dim", dim}});
}

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
  dim = wrap_axis(dim, x.dim(), "split");
  GLIA_CHECK(size > 0, ValueError, "split: size must be positive, got ", size);
  int64_t n = x.shape()[static_cast<size_t>(dim)];
  std::vector<Tensor> out;
  for (int64_t s = 0; s < n; s += size) out.push_back(narrow(x, dim, s, std::min(size, n - s)));
  return out;
}

std::vector<Tensor> split(const Tensor& x, IntList sizes, int64_t dim) {
  dim = wrap_axis(dim, x.dim(), "split");
  int64_t n = x.shape()[static_cast<size_t>(dim)];
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  GLIA_CHECK(total == n, ShapeError, "split: sizes ", to_string(sizes), " add up to ", total, ", but dimension ", dim,
             " has size ", n);
  std::vector<Tensor> out;
  int64_t off = 0;
  for (int64_t s : sizes) {
    out.push_back(narrow(x, dim, off, s));
    off += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  GLIA_CHECK(chunks > 0, ValueError, "chunk: chunks must be positive, got ", chunks);
  dim = wrap_axis(dim, x.dim(), "chunk");
  int64_t n = x.shape()[static_cast<size_t>(dim)];
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

GLIA_OP(pad)
    .inputs({"x"})
    .infer([](InferContext& c) {
      const auto& p = c.attr<std::vector<int64_t>>("pads");
      const auto& mode = c.attr<std::string>("mode");
      Shape s = c.shape(0);
      for (size_t i = 0; i < p.size() / 2; ++i) {
        size_t d = s.size() - 1 - i;
        int64_t before = p[2 * i], after = p[2 * i + 1];
        if (mode == "reflect")
          GLIA_CHECK(before < s[d] && after < s[d], ValueError, "pad: reflect padding (", before, ", ", after,
                     ") must be smaller than dimension ", d, " of size ", s[d]);
        if (mode == "replicate") GLIA_CHECK(s[d] > 0, ValueError, "pad: replicate padding of an empty dimension ", d);
        s[d] += before + after;
        GLIA_CHECK(s[d] >= 0, ShapeError, "pad: negative padding makes dimension ", d, " negative");
      }
      c.set_output(s, c.dtype(0));
    })
    .save_inputs({})
    .grad([](GradContext& c) {
      return grads{call(define_op("pad_backward"), {c.grad_out()},
                        {{"pads", c.attr<std::vector<int64_t>>("pads")},
                         {"mode", c.attr<std::string>("mode")},
                         {"input_shape", vec(c.input_shape(0))}})};
    });

// The adjoint of pad: each input cell gets the sum of the padded cells that copied it.
GLIA_OP(pad_backward)
    .inputs({"grad"})
    .infer([](InferContext& c) {
      const auto& a = c.attr<std::vector<int64_t>>("input_shape");
      const auto& pads = c.attr<std::vector<int64_t>>("pads");
      Shape s(a.begin(), a.end());
      // A graph's unknown dim (-1, a placeholder's batch): the gradient's, less the padding.
      for (size_t d = 0; d < s.size(); ++d) {
        if (s[d] >= 0 || d >= c.shape(0).size()) continue;
        size_t k = 2 * (s.size() - 1 - d);  // pairs start from the last dim
        s[d] = c.shape(0)[d] - (k < pads.size() ? pads[k] : 0) - (k + 1 < pads.size() ? pads[k + 1] : 0);
      }
      c.set_output(s, c.dtype(0));
    })
    .save_inputs({})
    .grad([](GradContext& c) {
      return grads{call(
          op_pad, {c.grad_out()},
          {{"pads", c.attr<std::vector<int64_t>>("pads")}, {"mode", c.attr<std::string>("mode")}, {"value", 0.0}})};
    });

Tensor pad(const Tensor& x, IntList pads, const std::string& mode, double value) {
  GLIA_CHECK(pads.size() % 2 == 0 && static_cast<int64_t>(pads.size()) <= 2 * x.dim(), ValueError,
             "pad: expected (before, after) pairs for at most ", x.dim(), " dimensions, got ", to_string(pads));
  GLIA_CHECK(mode == "constant" || mode == "reflect" || mode == "replicate", ValueError,
             "pad: mode must be 'constant', 'reflect' or 'replicate', got '", mode, "'");
  if (mode != "constant")
    for (int64_t p : pads) GLIA_CHECK(p >= 0, ValueError, "pad: negative padding needs mode 'constant'");
  return call(op_pad, {x}, {{"pads", vec(pads)}, {"mode", mode}, {"value", value}});
}

Tensor repeat(const Tensor& x, IntList repeats) {
  GLIA_CHECK(static_cast<int64_t>(repeats.size()) >= x.dim(), ValueError, "repeat: got ", repeats.size(),
             " repeats for a tensor of rank ", x.dim(), "; give at least one per dimension");
  size_t n = repeats.size(), lead = n - static_cast<size_t>(x.dim());
  // [a, b] repeated (r0, r1): view as [1, a, 1, b], expand to [r0, a, r1, b], flatten pairs.
  std::vector<int64_t> s1, s2, s3;
  for (size_t i = 0; i < n; ++i) {
    int64_t size = i < lead ? 1 : x.shape()[i - lead];
    GLIA_CHECK(repeats[i] >= 0, ValueError, "repeat: negative repeat count ", repeats[i]);
    s1.insert(s1.end(), {1, size});
    s2.insert(s2.end(), {repeats[i], size});
    s3.push_back(repeats[i] * size);
  }
  return reshape(expand(reshape(x, il(s1)), il(s2)), il(s3));
}

Tensor tile(const Tensor& x, IntList reps) {
  std::vector<int64_t> r = vec(reps);
  while (static_cast<int64_t>(r.size()) < x.dim()) r.insert(r.begin(), 1);
  return repeat(x, il(r));
}

GLIA_OP(tril).inputs({"x"}).infer(same_as_input(0)).save_inputs({}).grad([](GradContext& c) {
  return grads{tril(c.grad_out(), c.attr<int64_t>("diagonal"))};
});
GLIA_OP(triu).inputs({"x"}).infer(same_as_input(0)).save_inputs({}).grad([](GradContext& c) {
  return grads{triu(c.grad_out(), c.attr<int64_t>("diagonal"))};
});
Tensor tril(const Tensor& x, int64_t diagonal) {
  GLIA_CHECK(x.dim() >= 2, ShapeError, "tril: expected a tensor of rank >= 2, got shape ", to_string(x.shape()));
  return call(op_tril, {x}, {{"diagonal", diagonal}});
}
Tensor triu(const Tensor& x, int64_t diagonal) {
  GLIA_CHECK(x.dim() >= 2, ShapeError, "triu: expected a tensor of rank >= 2, got shape ", to_string(x.shape()));
  return call(op_triu, {x}, {{"diagonal", diagonal}});
}

GLIA_OP(flip).inputs({"x"}).infer(same_as_input(0)).save_inputs({}).grad([](GradContext& c) {
  return grads{call(op_flip, {c.grad_out()}, Attrs(c.attrs()))};
});
Tensor flip(const Tensor& x, IntList dims) {
  std::vector<int64_t> d;
  for (int64_t v : dims) d.push_back(wrap_axis(v, x.dim(), "flip"));
  return call(op_flip, {x}, {{"dims", d}});
}

// A copy to another device; its gradient is the copy back.
GLIA_OP(to_device)
    .inputs({"x"})
    .infer([](InferContext& c) {
      c.set_output(c.shape(0), c.dtype(0), detail::device_from_attrs(c.attrs(), "device_type", "device_index"));
    })
    .save_inputs({})
    .grad([](GradContext& c) {
      return grads{c.grad_out().to(detail::device_from_attrs(c.attrs(), "from_type", "from_index"))};
    });

// --- Tensor methods that are views or copies

Tensor Tensor::reshape(IntList s) const { return glia::reshape(*this, s); }
Tensor Tensor::view(IntList s) const { return glia::view(*this, s); }
Tensor Tensor::permute(IntList d) const { return glia::permute(*this, d); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return glia::transpose(*this, a, b); }
Tensor Tensor::t() const {
  GLIA_CHECK(dim() <= 2, ShapeError, "t: expected a tensor of rank <= 2, got shape ", to_string(shape()),
             "; use transpose");
  return dim() < 2 ? *this : glia::transpose(*this, 0, 1);
}
Tensor Tensor::slice(int64_t d, int64_t s, int64_t e, int64_t st) const { return glia::slice(*this, d, s, e, st); }
Tensor Tensor::narrow(int64_t d, int64_t s, int64_t l) const { return glia::narrow(*this, d, s, l); }
Tensor Tensor::select(int64_t d, int64_t i) const { return glia::select(*this, d, i); }
Tensor Tensor::expand(IntList s) const { return glia::expand(*this, s); }
Tensor Tensor::squeeze() const { return glia::squeeze(*this); }
Tensor Tensor::squeeze(int64_t d) const { return glia::squeeze(*this, d); }
Tensor Tensor::unsqueeze(int64_t d) const { return glia::unsqueeze(*this, d); }
Tensor Tensor::flatten(int64_t s, int64_t e) const { return glia::flatten(*this, s, e); }
Tensor Tensor::contiguous() const { return glia::contiguous(*this); }
Tensor Tensor::clone() const { return glia::clone(*this); }
Tensor Tensor::to(DType t) const { return glia::cast(*this, t); }
Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  GLIA_CHECK(!is_symbolic(), ValueError, "to: moving a symbolic (graph) tensor from ", device().str(), " to ", d.str(),
             " is not supported yet");
  Attrs a;
  detail::set_device_attrs(a, "device_type", "device_index", d);
  detail::set_device_attrs(a, "from_type", "from_index", device());
  return call(op_to_device, {*this}, std::move(a));
}

}  // namespace glia
