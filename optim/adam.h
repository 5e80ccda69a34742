// Adam (Kingma & Ba), exactly torch.optim.Adam's update (single-tensor path; amsgrad as AdamW's):
//   g += wd·p (L2, when weight_decay > 0);  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
//   p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)
// It runs AdamW's update op with no decoupled decay, so with weight_decay 0 its steps are bitwise
// those of AdamW(weight_decay 0) and of torch.optim.Adam; a weight decay adds wd·p to the gradient
// as two recorded ops (a product, then a sum: PyTorch's grad.add(p, alpha=wd)).
//
//   lethe::optim::Adam opt(model->parameters(), lethe::optim::AdamOptions(1e-3).betas({0.9,
//   0.999}));
#pragma once

#include "optim/adamw.h"

namespace lethe::optim {

struct AdamOptions {
  AdamOptions(double lr = 1e-3) : lr_(lr) {}
  LETHE_ARG(double, lr);
  LETHE_ARG(Betas, betas) = {0.9, 0.999};
  LETHE_ARG(double, eps) = 1e-8;
  LETHE_ARG(double, weight_decay) = 0.0;  // L2 penalty added to the gradient (not decoupled)
  LETHE_ARG(bool, amsgrad) = false;
};

class Adam : public AdamW {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& o);
  Adam(std::vector<Tensor> params, const AdamOptions& o)
      : Adam(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}

 protected:
  void update(const Tensor& param, const Tensor& grad, const ParamGroup& g) override;
};

}  // namespace lethe::optim
