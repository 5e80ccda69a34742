// Reductions over axes (empty = all), with keepdim as in PyTorch.
#pragma once

#include <vector>

#include "framework/tensor.h"

namespace lethe {

Tensor sum(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
Tensor max(const Tensor& x, int axis, bool keepdim = false);     // values
Tensor argmax(const Tensor& x, int axis, bool keepdim = false);  // i64 indices, not differentiable
// As max and argmax, for the smallest value (a NaN counts as the smallest; ties: first index).
Tensor min(const Tensor& x, int axis, bool keepdim = false);
Tensor argmin(const Tensor& x, int axis, bool keepdim = false);
// Inclusive prefix sums along axis (same shape and dtype), as torch.cumsum; the gradient is the
// cumsum of the gradient from the end.
Tensor cumsum(const Tensor& x, int axis);

}  // namespace lethe
