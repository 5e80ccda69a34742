// `lethe`: minimise the plan's cost under the budget (method and reasons: lethe.md beside this file).
//   1. Incumbents: every cheap baseline planner (keep-all, chain, treewidth, dtr, sqrt).
//   2. Own candidates: the natural order with on-demand recomputation, evicting at memory pressure
//      the value with the smallest recompute-cost / (bytes x distance to its next use^alpha), for a
//      few score variants (Belady's rule weighted by cost).
//   3. Every candidate is post-optimised (scheduler/lethe_postopt.h) and simulated; the cheapest
//      valid plan wins, so `lethe` is never costlier than the baselines it ran.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "scheduler/lethe_postopt.h"
#include "scheduler/plan_builder.h"
#include "scheduler/planners/planners.h"
#include "scheduler/simulator.h"

namespace lethe::sched {
namespace {

using Clock = std::chrono::steady_clock;

struct Variant {
  double alpha;   // exponent of the next-use distance
  int rc_mode;    // 0: own cost; 1: own cost + cost of the inputs not in memory
};

struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

// Natural order, values kept until memory runs out, then evicted by the variant's score.
std::optional<Plan> evict_plan(const Dag& g, int64_t budget, const Variant& var, uint64_t seed) {
  const int n = g.n;
  std::vector<int32_t> pos(n, -1);
  for (size_t i = 0; i < g.targets.size(); ++i) pos[g.targets[i]] = static_cast<int32_t>(i);
  std::vector<int32_t> next(n, 0);
  int32_t done = -1;
  // Position of the next use of u after the current target (INT32_MAX: none).
  auto next_use = [&](NodeId u) -> int32_t {
    const auto cs = g.consumers(u);
    int32_t& k = next[u];
    while (k < static_cast<int32_t>(cs.size()) && (pos[cs[k]] < 0 || pos[cs[k]] <= done)) ++k;
    return k < static_cast<int32_t>(cs.size()) ? pos[cs[k]] : std::numeric_limits<int32_t>::max();
  };
  Executor ex(g, budget);
  int64_t edges = 0;
  for (NodeId v : g.targets) edges += static_cast<int64_t>(g.inputs(v).size());
  ex.max_steps = 16 * (static_cast<int64_t>(g.targets.size()) + edges) + 1000;
  std::vector<NodeId> pool;
  std::vector<uint8_t> in_pool(n, 0);
  Rng rng{seed ^ 0x1e7e5eedULL};
  constexpr size_t kFullScanMax = 1024, kSamples = 192;

  auto score = [&](NodeId t) {
    double rc = g.cost[t];
    if (var.rc_mode == 1) {
      for (NodeId u : g.inputs(t)) {
        if (!g.resident[u] && !ex.in_memory(u)) rc += g.cost[u];
      }
    }
    const int32_t nu = next_use(t);
    const double dist = nu == std::numeric_limits<int32_t>::max() ? 1e9 : static_cast<double>(nu - done);
    return rc / (static_cast<double>(g.bytes[t]) * std::pow(dist, var.alpha));
  };
  auto evictable = [&](NodeId t) {
    return ex.in_memory(t) && !g.resident[t] && !ex.pinned(t) && !g.is_output[t] && g.bytes[t] > 0;
  };
  ex.make_room = [&](NodeId, int64_t need) {
    while (ex.memory() + need > budget) {
      size_t w = 0;
      for (NodeId t : pool) {
        if (ex.in_memory(t)) {
          pool[w++] = t;
        } else {
          in_pool[t] = 0;
        }
      }
      pool.resize(w);
      NodeId best = -1;
      double best_h = std::numeric_limits<double>::infinity();
      auto consider = [&](NodeId t) {
        if (!evictable(t)) return;
        const double h = score(t);
        if (best < 0 || h < best_h) {
          best = t;
          best_h = h;
        }
      };
      if (pool.size() <= kFullScanMax) {
        for (NodeId t : pool) consider(t);
      } else {
        for (size_t i = 0; i < kSamples; ++i) consider(pool[rng.next() % pool.size()]);
        if (best < 0) {
          for (NodeId t : pool) consider(t);
        }
      }
      if (best < 0) return false;
      ex.free(best);
    }
    return true;
  };
  ex.on_compute = [&](NodeId v) {
    if (!in_pool[v]) {
      in_pool[v] = 1;
      pool.push_back(v);
    }
  };
  ex.drop = [&](NodeId u) { return !g.is_output[u] && next_use(u) == std::numeric_limits<int32_t>::max(); };
  for (size_t i = 0; i < g.targets.size(); ++i) {
    const NodeId t = g.targets[i];
    done = static_cast<int32_t>(i);
    if (!ex.ensure(t)) return std::nullopt;
    for (NodeId u : g.inputs(t)) {
      if (!g.resident[u] && ex.in_memory(u) && !ex.pinned(u) && ex.drop(u)) ex.free(u);
    }
    if (ex.drop(t)) ex.free(t);
  }
  for (NodeId o : g.outputs) {
    if (!ex.ensure(o)) return std::nullopt;
  }
  return ex.make_plan("lethe", budget);
}

}  // namespace

std::optional<Plan> plan_lethe(const Problem& p, int64_t budget, const PlannerOptions& opts, PlannerInfo* info) {
  const auto t0 = Clock::now();
  const Dag g(p);
  std::optional<Plan> best;
  double best_cost = std::numeric_limits<double>::infinity();
  std::string best_from;
  // Simulates `cand` (after post-optimising it) and keeps it when it is the cheapest valid plan.
  auto offer = [&](std::optional<Plan> cand, const std::string& from) {
    if (!cand) return;
    cand->budget_bytes = budget;
    SimResult raw = simulate(p, *cand);
    if (!raw.valid) return;
    if (std::optional<Plan> opt = post_optimise(g, *cand, budget)) {
      opt->budget_bytes = budget;
      const SimResult s = simulate(p, *opt);
      if (s.valid && s.cost <= raw.cost) {
        cand = std::move(opt);
        raw = s;
      }
    }
    if (raw.cost < best_cost) {
      best_cost = raw.cost;
      cand->predicted_cost = raw.cost;
      cand->predicted_peak_bytes = raw.peak_bytes;
      best = std::move(cand);
      best_from = from;
    }
  };
  const std::pair<const char*, decltype(&plan_keep_all)> baselines[] = {
      {"keep-all", plan_keep_all}, {"chain", plan_chain}, {"treewidth", plan_treewidth},
      {"dtr", plan_dtr},           {"sqrt", plan_sqrt}};
  for (const auto& [name, fn] : baselines) {
    PlannerInfo ignored;
    offer(fn(p, budget, opts, &ignored), name);
    // keep-all fits: nothing can be cheaper than the no-remat cost.
    if (best && best_cost <= no_remat_cost(p)) break;
  }
  if (!(best && best_cost <= no_remat_cost(p))) {
    const Variant variants[] = {{1.0, 1}, {1.0, 0}, {2.0, 1}, {0.5, 1}, {0.0, 1}, {3.0, 1}};
    for (const Variant& v : variants) {
      offer(evict_plan(g, budget, v, opts.seed), "evict");
    }
  }
  if (!best) return std::nullopt;
  best->planner = "lethe";
  if (info) {
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    info->note = "best from " + best_from + " (post-optimised), " + std::to_string(dt) + " s";
  }
  return best;
}

}  // namespace lethe::sched
