// Losses. reduction: "mean", "sum" or "none".
#pragma once

#include <string>

#include "framework/tensor.h"

namespace lethe {

// logits [N, C] (or [N, C, d...]), target i64 class indices [N] (or [N, d...]).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const std::string& reduction = "mean",
                     int64_t ignore_index = -100);
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean");

}  // namespace lethe
