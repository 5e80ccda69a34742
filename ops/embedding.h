#pragma once

#include <optional>

#include "framework/tensor.h"

namespace lethe {

// weight [num, dim], indices i64 [...] -> [..., dim]. Out-of-range indices raise lethe::Error.
// padding_idx (negative counts from the end): that row gets no gradient, as PyTorch.
Tensor embedding(const Tensor& weight, const Tensor& indices,
                 std::optional<int64_t> padding_idx = std::nullopt);

}  // namespace lethe
