// Runs a sequence of compute/free steps over a step graph: the natural order (compute in id order,
// free after last use) or a plan from the scheduler (recomputations included).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/graph.h"
#include "framework/step_timer.h"
#include "framework/trace.h"

namespace lethe {

class OffloadTier;  // framework/tier.h

// A copy between the arena and the session's second memory tier (framework/tier.h), planned as a
// step of its own (docs/plan-format.md): offload writes the node's value to the tier (the value
// stays until a free), fetch reads it back into a buffer of the arena (as a compute would make
// it), drop releases the tier copy.
enum class CopyKind : uint8_t { none, offload, fetch, drop };

struct ExecStep {
  bool compute = true;  // false: free, or the copy `copy` names
  int node = 0;
  CopyKind copy = CopyKind::none;
  bool is_free() const { return !compute && copy == CopyKind::none; }
};

// The natural schedule computing `targets` (and every side-effect node): id order, each value freed
// right after its last use unless it is a target.
std::vector<ExecStep> natural_steps(const Graph& g, const std::vector<int>& targets,
                                    bool side_effects = true);

// Streams for `steps` when each buffer is its own allocation (heap steps): computes on stream 0,
// collectives (all_reduce, data parallel) and the copies out of their buckets on stream 1 in step
// order; a step waits for the computes
// of its inputs, a free for those and every read of its value (on stream 1 when one of them is,
// else on stream 0). Returns the number of streams (1 when the steps have no collective: stream,
// after empty).
int comm_stream_plan(const Graph& g, const std::vector<ExecStep>& steps, std::vector<int>& stream,
                     std::vector<std::vector<int32_t>>& after);

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
  // Buffers for the values whose home is the second tier (Storage::home) that `node` reads without
  // its plan having read them in: those of a side effect run after the steps (planned steps), or
  // of any compute (unlimited steps); each call of the function a new buffer. Empty where a plan
  // reads every such value in itself.
  virtual BufferFn home_buffers(int node, bool side_effect) {
    (void)node;
    (void)side_effect;
    return {};
  }
  // Traced memory right after `node` was computed (update: a side effect), as (measured,
  // predicted): what the allocator holds, and the schedule's own account.
  virtual std::pair<int64_t, int64_t> computed(size_t step, int node, bool update) = 0;
  // Before `node`'s value is dropped (a free step, or a recomputation over a value still held).
  virtual void freed(int node) = 0;
  // After the last step and side effect (checks of what is still live).
  virtual void finished() {}
};

// A device's own streams (CUDA), for plans on streams: the host issues every step in plan order,
// each on its stream after waiting (on the device) for the steps it names. CPU streams are worker
// threads of the executor instead.
class DeviceStreams {
 public:
  virtual ~DeviceStreams() = default;
  // KernelCall::stream of kernels on stream `s` (s = 0: the session's own context).
  virtual void* context(int s) = 0;
  // Stream `s` waits for what `step` issued (recorded by done()).
  virtual void wait(int s, size_t step) = 0;
  virtual void done(int s, size_t step) = 0;
  // A timing point on stream `s`; seconds() between two of them once synchronize() returned.
  virtual int mark(int s) = 0;
  // Stream 0 waits for every other stream's work (before the side effects run on it).
  virtual void join() = 0;
  virtual void synchronize() = 0;
  virtual double seconds(int from, int to) = 0;
};

// One step to execute: compute/free steps in order, then side effects once each.
struct StepRun {
  const std::vector<ExecStep>* steps = nullptr;
  const std::vector<int>* side_effects = nullptr;  // graph ids; null: none after the steps
  StepMemory* memory = nullptr;
  KernelEnv env;
  StepTimer* timer = nullptr;  // op times in the device's order of work (framework/step_timer.h)
  Tracer* tracer = nullptr;    // null: no trace
  // Streams (SessionOptions::streams). Null `stream`: every step in order on the calling thread.
  // Otherwise step i runs on stream (*stream)[i] once the steps (*after)[i] have finished; each
  // stream runs its steps in order. CPU: one worker thread per stream with `threads_per_stream`
  // OpenMP and OpenBLAS threads. Side effects run after every stream has finished.
  const std::vector<int>* stream = nullptr;
  const std::vector<std::vector<int32_t>>* after = nullptr;
  int streams = 1;
  int threads_per_stream = 1;
  DeviceStreams* device_streams = nullptr;  // a device's streams (CUDA); null: CPU worker threads
  // The stream of the step's collectives (data parallel), which runs with one thread; -1: none.
  int comm_stream = -1;
  // Non-zero: before each op, sleep a pseudo-random 0-2 ms drawn from this seed (LETHE_JITTER), so
  // that a missing wait shows as a wrong result instead of hiding behind the usual timing.
  uint64_t jitter_seed = 0;
  // The memory checks its StepMemory makes (LETHE_ARENA_CHECK) need every free reported.
  bool report_frees = false;
  // Copies (ExecStep::copy): the tier, and per step the offset of its node's copy in the tier. A
  // stream that runs only copies runs with one thread.
  OffloadTier* tier = nullptr;
  const std::vector<int64_t>* tier_offsets = nullptr;
};

struct ExecStats {
  size_t computed = 0;                // compute steps run (side effects included)
  size_t recomputed = 0;              // compute steps of nodes already computed once in this run
  double seconds = 0;                 // the whole run, until the device finished it
  std::vector<double> first_seconds;  // per graph node: its first computation's time (-1: none)
  int streams = 1;                    // streams the steps ran on
  double parallel_seconds = 0;        // time two or more streams were busy at once
  double overlapped_recompute_seconds = 0;  // recomputations' time while another stream was busy
  double recompute_seconds = 0;             // recomputations' time (on streams)
  double comm_seconds = 0;          // the communication stream's computes (StepRun::comm_stream)
  double comm_overlap_seconds = 0;  // ... while a compute stream was busy
  // Copies to and from the second tier: bytes each way, their time, and the part of it during
  // which a compute ran (hidden behind compute).
  size_t copy_out_bytes = 0, copy_in_bytes = 0;
  double copy_seconds = 0, copy_hidden_seconds = 0;
};

// The executor loop: runs `run` over `values` (indexed by node: leaves present, results received; a
// free drops a value) and returns once the device has finished. Every step, planned or not, runs
// here.
ExecStats run_steps(Graph& g, const StepRun& run, std::vector<std::shared_ptr<Storage>>& values);

// Computes one node from values already present. A leaf node whose home is the second tier (a
// plan's read of it) is read into a buffer from `buffers`. An input whose home is the tier and
// that is not present is read into a buffer from `homes` (StepMemory::home_buffers) for this
// node only; what the node overwrites of it is written back to its home (write_home()).
void compute_node(const KernelEnv& env, Graph& g, int id,
                  std::vector<std::shared_ptr<Storage>>& values, const BufferFn& buffers,
                  const BufferFn& homes = {});

// The name of what computes a node in traces and messages: its op's, or "read_home" for a leaf
// read in from the second tier.
std::string step_name(const Node& n);

}  // namespace lethe
