#include <doctest/doctest.h>

#include <limits>

#include "scheduler/generators.h"
#include "scheduler/graph_io.h"
#include "scheduler/simulator.h"
#include "test_helpers.h"

using namespace lethe::sched;
using lethe::sched::test::contains;
using lethe::sched::test::error_of;

namespace {

const std::string kData = LETHE_SCHEDULER_TEST_DATA;

std::string graph_with(const std::string& nodes, const std::string& outputs = "[1]",
                       const std::string& format = "\"remat-graph/1\"") {
  return "{\"format\": " + format + ", \"name\": \"t\", \"nodes\": [" + nodes +
         "], \"outputs\": " + outputs + "}";
}
const std::string kN0 = R"({"id": 0, "bytes": 8, "cost": 0, "inputs": [], "resident": true})";

}  // namespace

TEST_CASE("graph_io: reads the spec example") {
  const Problem p = read_problem_file(kData + "/chain3-train.graph.json");
  CHECK(p.name == "chain3-train");
  REQUIRE(p.size() == 12);
  CHECK(p.nodes[0].resident);
  CHECK_FALSE(p.nodes[3].resident);  // default false
  CHECK(p.nodes[10].inputs == std::vector<NodeId>{9, 3});
  CHECK(p.nodes[4].cost == doctest::Approx(0.2));
  CHECK(p.outputs == std::vector<NodeId>{6, 8, 11});
  CHECK(resident_bytes(p) == 600);
  CHECK(floor_bytes(p) == 804);
  CHECK(no_remat_peak(p) == 1904);
  CHECK(no_remat_cost(p) == doctest::Approx(5.6));
}

TEST_CASE("graph_io: the spec example plan is read with its predicted block") {
  const Plan plan = read_plan_file(kData + "/chain3-train.keep-all.plan.json");
  CHECK(plan.graph == "chain3-train");
  CHECK(plan.planner == "keep-all");
  CHECK(plan.budget_bytes == 1904);
  REQUIRE(plan.steps.size() == 15);
  CHECK(plan.steps[4] == Step::free(5));
  CHECK(plan.predicted_peak_bytes == 1904);
  CHECK(plan.predicted_cost == doctest::Approx(5.6));
}

TEST_CASE("graph_io: round trip of generated graphs and plans") {
  for (const std::string& family : generator_families()) {
    const Problem p = generate(family, 30, 5);
    const Problem q = read_problem_json(problem_to_string(p));
    REQUIRE(q.size() == p.size());
    CHECK(q.name == p.name);
    CHECK(q.outputs == p.outputs);
    for (int i = 0; i < p.size(); ++i) {
      CHECK(q.nodes[i].name == p.nodes[i].name);
      CHECK(q.nodes[i].op == p.nodes[i].op);
      CHECK(q.nodes[i].bytes == p.nodes[i].bytes);
      CHECK(q.nodes[i].cost == p.nodes[i].cost);  // nlohmann writes doubles round-trip exact
      CHECK(q.nodes[i].inputs == p.nodes[i].inputs);
      CHECK(q.nodes[i].resident == p.nodes[i].resident);
    }
  }
  Plan plan;
  plan.graph = "g";
  plan.planner = "sqrt";
  plan.budget_bytes = 1234;
  plan.steps = {Step::compute(3), Step::free(2), Step::compute(7)};
  plan.predicted_peak_bytes = 1000;
  plan.predicted_cost = 0.125;
  const Plan back = read_plan_json(plan_to_string(plan));
  CHECK(back.graph == "g");
  CHECK(back.planner == "sqrt");
  CHECK(back.budget_bytes == 1234);
  CHECK(back.steps == plan.steps);
  CHECK(back.predicted_peak_bytes == 1000);
  CHECK(back.predicted_cost == 0.125);
}

TEST_CASE("graph_io: extra fields are ignored") {
  const Problem p = read_problem_json(
      R"({"format": "remat-graph/1", "producer": "x", "nodes": [
          {"id": 0, "bytes": 8, "cost": 0, "inputs": [], "resident": true, "dtype": "f32"},
          {"id": 1, "bytes": 8, "cost": 1.5, "inputs": [0, 0], "shape": [2]}], "outputs": [1], "extra": {}})");
  CHECK(p.size() == 2);
  CHECK(p.nodes[1].inputs == std::vector<NodeId>{0, 0});
}

TEST_CASE("graph_io: malformed graphs are refused with the node and the rule") {
  const std::string n1 = R"({"id": 1, "bytes": 8, "cost": 1, "inputs": [0]})";
  CHECK(contains(
      error_of([&] { read_problem_json(graph_with(kN0 + "," + n1, "[1]", "\"remat-graph/2\"")); }),
      "wrong format"));
  CHECK(contains(error_of([&] { read_problem_json(R"({"nodes": [], "outputs": []})"); }),
                 "\"format\""));
  CHECK(contains(error_of([&] {
                   read_problem_json(
                       graph_with(kN0 + R"(,{"id": 2, "bytes": 8, "cost": 1, "inputs": [0]})"));
                 }),
                 "ids must be 0..n-1"));
  CHECK(contains(error_of([&] {
                   read_problem_json(
                       graph_with(kN0 + R"(,{"id": 1, "bytes": 8, "cost": 1, "inputs": [7]})"));
                 }),
                 "node 1: input 7 does not exist"));
  CHECK(contains(error_of([&] {
                   read_problem_json(
                       graph_with(kN0 + R"(,{"id": 1, "bytes": 8, "cost": 1, "inputs": [1]})"));
                 }),
                 "node 1: input 1 is not smaller than the node's id"));
  CHECK(contains(error_of([&] {
                   read_problem_json(
                       graph_with(kN0 + R"(,{"id": 1, "bytes": -8, "cost": 1, "inputs": [0]})"));
                 }),
                 "node 1: bytes must be non-negative"));
  CHECK(contains(error_of([&] {
                   read_problem_json(
                       graph_with(kN0 + R"(,{"id": 1, "bytes": 8, "cost": -1, "inputs": [0]})"));
                 }),
                 "node 1: cost must be finite and non-negative"));
  CHECK(contains(error_of([&] {
                   read_problem_json(
                       graph_with(kN0 + R"(,{"id": 1, "bytes": 8, "cost": 1e999, "inputs": [0]})"));
                 }),
                 "bad JSON"));  // nlohmann refuses the overflow itself
  {
    Problem inf = read_problem_json(graph_with(kN0 + "," + n1));
    inf.nodes[1].cost = std::numeric_limits<double>::infinity();
    CHECK(contains(error_of([&] { validate_problem(inf); }), "node 1: cost must be finite"));
  }
  CHECK(contains(error_of([&] { read_problem_json(graph_with(kN0 + "," + n1, "[5]")); }),
                 "output 5 does not exist"));
  CHECK(contains(error_of([&] {
                   read_problem_json(graph_with(kN0 + R"(,{"id": 1, "cost": 1, "inputs": [0]})"));
                 }),
                 "node 1: missing required field \"bytes\""));
  CHECK(contains(error_of([&] { read_problem_json(R"({"format": "remat-graph/1", "nodes": [)"); }),
                 "bad JSON"));
  CHECK(contains(error_of([&] { read_problem_file("/nonexistent/g.json"); }), "cannot open"));

  Problem p = read_problem_json(graph_with(kN0 + "," + n1));
  p.nodes[1].inputs = {1};
  CHECK(contains(error_of([&] { validate_problem(p); }), "not smaller"));
}

TEST_CASE("graph_io: malformed plans are refused") {
  CHECK(contains(error_of([] {
                   read_plan_json(R"({"format": "remat-graph/1", "budget_bytes": 1, "steps": []})");
                 }),
                 "wrong format"));
  CHECK(contains(error_of([] { read_plan_json(R"({"format": "remat-plan/1", "steps": []})"); }),
                 "budget_bytes"));
  CHECK(contains(error_of([] {
                   read_plan_json(
                       R"({"format": "remat-plan/1", "budget_bytes": 1, "steps": [{"x": 1}]})");
                 }),
                 "step 0: must have exactly one"));
}

TEST_CASE(
    "graph_io: sizes past what the scheduler's sums hold are refused, naming the node and the "
    "number written") {
  // 2^64-1 bytes: said as written, not as -1.
  CHECK(contains(
      error_of([] {
        read_problem_json(graph_with(
            kN0 + std::string(
                      R"(, {"id": 1, "bytes": 18446744073709551615, "cost": 1, "inputs": [0]})")));
      }),
      "18446744073709551615"));
  // An id of 2^62 is not read as 0.
  CHECK(contains(
      error_of([] {
        read_problem_json(graph_with(
            R"({"id": 4611686018427387904, "bytes": 8, "cost": 0, "inputs": [], "resident": true})",
            "[0]"));
      }),
      "has id 4611686018427387904"));
  // Bytes that would overflow a sum (the crash with 2^63-1 at a fraction budget): refused at read.
  const std::string big = R"({"id": 1, "bytes": 9223372036854775807, "cost": 1, "inputs": [0]})";
  CHECK(contains(error_of([&] { read_problem_json(graph_with(kN0 + std::string(", ") + big)); }),
                 "node 1: its 9223372036854775807 bytes"));
  const std::string half =
      R"({"id": 1, "bytes": 4611686018427387904, "cost": 1, "inputs": [0], "resident": true})";
  const std::string half2 = R"({"id": 2, "bytes": 4611686018427387904, "cost": 1, "inputs": [1]})";
  CHECK(contains(error_of([&] {
                   read_problem_json(
                       graph_with(kN0 + std::string(", ") + half + ", " + half2, "[2]"));
                 }),
                 "past 4611686018427387904 bytes"));
  // Costs that add up to infinity: one message that does not contradict itself.
  const std::string c1 = R"({"id": 1, "bytes": 8, "cost": 1e308, "inputs": [0]})";
  const std::string c2 = R"({"id": 2, "bytes": 8, "cost": 1e308, "inputs": [1]})";
  const std::string e = error_of(
      [&] { read_problem_json(graph_with(kN0 + std::string(", ") + c1 + ", " + c2, "[2]")); });
  CHECK(contains(e, "node 1: its cost 1e+308 takes the graph's total cost past 1e+30"));
  // An input id past int32 is not narrowed into a valid one.
  CHECK(contains(
      error_of([] {
        read_problem_json(graph_with(
            kN0 + std::string(R"(, {"id": 1, "bytes": 8, "cost": 1, "inputs": [4294967296]})")));
      }),
      "input 4294967296 does not exist"));
}

TEST_CASE("generators: the number of operations has a documented upper bound") {
  CHECK(contains(error_of([] { generate("chain", 2'000'000, 1); }), "at most 1000000"));
}
