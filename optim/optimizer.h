// Optimizers: each step() appends one update node per parameter that has a gradient to the step
// graph, drops the gradients (nothing needs to keep them past the update) and runs the step.
//
//   auto opt = lethe::optim::AdamW(model->parameters(),
//   lethe::optim::AdamWOptions(1e-3).weight_decay(0.01)); for (auto& batch : loader) {
//     auto loss = lethe::cross_entropy(model->forward(batch.data), batch.target);
//     opt.zero_grad();
//     loss.backward();
//     opt.step();              // executes the step: forward, backward, updates
//     float l = loss.item<float>();   // kept: `loss` is a live handle
//   }
//
// Parameter groups carry their own learning rate and weight decay (e.g. no decay on biases):
//   lethe::optim::AdamW opt({{decay_params}, {no_decay_params, std::nullopt, 0.0}},
//   AdamWOptions(3e-4));
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "framework/state_dict.h"
#include "framework/tensor.h"

namespace lethe::optim {

struct ParamGroup {
  ParamGroup(std::vector<Tensor> p, std::optional<double> lr_ = std::nullopt,
             std::optional<double> weight_decay_ = std::nullopt)
      : params(std::move(p)), lr(lr_), weight_decay(weight_decay_) {}
  std::vector<Tensor> params;
  std::optional<double> lr;            // unset: the optimizer's
  std::optional<double> weight_decay;  // unset: the optimizer's
};

// An optimizer's state in PyTorch's layout, flattened: tensors "state.<i>.<field>" (i counts the
// parameters of every group in order; AdamW: exp_avg, exp_avg_sq; SGD: momentum_buffer) and text
// fields: "type", "step_count", "param_groups" (JSON: lr, weight_decay and parameter indices per
// group) and per-parameter counters ("state.<i>.step").
struct OptimizerState {
  StateDict tensors;
  std::map<std::string, std::string> fields;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Records the updates of every parameter that has a gradient, drops those gradients, and executes
  // the step (current_session()->flush()). Parameters without a gradient are left alone.
  void step();
  // Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  // Learning rate of every group (schedulers call this each step).
  void set_lr(double lr);
  double lr(size_t group = 0) const;
  size_t num_groups() const { return groups_.size(); }
  const ParamGroup& group(size_t i) const { return groups_.at(i); }
  ParamGroup& group(size_t i) { return groups_.at(i); }
  std::vector<Tensor> parameters() const;
  // Number of step() calls so far.
  int64_t step_count() const { return step_count_; }
  const char* type_name() const { return name_; }

  // The state to save and restore (see OptimizerState). The tensors are the optimizer's own.
  OptimizerState state_dict() const;
  // Restores a state saved by an optimizer of the same type over parameters of the same shapes, in
  // the same groups: hyper-parameters of the groups, step counts and per-parameter state (copied
  // into new tensors of the parameters' session). Anything that does not match throws naming it,
  // before the optimizer changes.
  void load_state_dict(const OptimizerState& s);

 protected:
  Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay, const char* name);
  // Records the update of one parameter (grad defined) of group g.
  virtual void update(const Tensor& param, const Tensor& grad, const ParamGroup& g) = 0;
  // The per-parameter state of parameter `index` ("state.<index>." prefixed by the caller).
  virtual void save_param_state(const Tensor& param, const std::string& prefix,
                                OptimizerState& out) const = 0;
  // Checks (check_only) or restores the state of one parameter from `in`; absent state = none yet.
  virtual void load_param_state(const Tensor& param, const std::string& prefix,
                                const OptimizerState& in, bool check_only) = 0;
  // A state tensor for `param` (its session, shape and dtype) holding `src`'s value.
  static Tensor state_tensor_like(const Tensor& param, const Tensor& src);
  // Checks that `src` can hold state of `param` (same shape and dtype), naming `key`.
  void check_state_tensor(const Tensor& param, const Tensor& src, const std::string& key) const;
  // The step count of field `key` ("state.0.step"); throws naming it when it is not one.
  int64_t parse_step_field(const std::string& key, const std::string& value) const;

  std::vector<ParamGroup> groups_;
  int64_t step_count_ = 0;
  const char* name_;
};

}  // namespace lethe::optim
