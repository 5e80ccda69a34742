// Plans with streams (docs/plan-format.md): the order their waits allow, the exact worst-case
// memory over every execution order, validity over every order, and the predicted time.
//
//   StepOrder order(plan);                         // throws Error naming a step that waits on a
//   later one order.before(i, j);                            // step i finishes before step j
//   starts, in every order WorstCase w = worst_case_memory(p, plan);      // w.peak_bytes, w.live:
//   the steps holding it double t = makespan(p, plan);                  // streams run in parallel,
//   waits respected SimResult r = simulate(p, plan);               // uses all of the above when
//   the plan has streams
//
// The steps form a partial order P: each step follows the previous step of its stream and every
// step in its `after`. An execution may run the steps in any linear extension of P; a plan is valid
// when every one of them is valid under the spec's sequential rules, and its peak is the largest
// memory in use over all of them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scheduler/problem.h"
#include "scheduler/simulator.h"

namespace lethe::sched {

// Some step is off stream 0 or waits for another: the plan is not the serial plan of the spec.
bool has_streams(const Plan& plan);
// plan.streams when stated, else 1 + the largest stream a step uses (at least 1).
int stream_count(const Plan& plan);

// The first step whose stream or waits are malformed, with the reason: a wait on itself, on a later
// step (the message says when that closes a cycle, and which), on a step that does not exist, a
// negative stream, a stream not below plan.streams, or plan.streams < 0. -1 and "" when none.
struct StructureError {
  int64_t step = -1;
  std::string message;  // "step 5: ..." naming the rule
};
StructureError stream_structure_error(const Plan& plan);

// Reachability in P by vector clocks: for every step and every stream, the last step of that stream
// ordered before it (exact, O((steps + waits) x streams) time, steps x streams memory; streams that
// no step uses take no room).
class StepOrder {
 public:
  // Throws Error with stream_structure_error()'s message when the plan's waits are malformed.
  explicit StepOrder(const Plan& plan);
  // Step a finishes before step b starts in every allowed order (a <_P b; false when a == b).
  bool before(int64_t a, int64_t b) const;
  bool ordered(int64_t a, int64_t b) const { return before(a, b) || before(b, a); }
  int64_t size() const { return static_cast<int64_t>(stream_.size()); }

  // The clocks themselves (for the worst-case search): streams renumbered 0..streams_in_use()-1
  // in order of first use; clock(i, t): position in stream t of the last step <=_P step i, or -1.
  int streams_in_use() const { return k_; }
  int32_t stream_index(int64_t i) const { return stream_[static_cast<size_t>(i)]; }
  int32_t position(int64_t i) const { return pos_[static_cast<size_t>(i)]; }
  int32_t clock(int64_t i, int t) const {
    return clock_[static_cast<size_t>(i) * static_cast<size_t>(k_) + static_cast<size_t>(t)];
  }

 private:
  int k_ = 0;                    // streams in use
  std::vector<int32_t> stream_;  // per step: its stream, renumbered 0..k_-1
  std::vector<int32_t> pos_;     // per step: its position within its stream
  // steps x k_: position of the last step of each stream <=_P the step, -1 none.
  std::vector<int32_t> clock_;
};

// Layout safety: the buffer freed by `free_step` may share arena bytes with the one created by
// `compute_step` only when every allowed order runs the free first (and with it, for a valid plan,
// every read of the freed value: those are ordered before its free).
inline bool may_share(const StepOrder& order, int64_t free_step, int64_t compute_step) {
  return order.before(free_step, compute_step);
}

// The largest memory in use over every allowed order and every prefix of it: resident bytes plus a
// maximum-weight down-closed set (ideal) of P, weighing +bytes for a compute and -bytes for a free,
// found exactly by a minimum cut (Picard's reduction; Dinic's max-flow on the stream edges and, per
// step and other stream, one edge to the last step of that stream before it where the step's
// stream predecessor does not already reach it: closure under those is closure under P). A greedy
// flow (each compute's bytes to the latest frees ordered before it, its own stream first) starts
// the search; on a serial plan it is already maximal.
struct WorstCase {
  int64_t peak_bytes = 0;
  std::vector<int64_t>
      ideal;  // steps that have run at the worst moment (sorted; empty: none must have)
  std::vector<int64_t>
      live;  // its compute steps whose value is still in memory: they hold it together
};
// Throws Error when a step names a node that does not exist or the waits are malformed.
// `greedy_start` false: the max-flow from zero (slower; the tests check both against brute force).
// On a plan with copies (docs/plan-format.md), a fetch is an allocation like a compute, and an
// offload or a drop weighs nothing on the device.
WorstCase worst_case_memory(const Problem& p, const Plan& plan, bool greedy_start = true);
// The same on the second tier: each offload weighs +bytes (the copy is held from the offload's
// start), each drop -bytes, from an empty tier; `live` lists the offloads whose copy is held.
WorstCase worst_case_tier_memory(const Problem& p, const Plan& plan, bool greedy_start = true);

// simulate() for any plan, by the rules above (the serial fast path in simulate() gives the same
// numbers on serial plans; tests compare them). Checks the rules in step order and reports the
// earliest step that breaks one in some order, naming the other step involved; then the budget
// against the worst-case peak, then (a plan with copies) the second tier's worst-case peak against
// host_budget_bytes. cost sums every compute step; makespan is makespan(), -1 for a plan with
// copies whose bandwidths the problem does not give.
SimResult simulate_streams(const Problem& p, const Plan& plan);

// Predicted time: each stream runs its steps in order; a step starts once its stream is free and
// the steps it waits for are done; a compute lasts its node's cost (cost[node] when `cost` is
// given, e.g. costs measured in this stream configuration), a free or a drop lasts 0, an offload
// bytes / p.bandwidth.out and a fetch bytes / p.bandwidth.in (the copy streams are channels like
// any other). A serial plan's makespan is its cost. Throws Error on a malformed plan (bad node, bad
// wait), a cost vector of the wrong size, or a copy whose bandwidth is not known.
double makespan(const Problem& p, const Plan& plan, const std::vector<double>* cost = nullptr);

}  // namespace lethe::sched
