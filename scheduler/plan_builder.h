// Shared machinery of the planners: a preprocessed view of the problem (Dag), the forward/backward
// split of a training graph, and an Executor that turns "I need node v now" into valid compute/free
// steps, recomputing whatever is missing. A planner decides WHAT stays in memory (through the drop
// policy); the executor guarantees the plan is valid by construction, whatever the policy.
//
//   Dag g(p);
//   CheckpointSpec spec = all_kept(g);               // keep-all
//   std::optional<Plan> plan = build_checkpoint_plan(g, spec, budget);
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "scheduler/problem.h"

namespace lethe::sched {

// Adjacency in compressed rows, inputs and consumers without duplicates (the spec allows repeated
// inputs; they mean nothing extra).
struct Dag {
  explicit Dag(const Problem& p);

  std::span<const NodeId> inputs(NodeId v) const {
    return {in_.data() + in_start_[v], in_.data() + in_start_[v + 1]};
  }
  std::span<const NodeId> consumers(NodeId v) const {
    return {out_.data() + out_start_[v], out_.data() + out_start_[v + 1]};
  }

  const Problem* problem;
  int n = 0;
  std::vector<int64_t> bytes;
  std::vector<double> cost;
  std::vector<uint8_t> resident;
  std::vector<uint8_t> is_output;
  std::vector<uint8_t> needed;  // non-resident and some output depends on it (or it is one)
  std::vector<NodeId> targets;  // needed nodes in id order: what a schedule computes at least once
  std::vector<NodeId> outputs;  // distinct

 private:
  std::vector<int32_t> in_start_, out_start_;
  std::vector<NodeId> in_, out_;
};

// The forward/backward split of a training graph. The loss is the output with the most needed
// ancestors among the outputs some needed node reads (the framework's gradient seed reads the
// loss) or, when nothing reads an output (PyTorch's joint graphs, whose seed is a resident
// tangent), among the outputs not reached from where the backward starts: the node that leads to
// the most outputs short of all of them. The forward is the loss and its needed ancestors, the
// backward every other needed node. A graph without such an output (inference) is all forward.
struct TrainingSplit {
  NodeId loss = -1;
  std::vector<uint8_t> backward;  // per node
  std::vector<NodeId> forward;    // needed forward nodes in id order (the loss included)
};
TrainingSplit split_training(const Dag& g);
// The read output with the most ancestors, whether or not the other outputs are computed from it,
// and the backward its descendants (the rule before PyTorch's graphs). In those it splits at a late
// backward op; sqrt keeps that as a further option (sqrt.cpp).
TrainingSplit split_at_read_output(const Dag& g);

// Forward nodes that separate the forward part: no forward edge jumps over them (the single-node
// cuts of the forward graph taken in id order). The last forward node is always a cut.
std::vector<uint8_t> forward_cuts(const Dag& g, const TrainingSplit& s);

// Stage of every backward node from the segment numbers of the forward nodes: the largest segment
// among its forward inputs, but no larger than the smallest stage among its backward inputs (the
// last of them to be made), else that smallest stage, else `last_segment`. Backward work then runs
// stage by stage from the last segment to the first. Without `wait_for_inputs`: the largest
// segment among its forward inputs, else the largest stage among its backward inputs (a node that
// sums gradients of several stages then runs with the earliest-made one; its later inputs are
// made on demand).
void assign_backward_stages(const Dag& g, const TrainingSplit& s, std::vector<int>& stage,
                            int last_segment, bool wait_for_inputs = true);

// The problem with its late outputs moved to the end of the id order: an output nothing reads
// whose bytes exceed those of its computed inputs (a parameter's gradient in the last layers of a
// CNN: megabytes of weights from kilobytes of activations). Planners that follow the id order
// hold such outputs from the start of the backward to its end, over the first layers' working
// set; computed last, they hold only their inputs. `old_id[new id]` is the node's id in `p`.
// nullopt when no output moves.
struct Reordered {
  Problem problem;
  std::vector<NodeId> old_id;
};
std::optional<Reordered> late_outputs_last(const Problem& p);
// The plan of `r.problem` as a plan of the original problem.
Plan plan_in_original(Plan plan, const Reordered& r);

// SplitMix64: the scheduler's deterministic generator (graph generators, DTR's and lethe's
// sampling of eviction candidates, lethe's search).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53;
  }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  bool chance(double p) { return uniform(0, 1) < p; }
};

// Builds steps for a sequence of demands. Memory holds what the policy keeps; values that a pending
// compute needs are pinned and never freed or evicted.
class Executor {
 public:
  Executor(const Dag& g, int64_t limit);

  // Computes v unless it is in memory, recomputing any missing input first (iteratively: chains of
  // 10^4 recomputations must not overflow the stack). Returns false once the executor failed (over
  // the limit with nothing to evict, or over the step limit).
  bool ensure(NodeId v);
  void free(NodeId v);  // no-op unless v is in memory and not resident
  bool in_memory(NodeId v) const { return in_mem_[v] != 0; }
  bool pinned(NodeId v) const { return pin_[v] != 0; }
  bool failed() const { return failed_; }
  int64_t memory() const { return mem_; }
  int64_t peak() const { return peak_; }
  double cost() const { return cost_; }
  int64_t steps() const { return static_cast<int64_t>(steps_.size()); }
  std::vector<Step> take_steps() { return std::move(steps_); }
  // Makes the plan: steps, budget, peak and cost as the executor measured them.
  Plan make_plan(const std::string& planner, int64_t budget);
  // Computes every target in order (`before(i)` runs first for target i), offering its inputs and
  // then itself to `drop` after each, and finally makes sure every output is in memory. False once
  // the executor failed.
  bool run_targets(const std::function<void(size_t)>& before = {});

  // After a compute, each input that no pending compute needs any more is offered to `drop`;
  // returning true frees it at once. Resident inputs are never offered. Default: keep.
  std::function<bool(NodeId)> drop;
  // Called before a compute of `bytes` that would take memory over the limit; it may free unpinned
  // values (evictions). Returns false when it cannot make enough room.
  std::function<bool(NodeId, int64_t bytes)> make_room;
  // Called after every compute (bookkeeping for DTR).
  std::function<void(NodeId)> on_compute;
  int64_t max_steps = INT64_MAX;

 private:
  bool compute(NodeId v);
  const Dag& g_;
  int64_t limit_;
  std::vector<uint8_t> in_mem_;
  std::vector<int32_t> pin_;
  std::vector<Step> steps_;
  struct Frame {
    NodeId v;
    int32_t k;
  };
  std::vector<Frame> stack_;
  int64_t mem_ = 0, peak_ = 0;
  double cost_ = 0.0;
  bool failed_ = false;
};

// A single-level checkpointing policy: every needed node is computed in id order; a value with
// keep[v] stays until its last use; any other value stays only while its next use is by a node of
// the same stage as the node being computed now, and is otherwise freed and recomputed on demand
// from whatever is in memory. Outputs always stay. Chen et al.'s schedule is keep = checkpoints +
// backward nodes, stage = 0 for the forward part and 1 + segment for the backward part.
struct CheckpointSpec {
  std::vector<uint8_t> keep;
  std::vector<int> stage;
};
CheckpointSpec all_kept(const Dag& g);

struct BuildResult {
  Plan plan;
  int64_t peak = 0;
  double cost = 0.0;
};
// nullopt when the plan would exceed `budget` (the build stops there: failing is cheap) or would
// be absurdly long (more than 32x the steps of the natural schedule).
std::optional<BuildResult> build_checkpoint_plan(const Dag& g, const CheckpointSpec& spec,
                                                 int64_t budget, const std::string& planner);

}  // namespace lethe::sched
