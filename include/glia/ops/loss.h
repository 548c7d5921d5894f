// Softmax and losses. Losses reduce by "mean" (default), "sum" or "none".
#pragma once

#include <string>

#include "glia/core/tensor.h"

namespace glia {

Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

struct CrossEntropyOptions {
  std::string reduction = "mean";
  double label_smoothing = 0.0;
  /// Class axis of the logits (the last, as in Keras).
  int64_t axis = -1;
};

/// Cross-entropy from logits [.., C]. target: class indices (int32/int64 of the
/// logits' shape without the class axis) or probabilities (float, same shape as logits).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o = {});
/// Negative log-likelihood of log-probabilities [N, C] at integer targets [N].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const std::string& reduction = "mean");
/// Binary cross-entropy of probabilities in [0, 1] (log clamped at -100, as PyTorch).
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, const std::string& reduction = "mean");
/// Binary cross-entropy from logits, computed stably.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const std::string& reduction = "mean");
Tensor mse_loss(const Tensor& pred, const Tensor& target, const std::string& reduction = "mean");
Tensor l1_loss(const Tensor& pred, const Tensor& target, const std::string& reduction = "mean");
Tensor huber_loss(const Tensor& pred, const Tensor& target, double delta = 1.0, const std::string& reduction = "mean");

/// Applies "mean", "sum" or "none" to a per-element loss.
Tensor reduce_loss(const Tensor& loss, const std::string& reduction, const char* op);

}  // namespace glia
