// RMSprop, exactly torch.optim.RMSprop's update (single-tensor path of torch 1.13):
//   g += wd·p;  sq = α·sq + (1-α)·g²;  avg = sqrt(sq) + eps, or centered (ga = α·ga + (1-α)·g):
//   avg = sqrt(sq - ga²) + eps;  momentum: buf = μ·buf + g/avg, p -= lr·buf;  else p -= lr·g/avg
//
//   lethe::optim::RMSprop opt(model->parameters(),
//   lethe::optim::RMSpropOptions(1e-3).momentum(0.9));
#pragma once

#include <unordered_map>

#include "nn/arg.h"
#include "optim/optimizer.h"

namespace lethe::optim {

struct RMSpropOptions {
  RMSpropOptions(double lr = 1e-2) : lr_(lr) {}
  LETHE_ARG(double, lr);
  LETHE_ARG(double, alpha) = 0.99;
  LETHE_ARG(double, eps) = 1e-8;
  LETHE_ARG(double, weight_decay) = 0.0;
  LETHE_ARG(double, momentum) = 0.0;
  LETHE_ARG(bool, centered) = false;
};

class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& o);
  RMSprop(std::vector<Tensor> params, const RMSpropOptions& o)
      : RMSprop(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}
  const RMSpropOptions& options() const { return options_; }

  struct State {
    Tensor square_avg, grad_avg,
        momentum_buffer;  // grad_avg if centered, momentum_buffer if momentum
    int64_t step = 0;
  };
  // A parameter's state, or null before its first update.
  const State* state(const Tensor& param) const;

 protected:
  void update(const Tensor& param, const Tensor& grad, const ParamGroup& g) override;
  void save_param_state(const Tensor& param, const std::string& prefix,
                        OptimizerState& out) const override;
  void load_param_state(const Tensor& param, const std::string& prefix, const OptimizerState& in,
                        bool check_only) override;

 private:
  RMSpropOptions options_;
  std::unordered_map<const TensorImpl*, State> state_;
};

}  // namespace lethe::optim
