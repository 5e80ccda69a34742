// The step graph as a scheduler problem: bytes from shapes, costs from the ops' estimates or from
// measured times, residents = leaves (parameters, optimizer state, the batch), outputs = values
// the user still holds plus the inputs of side-effect nodes (which run after the plan). An op with
// workspace gets a workspace node (op "workspace", cost 0, no inputs) just before it, as an extra
// input: its workspace is in memory only while it runs, and the plan and the layout account for it.
#pragma once

#include <cstdint>
#include <vector>

#include "framework/graph.h"
#include "scheduler/problem.h"

namespace lethe {

// What a resident value of the step is, for the budget breakdown of an infeasible step.
enum class ResidentRole : uint8_t { other, parameter, optimizer_state };

// Everything compile_step() needs (framework/compile_step.h): a step of a session, or a graph file
// (from_problem(): no workspaces, no side effects, every resident "other").
struct StepProblem {
  sched::Problem problem;
  std::vector<int> to_graph;       // problem id -> graph node id (for a workspace node: its op)
  std::vector<int> from_graph;     // graph node id -> problem id, -1 when not needed
  std::vector<uint8_t> scratch;    // per problem id: 1 for an op's workspace node
  std::vector<ResidentRole> role;  // per problem id (residents only; others: other)
  std::vector<uint8_t> gradient;   // per problem id: 1 for a parameter's gradient
  // Per problem id: 1 for a collective (all_reduce, dist/dist.h). Every rank must run its
  // collectives once each and in one order: a plan computes each exactly once, in id order, and a
  // plan on streams runs them on a communication stream of their own.
  std::vector<uint8_t> comm;
  std::vector<uint8_t> from_bucket;  // per problem id: 1 for a copy out of a bucket (bucket_slice)
  // Per problem id: 1 for a side effect planned inside the step (an early update: an optimizer
  // update or another in-place write of long-lived values, run as soon as its inputs are final).
  // It must run once, and after every compute, recomputations included, of a node that reads what
  // it overwrites: reads_updated[id] lists, per problem id, the updates whose targets it reads.
  // update_ok() checks a plan; build_step_problem() places each update in id order right after the
  // last of its inputs and readers, so the natural order is already valid.
  std::vector<uint8_t> update;
  std::vector<std::vector<int>> reads_updated;
  // Per problem id: 1 for an order token (op "order", one alignment unit, cost 0, never run): a
  // node of the problem right after a node that reads what an update overwrites, taking that
  // reader's value as input, and an input of the update. Every plan then runs the update after
  // the reader's first computation (planners reorder freely otherwise) without holding the
  // reader's value until the update; update_ok() checks the recomputations.
  std::vector<uint8_t> token;
  std::vector<int> side_effects;  // graph ids of side-effect nodes run after the plan, in order
  // Memory outside the plan: the largest output + workspace of a side-effect node (the plan's ops
  // have workspace nodes of their own).
  size_t max_workspace = 0;
  size_t largest_working_set = 0;  // max over nodes of inputs + output + workspace
};

// A graph file's problem as a step: node ids are graph ids.
StepProblem step_problem_from(const sched::Problem& p);

// Machine model for cost estimates: seconds = flops / flops_per_s + bytes / bytes_per_s.
struct CostModel {
  double flops_per_s = 5e10;
  double bytes_per_s = 1e10;
  // Reading a value in from the second tier (a leaf whose home is there, Storage::home): the
  // tier's measured bandwidth in; 0: bytes_per_s.
  double tier_in_bytes_per_s = 0;
  // Measures both with a short GEMM and a streaming loop (a few milliseconds, once per process).
  static const CostModel& calibrated();
};

// `measured` (indexed by graph node, seconds; <0 = unknown) overrides the estimates where known.
// early_updates (SessionOptions::early_updates): side effects whose every overwritten input is a
// leaf that no other side effect reads or writes become nodes of the plan (StepProblem::update):
// their inputs (a parameter's gradient) are freed once they ran instead of being held to the end
// of the step. The others run after the plan, as all do without it.
StepProblem build_step_problem(const Graph& g, const std::vector<int>& targets, bool side_effects,
                               const std::vector<double>* measured, const CostModel& model,
                               bool early_updates = false);

// The plan computes every update once, and nothing that reads what an update overwrote after it.
bool update_ok(const StepProblem& sp, const sched::Plan& plan);

}  // namespace lethe
