// Static memory layout of a plan: an offset for every buffer a compute step creates, so that a step
// runs inside one arena with no allocator at run time. The layout's high-water mark, not the plan's
// byte sum, is what must fit the arena.
//
//   Layout l = layout_plan(problem, plan, 64);
//   // compute step i of plan.steps places its value at l.offsets[i]; l.high_water <= arena bytes?
#pragma once

#include <cstdint>
#include <vector>

#include "scheduler/problem.h"

namespace lethe::sched {

struct Layout {
  // per plan step: the buffer's offset for a compute or a fetch, -1 for a free, offload or drop
  std::vector<int64_t> offsets;
  int64_t high_water = 0;  // largest end offset of any buffer
};

// Offsets for the non-resident buffers of `plan` (resident nodes are placed elsewhere). A buffer
// lives from its compute (or fetch) step to the free of that value (or the plan's end); an offload
// reads it in between (a valid plan orders the free after the offload). In a plan with streams
// two buffers share bytes only when the plan's waits order the free of one before the compute of
// the other (may_share() in streams.h), whatever order the streams run in; malformed waits throw
// Error. Placement is greedy: each buffer at the lowest offset that overlaps no live-in-time buffer
// placed before it, in order of size (largest first: the heuristic of TFLite's and ggml's arena
// planners); when that leaves a gap above the most bytes ever live at once, the orders size x
// lifetime, lifetime and allocation order are tried too, first-fit then best-fit (the smallest gap
// that holds the buffer), and the lowest high-water mark wins. Each try is O(buffers^2); the tries
// stop as soon as the high-water mark is at most `good_enough` (e.g. the arena's capacity). Sizes
// are rounded up to `alignment`.
Layout layout_plan(const Problem& p, const Plan& plan, int64_t alignment = 64,
                   int64_t good_enough = 0);

}  // namespace lethe::sched
