#include "framework/arena.h"

#include <cstdlib>
#include <cstring>

#include "framework/backend.h"
#include "framework/error.h"

namespace lethe {
void device_move(Device d, void* dst, const void* src, size_t bytes, void* context) {
  if (dst == src || bytes == 0) return;
  backend(d.kind).move(dst, src, bytes, context);
}

std::shared_ptr<Arena> Arena::create(size_t bytes, Device device, std::shared_ptr<void> context) {
  LETHE_CHECK(bytes > 0, "the memory budget must be positive");
  size_t n = align_up(bytes);
  Backend& b = backend(device.kind);
  void* p = b.allocate(n);
  LETHE_CHECK(p != nullptr, "could not allocate the session's arena of ", bytes, " bytes on ",
              device.str(), "; lower the memory budget");
  // Round the usable capacity down so every offset stays aligned within exactly `bytes`.
  return std::shared_ptr<Arena>(new Arena(static_cast<char*>(p), bytes / kAlignment * kAlignment,
                                          device, b, std::move(context)));
}

Arena::~Arena() {
  backend_.deallocate(base_);
}

size_t Arena::find_hole(size_t n) const {
  size_t off = 0;
  for (const auto& [o, sz] : live_) {
    if (off + n <= o) return off;
    off = std::max(off, o + sz);
  }
  return off + n <= capacity_ ? off : SIZE_MAX;
}

std::shared_ptr<Storage> Arena::allocate_persistent(size_t bytes) {
  size_t n = align_up(bytes ? bytes : 1);
  size_t off = find_hole(n);
  if (off == SIZE_MAX) return nullptr;
  live_[off] = n;
  persistent_bytes_ += n;
  note_extent(off + n);
  auto s = std::make_shared<Storage>();
  s->data = base_ + off;
  s->bytes = bytes;
  s->device = device_;
  s->context = context_;
  std::weak_ptr<Arena> self = shared_from_this();
  s->release = [self](void* d) {
    if (auto a = self.lock()) a->release(static_cast<size_t>(static_cast<char*>(d) - a->base_));
  };
  return s;
}

bool Arena::relocate_to_persistent(Storage& s) {
  size_t n = align_up(s.bytes ? s.bytes : 1);
  size_t off = find_hole(n);
  if (off == SIZE_MAX) return false;
  device_move(device_, base_ + off, s.data, s.bytes, context_.get());
  live_[off] = n;
  persistent_bytes_ += n;
  note_extent(off + n);
  s.data = base_ + off;
  std::weak_ptr<Arena> self = shared_from_this();
  s.release = [self](void* d) {
    if (auto a = self.lock()) a->release(static_cast<size_t>(static_cast<char*>(d) - a->base_));
  };
  return true;
}

void Arena::move_down(Storage& s) {
  const size_t off = static_cast<size_t>(static_cast<char*>(s.data) - base_);
  auto it = live_.find(off);
  LETHE_ASSERT(it != live_.end(), "move_down of a value not in the arena");
  const size_t n = it->second;
  live_.erase(it);
  const size_t to = find_hole(n);
  if (to == SIZE_MAX || to >= off) {
    live_[off] = n;
    return;
  }
  device_move(device_, base_ + to, s.data, s.bytes, context_.get());
  live_[to] = n;
  s.data = base_ + to;
}

void Arena::release(size_t offset) {
  auto it = live_.find(offset);
  if (it == live_.end()) return;
  persistent_bytes_ -= it->second;
  live_.erase(it);
}

size_t Arena::persistent_end() const {
  return live_.empty() ? 0 : live_.rbegin()->first + live_.rbegin()->second;
}

}  // namespace lethe
