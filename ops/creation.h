// Creating tensors. These are materialised at once in the current session (nothing is recorded).
// Random tensors draw from the counter-based generator keyed by (session seed, stream of use).
//
//   auto w = lethe::randn({256, 784}) * 0.05;
//   auto y = lethe::from_vector<int64_t>({1, 0, 2}, {3});
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "framework/tensor.h"

namespace lethe {

Tensor zeros(const Shape& s, DType t = DType::f32);
Tensor ones(const Shape& s, DType t = DType::f32);
Tensor full(const Shape& s, double value, DType t = DType::f32);
Tensor arange(double start, double end, double step = 1.0, DType t = DType::f32);
inline Tensor arange(int64_t n, DType t = DType::i64) {
  return arange(0.0, double(n), 1.0, t);
}
namespace detail {
template <typename T>
Tensor from_vector_impl(const std::vector<T>& values, const Shape& s);
}
// Element types: float (f32), double (f64), int64_t (i64). Any other T is a compile-time error
// saying so (convert first, e.g. std::vector<int64_t>(v.begin(), v.end())).
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& s) {
  static_assert(
      std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int64_t>,
      "lethe::from_vector: the element type must be float (f32), double (f64) or int64_t (i64); "
      "convert the vector first, e.g. std::vector<int64_t>(v.begin(), v.end())");
  return detail::from_vector_impl(values, s);
}
template <typename T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, Shape{static_cast<int64_t>(values.size())});
}
Tensor rand(const Shape& s, DType t = DType::f32);   // uniform [0, 1)
Tensor randn(const Shape& s, DType t = DType::f32);  // standard normal
Tensor uniform(const Shape& s, double lo, double hi, DType t = DType::f32);

// Recorded on the step graph (no inputs), for use inside graphs (e.g. the gradient seed).
Tensor full_like(const Tensor& x, double value);
inline Tensor zeros_like(const Tensor& x) {
  return full_like(x, 0.0);
}
inline Tensor ones_like(const Tensor& x) {
  return full_like(x, 1.0);
}
// The implied gradient of backward(): ones shaped like `loss`, recorded with `loss` as an input, so
// that the step graph says the backward pass starts from the loss (the scheduler's chain and sqrt
// planners split forward from backward there).
Tensor gradient_seed(const Tensor& loss);

}  // namespace lethe
