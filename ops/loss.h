// Losses, as torch.nn.functional. reduction: "mean", "sum" or "none".
//
//   Tensor l = lethe::cross_entropy(logits, target, "mean", -100, class_weights, 0.1);
//   Tensor b = lethe::binary_cross_entropy_with_logits(scores, labels, {}, pos_weight);
#pragma once

#include <string>

#include "framework/tensor.h"

namespace lethe {

// logits [N, C] (or [N, C, d...]), target i64 class indices [N] (or [N, d...]), weight [C] or
// undefined, label_smoothing in [0, 1]. A weighted mean divides by the sum of the weights of the
// non-ignored targets, as PyTorch.
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const std::string& reduction = "mean", int64_t ignore_index = -100,
                     const Tensor& weight = {}, double label_smoothing = 0.0);
// log_probs [N, C] (or [N, C, d...]) as log_softmax gives them; otherwise as cross_entropy.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight = {},
                const std::string& reduction = "mean", int64_t ignore_index = -100);
// input (logits) and target one shape; weight broadcast to it; pos_weight broadcast to it (usually
// [C] for [N, C]). Stable for any logit. Differentiable in input (and weight) only.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const Tensor& weight = {}, const Tensor& pos_weight = {},
                                        const std::string& reduction = "mean");
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean");
// 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta).
Tensor huber_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean",
                  double delta = 1.0);
// 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (l1 when beta = 0).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      const std::string& reduction = "mean", double beta = 1.0);

}  // namespace lethe
