// Image ops for augmentation (NHWC).
#pragma once

#include <string>

#include "glia/core/tensor.h"

namespace glia {

struct TranslateOptions {
  std::string fill_mode = "reflect";       // "reflect", "wrap", "nearest", "constant"
  std::string interpolation = "bilinear";  // "bilinear" or "nearest"
  double fill_value = 0.0;
};

/// Shifts each image of [N, H, W, C] down by dy[i] and right by dx[i] pixels (fractional shifts
/// interpolate); pixels that come from outside are filled per fill_mode, as Keras's
/// RandomTranslation. Not differentiable (an input augmentation).
Tensor translate_images(const Tensor& images, const Tensor& dy, const Tensor& dx, const TranslateOptions& o = {});

}  // namespace glia
