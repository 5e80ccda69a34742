// The cut lower bound of bounds.h.
#include "scheduler/bounds.h"

#include <algorithm>
#include <vector>

#include "scheduler/plan_builder.h"

namespace lethe::sched {

CostBound cut_lower_bound(const Problem& p, int64_t budget) {
  const Dag g(p);
  const size_t n = static_cast<size_t>(g.n);
  CostBound best;
  double base = 0;
  int64_t resident = 0;
  for (NodeId v : g.targets) base += g.cost[v];
  for (size_t v = 0; v < n; ++v)
    if (g.resident[v]) resident += g.bytes[v];
  best.cost = base;
  std::vector<uint8_t> desc(n), anc(n), input(n);
  std::vector<NodeId> items;
  for (NodeId s : g.targets) {
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
    // Fixed at the first compute of s: the resident values, s and its (distinct) inputs.
    int64_t fixed = resident + g.bytes[s];
    for (NodeId u : g.inputs(s)) {
      if (!g.resident[u] && !input[static_cast<size_t>(u)]) {
        input[static_cast<size_t>(u)] = 1;
        fixed += g.bytes[u];
      }
    }
    items.clear();
    int64_t held = 0;
    for (size_t v = 0; v < n; ++v) {
      if (!anc[v] || static_cast<NodeId>(v) == s || input[v] || g.bytes[v] <= 0) continue;
      bool later = g.is_output[v] != 0;
      for (NodeId c : g.consumers(static_cast<NodeId>(v))) {
        if (later) break;
        later = c != s && desc[static_cast<size_t>(c)] && g.needed[c];
      }
      if (!later) continue;
      items.push_back(static_cast<NodeId>(v));
      held += g.bytes[v];
    }
    for (NodeId u : g.inputs(s)) input[static_cast<size_t>(u)] = 0;
    const int64_t room = budget - fixed;
    if (room < 0) {
      best.infeasible = true;
      best.cut = s;
      return best;
    }
    int64_t drop = held - room;
    if (drop <= 0) continue;
    std::sort(items.begin(), items.end(), [&](NodeId a, NodeId b) {
      const double ka = g.cost[a] * static_cast<double>(g.bytes[b]);
      const double kb = g.cost[b] * static_cast<double>(g.bytes[a]);
      return ka != kb ? ka < kb : a < b;
    });
    double extra = 0;
    for (NodeId v : items) {
      if (drop <= 0) break;
      const double take = std::min(1.0, static_cast<double>(drop) / static_cast<double>(g.bytes[v]));
      extra += take * g.cost[v];
      drop -= g.bytes[v];
    }
    if (base + extra > best.cost) {
      best.cost = base + extra;
      best.cut = s;
    }
  }
  return best;
}

}  // namespace lethe::sched
