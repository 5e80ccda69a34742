#include <doctest/doctest.h>

#include "scheduler/graph_io.h"
#include "scheduler/simulator.h"
#include "test_helpers.h"

using namespace lethe::sched;
using lethe::sched::test::contains;

namespace {

const std::string kData = LETHE_SCHEDULER_TEST_DATA;

Problem example() {
  return read_problem_file(kData + "/chain3-train.graph.json");
}

Plan with_steps(std::vector<Step> steps, int64_t budget = 1904) {
  Plan plan;
  plan.budget_bytes = budget;
  plan.steps = std::move(steps);
  return plan;
}

}  // namespace

TEST_CASE("simulator: the spec example keep-all plan is valid, peak 1904, cost 5.6") {
  const SimResult r =
      simulate(example(), read_plan_file(kData + "/chain3-train.keep-all.plan.json"));
  CHECK(r.valid);
  CHECK(r.message.empty());
  CHECK(r.peak_bytes == 1904);
  CHECK(r.cost == doctest::Approx(5.6));
}

TEST_CASE("simulator: each violation is caught at its step") {
  const Problem p = example();
  using S = Step;
  auto check = [&](std::vector<Step> steps, int64_t bad_step, const std::string& part,
                   int64_t budget = 1904) {
    const SimResult r = simulate(p, with_steps(std::move(steps), budget));
    CHECK_FALSE(r.valid);
    CHECK(r.first_bad_step == bad_step);
    CAPTURE(r.message);
    CHECK(contains(r.message, part));
  };
  check({S::compute(4)}, 0, "input node 3 is not in memory");
  check({S::compute(3), S::compute(3)}, 1, "already in memory");
  check({S::compute(0)}, 0, "resident");
  check({S::compute(3), S::compute(4)}, 1, "over the budget", 1000);
  check({S::free(3)}, 0, "rule 3: free node 3, which is not in memory");
  check({S::free(1)}, 0, "rule 3");
  check({S::compute(12)}, 0, "node 12 does not exist");
  check({S::compute(3)}, 1, "rule 4: output node 6");
}

TEST_CASE("simulator: recomputation and peak counting") {
  const Problem p = example();
  using S = Step;
  // Compute h1, free it, compute it again: allowed (rematerialisation); cost counts twice.
  const SimResult r =
      simulate(p, with_steps({S::compute(3), S::free(3), S::compute(3), S::compute(4),
                              S::compute(5), S::compute(6), S::free(3), S::free(4), S::free(5)},
                             100000));
  CHECK_FALSE(r.valid);  // outputs 8 and 11 missing
  CHECK(r.first_bad_step == 9);
  CHECK(r.cost == doctest::Approx(3.3));
  CHECK(r.peak_bytes == 600 + 1204);
}

TEST_CASE("simulator: helpers on hand-made graphs") {
  using lethe::sched::test::node;
  Problem p;
  p.nodes = {node(0, 10, 0, {}, true), node(1, 100, 1, {0}), node(2, 50, 1, {1}),
             node(3, 7, 1, {0}), node(4, 1, 1, {2, 1})};
  p.outputs = {4};
  CHECK(resident_bytes(p) == 10);
  CHECK(floor_bytes(p) == 11);
  // 1: 110; 2: 160; 3 (dead, freed at once): 167; 4: 161
  CHECK(no_remat_peak(p) == 167);
  CHECK(no_remat_cost(p) == doctest::Approx(4.0));
  Problem none;
  none.nodes = {node(0, 10, 0, {}, true)};
  none.outputs = {0};
  CHECK(no_remat_peak(none) == 10);
  CHECK(simulate(none, with_steps({}, 10)).valid);
}

TEST_CASE("simulator: 100k-step plans are fast") {
  using lethe::sched::test::node;
  Problem p;
  p.nodes.push_back(node(0, 8, 0, {}, true));
  for (int i = 1; i < 10000; ++i) p.nodes.push_back(node(i, 8, 1, {i - 1}));
  p.outputs = {9999};
  Plan plan = with_steps({}, 1 << 20);
  for (int rep = 0; rep < 5; ++rep) {
    for (int i = 1; i < 10000; ++i) {
      plan.steps.push_back(Step::compute(i));
      if (i > 1) plan.steps.push_back(Step::free(i - 1));
    }
    if (rep < 4) plan.steps.push_back(Step::free(9999));
  }
  const SimResult r = simulate(p, plan);
  CHECK(r.valid);
  CHECK(r.peak_bytes == 24);
  CHECK(r.compute_steps == 5 * 9999);
}
