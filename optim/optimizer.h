// Optimizers: each step() appends one update node per parameter that has a gradient to the step
// graph, drops the gradients (nothing needs to keep them past the update) and runs the step.
//
//   auto opt = lethe::optim::AdamW(model->parameters(), lethe::optim::AdamWOptions(1e-3).weight_decay(0.01));
//   for (auto& batch : loader) {
//     auto loss = lethe::cross_entropy(model->forward(batch.data), batch.target);
//     opt.zero_grad();
//     loss.backward();
//     opt.step();              // executes the step: forward, backward, updates
//     float l = loss.item<float>();   // kept: `loss` is a live handle
//   }
//
// Parameter groups carry their own learning rate and weight decay (e.g. no decay on biases):
//   lethe::optim::AdamW opt({{decay_params}, {no_decay_params, std::nullopt, 0.0}}, AdamWOptions(3e-4));
#pragma once

#include <optional>
#include <unordered_map>
#include <vector>

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

 protected:
  Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay, const char* name);
  // Records the update of one parameter (grad defined) of group g.
  virtual void update(const Tensor& param, const Tensor& grad, const ParamGroup& g) = 0;

  std::vector<ParamGroup> groups_;
  int64_t step_count_ = 0;
  const char* name_;
};

}  // namespace lethe::optim
