// A training session: device, seed, memory budget and the step graph that ops record into.
//
//   lethe::Session session({.device = lethe::Device::cpu(), .seed = 42});
//   // ... build a model, train: every tensor created while `session` lives belongs to it.
//
// Sessions nest: the most recently constructed live session on this thread is the current one.
// Without any, a default CPU session with unlimited memory is created on first use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/device.h"
#include "framework/graph.h"
#include "framework/storage.h"

namespace lethe {

struct SessionOptions {
  Device device = Device::cpu();
  uint64_t seed = 0;
  // Execute each op as it is recorded (debugging); no planning, every value kept until the step ends.
  bool eager = false;
  // Bytes with units ("512MiB") or an activation fraction ("0.25"); empty = unlimited.
  std::string memory_budget;
  std::string planner = "auto";
  int num_threads = 0;  // 0: leave OpenMP/OpenBLAS defaults
};

// What the last executed step did.
struct StepReport {
  uint64_t step = 0;
  size_t nodes = 0;          // nodes executed in the plan (recomputations included)
  size_t recomputed = 0;     // extra computations beyond one per node
  size_t peak_bytes = 0;     // measured by the allocator
  double seconds = 0.0;      // wall time of the execution
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

  // The graph ops record into now.
  const std::shared_ptr<Graph>& graph();
  // Executes the current graph: side effects run, values with live handles are kept, every other
  // value is dropped. Then a new step begins.
  void flush();
  // Computes the value of node `id` of the current graph without ending the step.
  std::shared_ptr<Storage> compute_now(int id);
  // Eager mode: computes the newly recorded node at once.
  void run_eager(int id);

  std::shared_ptr<Storage> allocate(size_t bytes);
  Allocator& allocator() { return *allocator_; }
  const StepReport& last_report() const { return report_; }

 private:
  SessionOptions opts_;
  std::unique_ptr<Allocator> allocator_;
  std::shared_ptr<Graph> graph_;
  uint64_t step_ = 0;
  uint64_t rng_counter_ = 0;
  StepReport report_;
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
  const std::shared_ptr<SessionState>& state() const { return state_; }

 private:
  std::shared_ptr<SessionState> state_;
};

// The current session of this thread (a default one is created when none is alive).
const std::shared_ptr<SessionState>& current_session();

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
