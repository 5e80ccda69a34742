#include "scheduler/layout.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>

#include "scheduler/streams.h"

namespace lethe::sched {

Layout layout_plan(const Problem& p, const Plan& plan, int64_t alignment, int64_t good_enough) {
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
    // A fetch allocates its buffer like a compute; an offload reads the buffer (the checker orders
    // the value's free after it, so the buffer's lifetime, up to that free, covers it); a drop
    // touches only the second tier.
    if (s.kind == Step::Kind::compute || s.kind == Step::Kind::fetch) {
      int64_t size = (std::max<int64_t>(node.bytes, 1) + alignment - 1) / alignment * alignment;
      open[static_cast<size_t>(s.node)] = static_cast<int>(buffers.size());
      buffers.push_back({size, i, n_steps, i});
    } else if (s.kind == Step::Kind::free && open[static_cast<size_t>(s.node)] >= 0) {
      buffers[static_cast<size_t>(open[static_cast<size_t>(s.node)])].end = i;
      open[static_cast<size_t>(s.node)] = -1;
    }
  }
  // The largest total of buffers live at one step: no layout goes below it.
  int64_t live_peak = 0;
  {
    std::vector<int64_t> delta(static_cast<size_t>(n_steps) + 2, 0);
    for (const Buffer& b : buffers) {
      delta[static_cast<size_t>(b.start)] += b.size;
      delta[static_cast<size_t>(b.end) + 1] -= b.size;
    }
    int64_t cur = 0;
    for (int64_t d : delta) live_peak = std::max(live_peak, cur += d);
  }
  // Two buffers may share bytes only when one is freed before the other is computed. Serial plans:
  // their step intervals are disjoint. With streams: the free is ordered before the compute by the
  // plan's waits, in every order they allow (an end of n_steps is "never freed").
  std::optional<StepOrder> waits;
  if (has_streams(plan)) waits.emplace(plan);
  auto overlap = [&](int a_start, int a_end, int b_start, int b_end) {
    if (!waits) return a_start <= b_end && b_start <= a_end;
    return !((a_end < n_steps && may_share(*waits, a_end, b_start)) ||
             (b_end < n_steps && may_share(*waits, b_end, a_start)));
  };
  // Greedy placement in a given order: each buffer at the lowest offset where it overlaps (in
  // time) no buffer placed before it.
  // A try stops once its high-water mark reaches `give_up` (it cannot beat the best one then).
  auto place = [&](const std::vector<int>& order, bool best_fit, int64_t give_up) {
    Layout out;
    out.offsets.assign(static_cast<size_t>(n_steps), -1);
    struct Placed {
      int64_t off, size;
      int start, end;
    };
    // Kept sorted by offset, so the buffers overlapping in time come in offset order without a
    // sort (the order among equal offsets does not change either rule's answer).
    std::vector<Placed> placed;
    for (int bi : order) {
      const Buffer& b = buffers[static_cast<size_t>(bi)];
      int64_t off = 0;
      if (!best_fit) {
        for (const Placed& q : placed) {
          if (!overlap(q.start, q.end, b.start, b.end)) continue;
          if (off + b.size <= q.off) break;
          off = std::max(off, q.off + q.size);
        }
      } else {
        // The smallest gap that holds the buffer (the space above everything when none does).
        int64_t cur = 0, best_gap = -1;
        for (const Placed& q : placed) {
          if (!overlap(q.start, q.end, b.start, b.end)) continue;
          if (q.off - cur >= b.size && (best_gap < 0 || q.off - cur < best_gap)) {
            best_gap = q.off - cur;
            off = cur;
          }
          cur = std::max(cur, q.off + q.size);
        }
        if (best_gap < 0) off = cur;
      }
      const auto at = std::upper_bound(placed.begin(), placed.end(), off,
                                       [](int64_t v, const Placed& q) { return v < q.off; });
      placed.insert(at, {off, b.size, b.start, b.end});
      out.offsets[static_cast<size_t>(b.step)] = off;
      out.high_water = std::max(out.high_water, off + b.size);
      if (out.high_water >= give_up) break;
    }
    return out;
  };
  auto dur = [&](int i) {
    return buffers[static_cast<size_t>(i)].end - buffers[static_cast<size_t>(i)].start;
  };
  auto size = [&](int i) { return buffers[static_cast<size_t>(i)].size; };
  // Orders, tried until one reaches the live peak: by size (then lifetime), by size x lifetime, by
  // lifetime (then size), and in allocation order (what an online first-fit allocator would do).
  using Less = std::function<bool(int, int)>;
  const Less orders[] = {
      [&](int a, int b) { return size(a) != size(b) ? size(a) > size(b) : dur(a) > dur(b); },
      [&](int a, int b) {
        const double x = double(size(a)) * (dur(a) + 1), y = double(size(b)) * (dur(b) + 1);
        return x != y ? x > y : size(a) > size(b);
      },
      [&](int a, int b) { return dur(a) != dur(b) ? dur(a) > dur(b) : size(a) > size(b); },
      [&](int a, int b) { return a < b; },
  };
  Layout best;
  bool have = false;
  for (const bool best_fit : {false, true}) {
    for (const Less& less : orders) {
      std::vector<int> order(buffers.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
      std::stable_sort(order.begin(), order.end(), less);
      Layout l = place(order, best_fit, have ? best.high_water : INT64_MAX);
      if (!have || l.high_water < best.high_water) {
        best = std::move(l);
        have = true;
      }
      if (best.high_water <= std::max(live_peak, good_enough)) break;
    }
    if (best.high_water <= std::max(live_peak, good_enough)) break;
  }
  Layout& out = best;
  return out;
}

}  // namespace lethe::sched
