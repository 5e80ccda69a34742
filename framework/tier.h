// The second memory tier of a session: where a plan's copy-out steps park values that the device
// budget cannot hold, until copy-in steps bring them back. One allocation made once, of
// `capacity()` bytes, addressed by offsets (the plan places values in it as it places buffers in
// the arena); nothing else is allocated on the tier while a step runs.
//
//   CUDA: one pinned host block (cudaHostAlloc); copies run on a device-to-host and a
//   host-to-device
//         stream of the tier's own, ordered after device work by events.
//   CPU:  the device is the RAM arena and the tier is one file of `capacity()` bytes in a
//         directory (unnamed: nothing stays behind, even after a crash), read and written by I/O
//         threads with pread/pwrite.
//
//   auto tier = lethe::make_tier(Device::cpu(), size_t(1) << 30, "/scratch");
//   TierTicket out = tier->copy_out(0, value_ptr, n);          // returns at once
//   ...                                                         // compute meanwhile
//   TierTicket in = tier->copy_in(other_ptr, 0, n, {.after_copy = out});
//   tier->stream_wait(in, env.backend);                         // compute after the fetch
//   tier->synchronize();                                        // end of step: every copy done
//
// Copies are asynchronous and return a ticket; wait(ticket) blocks until that copy is done and
// rethrows its error as lethe::Error. A copy that failed never changes its source (a failed copy in
// leaves its destination undefined, a failed copy out the tier bytes it was writing). The tier
// stays usable after a failed copy: later copies run normally (a disk that filled up may of course
// fail them too). Every method is thread-safe (CPU streams are threads of the executor).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "framework/device.h"
#include "framework/storage.h"

namespace lethe {

// A copy in flight. Value 0 (the default, and what an empty copy returns) is already done.
struct TierTicket {
  uint64_t id = 0;
  explicit operator bool() const { return id != 0; }
  bool operator==(const TierTicket&) const = default;
};

// What must happen before a copy starts. No host thread blocks for it on CUDA: the tier's copy
// stream waits on events.
struct CopyOrder {
  // A backend context (KernelEnv::backend, DeviceStreams::context(s)): the work issued on its
  // stream so far precedes the copy ("copy out after the compute that produced the value"). CPU:
  // ignored (CPU kernels are done when they return, so the caller's thread has finished them).
  void* after_stream = nullptr;
  // A native event the copy waits for (CUDA: a cudaEvent_t the caller recorded). Must be null on
  // the CPU.
  void* after_event = nullptr;
  // Another copy of this tier that must finish first: a copy in of what a copy out wrote, or a copy
  // out reusing tier bytes that a copy in reads. When that copy failed, this one fails too, naming
  // it (CPU; on CUDA a failed copy leaves the CUDA context failed anyway).
  TierTicket after_copy = {};
};

// Bytes per second each way, as measured by OffloadTier::measure().
struct TierBandwidth {
  double out_bytes_per_s = 0;  // device -> tier
  double in_bytes_per_s = 0;   // tier -> device
  size_t probe_bytes = 0;      // size of each probe copy
};

struct TierStats {
  size_t bytes_out = 0, bytes_in = 0;    // of copies that completed without error
  size_t copies_out = 0, copies_in = 0;  // idem
  size_t failed_copies = 0;
  // Time during which at least one copy of that direction was running (wall clock, not summed
  // over threads). CUDA: from the copy stream's events, counted when the copy is waited for.
  double seconds_out = 0, seconds_in = 0;
  // Highest end offset (tier_offset + bytes) of any copy out issued: the part of the tier used.
  size_t peak_offset = 0;
};

class OffloadTier {
 public:
  enum class Direction : uint8_t { out, in };

  virtual ~OffloadTier() = default;
  OffloadTier(const OffloadTier&) = delete;
  OffloadTier& operator=(const OffloadTier&) = delete;

  size_t capacity() const { return capacity_; }
  // The device whose memory the copies read and write (Device::cpu(): host RAM).
  Device device() const { return device_; }
  // "file tier of 64.00 MiB in '/scratch'", "pinned host tier of 2.00 GiB for cuda:0".
  virtual std::string describe() const = 0;

  // Device [device_src, +bytes) -> tier [tier_offset, +bytes), asynchronously. Throws at once
  // (nothing issued) when the range is outside the tier or a pointer is null; an error of the copy
  // itself comes out of wait()/synchronize(). `device_src` must stay unchanged until the copy is
  // done.
  TierTicket copy_out(size_t tier_offset, const void* device_src, size_t bytes,
                      const CopyOrder& order = {});
  // Tier [tier_offset, +bytes) -> device [device_dst, +bytes), asynchronously; as copy_out.
  TierTicket copy_in(void* device_dst, size_t tier_offset, size_t bytes,
                     const CopyOrder& order = {});

  // Blocks until the copy is done; rethrows its error. A ticket already waited for (or reaped by
  // synchronize()) returns at once; a ticket this tier never issued is an error.
  virtual void wait(TierTicket t) = 0;
  // Makes the stream of `stream_context` (a backend context, as CopyOrder::after_stream) wait for
  // the copy: on CUDA without blocking the host (the ticket stays pending until wait() or
  // synchronize(), which report its error); on the CPU it is wait() on the calling thread.
  virtual void stream_wait(TierTicket t, void* stream_context) = 0;
  // Whether the copy is done (never blocks, never throws the copy's error).
  virtual bool ready(TierTicket t) = 0;
  // Blocks until every copy issued is done, forgets every ticket, and rethrows the first error not
  // yet reported by wait() (saying how many other copies failed).
  virtual void synchronize() = 0;
  // Copies issued and not yet waited for.
  virtual size_t pending() const = 0;

  // Bandwidth each way: copies of min(capacity, 4 MiB) between the tier and `device_scratch`
  // (device memory of at least that size, whose contents are clobbered, e.g. free arena bytes;
  // null: the tier allocates a temporary block and frees it), a warm-up then five timed copies
  // each way (the median is taken), a few milliseconds in all. The tier's own bytes and stats are
  // left as they were.
  // Cached per process by (kind of tier, file system or device, probe size): later calls return
  // at once. Call it with no copy in flight.
  TierBandwidth measure(void* device_scratch = nullptr, size_t scratch_bytes = 0);

  virtual TierStats stats() const = 0;
  virtual void reset_stats() = 0;
  // Host memory <-> tier, synchronously, after every copy issued so far (values whose home is the
  // tier, read and written between steps: Tensor::to_vector, checkpoints). By default a copy in or
  // out and its wait (the CPU tier's device memory is host memory); the pinned tier copies its
  // host block directly.
  virtual void read_host(void* dst, size_t tier_offset, size_t bytes);
  virtual void write_host(size_t tier_offset, const void* src, size_t bytes);

 protected:
  OffloadTier(size_t capacity, Device device) : capacity_(capacity), device_(device) {}
  // The copy, its range already checked.
  virtual TierTicket start_copy(Direction dir, size_t tier_offset, void* device_ptr, size_t bytes,
                                const CopyOrder& order) = 0;
  // One measurement (measure() caches it); `scratch` holds `bytes` bytes of device memory.
  virtual TierBandwidth probe(void* scratch, size_t bytes) = 0;
  // What bandwidth depends on: "file:<st_dev>", "pinned:cuda:0".
  virtual std::string probe_key() const = 0;

 private:
  size_t capacity_;
  Device device_;
};

// Where a long-lived value (a parameter, optimizer state) lives when its home is the second tier
// (SessionOptions::offload_state): its Storage's `data` is null, and a step reads it into the
// arena where its plan says, like any value the plan computes. Two places of `bytes` each: the
// current one, and the one a step's update writes (write_home()); settle_home() makes the written
// one current once every update of the step has succeeded, so a step that fails midway leaves the
// values as they were.
struct TierHome {
  std::shared_ptr<OffloadTier> tier;
  size_t place[2] = {0, 0};
  int current = 0;
  bool written = false;           // this step's update wrote place[1 - current]
  std::function<void()> release;  // called once when the value dies (its places are free again)
  size_t read_place() const { return place[written ? 1 - current : current]; }
  TierHome() = default;
  TierHome(const TierHome&) = delete;
  TierHome& operator=(const TierHome&) = delete;
  ~TierHome() {
    if (release) release();
  }
};

// Moves `s` (a long-lived value in device memory, not yet homed) to a home in `tier` at places
// `first` and `second` (each of s.bytes, aligned): its bytes are written to `first` and its device
// block is released. Throws lethe::Error naming the value's bytes and the tier on a failed copy
// (then `s` is unchanged).
void move_home(Storage& s, std::shared_ptr<OffloadTier> tier, size_t first, size_t second);
// Reads the value (what this step's update wrote, else the current place) into device memory at
// `dst`, after the work issued so far on `stream_context`'s stream, which waits for it (CPU: done
// on return).
void read_home(const Storage& s, void* dst, void* stream_context);
// Writes an updated value from device memory at `src` to the home's other place (current once
// the step settles); returns when it is written.
void write_home(Storage& s, const void* src, void* stream_context);
// The end of a step: ok -> the place this step wrote becomes current; otherwise it is forgotten.
void settle_home(Storage& s, bool ok);
// Storage::home's part of copy_to_host/copy_from_host (framework/storage.h).
void read_home_host(const Storage& s, void* dst, size_t bytes, size_t offset);
void write_home_host(Storage& s, const void* src, size_t bytes, size_t offset);

// The tier of `device`: Device::cpu() -> a file tier of `bytes` in directory `path` with
// `io_threads` I/O threads; Device::cuda(i) -> a pinned host tier of `bytes` (`path` and
// `io_threads` unused). Errors (lethe::Error) at creation: zero bytes; a missing, non-directory or
// unwritable directory, or not enough free space (naming the bytes asked and the bytes free);
// pinned memory that cannot be had; CUDA in a build or on a machine without it.
std::unique_ptr<OffloadTier> make_tier(const Device& device, size_t bytes, const std::string& path,
                                       int io_threads = 2);

// The CPU tier: one unnamed file of `bytes` in `directory` (O_TMPFILE, or a name unlinked right
// after it is opened), its space reserved up front (posix_fallocate, so a full disk shows here;
// where the file system cannot reserve, the file is sparse and a full disk shows as ENOSPC at a
// copy's wait()). `io_threads` >= 1: with one, both directions share it; otherwise half (rounded
// up) write and the rest read.
std::unique_ptr<OffloadTier> make_file_tier(size_t bytes, const std::string& directory,
                                            int io_threads = 2);

namespace testing {
// TEST ONLY (fault injection): the k-th copy out issued from now on by `tier` (k >= 1; 0 turns it
// off) writes half its bytes then fails as if pwrite had returned `error` (ENOSPC: a disk filling
// up mid-write). The environment variable LETHE_TIER_FAIL_WRITE=k does the same for every file tier
// made after it is set (counting from the tier's creation). File tiers only.
void fail_tier_write(OffloadTier& tier, uint64_t k, int error = ENOSPC);
}  // namespace testing

}  // namespace lethe
