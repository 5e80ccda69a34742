// The CUDA step timer (framework/step_timer.h): one event per mark, recorded on the session's
// stream and read back after the stream is synchronised. Events are made once and reused by later
// steps (a step of a few thousand ops records a few thousand events).
#include <vector>

#include "framework/cuda/backend.h"
#include "framework/cuda/context.h"
#include "framework/step_timer.h"

namespace lethe::cuda::detail {
namespace {

class EventTimer final : public StepTimer {
 public:
  explicit EventTimer(std::shared_ptr<void> ctx) : ctx_(std::move(ctx)) {}
  ~EventTimer() override {
    for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);  // never throws from a destructor
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  void reset() override { used_ = 0; }
  int mark() override {
    if (used_ == events_.size()) {
      cudaEvent_t e = nullptr;
      LETHE_CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
    LETHE_CUDA_CHECK(cudaEventRecord(events_[used_], stream()));
    return static_cast<int>(used_++);
  }
  void synchronize() override { LETHE_CUDA_CHECK(cudaStreamSynchronize(stream())); }
  double seconds(int from, int to) const override {
    LETHE_ASSERT(from >= 0 && to >= 0 && static_cast<size_t>(from) < used_ &&
                 static_cast<size_t>(to) < used_);
    float ms = 0;
    LETHE_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[static_cast<size_t>(from)],
                                          events_[static_cast<size_t>(to)]));
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  cudaStream_t stream() const { return static_cast<Context*>(ctx_.get())->stream; }

  std::shared_ptr<void> ctx_;
  std::vector<cudaEvent_t> events_;
  size_t used_ = 0;
};

}  // namespace

std::unique_ptr<StepTimer> make_event_timer(std::shared_ptr<void> context) {
  return std::make_unique<EventTimer>(std::move(context));
}

}  // namespace lethe::cuda::detail
