// Plans with copies to a second memory tier (docs/plan-format.md, "Copies to a second tier"): the
// format, the checker's rules, the worst-case device and tier peaks, the layout, and the planning
// pass (plan_offload, plan_joint) on the spec's example and on the bench graphs.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/graph_io.h"
#include "scheduler/layout.h"
#include "scheduler/offload.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "scheduler/streams.h"
#include "test_helpers.h"

using namespace lethe::sched;
using lethe::sched::test::contains;
using lethe::sched::test::error_of;
using lethe::sched::test::node;

namespace {

// w (resident) -> a -> b -> c -> d (200 B) -> x, and e(x, a): `a` is idle from b to e, across the
// peak at d. Every compute costs 1; copies move 100 B/s.
Problem idle_graph() {
  Problem p;
  p.name = "idle";
  p.nodes = {node(0, 10, 0, {}, true), node(1, 100, 1, {0}), node(2, 10, 1, {1}),
             node(3, 10, 1, {2}),      node(4, 200, 1, {3}), node(5, 10, 1, {4}),
             node(6, 10, 1, {5, 1})};
  p.outputs = {6};
  p.bandwidth = {100.0, 100.0};
  return p;
}

// `a` offloaded after b, freed, fetched back after d is freed, dropped after e.
Plan idle_plan() {
  Plan plan;
  plan.graph = "idle";
  plan.planner = "hand";
  plan.budget_bytes = 220;
  plan.host_budget_bytes = 100;
  plan.steps = {Step::compute(1),      Step::compute(2),       Step::offload(1, 1, {1}),
                Step::free(1, 0, {2}), Step::compute(3),       Step::free(2),
                Step::compute(4),      Step::free(3),          Step::compute(5),
                Step::free(4),         Step::fetch(1, 2, {9}), Step::compute(6, 0, {10}),
                Step::drop(1),         Step::free(1),          Step::free(5)};
  return plan;
}

std::string message_of(const Problem& p, const Plan& plan) {
  const SimResult r = simulate(p, plan);
  CHECK_FALSE(r.valid);
  return r.message;
}

Problem bench(const std::string& name) {
  return read_problem_file(std::string(LETHE_BENCH_GRAPHS) + "/" + name + ".graph.json");
}

// Copying every non-resident value once takes as long as computing the whole step: some copies hide
// behind compute, not all.
TierBandwidth balanced_bandwidth(const Problem& p) {
  int64_t bytes = 0;
  for (const Node& v : p.nodes) bytes += v.resident ? 0 : v.bytes;
  const double bw = static_cast<double>(bytes) / no_remat_cost(p);
  return {bw, bw};
}

void check_offload_plan(const Problem& p, const OffloadPlan& o, int64_t budget, int64_t host) {
  Problem q = p;
  q.bandwidth = {1.0, 1.0};  // any: validity does not depend on it
  const SimResult r = simulate(q, o.plan);
  CHECK_MESSAGE(r.valid, r.message);
  CHECK(r.peak_bytes <= budget);
  CHECK(r.peak_bytes == o.device_peak_bytes);
  CHECK(r.tier_peak_bytes <= host);
  CHECK(r.tier_peak_bytes == o.tier_peak_bytes);
  CHECK(o.plan.budget_bytes == budget);
}

struct CliRun {
  int code = -1;
  std::string out;  // stdout and stderr
};

// lethe-plan with `args`, its output captured in a file of its own (removed after).
CliRun lethe_plan(const std::string& args) {
  const std::string log =
      (std::filesystem::temp_directory_path() / ("lethe-offload-" + std::to_string(::getpid())))
          .string();
  const int status =
      std::system((std::string(LETHE_PLAN_EXE) + " " + args + " > " + log + " 2>&1").c_str());
  CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::ostringstream ss;
  ss << in.rdbuf();
  r.out = ss.str();
  std::filesystem::remove(log);
  return r;
}

}  // namespace

TEST_CASE("offload: copy steps and host_budget_bytes round-trip; plans without them unchanged") {
  const Plan plan = idle_plan();
  const std::string text = plan_to_string(plan);
  CHECK(contains(text, "\"host_budget_bytes\": 100,"));
  CHECK(contains(text, "{\"offload\":1,\"stream\":1,\"after\":[1]}"));
  CHECK(contains(text, "{\"fetch\":1,\"stream\":2,\"after\":[9]}"));
  CHECK(contains(text, "{\"drop\":1}"));
  const Plan back = read_plan_json(text);
  CHECK(back.steps == plan.steps);
  CHECK(back.host_budget_bytes == 100);
  CHECK(plan_to_string(back) == text);
  // Through nlohmann too, fields in any order.
  const Plan j = plan_from_json(plan_to_json(plan));
  CHECK(j.steps == plan.steps);
  CHECK(j.host_budget_bytes == 100);

  // No copies, no host budget: the file is what it was before copies existed.
  Plan serial;
  serial.graph = "g";
  serial.planner = "p";
  serial.budget_bytes = 5;
  serial.steps = {Step::compute(1), Step::free(1)};
  const std::string s = plan_to_string(serial);
  CHECK_FALSE(contains(s, "host_budget"));
  CHECK(read_plan_json(s).host_budget_bytes == -1);
}

TEST_CASE("offload: malformed copy steps are refused by the reader, naming the step") {
  auto read = [](const std::string& steps, const std::string& extra = "") {
    return error_of([&] {
      read_plan_json(R"({"format": "remat-plan/1", "budget_bytes": 1, )" + extra + R"("steps": )" +
                     steps + "}");
    });
  };
  CHECK(contains(read(R"([{"compute": 1}, {"offload": 1, "free": 1}])"),
                 "plan step 1: must have exactly one of"));
  CHECK(contains(read(R"([{"compute": 1}, {"offload": 1, "free": 1}])"),
                 "got both \"free\" and \"offload\""));
  CHECK(contains(read(R"([{"fetch": "x"}])"), "plan step 0"));
  CHECK(contains(read(R"([{"drop": 1.5}])"), "plan step 0"));
  CHECK(contains(read(R"([{"copy": 1}])"), "plan step 0: must have exactly one of"));
  CHECK(contains(read("[]", R"("host_budget_bytes": -1, )"), "host_budget_bytes"));
  CHECK(contains(read("[]", R"("host_budget_bytes": "big", )"), "host_budget_bytes"));
  CHECK(read("[]", R"("host_budget_bytes": 0, )").empty());
}

TEST_CASE("offload: the hand plan is valid; worst-case device and tier peaks; makespan") {
  const Problem p = idle_graph();
  const Plan plan = idle_plan();
  const SimResult r = simulate(p, plan);
  CHECK_MESSAGE(r.valid, r.message);
  // Without the copy, `a` is there when d is computed: 10 + 100 + 10 + 200 = 320.
  CHECK(r.peak_bytes == 220);
  CHECK(r.tier_peak_bytes == 100);
  CHECK(worst_case_memory(p, plan).peak_bytes == 220);
  CHECK(worst_case_tier_memory(p, plan).peak_bytes == 100);
  CHECK(r.cost == doctest::Approx(6.0));
  // c1 c2, offload 1 s (the free waits for it), c3 c4 c5, fetch 1 s (after the free of d), c6.
  CHECK(r.makespan == doctest::Approx(8.0));
  // The same steps on one stream: still checked by the copy rules, copies timed in line.
  Plan serial = plan;
  for (Step& st : serial.steps) {
    st.stream = 0;
    st.after.clear();
  }
  const SimResult sr = simulate(p, serial);
  CHECK_MESSAGE(sr.valid, sr.message);
  CHECK(sr.peak_bytes == 220);
  CHECK(sr.tier_peak_bytes == 100);
  CHECK(sr.makespan == doctest::Approx(8.0));
  serial.host_budget_bytes = -1;
  CHECK(contains(message_of(p, serial),
                 "step 2: rule 5: offload node 1: the plan has no second tier"));
  // A fetch that may start as soon as `a` is freed may hold it across d in some order.
  Plan early = plan;
  early.steps[10].after = {3};
  const SimResult e = simulate(p, early);
  CHECK(e.peak_bytes == 320);
  CHECK_FALSE(e.valid);
  CHECK_MESSAGE(contains(e.message, "step 10: rule 2: fetch node 1 can bring memory to 320 bytes"),
                e.message);
  CHECK(contains(e.message, "6 (node 4, 200 bytes)"));
  // Two values on the tier at once, when nothing orders a drop before the next offload.
  Problem p2 = p;
  Plan two = plan;
  two.host_budget_bytes = 1000;
  // Offload c as well (after it is computed; it is freed after d reads it, so free waits).
  two.steps.insert(two.steps.begin() + 5, Step::offload(3, 1, {4}));
  // Indices after 5 shift by one: fix the waits that name them.
  for (size_t i = 6; i < two.steps.size(); ++i)
    for (int64_t& a : two.steps[i].after) a += a >= 5 ? 1 : 0;
  two.steps[8].after = {5};  // the free of c waits for its offload
  two.steps.push_back(Step::drop(3, 1));
  const SimResult t = simulate(p2, two);
  CHECK_MESSAGE(t.valid, t.message);
  CHECK(t.tier_peak_bytes == 110);
  two.host_budget_bytes = 105;
  CHECK(contains(message_of(p2, two),
                 "rule 8: offload node 3 can bring the second tier to 110 bytes, over the host "
                 "budget of 105"));
}

TEST_CASE("offload: each checker rule refuses its plan, naming the step, the rule and the node") {
  const Problem p = idle_graph();
  SUBCASE("no second tier") {
    Plan plan = idle_plan();
    plan.host_budget_bytes = -1;
    CHECK(contains(message_of(p, plan),
                   "step 2: rule 5: offload node 1: the plan has no second tier (no "
                   "\"host_budget_bytes\")"));
  }
  SUBCASE("tier over the host budget") {
    Plan plan = idle_plan();
    plan.host_budget_bytes = 99;
    CHECK(contains(message_of(p, plan),
                   "step 2: rule 8: offload node 1 can bring the second tier to 100 bytes, over "
                   "the host budget of 99"));
  }
  SUBCASE("offload of a value not on the device") {
    Plan plan = idle_plan();
    plan.steps.insert(plan.steps.begin(), Step::offload(1, 1));
    CHECK(contains(message_of(p, plan),
                   "step 0: rule 5: offload node 1, which is not on the device"));
  }
  SUBCASE("offload of a resident value") {
    Plan plan = idle_plan();
    plan.steps.insert(plan.steps.begin(), Step::offload(0, 1));
    CHECK(contains(message_of(p, plan), "step 0: rule 5: offload node 0, which is resident"));
  }
  SUBCASE("free not ordered after the offload that reads the value") {
    Plan plan = idle_plan();
    plan.steps[3].after.clear();
    CHECK(contains(message_of(p, plan),
                   "step 3: rule 3: free node 1 can run before step 2 (offload node 1) reads it"));
  }
  SUBCASE("offload not ordered after the compute") {
    Plan plan = idle_plan();
    plan.steps[2].after.clear();
    CHECK(contains(message_of(p, plan),
                   "step 2: rule 5: offload node 1 can run before step 0 (compute node 1)"));
  }
  SUBCASE("second offload while a tier copy exists") {
    Plan plan = idle_plan();
    plan.steps.insert(plan.steps.begin() + 3, Step::offload(1, 1));
    CHECK(contains(message_of(p, plan),
                   "step 3: rule 5: offload node 1, which already has a tier copy (step 2 "
                   "(offload node 1)); drop it first"));
  }
  SUBCASE("fetch with no tier copy") {
    Plan plan = idle_plan();
    plan.steps[10].node = 2;  // b was never offloaded
    CHECK(contains(message_of(p, plan),
                   "step 10: rule 6: fetch node 2, which has no tier copy (no offload of it "
                   "before, or dropped since)"));
  }
  SUBCASE("fetch of a value still on the device") {
    Plan plan = idle_plan();
    plan.steps.insert(plan.steps.begin() + 3, Step::fetch(1, 2, {2}));
    CHECK(contains(message_of(p, plan),
                   "step 3: rule 6: fetch node 1, which is already on the device"));
  }
  SUBCASE("fetch not ordered after the free") {
    Plan plan = idle_plan();
    plan.steps[10].after = {2};
    CHECK(contains(message_of(p, plan),
                   "step 10: rule 6: fetch node 1 can run before step 3 (free node 1)"));
  }
  SUBCASE("fetch not ordered after the offload") {
    Plan plan = idle_plan();
    plan.steps[10].after.clear();
    CHECK(contains(message_of(p, plan),
                   "step 10: rule 6: fetch node 1 can run before step 2 (offload node 1) "
                   "finishes"));
  }
  SUBCASE("compute reading a fetched value before the fetch is done") {
    Plan plan = idle_plan();
    plan.steps[11].after.clear();
    CHECK(contains(message_of(p, plan),
                   "step 11: rule 2: compute node 6 can run before step 10 (fetch node 1)"));
  }
  SUBCASE("drop not ordered after a fetch of its copy") {
    Plan plan = idle_plan();
    plan.steps[12] = Step::drop(1, 1);  // on the offload stream: after the offload, not the fetch
    CHECK(contains(message_of(p, plan),
                   "step 12: rule 7: drop node 1 can run before step 10 (fetch node 1) reads the "
                   "tier copy"));
  }
  SUBCASE("drop with no tier copy") {
    Plan plan = idle_plan();
    plan.steps.push_back(Step::drop(1));
    CHECK(contains(message_of(p, plan), "step 15: rule 7: drop node 1, which has no tier copy"));
  }
  SUBCASE("copies without bandwidths: valid, but no predicted time") {
    Problem q = p;
    q.bandwidth = {};
    const SimResult r = simulate(q, idle_plan());
    CHECK(r.valid);
    CHECK(r.makespan == -1.0);
    CHECK(contains(error_of([&] { makespan(q, idle_plan()); }),
                   "step 2 (offload node 1): no out bandwidth"));
  }
}

TEST_CASE("offload: layout places a fetch like a compute, and nothing for offload or drop") {
  const Problem p = idle_graph();
  const Plan plan = idle_plan();
  const Layout l = layout_plan(p, plan, 1);
  CHECK(l.offsets[10] >= 0);   // fetch
  CHECK(l.offsets[2] == -1);   // offload
  CHECK(l.offsets[12] == -1);  // drop
  // The high-water mark is at most the non-resident worst case: 220 - 10 resident.
  CHECK(l.high_water <= 210);
  // `a`'s first buffer (step 0) may be reused by d (step 6): its free waits for the offload.
  CHECK(l.offsets[6] <= 100);
}

TEST_CASE("offload: the spec's example graph") {
  const Problem p =
      read_problem_file(std::string(LETHE_SCHEDULER_TEST_DATA) + "/chain3-train.graph.json");
  const TierBandwidth bw{400.0, 400.0};
  const Plan base = natural_plan(p);
  CHECK(base.predicted_peak_bytes == 1904);
  CHECK(base.predicted_cost == doctest::Approx(5.6));
  // At the natural peak nothing needs copying.
  const OffloadPlan same = plan_offload(p, base, 1904, 0, bw);
  CHECK(same.copies == 0);
  CHECK(same.makespan == doctest::Approx(5.6));
  // g_h1's step (1904 bytes) holds its inputs, its output and the outputs so far (loss, g_w2):
  // the outputs can wait on the tier, below what recomputation alone reaches.
  const int64_t smallest = smallest_feasible_budget(p, "lethe");
  CHECK(smallest == 1904);
  const OffloadPlan low = plan_offload(p, base, 1800, 1 << 20, bw);
  check_offload_plan(p, low, 1800, 1 << 20);
  CHECK(low.device_peak_bytes <= 1800);
  // The tier it needs is enough, a byte less is not.
  const int64_t host = low.tier_peak_bytes;
  check_offload_plan(p, plan_offload(p, base, 1800, host, bw), 1800, host);
  const JointPlans j = plan_joint(p, 1800, host, bw, "lethe", 2);
  CHECK_FALSE(j.recompute_only);
  REQUIRE(j.joint);
  check_offload_plan(p, *j.joint, 1800, host);
  MESSAGE("chain3-train at 1800 bytes (recompute-only minimum 1904): tier "
          << host << " bytes, makespan " << j.joint->makespan);
  CHECK(contains(error_of([&] { plan_offload(p, base, 1799, 1 << 20, bw); }),
                 "device budget of 1799 bytes with a host budget of 1048576 bytes"));
  CHECK(contains(
      error_of([&] { plan_offload(p, base, 1800, host - 1, bw); }),
      "device budget of 1800 bytes with a host budget of " + std::to_string(host - 1) + " bytes"));
  // A tier plan that is forced: h1 idle across a peak made by a tight budget at step g_w2.
  Problem q = p;
  q.nodes[7].bytes = 1000;  // g_h2 large: g_w2's and g_a1's steps peak, with h1 idle across them
  const Plan base2 = natural_plan(q);
  const int64_t peak2 = base2.predicted_peak_bytes;
  const OffloadPlan o = plan_offload(q, base2, peak2 - 400, 400, bw);
  check_offload_plan(q, o, peak2 - 400, 400);
  CHECK(o.copies == 2);
  CHECK(o.tier_peak_bytes == 400);
  // With no room on the tier, the message names both budgets.
  const std::string e2 = error_of([&] { plan_offload(q, base2, peak2 - 400, 399, bw); });
  CHECK(contains(e2, "device budget of " + std::to_string(peak2 - 400) +
                         " bytes with a host budget of 399 bytes"));
  CHECK(contains(e2, "host budget has no room"));
}

// (Not unet-w16: its recompute-only minimum is within 0.3% of the largest working set of one op,
// which no copy reduces.)
TEST_CASE("offload: below the recompute-only minimum on bench graphs, with a large tier") {
  for (const char* name : {"resnet18-w16", "gpt-small"}) {
    const std::string graph = name;
    CAPTURE(graph);
    const Problem p = bench(name);
    const TierBandwidth bw = balanced_bandwidth(p);
    const int64_t smallest = smallest_feasible_budget(p, "lethe");
    const int64_t floor = floor_bytes(p);
    const int64_t budget = smallest - (smallest - floor) / 4;
    REQUIRE(budget < smallest);
    CHECK_FALSE(try_plan(p, budget, "lethe"));
    const int64_t host = int64_t{1} << 50;
    const JointPlans j = plan_joint(p, budget, host, bw, "lethe", 3);
    CHECK_FALSE(j.recompute_only);
    REQUIRE(j.joint);
    check_offload_plan(p, *j.joint, budget, host);
    CHECK(j.joint->copies > 0);
    MESSAGE(graph << ": budget " << budget << " (recompute-only minimum " << smallest
                  << "): joint makespan " << j.joint->makespan << " vs no-remat cost "
                  << no_remat_cost(p) << ", tier peak " << j.joint->tier_peak_bytes);
  }
}

TEST_CASE("offload: joint makespan is at most recompute-only's and offload-only's") {
  for (const char* name : {"resnet18-w16", "unet-w16", "gpt-small"}) {
    const Problem p = bench(name);
    const TierBandwidth bw = balanced_bandwidth(p);
    for (const char* f : {"0.75", "0.5", "0.25"}) {
      const std::string graph = name, frac = f;
      CAPTURE(graph);
      CAPTURE(frac);
      const int64_t budget = parse_budget(frac, p);
      const int64_t host = no_remat_peak(p);
      const JointPlans j = plan_joint(p, budget, host, bw, "lethe", 3);
      REQUIRE(j.joint);
      check_offload_plan(p, *j.joint, budget, host);
      if (j.recompute_only) {
        CHECK(j.recompute_only->copies == 0);
        CHECK(j.joint->makespan <= j.recompute_only->makespan);
      }
      if (j.offload_only) {
        check_offload_plan(p, *j.offload_only, budget, host);
        CHECK(j.joint->makespan <= j.offload_only->makespan);
      }
      MESSAGE(graph << " at " << frac << ": recompute-only "
                    << (j.recompute_only ? j.recompute_only->makespan : -1) << ", offload-only "
                    << (j.offload_only ? j.offload_only->makespan : -1) << ", joint "
                    << j.joint->makespan << " (remat budget " << j.joint->remat_budget_bytes << ", "
                    << j.joint->copies << " copies)");
    }
  }
}

TEST_CASE("offload: a too-small host budget is refused naming both budgets") {
  const Problem p = bench("resnet18-w16");
  const int64_t budget = parse_budget("0.25", p);
  const std::string e =
      error_of([&] { plan_offload(p, natural_plan(p), budget, 1000, balanced_bandwidth(p)); });
  CHECK(contains(
      e, "device budget of " + std::to_string(budget) + " bytes with a host budget of 1000 bytes"));
  const int64_t below = floor_bytes(p) + 1;
  const std::string j =
      error_of([&] { plan_joint(p, below, 1000, balanced_bandwidth(p), "lethe", 2); });
  CHECK(contains(
      j, "device budget of " + std::to_string(below) + " bytes with a host budget of 1000 bytes"));
}

TEST_CASE("offload: plan_offload refuses a base plan with streams and unknown bandwidths") {
  const Problem p = idle_graph();
  CHECK(contains(error_of([&] {
                   plan_offload(p, idle_plan(), 300, 100, {100, 100});
                 }),
                 "base plan must be serial"));
  CHECK(contains(error_of([&] { plan_offload(p, natural_plan(p), 300, 100, {}); }),
                 "positive bandwidths"));
  // The idle graph: a offloaded across d, as by hand.
  const OffloadPlan o = plan_offload(p, natural_plan(p), 220, 100, {100, 100});
  check_offload_plan(p, o, 220, 100);
  CHECK(o.copies == 2);
}

TEST_CASE("offload: parse_bandwidth") {
  CHECK(parse_bandwidth("12e9").out == 12e9);
  CHECK(parse_bandwidth("12e9").in == 12e9);
  CHECK(parse_bandwidth("2GB/s").out == 2e9);
  const TierBandwidth b = parse_bandwidth("512MiB/s,1GB");
  CHECK(b.out == 512.0 * 1024 * 1024);
  CHECK(b.in == 1e9);
  for (const char* bad : {"", "fast", "0", "-5", "2GB/s,", "0.5"}) {
    CAPTURE(bad);
    // "0.5" is half a byte per second: positive, accepted; the rest are refused.
    if (std::string(bad) == "0.5") {
      CHECK(parse_bandwidth(bad).out == 0.5);
      continue;
    }
    CHECK(contains(error_of([&] { parse_bandwidth(bad); }), "expected OUT[,IN] in bytes/s"));
  }
}

TEST_CASE("offload: lethe-plan --host-budget plans, --check checks, --sweep adds makespans") {
  const std::string graph = std::string(LETHE_SCHEDULER_TEST_DATA) + "/chain3-train.graph.json";
  const std::string plan_file = (std::filesystem::temp_directory_path() /
                                 ("lethe-offload-" + std::to_string(::getpid()) + ".plan.json"))
                                    .string();
  CliRun r =
      lethe_plan(graph + " --budget 1800 --host-budget 600 --bandwidth 400,800 -o " + plan_file);
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "recompute-only    infeasible"));
  CHECK(contains(r.out, "joint"));
  r = lethe_plan("--check " + graph + " " + plan_file + " --bandwidth 400,800");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "valid          yes"));
  CHECK(contains(r.out, "tier peak      504 bytes"));
  CHECK(contains(r.out, "host budget    600 bytes"));
  // Without bandwidths the plan is still valid; its time is unknown.
  r = lethe_plan("--check " + graph + " " + plan_file);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "makespan       unknown"));
  // A smaller tier at check time: refused, naming the rule.
  r = lethe_plan("--check " + graph + " " + plan_file + " --host-budget 500");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "rule 8: offload node"));
  CHECK(contains(r.out, "over the host budget of 500"));
  std::filesystem::remove(plan_file);
  // Copies need bandwidths; too small a tier names both budgets.
  r = lethe_plan(graph + " --budget 1800 --host-budget 600");
  CHECK(r.code == 2);
  CHECK(contains(r.out, "--host-budget needs --bandwidth"));
  r = lethe_plan(graph + " --budget 1800 --host-budget 100 --bandwidth 1GB/s");
  CHECK(r.code == 2);
  CHECK(contains(r.out, "device budget of 1800 bytes with a host budget of 100 bytes"));
  r = lethe_plan(graph + " --sweep --host-budget 1KiB --bandwidth 400");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "with a second tier of 1.00 KiB"));
  CHECK(contains(r.out, "offload-only"));
  // Without --host-budget the sweep is what it was.
  CHECK_FALSE(contains(lethe_plan(graph + " --sweep").out, "second tier"));
}

// Two buffers of a layout that share bytes must be ordered in every order: the free of one before
// the allocation (compute or fetch) of the other.
static void check_layout_safe(const Problem& p, const Plan& plan, const Layout& l) {
  struct Buf {
    int64_t off, size;
    int64_t start, end;  // allocating step, freeing step (-1: never)
  };
  std::vector<Buf> bufs;
  std::vector<int> open(p.nodes.size(), -1);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    if (p.nodes[static_cast<size_t>(s.node)].resident) continue;
    if (s.kind == Step::Kind::compute || s.kind == Step::Kind::fetch) {
      open[static_cast<size_t>(s.node)] = static_cast<int>(bufs.size());
      bufs.push_back({l.offsets[i],
                      std::max<int64_t>(p.nodes[static_cast<size_t>(s.node)].bytes, 1),
                      static_cast<int64_t>(i), -1});
    } else if (s.kind == Step::Kind::free) {
      bufs[static_cast<size_t>(open[static_cast<size_t>(s.node)])].end = static_cast<int64_t>(i);
    }
  }
  const StepOrder order(plan);
  for (size_t a = 0; a < bufs.size(); ++a) {
    for (size_t b = a + 1; b < bufs.size(); ++b) {
      const Buf &x = bufs[a], &y = bufs[b];
      if (x.off + x.size <= y.off || y.off + y.size <= x.off) continue;
      const bool apart = (x.end >= 0 && order.before(x.end, y.start)) ||
                         (y.end >= 0 && order.before(y.end, x.start));
      CHECK_MESSAGE(apart, "buffers of steps " << x.start << " and " << y.start << " share bytes");
    }
  }
}

TEST_CASE("offload: plans with copies on generated graphs are valid, and their layouts safe") {
  int planned = 0, refused = 0;
  for (const std::string& family : generator_families()) {
    for (uint64_t seed = 1; seed <= 2; ++seed) {
      const Problem p = generate(family, 24, seed);
      const TierBandwidth bw = balanced_bandwidth(p);
      const Plan base = natural_plan(p);
      for (double f : {0.75, 0.5, 0.25, 0.1}) {
        CAPTURE(family);
        CAPTURE(seed);
        CAPTURE(f);
        const int64_t budget = fraction_budget(f, p);
        const int64_t host = no_remat_peak(p);
        try {
          const OffloadPlan o = plan_offload(p, base, budget, host, bw);
          check_offload_plan(p, o, budget, host);
          const Layout l = layout_plan(p, o.plan, 64);
          check_layout_safe(p, o.plan, l);
          // The plan file round-trips.
          CHECK(read_plan_json(plan_to_string(o.plan)).steps == o.plan.steps);
          ++planned;
        } catch (const Infeasible& e) {
          CHECK(contains(e.what(), "host budget of " + std::to_string(host) + " bytes"));
          ++refused;
        }
        if (f == 0.25) {
          const JointPlans j = [&] {
            try {
              return plan_joint(p, budget, host, bw, "lethe", 2);
            } catch (const Infeasible&) {
              return JointPlans{};
            }
          }();
          if (j.joint) {
            check_offload_plan(p, *j.joint, budget, host);
            if (j.recompute_only) CHECK(j.joint->makespan <= j.recompute_only->makespan);
            if (j.offload_only) CHECK(j.joint->makespan <= j.offload_only->makespan);
          }
        }
      }
    }
  }
  CHECK(planned > refused);
  MESSAGE("generated graphs: " << planned << " offload plans, " << refused << " refused");
}
