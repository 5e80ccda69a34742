// The CUDA second tier (framework/tier.h, framework/cuda/pinned_tier.cpp): pinned host memory and
// two copy streams, ordered after a session stream's work and before it by events. Skips without a
// device (fails under LETHE_REQUIRE_CUDA=1); without one, make_tier says why.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "framework/arena.h"
#include "framework/cuda/backend.h"
#include "framework/tier.h"
#include "tests/cuda/cuda_checks.h"

using namespace lethe;

namespace {
std::vector<unsigned char> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(g());
  return v;
}
}  // namespace

TEST_SUITE("tier") {
  TEST_CASE("tier: without a CUDA device, a CUDA tier is refused saying why") {
    if (cuda::is_available()) return;
    std::string msg;
    try {
      make_tier(Device::cuda(0), 1 << 20, "");
    } catch (const Error& e) {
      msg = e.what();
    }
    MESSAGE("no CUDA device: " << msg);
    CHECK(!msg.empty());
    CHECK(msg.find(cuda::unavailable_reason()) != std::string::npos);
  }

  TEST_CASE("tier: pinned tier round trip after and before a session stream's work") {
    LETHE_SKIP_WITHOUT_CUDA();
    cuda::init();
    std::shared_ptr<void> ctx = cuda::detail::create_context(0);
    const size_t cap = (size_t(8) << 20) + 64;
    auto arena = Arena::create(size_t(32) << 20, Device::cuda(0), ctx);
    REQUIRE(arena != nullptr);
    auto tier = make_tier(Device::cuda(0), cap, "");
    CHECK(tier->capacity() == cap);
    CHECK(tier->describe().find("pinned host tier") != std::string::npos);
    struct Range {
      size_t offset, bytes;
    };
    uint64_t seed = 1;
    for (const Range& r : std::vector<Range>{
             {0, 64}, {64, 1 << 20}, {cap - 4096, 4096}, {12345, 3000000}, {0, cap}}) {
      CAPTURE(r.offset);
      CAPTURE(r.bytes);
      const auto src = random_bytes(r.bytes, seed++);
      auto a = arena->allocate_persistent(r.bytes);
      auto b = arena->allocate_persistent(r.bytes);
      REQUIRE(a);
      REQUIRE(b);
      copy_from_host(*a, src.data(), r.bytes);  // queued on the session's stream
      // Out after the stream's work (the upload), in after the copy out, the stream after the in.
      TierTicket out = tier->copy_out(r.offset, a->data, r.bytes, {.after_stream = ctx.get()});
      TierTicket in = tier->copy_in(b->data, r.offset, r.bytes, {.after_copy = out});
      tier->stream_wait(in, ctx.get());
      std::vector<unsigned char> back(r.bytes);
      copy_to_host(*b, back.data(), r.bytes);  // in the session's stream order: after the copy in
      CHECK(back == src);
      tier->synchronize();
      CHECK(tier->pending() == 0);
    }
    const TierStats s = tier->stats();
    CHECK(s.copies_out == 5);
    CHECK(s.copies_in == 5);
    CHECK(s.peak_offset == cap);
    CHECK(s.seconds_out > 0);
    CHECK(s.seconds_in > 0);
    // Ranges are checked before anything is issued.
    auto a = arena->allocate_persistent(4096);
    CHECK_THROWS_WITH_AS(tier->copy_out(cap - 10, a->data, 4096),
                         doctest::Contains("runs past the end"), Error);
    CHECK_THROWS_WITH_AS(tier->wait(TierTicket{1u << 30}), doctest::Contains("was not issued"),
                         Error);
  }

  TEST_CASE("tier: the pinned tier's probe gives positive finite figures") {
    LETHE_SKIP_WITHOUT_CUDA();
    auto tier = make_tier(Device::cuda(0), size_t(16) << 20, "");
    const TierBandwidth b = tier->measure();
    CHECK(std::isfinite(b.out_bytes_per_s));
    CHECK(std::isfinite(b.in_bytes_per_s));
    CHECK(b.out_bytes_per_s > 0);
    CHECK(b.in_bytes_per_s > 0);
    MESSAGE("pinned tier: out " << b.out_bytes_per_s / 1e9 << " GB/s, in " << b.in_bytes_per_s / 1e9
                                << " GB/s");
    CHECK(tier->stats().copies_out == 0);
  }
}
