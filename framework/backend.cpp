// The backend registry and the CPU backend (framework/backend.h).
#include "framework/backend.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "framework/cuda.h"
#include "framework/error.h"
#include "framework/executor.h"
#include "framework/op.h"
#include "framework/step_timer.h"
#include "framework/storage.h"
#include "framework/tier.h"

namespace lethe {
namespace {

// The CPU kernel of every op is Op::cpu.
void cpu_kernel(const Op& op, const KernelCall& call) {
  op.cpu(call);
}

class CpuBackend final : public Backend {
 public:
  DeviceKind kind() const override { return DeviceKind::cpu; }
  DeviceKernel kernel(OpKind) const override { return cpu_kernel; }
  size_t workspace_bytes(const Op& op, const std::vector<TensorMeta>& in,
                         const TensorMeta& out) const override {
    return op.workspace_bytes(in, out);
  }
  void* allocate(size_t bytes) override { return std::aligned_alloc(kAlignment, align_up(bytes)); }
  void deallocate(void* p) override { std::free(p); }
  void move(void* dst, const void* src, size_t bytes, void*) override {
    std::memmove(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes, bool, void*) override {
    std::memcpy(dst, src, bytes);
  }
  std::shared_ptr<void> create_context(int index) override {
    LETHE_CHECK(index == 0, "Device::cpu(", index, "): there is one CPU device, index 0");
    return nullptr;
  }
  std::unique_ptr<Allocator> make_allocator(std::shared_ptr<void>) override {
    return make_heap_allocator();
  }
  std::unique_ptr<StepTimer> make_timer(std::shared_ptr<void>) override {
    return make_host_timer();
  }
  std::unique_ptr<DeviceStreams> make_streams(std::shared_ptr<void>, int) override {
    return nullptr;
  }
  std::unique_ptr<OffloadTier> make_tier(int, size_t bytes, const std::string& path,
                                         int io_threads) override {
    return make_file_tier(bytes, path, io_threads);
  }
};

constexpr size_t kKinds = 2;  // DeviceKind::cpu, DeviceKind::cuda

std::array<std::atomic<Backend*>, kKinds>& registry() {
  static CpuBackend cpu;
  static std::array<std::atomic<Backend*>, kKinds> r{&cpu, nullptr};
  return r;
}

size_t slot(DeviceKind kind) {
  const auto i = static_cast<size_t>(kind);
  LETHE_ASSERT(i < kKinds, "a device kind without a backend slot: ", static_cast<int>(i));
  return i;
}

}  // namespace

Backend* find_backend(DeviceKind kind) {
  return registry()[slot(kind)].load(std::memory_order_acquire);
}

Backend& backend(DeviceKind kind) {
  if (Backend* b = find_backend(kind)) return *b;
  if (kind == DeviceKind::cuda) cuda::init();  // registers the CUDA backend, or throws why not
  Backend* b = find_backend(kind);
  LETHE_ASSERT(b != nullptr, "lethe::cuda::init() returned without registering the backend");
  return *b;
}

Backend* set_backend(DeviceKind kind, Backend* b) {
  LETHE_CHECK(b == nullptr || b->kind() == kind, "set_backend: a backend of another device kind");
  return registry()[slot(kind)].exchange(b, std::memory_order_acq_rel);
}

void run_kernel(const Op& op, const KernelCall& call, Device device) {
  const DeviceKernel k = backend(device.kind).kernel(op.kind());
  LETHE_CHECK(k != nullptr, op.name(), ": no kernel for device ", device.str(),
              " (the op has no kernel on this backend yet)");
  k(op, call);
}

size_t kernel_workspace_bytes(const Op& op, const std::vector<TensorMeta>& in,
                              const TensorMeta& out) {
  return backend(out.device.kind).workspace_bytes(op, in, out);
}

}  // namespace lethe
