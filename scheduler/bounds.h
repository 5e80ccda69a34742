// A lower bound on the cost of every valid plan of a problem under a budget, to judge planners where
// no exact optimum is known (bench/planner_compare section (e)).
//
//   CostBound b = cut_lower_bound(p, budget);   // b.infeasible: no plan fits at all
//   // every valid plan under `budget` costs >= b.cost
//
// The argument, for any needed node S (the "cut"): when S is computed for the first time, every
// ancestor v of S that is still needed afterwards (an output, or an input of some node depending on
// S) was computed before, and is either in memory then or computed once more later. Memory at that
// moment holds the resident values, S, S's inputs and the kept ancestors, within the budget; so the
// ancestors not kept weigh at least (their bytes - room), and the cheapest way to drop that many
// bytes — a fractional knapsack, by cost per byte — is extra cost every plan pays on top of one
// compute of each needed node. The bound is the largest over all cuts. It ignores that a dropped
// value's inputs may be gone too, so it is optimistic on chains of cheap values.
#pragma once

#include <cstdint>

#include "scheduler/problem.h"

namespace lethe::sched {

struct CostBound {
  double cost = 0;          // every valid plan under the budget costs at least this
  bool infeasible = false;  // some cut needs more than the budget: no plan fits
  NodeId cut = -1;          // the node whose first compute gave the bound
};

// O(n (n + edges)): meant for graphs up to a few thousand nodes.
CostBound cut_lower_bound(const Problem& p, int64_t budget);

}  // namespace lethe::sched
