// Element types: f32 (training), f64 (gradient checks), i64 (labels, indices).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>

#include "framework/error.h"

namespace lethe {

enum class DType : uint8_t { f32, f64, i64 };

constexpr size_t dtype_size(DType t) {
  return t == DType::f32 ? 4 : 8;
}
constexpr const char* dtype_name(DType t) {
  return t == DType::f32 ? "f32" : t == DType::f64 ? "f64" : "i64";
}
constexpr bool is_floating(DType t) {
  return t != DType::i64;
}
inline std::ostream& operator<<(std::ostream& os, DType t) {
  return os << dtype_name(t);
}

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::i64;
}

// Calls f with a value of the C++ type of t: dispatch_float(t, [&](auto tag){ using T =
// decltype(tag); });
template <typename F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  if (t == DType::f32) return f(float{});
  if (t == DType::f64) return f(double{});
  throw Error(
      detail::concat(op, ": expected a floating-point tensor (f32 or f64), got ", dtype_name(t)));
}
template <typename F>
decltype(auto) dispatch_all(DType t, F&& f) {
  if (t == DType::f32) return f(float{});
  if (t == DType::f64) return f(double{});
  return f(int64_t{});
}

}  // namespace lethe
