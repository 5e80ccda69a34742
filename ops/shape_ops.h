// Reshaping and rearranging. Storage is contiguous row-major, so these copy.
#pragma once

#include <vector>

#include "framework/tensor.h"

namespace lethe {

Tensor reshape(const Tensor& x, const Shape& s);  // one dimension may be -1
Tensor flatten(const Tensor& x, int start_dim = 0, int end_dim = -1);
Tensor transpose(const Tensor& x, int d0, int d1);
Tensor permute(const Tensor& x, const std::vector<int>& dims);
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end, int64_t step = 1);
Tensor concat(const std::vector<Tensor>& xs, int axis);
Tensor unsqueeze(const Tensor& x, int d);
Tensor squeeze(const Tensor& x, int d);

}  // namespace lethe
