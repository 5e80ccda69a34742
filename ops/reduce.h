// Reductions over axes (empty = all), with keepdim as in PyTorch.
#pragma once

#include <vector>

#include "framework/tensor.h"

namespace lethe {

Tensor sum(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
Tensor max(const Tensor& x, int axis, bool keepdim = false);     // values
Tensor argmax(const Tensor& x, int axis, bool keepdim = false);  // i64 indices, not differentiable

}  // namespace lethe
