// Streams for serial plans (scheduler/stream_assign.h): every planner's plans on every generator
// family, assigned to 2 and 3 streams, stay valid in every order the waits allow; with the serial
// layout's memory waits that layout is safe in every order and the worst-case peak stays within it;
// the predicted time never exceeds the serial plan's, and independent branches do run in parallel.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/layout.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "scheduler/stream_assign.h"
#include "scheduler/streams.h"
#include "test_helpers.h"

using namespace lethe::sched;
using lethe::sched::test::contains;
using lethe::sched::test::error_of;
using lethe::sched::test::node;

namespace {

constexpr int64_t kAlign = 64;
constexpr int64_t kHuge = int64_t{1} << 50;

int64_t aligned(int64_t b) {
  return (std::max<int64_t>(b, 1) + kAlign - 1) / kAlign * kAlign;
}

// Every pair of buffers of `plan` whose bytes overlap in `l` is ordered by the waits: the one freed
// first is freed before the other is computed (layout safety in every order).
bool layout_safe(const Problem& p, const Plan& plan, const Layout& l) {
  const StepOrder order(plan);
  struct Buf {
    int64_t lo, hi, compute, free;
  };
  std::vector<Buf> bufs;
  std::vector<int64_t> open(p.nodes.size(), -1);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    const size_t v = static_cast<size_t>(s.node);
    if (s.kind == Step::Kind::compute) {
      open[v] = static_cast<int64_t>(bufs.size());
      bufs.push_back(
          {l.offsets[i], l.offsets[i] + aligned(p.nodes[v].bytes), static_cast<int64_t>(i), kHuge});
    } else if (open[v] >= 0) {
      bufs[static_cast<size_t>(open[v])].free = static_cast<int64_t>(i);
      open[v] = -1;
    }
  }
  for (size_t a = 0; a < bufs.size(); ++a)
    for (size_t b = a + 1; b < bufs.size(); ++b) {
      if (!(bufs[a].lo < bufs[b].hi && bufs[b].lo < bufs[a].hi)) continue;
      const bool a_first = bufs[a].free != kHuge && order.before(bufs[a].free, bufs[b].compute);
      const bool b_first = bufs[b].free != kHuge && order.before(bufs[b].free, bufs[a].compute);
      if (!a_first && !b_first) return false;
    }
  return true;
}

}  // namespace

TEST_CASE("stream_assign: every planner's plans stay valid on 2 and 3 streams, and no slower") {
  int checked = 0, faster = 0;
  for (const std::string& fam : generator_families()) {
    for (uint64_t seed : {1, 2}) {
      const Problem p = generate(fam, 6 + static_cast<int>(seed) * 4, seed, 3);
      for (const PlannerEntry& e : planners()) {
        if (!e.fn || e.name == "checkmate") continue;
        for (const char* f : {"1", "0.5", "0.25"}) {
          const std::optional<PlanResult> pr = try_plan(p, parse_budget(f, p), e.name);
          if (!pr) continue;
          CAPTURE(p.name);
          CAPTURE(e.name);
          CAPTURE(f);
          const Plan& serial = pr->plan;
          const Layout l = layout_plan(p, serial, kAlign);
          const double serial_time = makespan(p, serial);
          for (int k : {2, 3}) {
            StreamAssignOptions o;
            o.streams = k;
            o.layout = &l;
            o.alignment = kAlign;
            Plan par = assign_streams(p, serial, o);
            CHECK(stream_count(par) == k);
            par.budget_bytes = resident_bytes(p) + l.high_water;
            const SimResult r = simulate_streams(p, par);
            CHECK_MESSAGE(r.valid, r.message);
            CHECK(worst_case_memory(p, par).peak_bytes <= resident_bytes(p) + l.high_water);
            CHECK(layout_safe(p, par, l));
            const double t = makespan(p, par);
            CHECK(t <= serial_time * (1 + 1e-12));
            faster += t < serial_time * 0.99;
            // Without the memory waits: valid in every order, and a fresh layout keeps apart what
            // may be live together.
            o.layout = nullptr;
            Plan free_par = assign_streams(p, serial, o);
            free_par.budget_bytes = kHuge;
            const SimResult r2 = simulate_streams(p, free_par);
            CHECK_MESSAGE(r2.valid, r2.message);
            CHECK(makespan(p, free_par) <= t * (1 + 1e-12));
            // Keeping the serial peak in bytes: valid at the serial plan's own budget.
            o.keep_serial_peak = true;
            Plan kept = assign_streams(p, serial, o);
            kept.budget_bytes = serial.budget_bytes;
            const SimResult r3 = simulate_streams(p, kept);
            CHECK_MESSAGE(r3.valid, r3.message);
            CHECK(worst_case_memory(p, kept).peak_bytes <= simulate(p, serial).peak_bytes);
            CHECK(makespan(p, kept) <= serial_time * (1 + 1e-12));
            o.keep_serial_peak = false;
            const Layout l2 = layout_plan(p, free_par, kAlign);
            CHECK(layout_safe(p, free_par, l2));
            ++checked;
          }
        }
      }
    }
  }
  MESSAGE(checked << " assignments checked, " << faster << " predicted faster than serial");
  CHECK(checked > 100);
  CHECK(faster > 0);
}

TEST_CASE("stream_assign: two independent chains run on two streams and join") {
  // 0: input (resident); 1-2 a chain, 3-4 another, 5 joins them.
  Problem p;
  p.nodes = {node(0, 100, 0, {}, true), node(1, 100, 1, {0}), node(2, 100, 1, {1}),
             node(3, 100, 1, {0}),      node(4, 100, 1, {3}), node(5, 100, 1, {2, 4})};
  p.outputs = {5};
  Plan serial;
  serial.steps = {Step::compute(1), Step::compute(2), Step::free(1),
                  Step::compute(3), Step::compute(4), Step::free(3),
                  Step::compute(5), Step::free(2),    Step::free(4)};
  StreamAssignOptions o;
  o.streams = 2;
  const Plan par = assign_streams(p, serial, o);
  CHECK(makespan(p, serial) == doctest::Approx(5));
  CHECK(makespan(p, par) == doctest::Approx(3));
  CHECK(par.steps[0].stream != par.steps[3].stream);
  CHECK(par.steps[0].stream == par.steps[1].stream);  // a chain stays on its stream
  Plan checked = par;
  checked.budget_bytes = kHuge;
  CHECK(simulate_streams(p, checked).valid);
  // The join waits for the other chain.
  CHECK(!par.steps[6].after.empty());
  // One stream: the plan itself.
  o.streams = 1;
  CHECK(assign_streams(p, serial, o).steps == serial.steps);
  // Exclusive nodes (a shared workspace): the chains' heads may no longer overlap.
  o.streams = 2;
  o.exclusive.assign(p.nodes.size(), 0);
  o.exclusive[1] = o.exclusive[3] = 1;
  const Plan excl = assign_streams(p, serial, o);
  CHECK(StepOrder(excl).before(0, 3));
}

TEST_CASE(
    "stream_assign: a dedicated node runs on the last stream, beside the chain that goes on") {
  // A backward pass: 1 -> 2 -> 3 -> 4 (compute); 5 all-reduces 2's gradient (dedicated, slow) while
  // 3 and 4 run; 6 reads both ends.
  Problem p;
  p.nodes = {node(0, 100, 0, {}, true), node(1, 100, 1, {0}), node(2, 100, 1, {1}),
             node(3, 100, 1, {2}),      node(4, 100, 1, {3}), node(5, 100, 2, {2}),
             node(6, 100, 1, {4, 5})};
  p.outputs = {6};
  Plan serial;
  serial.steps = {Step::compute(1), Step::compute(2), Step::free(1),    Step::compute(5),
                  Step::compute(3), Step::free(2),    Step::compute(4), Step::free(3),
                  Step::compute(6), Step::free(4),    Step::free(5)};
  StreamAssignOptions o;
  o.streams = 2;
  o.dedicated.assign(p.nodes.size(), 0);
  o.dedicated[5] = 1;
  const Plan par = assign_streams(p, serial, o);
  for (size_t i = 0; i < par.steps.size(); ++i) {
    const Step& st = par.steps[i];
    if (st.kind != Step::Kind::compute) continue;
    CHECK(st.stream == (st.node == 5 ? 1 : 0));
  }
  // The free of 2 waits for the all-reduce's read and goes to its stream: the chain does not wait.
  CHECK(par.steps[5].stream == 1);
  CHECK(makespan(p, serial) == doctest::Approx(7));
  CHECK(makespan(p, par) == doctest::Approx(5));
  Plan checked = par;
  checked.budget_bytes = kHuge;
  CHECK(simulate_streams(p, checked).valid);
  // Three streams: the others share the first two; the last runs only the dedicated node.
  o.streams = 3;
  for (const Step& st : assign_streams(p, serial, o).steps)
    if (st.kind == Step::Kind::compute) CHECK((st.stream == 2) == (st.node == 5));
  o.streams = 1;
  CHECK(contains(error_of([&] { assign_streams(p, serial, o); }),
                 "dedicated stream needs at least 2"));
  o.streams = 2;
  o.dedicated = {1};
  CHECK(contains(error_of([&] { assign_streams(p, serial, o); }), "1 dedicated flags for 7 nodes"));
}

TEST_CASE("stream_assign: bad input is refused with a reason") {
  Problem p;
  p.nodes = {node(0, 100, 0, {}, true), node(1, 100, 1, {0}), node(2, 100, 1, {1})};
  p.outputs = {2};
  Plan serial;
  serial.steps = {Step::compute(1), Step::compute(2)};
  StreamAssignOptions o;
  o.streams = 0;
  CHECK(contains(error_of([&] { assign_streams(p, serial, o); }), "at least 1"));
  o.streams = 2;
  o.cost = {1, 2};
  CHECK(contains(error_of([&] { assign_streams(p, serial, o); }), "2 costs for 3 nodes"));
  o.cost.clear();
  Plan bad;
  bad.steps = {Step::compute(2)};
  CHECK(contains(error_of([&] { assign_streams(p, bad, o); }), "not in memory"));
  Plan streamed = serial;
  streamed.steps[1].stream = 1;
  CHECK(contains(error_of([&] { assign_streams(p, streamed, o); }), "already has streams"));
}
