// Lower bounds on the cost of every valid plan of a problem under a budget, to judge planners where
// no exact optimum is known (bench/planner_compare section (b)).
//
//   CostBound b = cut_lower_bound(p, budget);   // b.infeasible: no plan fits at all
//   // every valid plan under `budget` costs >= b.cost
//
// The argument, for any needed node S (the "cut"): let τ be the first compute of S. Every ancestor
// v of S was computed before τ. If v is needed after τ (an output, or an input of a node that
// depends on S) and is not in memory at τ, it is computed again after τ; and whatever is computed
// after τ needs its inputs, which are then in memory at τ or computed after τ too. Memory at τ
// holds the resident values, S, S's inputs and the ancestors kept, within the budget. So every plan
// pays, on top of one compute of each needed node, at least
//
//   min Σ cost(v)·d_v  s.t.  k_v + d_v >= 1 for v needed after τ,  k_u + d_u >= d_v for each input
//                            u of an ancestor v,  Σ bytes(v)·k_v <= budget - fixed,  k, d ∈ {0, 1}
//
// (k: kept at τ, d: computed again after τ). With CBC this small MILP (one variable pair per
// ancestor) is solved for the cuts where the fractional knapsack relaxation — drop the cheapest
// bytes per unit cost, ignoring inputs — is highest; without CBC, or where a solve does not finish,
// the knapsack value (always below the MILP's) is what is used. The bound is the largest over the
// cuts. It ignores the memory needed after τ, so it is optimistic at tight budgets.
#pragma once

#include <cstdint>
#include <string>

#include "scheduler/problem.h"

namespace lethe::sched {

struct CostBound {
  double cost = 0;          // every valid plan under the budget costs at least this
  bool infeasible = false;  // some cut needs more than the budget: no plan fits
  NodeId cut = -1;          // the node whose first compute gave the bound
  std::string method;       // "closure MILP" or "knapsack"
};

struct BoundOptions {
  int milp_cuts = 8;  // cuts given to the MILP (the best by the knapsack value); 0: knapsack only
  double time_limit_s = 5.0;  // per MILP solve; an unfinished solve contributes its proven bound
  // Branch-and-bound nodes per MILP solve; 0: no limit. Unlike the time limit it gives the same
  // bound on a loaded machine (benches and tests that compare against the bound set it).
  int64_t node_limit = 0;
};

// O(n (n + edges)) for the knapsack pass: meant for graphs up to a few thousand nodes.
CostBound cut_lower_bound(const Problem& p, int64_t budget, const BoundOptions& opts = {});

}  // namespace lethe::sched
