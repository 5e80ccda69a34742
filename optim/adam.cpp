#include "optim/adam.h"

#include "framework/error.h"
#include "framework/session.h"
#include "ops/elementwise.h"

namespace lethe::optim {

namespace {

AdamWOptions as_adamw(const AdamOptions& o) {
  LETHE_CHECK(o.weight_decay() >= 0, "Adam: weight_decay must be >= 0, got ", o.weight_decay());
  return AdamWOptions(o.lr())
      .betas(o.betas())
      .eps(o.eps())
      .weight_decay(o.weight_decay())
      .amsgrad(o.amsgrad());
}

}  // namespace

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o)
    : AdamW(std::move(groups), as_adamw(o), "Adam") {}

void Adam::update(const Tensor& param, const Tensor& grad, const ParamGroup& g) {
  // The group's weight decay is an L2 term of the gradient here; AdamW's decoupled decay is off.
  const double wd = *g.weight_decay;
  ParamGroup plain(std::vector<Tensor>{}, g.lr, 0.0);
  if (wd == 0) return AdamW::update(param, grad, plain);
  NoGradGuard no_grad;
  AdamW::update(param, add(grad, mul_scalar(param, wd)), plain);
}

}  // namespace lethe::optim
