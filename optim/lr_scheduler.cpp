#include "optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>

#include "framework/error.h"

namespace lethe::optim {

LRScheduler::LRScheduler(Optimizer& opt) : opt_(opt) {
  for (size_t g = 0; g < opt.num_groups(); ++g) base_.push_back(opt.lr(g));
}

void LRScheduler::apply() {
  for (size_t g = 0; g < base_.size(); ++g) opt_.group(g).lr = lr_at(t_, g);
}

void LRScheduler::step() {
  ++t_;
  apply();
}

void LRScheduler::set_step(int64_t t) {
  LETHE_CHECK(t >= 0, "LRScheduler::set_step: the step must be >= 0, got ", t);
  t_ = t;
  apply();
}

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma)
    : LRScheduler(opt), step_size_(step_size), gamma_(gamma) {
  LETHE_CHECK(step_size > 0, "StepLR: step_size must be > 0, got ", step_size);
  LETHE_CHECK(std::isfinite(gamma) && gamma >= 0, "StepLR: gamma must be finite and >= 0, got ",
              gamma);
  apply();
}

double StepLR::lr_at(int64_t t, size_t group) const {
  return base_.at(group) * std::pow(gamma_, static_cast<double>(t / step_size_));
}

LambdaLR::LambdaLR(Optimizer& opt, Fn fn) : LambdaLR(opt, std::vector<Fn>(opt.num_groups(), fn)) {}

LambdaLR::LambdaLR(Optimizer& opt, std::vector<Fn> per_group)
    : LRScheduler(opt), fns_(std::move(per_group)) {
  LETHE_CHECK(fns_.size() == base_.size(), "LambdaLR: expected one function per parameter group (",
              base_.size(), "), got ", fns_.size());
  for (size_t g = 0; g < fns_.size(); ++g)
    LETHE_CHECK(static_cast<bool>(fns_[g]), "LambdaLR: function ", g, " is empty");
  apply();
}

double LambdaLR::lr_at(int64_t t, size_t group) const {
  return base_.at(group) * fns_.at(group)(t);
}

LinearLR::LinearLR(Optimizer& opt, double start_factor, double end_factor, int64_t total_iters)
    : LRScheduler(opt), start_(start_factor), end_(end_factor), total_(total_iters) {
  LETHE_CHECK(start_factor > 0 && start_factor <= 1,
              "LinearLR: start_factor must be in (0, 1], got ", start_factor);
  LETHE_CHECK(end_factor >= 0 && end_factor <= 1, "LinearLR: end_factor must be in [0, 1], got ",
              end_factor);
  LETHE_CHECK(total_iters > 0, "LinearLR: total_iters must be > 0, got ", total_iters);
  apply();
}

double LinearLR::lr_at(int64_t t, size_t group) const {
  // PyTorch's closed form, in its order of operations.
  const double done = static_cast<double>(std::min(total_, t));
  return base_.at(group) * (start_ + (end_ - start_) * done / static_cast<double>(total_));
}

OneCycleLR::OneCycleLR(Optimizer& opt, double max_lr, int64_t total_steps, const OneCycleOptions& o)
    : LRScheduler(opt), max_lr_(max_lr), total_(total_steps), o_(o) {
  LETHE_CHECK(total_steps > 0, "OneCycleLR: total_steps must be > 0, got ", total_steps);
  LETHE_CHECK(max_lr > 0 && std::isfinite(max_lr),
              "OneCycleLR: max_lr must be finite and > 0, got ", max_lr);
  LETHE_CHECK(o.pct_start >= 0 && o.pct_start <= 1, "OneCycleLR: pct_start must be in [0, 1], got ",
              o.pct_start);
  LETHE_CHECK(o.anneal_strategy == "cos" || o.anneal_strategy == "linear",
              "OneCycleLR: anneal_strategy must be \"cos\" or \"linear\", got \"",
              o.anneal_strategy, "\"");
  LETHE_CHECK(o.div_factor > 0 && o.final_div_factor > 0,
              "OneCycleLR: div_factor and final_div_factor must be > 0, got ", o.div_factor,
              " and ", o.final_div_factor);
  const double initial = max_lr / o.div_factor, min_lr = initial / o.final_div_factor;
  const double n = static_cast<double>(total_steps);
  if (o.three_phase) {
    phases_ = {{o.pct_start * n - 1, initial, max_lr},
               {2 * o.pct_start * n - 2, max_lr, initial},
               {n - 1, initial, min_lr}};
  } else {
    phases_ = {{o.pct_start * n - 1, initial, max_lr}, {n - 1, max_lr, min_lr}};
  }
  apply();
}

double OneCycleLR::lr_at(int64_t t, size_t group) const {
  (void)base_.at(group);
  LETHE_CHECK(t <= total_, "OneCycleLR: step ", t, " is past total_steps (", total_, ")");
  const double step = static_cast<double>(t);
  double start_step = 0;
  for (size_t i = 0; i < phases_.size(); ++i) {
    const Phase& ph = phases_[i];
    if (step <= ph.end_step || i + 1 == phases_.size()) {
      const double pct = (step - start_step) / (ph.end_step - start_step);
      if (o_.anneal_strategy == "linear") return (ph.end_lr - ph.start_lr) * pct + ph.start_lr;
      constexpr double kPi = 3.141592653589793;
      const double cos_out = std::cos(kPi * pct) + 1;
      return ph.end_lr + (ph.start_lr - ph.end_lr) / 2.0 * cos_out;
    }
    start_step = ph.end_step;
  }
  return max_lr_;  // not reached: the last phase takes every step
}

}  // namespace lethe::optim
