// 2-d convolution over NCHW tensors, weight [out, in/groups, kh, kw], bias [out].
//
//   auto conv = std::make_shared<lethe::nn::Conv2d>(
//       lethe::nn::Conv2dOptions(3, 32, 3).stride(2).padding(1).bias(false));
#pragma once

#include <array>

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

struct Conv2dOptions {
  using Pair = std::array<int64_t, 2>;
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_{kernel_size, kernel_size} {}
  Conv2dOptions(int64_t in_channels, int64_t out_channels, Pair kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  LETHE_ARG(int64_t, in_channels);
  LETHE_ARG(int64_t, out_channels);
  LETHE_ARG(Pair, kernel_size);
  LETHE_ARG(Pair, stride) = Pair{1, 1};
  LETHE_ARG(Pair, padding) = Pair{0, 0};
  LETHE_ARG(Pair, dilation) = Pair{1, 1};
  LETHE_ARG(int64_t, groups) = 1;
  LETHE_ARG(bool, bias) = true;
  LETHE_ARG(DType, dtype) = DType::f32;

 public:
  // Square shorthands: .stride(2) == .stride({2, 2}).
  Conv2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  Conv2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
  Conv2dOptions& dilation(int64_t d) { return dilation(Pair{d, d}); }
};

class Conv2d : public UnaryModule {
 public:
  explicit Conv2d(const Conv2dOptions& o);
  Conv2d(int64_t in, int64_t out, int64_t k) : Conv2d(Conv2dOptions(in, out, k)) {}
  void reset_parameters();  // as PyTorch: kaiming_uniform(a = sqrt(5)), bias ±1/sqrt(fan_in)
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const Conv2dOptions& options() const { return options_; }

  Tensor weight, bias;

 private:
  Conv2dOptions options_;
};

}  // namespace lethe::nn
