// The session's arena: one allocation of exactly the memory budget, made once. Long-lived values
// (parameters, gradients the user keeps, optimizer state, the batch) sit at its bottom, placed
// first-fit; a step's buffers sit above them at the offsets of the step's static layout. Nothing
// else of the session lives on the device.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "framework/storage.h"

namespace lethe {

class Backend;  // framework/backend.h

class Arena : public std::enable_shared_from_this<Arena> {
 public:
  // Allocates `bytes` on `device` (host: one 64-byte aligned block). `context` is the owning
  // session's backend context (null on the CPU): every storage of the arena carries it, and moves
  // inside the arena run in its stream order.
  static std::shared_ptr<Arena> create(size_t bytes, Device device,
                                       std::shared_ptr<void> context = nullptr);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  size_t capacity() const { return capacity_; }
  char* base() const { return base_; }
  Device device() const { return device_; }
  const std::shared_ptr<void>& context() const { return context_; }

  // A long-lived value, first-fit from the bottom; freed when the Storage dies. nullptr when no
  // hole is large enough.
  std::shared_ptr<Storage> allocate_persistent(size_t bytes);
  // Moves `s` (a step buffer that becomes long-lived) to the lowest hole and re-points it there.
  // Safe when step buffers are relocated in increasing address order (see the executor).
  bool relocate_to_persistent(Storage& s);
  // Moves `s` (a long-lived value of this arena) to the lowest hole below it, if there is one, and
  // re-points it there (after values below it left the arena: the step's window grows).
  void move_down(Storage& s);
  // End of the highest long-lived value: step buffers start here.
  size_t persistent_end() const;
  size_t persistent_bytes() const { return persistent_bytes_; }

  // Peak = highest end offset of anything live, as observed by note_extent.
  void note_extent(size_t end) {
    if (end > peak_) peak_ = end;
  }
  size_t peak() const { return peak_; }
  void reset_peak() { peak_ = persistent_end(); }

 private:
  Arena(char* base, size_t bytes, Device d, Backend& b, std::shared_ptr<void> context)
      : base_(base), capacity_(bytes), device_(d), backend_(b), context_(std::move(context)) {}
  size_t find_hole(size_t bytes) const;
  void release(size_t offset);

  char* base_;
  size_t capacity_;
  Device device_;
  Backend& backend_;  // allocated the block; frees it
  std::shared_ptr<void> context_;
  std::map<size_t, size_t> live_;  // offset -> aligned size of long-lived values
  size_t persistent_bytes_ = 0;
  size_t peak_ = 0;
};

// Copies within one device (its Backend's move, ordered in `context`'s stream; memmove on the
// host).
void device_move(Device d, void* dst, const void* src, size_t bytes, void* context);

}  // namespace lethe
