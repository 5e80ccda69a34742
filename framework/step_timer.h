// Times a step's ops in the device's own order of work. On the CPU a mark is the host clock when
// it is taken; on CUDA it is an event recorded on the session's stream, so the seconds between two
// marks are GPU time, not the microseconds the host spent launching (the planner's costs, the
// step's report and the trace all come from these marks).
//
//   StepTimer& t = session.step_timer();
//   t.reset();
//   const int a = t.mark();
//   run_kernel(...);
//   const int b = t.mark();
//   t.synchronize();                 // the device has passed every mark
//   double s = t.seconds(a, b);
#pragma once

#include <memory>

namespace lethe {

class StepTimer {
 public:
  virtual ~StepTimer() = default;
  // Forgets every mark (call between steps, after synchronize()).
  virtual void reset() = 0;
  // A point in the device's order of work; returns its index (0, 1, ... since reset()).
  virtual int mark() = 0;
  // Returns once the device has reached every mark taken so far (CUDA: the stream is synchronised).
  virtual void synchronize() = 0;
  // Seconds from mark `from` to mark `to`; valid after synchronize().
  virtual double seconds(int from, int to) const = 0;
};

// The host clock (CPU sessions).
std::unique_ptr<StepTimer> make_host_timer();

}  // namespace lethe
