// The planning problem and the plan, as in shared/specs/graph-and-plan-format.md.
//
//   lethe::sched::Problem p = lethe::sched::read_problem_file("g.graph.json");
//   lethe::sched::Plan plan = lethe::sched::plan(p, lethe::sched::parse_budget("0.5", p),
//   "treewidth"); lethe::sched::SimResult r = lethe::sched::simulate(p, plan);   // r.valid,
//   r.peak_bytes, r.cost
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
  int64_t bytes = 0;           // size of the node's output
  double cost = 0.0;           // cost of computing it once
  std::vector<NodeId> inputs;  // all smaller than id (topological order)
  bool resident = false;       // in memory from the start, never computed, never freed
};

struct Problem {
  std::string name;
  std::vector<Node> nodes;      // nodes[i].id == i
  std::vector<NodeId> outputs;  // must be in memory at the end

  int size() const { return static_cast<int>(nodes.size()); }
};

// A step runs on a stream: steps of one stream run in the order of Plan::steps, and a step also
// waits for the steps named in `after` (indices of earlier steps, usually on other streams). A plan
// whose steps are all on stream 0 with no waits is the spec's serial plan (docs/plan-format.md).
struct Step {
  enum class Kind : uint8_t { compute, free };
  Kind kind = Kind::compute;
  NodeId node = 0;
  int stream = 0;
  std::vector<int64_t> after;  // indices into Plan::steps, each smaller than this step's own
  static Step compute(NodeId v, int stream = 0, std::vector<int64_t> after = {}) {
    return make(Kind::compute, v, stream, std::move(after));
  }
  static Step free(NodeId v, int stream = 0, std::vector<int64_t> after = {}) {
    return make(Kind::free, v, stream, std::move(after));
  }
  bool operator==(const Step&) const = default;

 private:
  static Step make(Kind k, NodeId v, int stream, std::vector<int64_t> after) {
    Step s;
    s.kind = k;
    s.node = v;
    s.stream = stream;
    s.after = std::move(after);
    return s;
  }
};

struct Plan {
  std::string graph;    // the problem's name
  std::string planner;  // who made it
  int64_t budget_bytes = 0;
  std::vector<Step> steps;
  int streams = 0;  // the file's "streams"; 0 when not stated (then 1 + the largest stream used)
  int64_t predicted_peak_bytes = 0;  // filled by the simulator
  double predicted_cost = 0.0;
};

}  // namespace lethe::sched
