// The CUDA backend (framework/backend.h): device detection, copies and arena blocks, session
// contexts, the caching allocator of unlimited sessions, and the Backend that joins them with the
// kernels (ops/cuda/register.cpp), the timer, the streams and the pinned tier.
#include <array>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "framework/arena.h"
#include "framework/backend.h"
#include "framework/op.h"
#include "framework/step_timer.h"
#include "framework/tier.h"
#include "framework/executor.h"
#include "framework/cuda.h"
#include "framework/cuda/backend.h"
#include "framework/cuda/context.h"

namespace lethe::cuda::detail {
namespace {

// The context that owns a storage: every CUDA storage records its session's (framework/storage.h),
// so a copy is ordered after the kernels that wrote the value, whichever session is current on the
// calling thread (none, or another one).
Context& owner(void* context) {
  LETHE_ASSERT(context != nullptr);  // a CUDA storage always records its session's context
  return *static_cast<Context*>(context);
}

// Makes the owner's device current for one copy and restores the caller's (a session on another
// device may be launching from this thread).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    LETHE_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) LETHE_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { (void)cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Host <-> device copy in the owning session's stream. The stream is non-blocking (unordered with
// the legacy NULL stream), so the copy must be issued on it. A host read waits for that stream: the
// data is in `dst` on return. A host write from pageable memory is staged by the driver before
// cudaMemcpyAsync returns, so `src` may be reused at once and later kernels of the stream see it.
void copy(void* dst, const void* src, size_t bytes, bool to_host, void* context) {
  if (bytes == 0) return;
  Context& c = owner(context);
  DeviceGuard on(c.device);
  LETHE_CUDA_CHECK(cudaMemcpyAsync(
      dst, src, bytes, to_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, c.stream));
  if (to_host) LETHE_CUDA_CHECK(cudaStreamSynchronize(c.stream));
}

// memmove on the device, in the owning session's stream order. Overlapping moves (relocation to a
// lower hole) go in chunks no longer than the distance, lowest first, so no chunk overwrites unread
// bytes.
void move(void* dst, const void* src, size_t bytes, void* context) {
  Context& c = owner(context);
  DeviceGuard on(c.device);
  cudaStream_t s = c.stream;
  char* d = static_cast<char*>(dst);
  const char* p = static_cast<const char*>(src);
  const size_t dist = d > p ? static_cast<size_t>(d - p) : static_cast<size_t>(p - d);
  if (dist >= bytes) {
    LETHE_CUDA_CHECK(cudaMemcpyAsync(d, p, bytes, cudaMemcpyDeviceToDevice, s));
  } else if (d < p) {
    for (size_t o = 0; o < bytes; o += dist)
      LETHE_CUDA_CHECK(
          cudaMemcpyAsync(d + o, p + o, std::min(dist, bytes - o), cudaMemcpyDeviceToDevice, s));
  } else {
    for (size_t end = bytes; end > 0;) {
      const size_t len = std::min(dist, end);
      end -= len;
      LETHE_CUDA_CHECK(cudaMemcpyAsync(d + end, p + end, len, cudaMemcpyDeviceToDevice, s));
    }
  }
}

// The arena: one cudaMalloc of the whole budget. nullptr (not an exception) when it does not fit,
// so the arena reports the budget as too large.
void* allocate(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return p;
}
void deallocate(void* p) {
  if (p) (void)cudaFree(p);  // never throws from a destructor
}

// Blocks cached by exact rounded size. A block freed by a storage is reused only by later work of
// the same session's stream, so stream order makes the reuse safe without events.
struct Pool {
  std::mutex m;
  std::multimap<size_t, void*> free_blocks;
  size_t in_use = 0, peak = 0;
  ~Pool() {
    for (auto& [n, p] : free_blocks) (void)cudaFree(p);
  }
};

class DeviceAllocator final : public Allocator {
 public:
  explicit DeviceAllocator(std::shared_ptr<void> ctx)
      : ctx_(std::move(ctx)), pool_(std::make_shared<Pool>()) {}
  std::shared_ptr<Storage> allocate(size_t bytes) override {
    const size_t n =
        bytes < (1u << 20) ? align_up(bytes ? bytes : 1, 512) : align_up(bytes, 1u << 20);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(pool_->m);
      auto it = pool_->free_blocks.find(n);
      if (it != pool_->free_blocks.end()) {
        p = it->second;
        pool_->free_blocks.erase(it);
      }
    }
    if (!p) {
      cudaError_t e = cudaMalloc(&p, n);
      if (e != cudaSuccess) {
        // Out of memory: give the cache back and retry once.
        (void)cudaGetLastError();
        std::lock_guard<std::mutex> lock(pool_->m);
        for (auto& [sz, q] : pool_->free_blocks) LETHE_CUDA_CHECK(cudaFree(q));
        pool_->free_blocks.clear();
        LETHE_CUDA_CHECK(cudaMalloc(&p, n));
      }
    }
    auto s = std::make_shared<Storage>();
    s->data = p;
    s->bytes = bytes;
    s->device = Device::cuda(static_cast<Context*>(ctx_.get())->device);
    s->context = ctx_;
    {
      std::lock_guard<std::mutex> lock(pool_->m);
      pool_->in_use += n;
      pool_->peak = std::max(pool_->peak, pool_->in_use);
    }
    auto pool = pool_;
    s->release = [pool, n](void* d) {
      std::lock_guard<std::mutex> lock(pool->m);
      pool->in_use -= n;
      pool->free_blocks.emplace(n, d);
    };
    return s;
  }
  size_t in_use() const override { return pool_->in_use; }
  size_t peak() const override { return pool_->peak; }
  void reset_peak() override { pool_->peak = pool_->in_use; }

 private:
  std::shared_ptr<void> ctx_;
  std::shared_ptr<Pool> pool_;
};

}  // namespace

Context::~Context() {
  // Destructors never throw: errors here are ignored (the process may be tearing down the driver).
  if (stream) (void)cudaStreamSynchronize(stream);
  if (dnn) (void)cudnnDestroy(dnn);
  if (blas) (void)cublasDestroy(blas);
  if (scratch) (void)cudaFree(scratch);
  if (stream) (void)cudaStreamDestroy(stream);
}

int runtime_device_count(std::string* error) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error (no device, insufficient driver, ...)
    if (error)
      *error = lethe::detail::concat("cudaGetDeviceCount failed: ", cudaGetErrorString(e), " (",
                                     cudaGetErrorName(e), ", code ", static_cast<int>(e), ")");
    return 0;
  }
  if (n == 0 && error) *error = "cudaGetDeviceCount found no CUDA device";
  return n;
}

void init_context(Context& c, int device) {
  c.device = device;
  LETHE_CUDA_CHECK(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking));
  LETHE_CUBLAS_CHECK(cublasCreate(&c.blas));
  LETHE_CUBLAS_CHECK(cublasSetStream(c.blas, c.stream));
  // Deterministic: no atomics in cuBLAS reductions; the workspace is set per call from the arena.
  LETHE_CUBLAS_CHECK(cublasSetAtomicsMode(c.blas, CUBLAS_ATOMICS_NOT_ALLOWED));
  LETHE_CUBLAS_CHECK(cublasSetWorkspace(c.blas, nullptr, 0));
  LETHE_CUDNN_CHECK(cudnnCreate(&c.dnn));
  LETHE_CUDNN_CHECK(cudnnSetStream(c.dnn, c.stream));
  LETHE_CUDA_CHECK(cudaMalloc(&c.scratch, kScratchBytes));
}

std::shared_ptr<void> create_context(int index) {
  const int n = lethe::cuda::device_count();
  LETHE_CHECK(index >= 0 && index < n, "Device::cuda(", index, "): this machine has ", n,
              " CUDA device(s)");
  LETHE_CUDA_CHECK(cudaSetDevice(index));
  auto c = std::make_shared<Context>();
  init_context(*c, index);
  return std::shared_ptr<void>(c, c.get());
}

namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    for (OpKind k : all_op_kinds()) {
      kernels_[static_cast<size_t>(k)] = kernel_of(k);
      workspaces_[static_cast<size_t>(k)] = workspace_of(k);
    }
  }
  DeviceKind kind() const override { return DeviceKind::cuda; }
  DeviceKernel kernel(OpKind op) const override { return kernels_[static_cast<size_t>(op)]; }
  // The kernels that size their own workspace (cuDNN's algorithm, cuBLAS, column partial sums,
  // ...) say so in ops/cuda/register.cpp; the others use the CPU kernel's size.
  size_t workspace_bytes(const Op& op, const std::vector<TensorMeta>& in,
                         const TensorMeta& out) const override {
    const KernelWorkspaceFn f = workspaces_[static_cast<size_t>(op.kind())];
    return f ? f(op, in, out) : op.workspace_bytes(in, out);
  }
  void* allocate(size_t bytes) override { return detail::allocate(bytes); }
  void deallocate(void* p) override { detail::deallocate(p); }
  void move(void* dst, const void* src, size_t bytes, void* context) override {
    detail::move(dst, src, bytes, context);
  }
  void copy(void* dst, const void* src, size_t bytes, bool to_host, void* context) override {
    detail::copy(dst, src, bytes, to_host, context);
  }
  std::shared_ptr<void> create_context(int index) override { return detail::create_context(index); }
  std::unique_ptr<Allocator> make_allocator(std::shared_ptr<void> context) override {
    return std::make_unique<DeviceAllocator>(std::move(context));
  }
  std::unique_ptr<StepTimer> make_timer(std::shared_ptr<void> context) override {
    return make_event_timer(std::move(context));
  }
  std::unique_ptr<DeviceStreams> make_streams(std::shared_ptr<void> context, int n) override {
    return make_device_streams(std::move(context), n);
  }
  std::unique_ptr<OffloadTier> make_tier(int index, size_t bytes, const std::string&,
                                         int) override {
    return make_pinned_tier(index, bytes);
  }

 private:
  std::array<DeviceKernel, kOpKindCount> kernels_{};
  std::array<KernelWorkspaceFn, kOpKindCount> workspaces_{};
};

}  // namespace

Backend& cuda_backend() {
  static CudaBackend b;
  return b;
}

}  // namespace lethe::cuda::detail
