#include "framework/storage.h"

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>
#include <cstring>
#include <cstdlib>
#include <new>

#include "framework/backend.h"
#include "framework/error.h"
#include "framework/tier.h"

namespace lethe {
namespace {

// Host buffers, cached by size like PyTorch's caching allocator: a training loop asks for the same
// sizes every step, and fresh pages would cost a page fault per 4 KiB.
class HeapAllocator final : public Allocator {
  struct State {
    std::mutex mu;
    std::unordered_map<size_t, std::vector<void*>> cache;
    size_t cached = 0;
    std::atomic<size_t> in_use{0};
    std::atomic<size_t> peak{0};
    ~State() {
      for (auto& [n, v] : cache)
        for (void* p : v) std::free(p);
    }
  };
  static constexpr size_t kMaxCached = size_t{1} << 30;

 public:
  std::shared_ptr<Storage> allocate(size_t bytes) override {
    const size_t n = align_up(bytes ? bytes : 1);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      auto it = state_->cache.find(n);
      if (it != state_->cache.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        state_->cached -= n;
      }
    }
    if (!p) p = std::aligned_alloc(kAlignment, n);
    if (!p) throw Error("out of host memory allocating " + std::to_string(n) + " bytes");
    auto s = std::make_shared<Storage>();
    s->data = p;
    s->bytes = bytes;
    s->device = Device::cpu();
    size_t now = state_->in_use += n;
    size_t pk = state_->peak.load();
    while (now > pk && !state_->peak.compare_exchange_weak(pk, now)) {
    }
    s->release = [st = state_, n](void* d) {
      st->in_use -= n;
      std::lock_guard<std::mutex> lock(st->mu);
      if (st->cached + n <= kMaxCached) {
        st->cache[n].push_back(d);
        st->cached += n;
      } else {
        std::free(d);
      }
    };
    return s;
  }
  size_t in_use() const override { return state_->in_use.load(); }
  size_t peak() const override { return state_->peak.load(); }
  void reset_peak() override { state_->peak = state_->in_use.load(); }

 private:
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace

std::unique_ptr<Allocator> make_heap_allocator() {
  return std::make_unique<HeapAllocator>();
}

void copy_to_host(const Storage& s, void* dst, size_t bytes, size_t offset) {
  LETHE_ASSERT(offset + bytes <= s.bytes);
  if (s.home) {
    read_home_host(s, dst, bytes, offset);
    return;
  }
  const char* src = static_cast<const char*>(s.data) + offset;
  if (bytes) backend(s.device.kind).copy(dst, src, bytes, true, s.context.get());
}

void copy_from_host(Storage& s, const void* src, size_t bytes, size_t offset) {
  LETHE_ASSERT(offset + bytes <= s.bytes);
  if (s.home) {
    write_home_host(s, src, bytes, offset);
    return;
  }
  char* dst = static_cast<char*>(s.data) + offset;
  if (bytes) backend(s.device.kind).copy(dst, src, bytes, false, s.context.get());
}

}  // namespace lethe
