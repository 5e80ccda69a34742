#include "scheduler/simulator.h"

#include <algorithm>
#include <vector>

#include "scheduler/streams.h"

namespace lethe::sched {
namespace {

std::string node_str(NodeId v) {
  return "node " + std::to_string(v);
}

}  // namespace

SimResult simulate(const Problem& p, const Plan& plan) {
  if (has_streams(plan) || plan.streams < 0 || has_copies(plan)) return simulate_streams(p, plan);
  // Serial: one order, checked step by step.
  SimResult r;
  r.streams = plan.streams > 0 ? plan.streams : 1;  // stream_count() of a plan on stream 0
  const int n = p.size();
  std::vector<uint8_t> in_mem(n, 0);
  int64_t mem = 0;
  for (const Node& v : p.nodes) {
    if (v.resident) {
      in_mem[v.id] = 1;
      mem += v.bytes;
    }
  }
  r.peak_bytes = mem;
  auto fail = [&](size_t i, std::string msg) {
    r.valid = false;
    r.first_bad_step = static_cast<int64_t>(i);
    r.message = "step " + std::to_string(i) + ": " + std::move(msg);
    r.makespan = r.cost;
    return r;
  };
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    const NodeId v = s.node;
    if (v < 0 || v >= n) {
      return fail(i,
                  node_str(v) + " does not exist (the graph has " + std::to_string(n) + " nodes)");
    }
    const Node& node = p.nodes[v];
    if (s.kind == Step::Kind::compute) {
      if (node.resident)
        return fail(i, "rule 2: compute " + node_str(v) + ", which is resident (never computed)");
      if (in_mem[v])
        return fail(i, "rule 2: compute " + node_str(v) + ", which is already in memory");
      for (NodeId u : node.inputs) {
        if (!in_mem[u]) {
          return fail(i, "rule 2: compute " + node_str(v) + " whose input " + node_str(u) +
                             " is not in memory");
        }
      }
      in_mem[v] = 1;
      mem += node.bytes;
      r.cost += node.cost;
      ++r.compute_steps;
      // The first compute step sets the peak even when it is below the resident bytes (it cannot
      // be).
      r.peak_bytes = std::max(r.peak_bytes, mem);
      if (mem > plan.budget_bytes) {
        return fail(i, "rule 2: compute " + node_str(v) + " brings memory to " +
                           std::to_string(mem) + " bytes, over the budget of " +
                           std::to_string(plan.budget_bytes));
      }
    } else {
      if (!in_mem[v]) return fail(i, "rule 3: free " + node_str(v) + ", which is not in memory");
      if (node.resident) return fail(i, "rule 3: free " + node_str(v) + ", which is resident");
      in_mem[v] = 0;
      mem -= node.bytes;
    }
  }
  for (NodeId o : p.outputs) {
    if (o < 0 || o >= n || !in_mem[o]) {
      return fail(plan.steps.size(),
                  "rule 4: output " + node_str(o) + " is not in memory at the end");
    }
  }
  r.makespan = r.cost;  // one stream: the steps run one after the other
  return r;
}

int64_t resident_bytes(const Problem& p) {
  int64_t b = 0;
  for (const Node& v : p.nodes) b += v.resident ? v.bytes : 0;
  return b;
}

int64_t floor_bytes(const Problem& p) {
  std::vector<uint8_t> out(p.size(), 0);
  for (NodeId o : p.outputs) out[o] = 1;
  int64_t b = 0;
  for (const Node& v : p.nodes) b += (v.resident || out[v.id]) ? v.bytes : 0;
  return b;
}

int64_t no_remat_peak(const Problem& p) {
  const int n = p.size();
  std::vector<uint8_t> is_out(n, 0);
  for (NodeId o : p.outputs) is_out[o] = 1;
  // last_use[u] = the largest consumer id; consumers run in id order so that is the last use.
  std::vector<NodeId> last_use(n, -1);
  for (const Node& v : p.nodes) {
    for (NodeId u : v.inputs) last_use[u] = std::max(last_use[u], v.id);
  }
  int64_t mem = resident_bytes(p);
  int64_t peak = mem;
  for (const Node& v : p.nodes) {
    if (v.resident) continue;
    mem += v.bytes;
    peak = std::max(peak, mem);
    for (NodeId u : v.inputs) {
      // Free once per input even when it is listed twice: only the first occurrence frees.
      if (last_use[u] == v.id && !is_out[u] && !p.nodes[u].resident) {
        mem -= p.nodes[u].bytes;
        last_use[u] = -2;
      }
    }
    if (last_use[v.id] == -1 && !is_out[v.id]) mem -= v.bytes;
  }
  return peak;
}

double no_remat_cost(const Problem& p) {
  double c = 0.0;
  for (const Node& v : p.nodes) c += v.resident ? 0.0 : v.cost;
  return c;
}

}  // namespace lethe::sched
