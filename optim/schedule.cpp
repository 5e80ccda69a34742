#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "framework/error.h"

namespace lethe::optim {

CosineWarmupLR::CosineWarmupLR(Optimizer& opt, int64_t warmup_steps, int64_t total_steps,
                               double min_lr)
    : opt_(opt), warmup_(warmup_steps), total_(total_steps), min_lr_(min_lr) {
  LETHE_CHECK(
      warmup_steps >= 0 && total_steps > 0 && warmup_steps <= total_steps,
      "CosineWarmupLR: expected 0 <= warmup_steps <= total_steps and total_steps > 0, got warmup=",
      warmup_steps, " total=", total_steps);
  LETHE_CHECK(min_lr >= 0, "CosineWarmupLR: min_lr must be >= 0, got ", min_lr);
  for (size_t g = 0; g < opt.num_groups(); ++g) base_.push_back(opt.lr(g));
  apply();
}

double CosineWarmupLR::lr_at(int64_t t, size_t group) const {
  const double base = base_.at(group);
  if (t < warmup_) return base * static_cast<double>(t + 1) / static_cast<double>(warmup_);
  const int64_t span = std::max<int64_t>(1, total_ - warmup_);
  const double progress =
      std::min(1.0, static_cast<double>(t - warmup_) / static_cast<double>(span));
  constexpr double kPi = 3.14159265358979323846;
  return min_lr_ + (base - min_lr_) * 0.5 * (1.0 + std::cos(kPi * progress));
}

void CosineWarmupLR::apply() {
  for (size_t g = 0; g < base_.size(); ++g) opt_.group(g).lr = lr_at(t_, g);
}

void CosineWarmupLR::set_step(int64_t t) {
  LETHE_CHECK(t >= 0, "CosineWarmupLR::set_step: the step must be >= 0, got ", t);
  t_ = t;
  apply();
}

void CosineWarmupLR::step() {
  ++t_;
  apply();
}

}  // namespace lethe::optim
