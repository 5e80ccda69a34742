// Streams for a serial plan: the same steps in the same order, each assigned to one of N streams,
// with the waits that make every order the streams allow run it as the serial plan does
// (docs/plan-format.md). The planner's choice between running in parallel and holding less memory:
//
//   Plan serial = plan(p, budget, "lethe").plan;
//   Layout l = layout_plan(p, serial, 64);
//   StreamAssignOptions o;  o.streams = 2;  o.cost = one_thread_costs;  o.layout = &l;
//   Plan par = assign_streams(p, serial, o);    // valid in every order; l stays a safe layout
//   double t = makespan(p, par, &o.cost);       // compare with the serial plan's time
//
// Waits come from three sources (four with keep_serial_peak): data (a compute waits for the compute
// of each input's live instance; a free waits for every read of the instance it drops; a recompute
// waits for the free of the node's previous instance), memory (with `layout`: a compute waits for
// the free of every earlier buffer whose bytes its own overlap, so that layout holds in every
// order; without it the caller lays the plan out again, and layout_plan() keeps buffers that may be
// live together apart) and `exclusive` nodes (computes that share one resource, such as a reserved
// workspace, run one at a time in plan order).
//
// Streams are chosen greedily, in plan order, by the earliest start under `cost` (a list schedule):
// a compute goes to the stream where it can start first, preferring the stream of the input it
// waits for last (so chains stay on one stream); a free goes to the stream of the last read it
// waits for. Steps of one stream keep the plan's order, so waits point only at earlier steps.
#pragma once

#include <cstdint>
#include <vector>

#include "scheduler/layout.h"
#include "scheduler/problem.h"

namespace lethe::sched {

struct StreamAssignOptions {
  int streams = 2;
  // Seconds per node on one stream of this configuration (indexed by node id); empty: node costs.
  std::vector<double> cost;
  // The serial plan's layout: keep it valid in every order (memory waits). Null: no memory waits.
  const Layout* layout = nullptr;
  int64_t alignment = 64;
  // Per node id, 1 when its computes must not overlap one another (empty: none).
  std::vector<uint8_t> exclusive;
  // Keep the serial plan's peak in bytes in every order (no layout needed): the frees run in plan
  // order, and a compute waits for every free before it in the plan, so what is live at any moment
  // is a subset of what the serial plan holds at that compute.
  bool keep_serial_peak = false;
  // Per node id, 1 when its computes run on the last stream, which runs no other compute (a
  // communication stream: its steps keep the plan's order there, and the other streams go on
  // while they wait). Empty: none. A free that waits for one of its steps goes to the last stream
  // too, so that no other stream ever waits for it.
  std::vector<uint8_t> dedicated;
};

// `serial` must be a serial plan (every step on stream 0, no waits) valid for `p`. Throws Error
// otherwise, or when streams < 1 or a vector has the wrong size. streams == 1 returns the plan.
Plan assign_streams(const Problem& p, const Plan& serial, const StreamAssignOptions& o);

}  // namespace lethe::sched
