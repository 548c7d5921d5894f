// CPU kernel of translate_images.
#include <cmath>

#include "glia/backends/cpu/kernel_utils.h"

namespace glia::cpu {
namespace {

/// Maps a coordinate outside [0, n) back inside per fill mode; -1 means "use the fill value".
int64_t fill_index(int64_t i, int64_t n, int mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case 0: {  // reflect: d c b a | a b c d | d c b a
      int64_t period = 2 * n;
      int64_t m = ((i % period) + period) % period;
      return m < n ? m : period - 1 - m;
    }
    case 1:  // wrap
      return ((i % n) + n) % n;
    case 2:  // nearest
      return i < 0 ? 0 : n - 1;
    default:
      return -1;
  }
}

}  // namespace

GLIA_KERNEL(translate_images, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  Tensor x = k.input(0).contiguous();
  Tensor dyt = k.input(1).contiguous(), dxt = k.input(2).contiguous();
  const std::string& fm = k.attr<std::string>("fill_mode");
  int mode = fm == "reflect" ? 0 : fm == "wrap" ? 1 : fm == "nearest" ? 2 : 3;
  bool bilinear = k.attr<std::string>("interpolation") == "bilinear";
  double fill = k.attr<double>("fill_value");
  int64_t N = x.shape()[0], H = x.shape()[1], W = x.shape()[2], C = x.shape()[3];
  const float* dy = dyt.data<float>();
  const float* dx = dxt.data<float>();
  visit_float(out.dtype(), "translate_images", [&]<class T>() {
    const T* in = static_cast<const T*>(x.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    parallel_for(N * H, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int64_t n = r / H, y = r % H;
        double sy = static_cast<double>(y) - dy[n];
        for (int64_t xx = 0; xx < W; ++xx) {
          double sx = static_cast<double>(xx) - dx[n];
          T* dst = o + ((n * H + y) * W + xx) * C;
          auto sample = [&](int64_t iy, int64_t ix, int64_t c) -> double {
            int64_t fy = fill_index(iy, H, mode), fx = fill_index(ix, W, mode);
            if (fy < 0 || fx < 0) return fill;
            return static_cast<double>(in[((n * H + fy) * W + fx) * C + c]);
          };
          if (!bilinear) {
            int64_t iy = static_cast<int64_t>(std::floor(sy + 0.5)), ix = static_cast<int64_t>(std::floor(sx + 0.5));
            for (int64_t c = 0; c < C; ++c) dst[c] = static_cast<T>(sample(iy, ix, c));
            continue;
          }
          int64_t y0 = static_cast<int64_t>(std::floor(sy)), x0 = static_cast<int64_t>(std::floor(sx));
          double wy = sy - static_cast<double>(y0), wx = sx - static_cast<double>(x0);
          for (int64_t c = 0; c < C; ++c) {
            double v = (1 - wy) * ((1 - wx) * sample(y0, x0, c) + wx * sample(y0, x0 + 1, c)) +
                       wy * ((1 - wx) * sample(y0 + 1, x0, c) + wx * sample(y0 + 1, x0 + 1, c));
            dst[c] = static_cast<T>(v);
          }
        }
      }
    });
  });
});

}  // namespace glia::cpu
