// compile_step() on its own, on the graph files under bench/graphs/ (steps exported from the
// examples, with measured op times): the plan it compiles is valid within the window, its buffers
// never overlap while live, and an infeasible window names the smallest arena, which then compiles.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "framework/compile_step.h"
#include "framework/session.h"
#include "framework/storage.h"
#include "scheduler/budget.h"
#include "scheduler/graph_io.h"
#include "scheduler/simulator.h"

using namespace lethe;

namespace {

std::vector<std::string> graph_files() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(LETHE_BENCH_GRAPHS))
    if (e.path().string().ends_with(".graph.json")) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// The compiled step as a plan of the problem (graph ids are problem ids for a graph file).
sched::Plan as_plan(const CompiledStep& c, int64_t budget) {
  sched::Plan plan;
  plan.budget_bytes = budget;
  for (const ExecStep& e : c.steps)
    plan.steps.push_back(e.compute ? sched::Step::compute(e.node) : sched::Step::free(e.node));
  return plan;
}

void check_compiled(const StepProblem& sp, const StepWindow& w, const CompiledStep& c) {
  const sched::Problem& p = sp.problem;
  const int64_t resident = sched::resident_bytes(p);
  // Valid under the spec's rules, within the bytes the window leaves for the step.
  const sched::SimResult r = sched::simulate(p, as_plan(c, resident + (w.region_end - w.base)));
  INFO(r.message);
  CHECK(r.valid);
  CHECK(r.peak_bytes <= resident + (w.region_end - w.base));
  CHECK(static_cast<int64_t>(c.region_bytes) <= w.region_end - w.base);
  REQUIRE(c.offsets.size() == c.steps.size());
  // Live buffers never share bytes, and all lie inside the region.
  std::map<int, std::pair<int64_t, int64_t>> live;  // node -> [offset, end)
  for (size_t i = 0; i < c.steps.size(); ++i) {
    const ExecStep& e = c.steps[i];
    if (!e.compute) {
      live.erase(e.node);
      continue;
    }
    const int64_t off = c.offsets[i];
    const int64_t end = off + static_cast<int64_t>(align_up(static_cast<size_t>(std::max<int64_t>(
                                  p.nodes[static_cast<size_t>(e.node)].bytes, 1))));
    CHECK(off % static_cast<int64_t>(kAlignment) == 0);
    CHECK(end <= static_cast<int64_t>(c.region_bytes));
    for (const auto& [n, iv] : live) {
      const bool apart = end <= iv.first || iv.second <= off;
      CHECK_MESSAGE(apart, "step ", i, ": node ", e.node, " at [", off, ", ", end,
                    ") overlaps live node ", n);
    }
    live[e.node] = {off, end};
  }
  CHECK(!c.planner.empty());
  CHECK(!c.strategy.empty());
  CHECK(c.predicted_overhead >= 1.0 - 1e-9);
}

}  // namespace

TEST_CASE("compile_step: plans of the exported graphs fit their window, laid out without overlap") {
  const auto files = graph_files();
  REQUIRE(files.size() >= 5);
  for (const std::string& f : files) {
    const StepProblem sp = step_problem_from(sched::read_problem_file(f));
    const int64_t resident = sched::resident_bytes(sp.problem);
    for (double fraction : {1.0, 0.5, 0.25}) {
      CAPTURE(f);
      CAPTURE(fraction);
      // As in a session: the residents sit below the window, the step gets the fraction's bytes.
      const StepWindow w{resident, resident + fraction_step_bytes(sp, fraction)};
      try {
        check_compiled(sp, w, *compile_step(sp, w, {.planner = "lethe"}));
      } catch (const InfeasibleBudget& e) {
        // Then the arena the error names compiles.
        REQUIRE(fraction < 1.0);
        REQUIRE(e.smallest_feasible_bytes > static_cast<size_t>(w.region_end));
        const StepWindow at{resident, static_cast<int64_t>(e.smallest_feasible_bytes)};
        check_compiled(sp, at, *compile_step(sp, at, {.planner = "lethe"}));
      }
    }
  }
}

TEST_CASE(
    "compile_step: a window below the step's floor is refused with the smallest arena and a "
    "breakdown") {
  const StepProblem sp = step_problem_from(
      sched::read_problem_file(std::string(LETHE_BENCH_GRAPHS) + "/unet-w16.graph.json"));
  const int64_t resident = sched::resident_bytes(sp.problem);
  const StepWindow w{resident, resident + 4096};
  std::string msg;
  size_t smallest = 0;
  try {
    compile_step(sp, w, {.planner = "auto"});
  } catch (const InfeasibleBudget& e) {
    msg = e.what();
    smallest = e.smallest_feasible_bytes;
  }
  CHECK(msg.find("is too small for this step") != std::string::npos);
  CHECK(msg.find("Breakdown:") != std::string::npos);
  REQUIRE(smallest > static_cast<size_t>(w.region_end));
  const StepWindow at{resident, static_cast<int64_t>(smallest)};
  check_compiled(sp, at, *compile_step(sp, at, {.planner = "auto"}));
}
