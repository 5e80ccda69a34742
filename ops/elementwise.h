// Elementwise ops with NumPy broadcasting. Kernels vectorise and use OpenMP above a size threshold.
#pragma once

#include <string>

#include "framework/tensor.h"

namespace lethe {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// x op scalar, recorded with the scalar as an attribute (no constant tensor).
Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);
Tensor rsub_scalar(const Tensor& x, double s);  // s - x
Tensor rdiv_scalar(const Tensor& x, double s);  // s / x
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor pow(const Tensor& x, double e);
Tensor relu(const Tensor& x);
// approximate: "none" (erf, exact) or "tanh".
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor cast(const Tensor& x, DType t);
// Sums a broadcast gradient back to `s` (the inverse of broadcasting to x's shape).
Tensor sum_to(const Tensor& x, const Shape& s);
// Broadcasts x to shape s (materialised copy).
Tensor broadcast_to(const Tensor& x, const Shape& s);

}  // namespace lethe
