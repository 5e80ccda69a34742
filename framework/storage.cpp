#include "framework/storage.h"

#include <atomic>
#include <cstring>
#include <cstdlib>
#include <new>

#include "framework/error.h"

namespace lethe {
namespace {

class HeapAllocator final : public Allocator {
 public:
  std::shared_ptr<Storage> allocate(size_t bytes) override {
    auto s = std::make_shared<Storage>();
    size_t n = align_up(bytes ? bytes : 1);
    s->data = std::aligned_alloc(kAlignment, n);
    if (!s->data) throw Error("out of host memory allocating " + std::to_string(n) + " bytes");
    s->bytes = bytes;
    s->device = Device::cpu();
    size_t now = in_use_ += n;
    size_t p = peak_.load();
    while (now > p && !peak_.compare_exchange_weak(p, now)) {
    }
    // The allocator outlives its storages only while the session does; storages kept by the user
    // beyond the session release through a plain free.
    auto counter = counter_;
    s->release = [counter, n](void* d) {
      std::free(d);
      counter->fetch_sub(n);
    };
    return s;
  }
  size_t in_use() const override { return in_use_.load(); }
  size_t peak() const override { return peak_.load(); }
  void reset_peak() override { peak_ = in_use_.load(); }

 private:
  std::shared_ptr<std::atomic<size_t>> counter_ = std::make_shared<std::atomic<size_t>>(0);
  std::atomic<size_t>& in_use_ = *counter_;
  std::atomic<size_t> peak_{0};
};

}  // namespace

std::unique_ptr<Allocator> make_heap_allocator() { return std::make_unique<HeapAllocator>(); }

}  // namespace lethe

namespace lethe {
namespace {
DeviceCopyFn g_cuda_copy = nullptr;
}

void set_device_copy(DeviceKind kind, DeviceCopyFn fn) {
  if (kind == DeviceKind::cuda) g_cuda_copy = fn;
}

void copy_to_host(const Storage& s, void* dst, size_t bytes, size_t offset) {
  LETHE_ASSERT(offset + bytes <= s.bytes);
  const char* src = static_cast<const char*>(s.data) + offset;
  if (s.device.is_cpu()) {
    if (bytes) std::memcpy(dst, src, bytes);
    return;
  }
  LETHE_CHECK(g_cuda_copy, "no copy routine for device ", s.device.str(), " in this build");
  g_cuda_copy(dst, src, bytes, true);
}

void copy_from_host(Storage& s, const void* src, size_t bytes, size_t offset) {
  LETHE_ASSERT(offset + bytes <= s.bytes);
  char* dst = static_cast<char*>(s.data) + offset;
  if (s.device.is_cpu()) {
    if (bytes) std::memcpy(dst, src, bytes);
    return;
  }
  LETHE_CHECK(g_cuda_copy, "no copy routine for device ", s.device.str(), " in this build");
  g_cuda_copy(dst, src, bytes, false);
}

}  // namespace lethe
