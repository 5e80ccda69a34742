// Evaluation with a batch larger than the training budget fits: refused inside the budget (with the
// smallest budget that would fit), run outside it with OutsideBudgetGuard, with the results of an
// unlimited session.
#include <doctest/doctest.h>

#include <cstddef>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {
// The same evaluation batch in any session (not drawn from the session's random streams).
Tensor batch(int64_t rows, int64_t cols) {
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(static_cast<int>(i * 7919 % 61) - 30) / 30.0f;
  return from_vector(v, {rows, cols});
}
std::vector<float> evaluate(nn::Sequential& net, const Tensor& x) {
  NoGradGuard no_grad;
  return net.forward(x).to_vector<float>();
}
}  // namespace

TEST_CASE(
    "outside the budget: a large evaluation batch runs beside the arena, with unlimited results" *
    doctest::test_suite("executor")) {
  auto make = [] {
    return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(64, 256),
                                            std::make_shared<nn::ReLU>(),
                                            std::make_shared<nn::Linear>(256, 10));
  };
  std::vector<float> reference;
  {
    Session s({.seed = 5});
    auto net = make();
    reference = evaluate(*net, batch(4096, 64));
  }
  Session s({.seed = 5, .memory_budget = "1MiB"});
  auto net = make();
  // 1 MiB holds the parameters and a training batch of 32, not a 4096-row evaluation (its input
  // alone is 1 MiB).
  {
    optim::SGD opt(net->parameters(), optim::SGDOptions(0.0));
    Tensor loss = cross_entropy(net->forward(randn({32, 64})), zeros({32}, DType::i64));
    loss.backward();
    opt.step();
  }
  const size_t arena_peak = s.last_report().peak_bytes;
  std::vector<float> out;
  {
    OutsideBudgetGuard outside;
    out = evaluate(*net, batch(4096, 64));
    CHECK(s.last_report().planner == "natural");
  }
  CHECK(out.size() == reference.size());
  CHECK(out == reference);  // SGD with lr 0 kept the weights: the same model, the same bits
  CHECK(arena_peak <= (size_t{1} << 20));
  // Inside the budget the same evaluation is refused: its input does not even fit the arena.
  CHECK_THROWS_AS(evaluate(*net, batch(4096, 64)), InfeasibleBudget);
}

TEST_CASE("outside the budget: the guard is refused mid-step and in a plan-only session" *
          doctest::test_suite("executor")) {
  Session s({.seed = 6, .memory_budget = "4MiB"});
  Tensor w = randn({8, 8}).set_requires_grad(true);
  Tensor y = matmul(w, w);  // a step is being recorded
  CHECK_THROWS_WITH_AS(OutsideBudgetGuard(), doctest::Contains("a step is being recorded"), Error);
  (void)y.sum().item<float>();
  s.flush();
  Session p({.memory_budget = "4MiB", .plan_only = true});
  CHECK_THROWS_WITH_AS(OutsideBudgetGuard(), doctest::Contains("plan-only"), Error);
}
