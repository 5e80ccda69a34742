// N-d shapes, row-major strides and NumPy broadcasting.
//
//   Shape s{2, 3, 4};  s.numel() == 24;  broadcast_shapes({2,1,4}, {3,1}) == Shape{2,3,4}
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace lethe {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : dims_(d) {}
  explicit Shape(std::vector<int64_t> d) : dims_(std::move(d)) {}

  int ndim() const { return static_cast<int>(dims_.size()); }
  int64_t numel() const;
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(i)]; }
  // Negative indices count from the end, as in PyTorch.
  int64_t at(int i) const;
  const std::vector<int64_t>& dims() const { return dims_; }
  std::vector<int64_t> strides() const;  // row-major, in elements
  bool operator==(const Shape&) const = default;
  std::string str() const;  // "[2, 3, 4]"

  // Wraps a possibly negative axis into [0, ndim); throws naming `op` when out of range.
  int axis(int a, const char* op) const;

 private:
  std::vector<int64_t> dims_;
};

std::ostream& operator<<(std::ostream& os, const Shape& s);

// NumPy broadcasting; throws lethe::Error naming `op` and both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace lethe
