// Convolution and pooling on channels-last (NHWC / NWC) tensors, as Keras.
#pragma once

#include <array>
#include <string>

#include "glia/core/tensor.h"

namespace glia {

/// Padding: "valid" (none), "same" (output size = ceil(input / stride), the extra cell at the
/// bottom / right, as TensorFlow), or explicit.
struct Padding2d {
  std::string mode = "valid";                        // "valid", "same" or "explicit"
  int64_t top = 0, bottom = 0, left = 0, right = 0;  // used with "explicit"
  static Padding2d valid() { return {}; }
  static Padding2d same() { return {"same"}; }
  static Padding2d explicit_(int64_t h, int64_t w) { return {"explicit", h, h, w, w}; }
  static Padding2d explicit_(int64_t t, int64_t b, int64_t l, int64_t r) { return {"explicit", t, b, l, r}; }
};

struct Conv2dOptions {
  std::array<int64_t, 2> stride = {1, 1};
  Padding2d padding = Padding2d::valid();
  std::array<int64_t, 2> dilation = {1, 1};
  int64_t groups = 1;
};

/// 2-D convolution. input [N, H, W, C_in]; weight [KH, KW, C_in / groups, C_out]
/// (Keras's kernel layout); bias [C_out] or undefined. Output [N, OH, OW, C_out].
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, const Conv2dOptions& o = {});

/// The gradient of conv2d with respect to its input, for an input of `input_shape`
/// (also a transposed convolution). Differentiable.
Tensor conv2d_input_grad(const Tensor& grad_out, const Tensor& weight, IntList input_shape,
                         const Conv2dOptions& o = {});
/// The gradient of conv2d with respect to its weight, for a weight of `weight_shape`. Differentiable.
Tensor conv2d_weight_grad(const Tensor& input, const Tensor& grad_out, IntList weight_shape,
                          const Conv2dOptions& o = {});

struct Conv1dOptions {
  int64_t stride = 1;
  std::string padding = "valid";  // "valid", "same", or "causal" (Keras)
  int64_t dilation = 1;
  int64_t groups = 1;
};

/// 1-D convolution. input [N, W, C_in]; weight [K, C_in / groups, C_out]; bias [C_out].
Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, const Conv1dOptions& o = {});

struct Pool2dOptions {
  std::array<int64_t, 2> kernel = {2, 2};
  std::array<int64_t, 2> stride = {0, 0};  // 0: same as kernel (Keras's default)
  Padding2d padding = Padding2d::valid();  // explicit pads must be smaller than the kernel
};

/// Max pooling over [N, H, W, C]. NaN in a window is its max (as PyTorch).
Tensor max_pool2d(const Tensor& input, const Pool2dOptions& o = {});
/// Average pooling over [N, H, W, C]; padded cells are not counted (Keras's "same").
Tensor avg_pool2d(const Tensor& input, const Pool2dOptions& o = {});
/// Mean over H and W: [N, H, W, C] -> [N, C] (or [N, 1, 1, C] with keepdims).
Tensor global_avg_pool2d(const Tensor& input, bool keepdims = false);

}  // namespace glia
