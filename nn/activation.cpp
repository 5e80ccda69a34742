#include "nn/activation.h"

#include "ops/activation.h"
#include "ops/conv.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/shape_ops.h"

namespace lethe::nn {

Tensor ReLU::forward(const Tensor& x) {
  return relu(x);
}
Tensor Sigmoid::forward(const Tensor& x) {
  return sigmoid(x);
}
Tensor Tanh::forward(const Tensor& x) {
  return tanh(x);
}
Tensor SiLU::forward(const Tensor& x) {
  return silu(x);
}

Tensor LeakyReLU::forward(const Tensor& x) {
  return leaky_relu(x, options_.negative_slope());
}
void LeakyReLU::pretty_print(std::ostream& os) const {
  os << "LeakyReLU(negative_slope=" << options_.negative_slope() << ")";
}

GELU::GELU(const GELUOptions& o) : UnaryModule("GELU"), options_(o) {
  LETHE_CHECK(o.approximate() == "none" || o.approximate() == "tanh",
              "GELU: approximate must be 'none' or 'tanh', got '", o.approximate(), "'");
}
Tensor GELU::forward(const Tensor& x) {
  return gelu(x, options_.approximate());
}
void GELU::pretty_print(std::ostream& os) const {
  os << "GELU(approximate='" << options_.approximate() << "')";
}

Dropout::Dropout(const DropoutOptions& o) : UnaryModule("Dropout"), options_(o) {
  LETHE_CHECK(o.p() >= 0 && o.p() < 1, "Dropout: p must be in [0, 1), got ", o.p());
}
Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || options_.p() == 0) return x;
  return dropout(x, options_.p(), true);
}
void Dropout::pretty_print(std::ostream& os) const {
  os << "Dropout(p=" << options_.p() << ")";
}

Tensor Flatten::forward(const Tensor& x) {
  return flatten(x, options_.start_dim(), options_.end_dim());
}
void Flatten::pretty_print(std::ostream& os) const {
  os << "Flatten(start_dim=" << options_.start_dim() << ", end_dim=" << options_.end_dim() << ")";
}

Tensor MaxPool2d::forward(const Tensor& x) {
  const auto& o = options_;
  return max_pool2d(x, o.kernel_size(), o.stride(), o.padding(), o.dilation(), o.ceil_mode());
}
std::pair<Tensor, Tensor> MaxPool2d::forward_with_indices(const Tensor& x) {
  const auto& o = options_;
  return max_pool2d_with_indices(x, o.kernel_size(), o.stride(), o.padding(), o.dilation(),
                                 o.ceil_mode());
}
void MaxPool2d::pretty_print(std::ostream& os) const {
  os << "MaxPool2d(kernel_size=" << options_.kernel_size()[0] << ", stride=" << options_.stride()[0]
     << ")";
}

Tensor AvgPool2d::forward(const Tensor& x) {
  const auto& o = options_;
  return avg_pool2d(x, o.kernel_size(), o.stride(), o.padding(), o.ceil_mode(),
                    o.count_include_pad(), o.divisor_override());
}
void AvgPool2d::pretty_print(std::ostream& os) const {
  const auto& o = options_;
  os << "AvgPool2d(kernel_size=(" << o.kernel_size()[0] << ", " << o.kernel_size()[1]
     << "), stride=(" << o.stride()[0] << ", " << o.stride()[1] << "), padding=(" << o.padding()[0]
     << ", " << o.padding()[1] << "))";
}

}  // namespace lethe::nn
