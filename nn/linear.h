// Fully connected layer: y = x Wᵀ + b, weight [out, in], bias [out].
//
//   auto fc = std::make_shared<lethe::nn::Linear>(lethe::nn::LinearOptions(784, 256).bias(false));
//   auto y = fc->forward(x);   // x [..., 784] -> y [..., 256]
#pragma once

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  LETHE_ARG(int64_t, in_features);
  LETHE_ARG(int64_t, out_features);
  LETHE_ARG(bool, bias) = true;
  LETHE_ARG(DType, dtype) = DType::f32;
};

class Linear : public UnaryModule {
 public:
  explicit Linear(const LinearOptions& o);
  Linear(int64_t in_features, int64_t out_features)
      : Linear(LinearOptions(in_features, out_features)) {}
  // PyTorch's default: kaiming_uniform(a = sqrt(5)) weights, bias uniform in ±1/sqrt(fan_in).
  void reset_parameters();
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const LinearOptions& options() const { return options_; }

  Tensor weight, bias;  // bias undefined when options.bias(false)

 private:
  LinearOptions options_;
};

}  // namespace lethe::nn
