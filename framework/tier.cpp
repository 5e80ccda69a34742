// The tier's checks shared by every kind, the per-process bandwidth cache and the factory. The
// kinds: framework/file_tier.cpp (CPU), framework/cuda/pinned_tier.cpp (CUDA).
#include "framework/tier.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include "framework/error.h"

#include "framework/backend.h"

namespace lethe {
namespace {

constexpr size_t kProbeBytes = size_t(4) << 20;

void check_range(const OffloadTier& t, const char* what, size_t tier_offset, const void* ptr,
                 size_t bytes) {
  LETHE_CHECK(tier_offset <= t.capacity() && bytes <= t.capacity() - tier_offset, "tier: ", what,
              " of ", bytes, " bytes at offset ", tier_offset, " runs past the end of the ",
              t.describe(), " (", t.capacity(), " bytes)");
  LETHE_CHECK(ptr != nullptr || bytes == 0, "tier: ", what, " of ", bytes, " bytes at offset ",
              tier_offset, ": the device pointer is null");
}

}  // namespace

TierTicket OffloadTier::copy_out(size_t tier_offset, const void* device_src, size_t bytes,
                                 const CopyOrder& order) {
  check_range(*this, "copy out", tier_offset, device_src, bytes);
  LETHE_CHECK(device_.is_cuda() || order.after_event == nullptr,
              "tier: copy out: CopyOrder::after_event must be null on the CPU");
  if (bytes == 0) return {};
  return start_copy(Direction::out, tier_offset, const_cast<void*>(device_src), bytes, order);
}

TierTicket OffloadTier::copy_in(void* device_dst, size_t tier_offset, size_t bytes,
                                const CopyOrder& order) {
  check_range(*this, "copy in", tier_offset, device_dst, bytes);
  LETHE_CHECK(device_.is_cuda() || order.after_event == nullptr,
              "tier: copy in: CopyOrder::after_event must be null on the CPU");
  if (bytes == 0) return {};
  return start_copy(Direction::in, tier_offset, device_dst, bytes, order);
}

void OffloadTier::read_host(void* dst, size_t tier_offset, size_t bytes) {
  wait(copy_in(dst, tier_offset, bytes));
}

void OffloadTier::write_host(size_t tier_offset, const void* src, size_t bytes) {
  wait(copy_out(tier_offset, src, bytes));
}

void move_home(Storage& s, std::shared_ptr<OffloadTier> tier, size_t first, size_t second) {
  LETHE_ASSERT(!s.home && s.data != nullptr && tier != nullptr);
  try {
    tier->wait(tier->copy_out(first, s.data, s.bytes, {.after_stream = s.context.get()}));
  } catch (Error& e) {
    e.add_context(detail::concat("moving a value of ", s.bytes, " bytes to its home in the ",
                                 tier->describe(), ": "));
    throw;
  }
  auto h = std::make_shared<TierHome>();
  h->tier = std::move(tier);
  h->place[0] = first;
  h->place[1] = second;
  if (s.release) s.release(s.data);
  s.release = nullptr;
  s.data = nullptr;
  s.home = std::move(h);
}

void read_home(const Storage& s, void* dst, void* stream_context) {
  const TierHome& h = *s.home;
  const TierTicket t =
      h.tier->copy_in(dst, h.read_place(), s.bytes, {.after_stream = stream_context});
  h.tier->stream_wait(t, stream_context);
}

void write_home(Storage& s, const void* src, void* stream_context) {
  TierHome& h = *s.home;
  h.tier->wait(
      h.tier->copy_out(h.place[1 - h.current], src, s.bytes, {.after_stream = stream_context}));
  h.written = true;
}

void settle_home(Storage& s, bool ok) {
  TierHome& h = *s.home;
  if (h.written && ok) h.current = 1 - h.current;
  h.written = false;
}

void read_home_host(const Storage& s, void* dst, size_t bytes, size_t offset) {
  const TierHome& h = *s.home;
  h.tier->read_host(dst, h.read_place() + offset, bytes);
}

void write_home_host(Storage& s, const void* src, size_t bytes, size_t offset) {
  const TierHome& h = *s.home;
  h.tier->write_host(h.place[h.current] + offset, src, bytes);
}

TierBandwidth OffloadTier::measure(void* device_scratch, size_t scratch_bytes) {
  const size_t n = std::min(capacity_, kProbeBytes);
  LETHE_CHECK(device_scratch == nullptr || scratch_bytes >= n, "tier: measure: the scratch of ",
              scratch_bytes, " bytes is smaller than the probe (", n, " bytes)");
  LETHE_CHECK(pending() == 0, "tier: measure() with ", pending(),
              " copies in flight; call it before any copy or after synchronize()");
  static std::mutex m;
  static std::map<std::string, TierBandwidth> cache;
  const std::string key = probe_key() + ":" + std::to_string(n);
  std::lock_guard<std::mutex> lock(m);  // one probe at a time: two would measure each other
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  TierBandwidth b = probe(device_scratch, n);
  b.probe_bytes = n;
  cache.emplace(key, b);
  return b;
}

std::unique_ptr<OffloadTier> make_tier(const Device& device, size_t bytes, const std::string& path,
                                       int io_threads) {
  return backend(device.kind).make_tier(device.index, bytes, path, io_threads);
}

}  // namespace lethe
