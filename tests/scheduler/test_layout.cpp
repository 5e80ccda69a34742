// The static layout of a plan: no two buffers live at the same time share bytes, every buffer gets
// an aligned offset, and the high-water mark is never below the most bytes live at once.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/layout.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"

using namespace lethe::sched;

namespace {

struct Buf {
  int64_t off, size;
  int start, end;
};

// The buffers of `plan` as layout_plan defines them, placed at the layout's offsets.
std::vector<Buf> buffers_of(const Problem& p, const Plan& plan, const Layout& l, int64_t align) {
  std::vector<Buf> out;
  std::vector<int> open(p.nodes.size(), -1);
  const int n = static_cast<int>(plan.steps.size());
  for (int i = 0; i < n; ++i) {
    const Step& s = plan.steps[static_cast<size_t>(i)];
    if (p.nodes[static_cast<size_t>(s.node)].resident) continue;
    if (s.kind == Step::Kind::compute) {
      const int64_t size =
          (std::max<int64_t>(p.nodes[static_cast<size_t>(s.node)].bytes, 1) + align - 1) / align *
          align;
      open[static_cast<size_t>(s.node)] = static_cast<int>(out.size());
      out.push_back({l.offsets[static_cast<size_t>(i)], size, i, n});
    } else if (open[static_cast<size_t>(s.node)] >= 0) {
      out[static_cast<size_t>(open[static_cast<size_t>(s.node)])].end = i;
      open[static_cast<size_t>(s.node)] = -1;
    }
  }
  return out;
}

}  // namespace

TEST_CASE(
    "layout: buffers live at the same time never overlap, offsets aligned, high water >= live "
    "bytes") {
  int checked = 0;
  for (const std::string& fam : generator_families()) {
    for (uint64_t seed : {1, 2, 3}) {
      const Problem p = generate(fam, 30, seed);
      for (double f : {1.0, 0.5, 0.25}) {
        const int64_t b = fraction_budget(f, p);
        const PlannerEntry& e = find_planner("lethe");
        PlannerInfo info;
        auto plan = e.fn(p, b, {}, &info);
        if (!plan) continue;
        for (const int64_t good_enough : {int64_t{0}, int64_t{1} << 40}) {
          const Layout l = layout_plan(p, *plan, 64, good_enough);
          const std::vector<Buf> bufs = buffers_of(p, *plan, l, 64);
          CAPTURE(p.name);
          CAPTURE(f);
          int64_t live_peak = 0;
          for (const Buf& x : bufs) {
            CHECK(x.off >= 0);
            CHECK(x.off % 64 == 0);
            CHECK(x.off + x.size <= l.high_water);
            int64_t live = 0;
            for (const Buf& y : bufs) {
              if (y.start <= x.start && x.start <= y.end) live += y.size;
              if (&x == &y || !(x.start <= y.end && y.start <= x.end)) continue;
              const bool disjoint = x.off + x.size <= y.off || y.off + y.size <= x.off;
              CHECK_MESSAGE(disjoint,
                            "buffers of steps " << x.start << " and " << y.start << " overlap");
            }
            live_peak = std::max(live_peak, live);
          }
          CHECK(l.high_water >= live_peak);
          ++checked;
        }
      }
    }
  }
  CHECK(checked > 50);
}
