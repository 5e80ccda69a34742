// Chrome trace-event recording of a session's execution, for ui.perfetto.dev or chrome://tracing.
//
//   lethe::Session s({.memory_budget = "0.25", .trace_path = "step.trace.json"});
//   // ... train; the file is written when the session ends (or at s.stop_trace()).
//
// One complete slice ("ph":"X") per op execution: name = op, args = {node, step, bytes, recompute},
// category "compute", "recompute" (a plan's second or later computation of a node) or "update"
// (side effects: parameter and running-statistics updates). One slice per step encloses them, and a
// "plan" slice marks planning. Counters ("ph":"C"), sampled at the start of each op with its output
// placed: "arena in use" (measured: the highest end of a buffer live in the arena, fragmentation
// included; for an unlimited session the heap allocator's bytes in use) and "plan predicted" (the
// plan's own account: bytes resident when the step began + the live values the schedule holds).
// Recording costs one branch per op when no trace is active.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lethe {

class Tracer {
 public:
  explicit Tracer(std::string path);
  ~Tracer();  // writes the file unless written already (errors are swallowed here)
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  const std::string& path() const { return path_; }
  // Microseconds since the trace began.
  double now_us() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0_)
        .count();
  }
  double to_us(std::chrono::steady_clock::time_point t) const {
    return std::chrono::duration<double, std::micro>(t - t0_).count();
  }
  enum class Kind : uint8_t { compute, recompute, update, step, plan, copy_out, copy_in };
  // `track`: the stream the op ran on (0: the executor's own track; stream s > 0 gets a track of
  // its own, named "stream s").
  void slice(Kind kind, std::string_view name, int node, uint64_t step, double t0_us, double t1_us,
             int64_t bytes = 0, int track = 0);
  // Memory at time ts: measured bytes in use and the plan's prediction.
  void memory(double ts_us, int64_t measured, int64_t predicted);
  // Bytes the step holds in the second memory tier (SessionOptions::host_budget) from ts_us on.
  void tier(double ts_us, int64_t bytes);
  // Writes the JSON file now (throws lethe::Error when it cannot be written).
  void write();
  size_t events() const { return slices_.size() + counters_.size() + tier_.size(); }

 private:
  struct Slice {
    Kind kind;
    int node;
    uint64_t step;
    double t0, t1;
    int64_t bytes;
    uint32_t name;  // index into names_
    int track;
  };
  struct Counter {
    double ts;
    int64_t measured, predicted;
  };
  uint32_t intern(std::string_view name);

  std::string path_;
  std::chrono::steady_clock::time_point t0_;
  std::vector<std::string> names_;
  std::vector<Slice> slices_;
  std::vector<Counter> counters_;
  std::vector<std::pair<double, int64_t>> tier_;
  bool written_ = false;
  int tracks_ = 1;
};

}  // namespace lethe
