// Learning-rate schedulers against the closed forms of torch.optim.lr_scheduler (the formulas of
// PyTorch 1.13, evaluated in double in PyTorch's order of operations), bitwise.
#include <doctest/doctest.h>

#include <cmath>

#include "lethe.h"
#include "optim/lr_scheduler.h"
#include "optim/optim.h"

using namespace lethe;

namespace {

struct Fixture {
  Session session{SessionOptions{.seed = 1}};
  Tensor a = zeros({2}).set_requires_grad(true), b = zeros({3}).set_requires_grad(true);
  optim::SGD opt{{optim::ParamGroup({a}), optim::ParamGroup({b}, 0.5)}, optim::SGDOptions(0.1)};
};

}  // namespace

TEST_CASE("StepLR: base_lr * gamma^(t / step_size) per group, and set_step resumes it") {
  Fixture f;
  optim::StepLR s(f.opt, 3, 0.5);
  for (int64_t t = 0; t < 10; ++t) {
    CHECK(f.opt.lr(0) == 0.1 * std::pow(0.5, static_cast<double>(t / 3)));
    CHECK(f.opt.lr(1) == 0.5 * std::pow(0.5, static_cast<double>(t / 3)));
    CHECK(s.last_step() == t);
    s.step();
  }
  s.set_step(4);
  CHECK(f.opt.lr(0) == 0.1 * 0.5);
  CHECK_THROWS_WITH_AS(optim::StepLR(f.opt, 0), doctest::Contains("step_size must be > 0"), Error);
}

TEST_CASE("LambdaLR: base_lr * fn(t), one function or one per group") {
  Fixture f;
  optim::LambdaLR s(f.opt, [](int64_t t) { return 1.0 / (1.0 + static_cast<double>(t)); });
  s.step();
  s.step();
  CHECK(f.opt.lr(0) == 0.1 * (1.0 / 3.0));
  CHECK(f.opt.lr(1) == 0.5 * (1.0 / 3.0));
  optim::LambdaLR per(f.opt, std::vector<optim::LambdaLR::Fn>{[](int64_t) { return 2.0; },
                                                              [](int64_t) { return 3.0; }});
  // The second scheduler's base rates are the rates the first one left.
  CHECK(f.opt.lr(0) == 0.1 * (1.0 / 3.0) * 2.0);
  CHECK(f.opt.lr(1) == 0.5 * (1.0 / 3.0) * 3.0);
  CHECK_THROWS_WITH_AS(
      optim::LambdaLR(f.opt, std::vector<optim::LambdaLR::Fn>{[](int64_t) { return 1.0; }}),
      doctest::Contains("one function per parameter group (2), got 1"), Error);
}

TEST_CASE("LinearLR: a linear warmup from start_factor to end_factor, then held") {
  Fixture f;
  optim::LinearLR s(f.opt, 0.25, 1.0, 4);
  const double want[] = {0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0, 1.0};
  for (double w : want) {
    CHECK(f.opt.lr(0) == 0.1 * w);
    s.step();
  }
  CHECK(s.lr_at(2, 1) == 0.5 * (0.25 + (1.0 - 0.25) * 2.0 / 4.0));
  CHECK_THROWS_WITH_AS(optim::LinearLR(f.opt, 0.0),
                       doctest::Contains("start_factor must be in (0, 1]"), Error);
}

TEST_CASE("OneCycleLR: PyTorch's phases, cos and linear, two and three phases") {
  Fixture f;
  const double max_lr = 0.1, n = 10;
  optim::OneCycleLR s(f.opt, max_lr, 10);
  const double initial = max_lr / 25.0, min_lr = initial / 1e4;
  auto cos_anneal = [](double start, double end, double pct) {
    const double cos_out = std::cos(3.141592653589793 * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  };
  const double end1 = 0.3 * n - 1, end2 = n - 1;
  for (int64_t t = 0; t <= 10; ++t) {
    const double st = static_cast<double>(t);
    const double want = st <= end1 ? cos_anneal(initial, max_lr, st / end1)
                                   : cos_anneal(max_lr, min_lr, (st - end1) / (end2 - end1));
    CHECK(s.lr_at(t, 0) == want);
    CHECK(s.lr_at(t, 1) == want);  // every group from max_lr
  }
  CHECK(f.opt.lr(0) ==
        s.lr_at(0));  // the anneal at pct 0: initial_lr up to rounding, as in PyTorch
  CHECK(f.opt.lr(0) == doctest::Approx(initial).epsilon(1e-15));
  CHECK(s.lr_at(2) == max_lr);
  CHECK_THROWS_WITH_AS((void)s.lr_at(11), doctest::Contains("step 11 is past total_steps (10)"),
                       Error);
  optim::OneCycleLR lin(f.opt, max_lr, 10, {.anneal_strategy = "linear", .three_phase = true});
  CHECK(lin.lr_at(1) == (max_lr - initial) * (1.0 / end1) + initial);
  CHECK(lin.lr_at(4) == (initial - max_lr) * ((4.0 - end1) / (2 * 0.3 * n - 2 - end1)) + max_lr);
  CHECK(lin.lr_at(10) == (min_lr - initial) * ((10.0 - 4.0) / (n - 1 - 4.0)) + initial);
  CHECK_THROWS_WITH_AS(optim::OneCycleLR(f.opt, 0.1, 10, {.anneal_strategy = "exp"}),
                       doctest::Contains("anneal_strategy must be \"cos\" or \"linear\""), Error);
}
