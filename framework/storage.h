// A block of device memory holding one value. Who provides it (plain aligned allocation, or a slice
// of the session's arena) is the allocator's business; Storage only knows how to give it back.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "framework/device.h"

namespace lethe {

constexpr size_t kAlignment = 64;  // every buffer is 64-byte aligned (DESIGN invariant 2)

inline size_t align_up(size_t n, size_t a = kAlignment) {
  return (n + a - 1) / a * a;
}

// What a long-lived buffer holds, for the budget breakdown of an infeasible step.
enum class StorageRole : uint8_t { other, parameter, buffer, gradient, optimizer_state };

struct TierHome;  // framework/tier.h

struct Storage {
  // Null while the value lives in the session's second tier (`home`) between steps.
  void* data = nullptr;
  StorageRole role = StorageRole::other;
  size_t bytes = 0;
  Device device;
  // The backend context of the session that made it (CUDA: its stream and handles, kept alive by
  // this pointer); null on the CPU. Copies to and from the host run in that context's stream order,
  // whichever session is current on the calling thread.
  std::shared_ptr<void> context;
  std::function<void(void*)> release;  // called once when the storage dies
  // A long-lived value whose home is the session's second tier (SessionOptions::offload_state):
  // `data` is null and a step reads it in where its plan says (framework/tier.h, move_home()).
  std::shared_ptr<TierHome> home;

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (release) release(data);
  }
};

// Interface of whatever places buffers: the default heap allocator or a session's arena.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual std::shared_ptr<Storage> allocate(size_t bytes) = 0;
  virtual size_t in_use() const = 0;
  virtual size_t peak() const = 0;
  virtual void reset_peak() = 0;
};

// 64-byte aligned host allocations that count bytes in use and the peak.
std::unique_ptr<Allocator> make_heap_allocator();

}  // namespace lethe

namespace lethe {

// Copies between a storage and host memory. CPU storages use memcpy; other devices their Backend's
// copy (framework/backend.h), which receives the storage's owning context. A storage whose home is
// the second tier is read and written there (between steps).
void copy_to_host(const Storage& s, void* dst, size_t bytes, size_t offset = 0);
void copy_from_host(Storage& s, const void* src, size_t bytes, size_t offset = 0);

}  // namespace lethe
