// Internal: the pieces of the CUDA backend (lethe_cuda) that framework/cuda/runtime.cpp joins into
// one lethe::Backend (framework/backend.h). Only opaque pointers cross it; nothing here is
// installed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "framework/backend.h"

#include "framework/step_timer.h"
#include "framework/storage.h"

namespace lethe {}  // namespace lethe

namespace lethe::cuda::detail {

// cudaGetDeviceCount with errors mapped to 0 (the sticky error is cleared); when no device is
// usable, `error` (if given) receives why, with the runtime's own message (e.g. an insufficient
// driver).
int runtime_device_count(std::string* error);
// The CUDA backend; lethe::cuda::init() registers it (framework/cuda.cpp).
Backend& cuda_backend();
// The kernel table (ops/cuda/register.cpp): the kernel of each op kind, and for the kernels whose
// workspace is not the CPU kernel's, the function that sizes it (null: Op::workspace_bytes).
using KernelWorkspaceFn = size_t (*)(const Op& op, const std::vector<TensorMeta>& in,
                                     const TensorMeta& out);
DeviceKernel kernel_of(OpKind k);
KernelWorkspaceFn workspace_of(OpKind k);
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

}  // namespace lethe::cuda::detail
