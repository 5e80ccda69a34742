// The CPU's second tier (framework/tier.h): one unnamed file in a directory, its space reserved up
// front, read and written with pread/pwrite by I/O threads. Each direction has its own FIFO queue
// and threads; a copy that waits for another (CopyOrder::after_copy) only ever waits for an earlier
// ticket, which is running or done, so the threads cannot deadlock.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "framework/error.h"
#include "framework/tier.h"
#include "scheduler/budget.h"

namespace lethe {
namespace {

using Clock = std::chrono::steady_clock;
using lethe::detail::concat;

// Linux moves at most 0x7ffff000 bytes per read/write call; stay well below.
constexpr size_t kMaxIo = size_t(1) << 30;

std::string errno_text(int e) {
  return concat(std::strerror(e), " (errno ", e, ")");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string bytes_text(size_t n) {
  return concat(n, " bytes (", sched::format_bytes(static_cast<int64_t>(n)), ")");
}

// The directory checks of the file tier, each naming the path and the system's reason.
void check_directory(const std::string& dir) {
  LETHE_CHECK(!dir.empty(), "tier: the offload directory is empty; give a directory for the file ",
              "of the second tier");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    const int e = errno;
    LETHE_CHECK(e != ENOENT, "tier: the offload directory '", dir,
                "' does not exist: ", errno_text(e));
    throw Error(concat("tier: cannot use the offload directory '", dir, "': ", errno_text(e)));
  }
  LETHE_CHECK(S_ISDIR(st.st_mode), "tier: the offload path '", dir,
              "' is not a directory; give a directory for the file of the second tier");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    const int e = errno;
    throw Error(concat("tier: the offload directory '", dir, "' is not writable: ", errno_text(e)));
  }
}

[[noreturn]] void no_space(const std::string& dir, size_t asked, size_t free, const char* how) {
  throw Error(concat("tier: the tier file needs ", bytes_text(asked), " in '", dir,
                     "', but its file system has ", bytes_text(free), " free", how));
}

size_t free_bytes(const std::string& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) {
    const int e = errno;
    throw Error(concat("tier: cannot read the free space of '", dir, "': ", errno_text(e)));
  }
  return static_cast<size_t>(v.f_bavail) * static_cast<size_t>(v.f_frsize);
}

// An unnamed file in `dir`: O_TMPFILE, or where the file system lacks it a name unlinked at once.
int open_unnamed(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  int e = errno;
  if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL) {
    std::string name = dir + "/lethe-tier-XXXXXX";
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd >= 0) {
      ::unlink(name.c_str());
      return fd;
    }
    e = errno;
  }
  throw Error(concat("tier: cannot create the tier file in '", dir, "': ", errno_text(e)));
}

struct Job {
  uint64_t id = 0;
  OffloadTier::Direction dir = OffloadTier::Direction::out;
  size_t offset = 0;
  char* ptr = nullptr;
  size_t bytes = 0;
  std::shared_ptr<Job> after;  // CopyOrder::after_copy, while it was pending
  bool inject = false;         // testing::fail_tier_write chose this copy
  bool done = false;
  std::string error;  // empty: succeeded
};

class FileTier final : public OffloadTier {
 public:
  FileTier(size_t bytes, std::string dir, int io_threads)
      : OffloadTier(bytes, Device::cpu()), dir_(std::move(dir)) {
    LETHE_CHECK(bytes > 0, "tier: the capacity of the second tier must be positive, got 0 bytes");
    LETHE_CHECK(io_threads >= 1, "tier: at least one I/O thread, got ", io_threads);
    LETHE_CHECK(bytes <= static_cast<size_t>(INT64_MAX), "tier: ", bytes,
                " bytes is beyond any file size");
    check_directory(dir_);
    const size_t free = free_bytes(dir_);
    if (bytes > free) no_space(dir_, bytes, free, "");
    fd_ = open_unnamed(dir_);
    // fallocate, not posix_fallocate: where the file system cannot reserve, glibc's emulation would
    // write every block of the file; a sparse file is the better fallback.
    if (::fallocate(fd_, 0, 0, static_cast<off_t>(bytes)) != 0) {
      const int e = errno;
      if (e == EOPNOTSUPP || e == ENOSYS || e == EINVAL) {
        reserved_ = false;
        if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) {
          const int e2 = errno;
          ::close(fd_);
          throw Error(concat("tier: cannot size the tier file in '", dir_, "' to ",
                             bytes_text(bytes), ": ", errno_text(e2)));
        }
      } else {
        ::close(fd_);
        if (e == ENOSPC) no_space(dir_, bytes, free_bytes(dir_), " (fallocate: No space left)");
        throw Error(concat("tier: cannot reserve ", bytes_text(bytes), " for the tier file in '",
                           dir_, "': ", errno_text(e)));
      }
    }
    if (const char* k = std::getenv("LETHE_TIER_FAIL_WRITE"); k && *k)
      fail_at_ = std::strtoull(k, nullptr, 10);
    const int writers = io_threads == 1 ? 1 : (io_threads + 1) / 2;
    shared_queue_ = io_threads == 1;
    for (int i = 0; i < io_threads; ++i) {
      const int q = shared_queue_ ? 0 : (i < writers ? 0 : 1);
      threads_.emplace_back([this, q] { work(q); });
    }
  }

  ~FileTier() override {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    for (auto& cv : work_cv_) cv.notify_all();
    for (auto& t : threads_) t.join();  // the threads finish what is queued first
    ::close(fd_);
  }

  std::string describe() const override {
    return concat("file tier of ", sched::format_bytes(static_cast<int64_t>(capacity())), " in '",
                  dir_, "'", reserved_ ? "" : " (sparse: the file system could not reserve it)");
  }

  void wait(TierTicket t) override {
    if (!t) return;
    std::unique_lock<std::mutex> lock(m_);
    auto it = pending_.find(t.id);
    if (it == pending_.end()) {
      LETHE_CHECK(t.id < next_id_, "tier: wait: ticket ", t.id, " was not issued by this ",
                  describe());
      return;  // already waited for, or reaped by synchronize()
    }
    std::shared_ptr<Job> j = it->second;
    done_cv_.wait(lock, [&] { return j->done; });
    pending_.erase(t.id);
    if (!j->error.empty()) throw Error(j->error);
  }

  void stream_wait(TierTicket t, void*) override { wait(t); }

  bool ready(TierTicket t) override {
    std::lock_guard<std::mutex> lock(m_);
    auto it = pending_.find(t.id);
    return it == pending_.end() || it->second->done;
  }

  void synchronize() override {
    std::unique_lock<std::mutex> lock(m_);
    done_cv_.wait(lock, [&] {
      return std::all_of(pending_.begin(), pending_.end(),
                         [](const auto& kv) { return kv.second->done; });
    });
    std::shared_ptr<Job> first;
    size_t failed = 0;
    for (auto& [id, j] : pending_) {
      if (j->error.empty()) continue;
      ++failed;
      if (!first || j->id < first->id) first = j;
    }
    pending_.clear();
    if (first)
      throw Error(failed == 1 ? first->error
                              : concat(first->error, " (and ", failed - 1, " more copies failed)"));
  }

  size_t pending() const override {
    std::lock_guard<std::mutex> lock(m_);
    return pending_.size();
  }

  TierStats stats() const override {
    std::lock_guard<std::mutex> lock(m_);
    TierStats s = stats_;
    // Include the running stretch of a direction that is busy now.
    const auto now = Clock::now();
    if (active_[0] > 0)
      s.seconds_out += std::chrono::duration<double>(now - busy_since_[0]).count();
    if (active_[1] > 0) s.seconds_in += std::chrono::duration<double>(now - busy_since_[1]).count();
    return s;
  }
  void reset_stats() override {
    std::lock_guard<std::mutex> lock(m_);
    stats_ = {};
    const auto now = Clock::now();
    busy_since_[0] = busy_since_[1] = now;
  }

  void fail_write(uint64_t k, int error) {
    std::lock_guard<std::mutex> lock(m_);
    fail_at_ = k == 0 ? 0 : writes_ + k;
    fail_errno_ = error;
  }

 protected:
  TierTicket start_copy(Direction dir, size_t offset, void* ptr, size_t bytes,
                        const CopyOrder& order) override {
    auto j = std::make_shared<Job>();
    j->dir = dir;
    j->offset = offset;
    j->ptr = static_cast<char*>(ptr);
    j->bytes = bytes;
    {
      std::lock_guard<std::mutex> lock(m_);
      if (order.after_copy) {
        LETHE_CHECK(order.after_copy.id < next_id_, "tier: CopyOrder::after_copy: ticket ",
                    order.after_copy.id, " was not issued by this ", describe());
        auto it = pending_.find(order.after_copy.id);
        if (it != pending_.end()) j->after = it->second;
      }
      j->id = next_id_++;
      if (dir == Direction::out) {
        stats_.peak_offset = std::max(stats_.peak_offset, offset + bytes);
        j->inject = ++writes_ == fail_at_;
      }
      pending_.emplace(j->id, j);
      queue_[queue_of(dir)].push_back(j);
    }
    work_cv_[queue_of(dir)].notify_one();
    return {j->id};
  }

  TierBandwidth probe(void* scratch, size_t n) override {
    std::unique_ptr<char, decltype(&std::free)> own(nullptr, &std::free);
    if (!scratch) {
      own.reset(static_cast<char*>(std::aligned_alloc(64, (n + 63) / 64 * 64)));
      LETHE_CHECK(own != nullptr, "tier: measure: cannot allocate ", bytes_text(n));
      scratch = own.get();
      std::memset(scratch, 0x5a, n);
    }
    // The tier's bytes and stats come back as they were.
    std::vector<char> saved(n);
    if (std::string e = io(Direction::in, saved.data(), 0, n, false); !e.empty()) throw Error(e);
    const TierStats before = stats();
    auto timed = [&](Direction d) {
      const auto t0 = Clock::now();
      wait(d == Direction::out ? copy_out(0, scratch, n) : copy_in(scratch, 0, n));
      return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    timed(Direction::out);  // warm-up: page cache, threads
    timed(Direction::in);
    // The median of five: a machine shared with other work gives a few outliers either way.
    std::vector<double> out, in;
    for (int r = 0; r < 5; ++r) {
      out.push_back(timed(Direction::out));
      in.push_back(timed(Direction::in));
    }
    if (std::string e = io(Direction::out, saved.data(), 0, n, false); !e.empty()) throw Error(e);
    {
      std::lock_guard<std::mutex> lock(m_);
      stats_ = before;
    }
    TierBandwidth b;
    b.out_bytes_per_s = static_cast<double>(n) / std::max(median(out), 1e-9);
    b.in_bytes_per_s = static_cast<double>(n) / std::max(median(in), 1e-9);
    return b;
  }

  std::string probe_key() const override {
    struct stat st {};
    (void)::fstat(fd_, &st);
    return concat("file:", static_cast<unsigned long long>(st.st_dev));
  }

 private:
  int queue_of(Direction d) const { return shared_queue_ ? 0 : (d == Direction::out ? 0 : 1); }
  static int slot(Direction d) { return d == Direction::out ? 0 : 1; }

  // Moves `bytes` between `p` and the file at `offset`, looping over short transfers and EINTR.
  // Returns the error text, empty on success.
  std::string io(Direction dir, char* p, size_t offset, size_t bytes, bool inject) {
    const bool out = dir == Direction::out;
    const size_t limit = inject ? bytes / 2 : bytes;
    size_t done = 0;
    auto failure = [&](const std::string& why) {
      return concat("tier: copy ", out ? "out" : "in", " of ", bytes, " bytes ",
                    out ? "to" : "from", " offset ", offset, " of the ", describe(),
                    " failed after ", done, " bytes: ", why);
    };
    while (done < limit) {
      const size_t chunk = std::min(limit - done, kMaxIo);
      const off_t at = static_cast<off_t>(offset + done);
      const ssize_t r =
          out ? ::pwrite(fd_, p + done, chunk, at) : ::pread(fd_, p + done, chunk, at);
      if (r < 0) {
        const int e = errno;
        if (e == EINTR) continue;
        return failure(errno_text(e));
      }
      if (r == 0)
        return failure(out ? "the file system wrote nothing" : "unexpected end of the tier file");
      done += static_cast<size_t>(r);
    }
    if (inject) return failure(errno_text(fail_errno_) + " [injected by testing::fail_tier_write]");
    return {};
  }

  void work(int q) {
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      work_cv_[q].wait(lock, [&] { return stop_ || !queue_[q].empty(); });
      if (queue_[q].empty()) return;  // stopping, nothing left
      std::shared_ptr<Job> j = std::move(queue_[q].front());
      queue_[q].pop_front();
      if (j->after) done_cv_.wait(lock, [&] { return j->after->done; });
      const int s = slot(j->dir);
      if (active_[s]++ == 0) busy_since_[s] = Clock::now();
      std::string error;
      if (j->after && !j->after->error.empty()) {
        error =
            concat("tier: copy ", j->dir == Direction::out ? "out" : "in", " of ", j->bytes,
                   " bytes at offset ", j->offset, " was not run: it had to follow a copy that ",
                   "failed (", j->after->error, ")");
      } else {
        lock.unlock();
        error = io(j->dir, j->ptr, j->offset, j->bytes, j->inject);
        lock.lock();
      }
      if (--active_[s] == 0) {
        const double busy = std::chrono::duration<double>(Clock::now() - busy_since_[s]).count();
        (s == 0 ? stats_.seconds_out : stats_.seconds_in) += busy;
      }
      if (error.empty()) {
        (s == 0 ? stats_.bytes_out : stats_.bytes_in) += j->bytes;
        ++(s == 0 ? stats_.copies_out : stats_.copies_in);
      } else {
        ++stats_.failed_copies;
      }
      j->error = std::move(error);
      j->done = true;
      j->after.reset();  // no chains of finished jobs kept alive
      done_cv_.notify_all();
    }
  }

  std::string dir_;
  int fd_ = -1;
  bool reserved_ = true;  // false: a sparse file (the file system cannot reserve)
  bool shared_queue_ = false;

  mutable std::mutex m_;
  std::condition_variable work_cv_[2], done_cv_;
  std::deque<std::shared_ptr<Job>> queue_[2];
  std::unordered_map<uint64_t, std::shared_ptr<Job>> pending_;
  uint64_t next_id_ = 1;
  bool stop_ = false;
  std::vector<std::thread> threads_;

  TierStats stats_;
  int active_[2] = {0, 0};
  Clock::time_point busy_since_[2];
  uint64_t writes_ = 0, fail_at_ = 0;
  int fail_errno_ = ENOSPC;
};

}  // namespace

std::unique_ptr<OffloadTier> make_file_tier(size_t bytes, const std::string& directory,
                                            int io_threads) {
  return std::make_unique<FileTier>(bytes, directory, io_threads);
}

namespace testing {
void fail_tier_write(OffloadTier& tier, uint64_t k, int error) {
  auto* f = dynamic_cast<FileTier*>(&tier);
  LETHE_CHECK(f != nullptr, "testing::fail_tier_write: only file tiers inject faults, not a ",
              tier.describe());
  f->fail_write(k, error);
}
}  // namespace testing

}  // namespace lethe
