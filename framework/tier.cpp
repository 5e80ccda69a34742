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
