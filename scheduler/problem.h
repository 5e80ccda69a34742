// The planning problem and the plan, as in shared/specs/graph-and-plan-format.md.
//
//   lethe::sched::Problem p = lethe::sched::read_problem_file("g.graph.json");
//   lethe::sched::Plan plan = lethe::sched::plan(p, lethe::sched::parse_budget("0.5", p), "treewidth");
//   lethe::sched::SimResult r = lethe::sched::simulate(p, plan);   // r.valid, r.peak_bytes, r.cost
//
// The scheduler never sees a tensor: a node is bytes, a cost and its inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lethe::sched {

using NodeId = int32_t;

struct Node {
  NodeId id = 0;
  std::string name;
  std::string op;
  int64_t bytes = 0;   // size of the node's output
  double cost = 0.0;   // cost of computing it once
  std::vector<NodeId> inputs;  // all smaller than id (topological order)
  bool resident = false;       // in memory from the start, never computed, never freed
};

struct Problem {
  std::string name;
  std::vector<Node> nodes;      // nodes[i].id == i
  std::vector<NodeId> outputs;  // must be in memory at the end

  int size() const { return static_cast<int>(nodes.size()); }
};

struct Step {
  enum class Kind : uint8_t { compute, free };
  Kind kind = Kind::compute;
  NodeId node = 0;
  static Step compute(NodeId v) { return {Kind::compute, v}; }
  static Step free(NodeId v) { return {Kind::free, v}; }
  bool operator==(const Step&) const = default;
};

struct Plan {
  std::string graph;    // the problem's name
  std::string planner;  // who made it
  int64_t budget_bytes = 0;
  std::vector<Step> steps;
  int64_t predicted_peak_bytes = 0;  // filled by the simulator
  double predicted_cost = 0.0;
};

}  // namespace lethe::sched
