// `lethe`: minimise the plan's cost under the budget (method and reasons: lethe.md beside this
// file).
//   1. Incumbents: every cheap baseline planner (keep-all, chain, treewidth, dtr, sqrt).
//   2. Own candidates: the natural order (or one with the parameter gradients made last or early)
//      with on-demand recomputation, evicting at memory pressure the value with the smallest
//      recompute-cost / (bytes x distance to its next use^alpha), for a few score variants
//      (Belady's rule weighted by cost); when none fits, the value it got stuck on is kept.
//   3. Iterated eviction: per-node weights on the best variant's score, from knapsack and cut
//      seeds, changed a few at a time and kept when the plan gets cheaper (a deterministic search).
//   4. Every candidate is post-optimised (scheduler/lethe_postopt.h) and simulated; the cheapest
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
  double alpha;  // exponent of the next-use distance
  int rc_mode;   // 0: own cost; 1: + cost of the inputs not in memory; 2: + evicted ancestry
  bool outputs = false;  // outputs may be evicted too (and computed again before the end)
};

// Natural order, values kept until memory runs out, then evicted by the variant's score.
// `weight` (optional, one per node) multiplies the score: the iterated search below learns it.
std::optional<Plan> evict_plan(const Dag& g, int64_t budget, const Variant& var, uint64_t seed,
                               const std::vector<double>* weight = nullptr,
                               double cost_cap = std::numeric_limits<double>::infinity(),
                               NodeId* stuck = nullptr) {
  if (stuck) *stuck = -1;
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

  // dist^alpha; the scan below scores up to a thousand values per eviction, and std::pow was a
  // quarter of the planner's time.
  auto dist_pow = [a = var.alpha](double d) {
    if (a == 0.0) return 1.0;
    if (a == 0.5) return std::sqrt(d);
    if (a == 1.0) return d;
    if (a == 2.0) return d * d;
    if (a == 3.0) return d * d * d;
    return std::pow(d, a);
  };
  // Cost of the ancestors of t that are not in memory and that recomputing t would need again
  // (DTR's evicted neighbourhood, upwards), walked breadth-first up to kWalk nodes: evicting the
  // last checkpoint before a long evicted stretch is then as dear as that stretch.
  constexpr int kWalk = 24;
  std::vector<uint32_t> seen(static_cast<size_t>(n), 0);
  uint32_t stamp = 0;
  std::vector<NodeId> walk;
  auto evicted_ancestry = [&](NodeId t) {
    ++stamp;
    walk.clear();
    double c = 0.0;
    for (NodeId u : g.inputs(t)) {
      if (!g.resident[u] && !ex.in_memory(u) && seen[u] != stamp) {
        seen[u] = stamp;
        walk.push_back(u);
      }
    }
    for (size_t i = 0; i < walk.size() && i < kWalk; ++i) {
      const NodeId u = walk[i];
      c += g.cost[u];
      for (NodeId w : g.inputs(u)) {
        if (!g.resident[w] && !ex.in_memory(w) && seen[w] != stamp) {
          seen[w] = stamp;
          walk.push_back(w);
        }
      }
    }
    return c;
  };
  // Score of t; when even its own cost (a lower bound of rc) cannot beat `cutoff`, that bound is
  // returned without walking the inputs (the same choice, far fewer walks).
  auto score = [&](NodeId t, double cutoff) {
    int32_t nu = next_use(t);
    // An output nobody reads any more is next needed at the end.
    if (nu == std::numeric_limits<int32_t>::max() && g.is_output[t])
      nu = static_cast<int32_t>(g.targets.size());
    const double dist =
        nu == std::numeric_limits<int32_t>::max() ? 1e9 : static_cast<double>(nu - done);
    const double denom = static_cast<double>(g.bytes[t]) * dist_pow(dist);
    const double w = weight ? (*weight)[t] : 1.0;
    double rc = g.cost[t];
    if (var.rc_mode != 0 && rc / denom * w >= cutoff) return rc / denom * w;
    if (var.rc_mode == 1) {
      for (NodeId u : g.inputs(t)) {
        if (!g.resident[u] && !ex.in_memory(u)) rc += g.cost[u];
      }
    } else if (var.rc_mode == 2) {
      rc += evicted_ancestry(t);
    }
    return rc / denom * w;
  };
  // The pool holds only computed values this variant may evict (on_compute below).
  auto evictable = [&](NodeId t) { return ex.in_memory(t) && !ex.pinned(t); };
  ex.make_room = [&](NodeId v, int64_t need) {
    // Past the cap the plan cannot win any more (it would thrash on): give up early.
    if (ex.cost() > cost_cap) return false;
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
        const double h = score(t, best < 0 ? std::numeric_limits<double>::infinity() : best_h);
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
      if (best < 0) {
        if (stuck) *stuck = v;
        return false;
      }
      ex.free(best);
    }
    return true;
  };
  ex.on_compute = [&](NodeId v) {
    // Values this variant may never evict stay out of the pool (fewer to scan per eviction).
    if (!in_pool[v] && (var.outputs || !g.is_output[v]) && g.bytes[v] > 0) {
      in_pool[v] = 1;
      pool.push_back(v);
    }
  };
  ex.drop = [&](NodeId u) {
    return !g.is_output[u] && next_use(u) == std::numeric_limits<int32_t>::max();
  };
  if (!ex.run_targets([&](size_t i) { done = static_cast<int32_t>(i); })) return std::nullopt;
  return ex.make_plan("lethe", budget);
}

// Nodes a plan computes more than once.
std::vector<NodeId> recomputed_nodes(const Dag& g, const Plan& plan) {
  std::vector<uint8_t> seen(static_cast<size_t>(g.n), 0), twice(static_cast<size_t>(g.n), 0);
  std::vector<NodeId> r;
  for (const Step& s : plan.steps) {
    if (s.kind != Step::Kind::compute) continue;
    if (seen[s.node] && !twice[s.node]) {
      twice[s.node] = 1;
      r.push_back(s.node);
    }
    seen[s.node] = 1;
  }
  return r;
}

// Knapsack seed for the weights: in the natural schedule (id order, each value freed after its last
// use), take the moment of highest memory; of the values live then, the ones with the least cost
// per byte that must go for the budget to hold get weight `low` (evicted first), the rest 1.
std::vector<double> knapsack_weights(const Dag& g, int64_t budget, double low) {
  const size_t n = static_cast<size_t>(g.n);
  std::vector<int32_t> last(n, -1);
  for (size_t i = 0; i < g.targets.size(); ++i)
    for (NodeId u : g.inputs(g.targets[i])) last[static_cast<size_t>(u)] = static_cast<int32_t>(i);
  int64_t base = 0;
  for (size_t v = 0; v < n; ++v)
    if (g.resident[v]) base += g.bytes[v];
  // Replays the natural schedule up to target `stop` (all of it when stop < 0); returns the peak
  // and its target index, and leaves `live` as it is right after `stop` is computed.
  std::vector<uint8_t> live(n, 0);
  auto replay = [&](int64_t stop, int64_t* peak_at) {
    std::fill(live.begin(), live.end(), 0);
    int64_t mem = base, peak = -1;
    for (size_t i = 0; i < g.targets.size(); ++i) {
      const NodeId t = g.targets[i];
      live[static_cast<size_t>(t)] = 1;
      mem += g.bytes[t];
      if (mem > peak) {
        peak = mem;
        *peak_at = static_cast<int64_t>(i);
      }
      if (static_cast<int64_t>(i) == stop) break;
      for (NodeId u : g.inputs(t)) {
        const size_t su = static_cast<size_t>(u);
        if (live[su] && last[su] == static_cast<int32_t>(i) && !g.is_output[su]) {
          live[su] = 0;
          mem -= g.bytes[su];
        }
      }
      if (last[static_cast<size_t>(t)] < 0 && !g.is_output[t]) {
        live[static_cast<size_t>(t)] = 0;
        mem -= g.bytes[t];
      }
    }
    return peak;
  };
  int64_t at = 0;
  const int64_t peak = replay(-1, &at);
  int64_t ignored = 0;
  replay(at, &ignored);
  const NodeId t = g.targets[static_cast<size_t>(at)];
  live[static_cast<size_t>(t)] = 0;
  for (NodeId u : g.inputs(t)) live[static_cast<size_t>(u)] = 0;
  std::vector<NodeId> at_peak;
  for (size_t v = 0; v < n; ++v)
    if (live[v] && !g.is_output[v] && !g.resident[v]) at_peak.push_back(static_cast<NodeId>(v));
  std::vector<double> w(n, 1.0);
  std::sort(at_peak.begin(), at_peak.end(), [&](NodeId a, NodeId b) {
    return g.cost[a] * static_cast<double>(std::max<int64_t>(g.bytes[b], 1)) <
           g.cost[b] * static_cast<double>(std::max<int64_t>(g.bytes[a], 1));
  });
  int64_t excess = peak - budget;
  for (NodeId v : at_peak) {
    if (excess <= 0) break;
    w[static_cast<size_t>(v)] = low;
    excess -= g.bytes[v];
  }
  return w;
}

// Another order of the targets for the eviction, which computes them in order: the id order with
// the "sink gradients" (outputs no needed node reads: parameter gradients) moved.
// - Deferred to the end, when the gradient outweighs its inputs: it is held from its compute to the
//   end of the step, its inputs only until their last use, so computing it last trades its bytes
//   for theirs over the rest of the backward pass (ResNet-18's last-stage weight gradients are
//   2.25x their inputs). Greedy, largest bytes per input byte first; inputs already held for a
//   deferred gradient count as free. A gradient is deferred when its bytes exceed `defer_ratio` x
//   its inputs' new bytes (infinity: none is).
// - With `eager`, every other sink gradient right after its last-made input: the id order makes a
//   convolution's input gradient before its weight gradient, holding the weight gradient's input
//   meanwhile (the U-Net's 6 MiB top concatenation beside the 6 MiB input gradient).
// `hold` gets weight kHold on the deferred gradients' inputs (1 elsewhere): their next use is then
// at the end, and the eviction would drop them first and undo the trade. Returns an empty vector
// when the order is the id order.
constexpr double kHold = 16.0;
std::vector<NodeId> reordered_targets(const Dag& g, double defer_ratio, bool eager,
                                      std::vector<double>* hold) {
  auto sink_gradient = [&](NodeId o) {
    if (g.resident[o] || !g.needed[o]) return false;
    for (NodeId c : g.consumers(o)) {
      if (g.needed[c]) return false;
    }
    return true;
  };
  // Bytes of o's inputs that deferring it would hold longer: not resident, not outputs (held to the
  // end anyway), not held for another deferred gradient already.
  std::vector<uint8_t> held(static_cast<size_t>(g.n), 0), deferred(static_cast<size_t>(g.n), 0);
  auto new_input_bytes = [&](NodeId o) {
    int64_t b = 0;
    for (NodeId u : g.inputs(o)) {
      if (!g.resident[u] && !g.is_output[u] && !held[u]) b += g.bytes[u];
    }
    return b;
  };
  struct Cand {
    NodeId v;
    int64_t in;
  };
  std::vector<Cand> cands;
  for (NodeId o : g.outputs) {
    if (!sink_gradient(o)) continue;
    const int64_t in = new_input_bytes(o);
    if (static_cast<double>(g.bytes[o]) > defer_ratio * static_cast<double>(in))
      cands.push_back({o, in});
  }
  // Largest bytes / input bytes first; ties by id (deterministic).
  std::sort(cands.begin(), cands.end(), [&](const Cand& a, const Cand& b) {
    const double l =
        static_cast<double>(g.bytes[a.v]) * static_cast<double>(std::max<int64_t>(b.in, 1));
    const double r =
        static_cast<double>(g.bytes[b.v]) * static_cast<double>(std::max<int64_t>(a.in, 1));
    return l != r ? l > r : a.v < b.v;
  });
  size_t count = 0;
  for (const Cand& c : cands) {
    if (static_cast<double>(g.bytes[c.v]) <=
        defer_ratio * static_cast<double>(new_input_bytes(c.v)))
      continue;
    for (NodeId u : g.inputs(c.v)) held[u] = 1;
    deferred[c.v] = 1;
    ++count;
  }
  if (count == 0 && !eager) return {};
  hold->assign(static_cast<size_t>(g.n), 1.0);
  for (NodeId v : g.targets) {
    if (!deferred[v]) continue;
    for (NodeId u : g.inputs(v)) {
      if (!g.resident[u]) (*hold)[u] = kHold;
    }
  }
  // Eager gradients go right after their anchor, the last of their inputs in id order.
  std::vector<NodeId> anchor(static_cast<size_t>(g.n), -1);
  std::vector<std::vector<NodeId>> after(static_cast<size_t>(g.n));
  if (eager) {
    for (NodeId o : g.outputs) {
      if (deferred[o] || !sink_gradient(o)) continue;
      for (NodeId u : g.inputs(o)) {
        if (!g.resident[u]) anchor[o] = std::max(anchor[o], u);
      }
    }
    for (NodeId t : g.targets) {
      if (anchor[t] >= 0) after[anchor[t]].push_back(t);
    }
  }
  std::vector<NodeId> order, tail;
  for (NodeId t : g.targets) {
    if (anchor[t] >= 0) continue;
    (deferred[t] ? tail : order).push_back(t);
    for (NodeId e : after[t]) order.push_back(e);
  }
  order.insert(order.end(), tail.begin(), tail.end());
  if (order == g.targets) return {};
  return order;
}

// Rounds of the iterated eviction: a fixed amount of work (~ rounds x graph size) so that the plan
// is deterministic (no clock) and the planner stays within its time bounds.
int search_iterations(const Dag& g) {
  const int64_t size = static_cast<int64_t>(g.targets.size()) + 1;
  return static_cast<int>(std::clamp<int64_t>(60000 / size, 4, 300));
}

// The search of plan_lethe. `steer`: a would-be improvement the caller does not accept
// (opts.accept) counts as no plan, so the search moves among usable plans. `shortlist` (when
// given) collects the kShortlist cheapest distinct candidates, cheapest first.
constexpr size_t kShortlist = 16;
std::optional<Plan> lethe_search(const Problem& p, int64_t budget, const PlannerOptions& opts,
                                 bool steer, std::vector<Plan>* shortlist, std::string* from_out) {
  const Dag g(p);
  auto shortlist_add = [&](const Plan& c) {
    if (!shortlist) return;
    std::vector<Plan>& sl = *shortlist;
    if (sl.size() == kShortlist && c.predicted_cost >= sl.back().predicted_cost) return;
    for (const Plan& s : sl) {
      if (s.predicted_cost == c.predicted_cost && s.steps == c.steps) return;
    }
    auto at = std::upper_bound(sl.begin(), sl.end(), c.predicted_cost,
                               [](double v, const Plan& e) { return v < e.predicted_cost; });
    sl.insert(at, c);
    if (sl.size() > kShortlist) sl.pop_back();
  };
  std::optional<Plan> best;
  double best_cost = std::numeric_limits<double>::infinity();
  std::string best_from;
  // Simulates `cand` (after post-optimising it) and keeps it when it is the cheapest valid plan.
  // Returns the candidate's cost (infinity when it is not a valid plan).
  auto offer = [&](std::optional<Plan> cand, const std::string& from) -> double {
    if (!cand) return std::numeric_limits<double>::infinity();
    cand->budget_bytes = budget;
    SimResult raw = simulate(p, *cand);
    if (!raw.valid) return std::numeric_limits<double>::infinity();
    if (std::optional<Plan> opt = post_optimise(g, *cand, budget)) {
      opt->budget_bytes = budget;
      const SimResult s = simulate(p, *opt);
      if (s.valid && s.cost <= raw.cost) {
        cand = std::move(opt);
        raw = s;
      }
    }
    const double cost = raw.cost;
    cand->predicted_cost = cost;
    cand->predicted_peak_bytes = raw.peak_bytes;
    shortlist_add(*cand);
    if (steer && cost < best_cost && !opts.accept(*cand))
      return std::numeric_limits<double>::infinity();
    if (cost < best_cost) {
      best_cost = cost;
      best = std::move(cand);
      best_from = from;
    }
    return cost;
  };
  const std::pair<const char*, decltype(&plan_keep_all)> baselines[] = {
      {"keep-all", plan_keep_all},
      {"chain", plan_chain},
      {"treewidth", plan_treewidth},
      {"dtr", plan_dtr},
      {"sqrt", plan_sqrt}};
  std::vector<std::vector<NodeId>> baseline_recomputed;  // per baseline plan that fits
  for (const auto& [name, fn] : baselines) {
    PlannerInfo ignored;
    std::optional<Plan> bp = fn(p, budget, opts, &ignored);
    if (bp) baseline_recomputed.push_back(recomputed_nodes(g, *bp));
    offer(std::move(bp), name);
    // keep-all fits: nothing can be cheaper than the no-remat cost.
    if (best && best_cost <= no_remat_cost(p)) break;
  }
  if (!(best && best_cost <= no_remat_cost(p))) {
    // The last two weigh the evicted stretch a recompute needs over how soon it comes (DTR's
    // score without staleness): they start the search on ResNet-18 and GPT-small at a fifth of
    // their activations.
    const Variant variants[] = {{1.0, 1},       {1.0, 0},       {2.0, 1},       {0.5, 1}, {0.0, 1},
                                {3.0, 1},       {1.0, 1, true}, {2.0, 1, true}, {1.0, 2}, {2.0, 2},
                                {1.0, 2, true}, {0.0, 2},       {0.5, 2}};
    // The eviction follows the targets in id order or in one of the orders of reordered_targets;
    // the order of the best start is the one the search uses.
    struct Order {
      Dag dag;                // g with its targets in this order
      std::vector<double> w;  // the eviction's weights that go with it
    };
    std::vector<Order> orders{{g, std::vector<double>(static_cast<size_t>(g.n), 1.0)}};
    constexpr double kNone = std::numeric_limits<double>::infinity();
    static const std::pair<double, bool> kOrders[] = {
        {1.0, false}, {0.5, false}, {kNone, true}, {1.0, true}};
    for (const auto& [defer_ratio, eager] : kOrders) {
      std::vector<double> hold;
      std::vector<NodeId> t = reordered_targets(g, defer_ratio, eager, &hold);
      if (t.empty() || std::any_of(orders.begin(), orders.end(),
                                   [&](const Order& o) { return o.dag.targets == t; })) {
        continue;
      }
      orders.push_back({g, std::move(hold)});
      orders.back().dag.targets = std::move(t);
    }
    double var_best = std::numeric_limits<double>::infinity();
    const Variant* start = &variants[0];
    const Order* eo = &orders[0];    // the order of the best start
    std::vector<NodeId> recomputed;  // what the search's incumbent recomputes
    // The eviction is not monotone in its budget: at a tight budget it can thrash (or fail) where
    // a slightly smaller one steers it clear. So the two best variants (every variant when none
    // fits) also run at a ladder of smaller budgets; their plans fit `budget` too, and
    // post-optimisation gives the slack back. The search below evicts at the budget of the best
    // start.
    int64_t evict_budget = budget;
    // An eviction run whose raw cost passes kCap x the best plan so far stops: post-optimisation
    // rarely takes back that much, and thrashing runs are the long ones.
    constexpr double kCap = 1.5;
    struct Ranked {
      double cost;
      const Variant* v;
      const Order* order;
    };
    std::vector<Ranked> ranked;
    // Another order's start must be kReorderMargin cheaper to displace the id order's: the search
    // from a start barely ahead ends up behind about as often as ahead, and the id order's search
    // is the one the results above the tightest budgets were tuned with.
    constexpr double kReorderMargin = 1.01;
    double start_key = std::numeric_limits<double>::infinity();
    auto run_variant = [&](const Order& order, const Variant& v, int64_t b) {
      std::optional<Plan> cand = evict_plan(order.dag, b, v, opts.seed, &order.w, kCap * var_best);
      std::vector<NodeId> rc = cand ? recomputed_nodes(g, *cand) : std::vector<NodeId>{};
      const double c = offer(std::move(cand), "evict");
      const double key = &order == &orders.front() ? c : c * kReorderMargin;
      if (key < start_key) {
        start_key = key;
        var_best = c;
        start = &v;
        eo = &order;
        evict_budget = b;
        recomputed = std::move(rc);
      }
      return c;
    };
    for (const Order& order : orders) {
      for (const Variant& v : variants)
        ranked.push_back({run_variant(order, v, budget), &v, &order});
    }
    // The ladder runs the two best variants of the id order (all of them when none fits, as the
    // id order's search always had) and the two best of the other orders (none when none fits:
    // the repair below covers those).
    auto by_cost = [](const Ranked& a, const Ranked& b) { return a.cost < b.cost; };
    const auto reordered = ranked.begin() + std::size(variants);
    std::stable_sort(ranked.begin(), reordered, by_cost);
    std::stable_sort(reordered, ranked.end(), by_cost);
    std::vector<Ranked> ladder(ranked.begin(),
                               std::isfinite(ranked.front().cost) ? ranked.begin() + 2 : reordered);
    for (auto it = reordered; it != ranked.end() && it - reordered < 2 && std::isfinite(it->cost);
         ++it) {
      ladder.push_back(*it);
    }
    const int64_t lo = std::min(floor_bytes(p), budget);
    for (const double scale : {0.95, 0.9, 0.8, 0.7}) {
      const int64_t b =
          budget - static_cast<int64_t>((1.0 - scale) * static_cast<double>(budget - lo));
      for (const Ranked& r : ladder) run_variant(*r.order, *r.v, b);
    }
    // Repair when nothing fits: the eviction got stuck recomputing a value that no longer fits
    // beside what its consumer holds (the U-Net's top concat at a fifth of its activations: 6 MiB,
    // cheap to recompute, fatal to evict). That value's weight goes up (evicted last) and the
    // eviction runs again, a few times per order, for the plain and the evicted-ancestry score.
    std::vector<double> base_w = eo->w;
    if (!std::isfinite(var_best)) {
      constexpr int kRepairs = 12;
      for (const Order& order : orders) {
        for (const Variant* v : {&variants[0], &variants[8]}) {
          std::vector<double> rw = order.w;
          for (int r = 0; r < kRepairs && !std::isfinite(var_best); ++r) {
            NodeId stuck = -1;
            std::optional<Plan> cand = evict_plan(order.dag, budget, *v, opts.seed, &rw,
                                                  std::numeric_limits<double>::infinity(), &stuck);
            if (cand) {
              std::vector<NodeId> rc = recomputed_nodes(g, *cand);
              const double c = offer(std::move(cand), "repaired eviction");
              if (c < var_best) {
                var_best = c;
                start = v;
                eo = &order;
                evict_budget = budget;
                recomputed = std::move(rc);
                base_w = rw;
              }
              break;
            }
            if (stuck < 0 || rw[static_cast<size_t>(stuck)] >= 1e14) break;
            rw[static_cast<size_t>(stuck)] *= 1e4;
          }
        }
        if (std::isfinite(var_best)) break;
      }
    }
    // 4. Iterated eviction: per-node weights on the best variant's score, changed a few at a time
    //    (mostly on nodes the incumbent recomputes: evicting them was the expensive choice), and a
    //    change is kept when the post-optimised plan gets cheaper.
    if (std::isfinite(var_best)) {
      std::vector<double> w = base_w;
      // Seeds: knapsack weightings of the natural schedule's peak, and cut weightings that keep the
      // forward's single-node cuts (block boundaries, the chain planner's checkpoints) and evict
      // inside blocks first.
      std::vector<std::vector<double>> seeds;
      for (const double low : {0.5, 0.1, 0.01})
        seeds.push_back(knapsack_weights(eo->dag, evict_budget, low));
      const TrainingSplit split = split_training(g);
      const std::vector<uint8_t> cuts = forward_cuts(g, split);
      for (const double hi : {4.0, 64.0}) {
        std::vector<double> cw(static_cast<size_t>(g.n), 1.0);
        for (NodeId f : split.forward) cw[static_cast<size_t>(f)] = cuts[f] ? hi : 1.0 / hi;
        seeds.push_back(std::move(cw));
      }
      // Baseline seeds: what a baseline's plan keeps (computes once) weighs hi, what it
      // recomputes 1/hi.
      for (const std::vector<NodeId>& rc : baseline_recomputed) {
        for (const double hi : {4.0, 64.0}) {
          std::vector<double> bw(static_cast<size_t>(g.n), 1.0);
          for (NodeId v : g.targets) bw[static_cast<size_t>(v)] = hi;
          for (NodeId v : rc) bw[static_cast<size_t>(v)] = 1.0 / hi;
          for (size_t i = 0; i < bw.size(); ++i)
            bw[i] *= base_w[i];  // the order's and repair's stay
          offer(evict_plan(eo->dag, evict_budget, *start, opts.seed, &bw, kCap * var_best),
                "baseline-seeded eviction");
        }
      }
      for (std::vector<double>& kw : seeds) {
        for (size_t i = 0; i < kw.size(); ++i) kw[i] *= base_w[i];  // likewise
        std::optional<Plan> cand =
            evict_plan(eo->dag, evict_budget, *start, opts.seed, &kw, kCap * var_best);
        std::vector<NodeId> rc = cand ? recomputed_nodes(g, *cand) : std::vector<NodeId>{};
        const double c = offer(std::move(cand), "seeded eviction");
        if (c < var_best) {
          var_best = c;
          recomputed = std::move(rc);
          w = kw;
        }
      }
      Rng rng{opts.seed ^ 0x5eed1e7eULL};
      const int iters = search_iterations(g);
      // Stops early after kPatience rounds without improvement (deterministic, like the count).
      // The work (plan steps post-optimised) is capped too: plans with many recomputations are
      // long, and the time bounds hold for the graph's size, not the plan's.
      constexpr int kPatience = 100;
      const int64_t work_cap = 600 * (static_cast<int64_t>(g.targets.size()) + 1);
      int64_t work = 0;
      for (int it = 0, stale = 0; it < iters && stale < kPatience && work < work_cap;
           ++it, ++stale) {
        std::vector<double> cand_w = w;
        const int changes = 1 + static_cast<int>(rng.next() % 3);
        for (int c = 0; c < changes; ++c) {
          NodeId v;
          if (!recomputed.empty() && rng.next() % 2 == 0) {
            v = recomputed[rng.next() % recomputed.size()];
          } else {
            v = g.targets[rng.next() % g.targets.size()];
          }
          static constexpr double kFactors[] = {0.25, 0.5, 2.0, 4.0, 16.0};
          cand_w[static_cast<size_t>(v)] *= kFactors[rng.next() % 5];
        }
        std::optional<Plan> cand =
            evict_plan(eo->dag, evict_budget, *start, opts.seed, &cand_w, kCap * var_best);
        work += cand ? static_cast<int64_t>(cand->steps.size())
                     : static_cast<int64_t>(g.targets.size());
        std::vector<NodeId> rc = cand ? recomputed_nodes(g, *cand) : std::vector<NodeId>{};
        const double c = offer(std::move(cand), "iterated eviction");
        if (c < var_best) {
          var_best = c;
          w = std::move(cand_w);
          recomputed = std::move(rc);
          stale = -1;
        }
      }
    }
  }
  if (from_out) *from_out = best_from;
  return best;
}

}  // namespace

std::optional<Plan> plan_lethe(const Problem& p, int64_t budget, const PlannerOptions& opts,
                               PlannerInfo* info) {
  const auto t0 = Clock::now();
  std::string from;
  std::optional<Plan> best;
  if (!opts.accept) {
    best = lethe_search(p, budget, opts, false, nullptr, &from);
  } else {
    // With a caller's test: the free search first. When its cheapest plan is rejected, the
    // cheapest accepted plan of its shortlist competes with a search steered by the test (the
    // rarely usable plans near the smallest budget are found by steering, a cheap usable plan
    // further up by searching freely).
    std::vector<Plan> shortlist;
    best = lethe_search(p, budget, opts, false, &shortlist, &from);
    if (best && !opts.accept(*best)) {
      const std::vector<Step> rejected = std::move(best->steps);
      best.reset();
      for (Plan& c : shortlist) {
        if (c.steps != rejected && opts.accept(c)) {
          best = std::move(c);
          from += ", shortlist";
          break;
        }
      }
      std::string steered_from;
      std::optional<Plan> steered = lethe_search(p, budget, opts, true, nullptr, &steered_from);
      if (steered && (!best || steered->predicted_cost < best->predicted_cost)) {
        best = std::move(steered);
        from = steered_from + ", steered";
      }
    }
  }
  if (!best) return std::nullopt;
  best->planner = "lethe";
  if (info) {
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    info->note = "best from " + from + " (post-optimised), " + std::to_string(dt) + " s";
  }
  return best;
}

}  // namespace lethe::sched
