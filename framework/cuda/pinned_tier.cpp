// The CUDA second tier (framework/tier.h): one pinned host block, a device-to-host and a
// host-to-device stream of the tier's own. A ticket is a pair of timing events recorded around the
// copy on its stream; the executor's streams wait on the end event (stream_wait) without blocking
// the host, and a copy waits on the executor's stream through a marker event (CopyOrder). Events
// are pooled: made once, reused by later copies.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "framework/cuda.h"
#include "framework/cuda/backend.h"
#include "framework/cuda/context.h"
#include "framework/tier.h"
#include "scheduler/budget.h"

namespace lethe::cuda::detail {
namespace {

using lethe::detail::concat;

// Makes the tier's device current for a call and restores the caller's.
class OnDevice {
 public:
  explicit OnDevice(int device) {
    LETHE_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) LETHE_CUDA_CHECK(cudaSetDevice(device));
  }
  ~OnDevice() { (void)cudaSetDevice(previous_); }
  OnDevice(const OnDevice&) = delete;
  OnDevice& operator=(const OnDevice&) = delete;

 private:
  int previous_ = 0;
};

struct Copy {
  OffloadTier::Direction dir = OffloadTier::Direction::out;
  size_t offset = 0, bytes = 0;
  cudaEvent_t start = nullptr, end = nullptr;
};

class PinnedTier final : public OffloadTier {
 public:
  PinnedTier(int device, size_t bytes) : OffloadTier(bytes, Device::cuda(device)), dev_(device) {
    LETHE_CHECK(bytes > 0, "tier: the capacity of the second tier must be positive, got 0 bytes");
    OnDevice on(dev_);
    const cudaError_t e = cudaHostAlloc(&host_, bytes, cudaHostAllocDefault);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      host_ = nullptr;
      throw Error(concat("tier: cannot pin ", bytes, " bytes (",
                         sched::format_bytes(static_cast<int64_t>(bytes)),
                         ") of host memory for cuda:", dev_, ": ", cudaGetErrorString(e), " (code ",
                         static_cast<int>(e), ")"));
    }
    try {
      LETHE_CUDA_CHECK(cudaStreamCreateWithFlags(&d2h_, cudaStreamNonBlocking));
      LETHE_CUDA_CHECK(cudaStreamCreateWithFlags(&h2d_, cudaStreamNonBlocking));
      LETHE_CUDA_CHECK(cudaEventCreateWithFlags(&marker_, cudaEventDisableTiming));
    } catch (...) {
      release();
      throw;
    }
  }
  ~PinnedTier() override { release(); }

  std::string describe() const override {
    return concat("pinned host tier of ", sched::format_bytes(static_cast<int64_t>(capacity())),
                  " for cuda:", dev_);
  }

  void wait(TierTicket t) override {
    if (!t) return;
    std::lock_guard<std::mutex> lock(m_);
    auto it = find(t, "wait");
    if (it == pending_.end()) return;
    const Copy c = it->second;
    pending_.erase(it);
    OnDevice on(dev_);
    try {
      LETHE_CUDA_CHECK(cudaEventSynchronize(c.end));
    } catch (Error& e) {
      give_back(c);
      e.add_context(what(c) + " failed: ");
      throw;
    }
    account(c);
    give_back(c);
  }

  void stream_wait(TierTicket t, void* stream_context) override {
    if (!t) return;
    LETHE_CHECK(stream_context != nullptr, "tier: stream_wait: no stream context given");
    Context& ctx = *static_cast<Context*>(stream_context);
    LETHE_CHECK(ctx.device == dev_, "tier: stream_wait: a stream of cuda:", ctx.device,
                " cannot wait for the ", describe());
    std::lock_guard<std::mutex> lock(m_);
    auto it = find(t, "stream_wait");
    if (it == pending_.end()) return;
    OnDevice on(dev_);
    LETHE_CUDA_CHECK(cudaStreamWaitEvent(ctx.stream, it->second.end, 0));
  }

  bool ready(TierTicket t) override {
    std::lock_guard<std::mutex> lock(m_);
    auto it = pending_.find(t.id);
    if (it == pending_.end()) return true;
    OnDevice on(dev_);
    const cudaError_t e = cudaEventQuery(it->second.end);
    if (e == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    return true;  // done, or failed (wait() reports it)
  }

  void synchronize() override {
    std::lock_guard<std::mutex> lock(m_);
    OnDevice on(dev_);
    try {
      LETHE_CUDA_CHECK(cudaStreamSynchronize(d2h_));
      LETHE_CUDA_CHECK(cudaStreamSynchronize(h2d_));
    } catch (Error& e) {
      for (auto& [id, c] : pending_) give_back(c);
      e.add_context(concat("tier: synchronize: ", pending_.size(), " copies of the ", describe(),
                           " in flight: "));
      pending_.clear();
      throw;
    }
    for (auto& [id, c] : pending_) {
      account(c);
      give_back(c);
    }
    pending_.clear();
  }

  size_t pending() const override {
    std::lock_guard<std::mutex> lock(m_);
    return pending_.size();
  }

  TierStats stats() const override {
    std::lock_guard<std::mutex> lock(m_);
    return stats_;
  }
  void reset_stats() override {
    std::lock_guard<std::mutex> lock(m_);
    stats_ = {};
  }

 protected:
  TierTicket start_copy(Direction dir, size_t offset, void* ptr, size_t bytes,
                        const CopyOrder& order) override {
    std::lock_guard<std::mutex> lock(m_);
    OnDevice on(dev_);
    const bool out = dir == Direction::out;
    cudaStream_t s = out ? d2h_ : h2d_;
    if (order.after_stream) {
      Context& ctx = *static_cast<Context*>(order.after_stream);
      LETHE_CHECK(ctx.device == dev_, "tier: a copy of the ", describe(),
                  " cannot follow a stream of cuda:", ctx.device);
      // The wait takes the marker's state now, so the marker can be recorded again at once.
      LETHE_CUDA_CHECK(cudaEventRecord(marker_, ctx.stream));
      LETHE_CUDA_CHECK(cudaStreamWaitEvent(s, marker_, 0));
    }
    if (order.after_event)
      LETHE_CUDA_CHECK(cudaStreamWaitEvent(s, static_cast<cudaEvent_t>(order.after_event), 0));
    if (order.after_copy) {
      auto it = find(order.after_copy, "CopyOrder::after_copy");
      if (it != pending_.end()) LETHE_CUDA_CHECK(cudaStreamWaitEvent(s, it->second.end, 0));
    }
    Copy c{dir, offset, bytes, take_event(), nullptr};
    try {
      c.end = take_event();
      char* h = static_cast<char*>(host_) + offset;
      LETHE_CUDA_CHECK(cudaEventRecord(c.start, s));
      LETHE_CUDA_CHECK(cudaMemcpyAsync(out ? h : ptr, out ? static_cast<const void*>(ptr) : h,
                                       bytes, out ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice,
                                       s));
      LETHE_CUDA_CHECK(cudaEventRecord(c.end, s));
    } catch (Error& e) {
      give_back(c);
      e.add_context(what(c) + ": ");
      throw;
    }
    if (out) stats_.peak_offset = std::max(stats_.peak_offset, offset + bytes);
    const uint64_t id = next_id_++;
    pending_.emplace(id, c);
    return {id};
  }

  void read_host(void* dst, size_t offset, size_t bytes) override {
    synchronize();
    LETHE_CHECK(offset <= capacity() && bytes <= capacity() - offset, "tier: a read of ", bytes,
                " bytes at offset ", offset, " runs past the end of the ", describe());
    std::memcpy(dst, static_cast<const char*>(host_) + offset, bytes);
  }

  void write_host(size_t offset, const void* src, size_t bytes) override {
    synchronize();
    LETHE_CHECK(offset <= capacity() && bytes <= capacity() - offset, "tier: a write of ", bytes,
                " bytes at offset ", offset, " runs past the end of the ", describe());
    std::memcpy(static_cast<char*>(host_) + offset, src, bytes);
  }

  TierBandwidth probe(void* scratch, size_t n) override {
    void* own = nullptr;
    if (!scratch) {
      OnDevice on(dev_);
      LETHE_CUDA_CHECK(cudaMalloc(&own, n));
      scratch = own;
    }
    struct Free {
      void* p;
      ~Free() {
        if (p) (void)cudaFree(p);
      }
    } free_own{own};
    // The tier's bytes and stats come back as they were.
    std::vector<char> saved(n);
    std::memcpy(saved.data(), host_, n);
    const TierStats before = stats();
    wait(copy_out(0, scratch, n));  // warm-up
    wait(copy_in(scratch, 0, n));
    // The median of five, each copy timed by its own events on the copy stream.
    std::vector<double> out, in;
    for (int r = 0; r < 5; ++r) {
      const TierStats s0 = stats();
      wait(copy_out(0, scratch, n));
      wait(copy_in(scratch, 0, n));
      const TierStats s1 = stats();
      out.push_back(s1.seconds_out - s0.seconds_out);
      in.push_back(s1.seconds_in - s0.seconds_in);
    }
    std::sort(out.begin(), out.end());
    std::sort(in.begin(), in.end());
    std::memcpy(host_, saved.data(), n);
    {
      std::lock_guard<std::mutex> lock(m_);
      stats_ = before;
    }
    TierBandwidth b;
    b.out_bytes_per_s = static_cast<double>(n) / std::max(out[out.size() / 2], 1e-9);
    b.in_bytes_per_s = static_cast<double>(n) / std::max(in[in.size() / 2], 1e-9);
    return b;
  }

  std::string probe_key() const override { return concat("pinned:cuda:", dev_); }

 private:
  std::unordered_map<uint64_t, Copy>::iterator find(TierTicket t, const char* who) {
    auto it = pending_.find(t.id);
    LETHE_CHECK(it != pending_.end() || t.id < next_id_, "tier: ", who, ": ticket ", t.id,
                " was not issued by this ", describe());
    return it;
  }

  std::string what(const Copy& c) const {
    const bool out = c.dir == Direction::out;
    return concat("tier: copy ", out ? "out" : "in", " of ", c.bytes, " bytes ",
                  out ? "to" : "from", " offset ", c.offset, " of the ", describe());
  }

  cudaEvent_t take_event() {
    if (!free_events_.empty()) {
      cudaEvent_t e = free_events_.back();
      free_events_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    LETHE_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDefault));  // timed: stats
    return e;
  }
  void give_back(const Copy& c) {
    if (c.start) free_events_.push_back(c.start);
    if (c.end) free_events_.push_back(c.end);
  }
  // A finished copy in the stats: its time on the copy stream, between its two events.
  void account(const Copy& c) {
    float ms = 0;
    if (cudaEventElapsedTime(&ms, c.start, c.end) != cudaSuccess) {
      (void)cudaGetLastError();
      ms = 0;
    }
    const double s = static_cast<double>(ms) * 1e-3;
    if (c.dir == Direction::out) {
      stats_.bytes_out += c.bytes;
      ++stats_.copies_out;
      stats_.seconds_out += s;
    } else {
      stats_.bytes_in += c.bytes;
      ++stats_.copies_in;
      stats_.seconds_in += s;
    }
  }

  // Never throws (destructor, failed constructor): errors are ignored.
  void release() {
    if (d2h_) (void)cudaStreamSynchronize(d2h_);
    if (h2d_) (void)cudaStreamSynchronize(h2d_);
    for (auto& [id, c] : pending_) give_back(c);
    pending_.clear();
    for (cudaEvent_t e : free_events_) (void)cudaEventDestroy(e);
    free_events_.clear();
    if (marker_) (void)cudaEventDestroy(marker_);
    if (d2h_) (void)cudaStreamDestroy(d2h_);
    if (h2d_) (void)cudaStreamDestroy(h2d_);
    if (host_) (void)cudaFreeHost(host_);
    marker_ = nullptr;
    d2h_ = h2d_ = nullptr;
    host_ = nullptr;
  }

  int dev_;
  void* host_ = nullptr;
  cudaStream_t d2h_ = nullptr, h2d_ = nullptr;
  cudaEvent_t marker_ = nullptr;
  mutable std::mutex m_;
  std::unordered_map<uint64_t, Copy> pending_;
  std::vector<cudaEvent_t> free_events_;
  uint64_t next_id_ = 1;
  TierStats stats_;
};

}  // namespace

std::unique_ptr<OffloadTier> make_pinned_tier(int index, size_t bytes) {
  const int n = lethe::cuda::device_count();
  LETHE_CHECK(index >= 0 && index < n, "tier: Device::cuda(", index, "): this machine has ", n,
              " CUDA device(s)");
  return std::make_unique<PinnedTier>(index, bytes);
}

}  // namespace lethe::cuda::detail
