// Tensor's op methods and operators: thin forwards to the free functions of ops/.
#include "framework/tensor.h"
#include "ops/ops.h"

namespace lethe {

Tensor Tensor::reshape(const Shape& s) const {
  return lethe::reshape(*this, s);
}
Tensor Tensor::flatten(int start_dim, int end_dim) const {
  return lethe::flatten(*this, start_dim, end_dim);
}
Tensor Tensor::transpose(int d0, int d1) const {
  return lethe::transpose(*this, d0, d1);
}
Tensor Tensor::permute(const std::vector<int>& dims) const {
  return lethe::permute(*this, dims);
}
Tensor Tensor::slice(int axis, int64_t start, int64_t end, int64_t step) const {
  return lethe::slice(*this, axis, start, end, step);
}
Tensor Tensor::unsqueeze(int d) const {
  return lethe::unsqueeze(*this, d);
}
Tensor Tensor::squeeze(int d) const {
  return lethe::squeeze(*this, d);
}
Tensor Tensor::to(DType t) const {
  return lethe::cast(*this, t);
}

Tensor Tensor::neg() const {
  return lethe::neg(*this);
}
Tensor Tensor::exp() const {
  return lethe::exp(*this);
}
Tensor Tensor::log() const {
  return lethe::log(*this);
}
Tensor Tensor::sqrt() const {
  return lethe::sqrt(*this);
}
Tensor Tensor::pow(double e) const {
  return lethe::pow(*this, e);
}
Tensor Tensor::relu() const {
  return lethe::relu(*this);
}
Tensor Tensor::sigmoid() const {
  return lethe::sigmoid(*this);
}
Tensor Tensor::tanh() const {
  return lethe::tanh(*this);
}
Tensor Tensor::abs() const {
  return lethe::abs(*this);
}
Tensor Tensor::sign() const {
  return lethe::sign(*this);
}
Tensor Tensor::log1p() const {
  return lethe::log1p(*this);
}
Tensor Tensor::expm1() const {
  return lethe::expm1(*this);
}
Tensor Tensor::pow(const Tensor& e) const {
  return lethe::pow(*this, e);
}
Tensor Tensor::clamp(std::optional<double> min, std::optional<double> max) const {
  return lethe::clamp(*this, min, max);
}
Tensor Tensor::minimum(const Tensor& o) const {
  return lethe::minimum(*this, o);
}
Tensor Tensor::maximum(const Tensor& o) const {
  return lethe::maximum(*this, o);
}

Tensor Tensor::eq(const Tensor& o) const {
  return lethe::eq(*this, o);
}
Tensor Tensor::ne(const Tensor& o) const {
  return lethe::ne(*this, o);
}
Tensor Tensor::lt(const Tensor& o) const {
  return lethe::lt(*this, o);
}
Tensor Tensor::le(const Tensor& o) const {
  return lethe::le(*this, o);
}
Tensor Tensor::gt(const Tensor& o) const {
  return lethe::gt(*this, o);
}
Tensor Tensor::ge(const Tensor& o) const {
  return lethe::ge(*this, o);
}
Tensor Tensor::eq(double s) const {
  return lethe::eq(*this, s);
}
Tensor Tensor::ne(double s) const {
  return lethe::ne(*this, s);
}
Tensor Tensor::lt(double s) const {
  return lethe::lt(*this, s);
}
Tensor Tensor::le(double s) const {
  return lethe::le(*this, s);
}
Tensor Tensor::gt(double s) const {
  return lethe::gt(*this, s);
}
Tensor Tensor::ge(double s) const {
  return lethe::ge(*this, s);
}
Tensor Tensor::where(const Tensor& cond, const Tensor& other) const {
  return lethe::where(cond, *this, other);
}

Tensor Tensor::gather(int dim, const Tensor& index) const {
  return lethe::gather(*this, dim, index);
}
Tensor Tensor::scatter_add(int dim, const Tensor& index, const Tensor& src) const {
  return lethe::scatter_add(*this, dim, index, src);
}
Tensor Tensor::index_select(int dim, const Tensor& index) const {
  return lethe::index_select(*this, dim, index);
}

Tensor Tensor::sum(const std::vector<int>& axes, bool keepdim) const {
  return lethe::sum(*this, axes, keepdim);
}
Tensor Tensor::mean(const std::vector<int>& axes, bool keepdim) const {
  return lethe::mean(*this, axes, keepdim);
}
Tensor Tensor::max(int axis, bool keepdim) const {
  return lethe::max(*this, axis, keepdim);
}
Tensor Tensor::argmax(int axis, bool keepdim) const {
  return lethe::argmax(*this, axis, keepdim);
}
Tensor Tensor::min(int axis, bool keepdim) const {
  return lethe::min(*this, axis, keepdim);
}
Tensor Tensor::argmin(int axis, bool keepdim) const {
  return lethe::argmin(*this, axis, keepdim);
}
Tensor Tensor::cumsum(int axis) const {
  return lethe::cumsum(*this, axis);
}
Tensor Tensor::matmul(const Tensor& o) const {
  return lethe::matmul(*this, o);
}

Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
Tensor operator+(const Tensor& a, double b) {
  return add_scalar(a, b);
}
Tensor operator-(const Tensor& a, double b) {
  return add_scalar(a, -b);
}
Tensor operator*(const Tensor& a, double b) {
  return mul_scalar(a, b);
}
Tensor operator/(const Tensor& a, double b) {
  return mul_scalar(a, 1.0 / b);
}
Tensor operator+(double a, const Tensor& b) {
  return add_scalar(b, a);
}
Tensor operator-(double a, const Tensor& b) {
  return rsub_scalar(b, a);
}
Tensor operator*(double a, const Tensor& b) {
  return mul_scalar(b, a);
}
Tensor operator/(double a, const Tensor& b) {
  return rdiv_scalar(b, a);
}
Tensor operator-(const Tensor& a) {
  return neg(a);
}

}  // namespace lethe
