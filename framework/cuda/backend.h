// Internal: the seam between framework code (compiled without CUDA headers) and the CUDA backend
// (lethe_cuda). Only opaque pointers cross it; nothing here is installed.
#pragma once

#include <memory>
#include <string>

#include "framework/step_timer.h"
#include "framework/storage.h"

namespace lethe {
class DeviceStreams;  // framework/executor.h
class OffloadTier;    // framework/tier.h
}  // namespace lethe

namespace lethe::cuda::detail {

// cudaGetDeviceCount with errors mapped to 0 (the sticky error is cleared); when no device is
// usable, `error` (if given) receives why, with the runtime's own message (e.g. an insufficient
// driver).
int runtime_device_count(std::string* error);
// Hooks (storage copies, arena moves/allocation) and kernel registration; idempotent.
void install_backend();
// Registers every CUDA kernel by op name (ops/cuda/*); called by install_backend().
void register_kernels();
// A session's backend context (stream, cuBLAS and cuDNN handles) on device `index`; the
// KernelCall::stream of the session's kernels points at it.
std::shared_ptr<void> create_context(int index);
// The session's step timer: CUDA events on the context's stream (framework/step_timer.h).
std::unique_ptr<StepTimer> make_event_timer(std::shared_ptr<void> context);
// `n` streams for plans on streams (framework/executor.h): stream 0 is the session's context;
// streams 1..n-1 get contexts of their own (a stream, cuBLAS and cuDNN handles, scratch) on the
// same device, made once. Events order steps across streams and time them.
std::unique_ptr<DeviceStreams> make_device_streams(std::shared_ptr<void> context, int n);
// The second tier of a session on device `index` (framework/tier.h): `bytes` of pinned host memory,
// copies on two streams of its own (framework/cuda/pinned_tier.cpp).
std::unique_ptr<OffloadTier> make_pinned_tier(int index, size_t bytes);
// A caching cudaMalloc allocator for unlimited sessions on the context's device and stream.
std::unique_ptr<Allocator> make_device_allocator(std::shared_ptr<void> context);

}  // namespace lethe::cuda::detail
