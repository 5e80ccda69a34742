// Compiling a step: the step's planning problem and the arena window it may use in, a plan that
// fits with every buffer at a static offset out. A pure function of its arguments (no session): the
// session calls it for its steps, tests call it on graph files.
//
//   StepProblem sp =
//   step_problem_from(sched::read_problem_file("bench/graphs/gpt-small.graph.json")); CompiledStep
//   c = *compile_step(sp, {.base = 0, .region_end = 64 << 20}, {.planner = "lethe"});
//   // c.steps: compute/free steps (graph ids); c.offsets: each compute's buffer above the base
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/executor.h"
#include "framework/step_problem.h"

namespace lethe {

// The part of the arena a step may use: from `base` (above the long-lived values) to `region_end`
// (the arena's capacity). Bytes are offsets in the arena.
struct StepWindow {
  int64_t base = 0;
  int64_t region_end = 0;
};

struct CompileOptions {
  std::string planner = "auto";
  // >= 2: also derive CompiledStep::parallel, the plan on that many streams (streamed_step()).
  int streams = 1;
  // Per graph node: seconds on one stream of the parallel configuration (measured; < 0 unknown).
  const std::vector<double>* stream_costs = nullptr;
  // A node's time on one stream when not measured: its serial cost times this (the serial
  // configuration's threads over one stream's).
  double unknown_cost_factor = 1.0;
  // A second memory tier (SessionOptions::host_budget): its bytes and each direction's bandwidth
  // (bytes/s). With host_bytes > 0, plans that copy values to the tier and back (offload-only and
  // joint with recomputation, sched::plan_joint) are weighed against the recompute-only plan by
  // predicted time, and the fastest that lays out within the window is taken.
  int64_t host_bytes = 0;
  double out_bandwidth = 0, in_bandwidth = 0;
  // With a tier: "auto" (the fastest predicted), or only "recompute" or "offload" plans (the
  // natural schedule with copies) (SessionOptions::tier_plan).
  std::string tier_mode = "auto";
  // A refusal without the searches that name the smallest budgets (seconds on large steps), for a
  // caller that has another way to make the step fit when none is found (the session moving
  // parameters and optimizer state to the tier): the message is never shown.
  bool quick_refusal = false;
  // With a tier in mode "auto": also compile the fastest plan of each other kind that fits
  // (recompute-only, offload-only, joint) into CompiledStep::alternatives, so that the session
  // can measure them against the plan predicted fastest (SessionOptions::tier_plan).
  bool alternatives = false;
};

struct StreamSource;  // what streamed_step() derives a plan on streams from (compile_step.cpp)

struct CompiledStep {
  std::vector<ExecStep> steps;   // graph node ids
  std::vector<int64_t> offsets;  // per step: offset of a compute's buffer above the region base
  std::vector<int64_t>
      ws_offsets;  // per step: offset of a compute's workspace, -1 when it has none
  std::vector<int> side_effects;
  size_t region_bytes = 0;      // layout high-water + the side effects' region
  size_t workspace_offset = 0;  // the side effects' region (output, then workspace; after the plan)
  size_t workspace_bytes = 0;
  size_t no_remat_region = 0;  // what keep-all would need in the region
  std::string planner;
  std::string strategy;  // the search strategy whose plan was taken (compile_step.cpp)
  double predicted_overhead = 1.0;
  double planning_seconds = 0.0;
  bool measured_costs = false;
  int measured_steps = 0;  // how many measured steps the costs folded in (0: estimates)
  std::shared_ptr<sched::Problem> problem;
  // Streams: per step its stream and the earlier steps it waits for (empty: serial), and the
  // predicted time by the costs it was planned with (serial: the cost of its computes).
  int streams = 1;
  std::vector<int> stream;
  std::vector<std::vector<int32_t>> after;
  double predicted_seconds = 0.0;
  std::string
      stream_layout;  // streamed: how its layout stays valid in every order (compile_step.cpp)
  bool collectives = false;  // the step has collectives (StepProblem::comm): data parallel
  int early_updates = 0;     // updates the plan runs (StepProblem::update); the rest run after it
  // Copies to the second tier (ExecStep::copy): per step the offset of its node's copy in the
  // tier (-1 for other steps), the tier bytes the plan uses, and which plan was taken with a tier
  // ("recompute", "offload" or "joint"; empty without one).
  std::vector<int64_t> tier_offsets;
  int64_t tier_bytes = 0;
  std::string tier_plan;
  // CompileOptions::alternatives: a plan of each other kind that fits the same window and tier,
  // predicted slower than this one (their tier_plan names the kind).
  std::vector<std::shared_ptr<CompiledStep>> alternatives;
  // The session's measurement of those: per candidate (this plan, then the alternatives) its best
  // step time so far and the steps run; on the plan chosen, each kind's best time.
  std::vector<double> trial_best;
  int trial_runs = 0;
  std::vector<std::pair<std::string, double>> tier_measured;
  std::shared_ptr<CompiledStep> parallel;  // CompileOptions::streams >= 2: the plan on streams
  // streamed_step() with a communication stream: by how many bytes its fresh layout (nothing of the
  // communication stream waited for) missed the capacity; 0 when it fit.
  int64_t comm_layout_excess = 0;
  // Plan on streams: the bytes its serial plan was made short of the window (streamed_step()'s
  // headroom); 0: the serial plan had the whole window.
  int64_t planned_short = 0;
  // Data parallel: the serial plan made `bytes` short of the window, leaving room for that fresh
  // layout (SessionState), kept to derive the plan on streams from.
  struct Roomy {
    int64_t bytes = 0;
    std::shared_ptr<CompiledStep> serial;
  } comm_room;
  std::shared_ptr<const StreamSource> source;
};

// A plan of `sp` whose buffers lay out within the window, or InfeasibleBudget naming the smallest
// arena a plan was found for and the breakdown of the step's memory.
std::shared_ptr<CompiledStep> compile_step(const StepProblem& sp, const StepWindow& window,
                                           const CompileOptions& o);

// The serial plan `serial` (from compile_step) on `streams` streams, in the same arena window:
// sched::assign_streams() on the plan twice, laid out afresh (buffers that may be live together
// kept apart) when that fits, and on the serial layout with memory waits (always fits); the one
// with the shorter predicted time under `stream_costs` (as CompileOptions) is returned.
// comm_stream: the step's collectives (StepProblem::comm) run on one more stream, the last, which
// runs nothing else (data parallel: the all-reduces overlap the rest of the backward pass).
// `headroom`: bytes of the window above the serial plan's (made `headroom` bytes short of it) that
// a fresh layout may take too.
std::shared_ptr<CompiledStep> streamed_step(const CompiledStep& serial, int streams,
                                            const std::vector<double>* stream_costs,
                                            double unknown_cost_factor, bool comm_stream = false,
                                            int64_t headroom = 0);

// The arena bytes a fraction budget gives a step (above its residents): that fraction of the step's
// activation memory, plus its largest op workspace, plus the side effects' region.
int64_t fraction_step_bytes(const StepProblem& sp, double fraction);

}  // namespace lethe
