// Small helpers shared by the scheduler tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <string>
#include <vector>

#include "scheduler/planner.h"
#include "scheduler/problem.h"

namespace lethe::sched::test {

// The message of the Error `f` throws ("" when it throws nothing).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

inline Node node(NodeId id, int64_t bytes, double cost, std::vector<NodeId> inputs,
                 bool resident = false) {
  Node v;
  v.id = id;
  v.name = "n" + std::to_string(id);
  v.op = resident ? "param" : "op";
  v.bytes = bytes;
  v.cost = cost;
  v.inputs = std::move(inputs);
  v.resident = resident;
  return v;
}

// Minimum plan cost at `budget` by exhaustive search over memory states (Dijkstra; <= 16
// non-resident nodes). -1 when no plan fits. Like the planners, it never frees an output once
// computed (freeing the loss for a while and recomputing it at the end can save its few bytes; no
// planner here does that).
inline double optimal_cost(const Problem& p, int64_t budget) {
  std::vector<NodeId> free_nodes;
  std::vector<int> bit(p.size(), -1);
  int64_t base = 0;
  for (const Node& v : p.nodes) {
    if (v.resident) {
      base += v.bytes;
    } else {
      bit[v.id] = static_cast<int>(free_nodes.size());
      free_nodes.push_back(v.id);
    }
  }
  const int k = static_cast<int>(free_nodes.size());
  uint32_t goal = 0;
  for (NodeId o : p.outputs) {
    if (bit[o] >= 0) goal |= 1u << bit[o];
  }
  auto mem = [&](uint32_t s) {
    int64_t m = base;
    for (int i = 0; i < k; ++i) {
      if (s >> i & 1) m += p.nodes[free_nodes[i]].bytes;
    }
    return m;
  };
  std::vector<double> dist(size_t{1} << k, 1e300);
  using Item = std::pair<double, uint32_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> q;
  dist[0] = 0;
  q.push({0.0, 0});
  while (!q.empty()) {
    auto [d, s] = q.top();
    q.pop();
    if (d > dist[s]) continue;
    if ((s & goal) == goal) return d;
    const int64_t m = mem(s);
    for (int i = 0; i < k; ++i) {
      const Node& v = p.nodes[free_nodes[i]];
      if (s >> i & 1) {
        if (goal >> i & 1) continue;
        const uint32_t t = s & ~(1u << i);
        if (d < dist[t]) {
          dist[t] = d;
          q.push({d, t});
        }
        continue;
      }
      if (m + v.bytes > budget) continue;
      bool ready = true;
      for (NodeId u : v.inputs) ready = ready && (bit[u] < 0 || (s >> bit[u] & 1));
      if (!ready) continue;
      const uint32_t t = s | (1u << i);
      if (d + v.cost < dist[t]) {
        dist[t] = d + v.cost;
        q.push({dist[t], t});
      }
    }
  }
  return -1;
}

}  // namespace lethe::sched::test
