// RMSprop and Adam/AdamW amsgrad against torch.optim (1.13, f64) on the quadratic of
// test_adam.cpp: 0.5 w p² + c p, seven steps.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lethe.h"
#include "optim/optim.h"

using namespace lethe;

namespace {

const std::vector<double> kP0 = {1.0, -2.0, 3.0, 0.5}, kW = {0.5, 1.5, 2.0, 1.0},
                          kC = {0.1, -0.3, 0.2, -0.4};

template <typename Opt, typename Options>
std::vector<double> train(const Options& o, int steps, StateDict* state = nullptr) {
  Session session({.seed = 1});
  Tensor p = from_vector<double>(kP0);
  p.set_requires_grad(true);
  Tensor w = from_vector<double>(kW), c = from_vector<double>(kC);
  Opt opt({p}, o);
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    Tensor loss = (0.5 * w * p * p + c * p).sum();
    loss.backward();
    opt.step();
  }
  if (state) *state = opt.state_dict().tensors;
  return p.to_vector<double>();
}

void check_close(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
}

}  // namespace

TEST_CASE("RMSprop matches torch.optim.RMSprop (plain, momentum, centered with weight decay)") {
  check_close(train<optim::RMSprop>(optim::RMSpropOptions(0.01), 7),
              {0.6239541418754623, -1.6104933815545799, 2.6060715951336904, 0.4});
  check_close(
      train<optim::RMSprop>(
          optim::RMSpropOptions(0.01).alpha(0.9).eps(1e-6).weight_decay(0.1).momentum(0.8).centered(
              true),
          7),
      {0.5540641486198196, -1.5425251673870917, 2.5389221473870363, 0.3013296136276782});
  check_close(train<optim::RMSprop>(optim::RMSpropOptions(0.02).momentum(0.5), 7),
              {-0.08107349360786148, -0.7291758499889748, 1.6715695564985777, 0.3997463184758853});
  StateDict sd;
  train<optim::RMSprop>(optim::RMSpropOptions(0.01).momentum(0.9).centered(true), 3, &sd);
  CHECK(sd.contains("state.0.square_avg"));
  CHECK(sd.contains("state.0.grad_avg"));
  CHECK(sd.contains("state.0.momentum_buffer"));
  Session s;
  Tensor p = from_vector<double>({1.0}).set_requires_grad(true);
  CHECK_THROWS_WITH_AS(optim::RMSprop({p}, optim::RMSpropOptions().momentum(-1)),
                       "RMSprop: momentum must be >= 0, got -1", Error);
}

TEST_CASE("Adam and AdamW amsgrad match torch.optim") {
  check_close(train<optim::Adam>(optim::AdamOptions(0.1).amsgrad(true).weight_decay(0.05), 7),
              {0.31776559248353464, -1.3072443013147401, 2.3046658963595226, 0.4146276236158609});
  StateDict sd;
  check_close(train<optim::AdamW>(optim::AdamWOptions(0.1).amsgrad(true), 7, &sd),
              {0.31266246041527057, -1.2955201227044189, 2.2859770646524136, 0.4484132493817844});
  CHECK(sd.contains("state.0.max_exp_avg_sq"));
}
