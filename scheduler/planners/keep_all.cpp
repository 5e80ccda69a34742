// The natural schedule: no rematerialisation, so it fits exactly when the budget covers its peak.
#include "scheduler/plan_builder.h"
#include "scheduler/planners/planners.h"

namespace lethe::sched {

std::optional<Plan> plan_keep_all(const Problem& p, int64_t budget, const PlannerOptions&,
                                  PlannerInfo*) {
  const Dag g(p);
  auto r = build_checkpoint_plan(g, all_kept(g), budget, "keep-all");
  if (!r) return std::nullopt;
  return std::move(r->plan);
}

}  // namespace lethe::sched
