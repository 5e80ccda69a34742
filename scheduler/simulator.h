// The plan checker: applies the spec's rules (shared/specs/graph-and-plan-format.md, "Semantics")
// step by step, in O(steps + edges), and the reference quantities every budget is measured against.
// A plan with streams (docs/plan-format.md) is checked over every order its waits allow
// (scheduler/streams.h); a serial plan keeps the sequential path.
//
//   SimResult r = simulate(p, plan);
//   if (!r.valid) std::cerr << r.message << "\n";   // "step 7: rule 2: ..."
#pragma once

#include <cstdint>
#include <string>

#include "scheduler/problem.h"

namespace lethe::sched {

struct SimResult {
  bool valid = true;
  int64_t first_bad_step = -1;  // index into plan.steps; steps.size() when only rule 4 fails
  std::string message;          // names the rule broken and the node
  int64_t peak_bytes = 0;  // largest memory in use at a compute step (resident bytes when none);
                           // with streams, the largest over every order the waits allow
  double cost = 0.0;       // sum of the costs of the compute steps
  int64_t compute_steps = 0;
  double makespan = 0.0;  // predicted time, makespan() in streams.h; == cost for a serial plan
  int streams = 1;        // stream_count(plan)
  // Plans with copies: the second tier's worst-case peak over every order (0 without copies).
  int64_t tier_peak_bytes = 0;
};

// Plans with copies to a second tier (offload/fetch/drop) are always checked by the streamed
// checker (rules 5-8 of docs/plan-format.md). Stops at the first violation, as a checker applying
// the rules in order does; peak and cost then cover the steps up to it (for a serial plan; a plan
// with streams reports the worst-case peak and the cost of all its steps whenever its node ids and
// waits are well-formed).
SimResult simulate(const Problem& p, const Plan& plan);

int64_t resident_bytes(const Problem& p);
// The memory no plan can avoid: resident bytes + bytes of the non-resident outputs.
int64_t floor_bytes(const Problem& p);
// Peak of the spec's natural schedule: every non-resident node computed in id order, each value
// freed right after its last use unless it is an output (a value nobody uses is freed right after
// it is computed). Peak counts only compute steps (resident bytes when there are none).
int64_t no_remat_peak(const Problem& p);
// Sum of the costs of the non-resident nodes.
double no_remat_cost(const Problem& p);

}  // namespace lethe::sched
