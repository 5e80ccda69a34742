#include "scheduler/stream_assign.h"

#include <algorithm>
#include <string>

#include "scheduler/planner.h"
#include "scheduler/streams.h"

namespace lethe::sched {

namespace {

// The waits each step of a serial plan needs in any order (indices of earlier steps), before
// streams are known.
std::vector<std::vector<int64_t>> serial_waits(const Problem& p, const Plan& plan,
                                               const StreamAssignOptions& o) {
  const size_t n = p.nodes.size(), m = plan.steps.size();
  std::vector<std::vector<int64_t>> waits(m);
  std::vector<int64_t> live(n, -1);       // per node: the compute step of its live instance
  std::vector<int64_t> last_free(n, -1);  // per node: the step that dropped its last instance
  std::vector<std::vector<int64_t>> readers(n);  // per node: computes that read the live instance
  int64_t last_exclusive = -1;
  int64_t last_free_step = -1;  // keep_serial_peak: the latest free so far
  for (size_t i = 0; i < m; ++i) {
    const Step& s = plan.steps[i];
    const size_t v = static_cast<size_t>(s.node);
    std::vector<int64_t>& w = waits[i];
    if (s.kind == Step::Kind::compute) {
      for (NodeId x : p.nodes[v].inputs) {
        const size_t xi = static_cast<size_t>(x);
        if (p.nodes[xi].resident) continue;
        if (live[xi] < 0)
          throw Error("assign_streams: step " + std::to_string(i) + " computes node " +
                      std::to_string(v) + " whose input " + std::to_string(x) +
                      " is not in memory: the serial plan is not valid");
        w.push_back(live[xi]);
        readers[xi].push_back(static_cast<int64_t>(i));
      }
      if (last_free[v] >= 0) w.push_back(last_free[v]);
      if (o.keep_serial_peak && last_free_step >= 0) w.push_back(last_free_step);
      if (!o.exclusive.empty() && o.exclusive[v]) {
        if (last_exclusive >= 0) w.push_back(last_exclusive);
        last_exclusive = static_cast<int64_t>(i);
      }
      live[v] = static_cast<int64_t>(i);
      readers[v].clear();
    } else {
      if (live[v] < 0)
        throw Error("assign_streams: step " + std::to_string(i) + " frees node " +
                    std::to_string(v) + ", which is not in memory: the serial plan is not valid");
      w.push_back(live[v]);
      w.insert(w.end(), readers[v].begin(), readers[v].end());
      readers[v].clear();
      live[v] = -1;
      last_free[v] = static_cast<int64_t>(i);
      if (o.keep_serial_peak) {
        if (last_free_step >= 0) w.push_back(last_free_step);
        last_free_step = static_cast<int64_t>(i);
      }
    }
  }
  if (o.layout) {
    // Memory: a buffer may take bytes of an earlier one only after that one's free.
    struct Buf {
      int64_t lo, hi, compute, free;
    };
    std::vector<Buf> freed;  // buffers whose free came before the current step, in free order
    std::vector<int64_t> open(n, -1);
    std::vector<Buf> bufs(m, Buf{0, 0, -1, -1});
    for (size_t i = 0; i < m; ++i) {
      const Step& s = plan.steps[i];
      const size_t v = static_cast<size_t>(s.node);
      if (s.kind == Step::Kind::free) {
        const int64_t c = open[v];
        if (c >= 0 && bufs[static_cast<size_t>(c)].hi > bufs[static_cast<size_t>(c)].lo) {
          bufs[static_cast<size_t>(c)].free = static_cast<int64_t>(i);
          freed.push_back(bufs[static_cast<size_t>(c)]);
        }
        open[v] = -1;
        continue;
      }
      const int64_t off = o.layout->offsets[i];
      if (off < 0) continue;
      const int64_t size =
          (std::max<int64_t>(p.nodes[v].bytes, 1) + o.alignment - 1) / o.alignment * o.alignment;
      bufs[i] = Buf{off, off + size, static_cast<int64_t>(i), -1};
      open[v] = static_cast<int64_t>(i);
      for (const Buf& b : freed)
        if (b.lo < off + size && off < b.hi) waits[i].push_back(b.free);
    }
  }
  for (auto& w : waits) {
    std::sort(w.begin(), w.end());
    w.erase(std::unique(w.begin(), w.end()), w.end());
  }
  return waits;
}

}  // namespace

Plan assign_streams(const Problem& p, const Plan& serial, const StreamAssignOptions& o) {
  if (o.streams < 1)
    throw Error("assign_streams: streams must be at least 1, got " + std::to_string(o.streams));
  if (has_streams(serial)) throw Error("assign_streams: the plan already has streams");
  const size_t n = p.nodes.size(), m = serial.steps.size();
  if (!o.cost.empty() && o.cost.size() != n)
    throw Error("assign_streams: " + std::to_string(o.cost.size()) + " costs for " +
                std::to_string(n) + " nodes");
  if (!o.exclusive.empty() && o.exclusive.size() != n)
    throw Error("assign_streams: " + std::to_string(o.exclusive.size()) + " exclusive flags for " +
                std::to_string(n) + " nodes");
  if (!o.dedicated.empty() && o.dedicated.size() != n)
    throw Error("assign_streams: " + std::to_string(o.dedicated.size()) + " dedicated flags for " +
                std::to_string(n) + " nodes");
  const bool dedicated =
      std::find(o.dedicated.begin(), o.dedicated.end(), uint8_t{1}) != o.dedicated.end();
  if (dedicated && o.streams < 2)
    throw Error("assign_streams: a dedicated stream needs at least 2 streams, got " +
                std::to_string(o.streams));
  if (o.layout && o.layout->offsets.size() != m)
    throw Error("assign_streams: a layout of " + std::to_string(o.layout->offsets.size()) +
                " steps for a plan of " + std::to_string(m));
  for (const Step& s : serial.steps)
    if (s.node < 0 || static_cast<size_t>(s.node) >= n)
      throw Error("assign_streams: the plan names node " + std::to_string(s.node) +
                  ", which does not exist");
  Plan out = serial;
  if (o.streams == 1) return out;
  const std::vector<std::vector<int64_t>> waits = serial_waits(p, serial, o);
  const int k = o.streams;
  std::vector<double> free_at(static_cast<size_t>(k), 0.0), finish(m, 0.0);
  std::vector<int> stream(m, 0);
  for (size_t i = 0; i < m; ++i) {
    const Step& s = serial.steps[i];
    double ready = 0.0;
    int last_stream = -1;  // the stream of the wait that finishes last
    double last = -1.0;
    for (int64_t w : waits[i]) {
      const double f = finish[static_cast<size_t>(w)];
      if (f > last) {
        last = f;
        last_stream = stream[static_cast<size_t>(w)];
      }
      ready = std::max(ready, f);
    }
    // Computes of other nodes share the streams before a dedicated last one.
    const bool on_last =
        dedicated && s.kind == Step::Kind::compute && o.dedicated[static_cast<size_t>(s.node)];
    const int open = dedicated && s.kind == Step::Kind::compute && !on_last ? k - 1 : k;
    int chosen = on_last ? k - 1 : last_stream >= 0 && last_stream < open ? last_stream : 0;
    // A free that waits for a step of the dedicated stream goes there: the other streams never wait
    // for it (its steps' times depend on other processes, not on the costs).
    if (dedicated && s.kind == Step::Kind::free)
      for (int64_t w : waits[i])
        if (stream[static_cast<size_t>(w)] == k - 1) chosen = k - 1;
    const double d = s.kind == Step::Kind::compute
                         ? (o.cost.empty() ? p.nodes[static_cast<size_t>(s.node)].cost
                                           : o.cost[static_cast<size_t>(s.node)])
                         : 0.0;
    if (s.kind == Step::Kind::compute && !on_last) {
      double best = std::max(ready, free_at[static_cast<size_t>(chosen)]);
      for (int t = 0; t < open; ++t) {
        const double start = std::max(ready, free_at[static_cast<size_t>(t)]);
        if (start < best) {
          best = start;
          chosen = t;
        }
      }
    }
    stream[i] = chosen;
    const double start = std::max(ready, free_at[static_cast<size_t>(chosen)]);
    finish[i] = start + d;
    free_at[static_cast<size_t>(chosen)] = finish[i];
  }
  // Waits on other streams only, the latest per stream (a stream's earlier steps come before it).
  for (size_t i = 0; i < m; ++i) {
    Step& s = out.steps[i];
    s.stream = stream[i];
    s.after.clear();
    std::vector<int64_t> latest(static_cast<size_t>(k), -1);
    for (int64_t w : waits[i]) {
      const int t = stream[static_cast<size_t>(w)];
      if (t != stream[i])
        latest[static_cast<size_t>(t)] = std::max(latest[static_cast<size_t>(t)], w);
    }
    for (int64_t w : latest)
      if (w >= 0) s.after.push_back(w);
    std::sort(s.after.begin(), s.after.end());
  }
  out.streams = k;
  return out;
}

}  // namespace lethe::sched
