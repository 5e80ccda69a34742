// Normalisations.
#pragma once

#include <vector>

#include "framework/tensor.h"

namespace lethe {

// Normalises over the trailing dims of `normalized_shape`; weight/bias may be undefined.
Tensor layer_norm(const Tensor& x, const std::vector<int64_t>& normalized_shape,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);

// x [N, C, ...]. Training: batch statistics, and (when running_mean/var are defined) a separate
// side-effect node updates them with `momentum` (unbiased variance, as PyTorch). Eval: running
// stats.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5);

}  // namespace lethe
