// `checkmate`: Jain et al., "Checkmate: Breaking the Memory Wall with Optimal Tensor
// Rematerialization", MLSys 2020. The MILP over stages in topological order, solved with CBC.
//
// Nodes: the non-resident ancestors of the non-resident outputs, 0..m-1 in id (topological) order.
// Stage t computes node t (R[t][t] = 1) and may recompute any earlier node.
//   R[t][i]  binary, i <= t   node i is computed in stage t
//   S[t][i]  binary, i <  t   node i is in memory when stage t starts (t = m: after the last stage;
//                             fixed to 1 for outputs, 0 otherwise)
//   F[t][i][k] binary         node i is freed right after computing k in stage t, for
//                             i in inputs(k) ∪ {k}
//   U[t][k]  continuous       memory in use right after computing k in stage t (k itself included)
// minimise Σ cost_i R[t][i]
//   R[t][j] <= R[t][i] + S[t][i]                  for every edge i -> j
//   S[t+1][i] <= R[t][i] + S[t][i]
//   U[t][0] = Σ_{i<t} M_i S[t][i] + M_0 R[t][0]
//   U[t][k] = U[t][k-1] - Σ_i M_i F[t][i][k-1] + M_k R[t][k]
//   U[t][k] <= budget - resident bytes
//   F[t][i][k] = R[t][k] (1 - S[t+1][i]) Π_{j in users(i), k<j<=t} (1 - R[t][j]), linearised with
//   the hazard count h = (1 - R[t][k]) + S[t+1][i] + Σ R[t][j]:  1 - F <= h,  κ (1 - F) >= h.
// The solution becomes compute/free steps in stage order; the plan is simulated before it is
// returned.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/planner.h"
#include "scheduler/planners/planners.h"
#include "scheduler/problem.h"
#include "scheduler/simulator.h"

#ifdef LETHE_HAVE_CBC
#include "CbcHeuristic.hpp"
#include "CbcHeuristicFPump.hpp"
#include "CbcHeuristicLocal.hpp"
#include "CbcModel.hpp"
#include "CglClique.hpp"
#include "CglFlowCover.hpp"
#include "CglGomory.hpp"
#include "CglKnapsackCover.hpp"
#include "CglMixedIntegerRounding2.hpp"
#include "CglProbing.hpp"
#include "CoinPackedMatrix.hpp"
#include "CoinPackedVector.hpp"
#include "OsiClpSolverInterface.hpp"
#endif

namespace lethe::sched {

namespace {
// The MILP has O(m^2 · in-degree) binaries; past this CBC rarely finishes in reasonable time.
constexpr int kMaxNodes = 150;
}  // namespace

#ifndef LETHE_HAVE_CBC

bool checkmate_available(std::string* reason) {
  if (reason) *reason = "built without CBC: apt-get install coinor-libcbc-dev and reconfigure";
  return false;
}

std::optional<Plan> plan_checkmate(const Problem&, int64_t, const PlannerOptions&,
                                   PlannerInfo* info) {
  if (info) info->note = "built without CBC: apt-get install coinor-libcbc-dev and reconfigure";
  return std::nullopt;
}

#else

bool checkmate_available(std::string* reason) {
  if (reason) reason->clear();
  return true;
}

namespace {

class Milp {
 public:
  int add_col(double lo, double hi, double obj, bool integer) {
    lo_.push_back(lo);
    hi_.push_back(hi);
    obj_.push_back(obj);
    integer_.push_back(integer);
    return static_cast<int>(lo_.size()) - 1;
  }
  // lo <= Σ coef * x <= hi
  void add_row(const std::vector<std::pair<int, double> >& terms, double lo, double hi) {
    CoinPackedVector v;
    for (const auto& [c, a] : terms) v.insert(c, a);
    rows_.push_back(v);
    rlo_.push_back(lo);
    rhi_.push_back(hi);
  }
  int cols() const { return static_cast<int>(lo_.size()); }
  double obj(int c) const { return obj_[c]; }

  void load(OsiClpSolverInterface& s) const {
    CoinPackedMatrix m(false, 0, 0);
    m.setDimensions(0, cols());
    for (const auto& r : rows_) m.appendRow(r);
    s.loadProblem(m, lo_.data(), hi_.data(), obj_.data(), rlo_.data(), rhi_.data());
    for (int c = 0; c < cols(); ++c)
      if (integer_[c]) s.setInteger(c);
  }

 private:
  std::vector<double> lo_, hi_, obj_;
  std::vector<char> integer_;
  std::vector<CoinPackedVector> rows_;
  std::vector<double> rlo_, rhi_;
};

}  // namespace

std::optional<Plan> plan_checkmate(const Problem& p, int64_t budget_bytes,
                                   const PlannerOptions& opts, PlannerInfo* info) {
  const int n = p.size();
  int64_t resident = 0;
  for (const Node& nd : p.nodes)
    if (nd.resident) resident += nd.bytes;
  // Needed nodes.
  std::vector<char> need(n, 0);
  std::vector<NodeId> stack;
  for (NodeId o : p.outputs)
    if (!p.nodes[o].resident && !need[o]) {
      need[o] = 1;
      stack.push_back(o);
    }
  while (!stack.empty()) {
    const NodeId v = stack.back();
    stack.pop_back();
    for (NodeId w : p.nodes[v].inputs)
      if (!p.nodes[w].resident && !need[w]) {
        need[w] = 1;
        stack.push_back(w);
      }
  }
  std::vector<NodeId> node_of;
  std::vector<int> loc(n, -1);
  for (int v = 0; v < n; ++v)
    if (need[v]) {
      loc[v] = static_cast<int>(node_of.size());
      node_of.push_back(v);
    }
  const int m = static_cast<int>(node_of.size());
  if (m > kMaxNodes) {
    if (info)
      info->note = "graph has " + std::to_string(m) +
                   " nodes to schedule; checkmate's MILP is limited to " +
                   std::to_string(kMaxNodes);
    return std::nullopt;
  }
  auto make_plan = [&](std::vector<Step> steps) -> std::optional<Plan> {
    Plan plan;
    plan.graph = p.name;
    plan.planner = "checkmate";
    plan.budget_bytes = budget_bytes;
    plan.steps = std::move(steps);
    const SimResult r = simulate(p, plan);
    if (!r.valid || r.peak_bytes > budget_bytes) {
      if (info) info->note = "internal error: MILP solution is not a valid plan: " + r.message;
      return std::nullopt;
    }
    plan.predicted_peak_bytes = r.peak_bytes;
    plan.predicted_cost = r.cost;
    return plan;
  };
  if (m == 0) {
    if (resident > budget_bytes) return std::nullopt;
    if (info) info->optimal = true;
    return make_plan({});
  }

  std::vector<std::vector<int> > deps(m), users(m);
  std::vector<char> is_out(m, 0);
  for (int k = 0; k < m; ++k) {
    for (NodeId w : p.nodes[node_of[k]].inputs)
      if (loc[w] >= 0) deps[k].push_back(loc[w]);
    std::sort(deps[k].begin(), deps[k].end());
    deps[k].erase(std::unique(deps[k].begin(), deps[k].end()), deps[k].end());
    for (int i : deps[k]) users[i].push_back(k);
  }
  for (NodeId o : p.outputs)
    if (loc[o] >= 0) is_out[loc[o]] = 1;

  // Memory in units: the gcd of the sizes keeps every U integral, so the budget row is exact.
  int64_t g = 0, max_bytes = 0;
  for (NodeId v : node_of) {
    g = std::gcd(g, p.nodes[v].bytes);
    max_bytes = std::max(max_bytes, p.nodes[v].bytes);
  }
  if (g == 0) g = 1;
  double unit = static_cast<double>(g);
  const int64_t avail = budget_bytes - resident;
  if (avail < 0) {
    if (info) info->note = "resident bytes alone exceed the budget";
    return std::nullopt;
  }
  double cap = std::floor(static_cast<double>(avail / g));
  if (static_cast<double>(max_bytes) / unit > 1e5) {  // keep coefficients well-conditioned
    const double extra = static_cast<double>(max_bytes) / unit / 1e5;
    unit *= extra;
    cap = static_cast<double>(avail) /
          unit;  // tolerances may now cost a byte: the plan is re-checked
  }
  std::vector<double> M(m);
  for (int k = 0; k < m; ++k) M[k] = static_cast<double>(p.nodes[node_of[k]].bytes) / unit;

  Milp milp;
  // Column indices; -1 where the variable does not exist.
  std::vector<std::vector<int> > R(m), S(m + 1), U(m);
  std::vector<std::vector<std::vector<std::pair<int, int> > > > F(m);  // F[t][k] = {(i, col)}
  for (int t = 0; t < m; ++t) {
    R[t].assign(t + 1, -1);
    for (int i = 0; i <= t; ++i) {
      const double lo = i == t ? 1.0 : 0.0;
      R[t][i] = milp.add_col(lo, 1.0, p.nodes[node_of[i]].cost, true);
    }
  }
  for (int t = 0; t <= m; ++t) {
    S[t].assign(t, -1);
    for (int i = 0; i < t; ++i) {
      double lo = 0.0, hi = 1.0;
      if (t == m) lo = hi = is_out[i] ? 1.0 : 0.0;
      S[t][i] = milp.add_col(lo, hi, 0.0, true);
    }
  }
  for (int t = 0; t < m; ++t) {
    F[t].resize(t + 1);
    U[t].assign(t + 1, -1);
    for (int k = 0; k <= t; ++k) {
      for (int i : deps[k]) F[t][k].push_back({i, milp.add_col(0.0, 1.0, 0.0, true)});
      F[t][k].push_back({k, milp.add_col(0.0, 1.0, 0.0, true)});
      U[t][k] = milp.add_col(0.0, cap, 0.0, false);
    }
  }
  const double inf = COIN_DBL_MAX;
  for (int t = 0; t < m; ++t) {
    // Dependencies.
    for (int j = 0; j <= t; ++j)
      for (int i : deps[j]) {
        std::vector<std::pair<int, double> > r{{R[t][j], 1.0}, {R[t][i], -1.0}};
        if (i < t) r.push_back({S[t][i], -1.0});
        milp.add_row(r, -inf, 0.0);
      }
    // Storage.
    for (int i = 0; i < t; ++i)
      milp.add_row({{S[t + 1][i], 1.0}, {R[t][i], -1.0}, {S[t][i], -1.0}}, -inf, 0.0);
    // Memory.
    for (int k = 0; k <= t; ++k) {
      std::vector<std::pair<int, double> > r{{U[t][k], 1.0}, {R[t][k], -M[k]}};
      if (k == 0) {
        for (int i = 0; i < t; ++i) r.push_back({S[t][i], -M[i]});
      } else {
        r.push_back({U[t][k - 1], -1.0});
        for (const auto& [i, col] : F[t][k - 1]) r.push_back({col, M[i]});
      }
      milp.add_row(r, 0.0, 0.0);
    }
    // Frees.
    for (int k = 0; k <= t; ++k)
      for (const auto& [i, col] : F[t][k]) {
        std::vector<int> later;
        for (int j : users[i])
          if (j > k && j <= t) later.push_back(R[t][j]);
        const double kappa = 2.0 + static_cast<double>(later.size());
        // h = 1 - R[t][k] + S[t+1][i] + Σ R[t][j]
        // 1 - F <= h     <=>  -F + R[t][k] - S[t+1][i] - Σ R[t][j] <= 0
        // κ(1 - F) >= h  <=>  κF - R[t][k] + S[t+1][i] + Σ R[t][j] <= κ - 1
        std::vector<std::pair<int, double> > a{{col, -1.0}, {R[t][k], 1.0}, {S[t + 1][i], -1.0}};
        std::vector<std::pair<int, double> > b{{col, kappa}, {R[t][k], -1.0}, {S[t + 1][i], 1.0}};
        for (int c : later) {
          a.push_back({c, -1.0});
          b.push_back({c, 1.0});
        }
        milp.add_row(a, -inf, 0.0);
        milp.add_row(b, -inf, kappa - 1.0);
      }
  }

  // A plan as values of the MILP's variables; false when it does not fit the stage structure or
  // the MILP's (conservative) memory accounting.
  auto stage_solution = [&](const std::vector<Step>& steps, std::vector<double>& xs) -> bool {
    xs.assign(milp.cols(), 0.0);
    std::vector<std::vector<char> > r(m);
    for (int t = 0; t < m; ++t) r[t].assign(t + 1, 0);
    std::vector<std::vector<char> > st(m + 1);
    for (int t = 0; t <= m; ++t) st[t].assign(t, 0);
    std::vector<char> in(m, 0), seen(m, 0), snap(m, 0);
    std::vector<int>
        pending;   // recomputes waiting for the first computation that closes their stage
    int next = 0;  // the node whose first computation closes the current stage
    bool open = false;
    for (const Step& step : steps) {
      const int v = loc[step.node];
      if (v < 0) return false;
      if (step.kind == Step::Kind::free) {
        in[v] = 0;
        continue;
      }
      if (!open) {
        snap = in;  // stored at the stage's start
        open = true;
      }
      in[v] = 1;
      if (seen[v]) {
        pending.push_back(v);
        continue;
      }
      if (v != next) return false;
      seen[v] = 1;
      // Stage v: pending recomputes (ascending) then v. The stored set at its start is what is in
      // memory now minus the stage's own computes.
      for (std::size_t q = 1; q < pending.size(); ++q)
        if (pending[q] <= pending[q - 1]) return false;
      for (int w : pending)
        if (w >= v) return false;
      for (int i = 0; i < v; ++i) st[v][i] = snap[i];
      for (int w : pending) r[v][w] = 1;
      r[v][v] = 1;
      pending.clear();
      open = false;
      ++next;
    }
    if (next != m || !pending.empty()) return false;
    for (int i = 0; i < m; ++i) st[m][i] = is_out[i];
    // A value stored at stage t+1 must be in memory at stage t's end: stored then, or computed.
    for (int t = 0; t < m; ++t)
      for (int i = 0; i < t + 1; ++i)
        if (st[t + 1][i] && !(r[t][i] || (i < t && st[t][i]))) return false;
    for (int t = 0; t < m; ++t) {
      for (int i = 0; i <= t; ++i) xs[R[t][i]] = r[t][i];
      for (int i = 0; i < t; ++i) xs[S[t][i]] = st[t][i];
    }
    for (int i = 0; i < m; ++i) xs[S[m][i]] = st[m][i];
    for (int t = 0; t < m; ++t) {
      double u = 0;
      for (int i = 0; i < t; ++i) u += M[i] * st[t][i];
      for (int k = 0; k <= t; ++k) {
        u += M[k] * r[t][k];
        xs[U[t][k]] = u;
        if (u > cap + 1e-9) return false;
        for (const auto& [i, col] : F[t][k]) {
          bool f = r[t][k] && !st[t + 1][i];
          for (int j : users[i])
            if (j > k && j <= t && r[t][j]) f = false;
          xs[col] = f;
          if (f) u -= M[i];
        }
      }
    }
    return true;
  };

  const auto t0 = std::chrono::steady_clock::now();
  OsiClpSolverInterface solver;
  milp.load(solver);
  solver.messageHandler()->setLogLevel(opts.verbose ? 1 : 0);
  solver.setHintParam(OsiDoReducePrint, !opts.verbose, OsiHintTry);
  CbcModel model(solver);
  model.setLogLevel(opts.verbose ? 1 : 0);
  model.messageHandler()->setLogLevel(opts.verbose ? 1 : 0);
  model.solver()->messageHandler()->setLogLevel(0);
  model.setUseElapsedTime(true);
  model.setMaximumSeconds(opts.time_limit_s > 0 ? opts.time_limit_s : 30.0);
  if (opts.node_limit > 0)
    model.setMaximumNodes(
        static_cast<int>(std::min<int64_t>(opts.node_limit, std::numeric_limits<int>::max())));
  CglProbing probing;
  probing.setUsingObjective(1);
  probing.setMaxPass(1);
  probing.setMaxPassRoot(3);
  probing.setMaxProbe(10);
  probing.setMaxProbeRoot(50);
  probing.setMaxLook(10);
  probing.setMaxLookRoot(50);
  probing.setRowCuts(3);
  CglGomory gomory;
  gomory.setLimit(300);
  CglKnapsackCover knapsack;
  CglClique clique;
  clique.setStarCliqueReport(false);
  clique.setRowCliqueReport(false);
  CglMixedIntegerRounding2 mir;
  CglFlowCover flow;
  model.addCutGenerator(&probing, -1, "Probing");
  model.addCutGenerator(&gomory, -1, "Gomory");
  model.addCutGenerator(&knapsack, -1, "Knapsack");
  model.addCutGenerator(&clique, -1, "Clique");
  model.addCutGenerator(&mir, -1, "MIR2");
  model.addCutGenerator(&flow, -1, "FlowCover");
  CbcRounding rounding(model);
  model.addHeuristic(&rounding);
  CbcHeuristicLocal local(model);
  model.addHeuristic(&local);
  CbcHeuristicFPump pump(model);
  model.addHeuristic(&pump);
  // Incumbents, after the root LP: the plans of the heuristic planners, where they fit the stage
  // structure (first computations in id order, each stage's computes in ascending order). CBC
  // checks them.
  {
    std::vector<double> best;
    double best_obj = COIN_DBL_MAX;
    using Fn =
        std::optional<Plan> (*)(const Problem&, int64_t, const PlannerOptions&, PlannerInfo*);
    for (Fn fn : {&plan_keep_all, &plan_treewidth, &plan_chain, &plan_sqrt, &plan_dtr}) {
      PlannerInfo pi;
      std::optional<Plan> hp;
      try {
        hp = fn(p, budget_bytes, opts, &pi);
      } catch (...) {
        continue;
      }
      if (!hp) continue;
      std::vector<double> xs;
      if (!stage_solution(hp->steps, xs)) continue;
      double obj = 0;
      for (int c = 0; c < milp.cols(); ++c) obj += xs[c] * milp.obj(c);
      if (obj < best_obj) {
        best_obj = obj;
        best = std::move(xs);
      }
    }
    model.initialSolve();
    if (!model.solver()->isProvenOptimal()) {
      if (info)
        info->note = "LP relaxation infeasible: the budget is too small for any stage schedule";
      return std::nullopt;
    }
    if (!best.empty()) model.setBestSolution(best.data(), milp.cols(), best_obj, true);
  }
  model.branchAndBound();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double* x = model.bestSolution();
  if (x == nullptr) {
    if (info)
      info->note = model.isProvenInfeasible()   ? "MILP infeasible at this budget"
                   : model.isNodeLimitReached() ? "MILP node limit hit without a feasible solution"
                                                : "MILP time limit hit without a feasible solution";
    return std::nullopt;
  }
  const bool optimal = model.isProvenOptimal();
  auto on = [&](int col) { return col >= 0 && x[col] > 0.5; };

  std::vector<Step> steps;
  std::vector<char> in(m, 0);
  for (int t = 0; t < m; ++t) {
    for (int i = 0; i < t; ++i)
      if (in[i] && !on(S[t][i])) {
        steps.push_back(Step::free(node_of[i]));
        in[i] = 0;
      }
    for (int k = 0; k <= t; ++k) {
      if (!on(R[t][k])) continue;
      if (!in[k]) {  // a zero-cost node may be "recomputed" while stored: nothing to do then
        steps.push_back(Step::compute(node_of[k]));
        in[k] = 1;
      }
      for (const auto& [i, col] : F[t][k])
        if (on(col) && in[i]) {
          steps.push_back(Step::free(node_of[i]));
          in[i] = 0;
        }
    }
  }
  for (int i = 0; i < m; ++i)
    if (in[i] && !is_out[i]) steps.push_back(Step::free(node_of[i]));
  std::optional<Plan> plan = make_plan(std::move(steps));
  if (plan && info) {
    info->optimal = optimal;
    const char* why = model.isNodeLimitReached() ? "MILP node limit hit; best incumbent"
                                                 : "MILP time limit hit; best incumbent";
    info->note = (optimal ? "optimal" : why) + std::string(", ") + std::to_string(m) + " stages, " +
                 std::to_string(milp.cols()) + " variables, " +
                 std::to_string(model.getNodeCount()) + " nodes, " + std::to_string(secs) + " s";
  }
  return plan;
}

#endif  // LETHE_HAVE_CBC

}  // namespace lethe::sched
