// Movement ops: views that share storage (reshape, permute, slice, expand,
// ...) and copies that build new tensors (concat, stack, pad, repeat, ...).
#pragma once

#include <string>
#include <vector>

#include "glia/core/tensor.h"

namespace glia {

// --- views (differentiable; the functions behind the Tensor methods of the same names)
Tensor reshape(const Tensor& x, IntList shape);
Tensor view(const Tensor& x, IntList shape);
Tensor permute(const Tensor& x, IntList dims);
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
/// Elements start, start+step, ... before end along dim; negative start/end count from the end
/// and are clamped, as in Python slicing.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor expand(const Tensor& x, IntList shape);
Tensor broadcast_to(const Tensor& x, IntList shape);
Tensor squeeze(const Tensor& x);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);

// --- copies
/// A contiguous copy with its own storage (differentiable).
Tensor clone(const Tensor& x);
Tensor contiguous(const Tensor& x);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
/// Pieces of `size` along dim (the last may be smaller).
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim = 0);
/// Pieces of the given sizes along dim.
std::vector<Tensor> split(const Tensor& x, IntList sizes, int64_t dim);
/// `chunks` nearly equal pieces along dim.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
/// Pads with (before, after) pairs starting from the LAST dimension, as torch.nn.functional.pad.
/// mode: "constant", "reflect" or "replicate".
Tensor pad(const Tensor& x, IntList pads, const std::string& mode = "constant", double value = 0.0);
/// Tiles x `repeats[i]` times along dim i (torch.Tensor.repeat; repeats may add leading dims).
Tensor repeat(const Tensor& x, IntList repeats);
/// NumPy/Keras tile: like repeat, but fewer repeats than dims are padded with leading 1s.
Tensor tile(const Tensor& x, IntList reps);
/// Lower / upper triangle of the last two dims; `diagonal` shifts the boundary.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);
/// Reverses the order of elements along dims.
Tensor flip(const Tensor& x, IntList dims);

}  // namespace glia
