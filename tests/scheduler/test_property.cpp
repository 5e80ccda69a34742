// Property test: every planner (except checkmate, tested on its own) at budgets {1, 0.5, 0.25,
// smallest feasible} on thousands of small generated training graphs of every family returns only
// valid plans within the budget that keep every output. plan() itself simulates each plan and
// throws Error on an invalid one; the checks below restate the contract independently.
#include <doctest/doctest.h>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "torch_like.h"

using namespace lethe::sched;

// The sanitizer build runs a quarter of the same sequence, in runs of four consecutive graphs (ASan
// and UBSan make the planners ~10x slower; the Release build runs them all).
#ifndef LETHE_PROPERTY_GRAPHS
#define LETHE_PROPERTY_GRAPHS 5040
#endif

TEST_CASE(
    "property: all planners, all families, 5,000+ small graphs (a quarter under sanitizers)") {
  const auto families = generator_families();
  constexpr int kGraphs = LETHE_PROPERTY_GRAPHS;
  const int stride = 5040 / kGraphs;
  const int per_family = 5040 / static_cast<int>(families.size()) + 1;
  int graphs = 0, plans = 0;
  for (const std::string& family : families) {
    for (int i = 0; i < per_family; ++i) {
      if ((i / 4) % stride != 0) continue;  // whole runs of four keep every width (2 + i % 4)
      const uint64_t seed = 1000u * static_cast<uint64_t>(i) + 17;
      // 3..16 forward operations: about 8..50 nodes with parameters and gradients (the smallest-
      // budget search, a dozen runs of every planner, dominates the time; keep graphs small).
      const int n = 3 + static_cast<int>(seed * 2654435761u % 14);
      const int width = 2 + i % 4;
      const Problem p = generate(family, n, seed, width);
      ++graphs;
      // The smallest budget any planner fits (checkmate is left out of that search).
      const int64_t smallest = smallest_feasible_budget(p, "auto");
      REQUIRE(smallest >= floor_bytes(p));
      REQUIRE(smallest <= no_remat_peak(p));
      const std::vector<int64_t> budgets = {parse_budget("1", p), parse_budget("0.5", p),
                                            parse_budget("0.25", p), smallest};
      bool any_at_smallest = false;
      for (const PlannerEntry& e : planners()) {
        if (!e.fn || e.name == "checkmate") continue;
        for (size_t k = 0; k < budgets.size(); ++k) {
          const int64_t b = budgets[k];
          const std::optional<PlanResult> r = try_plan(p, b, e.name);
          if (!r) {
            // Allowed except for keep-all at the no-remat peak.
            if (e.name == "keep-all" && k == 0)
              FAIL_CHECK(family << " seed " << seed << ": keep-all infeasible at 1");
            continue;
          }
          ++plans;
          if (k == 3) any_at_smallest = true;
          const SimResult s = simulate(p, r->plan);
          const bool ok =
              s.valid && s.peak_bytes <= b && r->plan.predicted_peak_bytes == s.peak_bytes;
          CHECK(ok);
          if (!ok) {
            MESSAGE(family << " n=" << n << " seed " << seed << " planner " << e.name << " budget "
                           << b << ": " << s.message);
          }
        }
      }
      CHECK(any_at_smallest);
    }
  }
  CHECK(graphs >= kGraphs * 5000 / 5040);
  MESSAGE(graphs << " graphs, " << plans << " plans checked");
}

// The same contract on the generated graphs rewritten in PyTorch's shape (torch_like.h: a resident
// tangent seeds the backward, nothing reads the loss, gradient formulas recompute forward values),
// on every eighth graph of the sequence above; a budget refused by plan() names the smallest
// feasible budget.
TEST_CASE("property: all planners on PyTorch-shaped graphs") {
  const auto families = generator_families();
  const int per_family = 5040 / static_cast<int>(families.size()) + 1;
  int graphs = 0;
  for (const std::string& family : families) {
    for (int i = 0; i < per_family; i += 8) {
      const uint64_t seed = 1000u * static_cast<uint64_t>(i) + 17;
      const int n = 3 + static_cast<int>(seed * 2654435761u % 14);
      const Problem p = lethe::sched::test::torch_like(generate(family, n, seed, 2 + i % 4));
      ++graphs;
      const int64_t smallest = smallest_feasible_budget(p, "auto");
      REQUIRE(smallest >= floor_bytes(p));
      REQUIRE(smallest <= no_remat_peak(p));
      for (const PlannerEntry& e : planners()) {
        if (!e.fn || e.name == "checkmate") continue;
        for (const int64_t b :
             {parse_budget("1", p), parse_budget("0.5", p), parse_budget("0.25", p), smallest}) {
          const std::optional<PlanResult> r = try_plan(p, b, e.name);
          if (!r) continue;
          const SimResult s = simulate(p, r->plan);
          const bool ok =
              s.valid && s.peak_bytes <= b && r->plan.predicted_peak_bytes == s.peak_bytes;
          CHECK_MESSAGE(ok, family << " n=" << n << " seed " << seed << " planner " << e.name
                                   << ": " << s.message);
        }
      }
      if (smallest > floor_bytes(p)) {
        try {
          (void)plan(p, smallest - 1, "sqrt");
        } catch (const Infeasible& inf) {
          CHECK(inf.smallest_bytes == smallest);
        }
      }
    }
  }
  MESSAGE(graphs << " PyTorch-shaped graphs");
}
