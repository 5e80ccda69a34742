// Learning-rate schedulers as torch.optim.lr_scheduler's, by their closed forms: the rate of step t
// is a function of t and of each group's rate at construction (base_lr), so set_step(t) resumes a
// schedule exactly. Call step() once after each optimizer step; the constructor sets the rate of
// step 0.
//
//   lethe::optim::StepLR sched(opt, /*step_size=*/30, /*gamma=*/0.1);
//   lethe::optim::LinearLR warmup(opt, /*start_factor=*/0.1, /*end_factor=*/1.0,
//   /*total_iters=*/100); lethe::optim::OneCycleLR one(opt, /*max_lr=*/0.1, /*total_steps=*/1000);
//   lethe::optim::LambdaLR lam(opt, [](int64_t t) { return 1.0 / (1.0 + 0.01 * t); });
//   for (...) { ...; opt.step(); sched.step(); }
//
// PyTorch's StepLR and LinearLR step by multiplying the previous rate (their chainable form); the
// closed form here can differ from that in the last bits of the rate, as PyTorch's own
// _get_closed_form_lr does. OneCycleLR and LambdaLR are closed forms in PyTorch too.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace lethe::optim {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;
  // Advances to the next step and sets its rate in every group.
  void step();
  // Moves the schedule to step t (a resumed run: TrainingProgress::scheduler_step) and sets its
  // rate.
  void set_step(int64_t t);
  int64_t last_step() const { return t_; }
  // Rate of group g at step t (no side effects).
  virtual double lr_at(int64_t t, size_t group = 0) const = 0;
  double base_lr(size_t group = 0) const { return base_.at(group); }

 protected:
  explicit LRScheduler(Optimizer& opt);
  // Subclasses call it at the end of their constructor, once their fields are set.
  void apply();
  Optimizer& opt_;
  std::vector<double> base_;
  int64_t t_ = 0;
};

// base_lr · gamma^floor(t / step_size).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t t, size_t group = 0) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// base_lr · fn(t) (fn may differ per group: give one per group, or one for all).
class LambdaLR : public LRScheduler {
 public:
  using Fn = std::function<double(int64_t)>;
  LambdaLR(Optimizer& opt, Fn fn);
  LambdaLR(Optimizer& opt, std::vector<Fn> per_group);
  double lr_at(int64_t t, size_t group = 0) const override;

 private:
  std::vector<Fn> fns_;
};

// Linear warmup (or decay): base_lr · (start + (end - start) · min(t, total_iters) / total_iters).
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& opt, double start_factor = 1.0 / 3.0, double end_factor = 1.0,
           int64_t total_iters = 5);
  double lr_at(int64_t t, size_t group = 0) const override;

 private:
  double start_, end_;
  int64_t total_;
};

struct OneCycleOptions {
  double pct_start = 0.3;
  std::string anneal_strategy = "cos";  // "cos" or "linear"
  double div_factor = 25.0;             // initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;        // min_lr = initial_lr / final_div_factor
  bool three_phase = false;
};

// torch.optim.lr_scheduler.OneCycleLR with cycle_momentum=False (the optimizers' betas and
// momentum stay as set): from max_lr/div_factor up to max_lr over pct_start of total_steps, then
// down to min_lr. The rate of each group is set from max_lr (base_lr is not used). Steps past
// total_steps - 1 throw, as in PyTorch.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& opt, double max_lr, int64_t total_steps, const OneCycleOptions& o = {});
  double lr_at(int64_t t, size_t group = 0) const override;

 private:
  struct Phase {
    double end_step, start_lr, end_lr;
  };
  double max_lr_;
  int64_t total_;
  OneCycleOptions o_;
  std::vector<Phase> phases_;
};

}  // namespace lethe::optim
