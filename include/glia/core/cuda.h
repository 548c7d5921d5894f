// CUDA devices: whether they can be used, how many there are, and waiting for their work.
// These functions exist in every build; in a build without the CUDA backend they say so.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "glia/core/device.h"
#include "glia/core/tensor.h"

namespace glia::cuda {

/// Whether this build of Glia has the CUDA backend compiled in.
bool built_with_cuda();
/// Whether at least one CUDA GPU can be used. Never throws; initializes CUDA lazily on first call.
bool is_available();
/// Number of usable CUDA GPUs (0 without a GPU, a driver or the CUDA backend).
int device_count();
/// Blocks until all work queued on device d's stream has finished. Throws DeviceError when d cannot be used.
void synchronize(Device d = Device::cuda(0));
/// What CUDA this build and this machine have, for reports and bug reports: the CUDA runtime,
/// driver, cuBLAS and cuDNN versions and each GPU (name, compute capability, memory,
/// multiprocessors), or why none can be used. Never throws.
std::string describe();
/// Lets float32 matmuls use TF32 tensor cores (faster, ~10 mantissa bits). Off by default, as in PyTorch.
void set_allow_tf32(bool allow);
bool allow_tf32();
/// Lets convolutions measure their choices (cuDNN's algorithms, NHWC or NCHW) the first time a
/// geometry is seen, and keep the fastest, as TensorFlow does by default and PyTorch does with
/// `torch.backends.cudnn.benchmark = True`. On by default (`GLIA_CONV_AUTOTUNE=0` in the environment
/// turns the default off); off, the first algorithm of cuDNN's heuristics that runs is kept. The first
/// call of each geometry then waits for the GPU (never inside a CUDA Graph recording, which keeps the
/// heuristics' choice). `GLIA_CONV_LOG=1` prints each choice with its timings to stderr.
void set_conv_autotune(bool on);
bool conv_autotune();

/// A copy of CPU tensor t in page-locked ("pinned") host memory, from a caching allocator; t itself
/// when it is pinned already. Copies from a pinned tensor to a GPU run asynchronously, straight from
/// its memory (PyTorch's `pin_memory()` with `non_blocking=True`): the tensor must not be written
/// until they are done (cuda::synchronize), though it may be dropped at once. fit, evaluate and
/// predict on a GPU build their batches in it (Dataset::batch with pin_memory). Throws DeviceError
/// without a GPU.
Tensor pin_memory(const Tensor& t);
/// A new contiguous CPU tensor in page-locked host memory (uninitialized), from the same caching
/// allocator: for data written once and then copied to a GPU (a batch gathered straight into it).
/// Throws DeviceError without a GPU.
Tensor empty_pinned(IntList shape, DType dtype = DType::f32);
/// Whether t is a CPU tensor in page-locked host memory (false without a GPU).
bool is_pinned(const Tensor& t);

/// Overlaps the copy of a training step's next batch to a GPU with the step itself (fit keeps one
/// per model for its replayed CUDA Graph steps). While the GPU runs a step, upload() copies the
/// next batch from page-locked host memory into staging buffers on the device, on a copy stream of
/// its own; the next step's take() then copies them into its input buffers on the device's stream,
/// a device-to-device copy of microseconds instead of the transfer over PCIe. One batch is staged at
/// a time: an upload starts only after the device's stream has done the previous take's copies.
class BatchStager {
 public:
  /// Throws DeviceError when d is not a usable CUDA device.
  explicit BatchStager(Device d);
  ~BatchStager();
  BatchStager(const BatchStager&) = delete;
  BatchStager& operator=(const BatchStager&) = delete;
  /// Starts copying `host` (contiguous, page-locked CPU tensors, held until copied) to the device.
  /// False, with nothing started, when one of them is not such a tensor.
  bool upload(const std::vector<Tensor>& host);
  /// When the last upload was of exactly the tensors `host` (the same objects), queues on the
  /// device's stream the copy of the staged batch into `dst` (contiguous device tensors of the same
  /// shapes and dtypes) and returns true. Otherwise queues nothing and returns false. Either way the
  /// staged batch is used up.
  bool take(const std::vector<Tensor>& host, const std::vector<Tensor>& dst);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace glia::cuda
