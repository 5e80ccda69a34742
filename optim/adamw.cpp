#include "optim/adamw.h"

#include "framework/error.h"
#include "ops/creation.h"
#include "optim/update_ops.h"

namespace lethe::optim {

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o, const char* name)
    : Optimizer(std::move(groups), o.lr(), o.weight_decay(), name), options_(o) {
  const auto [b1, b2] = o.betas();
  LETHE_CHECK(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1, name, ": betas must be in [0, 1), got (", b1,
              ", ", b2, ")");
  LETHE_CHECK(o.eps() >= 0, name, ": eps must be >= 0, got ", o.eps());
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
    s.exp_avg.impl()->storage->role = s.exp_avg_sq.impl()->storage->role =
        StorageRole::optimizer_state;
    if (options_.amsgrad()) {
      s.max_exp_avg_sq = zeros(param.shape(), param.dtype());
      s.max_exp_avg_sq.impl()->storage->role = StorageRole::optimizer_state;
    }
  }
  ++s.step;
  AdamWHyper h;
  h.lr = *g.lr;
  h.weight_decay = *g.weight_decay;
  h.beta1 = options_.betas().first;
  h.beta2 = options_.betas().second;
  h.eps = options_.eps();
  h.step = s.step;
  h.amsgrad = options_.amsgrad();
  std::vector<Tensor> in{param, grad, s.exp_avg, s.exp_avg_sq};
  if (h.amsgrad) in.push_back(s.max_exp_avg_sq);
  record(std::make_shared<AdamWUpdateOp>(h), in);
}

}  // namespace lethe::optim

namespace lethe::optim {

void AdamW::save_param_state(const Tensor& param, const std::string& prefix,
                             OptimizerState& out) const {
  const State* s = state(param);
  if (!s) return;  // not updated yet: no state, as PyTorch
  out.tensors.insert(prefix + "exp_avg", s->exp_avg);
  out.tensors.insert(prefix + "exp_avg_sq", s->exp_avg_sq);
  if (s->max_exp_avg_sq.defined()) out.tensors.insert(prefix + "max_exp_avg_sq", s->max_exp_avg_sq);
  out.fields[prefix + "step"] = std::to_string(s->step);
}

void AdamW::load_param_state(const Tensor& param, const std::string& prefix,
                             const OptimizerState& in, bool check_only) {
  const Tensor* m = in.tensors.find(prefix + "exp_avg");
  const Tensor* v = in.tensors.find(prefix + "exp_avg_sq");
  const Tensor* vmax = in.tensors.find(prefix + "max_exp_avg_sq");
  auto step = in.fields.find(prefix + "step");
  const bool any = m || v || step != in.fields.end();
  if (check_only) {
    if (!any) return;
    LETHE_CHECK(m && v && step != in.fields.end(), name_, ".load_state_dict: '", prefix,
                "' needs exp_avg, exp_avg_sq and step together");
    check_state_tensor(param, *m, prefix + "exp_avg");
    check_state_tensor(param, *v, prefix + "exp_avg_sq");
    LETHE_CHECK(!options_.amsgrad() || vmax, name_, ".load_state_dict: '", prefix,
                "' has no max_exp_avg_sq (amsgrad)");
    if (vmax) check_state_tensor(param, *vmax, prefix + "max_exp_avg_sq");
    parse_step_field(prefix + "step", step->second);
    return;
  }
  if (!any) {
    state_.erase(param.impl().get());
    return;
  }
  State s;
  s.exp_avg = state_tensor_like(param, *m);
  s.exp_avg_sq = state_tensor_like(param, *v);
  if (options_.amsgrad()) s.max_exp_avg_sq = state_tensor_like(param, *vmax);
  s.step = parse_step_field(prefix + "step", step->second);
  state_[param.impl().get()] = std::move(s);
}

}  // namespace lethe::optim
