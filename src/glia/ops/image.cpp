#include "glia/ops/image.h"

#include "glia/ops/op.h"

namespace glia {

GLIA_OP(translate_images).inputs({"images", "dy", "dx"}).non_differentiable().infer([](InferContext& c) {
  check_floating(c.input(0), "translate_images", "image batch");
  GLIA_CHECK(c.shape(0).size() == 4, ShapeError, "translate_images: expected images [N, H, W, C], got shape ",
             to_string(c.shape(0)));
  int64_t n = c.shape(0)[0];
  for (size_t i = 1; i <= 2; ++i)
    GLIA_CHECK(c.shape(i) == Shape{n}, ShapeError, "translate_images: expected ", n, " shifts, got shape ",
               to_string(c.shape(i)));
  c.set_output(c.shape(0), c.dtype(0));
});

Tensor translate_images(const Tensor& images, const Tensor& dy, const Tensor& dx, const TranslateOptions& o) {
  GLIA_CHECK(o.fill_mode == "reflect" || o.fill_mode == "wrap" || o.fill_mode == "nearest" || o.fill_mode == "constant",
             ValueError, "translate_images: unknown fill_mode '", o.fill_mode, "'");
  GLIA_CHECK(o.interpolation == "bilinear" || o.interpolation == "nearest", ValueError,
             "translate_images: unknown interpolation '", o.interpolation, "'");
  return call(op_translate_images, {images, dy.to(DType::f32), dx.to(DType::f32)},
              {{"fill_mode", o.fill_mode}, {"interpolation", o.interpolation}, {"fill_value", o.fill_value}});
}

}  // namespace glia
