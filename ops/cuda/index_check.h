// Internal (lethe_cuda): out-of-range indices on CUDA (cross_entropy targets, embedding rows).
//
// The CPU kernels throw lethe::Error naming the op, the first bad value and its position. On the
// device a kernel records the smallest bad position with atomicMin(slot, position) (the minimum
// does not depend on timing), and the host reads it back right after the kernel:
//
//   arm_bad_index(c);                                    // slot = none, in stream order
//   kernel<<<..., stream(c)>>>(..., bad_index_slot(c));
//   if (int64_t pos = read_bad_index(c); pos >= 0) throw ... read_index_at(c, idx + pos) ...
//
// The read-back synchronises the session's stream once per call. That costs the host's lead over
// the device at that point of the step (a few microseconds of idle device when the host catches
// up), which is acceptable for ops that run once or twice per step; the alternative, checking when
// the step's results are read, would report the error far from the op and only after every later
// kernel consumed the garbage rows.
#pragma once

#include <cstdint>

#include "framework/op.h"

namespace lethe::cuda::detail {

// The device slot (an unsigned long long in the context's scratch).
unsigned long long* bad_index_slot(const KernelCall& c);
// Sets the slot to "none" (all bits set), in stream order.
void arm_bad_index(const KernelCall& c);
// The smallest recorded position, or -1 when none; waits for the session's stream.
int64_t read_bad_index(const KernelCall& c);
// The i64 at device address p (for error messages only; waits for the stream).
int64_t read_index_at(const KernelCall& c, const int64_t* p);

}  // namespace lethe::cuda::detail
