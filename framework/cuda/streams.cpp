// A session's CUDA streams for plans on streams (framework/executor.h, DeviceStreams): one context
// per stream (the session's own for stream 0), one completion event per plan step (reused by later
// steps), timing events per mark. The executor issues the steps in plan order; a step's stream
// waits on the completion events of the steps the plan names, so no host thread blocks.
#include <memory>
#include <vector>

#include "framework/cuda/backend.h"
#include "framework/cuda/context.h"
#include "framework/executor.h"

namespace lethe::cuda::detail {
namespace {

class CudaStreams final : public DeviceStreams {
 public:
  CudaStreams(std::shared_ptr<void> main, int n) : main_(std::move(main)) {
    Context& m = *static_cast<Context*>(main_.get());
    contexts_.push_back(&m);
    if (n > 1)
      LETHE_CUDA_CHECK(cudaSetDevice(m.device));  // the extra streams live on the session's device
    for (int s = 1; s < n; ++s) {
      auto c = std::make_unique<Context>();
      init_context(*c, m.device);
      contexts_.push_back(c.get());
      owned_.push_back(std::move(c));
    }
    last_.assign(contexts_.size(), -1);
  }
  ~CudaStreams() override {
    for (cudaEvent_t e : done_) (void)cudaEventDestroy(e);  // never throws from a destructor
    for (cudaEvent_t e : timing_) (void)cudaEventDestroy(e);
  }
  CudaStreams(const CudaStreams&) = delete;
  CudaStreams& operator=(const CudaStreams&) = delete;

  void* context(int s) override { return contexts_.at(static_cast<size_t>(s)); }
  void wait(int s, size_t step) override {
    LETHE_ASSERT(step < done_.size());
    LETHE_CUDA_CHECK(cudaStreamWaitEvent(stream(s), done_[step], 0));
  }
  void done(int s, size_t step) override {
    while (done_.size() <= step) done_.push_back(event(cudaEventDisableTiming));
    LETHE_CUDA_CHECK(cudaEventRecord(done_[step], stream(s)));
    last_[static_cast<size_t>(s)] = static_cast<int64_t>(step);
  }
  int mark(int s) override {
    if (used_ == timing_.size()) timing_.push_back(event(cudaEventDefault));
    LETHE_CUDA_CHECK(cudaEventRecord(timing_[used_], stream(s)));
    return static_cast<int>(used_++);
  }
  void join() override {
    for (size_t s = 1; s < contexts_.size(); ++s)
      if (last_[s] >= 0) wait(0, static_cast<size_t>(last_[s]));
  }
  void synchronize() override {
    for (Context* c : contexts_) LETHE_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    used_ = 0;
    last_.assign(contexts_.size(), -1);
  }
  double seconds(int from, int to) override {
    float ms = 0;
    LETHE_CUDA_CHECK(cudaEventElapsedTime(&ms, timing_.at(static_cast<size_t>(from)),
                                          timing_.at(static_cast<size_t>(to))));
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  cudaStream_t stream(int s) const { return contexts_.at(static_cast<size_t>(s))->stream; }
  static cudaEvent_t event(unsigned flags) {
    cudaEvent_t e = nullptr;
    LETHE_CUDA_CHECK(cudaEventCreateWithFlags(&e, flags));
    return e;
  }
  std::shared_ptr<void> main_;
  std::vector<Context*> contexts_;
  std::vector<std::unique_ptr<Context>> owned_;
  std::vector<cudaEvent_t> done_, timing_;
  std::vector<int64_t> last_;
  size_t used_ = 0;
};

}  // namespace

std::unique_ptr<DeviceStreams> make_device_streams(std::shared_ptr<void> context, int n) {
  LETHE_CHECK(n >= 1, "CUDA streams: need at least one, got ", n);
  auto s = std::make_unique<CudaStreams>(std::move(context), n);
  return s;
}

}  // namespace lethe::cuda::detail
