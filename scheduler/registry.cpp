// The planner table and the entry points of planner.h: every plan a planner returns is simulated
// here, so a planner bug surfaces as an Error naming the planner instead of a wrong schedule.
#include <algorithm>
#include <chrono>
#include <sstream>

#include "scheduler/budget.h"
#include "scheduler/graph_io.h"
#include "scheduler/planner.h"
#include "scheduler/planners/planners.h"
#include "scheduler/simulator.h"

namespace lethe::sched {
namespace {

// Checkmate's MILP grows quickly with the graph; "auto" and the budget search leave it out above
// this.
constexpr int kCheckmateMaxNodes = 150;

std::vector<PlannerEntry> make_table() {
  std::vector<PlannerEntry> t;
  t.push_back(
      {"lethe",
       "minimum cost under the budget: baselines + cost-weighted Belady eviction, post-optimised",
       plan_lethe, ""});
  t.push_back(
      {"keep-all", "no rematerialisation: id order, free after last use", plan_keep_all, ""});
  t.push_back({"sqrt", "Chen et al. 2016: segment checkpoints, each segment recomputed once",
               plan_sqrt, ""});
  t.push_back({"chain",
               "Beaumont et al. 2019 (rotor): optimal DP over the chain of articulation blocks",
               plan_chain, ""});
  t.push_back({"treewidth", "Kumar et al. 2019: recursive plan over a tree decomposition",
               plan_treewidth, ""});
  t.push_back(
      {"dtr", "Kirisame et al. 2021: Dynamic Tensor Rematerialization, simulated", plan_dtr, ""});
  std::string reason;
  const bool have_checkmate = checkmate_available(&reason);
  t.push_back({"checkmate", "Jain et al. 2020: optimal MILP (CBC)",
               have_checkmate ? PlannerFn(plan_checkmate) : PlannerFn(),
               have_checkmate ? "" : reason});
  return t;
}

std::string names_list() {
  std::string s;
  for (const PlannerEntry& e : planners()) s += (s.empty() ? "" : ", ") + e.name;
  return s + ", auto";
}

bool usable_in_auto(const PlannerEntry& e, const Problem& p) {
  // The budget search probes a dozen budgets; checkmate may spend its whole time limit on each.
  (void)p;
  (void)kCheckmateMaxNodes;
  return e.fn && e.name != "checkmate";
}

// Runs one planner; nullopt when it found no plan (then `info_out`, when given, holds the planner's
// report, whose note is its reason). An invalid plan is a planner bug: Error.
std::optional<PlanResult> run_one(const PlannerEntry& e, const Problem& p, int64_t budget,
                                  const PlannerOptions& opts, PlannerInfo* info_out = nullptr) {
  PlanResult r;
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<Plan> plan = e.fn(p, budget, opts, &r.info);
  r.solve_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (info_out) *info_out = r.info;
  if (!plan) return std::nullopt;
  plan->graph = p.name;
  plan->planner = e.name;
  plan->budget_bytes = budget;
  const SimResult sim = simulate(p, *plan);
  // A planner bug: an informative error in every build type, never an abort before it.
  if (!sim.valid) {
    throw Error("planner '" + e.name + "' returned an invalid plan for graph '" + p.name +
                "' at budget " + std::to_string(budget) + ": " + sim.message);
  }
  plan->predicted_peak_bytes = sim.peak_bytes;
  plan->predicted_cost = sim.cost;
  if (opts.accept && !opts.accept(*plan)) return std::nullopt;
  r.plan = std::move(*plan);
  return r;
}

bool better(const PlanResult& a, const PlanResult& b) {
  if (a.plan.predicted_cost != b.plan.predicted_cost)
    return a.plan.predicted_cost < b.plan.predicted_cost;
  return a.plan.predicted_peak_bytes < b.plan.predicted_peak_bytes;
}

// Smallest budget in [lo, hi] at which `e` fits; -1 when it does not fit at hi. A planner need not
// fit every budget above one it fits (chain's DP over block boundaries, an eviction that thrashes),
// and a bisection from the peak would stop at the first gap it met: so the budgets at seven even
// steps from the floor up are tried first, and the bisection runs between the lowest of them that
// fits and the step below it (where fitting is monotone the answer is the same). The search stops
// within 1/4096 of the range: budgets are physical bytes, and a closer answer is not worth ten more
// planner runs.
int64_t search_one(const PlannerEntry& e, const Problem& p, int64_t lo, int64_t hi,
                   const PlannerOptions& opts) {
  auto fits = [&](int64_t b) { return run_one(e, p, b, opts).has_value(); };
  if (lo > hi || !fits(hi)) return -1;
  if (fits(lo)) return lo;
  constexpr int64_t kGrid = 8;
  const int64_t base = lo, span = hi - lo;
  const int64_t tol = std::max<int64_t>(1, span / 4096);
  for (int64_t k = 1; k < kGrid; ++k) {
    const int64_t b = base + span / kGrid * k;
    if (b <= lo || b >= hi) continue;
    if (fits(b)) {
      hi = b;
      break;
    }
    lo = b;
  }
  while (hi - lo > tol) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? hi : lo) = mid;
  }
  return hi;
}

std::string bytes_str(int64_t b) {
  return std::to_string(b) + " bytes (" + format_bytes(b) + ")";
}

}  // namespace

const std::vector<PlannerEntry>& planners() {
  static const std::vector<PlannerEntry> table = make_table();
  return table;
}

const PlannerEntry& find_planner(const std::string& name) {
  for (const PlannerEntry& e : planners()) {
    if (e.name == name) return e;
  }
  throw Error("unknown planner '" + name + "'; valid names: " + names_list());
}

namespace {

// A plan, or nullopt with the planner's report in `info` (its note says why) when it found none.
std::optional<PlanResult> try_plan_why(const Problem& p, int64_t budget_bytes,
                                       const std::string& planner, const PlannerOptions& opts,
                                       PlannerInfo* info, std::string* why) {
  PlannerInfo last;
  validate_problem(p);
  std::optional<PlanResult> best;
  if (planner == "auto") {
    // "auto" is lethe, which already runs the cheap baselines and keeps the cheapest plan (so it is
    // never costlier than them); keep-all is the fallback should lethe ever find nothing. Checkmate
    // is left out: its MILP can take its whole time limit even on small graphs.
    double total = 0.0;
    for (const char* name : {"lethe", "keep-all"}) {
      const PlannerEntry& e = find_planner(name);
      if (!e.fn) continue;
      best = run_one(e, p, budget_bytes, opts, &last);
      if (best) total += best->solve_seconds;
      if (best) break;
    }
    if (best) {
      best->info.note = "auto: chose " + best->plan.planner +
                        (best->info.note.empty() ? "" : "; " + best->info.note);
      best->solve_seconds = total;
    }
  } else {
    const PlannerEntry& e = find_planner(planner);
    if (!e.fn) throw Error("planner '" + planner + "' is not available: " + e.unavailable_reason);
    best = run_one(e, p, budget_bytes, opts, &last);
  }
  if (info) *info = best ? best->info : last;
  if (!best && why) *why = last.note;
  return best;
}

}  // namespace

std::optional<PlanResult> try_plan(const Problem& p, int64_t budget_bytes,
                                   const std::string& planner, const PlannerOptions& opts,
                                   PlannerInfo* info) {
  return try_plan_why(p, budget_bytes, planner, opts, info, nullptr);
}

PlanResult plan(const Problem& p, int64_t budget_bytes, const std::string& planner,
                const PlannerOptions& opts) {
  std::string why;
  if (std::optional<PlanResult> r = try_plan_why(p, budget_bytes, planner, opts, nullptr, &why))
    return std::move(*r);
  const int64_t smallest = smallest_feasible_budget(p, "auto", opts);
  std::ostringstream msg;
  msg << "no plan of planner '" << planner << "' fits a budget of " << bytes_str(budget_bytes)
      << " for graph '" << p.name << "'; the smallest budget any planner fits is "
      << bytes_str(smallest) << "; the floor (resident values + outputs) is "
      << bytes_str(floor_bytes(p));
  if (!why.empty()) msg << "; " << planner << ": " << why;
  throw Infeasible(msg.str(), budget_bytes, smallest);
}

int64_t smallest_feasible_budget(const Problem& p, const std::string& planner,
                                 const PlannerOptions& opts) {
  validate_problem(p);
  const int64_t lo = floor_bytes(p);
  const int64_t peak = no_remat_peak(p);
  if (planner != "auto") {
    const PlannerEntry& e = find_planner(planner);
    if (!e.fn) throw Error("planner '" + planner + "' is not available: " + e.unavailable_reason);
    return search_one(e, p, lo, peak, opts);
  }
  // lethe fits wherever a baseline fits (it runs them all), so its search is the answer; the other
  // planners (checkmate aside) only narrow it further on non-monotone corners.
  int64_t best = -1;
  for (const PlannerEntry& e : planners()) {
    if (!usable_in_auto(e, p)) continue;
    const int64_t hi = best < 0 ? peak : best - 1;
    const int64_t b = search_one(e, p, lo, hi, opts);
    if (b >= 0) best = b;
    if (best == lo) break;
  }
  return best;
}

}  // namespace lethe::sched
