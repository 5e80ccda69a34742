// Adam with decoupled weight decay (Loshchilov & Hutter), exactly torch.optim.AdamW's update:
//   p *= 1 - lr·wd;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
//   p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)
// amsgrad: v in the denominator is replaced by vmax = max(vmax, v) (state max_exp_avg_sq).
//
//   lethe::optim::AdamW opt(model->parameters(), lethe::optim::AdamWOptions(1e-3).betas({0.9,
//   0.95}));
#pragma once

#include <unordered_map>
#include <utility>

#include "nn/arg.h"
#include "optim/optimizer.h"

namespace lethe::optim {

using Betas = std::pair<double, double>;

struct AdamWOptions {
  AdamWOptions(double lr = 1e-3) : lr_(lr) {}
  LETHE_ARG(double, lr);
  LETHE_ARG(Betas, betas) = {0.9, 0.999};
  LETHE_ARG(double, eps) = 1e-8;
  LETHE_ARG(double, weight_decay) = 1e-2;
  LETHE_ARG(bool, amsgrad) = false;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
      : AdamW(std::move(groups), o, "AdamW") {}
  AdamW(std::vector<Tensor> params, const AdamWOptions& o)
      : AdamW(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}
  const AdamWOptions& options() const { return options_; }

  struct State {
    Tensor exp_avg, exp_avg_sq;
    Tensor max_exp_avg_sq;  // amsgrad only
    int64_t step = 0;       // updates applied to this parameter (the bias-correction exponent)
  };
  // A parameter's state, or null before its first update.
  const State* state(const Tensor& param) const;

 protected:
  // For optimizers built on AdamW's update (Adam): their own name in state dicts and errors.
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o, const char* name);
  void update(const Tensor& param, const Tensor& grad, const ParamGroup& g) override;
  void save_param_state(const Tensor& param, const std::string& prefix,
                        OptimizerState& out) const override;
  void load_param_state(const Tensor& param, const std::string& prefix, const OptimizerState& in,
                        bool check_only) override;

 private:
  AdamWOptions options_;
  std::unordered_map<const TensorImpl*, State> state_;
};

}  // namespace lethe::optim
