// The `lethe` planner: valid plans under the budget, never costlier than any other planner at the
// same budget, and close to checkmate's proven optimum on small graphs.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "scheduler/bounds.h"
#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/graph_io.h"
#include "scheduler/lethe_postopt.h"
#include "scheduler/plan_builder.h"
#include "scheduler/planners/planners.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"

using namespace lethe::sched;

namespace {

struct Run {
  bool ok = false;
  double cost = 0;
  int64_t peak = 0;
  bool optimal = false;
};

// The planner function itself (plan() would search the smallest budget on failure: slow here).
Run run(const Problem& p, int64_t budget, const std::string& name,
        const PlannerOptions& opts = {}) {
  const PlannerEntry& e = find_planner(name);
  PlannerInfo info;
  std::optional<Plan> pl = e.fn(p, budget, opts, &info);
  Run r;
  if (!pl) return r;
  pl->budget_bytes = budget;
  const SimResult s = simulate(p, *pl);
  CHECK_MESSAGE(s.valid, name << " on " << p.name << ": " << s.message);
  r.ok = s.valid;
  r.cost = s.cost;
  r.peak = s.peak_bytes;
  r.optimal = info.optimal;
  return r;
}

// False (with a message saying why the case is skipped) when CBC was not found at configure time.
bool checkmate_built() {
  const PlannerEntry& cm = find_planner("checkmate");
  if (!cm.fn) MESSAGE("checkmate not built (" << cm.unavailable_reason << "): skipped");
  return static_cast<bool>(cm.fn);
}

}  // namespace

TEST_CASE("lethe: registered first, so auto prefers it on ties") {
  REQUIRE(!planners().empty());
  CHECK(planners().front().name == "lethe");
  CHECK(static_cast<bool>(find_planner("lethe").fn));
}

TEST_CASE("lethe: valid, under the budget and never costlier than another planner, every family") {
  for (const std::string& fam : generator_families()) {
    const Problem p = generate(fam, 24, 5);
    std::vector<int64_t> budgets;
    for (double f : {1.0, 0.5, 0.25}) budgets.push_back(fraction_budget(f, p));
    const int64_t smallest = smallest_feasible_budget(p, "lethe");
    REQUIRE(smallest > 0);
    budgets.push_back(smallest);
    for (int64_t b : budgets) {
      CAPTURE(p.name);
      CAPTURE(b);
      const Run l = run(p, b, "lethe");
      if (l.ok) CHECK(l.peak <= b);
      for (const PlannerEntry& e : planners()) {
        if (!e.fn || e.name == "lethe" || e.name == "checkmate") continue;
        const Run o = run(p, b, e.name);
        CAPTURE(e.name);
        if (o.ok) {
          CHECK(l.ok);
          CHECK(l.cost <= o.cost * (1 + 1e-12));
        }
      }
    }
    // The smallest budget lethe fits is no larger than any baseline's.
    CHECK(run(p, smallest, "lethe").ok);
  }
}

TEST_CASE("lethe: at the no-remat budget it costs exactly the no-remat cost") {
  for (const std::string& fam : generator_families()) {
    const Problem p = generate(fam, 30, 2);
    const Run l = run(p, fraction_budget(1.0, p), "lethe");
    REQUIRE(l.ok);
    CHECK(l.cost == doctest::Approx(no_remat_cost(p)));
  }
}

TEST_CASE("lethe: post-optimisation keeps a plan valid and never raises its cost") {
  const Problem p = generate("transformer", 40, 9);
  const Dag g(p);
  for (double f : {0.75, 0.4}) {
    const int64_t b = fraction_budget(f, p);
    for (const char* name : {"sqrt", "dtr", "chain", "treewidth"}) {
      PlannerInfo info;
      std::optional<Plan> pl = find_planner(name).fn(p, b, {}, &info);
      if (!pl) continue;
      pl->budget_bytes = b;
      const SimResult before = simulate(p, *pl);
      REQUIRE(before.valid);
      const std::optional<Plan> opt = post_optimise(g, *pl, b);
      REQUIRE(opt.has_value());
      const SimResult after = simulate(p, *opt);
      CAPTURE(name);
      CHECK_MESSAGE(after.valid, after.message);
      CHECK(after.cost <= before.cost + 1e-12);
      CHECK(after.peak_bytes <= b);
    }
  }
}

TEST_CASE("lethe: every budget above the smallest it fits gets a plan too") {
  // The eviction alone is not monotone in its budget: on this ResNet it fitted 15.2 MiB but not
  // the 17.0 MiB of a fifth of the activations (it thrashed past its step limit). lethe also runs
  // it at a ladder of smaller budgets, so a larger budget keeps a plan.
  for (const Problem& p :
       {resnet_graph(2, 4, 1), generate("transformer", 60, 1), generate("unet", 60, 1)}) {
    CAPTURE(p.name);
    const int64_t smallest = smallest_feasible_budget(p, "lethe");
    REQUIRE(smallest > 0);
    const int64_t peak = no_remat_peak(p);
    for (int k = 0; k <= 10; ++k) {
      const int64_t b = smallest + (peak - smallest) * k / 10;
      CAPTURE(b);
      const Run l = run(p, b, "lethe");
      CHECK(l.ok);
      if (l.ok) CHECK(l.peak <= b);
    }
  }
  const Problem r = resnet_graph(2, 4, 1);
  CHECK(run(r, fraction_budget(0.2, r), "lethe").ok);
}

TEST_CASE("lethe: only plans the caller accepts count") {
  const Problem p = generate("transformer", 60, 3);
  const int64_t b = fraction_budget(0.4, p);
  const std::optional<Plan> free_plan = plan_lethe(p, b, {}, nullptr);
  REQUIRE(free_plan);
  const SimResult free_sim = simulate(p, *free_plan);
  // Accepting everything changes nothing.
  PlannerOptions all;
  all.accept = [](const Plan&) { return true; };
  const std::optional<Plan> same = plan_lethe(p, b, all, nullptr);
  REQUIRE(same);
  CHECK(same->steps == free_plan->steps);
  // Accepting nothing leaves no plan, through plan() too.
  PlannerOptions none;
  none.accept = [](const Plan&) { return false; };
  CHECK_FALSE(plan_lethe(p, b, none, nullptr));
  CHECK_FALSE(try_plan(p, b, "lethe", none));
  // Rejecting the unconstrained choice: lethe falls back on another of its candidates, valid,
  // under the budget, and no cheaper.
  int calls = 0;
  PlannerOptions other;
  other.accept = [&](const Plan& pl) {
    ++calls;
    return pl.steps != free_plan->steps;
  };
  const std::optional<Plan> t = plan_lethe(p, b, other, nullptr);
  CHECK(calls > 0);
  REQUIRE(t);
  CHECK(t->steps != free_plan->steps);
  const SimResult ts = simulate(p, *t);
  CHECK(ts.valid);
  CHECK(ts.peak_bytes <= b);
  CHECK(ts.cost >= free_sim.cost);
}

TEST_CASE("lethe: a parameter gradient larger than its inputs is made last") {
  // In this U-Net the deepest convolutions' weight gradients outweigh their inputs. Made in id
  // order, they pile up beside the decoder's backward pass, and at a third of the activations no
  // eviction in id order fitted. Made last, their inputs are held instead, and the plan fits with
  // little recomputation.
  const Problem p = generate("unet", 60, 1);
  const int64_t b = fraction_budget(0.33, p);
  const Run l = run(p, b, "lethe");
  REQUIRE(l.ok);
  CHECK(l.peak <= b);
  CHECK(l.cost <= 1.10 * no_remat_cost(p));
}

namespace {

// lethe on an exported graph of bench/graphs at a fifth of its activations: fits, and costs at
// most `bound` x the no-remat cost.
void check_exported_at_a_fifth(const std::string& file, double bound) {
  CAPTURE(file);
  const Problem p = read_problem_file(std::string(LETHE_BENCH_GRAPHS) + "/" + file + ".graph.json");
  const int64_t b = fraction_budget(0.2, p);
  const Run l = run(p, b, "lethe");
  REQUIRE(l.ok);
  CHECK(l.peak <= b);
  CHECK(l.cost <= bound * no_remat_cost(p));
}

}  // namespace

TEST_CASE("lethe: exported graphs at a fifth of their activations") {
  // resnet18-w16: the last stage's weight gradients (2.25x their inputs) made last; before,
  // lethe recomputed the forward from the stem again and again (2.25x the no-remat cost).
  // unet-w16: the top concatenation (6 MiB) cannot be recomputed beside the 6 MiB input gradient
  // of its convolution, so evicting it was fatal and no plan fitted; the repair makes the
  // eviction keep it.
  check_exported_at_a_fifth("resnet18-w16", 1.30);
  check_exported_at_a_fifth("unet-w16", 1.50);
}

TEST_CASE("lethe: the evicted-ancestry score also runs with little or no distance weight") {
  // With alpha 0 and 0.5 the evicted-ancestry score weighs what a recompute costs, the evicted
  // stretch it needs included, over how soon it comes. Those starts took resnet18-w16 at a fifth
  // of its activations from 1.212x to 1.107x and gpt-small from 1.349x to 1.331x.
  check_exported_at_a_fifth("resnet18-w16", 1.15);
  check_exported_at_a_fifth("gpt-small", 1.34);
}

TEST_CASE("lethe: nothing fits below the floor") {
  const Problem p = generate("chain", 10, 1);
  CHECK(!run(p, floor_bytes(p) - 1, "lethe").ok);
}

TEST_CASE("lethe: within 3% of checkmate's proven optimum on small graphs") {
  if (!checkmate_built()) return;
  PlannerOptions opts;
  // CBC bounded by branch-and-bound nodes (~0.01 s each here), not seconds, so the set of proven
  // optima does not depend on the machine's load; the time limit only guards against a hang.
  opts.node_limit = 50;
  opts.time_limit_s = 600;
  int proven = 0;
  for (const auto& [fam, n] : std::vector<std::pair<std::string, int>>{
           {"chain", 5}, {"unet", 4}, {"layered", 5}, {"tree", 5}, {"grid", 5}}) {
    const Problem p = generate(fam, n, 4);
    if (p.size() > 30) continue;
    // Activation fractions below 1 are mostly infeasible on graphs this small (one op's working set
    // is most of the activation memory), so the budgets span lethe's feasible range instead.
    const int64_t lo = smallest_feasible_budget(p, "lethe"), hi = no_remat_peak(p);
    REQUIRE(lo > 0);
    for (double f : {1.0, 0.5, 0.2, 0.0}) {
      const int64_t b = lo + static_cast<int64_t>(f * static_cast<double>(hi - lo));
      CAPTURE(p.name);
      CAPTURE(f);
      const Run c = run(p, b, "checkmate", opts);
      const Run l = run(p, b, "lethe");
      if (c.ok) {
        CHECK(l.ok);
        if (c.optimal) {
          ++proven;
          CHECK(l.cost <= c.cost * 1.03 + 1e-12);
        } else {
          CHECK(l.cost <= c.cost * (1 + 1e-12));  // never worse than checkmate's incumbent either
        }
      }
    }
  }
  MESSAGE(proven << " proven optima compared");
  CHECK(proven >= 5);
}

TEST_CASE(
    "cut lower bound: no valid plan of any planner costs less, and it never refuses a budget a "
    "plan fits") {
  int compared = 0, above_base = 0;
  for (const std::string& fam : generator_families()) {
    for (uint64_t seed : {1, 2}) {
      const Problem p = generate(fam, 20, seed);
      for (double f : {1.0, 0.5, 0.25, 0.1}) {
        const int64_t b = fraction_budget(f, p);
        const CostBound lb = cut_lower_bound(p, b);
        CAPTURE(p.name);
        CAPTURE(f);
        if (lb.cost > no_remat_cost(p) * (1 + 1e-9)) ++above_base;
        // The MILP (when CBC is built) only ever raises the knapsack relaxation's bound.
        const CostBound knap = cut_lower_bound(p, b, BoundOptions{.milp_cuts = 0});
        CHECK(knap.infeasible == lb.infeasible);
        CHECK(lb.cost >= knap.cost * (1 - 1e-9));
        for (const PlannerEntry& e : planners()) {
          if (!e.fn || e.name == "checkmate") continue;
          const Run r = run(p, b, e.name);
          if (!r.ok) continue;
          CHECK_MESSAGE(!lb.infeasible, e.name << " fits a budget the bound calls infeasible");
          CHECK_MESSAGE(r.cost >= lb.cost * (1 - 1e-9),
                        e.name << " costs " << r.cost << " < bound " << lb.cost);
          ++compared;
        }
      }
    }
  }
  MESSAGE(compared << " plans compared, bound above the no-remat cost in " << above_base
                   << " cells");
  CHECK(compared > 100);
  CHECK(above_base > 0);  // the bound says something beyond "each node once"
}

TEST_CASE("cut lower bound: below checkmate's proven optimum on small graphs") {
  if (!checkmate_built()) return;
  PlannerOptions opts;
  // CBC bounded by branch-and-bound nodes (~0.01 s each here), not seconds, so the set of proven
  // optima does not depend on the machine's load; the time limit only guards against a hang.
  opts.node_limit = 50;
  opts.time_limit_s = 600;
  int proven = 0;
  for (const std::string& fam :
       {std::string("chain"), std::string("unet"), std::string("layered")}) {
    const Problem p = generate(fam, 5, 4);
    const int64_t lo = smallest_feasible_budget(p, "lethe"), hi = no_remat_peak(p);
    REQUIRE(lo > 0);
    for (double f : {0.5, 0.0}) {
      const int64_t b = lo + static_cast<int64_t>(f * static_cast<double>(hi - lo));
      const Run c = run(p, b, "checkmate", opts);
      if (!c.ok || !c.optimal) continue;
      ++proven;
      CAPTURE(p.name);
      CHECK(cut_lower_bound(p, b).cost <= c.cost * (1 + 1e-9));
    }
  }
  MESSAGE(proven << " proven optima compared");
}
