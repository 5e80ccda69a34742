// Elementwise ops with NumPy broadcasting. Kernels vectorise and use OpenMP above a size threshold.
#pragma once

#include <optional>
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
// |x| and its sign (-1, 0, 1; sign(NaN) = 0 as torch); f32, f64 and i64.
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor log1p(const Tensor& x);  // log(1 + x), accurate near 0
Tensor expm1(const Tensor& x);  // exp(x) - 1, accurate near 0
// Elements limited to [min, max] (either bound optional; min > max gives max); NaN stays NaN.
// The gradient passes where min <= x <= max, as torch.clamp. i64 tensors take integral bounds.
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max = std::nullopt);
// Elementwise smaller / larger of a and b (broadcasting; a NaN in either gives NaN). Where a == b
// each operand gets half the gradient, as torch.minimum / torch.maximum.
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
// a ** b elementwise (broadcasting, floating-point), as torch.pow(Tensor, Tensor).
Tensor pow(const Tensor& a, const Tensor& b);
Tensor cast(const Tensor& x, DType t);
// Sums a broadcast gradient back to `s` (the inverse of broadcasting to x's shape).
Tensor sum_to(const Tensor& x, const Shape& s);
// Broadcasts x to shape s (materialised copy).
Tensor broadcast_to(const Tensor& x, const Shape& s);

}  // namespace lethe
