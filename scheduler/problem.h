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

// Bandwidths of the copies between the device and the second memory tier (host memory for a GPU, a
// file for a CPU), in bytes per second: an offload of v lasts bytes(v) / out, a fetch bytes(v) /
// in. 0: not measured (a plan with copies then has no predicted time: makespan() refuses it).
struct TierBandwidth {
  double out = 0.0;  // device -> tier
  double in = 0.0;   // tier -> device
  bool known() const { return out > 0.0 && in > 0.0; }
};

struct Problem {
  std::string name;
  std::vector<Node> nodes;      // nodes[i].id == i
  std::vector<NodeId> outputs;  // must be in memory at the end
  // The graph file's optional "bandwidth": {"out": B, "in": B}, or lethe-plan --bandwidth.
  TierBandwidth bandwidth;

  int size() const { return static_cast<int>(nodes.size()); }
};

// A step runs on a stream: steps of one stream run in the order of Plan::steps, and a step also
// waits for the steps named in `after` (indices of earlier steps, usually on other streams). A plan
// whose steps are all on stream 0 with no waits is the spec's serial plan (docs/plan-format.md).
//
// Copies to a second tier (docs/plan-format.md, "Copies to a second tier"): `offload` copies v from
// the device to the tier (v stays on the device until a later free), `fetch` copies it back (an
// allocation on the device, like a compute; later reads of v read this copy), `drop` releases v's
// tier copy.
struct Step {
  enum class Kind : uint8_t { compute, free, offload, fetch, drop };
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
  static Step offload(NodeId v, int stream = 0, std::vector<int64_t> after = {}) {
    return make(Kind::offload, v, stream, std::move(after));
  }
  static Step fetch(NodeId v, int stream = 0, std::vector<int64_t> after = {}) {
    return make(Kind::fetch, v, stream, std::move(after));
  }
  static Step drop(NodeId v, int stream = 0, std::vector<int64_t> after = {}) {
    return make(Kind::drop, v, stream, std::move(after));
  }
  bool is_copy() const {
    return kind == Kind::offload || kind == Kind::fetch || kind == Kind::drop;
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
  // The file's "host_budget_bytes": bytes the second tier may hold at once (worst case over every
  // order). -1 when not stated: the plan may not copy (any offload/fetch/drop is refused).
  int64_t host_budget_bytes = -1;
  int64_t predicted_peak_bytes = 0;  // filled by the simulator
  double predicted_cost = 0.0;
};

// The step's kind as the file spells it ("compute", "free", "offload", "fetch", "drop").
inline const char* kind_name(Step::Kind k) {
  switch (k) {
    case Step::Kind::compute:
      return "compute";
    case Step::Kind::free:
      return "free";
    case Step::Kind::offload:
      return "offload";
    case Step::Kind::fetch:
      return "fetch";
    case Step::Kind::drop:
      return "drop";
  }
  return "?";
}
inline bool has_copies(const Plan& plan) {
  for (const Step& s : plan.steps)
    if (s.is_copy()) return true;
  return false;
}

}  // namespace lethe::sched
