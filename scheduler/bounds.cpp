// The cut lower bounds of bounds.h.
#include "scheduler/bounds.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "scheduler/plan_builder.h"

#ifdef LETHE_HAVE_CBC
#include "CbcModel.hpp"
#include "CoinPackedMatrix.hpp"
#include "CoinPackedVector.hpp"
#include "OsiClpSolverInterface.hpp"
#endif

namespace lethe::sched {
namespace {

// One cut: the ancestors of s, which of them are needed after s's first compute, and the room left
// for keeping them.
struct Cut {
  NodeId s = -1;
  std::vector<NodeId> ancestors;  // non-resident, s excluded, ascending
  std::vector<uint8_t> later;     // per ancestor: needed after the first compute of s
  std::vector<uint8_t> forced;    // per ancestor: an input of s (kept, counted in `room`)
  int64_t room = 0;               // budget - resident - s - inputs of s
  double knapsack = 0;            // fractional knapsack extra cost
  bool infeasible = false;
};

Cut make_cut(const Dag& g, NodeId s, int64_t budget, int64_t resident, std::vector<uint8_t>& desc,
             std::vector<uint8_t>& anc) {
  const size_t n = static_cast<size_t>(g.n);
  std::fill(desc.begin(), desc.end(), 0);
  std::fill(anc.begin(), anc.end(), 0);
  desc[static_cast<size_t>(s)] = 1;
  for (NodeId t : g.targets) {
    if (t <= s) continue;
    for (NodeId u : g.inputs(t)) {
      if (desc[static_cast<size_t>(u)]) {
        desc[static_cast<size_t>(t)] = 1;
        break;
      }
    }
  }
  anc[static_cast<size_t>(s)] = 1;
  for (NodeId v = s; v >= 0; --v) {
    if (!anc[static_cast<size_t>(v)]) continue;
    for (NodeId u : g.inputs(v))
      if (!g.resident[u]) anc[static_cast<size_t>(u)] = 1;
  }
  Cut c;
  c.s = s;
  int64_t fixed = resident + g.bytes[s];
  for (size_t v = 0; v < n; ++v) {
    if (!anc[v] || static_cast<NodeId>(v) == s) continue;
    bool later = g.is_output[v] != 0;
    for (NodeId k : g.consumers(static_cast<NodeId>(v))) {
      if (later) break;
      later = k != s && desc[static_cast<size_t>(k)] && g.needed[k];
    }
    bool input = false;
    for (NodeId u : g.inputs(s)) input = input || u == static_cast<NodeId>(v);
    c.ancestors.push_back(static_cast<NodeId>(v));
    c.later.push_back(later ? 1 : 0);
    c.forced.push_back(input ? 1 : 0);
    if (input) fixed += g.bytes[v];
  }
  c.room = budget - fixed;
  if (c.room < 0) {
    c.infeasible = true;
    return c;
  }
  // Fractional knapsack over the ancestors needed later (inputs ignored).
  std::vector<NodeId> items;
  int64_t held = 0;
  for (size_t i = 0; i < c.ancestors.size(); ++i) {
    const NodeId v = c.ancestors[i];
    if (c.later[i] && !c.forced[i] && g.bytes[v] > 0) {
      items.push_back(v);
      held += g.bytes[v];
    }
  }
  int64_t drop = held - c.room;
  std::sort(items.begin(), items.end(), [&](NodeId a, NodeId b) {
    const double ka = g.cost[a] * static_cast<double>(g.bytes[b]);
    const double kb = g.cost[b] * static_cast<double>(g.bytes[a]);
    return ka != kb ? ka < kb : a < b;
  });
  for (NodeId v : items) {
    if (drop <= 0) break;
    const double take = std::min(1.0, static_cast<double>(drop) / static_cast<double>(g.bytes[v]));
    c.knapsack += take * g.cost[v];
    drop -= g.bytes[v];
  }
  return c;
}

#ifdef LETHE_HAVE_CBC
// The closure MILP of bounds.h for one cut; returns a proven lower bound on its optimum (the
// optimum when solved), or a negative value when CBC gave nothing.
double closure_milp(const Dag& g, const Cut& c, const BoundOptions& opts) {
  const int m = static_cast<int>(c.ancestors.size());
  std::vector<int> col(static_cast<size_t>(g.n), -1);
  for (int i = 0; i < m; ++i) col[static_cast<size_t>(c.ancestors[static_cast<size_t>(i)])] = i;
  // Columns: k_i = i, d_i = m + i.
  std::vector<double> lo(2 * static_cast<size_t>(m), 0.0), hi(2 * static_cast<size_t>(m), 1.0),
      obj(2 * static_cast<size_t>(m), 0.0);
  for (int i = 0; i < m; ++i) {
    obj[static_cast<size_t>(m + i)] = g.cost[c.ancestors[static_cast<size_t>(i)]];
    if (c.forced[static_cast<size_t>(i)]) lo[static_cast<size_t>(i)] = 1.0;
  }
  CoinPackedMatrix mat(false, 0, 0);
  mat.setDimensions(0, 2 * m);
  std::vector<double> rlo, rhi;
  auto row = [&](const CoinPackedVector& v, double l, double h) {
    mat.appendRow(v);
    rlo.push_back(l);
    rhi.push_back(h);
  };
  CoinPackedVector mem;
  for (int i = 0; i < m; ++i) {
    const NodeId v = c.ancestors[static_cast<size_t>(i)];
    if (c.later[static_cast<size_t>(i)]) {
      CoinPackedVector r;
      r.insert(i, 1.0);
      r.insert(m + i, 1.0);
      row(r, 1.0, COIN_DBL_MAX);
    }
    for (NodeId u : g.inputs(v)) {
      const int j = g.resident[u] ? -1 : col[static_cast<size_t>(u)];
      if (j < 0) continue;
      CoinPackedVector r;
      r.insert(j, 1.0);
      r.insert(m + j, 1.0);
      r.insert(m + i, -1.0);
      row(r, 0.0, COIN_DBL_MAX);
    }
    if (!c.forced[static_cast<size_t>(i)] && g.bytes[v] > 0)
      mem.insert(i, static_cast<double>(g.bytes[v]));
  }
  row(mem, -COIN_DBL_MAX, static_cast<double>(c.room));
  OsiClpSolverInterface solver;
  solver.loadProblem(mat, lo.data(), hi.data(), obj.data(), rlo.data(), rhi.data());
  for (int k = 0; k < 2 * m; ++k) solver.setInteger(k);
  solver.messageHandler()->setLogLevel(0);
  solver.setHintParam(OsiDoReducePrint, true, OsiHintTry);
  CbcModel model(solver);
  model.setLogLevel(0);
  model.messageHandler()->setLogLevel(0);
  model.solver()->messageHandler()->setLogLevel(0);
  model.setUseElapsedTime(true);
  model.setMaximumSeconds(opts.time_limit_s);
  if (opts.node_limit > 0)
    model.setMaximumNodes(
        static_cast<int>(std::min<int64_t>(opts.node_limit, std::numeric_limits<int>::max())));
  model.initialSolve();
  if (!model.solver()->isProvenOptimal()) return -1.0;  // the LP itself failed: say nothing
  const double lp = model.solver()->getObjValue();
  model.branchAndBound();
  if (model.isProvenOptimal()) return model.getObjValue();
  return std::max(lp, model.getBestPossibleObjValue());
}
#endif

}  // namespace

CostBound cut_lower_bound(const Problem& p, int64_t budget, const BoundOptions& opts) {
  const Dag g(p);
  const size_t n = static_cast<size_t>(g.n);
  CostBound best;
  best.method = "knapsack";
  double base = 0;
  int64_t resident = 0;
  for (NodeId v : g.targets) base += g.cost[v];
  for (size_t v = 0; v < n; ++v)
    if (g.resident[v]) resident += g.bytes[v];
  best.cost = base;
  std::vector<uint8_t> desc(n), anc(n);
  std::vector<std::pair<double, NodeId>> ranked;
  for (NodeId s : g.targets) {
    const Cut c = make_cut(g, s, budget, resident, desc, anc);
    if (c.infeasible) {
      best.infeasible = true;
      best.cut = s;
      return best;
    }
    ranked.emplace_back(c.knapsack, s);
    if (base + c.knapsack > best.cost) {
      best.cost = base + c.knapsack;
      best.cut = s;
    }
  }
#ifdef LETHE_HAVE_CBC
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  const size_t tries = std::min(ranked.size(), static_cast<size_t>(std::max(opts.milp_cuts, 0)));
  for (size_t i = 0; i < tries; ++i) {
    if (ranked[i].first <= 0) break;  // the MILP is 0 wherever the knapsack is
    const Cut c = make_cut(g, ranked[i].second, budget, resident, desc, anc);
    const double extra = closure_milp(g, c, opts);
    if (extra >= 0 && base + extra > best.cost) {
      best.cost = base + extra;
      best.cut = c.s;
      best.method = "closure MILP";
    }
  }
#else
  (void)opts;
#endif
  return best;
}

}  // namespace lethe::sched
