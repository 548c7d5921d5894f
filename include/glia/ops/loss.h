// Softmax and losses. Losses reduce by "mean" (default), "sum" or "none".
#pragma once

#include <string>

#include "glia/core/tensor.h"

namespace glia {

/// softmax / log-softmax along axis, computed stably (shifted by the max). A fused kernel
/// where the backend has one; the composite exp(x - max) / sum is the reference.
Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

struct CrossEntropyOptions {
  std::string reduction = "mean";
  /// In [0, 1]: the target is mixed with the uniform distribution 1/C, as in PyTorch.
  double label_smoothing = 0.0;
  /// Class axis of the logits (the last, as in Keras).
  int64_t axis = -1;
};

/// Cross-entropy from logits [.., C]. target: class indices (int32/int64 of the
/// logits' shape without the class axis; a class outside [0, C) is a ValueError) or
/// probabilities (float, same shape as logits). "mean" averages over all samples.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o = {});
/// Negative log-likelihood of log-probabilities [N, C] (or any [.., C]: classes on the
/// last axis) at integer targets [N] (the input's shape without the class axis).
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const std::string& reduction = "mean");
/// Binary cross-entropy of probabilities in [0, 1] (log clamped at -100, as PyTorch); the
/// target must be floating point and of the same shape (as for the losses below).
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, const std::string& reduction = "mean");
/// Binary cross-entropy from logits, computed stably: max(x, 0) - x t + log1p(exp(-|x|)).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const std::string& reduction = "mean");
/// Regression losses; the target (of pred's shape) is converted to pred's dtype.
Tensor mse_loss(const Tensor& pred, const Tensor& target, const std::string& reduction = "mean");
Tensor l1_loss(const Tensor& pred, const Tensor& target, const std::string& reduction = "mean");
/// 0.5 d^2 where |d| <= delta, delta (|d| - 0.5 delta) beyond (d = pred - target).
Tensor huber_loss(const Tensor& pred, const Tensor& target, double delta = 1.0, const std::string& reduction = "mean");

/// Applies "mean", "sum" or "none" to a per-element loss; another name is a ValueError naming `op`.
Tensor reduce_loss(const Tensor& loss, const std::string& reduction, const char* op);

}  // namespace glia
