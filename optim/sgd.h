// Stochastic gradient descent with momentum, dampening, Nesterov and (coupled) weight decay, with
// exactly torch.optim.SGD's update:
//   d = g + wd·p;  buf = d (first step) or momentum·buf + (1 - dampening)·d;
//   p -= lr · (nesterov ? d + momentum·buf : buf)      (p -= lr·d without momentum)
//
//   lethe::optim::SGD opt(model->parameters(),
//   lethe::optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
#pragma once

#include <unordered_map>

#include "nn/arg.h"
#include "optim/optimizer.h"

namespace lethe::optim {

struct SGDOptions {
  SGDOptions(double lr = 0.01) : lr_(lr) {}
  LETHE_ARG(double, lr);
  LETHE_ARG(double, momentum) = 0.0;
  LETHE_ARG(double, dampening) = 0.0;
  LETHE_ARG(double, weight_decay) = 0.0;
  LETHE_ARG(bool, nesterov) = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SGDOptions& o);
  SGD(std::vector<Tensor> params, const SGDOptions& o)
      : SGD(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}
  const SGDOptions& options() const { return options_; }
  // The momentum buffer of a parameter (undefined before its first update or without momentum).
  Tensor momentum_buffer(const Tensor& param) const;

 protected:
  void update(const Tensor& param, const Tensor& grad, const ParamGroup& g) override;
  void save_param_state(const Tensor& param, const std::string& prefix,
                        OptimizerState& out) const override;
  void load_param_state(const Tensor& param, const std::string& prefix, const OptimizerState& in,
                        bool check_only) override;

 private:
  SGDOptions options_;
  std::unordered_map<const TensorImpl*, Tensor> buffers_;
};

}  // namespace lethe::optim
