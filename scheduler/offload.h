// Plans that copy values to a second memory tier and back (docs/plan-format.md, "Copies to a
// second tier"): a value idle between two uses is offloaded after the first, freed, and fetched
// back before the second, early enough that the copies hide behind compute when memory allows.
//
//   TierBandwidth bw{12e9, 12e9};                                     // bytes/s, out and in
//   OffloadPlan o = plan_offload(p, plan(p, b2, "lethe").plan, b, host, bw);  // throws Infeasible
//   JointPlans j = plan_joint(p, b, host, bw, "lethe");  // recompute-only, offload-only, joint
//   // j.joint->makespan <= j.recompute_only->makespan and <= j.offload_only->makespan
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "scheduler/planner.h"
#include "scheduler/problem.h"

namespace lethe::sched {

// A plan with its predicted numbers (its bandwidths are those it was planned with).
struct OffloadPlan {
  Plan plan;
  double makespan = 0.0;            // makespan() with the copies timed by the bandwidths
  int64_t device_peak_bytes = 0;    // worst case over every order
  int64_t tier_peak_bytes = 0;      // worst case over every order (0: no copies)
  int64_t copies = 0;               // offload + fetch steps
  int64_t remat_budget_bytes = -1;  // joint planning: the budget its recompute plan was made at
};

// Inserts copies into `base`, a serial plan (compute/free steps on stream 0, no waits) valid at
// some budget, to bring its worst-case device peak within `device_budget` with the second tier
// holding at most `host_budget` bytes in every order. The base plan's steps keep their order on
// stream 0; offloads run on stream 1, fetches on stream 2 (one channel each way), frees and drops
// on stream 0. Greedy: while some compute step is over the budget, among the values idle across
// the worst such step (between two uses of one computed instance) it copies out the one with the
// most bytes per second of copy time left exposed (not hidden behind the compute between the
// use before and the free, or between the fetch and the use after), freeing it from the latest
// point the offload is hidden by to the earliest the fetch is; a value copied out once keeps its
// tier copy for its later gaps (one offload, several fetches, one drop after the last). The
// result is checked by simulate(). Throws Infeasible naming both budgets when no copy can bring
// some step within the budget (its inputs, its output and the resident bytes alone exceed it, or
// the tier is full), and Error on a base plan with streams or copies, or unknown bandwidths.
OffloadPlan plan_offload(const Problem& p, const Plan& base, int64_t device_budget,
                         int64_t host_budget, TierBandwidth bw);

// "OUT[,IN]", each bytes per second as a plain number ("12e9") or with a unit of the budget syntax
// and an optional "/s" ("2GB/s", "512MiB/s"); IN defaults to OUT. Throws Error naming the text.
TierBandwidth parse_bandwidth(const std::string& text);

// The spec's natural schedule (compute in id order, free each value after its last use unless it
// is an output) as a plan: the keep-all plan offload-only planning starts from.
Plan natural_plan(const Problem& p);

// Three ways to fit `device_budget`, each with its predicted makespan and peaks (nullopt when it
// finds no plan):
// - recompute_only: `planner`'s plan at the budget (try_plan), serial, no copies;
// - offload_only: the natural schedule with copies (plan_offload);
// - joint: the least makespan among the two above and, for `intermediates` budgets B' evenly
//   between the device budget and the no-remat peak, `planner`'s plan at B' with copies down to
//   the budget. It is never slower than either pure plan (they are among its candidates).
// Throws Infeasible naming both budgets when none of them finds a plan.
struct JointPlans {
  std::optional<OffloadPlan> recompute_only, offload_only, joint;
};
JointPlans plan_joint(const Problem& p, int64_t device_budget, int64_t host_budget,
                      TierBandwidth bw, const std::string& planner = "lethe", int intermediates = 4,
                      const PlannerOptions& opts = {});

}  // namespace lethe::sched
