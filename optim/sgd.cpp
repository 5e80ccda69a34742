#include "optim/sgd.h"

#include "framework/error.h"
#include "ops/creation.h"
#include "optim/update_ops.h"

namespace lethe::optim {

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& o)
    : Optimizer(std::move(groups), o.lr(), o.weight_decay(), "SGD"), options_(o) {
  LETHE_CHECK(o.momentum() >= 0, "SGD: momentum must be >= 0, got ", o.momentum());
  LETHE_CHECK(!o.nesterov() || (o.momentum() > 0 && o.dampening() == 0),
              "SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum=",
              o.momentum(), " dampening=", o.dampening());
}

Tensor SGD::momentum_buffer(const Tensor& param) const {
  auto it = buffers_.find(param.impl().get());
  return it == buffers_.end() ? Tensor() : it->second;
}

void SGD::update(const Tensor& param, const Tensor& grad, const ParamGroup& g) {
  SgdHyper h;
  h.lr = *g.lr;
  h.weight_decay = *g.weight_decay;
  h.momentum = options_.momentum();
  h.dampening = options_.dampening();
  h.nesterov = options_.nesterov();
  std::vector<Tensor> inputs{param, grad};
  if (h.momentum != 0) {
    auto [it, fresh] = buffers_.try_emplace(param.impl().get());
    if (fresh) {
      // A materialised leaf of the current session, updated in place by every step.
      it->second = zeros(param.shape(), param.dtype());
      it->second.impl()->storage->role = StorageRole::optimizer_state;
    }
    h.first = fresh;
    inputs.push_back(it->second);
  }
  record(std::make_shared<SgdUpdateOp>(h), inputs);
}

}  // namespace lethe::optim

namespace lethe::optim {

void SGD::save_param_state(const Tensor& param, const std::string& prefix,
                           OptimizerState& out) const {
  const Tensor b = momentum_buffer(param);
  if (b.defined()) out.tensors.insert(prefix + "momentum_buffer", b);
}

void SGD::load_param_state(const Tensor& param, const std::string& prefix, const OptimizerState& in,
                           bool check_only) {
  const Tensor* b = in.tensors.find(prefix + "momentum_buffer");
  if (check_only) {
    if (b) check_state_tensor(param, *b, prefix + "momentum_buffer");
    return;
  }
  if (!b) {
    buffers_.erase(param.impl().get());
    return;
  }
  buffers_[param.impl().get()] = state_tensor_like(param, *b);
}

}  // namespace lethe::optim
