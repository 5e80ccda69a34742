// The one interface between the framework and a device (issue 20): everything the framework asks of
// a device goes through its Backend, as ggml's backends do: its kernels and their workspaces, its
// memory (arena blocks, copies within the device and to and from the host), and what a session
// makes on it (a context, an allocator, a step timer, streams for plans on streams, a second tier).
// The CPU backend is always there; the CUDA backend is registered by lethe::cuda::init()
// (framework/cuda.cpp, the one place that knows whether this build has it).
//
//   Backend& b = backend(device.kind);           // throws why when the device has no backend
//   b.kernel(op.kind())(op, call);               // or run_kernel(op, call, device)
//   size_t ws = b.workspace_bytes(op, in, out);  // or kernel_workspace_bytes(op, in, out)
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "framework/device.h"
#include "framework/op_kind.h"

namespace lethe {

class Op;
struct KernelCall;
struct TensorMeta;
class Allocator;      // framework/storage.h
class StepTimer;      // framework/step_timer.h
class DeviceStreams;  // framework/executor.h
class OffloadTier;    // framework/tier.h

// A kernel of one backend for one op kind.
using DeviceKernel = void (*)(const Op& op, const KernelCall& call);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceKind kind() const = 0;

  // ---- kernels
  // The kernel of `op` on this device; null when the backend has none.
  virtual DeviceKernel kernel(OpKind op) const = 0;
  // Bytes of scratch the kernel of `op` needs for these metas on this device (placed in the
  // session's arena like any buffer, so the plan counts it). Asked before the kernel runs, with the
  // same metas; the kernel never needs more.
  virtual size_t workspace_bytes(const Op& op, const std::vector<TensorMeta>& in,
                                 const TensorMeta& out) const = 0;

  // ---- memory
  // A block of device memory for an arena (null when the device has no room), and its release.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) = 0;
  // Copies within the device (overlapping ranges allowed), ordered on `context`'s stream.
  virtual void move(void* dst, const void* src, size_t bytes, void* context) = 0;
  // Copies between device memory and host memory (to_host: device -> host), complete on return.
  virtual void copy(void* dst, const void* src, size_t bytes, bool to_host, void* context) = 0;

  // ---- what a session makes on device `index`
  // The session's context (a stream and library handles on CUDA; null on the CPU). Every kernel of
  // the session receives it as KernelCall::stream.
  virtual std::shared_ptr<void> create_context(int index) = 0;
  // The allocator of unlimited sessions.
  virtual std::unique_ptr<Allocator> make_allocator(std::shared_ptr<void> context) = 0;
  // The step timer: marks in the device's order of work.
  virtual std::unique_ptr<StepTimer> make_timer(std::shared_ptr<void> context) = 0;
  // `n` streams for plans on streams (stream 0: `context`); null when the executor runs the streams
  // as worker threads of its own (the CPU).
  virtual std::unique_ptr<DeviceStreams> make_streams(std::shared_ptr<void> context, int n) = 0;
  // The session's second tier of `bytes` (framework/tier.h): a file in `path` (the CPU) or pinned
  // host memory (CUDA; `path` unused).
  virtual std::unique_ptr<OffloadTier> make_tier(int index, size_t bytes, const std::string& path,
                                                 int io_threads) = 0;
};

// The backend of `kind`; throws lethe::Error saying why when there is none (for CUDA: the reason
// lethe::cuda::init() gives). The CUDA backend is registered on first use.
Backend& backend(DeviceKind kind);
// The backend of `kind` if it is registered already; null otherwise. Never registers one.
Backend* find_backend(DeviceKind kind);
// Makes `b` the backend of `kind` (b->kind() must be `kind`; null removes it) and returns the one
// it replaces. A backend outlives every session and storage made on it (a static object).
Backend* set_backend(DeviceKind kind, Backend* b);

// Runs op's kernel for `call` on `device`; throws naming the op and the device when it has none.
void run_kernel(const Op& op, const KernelCall& call, Device device);
// The workspace of op's kernel on the device of its output.
size_t kernel_workspace_bytes(const Op& op, const std::vector<TensorMeta>& in,
                              const TensorMeta& out);

}  // namespace lethe
