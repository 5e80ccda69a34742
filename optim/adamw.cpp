#include "optim/adamw.h"

#include "framework/error.h"
#include "ops/creation.h"
#include "optim/update_ops.h"

namespace lethe::optim {

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
    : Optimizer(std::move(groups), o.lr(), o.weight_decay(), "AdamW"), options_(o) {
  const auto [b1, b2] = o.betas();
  LETHE_CHECK(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1, "AdamW: betas must be in [0, 1), got (", b1, ", ",
              b2, ")");
  LETHE_CHECK(o.eps() >= 0, "AdamW: eps must be >= 0, got ", o.eps());
}

const AdamW::State* AdamW::state(const Tensor& param) const {
  auto it = state_.find(param.impl().get());
  return it == state_.end() ? nullptr : &it->second;
}

void AdamW::update(const Tensor& param, const Tensor& grad, const ParamGroup& g) {
  auto [it, fresh] = state_.try_emplace(param.impl().get());
  State& s = it->second;
  if (fresh) {
    s.exp_avg = zeros(param.shape(), param.dtype());
    s.exp_avg_sq = zeros(param.shape(), param.dtype());
    s.exp_avg.impl()->storage->role = s.exp_avg_sq.impl()->storage->role = StorageRole::optimizer_state;
  }
  ++s.step;
  AdamWHyper h;
  h.lr = *g.lr;
  h.weight_decay = *g.weight_decay;
  h.beta1 = options_.betas().first;
  h.beta2 = options_.betas().second;
  h.eps = options_.eps();
  h.step = s.step;
  record(std::make_shared<AdamWUpdateOp>(h), {param, grad, s.exp_avg, s.exp_avg_sq});
}

}  // namespace lethe::optim
