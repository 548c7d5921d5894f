// CPU kernels of the random ops. Element i depends only on (seed, counter + i), so the result does
// not depend on the number of threads.
#include "glia/core/random.h"

#include <cmath>

#include "glia/backends/cpu/kernel_utils.h"

namespace glia::cpu {

GLIA_KERNEL(random_uniform, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  double low = k.attr<double>("low"), high = k.attr<double>("high");
  int64_t n = out.numel();
  auto draw = random::reserve(static_cast<uint64_t>((n + 1) / 2));
  visit_float(out.dtype(), "rand", [&]<class T>() {
    T* p = static_cast<T*>(out.data_ptr());
    parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        auto r = random::philox(draw.seed, 0, draw.offset + static_cast<uint64_t>(i / 2));
        int lane = static_cast<int>(i % 2) * 2;
        T v = static_cast<T>(low + (high - low) * random::to_unit_double(r[lane], r[lane + 1]));
        // Rounding to a narrower type may reach `high`; keep the interval half-open.
        if (static_cast<double>(v) >= high && high > low) v = static_cast<T>(low);
        p[i] = v;
      }
    });
  });
});

GLIA_KERNEL(random_normal, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  double mean = k.attr<double>("mean"), sd = k.attr<double>("std");
  int64_t n = out.numel();
  auto draw = random::reserve(static_cast<uint64_t>(n));
  visit_float(out.dtype(), "randn", [&]<class T>() {
    T* p = static_cast<T*>(out.data_ptr());
    parallel_for(n, 1 << 13, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        auto r = random::philox(draw.seed, 0, draw.offset + static_cast<uint64_t>(i));
        double u1 = 1.0 - random::to_unit_double(r[0], r[1]);  // (0, 1]
        double u2 = random::to_unit_double(r[2], r[3]);
        p[i] = static_cast<T>(mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
      }
    });
  });
});

GLIA_KERNEL(random_int, CPU, [](KernelContext& k) {
  const Tensor& out = k.output();
  int64_t low = k.attr<int64_t>("low"), high = k.attr<int64_t>("high");
  int64_t n = out.numel();
  auto draw = random::reserve(static_cast<uint64_t>((n + 1) / 2));
  auto range = static_cast<uint64_t>(high - low);
  visit_dtype(out.dtype(), [&]<class T>() {
    T* p = static_cast<T*>(out.data_ptr());
    parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        auto r = random::philox(draw.seed, 0, draw.offset + static_cast<uint64_t>(i / 2));
        int lane = static_cast<int>(i % 2) * 2;
        uint64_t v = (static_cast<uint64_t>(r[lane]) << 32) | r[lane + 1];
        int64_t x = low + static_cast<int64_t>(v % range);
        if constexpr (std::is_integral_v<T>)
          p[i] = static_cast<T>(x);
        else
          p[i] = static_cast<T>(static_cast<double>(x));
      }
    });
  });
});

}  // namespace glia::cpu
