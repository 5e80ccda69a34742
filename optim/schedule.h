// Learning-rate schedules. Call step() once after each optimizer step.
//
//   lethe::optim::CosineWarmupLR sched(opt, /*warmup_steps=*/100, /*total_steps=*/10000,
//   /*min_lr=*/1e-5); for (...) { ...; opt.step(); sched.step(); }
#pragma once

#include <vector>

#include "optim/optimizer.h"

namespace lethe::optim {

// Linear warmup from base_lr/warmup to base_lr over `warmup_steps`, then cosine decay to `min_lr`
// at `total_steps` (held there afterwards). base_lr is each group's learning rate at construction.
// The constructor sets the learning rate of step 0.
class CosineWarmupLR {
 public:
  CosineWarmupLR(Optimizer& opt, int64_t warmup_steps, int64_t total_steps, double min_lr = 0.0);
  void step();
  // Learning rate of group g at step t (no side effects).
  double lr_at(int64_t t, size_t group = 0) const;
  int64_t last_step() const { return t_; }
  // Moves the schedule to step t (a resumed run: the learning rate of step t is set).
  void set_step(int64_t t);

 private:
  void apply();
  Optimizer& opt_;
  int64_t warmup_, total_;
  double min_lr_;
  std::vector<double> base_;
  int64_t t_ = 0;
};

}  // namespace lethe::optim
