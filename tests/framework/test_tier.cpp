// The CPU's second tier (framework/tier.h): a file in a directory, read and written by I/O
// threads; its copies, its errors at creation and at wait(), and its bandwidth probe.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "framework/error.h"
#include "framework/tier.h"

using namespace lethe;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the temporary directory, removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "lethe-tier-test-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, ec);
    fs::remove_all(path, ec);
  }
  size_t entries() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(path), {}));
  }
};

std::vector<unsigned char> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(g());
  return v;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_SUITE("tier") {
  TEST_CASE("tier: random bytes come back at several offsets and sizes; no file is left behind") {
    TempDir dir;
    const size_t cap = (size_t(1) << 20) + 123;
    auto tier = make_tier(Device::cpu(), cap, dir.path);
    CHECK(tier->capacity() == cap);
    CHECK(tier->device() == Device::cpu());
    CHECK(has(tier->describe(), dir.path));
    CHECK(dir.entries() == 0);  // the file is unnamed
    struct Range {
      size_t offset, bytes;
    };
    const std::vector<Range> ranges = {{0, 1},        {1, 63},         {64, 4096},
                                       {4095, 70001}, {cap - 1, 1},    {cap - 5000, 5000},
                                       {0, cap},      {12345, 300000}, {777, 0}};
    uint64_t seed = 1;
    for (const Range& r : ranges) {
      CAPTURE(r.offset);
      CAPTURE(r.bytes);
      const auto src = random_bytes(r.bytes, seed);
      std::vector<unsigned char> dst(r.bytes + 1, 0xee);
      // The copy in follows the copy out through the tier's own ordering: no wait in between.
      TierTicket out = tier->copy_out(r.offset, src.data(), r.bytes);
      TierTicket in = tier->copy_in(dst.data(), r.offset, r.bytes, {.after_copy = out});
      CHECK(bool(out) == (r.bytes > 0));
      tier->wait(in);
      tier->wait(out);
      CHECK(std::memcmp(dst.data(), src.data(), r.bytes) == 0);
      CHECK(dst[r.bytes] == 0xee);                  // nothing written past the end
      CHECK(src == random_bytes(r.bytes, seed++));  // the source is untouched
    }
    CHECK(tier->pending() == 0);
    const TierStats s = tier->stats();
    CHECK(s.copies_out == ranges.size() - 1);
    CHECK(s.copies_in == ranges.size() - 1);
    CHECK(s.peak_offset == cap);
    CHECK(s.failed_copies == 0);
    tier.reset();
    CHECK(dir.entries() == 0);
  }

  TEST_CASE("tier: copies out and in run concurrently on disjoint ranges, from two threads") {
    for (int threads : {1, 2, 4}) {
      CAPTURE(threads);
      TempDir dir;
      constexpr size_t kChunk = 64 << 10;
      constexpr int kChunks = 32;
      auto tier = make_tier(Device::cpu(), kChunk * kChunks * 2, dir.path, threads);
      // The low half is written first; then one thread writes the high half while another reads
      // the low half back, chunk by chunk, every copy in flight at once.
      std::vector<std::vector<unsigned char>> low, high;
      for (int i = 0; i < kChunks; ++i) {
        low.push_back(random_bytes(kChunk, 100 + i));
        high.push_back(random_bytes(kChunk, 200 + i));
      }
      for (int i = 0; i < kChunks; ++i) tier->copy_out(i * kChunk, low[i].data(), kChunk);
      tier->synchronize();
      std::vector<std::vector<unsigned char>> back(kChunks, std::vector<unsigned char>(kChunk));
      std::thread writer([&] {
        std::vector<TierTicket> t;
        t.reserve(kChunks);
        for (int i = 0; i < kChunks; ++i)
          t.push_back(tier->copy_out((kChunks + i) * kChunk, high[i].data(), kChunk));
        for (TierTicket x : t) tier->wait(x);
      });
      std::thread reader([&] {
        std::vector<TierTicket> t;
        t.reserve(kChunks);
        for (int i = 0; i < kChunks; ++i)
          t.push_back(tier->copy_in(back[i].data(), i * kChunk, kChunk));
        for (TierTicket x : t) tier->stream_wait(x, nullptr);  // the CPU: a wait on this thread
      });
      writer.join();
      reader.join();
      for (int i = 0; i < kChunks; ++i) CHECK(back[i] == low[i]);
      // The high half, read back after the fact.
      for (int i = 0; i < kChunks; ++i) {
        std::vector<unsigned char> v(kChunk);
        tier->wait(tier->copy_in(v.data(), (kChunks + i) * kChunk, kChunk));
        CHECK(v == high[i]);
      }
      const TierStats s = tier->stats();
      CHECK(s.bytes_out == 2 * kChunks * kChunk);
      CHECK(s.bytes_in == 2 * kChunks * kChunk);
      CHECK(s.seconds_out > 0);
      CHECK(s.seconds_in > 0);
      CHECK(s.peak_offset == tier->capacity());
      tier->reset_stats();
      CHECK(tier->stats().bytes_out == 0);
    }
  }

  TEST_CASE("tier: ranges outside the tier and null pointers are refused before anything runs") {
    TempDir dir;
    auto tier = make_tier(Device::cpu(), 4096, dir.path);
    std::vector<char> buf(8192);
    std::string e = error_of([&] { tier->copy_out(4000, buf.data(), 97); });
    CHECK(has(e, "copy out of 97 bytes at offset 4000 runs past the end"));
    CHECK(has(e, "(4096 bytes)"));
    e = error_of([&] { tier->copy_in(buf.data(), 4097, 0); });
    CHECK(has(e, "copy in of 0 bytes at offset 4097 runs past the end"));
    e = error_of([&] { tier->copy_in(buf.data(), 8, SIZE_MAX); });  // no wrap-around
    CHECK(has(e, "runs past the end"));
    e = error_of([&] { tier->copy_out(SIZE_MAX, buf.data(), 2); });
    CHECK(has(e, "runs past the end"));
    e = error_of([&] { tier->copy_out(0, nullptr, 16); });
    CHECK(has(e, "the device pointer is null"));
    int event = 0;
    e = error_of([&] { tier->copy_out(0, buf.data(), 16, {.after_event = &event}); });
    CHECK(has(e, "after_event must be null on the CPU"));
    CHECK(tier->pending() == 0);
    CHECK(tier->stats().copies_out == 0);
    // Tickets: an empty copy is done; a ticket waited for twice is fine; a made-up one is not.
    CHECK(!tier->copy_out(4096, buf.data(), 0));
    TierTicket t = tier->copy_out(0, buf.data(), 4096);
    tier->wait(t);
    tier->wait(t);
    CHECK(tier->ready(t));
    e = error_of([&] { tier->wait(TierTicket{999}); });
    CHECK(has(e, "ticket 999 was not issued by this file tier"));
    e = error_of([&] { tier->copy_in(buf.data(), 0, 8, {.after_copy = TierTicket{999}}); });
    CHECK(has(e, "ticket 999 was not issued"));
  }

  TEST_CASE("tier: a missing directory, a file and an unwritable directory are named at creation") {
    TempDir dir;
    const std::string missing = dir.path + "/no/such/dir";
    std::string e = error_of([&] { make_tier(Device::cpu(), 4096, missing); });
    CHECK(has(e, "'" + missing + "' does not exist"));
    CHECK(has(e, "No such file or directory"));

    const std::string file = dir.path + "/a-file";
    std::ofstream(file) << "x";
    e = error_of([&] { make_tier(Device::cpu(), 4096, file); });
    CHECK(has(e, "'" + file + "' is not a directory"));

    e = error_of([&] { make_tier(Device::cpu(), 4096, ""); });
    CHECK(has(e, "the offload directory is empty"));

    const std::string locked = dir.path + "/locked";
    REQUIRE(fs::create_directory(locked));
    fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
    if (::geteuid() == 0) {
      MESSAGE(
          "running as root, whom permissions do not stop: the unwritable-directory check is "
          "skipped");
    } else {
      e = error_of([&] { make_tier(Device::cpu(), 4096, locked); });
      CHECK(has(e, "'" + locked + "' is not writable"));
      CHECK(has(e, "Permission denied"));
    }
    fs::permissions(locked, fs::perms::owner_all);
  }

  TEST_CASE("tier: zero bytes, and more bytes than the disk has free, are refused at creation") {
    TempDir dir;
    CHECK(has(error_of([&] { make_tier(Device::cpu(), 0, dir.path); }),
              "must be positive, got 0 bytes"));
    struct statvfs v {};
    REQUIRE(::statvfs(dir.path.c_str(), &v) == 0);
    const size_t free = static_cast<size_t>(v.f_bavail) * v.f_frsize;
    const size_t asked = free + (size_t(1) << 40);
    const std::string e = error_of([&] { make_tier(Device::cpu(), asked, dir.path); });
    CHECK(has(e, "needs " + std::to_string(asked) + " bytes"));
    CHECK(has(e, "'" + dir.path + "'"));
    CHECK(has(e, "bytes ("));  // the free bytes, in bytes and in units
    CHECK(has(e, " free"));
    CHECK(dir.entries() == 0);
  }

  TEST_CASE("tier: ENOSPC mid-write comes out of wait() naming the cause; the tier stays usable") {
    TempDir dir;
    auto tier = make_tier(Device::cpu(), 1 << 20, dir.path);
    const auto a = random_bytes(100000, 7), b = random_bytes(100000, 8), c = random_bytes(5000, 9);
    testing::fail_tier_write(*tier, 2);  // the second copy out from now
    TierTicket ta = tier->copy_out(0, a.data(), a.size());
    TierTicket tb = tier->copy_out(200000, b.data(), b.size());
    std::vector<unsigned char> back(b.size());
    // A copy in that follows the failed copy out is not run, and says why.
    TierTicket tback = tier->copy_in(back.data(), 200000, b.size(), {.after_copy = tb});
    tier->wait(ta);
    const std::string e = error_of([&] { tier->wait(tb); });
    CHECK(has(e, "copy out of 100000 bytes to offset 200000"));
    CHECK(has(e, "failed after 50000 bytes"));
    CHECK(has(e, "No space left on device"));
    CHECK(has(e, "injected"));
    CHECK(b == random_bytes(100000, 8));  // the source is untouched
    const std::string e2 = error_of([&] { tier->wait(tback); });
    CHECK(has(e2, "was not run: it had to follow a copy that failed"));
    CHECK(has(e2, "No space left on device"));
    CHECK(tier->stats().failed_copies == 2);
    // Still usable: the same range written again, and read back.
    tier->wait(tier->copy_out(200000, b.data(), b.size()));
    tier->wait(tier->copy_in(back.data(), 200000, b.size()));
    CHECK(back == b);
    std::vector<unsigned char> a_back(a.size());
    tier->wait(tier->copy_in(a_back.data(), 0, a.size()));
    CHECK(a_back == a);
    // A failure never waited for comes out of synchronize(), with the count of the others.
    testing::fail_tier_write(*tier, 1);
    tier->copy_out(300000, c.data(), c.size());
    tier->copy_out(400000, c.data(), c.size());
    CHECK(has(error_of([&] { tier->synchronize(); }), "to offset 300000"));
    CHECK(tier->pending() == 0);
    testing::fail_tier_write(*tier, 0);  // off
    tier->copy_out(300000, c.data(), c.size());
    tier->synchronize();
  }

  TEST_CASE("tier: a real write error after a short write is named with the system's words") {
    // RLIMIT_FSIZE makes the kernel cut a write at the limit (a short write) and refuse the rest
    // with EFBIG: the full-length loop and the error path, without injection.
    TempDir dir;
    auto tier = make_tier(Device::cpu(), 1 << 20, dir.path);
    const auto data = random_bytes(200000, 21);
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    rlimit lim = old;
    lim.rlim_cur = 65536;
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
    TierTicket t = tier->copy_out(0, data.data(), data.size());
    const std::string e = error_of([&] { tier->wait(t); });
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    CHECK(has(e, "copy out of 200000 bytes to offset 0"));
    CHECK(has(e, "failed after 65536 bytes"));
    CHECK(has(e, "File too large"));
    CHECK(has(e, dir.path));
    tier->wait(tier->copy_out(0, data.data(), data.size()));
    std::vector<unsigned char> back(data.size());
    tier->wait(tier->copy_in(back.data(), 0, back.size()));
    CHECK(back == data);
  }

  TEST_CASE(
      "tier: LETHE_TIER_FAIL_WRITE=k fails the k-th copy out of a tier made after it is set") {
    TempDir dir;
    REQUIRE(::setenv("LETHE_TIER_FAIL_WRITE", "1", 1) == 0);
    auto tier = make_tier(Device::cpu(), 4096, dir.path);
    ::unsetenv("LETHE_TIER_FAIL_WRITE");
    std::vector<char> v(1000, 'x');
    CHECK(has(error_of([&] { tier->wait(tier->copy_out(0, v.data(), v.size())); }),
              "No space left on device"));
    tier->wait(tier->copy_out(0, v.data(), v.size()));
  }

  TEST_CASE("tier: the bandwidth probe gives positive finite figures, cached, the tier untouched") {
    TempDir dir;
    auto tier = make_tier(Device::cpu(), 8 << 20, dir.path);
    const auto data = random_bytes(1 << 20, 11);
    tier->wait(tier->copy_out(0, data.data(), data.size()));
    const TierStats before = tier->stats();
    const TierBandwidth b = tier->measure();
    CHECK(std::isfinite(b.out_bytes_per_s));
    CHECK(std::isfinite(b.in_bytes_per_s));
    CHECK(b.out_bytes_per_s > 0);
    CHECK(b.in_bytes_per_s > 0);
    CHECK(b.probe_bytes == size_t(4) << 20);
    MESSAGE("file tier in " << dir.path << ": out " << b.out_bytes_per_s / 1e9 << " GB/s, in "
                            << b.in_bytes_per_s / 1e9 << " GB/s");
    std::vector<unsigned char> back(data.size());
    tier->wait(tier->copy_in(back.data(), 0, back.size()));
    CHECK(back == data);  // the probe put the tier's bytes back
    CHECK(tier->stats().bytes_out == before.bytes_out);
    // Cached per process: another tier on the same file system gets the same figures.
    TempDir dir2;
    auto other = make_tier(Device::cpu(), 8 << 20, dir2.path);
    std::vector<char> scratch(4 << 20);
    const TierBandwidth again = other->measure(scratch.data(), scratch.size());
    CHECK(again.out_bytes_per_s == b.out_bytes_per_s);
    CHECK(again.in_bytes_per_s == b.in_bytes_per_s);
    CHECK(has(error_of([&] { other->measure(scratch.data(), 100); }), "smaller than the probe"));
  }
}
