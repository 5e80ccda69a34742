// A training session: device, seed, memory budget and the step graph that ops record into.
//
//   lethe::Session session({.device = lethe::Device::cpu(), .seed = 42});
//   // ... build a model, train: every tensor created while `session` lives belongs to it.
//
// Sessions nest: the most recently constructed live session on this thread is the current one.
// Without any, a default CPU session with unlimited memory is created on first use.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "framework/device.h"
#include "framework/graph.h"
#include "framework/step_timer.h"
#include "framework/storage.h"

namespace lethe {

struct SessionOptions {
  Device device = Device::cpu();
  uint64_t seed = 0;
  // Execute each op as it is recorded (debugging); no planning, every value kept until the step
  // ends.
  bool eager = false;
  // Bytes with units ("512MiB") or an activation fraction ("0.25"); empty = unlimited.
  std::string memory_budget{};
  std::string planner = "auto";
  int num_threads = 0;  // 0: leave OpenMP/OpenBLAS defaults
  // Non-empty: record a Chrome trace-event file of every op run (framework/trace.h), written when
  // the session ends or at stop_trace().
  std::string trace_path{};
  // Plan steps, run none: each step is recorded and planned under the budget exactly as a budgeted
  // step is (an infeasible budget throws InfeasibleBudget with the smallest feasible one), but no
  // op of the step graph runs. last_report() describes the plan (measured fields are zero), reading
  // a step's value throws, parameters keep their values. Parameters, optimizer state and tensors
  // made by creation functions are still allocated in the arena, as they would be in training.
  // Needs a memory_budget in bytes (framework/max_batch.h searches batch sizes with it).
  bool plan_only = false;
  // Anomaly detection (torch.autograd.detect_anomaly): after every op, its output is read back and
  // checked; the first op that produces a NaN or an infinity throws lethe::Error naming it, its
  // node and step, and where the non-finite value came from. Slow (a copy per op): for debugging.
  bool detect_anomaly = false;
  // Streams a step runs on: 1 runs every op in order on one stream with all of num_threads
  // (serial); N >= 2 runs the plan's steps on N streams at once, each with num_threads / N intra-op
  // threads (at least 1), waiting on each other where the plan says; kAutoStreams lets the planner
  // choose per step, from measured op times, between serial and parallel plans (serial when
  // parallel does not pay). Results are bitwise those of the serial step either way.
  int streams = 1;
  // Data-parallel training over the ranks of dist::init() (dist/dist.h), as PyTorch DDP: backward()
  // gathers the gradients, as each becomes final, into buckets of bucket_bytes (the first of a step
  // at most 1 MiB, as DDP) and records an
  // all-reduce per bucket (the mean over ranks, in a fixed order) that runs on a communication
  // stream while the backward pass goes on; parameters are broadcast from rank 0 when a step first
  // reads them; every step graph is checked to be the same on every rank. Each rank plans its step
  // under its own memory_budget (the buckets count in it). On one rank (no mpirun) the buckets are
  // recorded and run as well (a copy each): the results are those of a step without it.
  bool data_parallel = false;
  size_t bucket_bytes = size_t{25} << 20;
  // Budgeted steps run each optimizer update (and any other in-place write of parameters or
  // state) inside the plan, as soon as its gradient is final and every read of the old values,
  // recomputations included, has run; the gradient is freed there instead of being held to the
  // end of the step, which lowers the smallest budget by up to the gradients' bytes. Results are
  // bitwise the same. When no plan under the budget can order an update so, it runs after the
  // plan, as all do with false (StepReport::early_updates counts those that ran inside). Not yet
  // with data_parallel; with a host_budget, only updates that write nothing but values whose home
  // is the tier (offload_state) run inside the plan.
  bool early_updates = true;
  // A second memory tier (issue 16): bytes with units ("4GiB"); empty = none. Budgeted steps may
  // then copy values out of the budget to the tier and back before their next use, planned
  // jointly with recomputation (the plan with the least predicted time is taken). CUDA: one
  // pinned host allocation of this size; CPU: one file of this size in offload_path (empty: the
  // system's temporary directory), so the budget is the RAM arena and the tier is disk. Created
  // with the session (an unusable directory or too little space is an error then); each
  // direction's bandwidth is measured once, at the first budgeted step. While a tier is set,
  // updates run after the plan (early_updates is ignored) unless they write only values whose
  // home is the tier (offload_state), so that a copy that fails mid-step leaves the parameters
  // and optimizer state as they were.
  std::string host_budget{};
  std::string offload_path{};
  // The tier's bandwidths the planner uses, "OUT[,IN]" in bytes per second as lethe-plan's
  // --bandwidth takes them ("2GB/s", "512MiB/s,1GiB/s", "3e9"); empty: measured by a short probe.
  // Plans with copies weigh copy times by these, so a run that must plan the same way every time
  // (a test, a benchmark of plans) states them.
  std::string tier_bandwidth{};
  // Which plans a session with a tier takes: "auto" or "joint" (joint planning: the fastest
  // predicted of recompute-only, offload-only and recomputation at a few budgets with copies down
  // to the budget; once the step's op times are measured, the plan predicted fastest and the
  // fastest of each other kind that fits run a step each in turn for three to six rounds (more
  // while the two fastest are within 5 %), and the fastest measured is kept,
  // the predicted one unless another was 2 % faster: StepReport::tier_measured; not with
  // data_parallel), or only "recompute" or "offload" (the natural schedule with copies), to
  // compare.
  std::string tier_plan = "auto";
  // Parameters and optimizer state in the second tier (ZeRO-Offload style), so that a budget
  // below parameters + gradients + optimizer state can train: "auto" (default) moves them there
  // when a step finds no plan under the budget with them in it, "always" at the first budgeted
  // step, "never" keeps them in the budget. A value moved there stays there (two places of its
  // bytes at the top of the tier, the rest of the tier is the plans' copies'): each step reads it
  // in where its plan needs it (and may free and read it again, as it recomputes other values),
  // its update reads it in after the plan and writes it back, and only once every update of the
  // step has succeeded do the written values become current. Tensor::to_vector, checkpoints and
  // evaluation outside the budget read it from there. Needs host_budget; not with data_parallel.
  std::string offload_state = "auto";
};

// SessionOptions::streams: the planner chooses the number of streams.
inline constexpr int kAutoStreams = -1;
// Parses a --streams value: a positive number of streams or "auto" (kAutoStreams). Throws
// lethe::Error naming the flag and the value otherwise ("0", "-2", "two").
int parse_streams(const std::string& text, const std::string& flag = "--streams");

// What the last executed step did.
struct StepReport {
  uint64_t step = 0;
  size_t budget_bytes = 0;          // the arena's size; 0 = unlimited
  size_t peak_bytes = 0;            // measured by the allocator (the arena's high-water mark)
  size_t no_remat_peak_bytes = 0;   // what the step needs without rematerialisation
  std::string planner;              // "natural" when unlimited
  size_t nodes = 0;                 // compute steps run (recomputations included)
  size_t recomputed = 0;            // compute steps beyond one per node
  double predicted_overhead = 1.0;  // plan cost / no-remat cost
  double seconds = 0.0;             // measured wall time of the execution
  double planning_seconds = 0.0;    // 0 when the plan came from the cache
  bool plan_from_cache = false;
  bool measured_costs = false;  // the plan used measured op times (else the cost model)
  // SessionOptions::plan_only: nothing ran; nodes and recomputed count the plan's compute steps,
  // peak_bytes and seconds are 0.
  bool plan_only = false;
  // Streams (SessionOptions::streams): how many the step ran on, the makespan the plan predicted
  // from measured op times (0 when it had none) against `seconds`, the time two or more streams
  // were busy at once, and the recomputations' time that overlapped other work.
  int streams = 1;
  double predicted_seconds = 0.0;
  double parallel_seconds = 0.0;
  double overlapped_recompute_seconds = 0.0;
  double recompute_seconds = 0.0;  // all recomputations' time, when the step ran on streams
  // Data parallel: the buckets all-reduced, their bytes, the all-reduces' time on the communication
  // stream, and the part of it during which a compute stream was busy (hidden behind the backward).
  size_t buckets = 0;
  size_t allreduce_bytes = 0;
  double allreduce_seconds = 0.0;
  double allreduce_overlap_seconds = 0.0;
  // Bytes the plan was made short of the budget so that no computation waits for an all-reduce
  // (its buffers and the gradients it reads stay apart from what runs beside it); 0: none.
  size_t allreduce_room_bytes = 0;
  size_t early_updates = 0;  // updates run inside the plan (SessionOptions::early_updates)
  // Second tier (SessionOptions::host_budget): bytes copied out and back in, the copies' time, the
  // part of it during which a compute ran (hidden), the tier's peak by the plan, and the plan
  // that was taken ("recompute", "offload" or "joint").
  size_t copy_out_bytes = 0, copy_in_bytes = 0;
  double copy_seconds = 0.0, copy_hidden_seconds = 0.0;
  size_t tier_peak_bytes = 0;
  std::string tier_plan;
  // SessionOptions::tier_plan "auto"/"joint": whether this step measured one of the candidate
  // plans (the predicted fastest and the fastest of each other kind), and once they are measured,
  // each kind's best step time (the plan taken is tier_plan).
  bool tier_trial = false;
  std::vector<std::pair<std::string, double>> tier_measured;
  // Bytes of the step's parameters and optimizer state whose home is the second tier
  // (SessionOptions::offload_state); the tier holds two places of each.
  size_t tier_home_bytes = 0;
  std::string str() const;  // one line for logs
};

struct CompiledStep;  // a cached plan with its layout (framework/compile_step.h)
struct ExecStep;      // framework/executor.h
struct ExecStats;
struct StepRun;
class DeviceStreams;
class OffloadTier;
class Arena;
class Tracer;

struct RngState {
  uint64_t seed = 0;
  uint64_t step = 0;         // steps run so far
  uint64_t next_stream = 0;  // the next initialiser's random stream
};

class SessionState : public std::enable_shared_from_this<SessionState> {
 public:
  explicit SessionState(SessionOptions o);
  ~SessionState();

  const SessionOptions& options() const { return opts_; }
  Device device() const { return opts_.device; }
  uint64_t seed() const { return opts_.seed; }
  uint64_t step() const { return step_; }
  uint64_t next_rng_stream() { return rng_counter_++; }
  // Where the session's randomness stands: random ops are keyed by (seed, step, node) and
  // initialisers by their stream number. A checkpoint saves it; restoring it (between steps) makes
  // the next step draw what the saved session's next step would have drawn.
  RngState rng_state() const { return {opts_.seed, step_, rng_counter_}; }
  void set_rng_state(const RngState& r);

  // The graph ops record into now.
  const std::shared_ptr<Graph>& graph();
  // Executes the current graph: side effects run, values with live handles are kept, every other
  // value is dropped. Then a new step begins.
  void flush();
  // Computes the value of node `id` of the current graph without ending the step.
  std::shared_ptr<Storage> compute_now(int id);
  // Eager mode: computes the newly recorded node at once.
  void run_eager(int id);
  // Step buffers from the session's heap (unlimited sessions, eager mode).
  std::function<std::shared_ptr<Storage>(size_t, bool)> heap_buffers();

  // A long-lived buffer (parameters, kept values, optimizer state): from the arena when the session
  // has a budget, else from the heap.
  std::shared_ptr<Storage> allocate(size_t bytes);
  const StepReport& last_report() const { return report_; }
  bool budgeted() const { return budget_kind_ != BudgetKind::unlimited; }
  // Data parallel (SessionOptions::data_parallel, framework/data_parallel.cpp): backward() hands
  // over each leaf gradient once it is final and says when its walk ends; buckets are recorded
  // from them. Before a step runs, the ranks check they recorded the same graph and receive rank
  // 0's parameters where this is their first step.
  bool data_parallel() const;
  void dp_gradient_final(const std::shared_ptr<TensorImpl>& leaf);
  void dp_end_backward();
  // OutsideBudgetGuard: while > 0, steps run unplanned on the heap, outside the arena.
  void enter_outside_budget();
  // Some op of the current step is recorded and not yet run (leaves alone do not count).
  bool recording() const;
  void leave_outside_budget() { --outside_budget_; }
  bool plans_steps() const { return budgeted() && outside_budget_ == 0; }
  // The arena's size once known (a fraction budget is resolved at the first step); 0 otherwise.
  size_t budget_bytes() const;
  // Writes the last executed step (or the pending one) as a remat-graph/1 file with measured costs.
  void export_graph(const std::string& path);
  // The device backend's opaque per-session context (CUDA: stream and library handles); null on
  // CPU.
  void* backend_context() const { return backend_.get(); }
  // Times ops in the device's order of work (CUDA: events on the session's stream).
  StepTimer& step_timer() { return *timer_; }

  // Execution tracing (framework/trace.h): starting replaces (and writes) a running trace; stopping
  // writes the file. The executor records only while tracer() is non-null.
  void start_trace(const std::string& path);
  void stop_trace();
  Tracer* tracer() const { return tracer_.get(); }
  size_t heap_in_use() const { return heap_->in_use(); }

 private:
  enum class BudgetKind { unlimited, bytes, fraction };
  void run_unlimited(Graph& g, const std::vector<int>& targets, bool side_effects,
                     std::vector<std::shared_ptr<Storage>>& values);
  void run_budgeted(Graph& g, const std::vector<int>& targets, bool side_effects,
                    std::vector<std::shared_ptr<Storage>>& values);
  // `headroom`: plan in that many bytes less than the arena gives the step. `move_state`: when no
  // plan fits, parameters and optimizer state may move to the tier (offload_state "auto"; not
  // while a working plan exists, which must stay valid).
  std::shared_ptr<CompiledStep> compile(Graph& g, const std::vector<int>& targets,
                                        bool side_effects, uint64_t key, int64_t headroom = 0,
                                        bool move_state = true);
  void ensure_arena(size_t bytes);

  SessionOptions opts_;
  std::shared_ptr<void> backend_;  // declared before every buffer: destroyed after them
  std::unique_ptr<Allocator> heap_;
  std::unique_ptr<StepTimer> timer_;
  std::shared_ptr<Graph> graph_;
  uint64_t step_ = 0;
  uint64_t rng_counter_ = 0;
  int outside_budget_ = 0;
  StepReport report_;
  BudgetKind budget_kind_ = BudgetKind::unlimited;
  int64_t budget_value_ = 0;    // bytes
  double budget_fraction_ = 0;  // fraction budgets
  std::shared_ptr<Arena> arena_;
  std::vector<std::weak_ptr<Storage>> staged_;  // heap values to move into the arena once it exists
  std::unordered_map<uint64_t, std::shared_ptr<CompiledStep>> plans_;
  std::unordered_map<uint64_t, std::vector<double>> measured_;  // graph hash -> seconds per node
  // Budgeted steps measured per graph hash: the first kMeasuredSteps are folded into measured_ by
  // a per-node minimum (the first step runs cold: page faults, caches, thread pools).
  std::unordered_map<uint64_t, int> measured_steps_;
  std::shared_ptr<void> last_problem_;  // sched::Problem of the last step, for export_graph
  std::unique_ptr<Tracer> tracer_;
  // Streams (SessionOptions::streams), per graph hash: op times measured on one stream of the
  // parallel configuration, and under kAutoStreams the step times of both configurations until the
  // choice is made (budgeted_step.cpp).
  struct StreamTuning {
    std::vector<double>
        costs;  // per graph node: seconds on one stream of the parallel configuration
    int parallel_runs = 0, serial_runs = 0;
    double serial_best = 0, parallel_best = 0;  // warm step times (0: none yet)
    int decided = 0;                            // 0: still measuring; else the streams chosen
  };
  std::unordered_map<uint64_t, StreamTuning> tuning_;
  int threads_ = 1;                                // intra-op threads of the serial configuration
  std::unique_ptr<DeviceStreams> device_streams_;  // CUDA: the streams of plans on streams
  uint64_t jitter_seed_ = 0;                       // LETHE_JITTER
  // Data parallel: the bucket being filled (leaves whose gradients are final), its bytes, the
  // graph its buckets are numbered in, and the parameter storages received from rank 0.
  void dp_emit_bucket();
  // The report's data-parallel fields from a run of `steps`.
  void report_comm(const Graph& g, const std::vector<ExecStep>& steps, const ExecStats& st);
  // CUDA: the device streams of a plan on `n` streams (null on the CPU).
  DeviceStreams* device_streams(int n);
  int device_stream_count_ = 0;
  void dp_prepare_step(Graph& g);
  std::vector<std::shared_ptr<TensorImpl>> dp_pending_;
  size_t dp_pending_bytes_ = 0;
  uint64_t dp_step_ = UINT64_MAX;
  int dp_buckets_ = 0;
  std::weak_ptr<TensorImpl>
      dp_last_slice_;  // the previous bucket's last copy out (orders the next)
  std::unordered_map<const Storage*, std::weak_ptr<Storage>> dp_broadcast_;
  bool arena_check_ = false;  // LETHE_ARENA_CHECK
  // The second tier (SessionOptions::host_budget) and its bandwidths (measured at the first
  // budgeted step; 0 until then).
  std::shared_ptr<OffloadTier> tier_;
  double tier_out_bw_ = 0, tier_in_bw_ = 0;
  // SessionOptions::offload_state: the tier bytes at its top holding the homes of parameters and
  // optimizer state (two places each; plans copy below them), moving the graph's parameters and
  // optimizer state there (false: none moved), and the end of a step for each home (ok: its
  // update's writes become current).
  // With a tier, the session's long-lived values in the arena (weak: they die with the user's
  // handles), among which those move_state_home() moves and the rest it moves down.
  size_t home_bytes_ = 0;
  // The places of homes whose values died, free for the next move (offset -> bytes, merged).
  struct FreeHomes {
    std::mutex mu;
    std::map<size_t, size_t> ranges;
  };
  std::shared_ptr<FreeHomes> free_homes_ = std::make_shared<FreeHomes>();
  std::vector<std::weak_ptr<Storage>> persistent_;
  size_t persistent_pruned_ = 0;  // persistent_'s size after its last pruning
  void note_persistent(const std::shared_ptr<Storage>& s);
  bool move_state_home(bool dry_run = false);  // dry_run: whether it would move any
  void settle_homes(const Graph& g, bool ok);
  // run_steps(), then settle_homes(): ok when it (and every copy of the tier) succeeded.
  ExecStats run_settled(Graph& g, const StepRun& run,
                        std::vector<std::shared_ptr<Storage>>& values);
};

class Session {
 public:
  explicit Session(SessionOptions o = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const SessionOptions& options() const { return state_->options(); }
  Device device() const { return state_->device(); }
  // Runs whatever is recorded (see SessionState::flush).
  void flush() { state_->flush(); }
  const StepReport& last_report() const { return state_->last_report(); }
  void export_graph(const std::string& path) { state_->export_graph(path); }
  // Chrome trace of execution (see SessionOptions::trace_path); the destructor stops a running
  // trace.
  void start_trace(const std::string& path) { state_->start_trace(path); }
  void stop_trace() { state_->stop_trace(); }
  const std::shared_ptr<SessionState>& state() const { return state_; }
  // The session's random state (SessionState::rng_state), as torch.get_rng_state / set_rng_state.
  RngState rng_state() const { return state_->rng_state(); }
  void set_rng_state(const RngState& r) { state_->set_rng_state(r); }

 private:
  std::shared_ptr<SessionState> state_;
};

// The current session of this thread (a default one is created when none is alive).
const std::shared_ptr<SessionState>& current_session();

// Runs the current session's steps outside its memory budget while it lives: unplanned, on the
// heap, beside the arena (parameters stay where they are and are read in place). For evaluation
// with a larger batch than training fits, or any one-off step the budget was not meant for; the
// memory it uses is not bounded by memory_budget. The alternative that stays inside the budget is
// to evaluate in chunks of the training batch.
//
//   { lethe::NoGradGuard no_grad; lethe::OutsideBudgetGuard outside;
//     auto acc = accuracy(model->forward(big_batch), labels); }
class OutsideBudgetGuard {
 public:
  OutsideBudgetGuard();
  ~OutsideBudgetGuard();
  OutsideBudgetGuard(const OutsideBudgetGuard&) = delete;
  OutsideBudgetGuard& operator=(const OutsideBudgetGuard&) = delete;

 private:
  std::shared_ptr<SessionState> session_;
};

// Gradient recording switch, as torch::NoGradGuard.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace lethe
