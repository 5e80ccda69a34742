#include "optim/rmsprop.h"

#include "framework/error.h"
#include "ops/creation.h"
#include "optim/update_ops.h"

namespace lethe::optim {

RMSprop::RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& o)
    : Optimizer(std::move(groups), o.lr(), o.weight_decay(), "RMSprop"), options_(o) {
  LETHE_CHECK(o.alpha() >= 0, "RMSprop: alpha must be >= 0, got ", o.alpha());
  LETHE_CHECK(o.eps() >= 0, "RMSprop: eps must be >= 0, got ", o.eps());
  LETHE_CHECK(o.momentum() >= 0, "RMSprop: momentum must be >= 0, got ", o.momentum());
}

const RMSprop::State* RMSprop::state(const Tensor& param) const {
  auto it = state_.find(param.impl().get());
  return it == state_.end() ? nullptr : &it->second;
}

namespace {
// A zero buffer like the parameter, held as optimizer state.
Tensor state_zeros(const Tensor& param) {
  Tensor t = zeros(param.shape(), param.dtype());
  t.impl()->storage->role = StorageRole::optimizer_state;
  return t;
}
}  // namespace

void RMSprop::update(const Tensor& param, const Tensor& grad, const ParamGroup& g) {
  auto [it, fresh] = state_.try_emplace(param.impl().get());
  State& s = it->second;
  if (fresh) {
    s.square_avg = state_zeros(param);
    if (options_.centered()) s.grad_avg = state_zeros(param);
    if (options_.momentum() > 0) s.momentum_buffer = state_zeros(param);
  }
  ++s.step;
  RmspropHyper h;
  h.lr = *g.lr;
  h.weight_decay = *g.weight_decay;
  h.alpha = options_.alpha();
  h.eps = options_.eps();
  h.momentum = options_.momentum();
  h.centered = options_.centered();
  std::vector<Tensor> in{param, grad, s.square_avg};
  if (h.centered) in.push_back(s.grad_avg);
  if (h.momentum > 0) in.push_back(s.momentum_buffer);
  record(std::make_shared<RmspropUpdateOp>(h), in);
}

void RMSprop::save_param_state(const Tensor& param, const std::string& prefix,
                               OptimizerState& out) const {
  const State* s = state(param);
  if (!s) return;
  out.tensors.insert(prefix + "square_avg", s->square_avg);
  if (s->grad_avg.defined()) out.tensors.insert(prefix + "grad_avg", s->grad_avg);
  if (s->momentum_buffer.defined())
    out.tensors.insert(prefix + "momentum_buffer", s->momentum_buffer);
  out.fields[prefix + "step"] = std::to_string(s->step);
}

void RMSprop::load_param_state(const Tensor& param, const std::string& prefix,
                               const OptimizerState& in, bool check_only) {
  const Tensor* sq = in.tensors.find(prefix + "square_avg");
  const Tensor* ga = in.tensors.find(prefix + "grad_avg");
  const Tensor* buf = in.tensors.find(prefix + "momentum_buffer");
  auto step = in.fields.find(prefix + "step");
  const bool any = sq || ga || buf || step != in.fields.end();
  if (check_only) {
    if (!any) return;
    LETHE_CHECK(sq && step != in.fields.end(), name_, ".load_state_dict: '", prefix,
                "' needs square_avg and step together");
    LETHE_CHECK(!options_.centered() || ga, name_, ".load_state_dict: '", prefix,
                "' has no grad_avg (centered)");
    LETHE_CHECK(options_.momentum() == 0 || buf, name_, ".load_state_dict: '", prefix,
                "' has no momentum_buffer (momentum ", options_.momentum(), ")");
    check_state_tensor(param, *sq, prefix + "square_avg");
    if (ga) check_state_tensor(param, *ga, prefix + "grad_avg");
    if (buf) check_state_tensor(param, *buf, prefix + "momentum_buffer");
    parse_step_field(prefix + "step", step->second);
    return;
  }
  if (!any) {
    state_.erase(param.impl().get());
    return;
  }
  State s;
  s.square_avg = state_tensor_like(param, *sq);
  if (options_.centered()) s.grad_avg = state_tensor_like(param, *ga);
  if (options_.momentum() > 0) s.momentum_buffer = state_tensor_like(param, *buf);
  s.step = parse_step_field(prefix + "step", step->second);
  state_[param.impl().get()] = std::move(s);
}

}  // namespace lethe::optim
