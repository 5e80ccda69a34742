// Kirisame et al., "Dynamic Tensor Rematerialization" (ICLR 2021), simulated ahead of time: run
// the natural schedule; when a compute would exceed the budget, evict the in-memory value with the
// smallest h(t) = cost_e(t) / (bytes(t) * staleness(t)) until it fits; recompute evicted values on
// demand. cost_e is the paper's h_DTR-eq: t's own cost plus the cost of every evicted neighbourhood
// (union-find component of evicted values) adjacent to t, since evicting t makes recomputing those
// need t again. As in the paper's implementation, components are merged on eviction and only
// debited (not split) on recomputation.
#include <algorithm>
#include <limits>

#include "scheduler/plan_builder.h"
#include "scheduler/planners/planners.h"

namespace lethe::sched {
namespace {

// With many values in memory, scoring every one at each eviction is quadratic; the paper samples
// candidates for the same reason.
constexpr size_t kFullScanMax = 512;
constexpr size_t kSamples = 128;

// One simulation. `equivalence`: the score is h_DTR-eq (above); otherwise the published plain
// h = cost / (bytes * staleness), scoring every candidate (no sampling).
std::optional<Plan> simulate_dtr(const Problem& p, int64_t budget, const PlannerOptions& opts,
                                 PlannerInfo* info, bool equivalence) {
  const Dag g(p);
  const int n = g.n;
  std::vector<int32_t> pos(n, -1);
  for (size_t i = 0; i < g.targets.size(); ++i) pos[g.targets[i]] = static_cast<int32_t>(i);
  std::vector<int32_t> next(n, 0);
  int32_t done = -1;
  auto has_next_use = [&](NodeId u) {
    const auto cs = g.consumers(u);
    int32_t& k = next[u];
    while (k < static_cast<int32_t>(cs.size()) && (pos[cs[k]] < 0 || pos[cs[k]] <= done)) ++k;
    return k < static_cast<int32_t>(cs.size());
  };

  std::vector<int64_t> last_access(n, 0);
  int64_t clock = 1;
  std::vector<uint8_t> evicted(n, 0);
  std::vector<NodeId> parent(n);
  std::vector<double> comp_cost(n, 0.0);
  for (int v = 0; v < n; ++v) parent[v] = v;
  auto find = [&](NodeId v) {
    while (parent[v] != v) v = parent[v] = parent[parent[v]];
    return v;
  };
  std::vector<NodeId> pool;  // values possibly in memory (lazily cleaned)
  std::vector<NodeId> roots;
  Rng rng{opts.seed ^ 0x5eedULL};
  int64_t evictions = 0;

  Executor ex(g, budget);
  int64_t edges = 0;
  for (int v = 0; v < n; ++v) edges += static_cast<int64_t>(g.inputs(v).size());
  // Recomputation can cascade; a schedule this long means the budget only admits thrashing.
  ex.max_steps = 20 * (static_cast<int64_t>(n) + edges) + 1000;

  auto evictable = [&](NodeId t) {
    return ex.in_memory(t) && !g.resident[t] && !ex.pinned(t) && !g.is_output[t] && g.bytes[t] > 0;
  };
  auto score = [&](NodeId t) {
    double c = g.cost[t];
    roots.clear();
    auto add = [&](NodeId w) {
      if (!evicted[w]) return;
      const NodeId r = find(w);
      if (std::find(roots.begin(), roots.end(), r) == roots.end()) {
        roots.push_back(r);
        c += comp_cost[r];
      }
    };
    if (equivalence) {
      for (NodeId u : g.inputs(t)) add(u);
      for (NodeId w : g.consumers(t)) add(w);
    }
    const double stale = static_cast<double>(clock - last_access[t] + 1);
    return c / (static_cast<double>(g.bytes[t]) * stale);
  };
  auto evict = [&](NodeId t) {
    ex.free(t);
    evicted[t] = 1;
    ++evictions;
    comp_cost[t] = g.cost[t];
    parent[t] = t;
    auto join = [&](NodeId w) {
      if (!evicted[w]) return;
      const NodeId a = find(t), b = find(w);
      if (a != b) {
        parent[a] = b;
        comp_cost[b] += comp_cost[a];
      }
    };
    for (NodeId u : g.inputs(t)) join(u);
    for (NodeId w : g.consumers(t)) join(w);
  };

  ex.make_room = [&](NodeId, int64_t need) {
    while (ex.memory() + need > budget) {
      // Drop stale pool entries, then score everything or a sample.
      size_t w = 0;
      for (NodeId t : pool) {
        if (ex.in_memory(t)) pool[w++] = t;
      }
      pool.resize(w);
      NodeId best = -1;
      double best_h = std::numeric_limits<double>::infinity();
      auto consider = [&](NodeId t) {
        if (!evictable(t)) return;
        const double h = score(t);
        if (best < 0 || h < best_h || (!equivalence && h == best_h && t < best)) {
          best = t;
          best_h = h;
        }
      };
      if (pool.size() <= kFullScanMax || !equivalence) {
        for (NodeId t : pool) consider(t);
      } else {
        for (size_t i = 0; i < kSamples; ++i) consider(pool[rng.next() % pool.size()]);
        if (best < 0) {
          for (NodeId t : pool) consider(t);
        }
      }
      if (best < 0) return false;
      evict(best);
    }
    return true;
  };
  NodeId last_computed = -1;
  ex.on_compute = [&](NodeId v) {
    last_computed = v;
    last_access[v] = clock;
    for (NodeId u : g.inputs(v)) last_access[u] = clock;
    ++clock;
    if (evicted[v]) {
      evicted[v] = 0;
      comp_cost[find(v)] -= g.cost[v];
    }
    pool.push_back(v);
  };
  // Banishing: a value with no future use (and not an output) is freed for good.
  // The plain simulation banishes only around a target's own compute, not inside the
  // recomputations it triggers (as the paper's runtime frees a tensor when its last reference
  // goes).
  ex.drop = [&](NodeId u) {
    if (!equivalence && done >= 0 && last_computed != g.targets[static_cast<size_t>(done)])
      return false;
    return !g.is_output[u] && !has_next_use(u);
  };

  if (!ex.run_targets([&](size_t i) { done = static_cast<int32_t>(i); })) return std::nullopt;
  if (info)
    info->note = std::to_string(evictions) + " evictions" +
                 (equivalence ? "" : ", plain h (cost / (bytes x staleness))");
  return ex.make_plan("dtr", budget);
}

}  // namespace

std::optional<Plan> plan_dtr(const Problem& p, int64_t budget, const PlannerOptions& opts,
                             PlannerInfo* info) {
  if (std::optional<Plan> plan = simulate_dtr(p, budget, opts, info, true)) return plan;
  // h_DTR-eq charges a value for the evicted neighbourhood its eviction would make costlier; on
  // some graphs that keeps a value whose eviction was the only way through, where the plain
  // score of the paper's heuristic fits. So dtr fits wherever the plain heuristic does.
  if (std::optional<Plan> plan = simulate_dtr(p, budget, opts, info, false)) return plan;
  if (info)
    info->note = "both DTR scores (h_DTR-eq and the plain h) get stuck or thrash at this budget";
  return std::nullopt;
}

}  // namespace lethe::sched
