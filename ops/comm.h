// The ops of data-parallel training (dist/dist.h): a bucket of gradients all-reduced over the
// ranks, and each gradient taken back out of it. backward() records them when the session is
// data-parallel; they are ordinary nodes of the step graph (planned, laid out and timed as any op),
// run on the step's communication stream.
#pragma once

#include <vector>

#include "framework/tensor.h"

namespace lethe {

// The mean over ranks of `grads` (same dtype, floating), packed in order into one flat bucket of
// dist::bucket_elements(total numel) values. On one rank: the packed values. Bucket `bucket` of
// its step (for error messages). `after` (optional): a value of the previous bucket, an input that
// orders this all-reduce after that one in every plan (ranks must run their collectives in one
// order).
Tensor all_reduce(const std::vector<Tensor>& grads, int bucket, const Tensor& after = Tensor());
// The `shape` values of `bucket` from element `offset` on.
Tensor bucket_slice(const Tensor& bucket, int64_t offset, const Shape& shape);

}  // namespace lethe
