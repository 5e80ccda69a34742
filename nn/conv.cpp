#include "nn/conv.h"

#include <cmath>

#include "nn/init.h"
#include "ops/conv.h"
#include "ops/creation.h"
#include "ops/shape_ops.h"

namespace lethe::nn {
namespace {

void check_conv_channels(const char* type, int64_t in, int64_t out, int64_t groups) {
  LETHE_CHECK(in > 0 && out > 0 && groups > 0, type,
              ": channels and groups must be positive, got in=", in, " out=", out,
              " groups=", groups);
  LETHE_CHECK(in % groups == 0 && out % groups == 0, type, ": in_channels (", in,
              ") and out_channels (", out, ") must be divisible by groups (", groups, ")");
}

// PyTorch's default: kaiming_uniform(a = sqrt(5)) weights, bias uniform in ±1/sqrt(fan_in).
void reset_conv_parameters(Tensor& weight, Tensor& bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    auto fan_in = init::calculate_fan_in_and_fan_out(weight.shape()).first;
    double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    init::uniform_(bias, -bound, bound);
  }
}

}  // namespace

Conv2d::Conv2d(const Conv2dOptions& o) : UnaryModule("Conv2d"), options_(o) {
  check_conv_channels("Conv2d", o.in_channels(), o.out_channels(), o.groups());
  LETHE_CHECK(o.kernel_size()[0] > 0 && o.kernel_size()[1] > 0,
              "Conv2d: kernel size must be positive");
  weight = register_parameter("weight", zeros({o.out_channels(), o.in_channels() / o.groups(),
                                               o.kernel_size()[0], o.kernel_size()[1]},
                                              o.dtype()));
  if (o.bias()) bias = register_parameter("bias", zeros({o.out_channels()}, o.dtype()));
  reset_parameters();
}

void Conv2d::reset_parameters() {
  reset_conv_parameters(weight, bias);
}

Tensor Conv2d::forward(const Tensor& x) {
  LETHE_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels(), "Conv2d: expected input [N, ",
              options_.in_channels(), ", H, W], got ", x.shape());
  Conv2dParams p;
  p.stride = options_.stride();
  p.padding = options_.padding();
  p.dilation = options_.dilation();
  p.groups = options_.groups();
  return conv2d(x, weight, bias, p);
}

void Conv2d::pretty_print(std::ostream& os) const {
  const auto& o = options_;
  os << "Conv2d(" << o.in_channels() << ", " << o.out_channels() << ", kernel_size=("
     << o.kernel_size()[0] << ", " << o.kernel_size()[1] << "), stride=(" << o.stride()[0] << ", "
     << o.stride()[1] << "), padding=(" << o.padding()[0] << ", " << o.padding()[1] << ")";
  if (o.groups() != 1) os << ", groups=" << o.groups();
  if (!o.bias()) os << ", bias=false";
  os << ")";
}

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions& o)
    : UnaryModule("ConvTranspose2d"), options_(o) {
  check_conv_channels("ConvTranspose2d", o.in_channels(), o.out_channels(), o.groups());
  LETHE_CHECK(o.kernel_size()[0] > 0 && o.kernel_size()[1] > 0,
              "ConvTranspose2d: kernel size must be positive");
  weight = register_parameter("weight", zeros({o.in_channels(), o.out_channels() / o.groups(),
                                               o.kernel_size()[0], o.kernel_size()[1]},
                                              o.dtype()));
  if (o.bias()) bias = register_parameter("bias", zeros({o.out_channels()}, o.dtype()));
  reset_parameters();
}

void ConvTranspose2d::reset_parameters() {
  reset_conv_parameters(weight, bias);
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  const auto& o = options_;
  LETHE_CHECK(x.dim() == 4 && x.size(1) == o.in_channels(), "ConvTranspose2d: expected input [N, ",
              o.in_channels(), ", H, W], got ", x.shape());
  Conv2dParams p;
  p.stride = o.stride();
  p.padding = o.padding();
  p.dilation = o.dilation();
  p.groups = o.groups();
  return conv_transpose2d(x, weight, bias, p, o.output_padding());
}

void ConvTranspose2d::pretty_print(std::ostream& os) const {
  const auto& o = options_;
  os << "ConvTranspose2d(" << o.in_channels() << ", " << o.out_channels() << ", kernel_size=("
     << o.kernel_size()[0] << ", " << o.kernel_size()[1] << "), stride=(" << o.stride()[0] << ", "
     << o.stride()[1] << "), padding=(" << o.padding()[0] << ", " << o.padding()[1] << ")";
  if (o.output_padding() != ConvTranspose2dOptions::Pair{0, 0})
    os << ", output_padding=(" << o.output_padding()[0] << ", " << o.output_padding()[1] << ")";
  if (o.groups() != 1) os << ", groups=" << o.groups();
  if (!o.bias()) os << ", bias=false";
  os << ")";
}

Conv1d::Conv1d(const Conv1dOptions& o) : UnaryModule("Conv1d"), options_(o) {
  check_conv_channels("Conv1d", o.in_channels(), o.out_channels(), o.groups());
  LETHE_CHECK(
      o.kernel_size() > 0 && o.stride() > 0 && o.dilation() > 0 && o.padding() >= 0,
      "Conv1d: kernel_size, stride and dilation must be positive and padding non-negative, got ",
      o.kernel_size(), ", ", o.stride(), ", ", o.dilation(), ", ", o.padding());
  weight = register_parameter(
      "weight",
      zeros({o.out_channels(), o.in_channels() / o.groups(), o.kernel_size()}, o.dtype()));
  if (o.bias()) bias = register_parameter("bias", zeros({o.out_channels()}, o.dtype()));
  reset_parameters();
}

void Conv1d::reset_parameters() {
  reset_conv_parameters(weight, bias);
}

Tensor Conv1d::forward(const Tensor& x) {
  const auto& o = options_;
  LETHE_CHECK(x.dim() == 3 && x.size(1) == o.in_channels(), "Conv1d: expected input [N, ",
              o.in_channels(), ", L], got ", x.shape());
  Conv2dParams p;
  p.stride = {1, o.stride()};
  p.padding = {0, o.padding()};
  p.dilation = {1, o.dilation()};
  p.groups = o.groups();
  const Tensor w =
      reshape(weight, Shape{o.out_channels(), o.in_channels() / o.groups(), 1, o.kernel_size()});
  const Tensor y = conv2d(unsqueeze(x, 2), w, bias, p);
  return squeeze(y, 2);
}

void Conv1d::pretty_print(std::ostream& os) const {
  const auto& o = options_;
  os << "Conv1d(" << o.in_channels() << ", " << o.out_channels() << ", kernel_size=("
     << o.kernel_size() << ",), stride=(" << o.stride() << ",), padding=(" << o.padding() << ",)";
  if (o.dilation() != 1) os << ", dilation=(" << o.dilation() << ",)";
  if (o.groups() != 1) os << ", groups=" << o.groups();
  if (!o.bias()) os << ", bias=false";
  os << ")";
}

}  // namespace lethe::nn
