// Optimizer updates against torch.optim, on f64 parameters of a quadratic loss
//   loss = sum(0.5·w·p² + c·p)   (gradient w·p + c),   3 steps from p = [1, -2, 3, 0.5].
// The expected values were computed with Debian's python3-torch 1.13:
//
//   import torch
//   def run(make, steps=3):
//       p = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64, requires_grad=True)
//       w = torch.tensor([0.5, 1.5, 2.0, 1.0], dtype=torch.float64)
//       c = torch.tensor([0.1, -0.3, 0.2, -0.4], dtype=torch.float64)
//       opt = make([p])
//       for _ in range(steps):
//           opt.zero_grad(); loss = (0.5 * w * p * p + c * p).sum(); loss.backward(); opt.step()
//       return [float(x) for x in p.detach()]
//   run(lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.01))                                #
//   plain run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1,
//   weight_decay=0.01))   # momentum run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9,
//   nesterov=True, weight_decay=0.01))   # nesterov run(lambda ps: torch.optim.AdamW(ps, lr=0.01,
//   betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1))
#include <doctest/doctest.h>

#include <cmath>

#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"

using namespace lethe;

namespace {

std::vector<double> train_quadratic(
    const std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>& make,
    int steps = 3) {
  Session session({.seed = 1});
  Tensor p = from_vector<double>({1.0, -2.0, 3.0, 0.5});
  p.set_requires_grad(true);
  Tensor w = from_vector<double>({0.5, 1.5, 2.0, 1.0});
  Tensor c = from_vector<double>({0.1, -0.3, 0.2, -0.4});
  auto opt = make({p});
  for (int i = 0; i < steps; ++i) {
    opt->zero_grad();
    Tensor loss = (0.5 * w * p * p + c * p).sum();
    loss.backward();
    opt->step();
  }
  return p.to_vector<double>();
}

void check_close(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
}

}  // namespace

TEST_CASE("SGD with weight decay matches torch.optim.SGD") {
  auto got = train_quadratic([](std::vector<Tensor> ps) {
    return std::make_unique<optim::SGD>(ps, optim::SGDOptions(0.1).weight_decay(0.01));
  });
  check_close(got, {0.8261743389999999, -1.146826068, 1.481499177, 0.4715743895});
}

TEST_CASE("SGD with momentum and dampening matches torch.optim.SGD") {
  auto got = train_quadratic([](std::vector<Tensor> ps) {
    return std::make_unique<optim::SGD>(
        ps, optim::SGDOptions(0.1).momentum(0.9).dampening(0.1).weight_decay(0.01));
  });
  check_close(got, {0.6885110145899999, -0.43968671507999985, 0.19494573336999974, 0.448539155495});
}

TEST_CASE("SGD with Nesterov momentum matches torch.optim.SGD") {
  auto got = train_quadratic([](std::vector<Tensor> ps) {
    return std::make_unique<optim::SGD>(
        ps, optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(0.01));
  });
  check_close(got, {0.551190532201, 0.02695430758800003, -0.4455653319570002, 0.4295002630805});
}

TEST_CASE("AdamW matches torch.optim.AdamW") {
  auto got = train_quadratic([](std::vector<Tensor> ps) {
    return std::make_unique<optim::AdamW>(
        ps, optim::AdamWOptions(0.01).betas({0.9, 0.99}).eps(1e-8).weight_decay(0.1));
  });
  check_close(got,
              {0.9670414331776701, -1.9640409020644076, 2.96104273639582, 0.46869242152197915});
}

TEST_CASE("AdamW keeps per-parameter state and skips parameters without a gradient") {
  Session session({.seed = 2});
  Tensor a = from_vector<float>({1.f, 2.f}).set_requires_grad(true);
  Tensor b = from_vector<float>({3.f}).set_requires_grad(true);
  optim::AdamW opt(std::vector<Tensor>{a, b}, optim::AdamWOptions(0.1).weight_decay(0));
  for (int i = 0; i < 2; ++i) {
    opt.zero_grad();
    (a * a).sum().backward();  // b gets no gradient
    opt.step();
  }
  CHECK(opt.step_count() == 2);
  REQUIRE(opt.state(a) != nullptr);
  CHECK(opt.state(a)->step == 2);
  CHECK(opt.state(b) == nullptr);
  CHECK(b.to_vector<float>()[0] == 3.f);
  // Adam's first steps move each coordinate by about lr.
  auto av = a.to_vector<float>();
  CHECK(av[0] == doctest::Approx(0.8).epsilon(1e-3));
  CHECK(av[1] == doctest::Approx(1.8).epsilon(1e-3));
  // step() consumed the gradients.
  CHECK_FALSE(a.has_grad());
}

TEST_CASE("optimizer parameter groups use their own learning rate and weight decay") {
  Session session({.seed = 3});
  Tensor a = from_vector<double>({1.0}).set_requires_grad(true);
  Tensor b = from_vector<double>({1.0}).set_requires_grad(true);
  optim::SGD opt({optim::ParamGroup({a}), optim::ParamGroup({b}, 0.5, 0.0)},
                 optim::SGDOptions(0.1).weight_decay(1.0));
  (a + b).sum().backward();
  opt.step();
  CHECK(a.to_vector<double>()[0] == doctest::Approx(1.0 - 0.1 * (1.0 + 1.0)));
  CHECK(b.to_vector<double>()[0] == doctest::Approx(1.0 - 0.5 * 1.0));
  opt.set_lr(0.2);
  CHECK(opt.lr(0) == 0.2);
  CHECK(opt.lr(1) == 0.2);
}

TEST_CASE("optimizers refuse bad arguments with a clear message") {
  Session session;
  Tensor a = from_vector<float>({1.f}).set_requires_grad(true);
  Tensor c = from_vector<float>({1.f});
  CHECK_THROWS_WITH_AS(optim::SGD(std::vector<Tensor>{c}, optim::SGDOptions(0.1)),
                       doctest::Contains("requires_grad"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD(std::vector<Tensor>{a, a}, optim::SGDOptions(0.1)),
                       doctest::Contains("more than once"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD(std::vector<Tensor>{a}, optim::SGDOptions(0.1).nesterov(true)),
                       doctest::Contains("Nesterov"), Error);
  CHECK_THROWS_AS(optim::AdamW(std::vector<Tensor>{a}, optim::AdamWOptions(1e-3).betas({1.0, 0.9})),
                  Error);
  CHECK_THROWS_AS(optim::SGD(std::vector<Tensor>{}, optim::SGDOptions(0.1)), Error);
}

TEST_CASE("CosineWarmupLR warms up linearly then decays to min_lr") {
  Session session;
  Tensor a = from_vector<float>({1.f}).set_requires_grad(true);
  optim::SGD opt(std::vector<Tensor>{a}, optim::SGDOptions(1.0));
  optim::CosineWarmupLR sched(opt, 4, 14, 0.1);
  CHECK(opt.lr() == doctest::Approx(0.25));  // step 0: 1/4 of the base rate
  std::vector<double> lrs;
  for (int t = 1; t <= 16; ++t) {
    sched.step();
    lrs.push_back(opt.lr());
  }
  CHECK(lrs[2] == doctest::Approx(1.0));  // t = 3, end of warmup
  CHECK(lrs[3] == doctest::Approx(1.0));  // t = 4, cosine starts at base
  CHECK(lrs[8] ==
        doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.5))));  // t = 9: half way
  CHECK(lrs[13] == doctest::Approx(0.1));                                // t = 14 = total
  CHECK(lrs[15] == doctest::Approx(0.1));                                // held after the end
  for (size_t i = 4; i < 14; ++i) CHECK(lrs[i] < lrs[i - 1]);
}
