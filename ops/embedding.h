#pragma once

#include "framework/tensor.h"

namespace lethe {

// weight [num, dim], indices i64 [...] -> [..., dim]. Out-of-range indices raise lethe::Error.
Tensor embedding(const Tensor& weight, const Tensor& indices);

}  // namespace lethe
