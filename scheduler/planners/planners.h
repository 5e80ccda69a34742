// The planner functions behind the registry (scheduler/registry.cpp). Each returns nullopt when it
// cannot fit the budget; plan() simulates whatever they return.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "scheduler/planner.h"
#include "scheduler/problem.h"

namespace lethe::sched {

// Natural schedule: id order, each value freed right after its last use (its peak is the spec's
// no-remat peak on graphs whose nodes all reach an output).
std::optional<Plan> plan_keep_all(const Problem& p, int64_t budget, const PlannerOptions& opts,
                                  PlannerInfo* info);
// Chen et al. 2016, sublinear memory: segment checkpoints, each segment recomputed once in
// backward.
std::optional<Plan> plan_sqrt(const Problem& p, int64_t budget, const PlannerOptions& opts,
                              PlannerInfo* info);
// Beaumont et al. 2019 (rotor): optimal checkpointing DP on the chain of articulation blocks.
std::optional<Plan> plan_chain(const Problem& p, int64_t budget, const PlannerOptions& opts,
                               PlannerInfo* info);
// Kirisame et al. 2021, Dynamic Tensor Rematerialization, simulated on the keep-all order.
std::optional<Plan> plan_dtr(const Problem& p, int64_t budget, const PlannerOptions& opts,
                             PlannerInfo* info);
// Kumar et al. 2019, tree-decomposition planner (scheduler/planners/treewidth.cpp).
std::optional<Plan> plan_treewidth(const Problem& p, int64_t budget, const PlannerOptions& opts,
                                   PlannerInfo* info);
// Jain et al. 2020, Checkmate MILP through CBC (scheduler/planners/checkmate.cpp).
std::optional<Plan> plan_checkmate(const Problem& p, int64_t budget, const PlannerOptions& opts,
                                   PlannerInfo* info);
// Lethe's own: the cheapest plan among the baselines and its eviction search, post-optimised
// (scheduler/planners/lethe.cpp, lethe.md).
std::optional<Plan> plan_lethe(const Problem& p, int64_t budget, const PlannerOptions& opts,
                               PlannerInfo* info);
// False (with the reason) when the library was built without CBC.
bool checkmate_available(std::string* reason);

}  // namespace lethe::sched
