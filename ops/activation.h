// Activations beyond ops/elementwise.h, each a forward op with its own backward op.
//
//   Tensor y = lethe::leaky_relu(x, 0.2);   // x > 0 ? x : 0.2 x
//   Tensor z = lethe::silu(x);              // x sigmoid(x)
#pragma once

#include "framework/tensor.h"

namespace lethe {

Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor silu(const Tensor& x);

}  // namespace lethe
