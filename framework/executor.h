// Runs a sequence of compute/free steps over a step graph: the natural order (compute in id order,
// free after last use) or a plan from the scheduler (recomputations included).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "framework/graph.h"

namespace lethe {

class SessionState;

struct ExecStep {
  bool compute = true;  // false: free
  int node = 0;
};

// The natural schedule computing `targets` (and every side-effect node): id order, each value freed
// right after its last use unless it is a target.
std::vector<ExecStep> natural_steps(const Graph& g, const std::vector<int>& targets,
                                    bool side_effects = true);

struct ExecStats {
  size_t computed = 0;    // compute steps run
  size_t recomputed = 0;  // compute steps of nodes already computed once in this run
};

// Provides the buffer for a node's output (workspace = false) or its scratch (workspace = true).
using BufferFn = std::function<std::shared_ptr<Storage>(size_t bytes, bool workspace)>;

// Runs steps; `values` (indexed by node) holds leaves and receives results. Inputs of a compute step
// must be present; a free drops the value. `seconds` (indexed by node), when given, receives the
// measured time of each node's first computation, timed in the device's order of work by the
// session's StepTimer. Returns once the device has finished every step.
ExecStats execute_steps(SessionState& s, Graph& g, const std::vector<ExecStep>& steps,
                        std::vector<std::shared_ptr<Storage>>& values, const BufferFn& buffers,
                        std::vector<double>* seconds = nullptr);

// Computes one node from values already present.
void compute_node(SessionState& s, Graph& g, int id, std::vector<std::shared_ptr<Storage>>& values,
                  const BufferFn& buffers);

}  // namespace lethe
