// CUDA kernels of ops/loss.cpp: cross_entropy (+ backward), one block per position, fixed-order
// sums; an out-of-range target throws the CPU kernel's error (index_check.h).
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/layout.h"

namespace lethe::cuda::detail {
namespace {

constexpr int kBlock = 256;

}  // namespace

namespace {

enum Red : int { kNone, kSum, kMean };
int reduction_of(const Op& op) {
  switch (op.attrs_as<CrossEntropyAttrs>().reduction) {
    case Reduction::none: return kNone;
    case Reduction::sum: return kSum;
    case Reduction::mean: return kMean;
  }
  return kMean;
}

// log-sum-exp of the C classes of position (nn, ss) by the block.
template <typename T>
__device__ T block_lse(const T* xi, int64_t C, int64_t S, T* sh) {
  T m = -INFINITY;
  for (int64_t k = threadIdx.x; k < C; k += kBlock) m = fmax(m, xi[k * S]);
  m = block_max(m, sh);
  if (isinf(m)) return m;
  T s = T(0);
  for (int64_t k = threadIdx.x; k < C; k += kBlock) s += exp(xi[k * S] - m);
  s = block_sum(s, sh);
  return m + log(s);
}

// Loss per position; a target outside [0, C) (and not ignore_index) gives NaN and records its
// position in `bad` (the host throws as the CPU kernel does, see index_check.h).
template <typename T>
__global__ void ce_losses(const T* x, const int64_t* t, int64_t P, int64_t C, int64_t S, int64_t ignore, T* losses,
                          unsigned long long* bad) {
  __shared__ T sh[kBlock];
  for (int64_t i = blockIdx.x; i < P; i += gridDim.x) {
    const int64_t nn = i / S, ss = i % S;
    const int64_t ti = t[i];
    if (ti == ignore) {
      if (threadIdx.x == 0) losses[i] = T(0);
      continue;
    }
    const T* xi = x + nn * C * S + ss;
    const T lse = block_lse(xi, C, S, sh);
    if (threadIdx.x == 0) {
      const bool ok = ti >= 0 && ti < C;
      losses[i] = ok ? lse - xi[ti * S] : T(NAN);
      if (!ok) atomicMin(bad, static_cast<unsigned long long>(i));
    }
  }
}

// out = sum(losses) (mean: / count of non-ignored targets) in one block, fixed order.
template <typename T>
__global__ void ce_reduce(const T* losses, const int64_t* t, int64_t P, int64_t ignore, bool mean, T* out) {
  __shared__ T sh[kBlock];
  T acc = T(0), cnt = T(0);
  for (int64_t i = threadIdx.x; i < P; i += kBlock) {
    acc += losses[i];
    cnt += t[i] != ignore ? T(1) : T(0);
  }
  acc = block_sum(acc, sh);
  cnt = block_sum(cnt, sh);
  if (threadIdx.x == 0) out[0] = mean ? acc / cnt : acc;
}

// logits [N, C, S...] seen as [N, C, S]; a position is (n, s).
using CeView = layout::ChannelView;
CeView ce_view(const Shape& l) { return layout::channel_view(l); }

}  // namespace

void cross_entropy(const Op& op, const KernelCall& c) {
  const CeView v = ce_view(c.in_shape(0));
  const int red = reduction_of(op);
  const int64_t ignore = op.attrs_as<CrossEntropyAttrs>().ignore_index, P = v.n * v.s;
  dispatch_f(c.in_meta[0]->dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    T* losses = red == kNone ? c.out<T>() : static_cast<T*>(c.workspace);
    if (P > 0) {
      LETHE_ASSERT(losses != nullptr);
      arm_bad_index(c);
      ce_losses<T><<<rows_grid(P), kBlock, 0, stream(c)>>>(c.in<T>(0), c.in<int64_t>(1), P, v.c, v.s, ignore, losses,
                                                        bad_index_slot(c));
      LETHE_CUDA_LAUNCH_CHECK();
      // The message of the CPU kernel (ops/loss.cpp), for the first bad position. Only the forward
      // checks: cross_entropy_backward reads the same targets after this node has run.
      const int64_t bad = read_bad_index(c);
      if (bad >= 0) {
        const int64_t tv = read_index_at(c, c.in<int64_t>(1) + bad);
        throw Error(lethe::detail::concat("cross_entropy: target ", tv, " at position ", bad,
                                          " is out of range for ", v.c, " classes (expected 0 <= target < ", v.c,
                                          " or ignore_index ", ignore, ")"));
      }
    }
    if (red == kNone) return;
    ce_reduce<T><<<1, kBlock, 0, stream(c)>>>(losses, c.in<int64_t>(1), P, ignore, red == kMean, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

namespace {
template <typename T>
__global__ void count_targets(const int64_t* t, int64_t P, int64_t ignore, T* out) {
  __shared__ T sh[kBlock];
  T cnt = T(0);
  for (int64_t i = threadIdx.x; i < P; i += kBlock) cnt += t[i] != ignore ? T(1) : T(0);
  cnt = block_sum(cnt, sh);
  if (threadIdx.x == 0) out[0] = cnt;
}

template <typename T>
__global__ void ce_backward(const T* g, const T* x, const int64_t* t, int64_t P, int64_t C, int64_t S,
                            int64_t ignore, int red, const T* count, T* dx) {
  __shared__ T sh[kBlock];
  for (int64_t i = blockIdx.x; i < P; i += gridDim.x) {
    const int64_t nn = i / S, ss = i % S;
    const T* xi = x + nn * C * S + ss;
    T* di = dx + nn * C * S + ss;
    const int64_t ti = t[i];
    if (ti == ignore) {
      for (int64_t k = threadIdx.x; k < C; k += kBlock) di[k * S] = T(0);
      continue;
    }
    const T scale = red == kNone ? g[i] : red == kSum ? g[0] : g[0] / count[0];
    const T lse = block_lse(xi, C, S, sh);
    for (int64_t k = threadIdx.x; k < C; k += kBlock)
      di[k * S] = scale * exp(xi[k * S] - lse) - (k == ti ? scale : T(0));
  }
}

}  // namespace

void cross_entropy_backward(const Op& op, const KernelCall& c) {
  const CeView v = ce_view(c.in_shape(1));
  const int red = reduction_of(op);
  const int64_t ignore = op.attrs_as<CrossEntropyAttrs>().ignore_index, P = v.n * v.s;
  if (P == 0) return;
  dispatch_f(c.in_meta[1]->dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    T* count = static_cast<T*>(context(c).scratch);
    if (red == kMean) {
      count_targets<T><<<1, kBlock, 0, stream(c)>>>(c.in<int64_t>(2), P, ignore, count);
      LETHE_CUDA_LAUNCH_CHECK();
    }
    ce_backward<T><<<rows_grid(P), kBlock, 0, stream(c)>>>(c.in<T>(0), c.in<T>(1), c.in<int64_t>(2), P, v.c,
                                                        v.s, ignore, red, count, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
