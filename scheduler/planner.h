// Planners: one function each, behind one registry.
//
//   using namespace lethe::sched;
//   Problem p = read_problem_file("g.graph.json");
//   int64_t b = parse_budget("0.25", p);          // bytes, units, or activation fraction
//   PlanResult r = plan(p, b, "treewidth");       // throws Infeasible naming the smallest budget
//   found write_plan_file(r.plan, "g.plan.json");
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/error.h"
#include "scheduler/problem.h"

namespace lethe::sched {

// Every user-facing failure of the scheduler (malformed file, bad budget, unknown planner): a
// lethe::Error (framework/error.h, header-only), so one catch takes every error of the library.
class Error : public lethe::Error {
 public:
  explicit Error(const std::string& what) : lethe::Error(what) {}
};

// No planner fits the budget. `smallest_bytes` is the smallest budget at which any planner found a
// plan (-1 when not searched).
class Infeasible : public Error {
 public:
  Infeasible(const std::string& what, int64_t budget, int64_t smallest)
      : Error(what), budget_bytes(budget), smallest_bytes(smallest) {}
  int64_t budget_bytes;
  int64_t smallest_bytes;
};

struct PlannerOptions {
  double time_limit_s = 30.0;  // for solvers that can run long (checkmate)
  // Branch-and-bound nodes a solver may explore (checkmate); 0: no limit. Unlike the time limit,
  // it gives the same answer on a loaded machine, so tests bound the solver with it.
  int64_t node_limit = 0;
  uint64_t seed = 0;
  bool verbose = false;
  // When set, only plans it accepts count (the session passes "its buffers lay out within the
  // arena": a plan under the budget can still fragment past it). lethe weighs it among its
  // candidates; run_one()/plan() treat a plan it rejects as no plan. Empty: every valid plan
  // counts.
  std::function<bool(const Plan&)> accept;
};

// What a planner may report beside its plan.
struct PlannerInfo {
  int treewidth = -1;    // `treewidth`: width k of the decomposition
  int depth = -1;        // `treewidth`: depth of its balanced separator tree (recursion levels)
  std::string note;      // free text (e.g. "MILP time limit hit; best incumbent")
  bool optimal = false;  // `checkmate`: solved to proven optimality
};

// A planner returns nullopt when it cannot fit the budget. Plans need not be simulated by the
// planner: plan() simulates every plan and rejects invalid ones.
using PlannerFn = std::function<std::optional<Plan>(const Problem&, int64_t budget_bytes,
                                                    const PlannerOptions&, PlannerInfo*)>;

struct PlannerEntry {
  std::string name;
  std::string description;
  PlannerFn fn;  // empty when the planner is not built (see unavailable_reason)
  std::string unavailable_reason;
};

const std::vector<PlannerEntry>& planners();                // registry order
const PlannerEntry& find_planner(const std::string& name);  // throws Error listing the names

struct PlanResult {
  Plan plan;
  PlannerInfo info;
  double solve_seconds = 0.0;
};

// Runs one planner (or "auto": every available planner, the cheapest valid plan wins), validates
// the plan with the simulator (predicted_peak_bytes/predicted_cost are filled from it) and throws
// Infeasible with the smallest feasible budget when no plan fits.
PlanResult plan(const Problem& p, int64_t budget_bytes, const std::string& planner,
                const PlannerOptions& opts = {});

// Like plan(), but returns nullopt when no plan fits instead of throwing Infeasible, and so skips
// the search for the smallest feasible budget (the costly part of a refusal). For sweeps and tests.
// `info`, when given, receives the planner's report even when it found no plan (why not: e.g.
// checkmate's "MILP time limit hit without a feasible solution").
std::optional<PlanResult> try_plan(const Problem& p, int64_t budget_bytes,
                                   const std::string& planner, const PlannerOptions& opts = {},
                                   PlannerInfo* info = nullptr);

// Smallest budget (bytes) at which `planner` ("auto" = any planner) finds a valid plan; binary
// search between the floor and the no-remat peak.
int64_t smallest_feasible_budget(const Problem& p, const std::string& planner = "auto",
                                 const PlannerOptions& opts = {});

}  // namespace lethe::sched
