// Post-optimisation of any valid plan (used by the `lethe` planner, scheduler/planners/lethe.md):
// only the order of the compute steps is kept; frees are re-derived (each computed value is freed
// right after its last use before it is computed again), computes nobody uses are removed, and a
// recomputation is replaced by keeping the earlier value when the budget has room for it over the
// gap. Every change lowers or keeps the cost and keeps the plan valid.
//
//   Dag g(p);
//   std::optional<Plan> better = post_optimise(g, plan, budget);  // nullopt: `plan` was not valid
#pragma once

#include <cstdint>
#include <optional>

#include "scheduler/plan_builder.h"
#include "scheduler/problem.h"

namespace lethe::sched {

std::optional<Plan> post_optimise(const Dag& g, const Plan& plan, int64_t budget);

}  // namespace lethe::sched
