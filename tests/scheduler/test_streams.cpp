// Plans with streams (docs/plan-format.md): reading and writing them, validity and the worst-case
// peak over every order the waits allow (against brute-force enumeration of all of those orders),
// the serial path unchanged, the makespan, and layouts safe in every order.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/graph_io.h"
#include "scheduler/layout.h"
#include "scheduler/plan_builder.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "scheduler/streams.h"
#include "test_helpers.h"

using namespace lethe::sched;
using lethe::sched::test::contains;
using lethe::sched::test::error_of;
using lethe::sched::test::node;

namespace {

const std::string kData = LETHE_SCHEDULER_TEST_DATA;
constexpr int64_t kHuge = int64_t{1} << 50;

// The scheduler's own SplitMix64 (scheduler/plan_builder.h): the same cases on every platform.
bool chance(Rng& rng, int percent) {
  return rng.below(100) < percent;
}

// plan_to_string as it was before streams existed: serial plans must still be written exactly so.
std::string serial_writer(const Plan& plan) {
  using nlohmann::json;
  std::string s = "{\n  \"format\": \"remat-plan/1\",\n  \"graph\": " + json(plan.graph).dump() +
                  ",\n  \"planner\": " + json(plan.planner).dump() +
                  ",\n  \"budget_bytes\": " + json(plan.budget_bytes).dump() + ",\n  \"steps\": [";
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& st = plan.steps[i];
    s += (i % 8 == 0 ? "\n    " : " ") +
         json{{st.kind == Step::Kind::compute ? "compute" : "free", st.node}}.dump() +
         (i + 1 < plan.steps.size() ? "," : "");
  }
  s += "\n  ],\n  \"predicted\": " +
       json{{"peak_bytes", plan.predicted_peak_bytes}, {"cost", plan.predicted_cost}}.dump() +
       "\n}\n";
  return s;
}

Plan serial_copy(const Plan& plan, const std::vector<int>& order) {
  Plan out = plan;
  out.streams = 0;
  out.steps.clear();
  for (int i : order) {
    const Step& s = plan.steps[static_cast<size_t>(i)];
    out.steps.push_back(s.kind == Step::Kind::compute ? Step::compute(s.node) : Step::free(s.node));
  }
  return out;
}

// The direct predecessors of each step in P (stream order and waits) as bit masks (<= 32 steps).
std::vector<uint32_t> direct_preds(const Plan& plan) {
  std::vector<uint32_t> pred(plan.steps.size(), 0);
  std::vector<int> last(64, -1);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    if (last[static_cast<size_t>(s.stream)] >= 0)
      pred[i] |= 1u << last[static_cast<size_t>(s.stream)];
    for (int64_t a : s.after) pred[i] |= 1u << a;
    last[static_cast<size_t>(s.stream)] = static_cast<int>(i);
  }
  return pred;
}

// Transitive closure of direct_preds: below[i] = every step ordered before i.
std::vector<uint32_t> all_preds(const Plan& plan) {
  std::vector<uint32_t> d = direct_preds(plan), below(plan.steps.size(), 0);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (d[i] >> j & 1) below[i] |= below[j] | (1u << j);
    }
  }
  return below;
}

struct Brute {
  int64_t orders = 0;
  bool all_valid = true;            // simulate() at the plan's budget accepts every order
  bool all_valid_unbounded = true;  // ... at an unbounded budget
  int64_t max_sim_peak = 0;  // largest simulate() peak over the orders (meaningful when all valid)
  int64_t max_prefix = 0;    // largest resident + running byte sum over all orders and prefixes
};

// Every linear extension of P, each checked by the sequential simulate().
Brute brute_force(const Problem& p, const Plan& plan) {
  const int n = static_cast<int>(plan.steps.size());
  const std::vector<uint32_t> pred = direct_preds(plan);
  Brute b;
  const int64_t res = resident_bytes(p);
  b.max_prefix = res;
  std::vector<int> order;
  Plan bounded = serial_copy(plan, {}), unbounded = bounded;
  unbounded.budget_bytes = kHuge;
  std::function<void(uint32_t, int64_t)> rec = [&](uint32_t done, int64_t mem) {
    b.max_prefix = std::max(b.max_prefix, mem);
    if (static_cast<int>(order.size()) == n) {
      ++b.orders;
      bounded = serial_copy(plan, order);
      unbounded.steps = bounded.steps;
      const SimResult r = simulate(p, bounded), u = simulate(p, unbounded);
      b.all_valid = b.all_valid && r.valid;
      b.all_valid_unbounded = b.all_valid_unbounded && u.valid;
      b.max_sim_peak = std::max(b.max_sim_peak, u.peak_bytes);
      return;
    }
    for (int i = 0; i < n; ++i) {
      if ((done >> i & 1) || (pred[static_cast<size_t>(i)] & ~done)) continue;
      const Step& s = plan.steps[static_cast<size_t>(i)];
      const int64_t bytes = p.nodes[static_cast<size_t>(s.node)].bytes;
      order.push_back(i);
      rec(done | (1u << i), mem + (s.kind == Step::Kind::compute ? bytes : -bytes));
      order.pop_back();
    }
  };
  rec(0, res);
  return b;
}

// A small random graph: 1-2 resident nodes, then nodes with 1-2 earlier inputs.
Problem random_graph(Rng& rng) {
  Problem p;
  p.name = "random";
  const int residents = 1 + rng.below(2);
  const int m = residents + 2 + rng.below(5);
  for (int i = 0; i < m; ++i) {
    if (i < residents) {
      p.nodes.push_back(node(i, 1 + rng.below(50), 0, {}, true));
      continue;
    }
    std::vector<NodeId> in{static_cast<NodeId>(rng.below(i))};
    if (chance(rng, 50)) in.push_back(static_cast<NodeId>(rng.below(i)));
    const int64_t bytes = chance(rng, 10) ? 0 : 1 + rng.below(100);
    p.nodes.push_back(node(i, bytes, 0.25 * (1 + rng.below(8)), in));
  }
  return p;
}

// A random serial plan of at most `max_steps` steps valid under the rules but the budget (a walk of
// legal computes and frees); the graph's outputs are then some of the values in memory at its end,
// and now and then one that is not (rule 4).
Plan random_serial_plan(Problem& p, Rng& rng, int max_steps) {
  Plan plan;
  plan.graph = p.name;
  plan.budget_bytes = kHuge;
  std::vector<uint8_t> in(static_cast<size_t>(p.size()), 0);
  for (const Node& v : p.nodes) in[static_cast<size_t>(v.id)] = v.resident;
  const int len = 3 + rng.below(max_steps - 2);
  for (int k = 0; k < len; ++k) {
    std::vector<Step> legal;
    for (const Node& v : p.nodes) {
      if (v.resident) continue;
      if (in[static_cast<size_t>(v.id)]) {
        legal.push_back(Step::free(v.id));
        continue;
      }
      bool ready = true;
      for (NodeId u : v.inputs) ready = ready && in[static_cast<size_t>(u)];
      if (ready) {
        legal.push_back(Step::compute(v.id));
        legal.push_back(Step::compute(v.id));  // computes twice as likely as frees
      }
    }
    if (legal.empty()) break;
    const Step s = legal[static_cast<size_t>(rng.below(static_cast<int>(legal.size())))];
    in[static_cast<size_t>(s.node)] = s.kind == Step::Kind::compute;
    plan.steps.push_back(s);
  }
  p.outputs.clear();
  for (const Node& v : p.nodes) {
    if (!v.resident && in[static_cast<size_t>(v.id)] && chance(rng, 50)) p.outputs.push_back(v.id);
  }
  if (chance(rng, 5)) p.outputs.push_back(static_cast<NodeId>(rng.below(p.size())));
  return plan;
}

// Spreads a serial plan over `streams` streams, adding the waits the rules need (each with
// probability `keep` percent: below 100 some plans lose one and become invalid) and now and then a
// wait the rules do not need.
Plan spread(const Problem& p, const Plan& serial, int streams, int keep, Rng& rng) {
  Plan plan = serial;
  const int n = static_cast<int>(plan.steps.size());
  std::vector<int> last(static_cast<size_t>(p.size()), -1);
  std::vector<std::vector<int>> readers(static_cast<size_t>(p.size()));
  std::vector<uint32_t> below(static_cast<size_t>(n), 0);
  std::vector<int> stream_last(static_cast<size_t>(streams), -1);
  for (int i = 0; i < n; ++i) {
    Step& s = plan.steps[static_cast<size_t>(i)];
    s.stream = rng.below(streams);
    uint32_t b = 0;
    if (stream_last[static_cast<size_t>(s.stream)] >= 0) {
      const int j = stream_last[static_cast<size_t>(s.stream)];
      b |= below[static_cast<size_t>(j)] | (1u << j);
    }
    std::vector<int> need;
    const NodeId v = s.node;
    if (last[static_cast<size_t>(v)] >= 0) need.push_back(last[static_cast<size_t>(v)]);
    if (s.kind == Step::Kind::compute) {
      for (NodeId u : p.nodes[static_cast<size_t>(v)].inputs) {
        if (last[static_cast<size_t>(u)] >= 0) need.push_back(last[static_cast<size_t>(u)]);
      }
    } else {
      for (int r : readers[static_cast<size_t>(v)]) need.push_back(r);
    }
    if (i > 0 && chance(rng, 15)) need.push_back(rng.below(i));  // a wait nobody needs
    for (int j : need) {
      if (b >> j & 1) continue;  // already ordered
      if (!chance(rng, keep)) continue;
      s.after.push_back(j);
      b |= below[static_cast<size_t>(j)] | (1u << j);
    }
    below[static_cast<size_t>(i)] = b;
    stream_last[static_cast<size_t>(s.stream)] = i;
    if (s.kind == Step::Kind::compute) {
      for (NodeId u : p.nodes[static_cast<size_t>(v)].inputs)
        readers[static_cast<size_t>(u)].push_back(i);
      readers[static_cast<size_t>(v)].clear();
    } else {
      readers[static_cast<size_t>(v)].clear();
    }
    last[static_cast<size_t>(v)] = i;
  }
  return plan;
}

bool is_down_closed(const Plan& plan, const std::vector<int64_t>& ideal) {
  const std::vector<uint32_t> below = all_preds(plan);
  uint32_t in = 0;
  for (int64_t i : ideal) in |= 1u << i;
  for (int64_t i : ideal) {
    if (below[static_cast<size_t>(i)] & ~in) return false;
  }
  return true;
}

Problem two_chains() {
  // x resident; a1 -> a2 on one branch, b1 -> b2 on the other.
  Problem p;
  p.name = "two-chains";
  p.nodes = {node(0, 10, 0, {}, true), node(1, 100, 1.0, {0}), node(2, 100, 2.0, {1}),
             node(3, 100, 3.0, {0}), node(4, 100, 0.5, {3})};
  p.outputs = {2, 4};
  return p;
}

}  // namespace

TEST_CASE("streams: serial plans are written byte for byte as before streams") {
  const Plan example = read_plan_file(kData + "/chain3-train.keep-all.plan.json");
  CHECK_FALSE(has_streams(example));
  CHECK(stream_count(example) == 1);
  // The writer's output before streams existed, for the spec's example plan.
  const std::string before =
      "{\n  \"format\": \"remat-plan/1\",\n  \"graph\": \"chain3-train\",\n  \"planner\": "
      "\"keep-all\",\n"
      "  \"budget_bytes\": 1904,\n  \"steps\": [\n"
      "    {\"compute\":3}, {\"compute\":4}, {\"compute\":5}, {\"compute\":6}, {\"free\":5}, "
      "{\"compute\":7}, "
      "{\"compute\":8}, {\"free\":4},\n"
      "    {\"compute\":9}, {\"free\":7}, {\"compute\":10}, {\"free\":9}, {\"free\":3}, "
      "{\"compute\":11}, {\"free\":10}\n"
      "  ],\n  \"predicted\": {\"cost\":5.6,\"peak_bytes\":1904}\n}\n";
  CHECK(plan_to_string(example) == before);
  CHECK(serial_writer(example) == before);
  CHECK(plan_to_string(read_plan_json(before)) == before);
  CHECK_FALSE(plan_to_json(example).contains("streams"));
  CHECK(plan_to_json(example)["steps"][0].dump() == "{\"compute\":3}");
  // Plans of every planner on generated graphs.
  int plans = 0;
  for (const std::string& fam : generator_families()) {
    const Problem p = generate(fam, 12, 3);
    for (const PlannerEntry& e : planners()) {
      if (!e.fn || e.name == "checkmate") continue;
      for (const char* f : {"1", "0.5"}) {
        const std::optional<PlanResult> r = try_plan(p, parse_budget(f, p), e.name);
        if (!r) continue;
        ++plans;
        CHECK(plan_to_string(r->plan) == serial_writer(r->plan));
        CHECK(plan_to_string(read_plan_json(plan_to_string(r->plan))) == plan_to_string(r->plan));
      }
    }
  }
  CHECK(plans > 40);
}

TEST_CASE("streams: streamed plans round-trip through JSON") {
  Plan plan;
  plan.graph = "g";
  plan.planner = "hand";
  plan.budget_bytes = 4096;
  plan.steps = {Step::compute(1),         Step::compute(3, 1),         Step::compute(2, 0, {1}),
                Step::free(1, 2, {0, 2}), Step::compute(4, 1, {2, 3}), Step::free(3)};
  plan.predicted_peak_bytes = 300;
  plan.predicted_cost = 2.5;
  CHECK(has_streams(plan));
  CHECK(stream_count(plan) == 3);
  const std::string text = plan_to_string(plan);
  CHECK(contains(text, "{\"compute\":4,\"stream\":1,\"after\":[2,3]}"));
  CHECK(contains(text, "{\"compute\":1}, {\"compute\":3,\"stream\":1}"));
  CHECK_FALSE(contains(text, "\"streams\""));  // not stated: 1 + the largest stream
  const Plan back = read_plan_json(text);
  CHECK(back.steps == plan.steps);
  CHECK(back.streams == 0);
  CHECK(plan_to_string(back) == text);
  plan.streams = 4;  // stated (one stream unused): kept
  const Plan back4 = read_plan_json(plan_to_string(plan));
  CHECK(back4.streams == 4);
  CHECK(stream_count(back4) == 4);
  CHECK(contains(plan_to_string(plan), "\"budget_bytes\": 4096,\n  \"streams\": 4,\n  \"steps\""));
  CHECK(plan_from_json(plan_to_json(plan)).steps == plan.steps);
  // The spec's spelling, with spaces and the fields in any order.
  const Plan spec = read_plan_json(R"({"format": "remat-plan/1", "budget_bytes": 10, "steps": [
      {"compute": 5}, {"compute": 6}, {"compute": 7}, {"compute": 8}, {"stream": 1, "after": [3, 1], "compute": 9}]})");
  CHECK(spec.steps[4] == Step::compute(9, 1, {3, 1}));
}

TEST_CASE("streams: malformed streams and waits are refused naming the step") {
  auto plan_with = [](const std::string& steps, const std::string& extra = "") {
    return R"({"format": "remat-plan/1", "budget_bytes": 10)" + extra + R"(, "steps": [)" + steps +
           "]}";
  };
  auto err = [&](const std::string& steps, const std::string& extra = "") {
    return error_of([&] { read_plan_json(plan_with(steps, extra)); });
  };
  CHECK(contains(err(R"({"compute": 1}, {"compute": 2, "after": [1]})"),
                 "plan step 1: waits for itself"));
  CHECK(contains(err(R"({"compute": 1}, {"compute": 2, "after": [2]}, {"compute": 3})"),
                 "plan step 1: waits for step 2, a later step"));
  CHECK(contains(err(R"({"compute": 1, "after": [-1]})"),
                 "plan step 0: waits for step -1, which does not exist"));
  CHECK(contains(err(R"({"compute": 1, "after": [7]})"),
                 "plan step 0: waits for step 7, which does not exist"));
  CHECK(contains(err(R"({"compute": 1}, {"compute": 2, "stream": -1})"),
                 "plan step 1: stream -1 is negative"));
  CHECK(contains(err(R"({"compute": 1}, {"compute": 2, "stream": 1.5})"),
                 "plan step 1: field \"stream\" must be an integer"));
  CHECK(contains(err(R"({"compute": 1, "stream": "1"})"),
                 "plan step 0: field \"stream\" must be an integer"));
  CHECK(contains(err(R"({"compute": 1, "after": 0})"),
                 "plan step 0: field \"after\" must be an array"));
  CHECK(contains(err(R"({"compute": 1}, {"compute": 2, "after": [0.5]})"),
                 "plan step 1: field \"after\" must be an integer"));
  CHECK(contains(err(R"({"compute": 1}, {"compute": 2, "stream": 2})", R"(, "streams": 2)"),
                 "plan step 1: stream 2 is not below the plan's \"streams\": 2"));
  CHECK(contains(err(R"({"compute": 1})", R"(, "streams": 0)"), "\"streams\" must be at least 1"));
  // A cycle: step 1 waits for step 3, which waits (by its stream) for step 2, which waits for 1.
  const std::string cyc = err(
      R"({"compute": 1}, {"compute": 2, "after": [3]}, {"compute": 3, "stream": 1, "after": [1]},
                                 {"compute": 4, "stream": 1})");
  CHECK(contains(cyc, "plan step 1: waits for step 3, a later step"));
  CHECK(contains(cyc, "closes a cycle: step 3 itself waits for step 1 (3 -> 2 -> 1)"));
  // Read without the check, simulate() refuses the same way.
  const Plan unchecked =
      read_plan_json(plan_with(R"({"compute": 1}, {"compute": 2, "after": [1]})"), false);
  const SimResult r = simulate(two_chains(), unchecked);
  CHECK_FALSE(r.valid);
  CHECK(r.first_bad_step == 1);
  CHECK(contains(r.message, "step 1: waits for itself"));
  CHECK(contains(error_of([&] { StepOrder o(unchecked); }), "step 1: waits for itself"));
  CHECK(contains(error_of([&] { makespan(two_chains(), unchecked); }), "step 1: waits for itself"));
  CHECK(contains(error_of([&] { worst_case_memory(two_chains(), unchecked); }),
                 "step 1: waits for itself"));
}

TEST_CASE(
    "streams: validity and worst-case peak equal brute force over every order (5,000 random "
    "plans)") {
  Rng rng{20240501};
  int cases = 0, valid = 0, invalid = 0, over_budget = 0, streamed = 0;
  int64_t orders = 0;
  while (cases < 5000) {
    Problem p = random_graph(rng);
    const Plan serial = random_serial_plan(p, rng, 12);
    if (serial.steps.empty()) continue;
    const int streams = 2 + rng.below(2);
    const int keep = chance(rng, 60) ? 100 : 80;
    Plan plan = spread(p, serial, streams, keep, rng);
    if (chance(rng, 10) && plan.steps.size() >= 2) {
      // Now and then a serial mistake too: two steps swapped.
      const size_t a = static_cast<size_t>(rng.below(static_cast<int>(plan.steps.size())));
      const size_t b = static_cast<size_t>(rng.below(static_cast<int>(plan.steps.size())));
      std::swap(plan.steps[a].kind, plan.steps[b].kind);
      std::swap(plan.steps[a].node, plan.steps[b].node);
    }
    ++cases;
    streamed += has_streams(plan);
    CAPTURE(plan_to_string(plan));
    CAPTURE(problem_to_string(p));

    // The maximum-weight ideal against every prefix of every order, valid plan or not.
    const WorstCase wc = worst_case_memory(p, plan);
    Brute unbounded_b;
    {
      Plan u = plan;
      u.budget_bytes = kHuge;
      unbounded_b = brute_force(p, u);
    }
    orders += unbounded_b.orders;
    REQUIRE(wc.peak_bytes == unbounded_b.max_prefix);
    CHECK(is_down_closed(plan, wc.ideal));
    const WorstCase dinic_only = worst_case_memory(p, plan, /*greedy_start=*/false);
    CHECK(dinic_only.peak_bytes == wc.peak_bytes);
    CHECK(is_down_closed(plan, dinic_only.ideal));
    int64_t weight = 0;
    for (int64_t i : wc.ideal) {
      const Step& s = plan.steps[static_cast<size_t>(i)];
      weight +=
          (s.kind == Step::Kind::compute ? 1 : -1) * p.nodes[static_cast<size_t>(s.node)].bytes;
    }
    CHECK(resident_bytes(p) + std::max<int64_t>(weight, 0) == wc.peak_bytes);

    // Validity at a budget at, below or far above the worst case.
    const int pick = rng.below(3);
    plan.budget_bytes = pick == 0   ? kHuge
                        : pick == 1 ? wc.peak_bytes
                                    : wc.peak_bytes - 1 - rng.below(20);
    const Brute b = brute_force(p, plan);
    const SimResult r = simulate(p, plan);
    REQUIRE(r.valid == b.all_valid);
    CHECK(r.streams == stream_count(plan));
    if (b.all_valid_unbounded) {
      // Every order valid: the worst-case peak is the largest peak simulate() sees in any order
      // (the serial path stops at the first step over the budget, its peak then covers the steps
      // up to it).
      if (r.valid || has_streams(plan)) CHECK(r.peak_bytes == b.max_sim_peak);
      CHECK(wc.peak_bytes == b.max_sim_peak);
    }
    if (r.valid) {
      ++valid;
      CHECK(r.message.empty());
      CHECK(r.makespan <= r.cost + 1e-9);
      CHECK(r.makespan == doctest::Approx(makespan(p, plan)));
    } else {
      ++invalid;
      CHECK(r.first_bad_step >= 0);
      CHECK(r.first_bad_step <= static_cast<int64_t>(plan.steps.size()));
      CHECK(contains(r.message, "step " + std::to_string(r.first_bad_step) + ": "));
      if (b.all_valid_unbounded) {
        ++over_budget;
        CHECK(contains(r.message, "over the budget"));
      }
    }
  }
  MESSAGE(cases << " plans (" << streamed << " with streams), " << valid << " valid, " << invalid
                << " invalid (" << over_budget << " only over the budget), " << orders
                << " orders enumerated");
  CHECK(valid > 1000);
  CHECK(invalid > 1000);
  CHECK(over_budget > 400);
}

TEST_CASE("streams: the serial path and the streamed path agree on every planner's plans") {
  std::string why;
  int compared = 0;
  for (const std::string& fam : generator_families()) {
    for (uint64_t seed : {1, 2, 3}) {
      const Problem p = generate(fam, 4 + static_cast<int>(seed) * 3, seed, 3);
      for (const PlannerEntry& e : planners()) {
        if (!e.fn) continue;
        PlannerOptions opts;
        opts.node_limit = 2000;
        for (const char* f : {"1", "0.5", "0.25"}) {
          // Checkmate's MILP (CBC) takes seconds below the no-remat peak: only at it, on the
          // smallest graphs.
          if (e.name == "checkmate" && (seed > 1 || std::string(f) != "1")) continue;
          const std::optional<PlanResult> pr = try_plan(p, parse_budget(f, p), e.name, opts);
          if (!pr) continue;
          const Plan& plan = pr->plan;
          CAPTURE(p.name);
          CAPTURE(e.name);
          CAPTURE(f);
          const SimResult a = simulate(p, plan), b = simulate_streams(p, plan);
          REQUIRE(a.valid);
          CHECK(b.valid);
          CHECK(a.peak_bytes == b.peak_bytes);
          CHECK(a.cost == b.cost);
          CHECK(a.compute_steps == b.compute_steps);
          CHECK(a.makespan == a.cost);
          CHECK(b.makespan == a.cost);
          CHECK(makespan(p, plan) == a.cost);
          CHECK(a.streams == 1);
          CHECK(b.streams == 1);
          CHECK(worst_case_memory(p, plan).peak_bytes == a.peak_bytes);
          // The same total order written with streams: one stream other than 0, and two streams
          // alternating with a wait on every previous step.
          Plan one = plan, two = plan;
          for (size_t i = 0; i < plan.steps.size(); ++i) {
            one.steps[i].stream = 5;
            two.steps[i].stream = static_cast<int>(i % 2);
            if (i > 0) two.steps[i].after = {static_cast<int64_t>(i) - 1};
          }
          for (const Plan* q : {&one, &two}) {
            const SimResult c = simulate(p, *q);
            CHECK(c.valid);
            CHECK(c.peak_bytes == a.peak_bytes);
            CHECK(c.cost == a.cost);
            CHECK(c.makespan == a.cost);
          }
          // A mistake: a step dropped. Both paths name the same step and rule (at a budget no
          // order exceeds, where the serial path stops at the same first broken rule).
          Plan broken = plan;
          broken.budget_bytes = kHuge;
          broken.steps.erase(broken.steps.begin() + static_cast<long>(plan.steps.size() / 3));
          const SimResult x = simulate(p, broken), y = simulate_streams(p, broken);
          CHECK(x.valid == y.valid);
          CHECK(x.first_bad_step == y.first_bad_step);
          CHECK(x.message == y.message);
          ++compared;
        }
      }
    }
  }
  MESSAGE(compared << " plans compared");
  CHECK(compared > 120);
}

TEST_CASE("streams: makespan of two chains on two streams, and along a wait") {
  const Problem p = two_chains();
  Plan plan;
  plan.budget_bytes = kHuge;
  // Stream 0: a1 (1), a2 (2); stream 1: b1 (3), b2 (0.5). Independent: the longer chain.
  plan.steps = {Step::compute(1), Step::compute(2), Step::compute(3, 1), Step::compute(4, 1)};
  CHECK(makespan(p, plan) == doctest::Approx(3.5));
  SimResult r = simulate(p, plan);
  CHECK(r.valid);
  CHECK(r.makespan == doctest::Approx(3.5));
  CHECK(r.cost == doctest::Approx(6.5));
  CHECK(r.streams == 2);
  CHECK(r.peak_bytes == 410);
  // b1 waits for a1: the critical path a1 -> b1 -> b2 = 1 + 3 + 0.5.
  plan.steps[2].after = {0};
  CHECK(makespan(p, plan) == doctest::Approx(4.5));
  // b1 waits for a2: everything in a row = the cost.
  plan.steps[2].after = {1};
  CHECK(makespan(p, plan) == doctest::Approx(6.5));
  // Measured costs per node (a slower stream configuration).
  plan.steps[2].after = {};
  const std::vector<double> cost = {0, 2, 2, 1, 1};
  CHECK(makespan(p, plan, &cost) == doctest::Approx(4.0));
  CHECK(contains(error_of([&] {
                   const std::vector<double> few = {1, 2};
                   makespan(p, plan, &few);
                 }),
                 "2 costs given for a graph of 5 nodes"));
  // A free lasts nothing but does wait: freeing a1 after b1 moves nothing else.
  plan.steps.push_back(Step::free(1, 0, {2}));
  CHECK(makespan(p, plan) == doctest::Approx(3.5));
  Plan serial;
  serial.steps = {Step::compute(1), Step::compute(2), Step::free(1), Step::compute(3),
                  Step::compute(4)};
  CHECK(makespan(p, serial) == doctest::Approx(6.5));
  CHECK(makespan(p, Plan{}) == 0.0);
}

TEST_CASE("streams: two branches in parallel hold memory at once, and the worst case names them") {
  const Problem p = two_chains();
  Plan plan;
  // a1, a2 (free a1) on stream 0; b1, b2 (free b1) on stream 1: serially 10 + 300 at most, but in
  // parallel a1, a2, b1 and b2 can all be in memory before either free.
  plan.steps = {Step::compute(1),    Step::compute(2),    Step::free(1),
                Step::compute(3, 1), Step::compute(4, 1), Step::free(3, 1)};
  plan.budget_bytes = 410;
  const WorstCase wc = worst_case_memory(p, plan);
  CHECK(wc.peak_bytes == 410);
  CHECK(wc.live == std::vector<int64_t>{0, 1, 3, 4});
  CHECK(simulate(p, plan).valid);
  CHECK(serial_copy(plan, {0, 1, 2, 3, 4, 5}).steps.size() == 6);
  CHECK(simulate(p, serial_copy(plan, {0, 1, 2, 3, 4, 5})).peak_bytes == 310);
  plan.budget_bytes = 409;
  const SimResult r = simulate(p, plan);
  CHECK_FALSE(r.valid);
  CAPTURE(r.message);
  CHECK(contains(r.message, "can bring memory to 410 bytes, over the budget of 409"));
  CHECK(contains(r.message,
                 "0 (node 1, 100 bytes), 1 (node 2, 100 bytes), 3 (node 3, 100 bytes), 4 (node 4, "
                 "100 bytes)"));
  CHECK(r.first_bad_step == 4);
  // A wait (b1 after free a1) orders the branches: the peak drops to 310.
  plan.steps[3].after = {2};
  CHECK(worst_case_memory(p, plan).peak_bytes == 310);
  plan.budget_bytes = 310;
  CHECK(simulate(p, plan).valid);
}

TEST_CASE("streams: reads and frees unordered across streams are refused naming both steps") {
  const Problem p = two_chains();
  Plan plan;
  plan.budget_bytes = kHuge;
  // a2 on stream 1 reads a1 computed on stream 0 without waiting for it.
  plan.steps = {Step::compute(1), Step::compute(2, 1), Step::compute(3), Step::compute(4)};
  SimResult r = simulate(p, plan);
  CHECK_FALSE(r.valid);
  CHECK(r.first_bad_step == 1);
  CHECK(
      contains(r.message, "step 1: rule 2: compute node 2 can run before step 0 (compute node 1)"));
  plan.steps[1].after = {0};
  CHECK(simulate(p, plan).valid);
  // Freeing a1 on stream 0 while a2 may still be reading it on stream 1.
  plan.steps.push_back(Step::free(1));
  r = simulate(p, plan);
  CHECK_FALSE(r.valid);
  CHECK(r.first_bad_step == 4);
  CHECK(contains(r.message, "rule 3: free node 1 can run before step 1 (compute node 2) reads it"));
  plan.steps[4].after = {1};
  CHECK(simulate(p, plan).valid);
  // Recomputing a1 on stream 1 while the free on stream 0 may not have run yet.
  plan.steps.push_back(Step::compute(1, 1));
  r = simulate(p, plan);
  CHECK_FALSE(r.valid);
  CHECK(contains(r.message, "step 5: rule 2: compute node 1 can run before step 4 (free node 1)"));
  plan.steps[5].after = {4};
  CHECK(simulate(p, plan).valid);
  // Freeing on a third stream, unordered with the compute.
  plan.steps.push_back(Step::free(3, 2));
  r = simulate(p, plan);
  CHECK_FALSE(r.valid);
  CHECK(contains(r.message, "step 6: rule 3: free node 3 can run before step 2 (compute node 3)"));
  plan.steps[6].after = {2};
  r = simulate(p, plan);
  CHECK_FALSE(r.valid);  // its reader, step 3, is still unordered
  CHECK(contains(r.message,
                 "step 6: rule 3: free node 3 can run before step 3 (compute node 4) reads it"));
  plan.steps[6].after = {3};
  CHECK(simulate(p, plan).valid);
}

TEST_CASE("streams: StepOrder and may_share follow streams and waits") {
  Plan plan;
  // 0,1 on stream 0; 2,3 on stream 1 (3 waits for 0); 4 on stream 2 waits for 3.
  plan.steps = {Step::compute(1), Step::free(1), Step::compute(2, 1), Step::free(2, 1, {0}),
                Step::compute(3, 2, {3})};
  const StepOrder o(plan);
  CHECK(o.before(0, 1));
  CHECK_FALSE(o.before(1, 0));
  CHECK_FALSE(o.before(0, 0));
  CHECK(o.before(2, 3));
  CHECK(o.before(0, 3));
  CHECK(o.before(0, 4));
  CHECK(o.before(2, 4));
  CHECK_FALSE(o.before(1, 4));
  CHECK_FALSE(o.ordered(1, 2));
  CHECK_FALSE(o.ordered(1, 3));
  CHECK(may_share(o, 3, 4));
  CHECK_FALSE(may_share(o, 1, 2));
  CHECK_FALSE(o.before(-1, 2));
  CHECK_FALSE(o.before(0, 99));
  // Against the closure of the direct edges on random plans.
  Rng rng{7};
  for (int c = 0; c < 300; ++c) {
    Plan q;
    const int n = 2 + rng.below(20), k = 1 + rng.below(4);
    for (int i = 0; i < n; ++i) {
      Step s = Step::compute(0, rng.below(k) * 3);  // sparse stream ids
      for (int w = rng.below(3); w > 0 && i > 0; --w) s.after.push_back(rng.below(i));
      q.steps.push_back(s);
    }
    const StepOrder qo(q);
    for (Step& s : q.steps) s.stream /= 3;  // all_preds wants small ids; the order is the same
    const std::vector<uint32_t> below = all_preds(q);
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b)
        CHECK(qo.before(a, b) == static_cast<bool>(below[static_cast<size_t>(b)] >> a & 1));
    }
  }
}

TEST_CASE("streams: layout shares bytes only between buffers a wait orders") {
  Problem p;
  p.nodes = {node(0, 8, 0, {}, true), node(1, 100, 1, {0}), node(2, 100, 1, {0})};
  Plan plan;
  plan.budget_bytes = kHuge;
  // Serial: a's buffer is freed before b's is made, so they share offset 0.
  plan.steps = {Step::compute(1), Step::free(1), Step::compute(2), Step::free(2)};
  Layout l = layout_plan(p, plan, 64);
  CHECK(l.offsets[0] == l.offsets[2]);
  CHECK(l.high_water == 128);
  // On two streams without a wait they can be live together: disjoint.
  plan.steps[2].stream = plan.steps[3].stream = 1;
  l = layout_plan(p, plan, 64);
  CHECK(l.offsets[0] != l.offsets[2]);
  CHECK(l.high_water == 256);
  // b waits for a's free: they share again.
  plan.steps[2].after = {1};
  l = layout_plan(p, plan, 64);
  CHECK(l.offsets[0] == l.offsets[2]);
  CHECK(l.high_water == 128);
  // Random valid streamed plans: overlapping buffers are always ordered.
  Rng rng{99};
  int checked = 0;
  while (checked < 1500) {
    Problem q = random_graph(rng);
    const Plan serial = random_serial_plan(q, rng, 12);
    const Plan sp = spread(q, serial, 2 + rng.below(2), 100, rng);
    if (!simulate(q, sp).valid) continue;
    ++checked;
    const Layout lay = layout_plan(q, sp, 64);
    const std::vector<uint32_t> below = all_preds(sp);
    struct Buf {
      int64_t off, size;
      int start, end;
    };
    std::vector<Buf> bufs;
    std::vector<int> open(static_cast<size_t>(q.size()), -1);
    const int n = static_cast<int>(sp.steps.size());
    for (int i = 0; i < n; ++i) {
      const Step& s = sp.steps[static_cast<size_t>(i)];
      if (s.kind == Step::Kind::compute) {
        const int64_t size =
            (std::max<int64_t>(q.nodes[static_cast<size_t>(s.node)].bytes, 1) + 63) / 64 * 64;
        open[static_cast<size_t>(s.node)] = static_cast<int>(bufs.size());
        bufs.push_back({lay.offsets[static_cast<size_t>(i)], size, i, n});
      } else {
        bufs[static_cast<size_t>(open[static_cast<size_t>(s.node)])].end = i;
      }
    }
    auto ordered_before = [&](const Buf& x, const Buf& y) {
      return x.end < n && (below[static_cast<size_t>(y.start)] >> x.end & 1);
    };
    for (size_t i = 0; i < bufs.size(); ++i) {
      for (size_t j = i + 1; j < bufs.size(); ++j) {
        const Buf &x = bufs[i], &y = bufs[j];
        const bool disjoint = x.off + x.size <= y.off || y.off + y.size <= x.off;
        if (!disjoint) CHECK((ordered_before(x, y) || ordered_before(y, x)));
      }
    }
  }
}

// `plan` over `streams` streams (chosen at random) with every wait the rules need.
Plan spread_all(const Problem& p, const Plan& plan, int streams, Rng& rng) {
  Plan sp = plan;
  std::vector<int64_t> last(static_cast<size_t>(p.size()), -1);
  std::vector<std::vector<int64_t>> readers(static_cast<size_t>(p.size()));
  for (size_t i = 0; i < sp.steps.size(); ++i) {
    Step& s = sp.steps[i];
    s.stream = rng.below(streams);
    const NodeId v = s.node;
    if (last[static_cast<size_t>(v)] >= 0) s.after.push_back(last[static_cast<size_t>(v)]);
    if (s.kind == Step::Kind::compute) {
      for (NodeId u : p.nodes[static_cast<size_t>(v)].inputs) {
        if (last[static_cast<size_t>(u)] >= 0) s.after.push_back(last[static_cast<size_t>(u)]);
        readers[static_cast<size_t>(u)].push_back(static_cast<int64_t>(i));
      }
    } else {
      for (int64_t r : readers[static_cast<size_t>(v)]) s.after.push_back(r);
    }
    readers[static_cast<size_t>(v)].clear();
    last[static_cast<size_t>(v)] = static_cast<int64_t>(i);
  }
  return sp;
}

TEST_CASE(
    "streams: on planners' plans spread over streams, the greedy start and the plain max-flow "
    "agree") {
  Rng rng{11};
  int compared = 0;
  for (const std::string& fam : generator_families()) {
    const Problem p = generate(fam, 150, 2);
    for (const char* planner : {"treewidth", "lethe"}) {
      const std::optional<PlanResult> pr = try_plan(p, parse_budget("0.5", p), planner);
      if (!pr) continue;
      for (int streams : {2, 3, 5}) {
        const Plan sp = spread_all(p, pr->plan, streams, rng);
        const WorstCase a = worst_case_memory(p, sp), b = worst_case_memory(p, sp, false);
        CAPTURE(p.name);
        CHECK(a.peak_bytes == b.peak_bytes);
        CHECK(a.peak_bytes >= pr->plan.predicted_peak_bytes);
        ++compared;
      }
    }
  }
  CHECK(compared >= 30);
}

TEST_CASE("streams: large streamed plans are checked quickly") {
  // A training graph's plan, repeated and spread over 3 streams with the waits it needs.
  const Problem p = generate("transformer", 1500, 5);
  const PlanResult pr = plan(p, parse_budget("0.5", p), "treewidth");
  Rng rng{3};
  const Plan& serial = pr.plan;
  // Repeat the plan (freeing what it leaves in memory in between) to reach tens of thousands of
  // steps.
  std::vector<uint8_t> at_end(static_cast<size_t>(p.size()), 0);
  for (const Step& s : serial.steps)
    at_end[static_cast<size_t>(s.node)] = s.kind == Step::Kind::compute;
  Plan big = serial;
  for (int rep = 0; rep < 3; ++rep) {
    for (NodeId v = 0; v < p.size(); ++v) {
      if (at_end[static_cast<size_t>(v)]) big.steps.push_back(Step::free(v));
    }
    big.steps.insert(big.steps.end(), serial.steps.begin(), serial.steps.end());
  }
  REQUIRE(simulate(p, big).valid);
  Plan sp = spread_all(p, big, 3, rng);
  sp.budget_bytes = kHuge;
  const auto t0 = std::chrono::steady_clock::now();
  const SimResult r = simulate(p, sp);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CAPTURE(r.message);
  CHECK(r.valid);
  CHECK(r.streams == 3);
  CHECK(r.peak_bytes >= simulate(p, big).peak_bytes);
  CHECK(r.makespan < r.cost);
  MESSAGE(sp.steps.size() << " steps on 3 streams: worst-case peak " << r.peak_bytes << " (serial "
                          << simulate(p, big).peak_bytes << "), makespan " << r.makespan
                          << " of cost " << r.cost << ", checked in " << secs << " s");
}
