// Plan-only sessions and the largest batch for a budget: a batch found by planning alone runs under
// that budget in a real session, and the next batch is refused there too.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"

using namespace lethe;

namespace {

// A small MLP whose activations grow with the batch; its parameters and AdamW state stay fixed.
std::shared_ptr<nn::Sequential> make_mlp() {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Linear>(16, 32));
  for (int i = 0; i < 5; ++i) {
    seq->push_back(std::make_shared<nn::ReLU>());
    seq->push_back(std::make_shared<nn::Linear>(32, 32));
  }
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::Linear>(32, 4));
  return seq;
}

// One training step of `batch` in the current session.
void record_step(int64_t batch) {
  auto mlp = make_mlp();
  optim::AdamW opt(mlp->parameters(), optim::AdamWOptions(1e-2));
  Tensor loss = mse_loss(mlp->forward(randn({batch, 16})), randn({batch, 4}));
  loss.backward();
  opt.step();
}

std::string bytes(size_t b) {
  return std::to_string(b);
}

// The no-remat peak of a real step of `batch` (a budget generous enough to keep everything).
size_t no_remat_peak(int64_t batch) {
  Session s({.seed = 3, .memory_budget = "16MiB"});
  record_step(batch);
  REQUIRE(s.last_report().recomputed == 0);
  return s.last_report().no_remat_peak_bytes;
}

// The budget of these tests: what batch 64 needs without rematerialisation, so that larger
// batches fit only by recomputing and the answer does not depend on this machine.
size_t test_budget() {
  static const size_t b = no_remat_peak(64);
  return b;
}

}  // namespace

TEST_CASE("max_batch: a plan-only step is planned as a budgeted one but runs nothing") {
  const std::string budget = bytes(test_budget());
  StepReport real;
  {
    Session s({.seed = 5, .memory_budget = budget});
    record_step(96);
    real = s.last_report();
  }
  Session s({.seed = 5, .memory_budget = budget, .plan_only = true});
  auto mlp = make_mlp();
  optim::AdamW opt(mlp->parameters(), optim::AdamWOptions(1e-2));
  std::vector<std::vector<float>> before;
  for (const Tensor& p : mlp->parameters()) before.push_back(p.to_vector<float>());
  Tensor out = mlp->forward(randn({96, 16}));
  Tensor loss = mse_loss(out, randn({96, 4}));
  // A pending value cannot be computed...
  CHECK_THROWS_WITH_AS(out.to_vector<float>(), doctest::Contains("plan-only"), Error);
  out = Tensor();  // held, it would be kept: record_step's step does not keep it
  loss.backward();
  opt.step();
  // ... nor a planned one read.
  CHECK_THROWS_WITH_AS(loss.item<float>(), doctest::Contains("the session is plan-only"), Error);
  CHECK_THROWS_WITH_AS((loss * 2.0).item<float>(), doctest::Contains("plan-only"), Error);
  // The updates did not run.
  for (size_t i = 0; i < before.size(); ++i)
    CHECK(mlp->parameters()[i].to_vector<float>() == before[i]);
  // The plan is the one a real session makes on its first step.
  const StepReport& r = s.last_report();
  CHECK(r.plan_only);
  CHECK(r.peak_bytes == 0);
  CHECK(r.seconds == 0.0);
  CHECK(r.budget_bytes == real.budget_bytes);
  CHECK(r.no_remat_peak_bytes == real.no_remat_peak_bytes);
  CHECK(r.no_remat_peak_bytes > r.budget_bytes);  // batch 96 fits only by recomputing
  CHECK(r.planner == real.planner);
  CHECK(r.predicted_overhead == real.predicted_overhead);
  CHECK(r.nodes == real.nodes);
  CHECK(r.recomputed == real.recomputed);
  CHECK(r.recomputed > 0);
  CHECK(r.planning_seconds > 0);
  CHECK(r.str().find("plan only") != std::string::npos);
}

TEST_CASE(
    "max_batch: a plan-only step that does not fit throws InfeasibleBudget as a real one does") {
  const std::string budget = bytes(test_budget());
  // Batch 256 needs a larger budget (its inputs, parameters and optimizer state alone fit).
  size_t real_smallest = 0, plan_smallest = 0;
  try {
    Session s({.seed = 5, .memory_budget = budget});
    record_step(256);
    FAIL("expected InfeasibleBudget");
  } catch (const InfeasibleBudget& e) {
    real_smallest = e.smallest_feasible_bytes;
  }
  try {
    Session s({.seed = 5, .memory_budget = budget, .plan_only = true});
    record_step(256);
    FAIL("expected InfeasibleBudget");
  } catch (const InfeasibleBudget& e) {
    plan_smallest = e.smallest_feasible_bytes;
  }
  CHECK(plan_smallest > test_budget());
  CHECK(plan_smallest == real_smallest);
}

TEST_CASE(
    "max_batch: the largest batch found by planning runs under the budget, the next is refused") {
  const size_t budget = test_budget();
  const SessionOptions opts{.seed = 7, .memory_budget = bytes(budget)};
  MaxBatchResult r = find_max_batch(opts, record_step, {.min_batch = 8});
  INFO(r.table());
  REQUIRE(r.batch > 64);  // remat fits more than the batch the budget was measured at
  REQUIRE(r.batch < (int64_t{1} << 20));
  // Doubling, then bisection down to adjacent batches: b fits, b + 1 was tried and does not.
  CHECK(r.tried.front().batch == 8);
  bool saw_next = false;
  for (const BatchCandidate& c : r.tried) {
    CHECK(c.budget_bytes == budget);
    if (c.batch <= r.batch)
      CHECK(c.fits);  // every batch at or below the answer that was tried fits
    if (c.batch == r.batch + 1) {
      saw_next = true;
      CHECK_FALSE(c.fits);
      CHECK(c.smallest_bytes > budget);
      CHECK(c.why.find("infeasible") != std::string::npos);
    }
  }
  CHECK(saw_next);
  CHECK(r.table().find("batch | fits | planner | predicted overhead | no-remat peak | why") == 0);
  {
    Session s({.seed = 7, .memory_budget = bytes(budget)});
    record_step(r.batch);
    CHECK(s.last_report().peak_bytes <= budget);
    CHECK(s.last_report().recomputed > 0);
  }
  {
    Session s({.seed = 7, .memory_budget = bytes(budget)});
    CHECK_THROWS_AS(record_step(r.batch + 1), InfeasibleBudget);
  }
}

TEST_CASE(
    "max_batch: a bound on the predicted overhead gives a batch no larger, within the bound") {
  const size_t budget = test_budget();
  const SessionOptions opts{.seed = 7, .memory_budget = bytes(budget)};
  MaxBatchResult any = find_max_batch(opts, record_step, {.min_batch = 16});
  MaxBatchResult bound = find_max_batch(opts, record_step, {.min_batch = 16, .max_overhead = 1.05});
  INFO(any.table() << "\n" << bound.table());
  // Batch 64, whose no-remat peak is the budget, recomputes next to nothing.
  REQUIRE(bound.batch >= 64);
  CHECK(bound.batch <= any.batch);
  bool over = false;
  for (const BatchCandidate& c : bound.tried) {
    if (c.batch == bound.batch) CHECK(c.predicted_overhead <= 1.05);
    if (!c.fits && !c.planner.empty()) {
      over = true;  // planned within the budget, refused for its overhead
      CHECK(c.predicted_overhead > 1.05);
      CHECK(c.why.find("max_overhead") != std::string::npos);
    }
  }
  if (bound.batch < any.batch) CHECK(over);
  // max_batch caps the search, and is the answer when it fits.
  MaxBatchResult capped = find_max_batch(opts, record_step, {.min_batch = 5, .max_batch = 40});
  CHECK(capped.batch == 40);
  CHECK(capped.tried.back().batch == 40);
  // A min_batch that does not fit: no batch.
  MaxBatchResult none = find_max_batch(opts, record_step, {.min_batch = any.batch + 1});
  CHECK(none.batch == 0);
  CHECK(none.tried.size() == 1);
}

TEST_CASE("max_batch: bad inputs are refused with clear errors, other errors propagate") {
  const std::string budget = bytes(test_budget());
  CHECK_THROWS_WITH_AS(Session({.plan_only = true}),
                       doctest::Contains("plan_only needs a memory budget in bytes"), Error);
  CHECK_THROWS_WITH_AS(Session({.memory_budget = "0.25", .plan_only = true}),
                       doctest::Contains("activation fraction '0.25'"), Error);
  CHECK_THROWS_WITH_AS(find_max_batch({}, record_step),
                       doctest::Contains("plan_only needs a memory budget in bytes"), Error);
  CHECK_THROWS_WITH_AS(find_max_batch({.memory_budget = "0.5"}, record_step),
                       doctest::Contains("needs a memory budget in bytes"), Error);
  const SessionOptions opts{.memory_budget = budget};
  CHECK_THROWS_WITH_AS(find_max_batch(opts, record_step, {.min_batch = 9, .max_batch = 8}),
                       doctest::Contains("min_batch (9) must be <= max_batch (8)"), Error);
  CHECK_THROWS_WITH_AS(find_max_batch(opts, record_step, {.min_batch = 0}),
                       doctest::Contains("min_batch must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(find_max_batch(opts, record_step, {.max_overhead = 0.3}),
                       doctest::Contains("max_overhead is a ratio"), Error);
  CHECK_THROWS_WITH_AS(find_max_batch(opts, [](int64_t) {}), doctest::Contains("recorded no step"),
                       Error);
  // A mistake in the user's step is not a batch that does not fit.
  auto wrong_width = [](int64_t batch) {
    auto mlp = make_mlp();
    mlp->forward(randn({batch, 15})).sum().backward();
  };
  CHECK_THROWS_AS(find_max_batch(opts, wrong_width), Error);
  try {
    find_max_batch(opts, wrong_width);
  } catch (const InfeasibleBudget&) {
    FAIL("a shape error was taken for an infeasible budget");
  } catch (const Error&) {
  }
}
