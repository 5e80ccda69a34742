// Runs a sequence of compute/free steps over a step graph: the natural order (compute in id order,
// free after last use) or a plan from the scheduler (recomputations included).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "framework/graph.h"
#include "framework/step_timer.h"
#include "framework/trace.h"

namespace lethe {

struct ExecStep {
  bool compute = true;  // false: free
  int node = 0;
};

// The natural schedule computing `targets` (and every side-effect node): id order, each value freed
// right after its last use unless it is a target.
std::vector<ExecStep> natural_steps(const Graph& g, const std::vector<int>& targets,
                                    bool side_effects = true);

// Provides the buffer for a node's output (workspace = false) or its scratch (workspace = true).
using BufferFn = std::function<std::shared_ptr<Storage>(size_t bytes, bool workspace)>;

// What a kernel needs from its session: the seed of random ops and the backend context (CUDA: the
// stream and library handles; null on the CPU).
struct KernelEnv {
  uint64_t seed = 0;
  void* backend = nullptr;
  bool detect_anomaly = false;  // check every output for NaN and infinity (SessionOptions)
};

// Where a step's buffers go, and the memory its trace shows: the session's heap (unlimited steps)
// or static offsets in the arena (planned steps). The executor calls it; it never sees a session.
class StepMemory {
 public:
  virtual ~StepMemory() = default;
  // Buffers of compute step `step` (of node `node`), and of a side effect run after the steps.
  virtual BufferFn buffers(size_t step, int node) = 0;
  virtual BufferFn side_effect_buffers(int node) = 0;
  // Traced memory right after `node` was computed (update: a side effect), as (measured, predicted):
  // what the allocator holds, and the schedule's own account.
  virtual std::pair<int64_t, int64_t> computed(size_t step, int node, bool update) = 0;
  // Before `node`'s value is dropped (a free step, or a recomputation over a value still held).
  virtual void freed(int node) = 0;
};

// One step to execute: compute/free steps in order, then side effects once each.
struct StepRun {
  const std::vector<ExecStep>* steps = nullptr;
  const std::vector<int>* side_effects = nullptr;  // graph ids; null: none after the steps
  StepMemory* memory = nullptr;
  KernelEnv env;
  StepTimer* timer = nullptr;  // op times in the device's order of work (framework/step_timer.h)
  Tracer* tracer = nullptr;    // null: no trace
};

struct ExecStats {
  size_t computed = 0;    // compute steps run (side effects included)
  size_t recomputed = 0;  // compute steps of nodes already computed once in this run
  double seconds = 0;     // the whole run, until the device finished it
  std::vector<double> first_seconds;  // per graph node: its first computation's time (-1: none)
};

// The executor loop: runs `run` over `values` (indexed by node: leaves present, results received; a
// free drops a value) and returns once the device has finished. Every step, planned or not, runs
// here.
ExecStats run_steps(Graph& g, const StepRun& run, std::vector<std::shared_ptr<Storage>>& values);

// Computes one node from values already present.
void compute_node(const KernelEnv& env, Graph& g, int id, std::vector<std::shared_ptr<Storage>>& values,
                  const BufferFn& buffers);

}  // namespace lethe
