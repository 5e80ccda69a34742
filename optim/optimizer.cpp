#include "optim/optimizer.h"

#include <unordered_set>

#include "framework/error.h"
#include "framework/session.h"

namespace lethe::optim {

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay, const char* name)
    : groups_(std::move(groups)), name_(name) {
  LETHE_CHECK(lr >= 0, name, ": learning rate must be >= 0, got ", lr);
  LETHE_CHECK(weight_decay >= 0, name, ": weight_decay must be >= 0, got ", weight_decay);
  std::unordered_set<const TensorImpl*> seen;
  size_t total = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& g = groups_[gi];
    if (!g.lr) g.lr = lr;
    if (!g.weight_decay) g.weight_decay = weight_decay;
    LETHE_CHECK(*g.lr >= 0 && *g.weight_decay >= 0, name, ": group ", gi,
                " has a negative learning rate or weight decay");
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i];
      LETHE_CHECK(p.defined(), name, ": parameter ", i, " of group ", gi, " is undefined");
      LETHE_CHECK(p.is_materialised() && p.requires_grad(), name, ": parameter ", i, " of group ", gi,
                  p.name().empty() ? "" : " ('" + p.name() + "')",
                  " must be a materialised tensor with requires_grad (a module parameter)");
      LETHE_CHECK(is_floating(p.dtype()), name, ": parameter ", i, " is ", p.dtype(),
                  "; expected f32 or f64");
      LETHE_CHECK(seen.insert(p.impl().get()).second, name, ": parameter ", i, " of group ", gi,
                  " appears more than once");
      ++total;
    }
  }
  LETHE_CHECK(total > 0, name, ": got an empty parameter list");
}

void Optimizer::step() {
  ++step_count_;
  for (const auto& g : groups_)
    for (const Tensor& p : g.params) {
      if (!p.has_grad()) continue;
      Tensor grad = p.grad();
      LETHE_CHECK(grad.shape() == p.shape() && grad.dtype() == p.dtype(), name_,
                  ": the gradient of a parameter is ", grad.meta().str(), ", the parameter ",
                  p.meta().str());
      update(p, grad, g);
    }
  // The updates consumed the gradients; dropping the handles lets the step free them at once
  // instead of keeping every gradient alive past the step.
  zero_grad();
  // The parameters' session (which need not be the current one) runs the step.
  groups_.front().params.front().impl()->session->flush();
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  LETHE_CHECK(lr >= 0, name_, ": learning rate must be >= 0, got ", lr);
  for (auto& g : groups_) g.lr = lr;
}

double Optimizer::lr(size_t group) const { return *groups_.at(group).lr; }

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (const auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

}  // namespace lethe::optim
