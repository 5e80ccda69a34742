// CUDA kernel of ops/dropout.cpp: dropout and dropout_backward apply the same mask, drawn from the
// counter-based generator as on the CPU (framework/random.h), so a recomputed mask is the first
// one.
#include "framework/random.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/elementwise.cuh"

namespace lethe::cuda::detail {
namespace {

// The same mask as the CPU kernel: element i of stream (step, node) under the session seed.
template <typename T>
struct DropoutF {
  uint64_t seed, stream;
  double p;
  T scale;
  __device__ T operator()(const T (&v)[1], int64_t i) const {
    return rng::uniform01(seed, stream, static_cast<uint64_t>(i)) >= p ? v[0] * scale : T(0);
  }
};

}  // namespace

void dropout(const Op& op, const KernelCall& c) {
  const DropoutAttrs& a = op.attrs_as<DropoutAttrs>();
  const double p = a.p;
  // The forward draws the mask of its own node; the backward applies that node's mask again.
  const uint64_t node = op.kind() == OpKind::dropout ? static_cast<uint64_t>(c.node)
                                                     : static_cast<uint64_t>(a.forward_node);
  const uint64_t st = rng::op_stream(c.step, node);
  dispatch_f(c.out_meta->dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
    launch_ew<T, T, 1>(c, DropoutF<T>{c.seed, st, p, scale});
  });
}

}  // namespace lethe::cuda::detail
