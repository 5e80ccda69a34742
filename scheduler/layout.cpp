#include "scheduler/layout.h"

#include <algorithm>
#include <stdexcept>

namespace lethe::sched {

Layout layout_plan(const Problem& p, const Plan& plan, int64_t alignment) {
  struct Buffer {
    int64_t size;
    int start, end;  // step interval [start, end]
    int step;        // the compute step that creates it
  };
  const int n_steps = static_cast<int>(plan.steps.size());
  std::vector<Buffer> buffers;
  std::vector<int> open(p.nodes.size(), -1);  // node -> index of its live buffer
  for (int i = 0; i < n_steps; ++i) {
    const Step& s = plan.steps[static_cast<size_t>(i)];
    const Node& node = p.nodes[static_cast<size_t>(s.node)];
    if (node.resident) continue;
    if (s.kind == Step::Kind::compute) {
      int64_t size = (std::max<int64_t>(node.bytes, 1) + alignment - 1) / alignment * alignment;
      open[static_cast<size_t>(s.node)] = static_cast<int>(buffers.size());
      buffers.push_back({size, i, n_steps, i});
    } else if (open[static_cast<size_t>(s.node)] >= 0) {
      buffers[static_cast<size_t>(open[static_cast<size_t>(s.node)])].end = i;
      open[static_cast<size_t>(s.node)] = -1;
    }
  }
  std::vector<int> order(buffers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const Buffer &x = buffers[static_cast<size_t>(a)], &y = buffers[static_cast<size_t>(b)];
    if (x.size != y.size) return x.size > y.size;
    return (x.end - x.start) > (y.end - y.start);
  });
  Layout out;
  out.offsets.assign(static_cast<size_t>(n_steps), -1);
  struct Placed {
    int64_t off, size;
    int start, end;
  };
  std::vector<Placed> placed;
  std::vector<std::pair<int64_t, int64_t>> busy;  // scratch: [off, off+size) of overlapping buffers
  for (int bi : order) {
    const Buffer& b = buffers[static_cast<size_t>(bi)];
    busy.clear();
    for (const Placed& q : placed)
      if (q.start <= b.end && b.start <= q.end) busy.emplace_back(q.off, q.off + q.size);
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (const auto& [lo, hi] : busy) {
      if (off + b.size <= lo) break;
      off = std::max(off, hi);
    }
    placed.push_back({off, b.size, b.start, b.end});
    out.offsets[static_cast<size_t>(b.step)] = off;
    out.high_water = std::max(out.high_water, off + b.size);
  }
  return out;
}

}  // namespace lethe::sched
