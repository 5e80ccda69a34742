#include "scheduler/streams.h"

#include <algorithm>
#include <climits>
#include <deque>
#include <optional>
#include <unordered_map>

#include "scheduler/planner.h"

namespace lethe::sched {
namespace {

std::string node_str(NodeId v) {
  return "node " + std::to_string(v);
}

std::string step_str(const Plan& plan, int64_t i) {
  const Step& s = plan.steps[static_cast<size_t>(i)];
  return "step " + std::to_string(i) + " (" + kind_name(s.kind) + " " + node_str(s.node) + ")";
}

// Streams renumbered 0..k-1 in order of first use (stream ids are arbitrary non-negative ints).
std::vector<int32_t> compact_streams(const Plan& plan, int* k) {
  std::unordered_map<int, int32_t> id;
  std::vector<int32_t> out(plan.steps.size());
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    auto [it, added] = id.try_emplace(plan.steps[i].stream, static_cast<int32_t>(id.size()));
    out[i] = it->second;
  }
  *k = static_cast<int>(id.size());
  return out;
}

// The previous step of each step's stream (-1 for the first), for well-formed streams.
std::vector<int64_t> stream_predecessors(const Plan& plan) {
  int k = 0;
  const std::vector<int32_t> st = compact_streams(plan, &k);
  std::vector<int64_t> last(static_cast<size_t>(k), -1), prev(plan.steps.size(), -1);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    prev[i] = last[static_cast<size_t>(st[i])];
    last[static_cast<size_t>(st[i])] = static_cast<int64_t>(i);
  }
  return prev;
}

// A path by which step `from` waits (through stream order and waits, forward ones included) for
// step `to`; empty when there is none. Only called to explain a wait on a later step.
std::vector<int64_t> wait_path(const Plan& plan, int64_t from, int64_t to) {
  const int64_t n = static_cast<int64_t>(plan.steps.size());
  const std::vector<int64_t> prev = stream_predecessors(plan);
  std::vector<int64_t> parent(static_cast<size_t>(n), -2);
  std::deque<int64_t> q{from};
  parent[static_cast<size_t>(from)] = -1;
  while (!q.empty()) {
    const int64_t x = q.front();
    q.pop_front();
    if (x == to) {
      std::vector<int64_t> path;
      for (int64_t y = to; y != -1; y = parent[static_cast<size_t>(y)]) path.push_back(y);
      std::reverse(path.begin(), path.end());
      return path;
    }
    auto visit = [&](int64_t y) {
      if (y >= 0 && y < n && parent[static_cast<size_t>(y)] == -2) {
        parent[static_cast<size_t>(y)] = x;
        q.push_back(y);
      }
    };
    visit(prev[static_cast<size_t>(x)]);
    for (int64_t a : plan.steps[static_cast<size_t>(x)].after) visit(a);
  }
  return {};
}

// Maximum flow by Dinic's algorithm on a graph in compressed adjacency form; the search for
// augmenting paths is iterative (plans make paths as long as a stream).
class MaxFlow {
 public:
  explicit MaxFlow(int nodes) : n_(nodes) {}
  // Returns the index of the edge; its reverse is index ^ 1.
  int add_edge(int u, int v, int64_t cap) {
    from_.push_back(u), to_.push_back(v), cap_.push_back(cap);
    from_.push_back(v), to_.push_back(u), cap_.push_back(0);
    return static_cast<int>(cap_.size()) - 2;
  }
  // Moves `amount` of flow through edge e (an initial feasible flow).
  void push(int e, int64_t amount) {
    cap_[static_cast<size_t>(e)] -= amount;
    cap_[static_cast<size_t>(e ^ 1)] += amount;
  }
  int64_t run(int s, int t) {
    build_adjacency();
    int64_t total = 0;
    while (bfs(s, t)) {
      it_.assign(start_.begin(), start_.end() - 1);
      total += augment_phase(s, t);
    }
    return total;
  }
  // Nodes reachable from s in the residual graph (after run()): the source side of a minimum cut.
  std::vector<uint8_t> source_side(int s) const {
    std::vector<uint8_t> seen(static_cast<size_t>(n_), 0);
    std::vector<int> stack{s};
    seen[static_cast<size_t>(s)] = 1;
    while (!stack.empty()) {
      const int u = stack.back();
      stack.pop_back();
      for (int k = start_[static_cast<size_t>(u)]; k < start_[static_cast<size_t>(u) + 1]; ++k) {
        const int e = adj_[static_cast<size_t>(k)];
        const int v = to_[static_cast<size_t>(e)];
        if (cap_[static_cast<size_t>(e)] > 0 && !seen[static_cast<size_t>(v)]) {
          seen[static_cast<size_t>(v)] = 1;
          stack.push_back(v);
        }
      }
    }
    return seen;
  }

 private:
  void build_adjacency() {
    start_.assign(static_cast<size_t>(n_) + 1, 0);
    for (int u : from_) ++start_[static_cast<size_t>(u) + 1];
    for (int i = 0; i < n_; ++i)
      start_[static_cast<size_t>(i) + 1] += start_[static_cast<size_t>(i)];
    adj_.assign(from_.size(), 0);
    std::vector<int> fill(start_.begin(), start_.end() - 1);
    for (size_t e = 0; e < from_.size(); ++e)
      adj_[static_cast<size_t>(fill[static_cast<size_t>(from_[e])]++)] = static_cast<int>(e);
  }
  bool bfs(int s, int t) {
    level_.assign(static_cast<size_t>(n_), -1);
    std::vector<int> q{s};
    level_[static_cast<size_t>(s)] = 0;
    for (size_t h = 0; h < q.size(); ++h) {
      const int u = q[h];
      for (int k = start_[static_cast<size_t>(u)]; k < start_[static_cast<size_t>(u) + 1]; ++k) {
        const int e = adj_[static_cast<size_t>(k)];
        const int v = to_[static_cast<size_t>(e)];
        if (cap_[static_cast<size_t>(e)] > 0 && level_[static_cast<size_t>(v)] < 0) {
          level_[static_cast<size_t>(v)] = level_[static_cast<size_t>(u)] + 1;
          q.push_back(v);
        }
      }
    }
    return level_[static_cast<size_t>(t)] >= 0;
  }
  // Blocking flow of one phase: walk forward along level-increasing edges with positive residual
  // capacity, augment on reaching t, retreat from dead ends (pruning them from the level graph).
  int64_t augment_phase(int s, int t) {
    int64_t total = 0;
    std::vector<int> path;  // edges from s
    int u = s;
    for (;;) {
      if (u == t) {
        int64_t f = INT64_MAX;
        for (int e : path) f = std::min(f, cap_[static_cast<size_t>(e)]);
        size_t cut = path.size();
        for (size_t i = 0; i < path.size(); ++i) {
          push(path[i], f);
          if (cap_[static_cast<size_t>(path[i])] == 0 && cut == path.size()) cut = i;
        }
        total += f;
        path.resize(cut);
        u = path.empty() ? s : to_[static_cast<size_t>(path.back())];
        continue;
      }
      bool advanced = false;
      for (int& k = it_[static_cast<size_t>(u)]; k < start_[static_cast<size_t>(u) + 1]; ++k) {
        const int e = adj_[static_cast<size_t>(k)];
        const int v = to_[static_cast<size_t>(e)];
        if (cap_[static_cast<size_t>(e)] > 0 &&
            level_[static_cast<size_t>(v)] == level_[static_cast<size_t>(u)] + 1) {
          path.push_back(e);
          u = v;
          advanced = true;
          break;
        }
      }
      if (advanced) continue;
      level_[static_cast<size_t>(u)] = -1;  // dead end
      if (path.empty()) return total;
      const int e = path.back();
      path.pop_back();
      u = from_[static_cast<size_t>(e)];
      ++it_[static_cast<size_t>(u)];
    }
  }

  int n_;
  std::vector<int> from_, to_;
  std::vector<int64_t> cap_;
  std::vector<int> start_, adj_, it_, level_;
};

void check_nodes(const Problem& p, const Plan& plan) {
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const NodeId v = plan.steps[i].node;
    if (v < 0 || v >= p.size()) {
      throw Error("step " + std::to_string(i) + ": " + node_str(v) +
                  " does not exist (the graph has " + std::to_string(p.size()) + " nodes)");
    }
  }
}

void check_structure(const Plan& plan) {
  const StructureError e = stream_structure_error(plan);
  if (!e.message.empty()) throw Error(e.message);
}

}  // namespace

bool has_streams(const Plan& plan) {
  return std::any_of(plan.steps.begin(), plan.steps.end(),
                     [](const Step& s) { return s.stream != 0 || !s.after.empty(); });
}

int stream_count(const Plan& plan) {
  if (plan.streams > 0) return plan.streams;
  int top = 0;
  for (const Step& s : plan.steps) top = std::max(top, s.stream);
  return top == INT_MAX ? INT_MAX : top + 1;
}

StructureError stream_structure_error(const Plan& plan) {
  const int64_t n = static_cast<int64_t>(plan.steps.size());
  if (plan.streams < 0)
    return {
        0, "the plan's \"streams\" is " + std::to_string(plan.streams) + ": it must be at least 1"};
  for (int64_t i = 0; i < n; ++i) {
    const Step& s = plan.steps[static_cast<size_t>(i)];
    const std::string at = "step " + std::to_string(i) + ": ";
    if (s.stream < 0)
      return {i,
              at + "stream " + std::to_string(s.stream) + " is negative (streams are 0, 1, ...)"};
    if (plan.streams > 0 && s.stream >= plan.streams) {
      return {i, at + "stream " + std::to_string(s.stream) +
                     " is not below the plan's \"streams\": " + std::to_string(plan.streams)};
    }
    for (int64_t a : s.after) {
      if (a == i)
        return {i, at + "waits for itself (\"after\" names its own index; that is a cycle)"};
      if (a < 0 || a >= n) {
        return {i, at + "waits for step " + std::to_string(a) +
                       ", which does not exist (the plan has " + std::to_string(n) + " steps)"};
      }
      if (a > i) {
        std::string msg = at + "waits for step " + std::to_string(a) +
                          ", a later step (a step waits only for earlier steps of the plan)";
        const std::vector<int64_t> back = wait_path(plan, a, i);
        if (!back.empty()) {
          msg += "; that closes a cycle: step " + std::to_string(a) + " itself waits for step " +
                 std::to_string(i);
          if (back.size() > 2) {
            msg += " (";
            for (size_t k = 0; k < back.size(); ++k)
              msg += (k ? " -> " : "") + std::to_string(back[k]);
            msg += ")";
          }
        }
        return {i, msg};
      }
    }
  }
  return {};
}

StepOrder::StepOrder(const Plan& plan) {
  check_structure(plan);
  stream_ = compact_streams(plan, &k_);
  const size_t n = plan.steps.size();
  const size_t k = static_cast<size_t>(k_);
  if (k > 0 && n > (size_t{1} << 28) / k) {
    throw Error("plan too large to order: " + std::to_string(n) + " steps x " + std::to_string(k) +
                " streams");
  }
  pos_.assign(n, 0);
  clock_.assign(n * k, -1);
  std::vector<int32_t> count(k, 0);
  std::vector<int64_t> last(k, -1);
  for (size_t i = 0; i < n; ++i) {
    const size_t t = static_cast<size_t>(stream_[i]);
    int32_t* row = &clock_[i * k];
    if (last[t] >= 0) std::copy_n(&clock_[static_cast<size_t>(last[t]) * k], k, row);
    for (int64_t a : plan.steps[i].after) {
      const int32_t* other = &clock_[static_cast<size_t>(a) * k];
      for (size_t j = 0; j < k; ++j) row[j] = std::max(row[j], other[j]);
    }
    pos_[i] = count[t]++;
    row[t] = pos_[i];
    last[t] = static_cast<int64_t>(i);
  }
}

bool StepOrder::before(int64_t a, int64_t b) const {
  if (a == b || a < 0 || b < 0 || a >= size() || b >= size()) return false;
  const size_t ua = static_cast<size_t>(a);
  return clock_[static_cast<size_t>(b) * static_cast<size_t>(k_) +
                static_cast<size_t>(stream_[ua])] >= pos_[ua];
}

namespace {

// Device events of a node: the allocations (compute, fetch) and frees; tier events: offload, drop.
bool device_event(Step::Kind k) {
  return k == Step::Kind::compute || k == Step::Kind::fetch || k == Step::Kind::free;
}

// The worst case on one memory: the device (compute and fetch +bytes, free -bytes, from the
// resident bytes) or the second tier (offload +bytes, drop -bytes, from 0).
WorstCase worst_case_on(const Problem& p, const Plan& plan, bool greedy_start, bool tier) {
  const StepOrder order(plan);  // checks the waits
  check_nodes(p, plan);
  if (plan.steps.size() > static_cast<size_t>(INT_MAX / 8)) {
    throw Error("plan too large: " + std::to_string(plan.steps.size()) + " steps");
  }
  const int n = static_cast<int>(plan.steps.size());
  const int k = order.streams_in_use();
  const size_t uk = static_cast<size_t>(k);
  std::vector<int64_t> w(static_cast<size_t>(n));
  int64_t positive = 0;
  for (int i = 0; i < n; ++i) {
    const Step& s = plan.steps[static_cast<size_t>(i)];
    const int64_t b = p.nodes[static_cast<size_t>(s.node)].bytes;
    const bool up = tier ? s.kind == Step::Kind::offload
                         : s.kind == Step::Kind::compute || s.kind == Step::Kind::fetch;
    const bool down = tier ? s.kind == Step::Kind::drop : s.kind == Step::Kind::free;
    w[static_cast<size_t>(i)] = up ? b : down ? -b : 0;
    if (up) {
      if (b > INT64_MAX / 4 - positive) throw Error("plan computes more than 2^61 bytes in all");
      positive += b;
    }
  }
  // Steps by stream and position.
  std::vector<std::vector<int>> at(uk);
  for (int i = 0; i < n; ++i) at[static_cast<size_t>(order.stream_index(i))].push_back(i);
  auto prev_of = [&](int i) {
    const int q = order.position(i);
    return q > 0 ? at[static_cast<size_t>(order.stream_index(i))][static_cast<size_t>(q) - 1] : -1;
  };

  // Picard: an ideal of maximum weight is the source side of a minimum cut when the source feeds
  // each positive step, each negative step drains to the sink, and each step needs (by an edge of
  // infinite capacity) the steps it follows; its weight is the positive total less the max flow.
  const int src = n, sink = n + 1;
  const int64_t inf = positive + 1;
  MaxFlow g(n + 2);
  std::vector<int> src_edge(static_cast<size_t>(n), -1), sink_edge(static_cast<size_t>(n), -1),
      chain_edge(static_cast<size_t>(n), -1);
  // cross[i * k + t]: the edge from step i to the last step of stream t before it, where i's stream
  // predecessor does not reach that far; origin[i * k + t]: the step of i's stream, at or before i,
  // that has the edge giving i its clock for stream t.
  std::vector<int> cross(static_cast<size_t>(n) * uk, -1), origin(static_cast<size_t>(n) * uk, -1);
  for (int i = 0; i < n; ++i) {
    const size_t ui = static_cast<size_t>(i);
    if (w[ui] > 0) src_edge[ui] = g.add_edge(src, i, w[ui]);
    if (w[ui] < 0) sink_edge[ui] = g.add_edge(i, sink, -w[ui]);
    const int pr = prev_of(i);
    if (pr >= 0) chain_edge[ui] = g.add_edge(i, pr, inf);
    const int own = order.stream_index(i);
    for (int t = 0; t < k; ++t) {
      if (t == own) continue;
      const int32_t c = order.clock(i, t);
      if (c < 0) continue;
      const size_t it = ui * uk + static_cast<size_t>(t);
      if (pr >= 0 && order.clock(pr, t) == c) {
        origin[it] = origin[static_cast<size_t>(pr) * uk + static_cast<size_t>(t)];
      } else {
        origin[it] = i;
        cross[it] = g.add_edge(i, at[static_cast<size_t>(t)][static_cast<size_t>(c)], inf);
      }
    }
  }

  // A feasible start, greedy: each compute in turn sends its bytes to the latest frees ordered
  // before it that have capacity left, on its own stream first (along the stream), then on the
  // others (down its stream to the step with the edge to that stream, across, down that stream).
  // Flow on stream edges is summed per stream at the end: +amount where a path segment starts, -
  // where it ends, the edge from position q carrying the suffix sum from q up.
  int64_t start_flow = 0;
  if (greedy_start) {
    std::vector<int64_t> left(static_cast<size_t>(n), 0);
    for (int i = 0; i < n; ++i)
      left[static_cast<size_t>(i)] = std::max<int64_t>(-w[static_cast<size_t>(i)], 0);
    // Per stream, union-find over positions + 1: find(q + 1) - 1 is the largest position <= q of a
    // free with capacity left (-1: none).
    std::vector<std::vector<int>> up(uk);
    for (size_t t = 0; t < uk; ++t) {
      up[t].resize(at[t].size() + 1);
      up[t][0] = 0;
      for (size_t q = 0; q < at[t].size(); ++q)
        up[t][q + 1] =
            left[static_cast<size_t>(at[t][q])] > 0 ? static_cast<int>(q + 1) : static_cast<int>(q);
    }
    auto find = [&](size_t t, int x) {
      std::vector<int>& u = up[t];
      int r = x;
      while (u[static_cast<size_t>(r)] != r) r = u[static_cast<size_t>(r)];
      while (u[static_cast<size_t>(x)] != r) {
        const int nx = u[static_cast<size_t>(x)];
        u[static_cast<size_t>(x)] = r;
        x = nx;
      }
      return r;
    };
    std::vector<std::vector<int64_t>> diff(uk);
    for (size_t t = 0; t < uk; ++t) diff[t].assign(at[t].size(), 0);
    for (int c = 0; c < n; ++c) {
      int64_t need = w[static_cast<size_t>(c)];
      if (need <= 0) continue;
      const int own = order.stream_index(c);
      for (int s = 0; s < k && need > 0; ++s) {
        const int t = s == 0 ? own : (s <= own ? s - 1 : s);  // own stream first, then the others
        const int32_t lim = order.clock(c, t);
        if (lim < 0) continue;
        const int x = t == own ? c : origin[static_cast<size_t>(c) * uk + static_cast<size_t>(t)];
        while (need > 0) {
          const int q1 = find(static_cast<size_t>(t), lim + 1);
          if (q1 == 0) break;
          const int f = at[static_cast<size_t>(t)][static_cast<size_t>(q1) - 1];
          int64_t& cap = left[static_cast<size_t>(f)];
          const int64_t amount = std::min(need, cap);
          g.push(src_edge[static_cast<size_t>(c)], amount);
          g.push(sink_edge[static_cast<size_t>(f)], amount);
          if (t == own) {
            diff[static_cast<size_t>(own)][static_cast<size_t>(order.position(c))] += amount;
            diff[static_cast<size_t>(own)][static_cast<size_t>(order.position(f))] -= amount;
          } else {
            diff[static_cast<size_t>(own)][static_cast<size_t>(order.position(c))] += amount;
            diff[static_cast<size_t>(own)][static_cast<size_t>(order.position(x))] -= amount;
            g.push(cross[static_cast<size_t>(x) * uk + static_cast<size_t>(t)], amount);
            diff[static_cast<size_t>(t)][static_cast<size_t>(lim)] += amount;
            diff[static_cast<size_t>(t)][static_cast<size_t>(order.position(f))] -= amount;
          }
          start_flow += amount;
          need -= amount;
          cap -= amount;
          if (cap == 0) up[static_cast<size_t>(t)][static_cast<size_t>(q1)] = q1 - 1;
        }
      }
    }
    for (size_t t = 0; t < uk; ++t) {
      int64_t acc = 0;
      for (size_t q = at[t].size(); q-- > 0;) {
        acc += diff[t][q];
        if (acc > 0) g.push(chain_edge[static_cast<size_t>(at[t][q])], acc);
      }
    }
  }
  const int64_t cut = g.run(src, sink);
  const std::vector<uint8_t> side = g.source_side(src);
  WorstCase out;
  int64_t weight = 0;
  for (int i = 0; i < n; ++i) {
    if (side[static_cast<size_t>(i)]) {
      out.ideal.push_back(i);
      weight += w[static_cast<size_t>(i)];
    }
  }
  // Max-flow min-cut: the source side's weight is the positive total less the whole flow.
  if (weight != positive - start_flow - cut)
    throw Error("internal error: worst_case_memory's minimum cut (" + std::to_string(cut) +
                ") does not match the " + "weight of its source side (" + std::to_string(weight) +
                " of " + std::to_string(positive) + ")");
  // Live values: allocations in the ideal whose node's next event on this memory is not in it.
  auto event = [&](int i) {
    const Step::Kind k = plan.steps[static_cast<size_t>(i)].kind;
    return tier ? k == Step::Kind::offload || k == Step::Kind::drop : device_event(k);
  };
  std::vector<int64_t> next(static_cast<size_t>(n), -1), seen(static_cast<size_t>(p.size()), -1);
  for (int i = n - 1; i >= 0; --i) {
    if (!event(i)) continue;
    const NodeId v = plan.steps[static_cast<size_t>(i)].node;
    next[static_cast<size_t>(i)] = seen[static_cast<size_t>(v)];
    seen[static_cast<size_t>(v)] = i;
  }
  for (int64_t i : out.ideal) {
    const Step::Kind k = plan.steps[static_cast<size_t>(i)].kind;
    const bool alloc =
        tier ? k == Step::Kind::offload : k == Step::Kind::compute || k == Step::Kind::fetch;
    if (!alloc) continue;
    const int64_t nx = next[static_cast<size_t>(i)];
    if (nx < 0 || !side[static_cast<size_t>(nx)]) out.live.push_back(i);
  }
  out.peak_bytes = (tier ? 0 : resident_bytes(p)) + std::max<int64_t>(weight, 0);
  return out;
}

}  // namespace

WorstCase worst_case_memory(const Problem& p, const Plan& plan, bool greedy_start) {
  return worst_case_on(p, plan, greedy_start, /*tier=*/false);
}

WorstCase worst_case_tier_memory(const Problem& p, const Plan& plan, bool greedy_start) {
  return worst_case_on(p, plan, greedy_start, /*tier=*/true);
}

double makespan(const Problem& p, const Plan& plan, const std::vector<double>* cost) {
  check_structure(plan);
  check_nodes(p, plan);
  if (cost && cost->size() != p.nodes.size()) {
    throw Error("makespan: " + std::to_string(cost->size()) + " costs given for a graph of " +
                std::to_string(p.size()) + " nodes");
  }
  int k = 0;
  const std::vector<int32_t> st = compact_streams(plan, &k);
  std::vector<double> free_at(static_cast<size_t>(k), 0.0), finish(plan.steps.size(), 0.0);
  double end = 0.0;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    double start = free_at[static_cast<size_t>(st[i])];
    for (int64_t a : s.after) start = std::max(start, finish[static_cast<size_t>(a)]);
    double d = 0.0;
    if (s.kind == Step::Kind::compute) {
      d = cost ? (*cost)[static_cast<size_t>(s.node)] : p.nodes[static_cast<size_t>(s.node)].cost;
    } else if (s.kind == Step::Kind::offload || s.kind == Step::Kind::fetch) {
      const bool out = s.kind == Step::Kind::offload;
      const double bw = out ? p.bandwidth.out : p.bandwidth.in;
      if (!(bw > 0)) {
        throw Error("step " + std::to_string(i) + " (" + kind_name(s.kind) + " " +
                    node_str(s.node) + "): no " + (out ? "out" : "in") +
                    " bandwidth to time the copy (the graph's \"bandwidth\", or lethe-plan "
                    "--bandwidth OUT[,IN])");
      }
      d = static_cast<double>(p.nodes[static_cast<size_t>(s.node)].bytes) / bw;
    }
    finish[i] = start + d;
    free_at[static_cast<size_t>(st[i])] = finish[i];
    end = std::max(end, finish[i]);
  }
  return end;
}

SimResult simulate_streams(const Problem& p, const Plan& plan) {
  SimResult r;
  r.streams = std::max(stream_count(plan), 1);
  r.peak_bytes = resident_bytes(p);
  const int n = p.size();
  const int64_t steps = static_cast<int64_t>(plan.steps.size());
  auto fail = [&](int64_t i, std::string msg) {
    r.valid = false;
    r.first_bad_step = i;
    r.message = "step " + std::to_string(i) + ": " + std::move(msg);
  };
  if (const StructureError e = stream_structure_error(plan); !e.message.empty()) {
    r.valid = false;
    r.first_bad_step = e.step;
    r.message = e.message;
    return r;
  }
  bool nodes_ok = true;
  for (const Step& s : plan.steps) nodes_ok = nodes_ok && s.node >= 0 && s.node < n;
  const StepOrder order(plan);
  // The rules in step order (the order of the array is one allowed order). Along the way, the
  // events of one node must be a chain of P (else two orders put them differently and one of them
  // breaks the compute/free alternation), and each read of a value must be ordered after the
  // compute that made it and before the free that ends it (else some order reads it while absent).
  std::vector<uint8_t> in_mem(static_cast<size_t>(n), 0);
  std::vector<int64_t> last(static_cast<size_t>(n),
                            -1);  // the node's latest compute/free step so far
  std::vector<std::vector<int64_t>> readers(
      static_cast<size_t>(n));  // computes reading its current value
  for (const Node& v : p.nodes) in_mem[static_cast<size_t>(v.id)] = v.resident ? 1 : 0;
  // The second tier: the offload step of each node's current tier copy (-1: none), the node's
  // latest offload/drop, and the fetches that read the current copy.
  std::vector<int64_t> copy_of(static_cast<size_t>(n), -1), tier_last(static_cast<size_t>(n), -1);
  std::vector<std::vector<int64_t>> fetches(static_cast<size_t>(n));
  for (int64_t i = 0; i < steps && r.valid; ++i) {
    const Step& s = plan.steps[static_cast<size_t>(i)];
    const NodeId v = s.node;
    if (v < 0 || v >= n) {
      fail(i, node_str(v) + " does not exist (the graph has " + std::to_string(n) + " nodes)");
      break;
    }
    const Node& node = p.nodes[static_cast<size_t>(v)];
    const size_t uv = static_cast<size_t>(v);
    if (s.is_copy()) {
      const std::string rule = s.kind == Step::Kind::offload ? "rule 5: offload "
                               : s.kind == Step::Kind::fetch ? "rule 6: fetch "
                                                             : "rule 7: drop ";
      const std::string what = rule + node_str(v);
      if (plan.host_budget_bytes < 0) {
        fail(i,
             what + ": the plan has no second tier (no \"host_budget_bytes\"), so it may not copy");
        break;
      }
      if (node.resident) {
        fail(i, what + ", which is resident (it never leaves the device)");
        break;
      }
      if (s.kind == Step::Kind::offload) {
        if (!in_mem[uv]) {
          fail(i, what + ", which is not on the device (computed or fetched)");
          break;
        }
        if (!order.before(last[uv], i)) {
          fail(i, what + " can run before " + step_str(plan, last[uv]) +
                      " (no wait orders them), while " + node_str(v) + " is not on the device");
          break;
        }
        if (copy_of[uv] >= 0) {
          fail(i, what + ", which already has a tier copy (" + step_str(plan, copy_of[uv]) +
                      "); drop it first");
          break;
        }
        if (tier_last[uv] >= 0 && !order.before(tier_last[uv], i)) {
          fail(i, what + " can run before " + step_str(plan, tier_last[uv]) +
                      " (no wait orders them), while the old tier copy of " + node_str(v) +
                      " is still there");
          break;
        }
        readers[uv].push_back(i);  // the copy reads the device value: its free waits for it
        copy_of[uv] = i;
        fetches[uv].clear();
      } else if (s.kind == Step::Kind::fetch) {
        if (copy_of[uv] < 0) {
          fail(i, what + ", which has no tier copy (no offload of it before, or dropped since)");
          break;
        }
        if (!order.before(copy_of[uv], i)) {
          fail(i, what + " can run before " + step_str(plan, copy_of[uv]) +
                      " finishes (no wait orders them), and it reads that copy");
          break;
        }
        if (in_mem[uv]) {
          fail(i, what + ", which is already on the device (free it first)");
          break;
        }
        if (last[uv] >= 0 && !order.before(last[uv], i)) {
          fail(i, what + " can run before " + step_str(plan, last[uv]) +
                      " (no wait orders them), while " + node_str(v) + " is still on the device");
          break;
        }
        in_mem[uv] = 1;
        readers[uv].clear();
        fetches[uv].push_back(i);
        last[uv] = i;
      } else {
        if (copy_of[uv] < 0) {
          fail(i, what + ", which has no tier copy (no offload of it before, or dropped since)");
          break;
        }
        if (!order.before(copy_of[uv], i)) {
          fail(i, what + " can run before " + step_str(plan, copy_of[uv]) +
                      " finishes (no wait orders them), and that copy is what it releases");
          break;
        }
        for (int64_t f : fetches[uv]) {
          if (!order.before(f, i)) {
            fail(i, what + " can run before " + step_str(plan, f) +
                        " reads the tier copy (no wait orders them)");
            break;
          }
        }
        if (!r.valid) break;
        copy_of[uv] = -1;
        fetches[uv].clear();
        tier_last[uv] = i;
      }
      continue;
    }
    if (s.kind == Step::Kind::compute) {
      if (node.resident) {
        fail(i, "rule 2: compute " + node_str(v) + ", which is resident (never computed)");
        break;
      }
      if (in_mem[uv]) {
        fail(i, "rule 2: compute " + node_str(v) + ", which is already in memory");
        break;
      }
      if (last[uv] >= 0 && !order.before(last[uv], i)) {
        fail(i, "rule 2: compute " + node_str(v) + " can run before " + step_str(plan, last[uv]) +
                    " (no wait orders them), while " + node_str(v) + " is still in memory");
        break;
      }
      for (NodeId u : node.inputs) {
        const size_t uu = static_cast<size_t>(u);
        if (!in_mem[uu]) {
          fail(i, "rule 2: compute " + node_str(v) + " whose input " + node_str(u) +
                      " is not in memory");
          break;
        }
        if (p.nodes[uu].resident) continue;
        if (!order.before(last[uu], i)) {
          fail(i, "rule 2: compute " + node_str(v) + " can run before " + step_str(plan, last[uu]) +
                      " (no wait orders them), while its input " + node_str(u) +
                      " is not in memory");
          break;
        }
        readers[uu].push_back(i);
      }
      if (!r.valid) break;
      in_mem[uv] = 1;
      readers[uv].clear();
      r.cost += node.cost;
      ++r.compute_steps;
    } else {
      if (!in_mem[uv]) {
        fail(i, "rule 3: free " + node_str(v) + ", which is not in memory");
        break;
      }
      if (node.resident) {
        fail(i, "rule 3: free " + node_str(v) + ", which is resident");
        break;
      }
      if (!order.before(last[uv], i)) {
        fail(i, "rule 3: free " + node_str(v) + " can run before " + step_str(plan, last[uv]) +
                    " (no wait orders them), while " + node_str(v) + " is not in memory");
        break;
      }
      for (int64_t reader : readers[uv]) {
        if (!order.before(reader, i)) {
          fail(i, "rule 3: free " + node_str(v) + " can run before " + step_str(plan, reader) +
                      " reads it (no wait orders them), and that step needs " + node_str(v) +
                      " in memory");
          break;
        }
      }
      if (!r.valid) break;
      in_mem[uv] = 0;
      readers[uv].clear();
    }
    last[uv] = i;
  }
  if (r.valid) {
    for (NodeId o : p.outputs) {
      if (o < 0 || o >= n || !in_mem[static_cast<size_t>(o)]) {
        fail(steps, "rule 4: output " + node_str(o) + " is not in memory at the end");
        break;
      }
    }
  }
  if (!nodes_ok) return r;
  // Cost and makespan cover every step (an invalid plan still has a well-defined order).
  r.cost = 0.0;
  r.compute_steps = 0;
  for (const Step& s : plan.steps) {
    if (s.kind != Step::Kind::compute) continue;
    r.cost += p.nodes[static_cast<size_t>(s.node)].cost;
    ++r.compute_steps;
  }
  const bool copies = has_copies(plan);
  try {
    r.makespan = makespan(p, plan);
  } catch (const Error&) {
    if (!copies) throw;
    r.makespan = -1.0;  // copies without bandwidths: no predicted time
  }
  const WorstCase wc = worst_case_memory(p, plan);
  r.peak_bytes = wc.peak_bytes;
  const bool any_alloc = std::any_of(plan.steps.begin(), plan.steps.end(), [](const Step& s) {
    return s.kind == Step::Kind::compute || s.kind == Step::Kind::fetch;
  });
  std::optional<WorstCase> tier;
  if (copies) {
    tier = worst_case_tier_memory(p, plan);
    r.tier_peak_bytes = tier->peak_bytes;
  }
  // Over the budget (a plan without computes is checked at no step, as in the serial rules).
  if (r.valid && wc.peak_bytes > plan.budget_bytes && any_alloc) {
    // The worst moment ends at a compute (a free at the end only lowers it): name the last one.
    int64_t at = -1;
    for (int64_t i : wc.ideal) {
      const Step::Kind k = plan.steps[static_cast<size_t>(i)].kind;
      if (k == Step::Kind::compute || k == Step::Kind::fetch) at = i;
    }
    // None: the resident values alone are over the budget, and any first compute brings memory
    // there.
    for (int64_t i = 0; at < 0 && i < steps; ++i) {
      if (plan.steps[static_cast<size_t>(i)].kind == Step::Kind::compute) at = i;
    }
    std::string msg =
        std::string("rule 2: ") + kind_name(plan.steps[static_cast<size_t>(at)].kind) + " " +
        node_str(plan.steps[static_cast<size_t>(at)].node) + " can bring memory to " +
        std::to_string(wc.peak_bytes) + " bytes, over the budget of " +
        std::to_string(plan.budget_bytes) +
        (wc.live.empty()
             ? ": the resident values alone are " + std::to_string(resident_bytes(p)) + " bytes"
             : ": in some order these steps hold memory at once:");
    constexpr size_t kShown = 12;
    for (size_t k = 0; k < wc.live.size() && k < kShown; ++k) {
      const int64_t j = wc.live[k];
      msg += (k ? ", " : " ") + std::to_string(j) + " (" +
             node_str(plan.steps[static_cast<size_t>(j)].node) + ", " +
             std::to_string(
                 p.nodes[static_cast<size_t>(plan.steps[static_cast<size_t>(j)].node)].bytes) +
             " bytes)";
    }
    if (wc.live.size() > kShown) msg += " and " + std::to_string(wc.live.size() - kShown) + " more";
    fail(at, std::move(msg));
  }
  if (r.valid && tier && tier->peak_bytes > plan.host_budget_bytes) {
    // Name the last offload of the worst moment (there is one: the tier starts empty).
    int64_t at = -1;
    for (int64_t i : tier->ideal)
      if (plan.steps[static_cast<size_t>(i)].kind == Step::Kind::offload) at = i;
    std::string msg = "rule 8: offload " + node_str(plan.steps[static_cast<size_t>(at)].node) +
                      " can bring the second tier to " + std::to_string(tier->peak_bytes) +
                      " bytes, over the host budget of " + std::to_string(plan.host_budget_bytes) +
                      ": in some order these copies are held at once:";
    constexpr size_t kShown = 12;
    for (size_t k = 0; k < tier->live.size() && k < kShown; ++k) {
      const int64_t j = tier->live[k];
      const NodeId v = plan.steps[static_cast<size_t>(j)].node;
      msg += (k ? ", " : " ") + std::to_string(j) + " (" + node_str(v) + ", " +
             std::to_string(p.nodes[static_cast<size_t>(v)].bytes) + " bytes)";
    }
    if (tier->live.size() > kShown)
      msg += " and " + std::to_string(tier->live.size() - kShown) + " more";
    fail(at, std::move(msg));
  }
  return r;
}

}  // namespace lethe::sched
