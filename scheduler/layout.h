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
  std::vector<int64_t> offsets;  // per plan step: the buffer's offset for a compute, -1 for a free
  int64_t high_water = 0;        // largest end offset of any buffer
};

// Offsets for the non-resident buffers of `plan` (resident nodes are placed elsewhere). A buffer
// lives from its compute step to the free of that value (or the plan's end). Placement is greedy by
// size (largest first, lowest offset that overlaps no live-in-time buffer already placed), the
// heuristic of TFLite's and ggml's arena planners. Sizes are rounded up to `alignment`.
Layout layout_plan(const Problem& p, const Plan& plan, int64_t alignment = 64);

}  // namespace lethe::sched
