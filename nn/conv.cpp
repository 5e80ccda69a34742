#include "nn/conv.h"

#include <cmath>

#include "nn/init.h"
#include "ops/conv.h"
#include "ops/creation.h"

namespace lethe::nn {

Conv2d::Conv2d(const Conv2dOptions& o) : UnaryModule("Conv2d"), options_(o) {
  LETHE_CHECK(o.in_channels() > 0 && o.out_channels() > 0 && o.groups() > 0,
              "Conv2d: channels and groups must be positive, got in=", o.in_channels(),
              " out=", o.out_channels(), " groups=", o.groups());
  LETHE_CHECK(o.in_channels() % o.groups() == 0 && o.out_channels() % o.groups() == 0,
              "Conv2d: in_channels (", o.in_channels(), ") and out_channels (", o.out_channels(),
              ") must be divisible by groups (", o.groups(), ")");
  LETHE_CHECK(o.kernel_size()[0] > 0 && o.kernel_size()[1] > 0, "Conv2d: kernel size must be positive");
  weight = register_parameter(
      "weight", zeros({o.out_channels(), o.in_channels() / o.groups(), o.kernel_size()[0],
                       o.kernel_size()[1]},
                      o.dtype()));
  if (o.bias()) bias = register_parameter("bias", zeros({o.out_channels()}, o.dtype()));
  reset_parameters();
}

void Conv2d::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    auto fan_in = init::calculate_fan_in_and_fan_out(weight.shape()).first;
    double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    init::uniform_(bias, -bound, bound);
  }
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

}  // namespace lethe::nn
