// CUDA kernels of ops/loss.cpp: cross_entropy and nll_loss (+ backwards; class weights, label
// smoothing), one block per position for cross entropy, fixed-order sums; an out-of-range target
// throws the CPU kernel's error (index_check.h). bce_with_logits (+ backward) elementwise.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/elementwise.cuh"
#include "ops/layout.h"

namespace lethe::cuda::detail {
namespace {

constexpr int kBlock = 256;

enum Red : int { kNone, kSum, kMean };
int reduction_of(const Op& op) {
  switch (op.attrs_as<CrossEntropyAttrs>().reduction) {
    case Reduction::none:
      return kNone;
    case Reduction::sum:
      return kSum;
    case Reduction::mean:
      return kMean;
  }
  return kMean;
}

// The class weights (input `i` when the attributes say so), or null for all ones.
template <typename T>
const T* class_weight(const Op& op, const KernelCall& c, size_t i) {
  return op.attrs_as<CrossEntropyAttrs>().weight ? c.in<T>(i) : nullptr;
}

template <typename T>
__device__ T weight_at(const T* w, int64_t k) {
  return w ? w[k] : T(1);
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

// Loss per position (ops/loss.cpp's formula); a target outside [0, C) (and not ignore_index) gives
// NaN and records its position in `bad` (the host throws as the CPU kernel does, see
// index_check.h).
template <typename T>
__global__ void ce_losses(const T* x, const int64_t* t, const T* w, T eps, int64_t P, int64_t C,
                          int64_t S, int64_t ignore, T* losses, unsigned long long* bad) {
  __shared__ T sh[kBlock];
  for (int64_t i = blockIdx.x; i < P; i += gridDim.x) {
    const int64_t nn = i / S, ss = i % S;
    const int64_t ti = t[i];
    if (ti == ignore) {
      if (threadIdx.x == 0) losses[i] = T(0);
      continue;
    }
    const bool ok = ti >= 0 && ti < C;
    const T* xi = x + nn * C * S + ss;
    const T lse = block_lse(xi, C, S, sh);
    T smooth = T(0);
    if (eps != T(0)) {
      for (int64_t k = threadIdx.x; k < C; k += kBlock)
        smooth += weight_at(w, k) * (lse - xi[k * S]);
      smooth = block_sum(smooth, sh);
    }
    if (threadIdx.x == 0) {
      if (ok) {
        T l = weight_at(w, ti) * (lse - xi[ti * S]);
        if (eps != T(0)) l = (T(1) - eps) * l + eps / T(C) * smooth;
        losses[i] = l;
      } else {
        losses[i] = T(NAN);
        atomicMin(bad, static_cast<unsigned long long>(i));
      }
    }
  }
}

// nll_loss per position: -w[t] x[t]; a bad target as in ce_losses.
template <typename T>
__global__ void nll_losses(const T* x, const int64_t* t, const T* w, int64_t P, int64_t C,
                           int64_t S, int64_t ignore, T* losses, unsigned long long* bad) {
  LETHE_GRID_LOOP(i, P) {
    const int64_t nn = i / S, ss = i % S;
    const int64_t ti = t[i];
    if (ti == ignore) {
      losses[i] = T(0);
    } else if (ti >= 0 && ti < C) {
      losses[i] = -weight_at(w, ti) * x[(nn * C + ti) * S + ss];
    } else {
      losses[i] = T(NAN);
      atomicMin(bad, static_cast<unsigned long long>(i));
    }
  }
}

// The divisor of a mean: sum of w[t] over non-ignored targets, in one block (fixed order).
template <typename T>
__device__ T block_target_weights(const int64_t* t, const T* w, int64_t P, int64_t ignore, T* sh) {
  T cnt = T(0);
  for (int64_t i = threadIdx.x; i < P; i += kBlock)
    cnt += t[i] != ignore ? weight_at(w, t[i]) : T(0);
  return block_sum(cnt, sh);
}

// out = sum(losses) (mean: / the sum of target weights) in one block, fixed order.
template <typename T>
__global__ void class_reduce(const T* losses, const int64_t* t, const T* w, int64_t P,
                             int64_t ignore, bool mean, T* out) {
  __shared__ T sh[kBlock];
  T acc = T(0);
  for (int64_t i = threadIdx.x; i < P; i += kBlock) acc += losses[i];
  acc = block_sum(acc, sh);
  const T cnt = mean ? block_target_weights(t, w, P, ignore, sh) : T(1);
  if (threadIdx.x == 0) out[0] = mean ? acc / cnt : acc;
}

template <typename T>
__global__ void count_targets(const int64_t* t, const T* w, int64_t P, int64_t ignore, T* out) {
  __shared__ T sh[kBlock];
  const T cnt = block_target_weights(t, w, P, ignore, sh);
  if (threadIdx.x == 0) out[0] = cnt;
}

// logits [N, C, S...] seen as [N, C, S]; a position is (n, s).
using CeView = layout::ChannelView;
CeView ce_view(const Shape& l) {
  return layout::channel_view(l);
}

// Shared by cross_entropy and nll_loss: `losses_kernel` fills the per-position losses (and the bad
// slot), then the reduction.
template <typename T, typename Launch>
void class_loss_forward(const Op& op, const KernelCall& c, const char* name, Launch launch_losses) {
  const CeView v = ce_view(c.in_shape(0));
  const int red = reduction_of(op);
  const int64_t ignore = op.attrs_as<CrossEntropyAttrs>().ignore_index, P = v.n * v.s;
  const T* w = class_weight<T>(op, c, 2);
  T* losses = red == kNone ? c.out<T>() : static_cast<T*>(c.workspace);
  if (P > 0) {
    LETHE_ASSERT(losses != nullptr);
    arm_bad_index(c);
    launch_losses(v, P, ignore, w, losses);
    LETHE_CUDA_LAUNCH_CHECK();
    // The message of the CPU kernel (ops/loss.cpp), for the first bad position. Only the forward
    // checks: the backward reads the same targets after this node has run.
    const int64_t bad = read_bad_index(c);
    if (bad >= 0) {
      const int64_t tv = read_index_at(c, c.in<int64_t>(1) + bad);
      throw Error(lethe::detail::concat(
          name, ": target ", tv, " at position ", bad, " is out of range for ", v.c,
          " classes (expected 0 <= target < ", v.c, " or ignore_index ", ignore, ")"));
    }
  }
  if (red == kNone) return;
  class_reduce<T><<<1, kBlock, 0, stream(c)>>>(losses, c.in<int64_t>(1), w, P, ignore, red == kMean,
                                               c.out<T>());
  LETHE_CUDA_LAUNCH_CHECK();
}

// The scale's divisor of a backward in the context's scratch (a mean's sum of target weights).
template <typename T>
T* backward_count(const Op& op, const KernelCall& c, const T* w, int64_t P) {
  T* count = static_cast<T*>(context(c).scratch);
  if (reduction_of(op) == kMean) {
    count_targets<T><<<1, kBlock, 0, stream(c)>>>(
        c.in<int64_t>(2), w, P, op.attrs_as<CrossEntropyAttrs>().ignore_index, count);
    LETHE_CUDA_LAUNCH_CHECK();
  }
  return count;
}

template <typename T>
__device__ T loss_scale(const T* g, int64_t i, int red, const T* count) {
  return red == kNone ? g[i] : red == kSum ? g[0] : g[0] / count[0];
}

}  // namespace

void cross_entropy(const Op& op, const KernelCall& c) {
  const double eps = op.attrs_as<CrossEntropyAttrs>().label_smoothing;
  dispatch_f(c.in_meta[0]->dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    class_loss_forward<T>(op, c, "cross_entropy",
                          [&](const CeView& v, int64_t P, int64_t ignore, const T* w, T* losses) {
                            ce_losses<T><<<rows_grid(P), kBlock, 0, stream(c)>>>(
                                c.in<T>(0), c.in<int64_t>(1), w, static_cast<T>(eps), P, v.c, v.s,
                                ignore, losses, bad_index_slot(c));
                          });
  });
}

void nll_loss(const Op& op, const KernelCall& c) {
  dispatch_f(c.in_meta[0]->dtype, "nll_loss", [&](auto tag) {
    using T = decltype(tag);
    class_loss_forward<T>(
        op, c, "nll_loss", [&](const CeView& v, int64_t P, int64_t ignore, const T* w, T* losses) {
          nll_losses<T><<<grid_for(P), 256, 0, stream(c)>>>(c.in<T>(0), c.in<int64_t>(1), w, P, v.c,
                                                            v.s, ignore, losses, bad_index_slot(c));
        });
  });
}

namespace {

// ops/loss.cpp's CrossEntropyBackwardOp, one block per position.
template <typename T>
__global__ void ce_backward(const T* g, const T* x, const int64_t* t, const T* w, T eps, int64_t P,
                            int64_t C, int64_t S, int64_t ignore, int red, const T* count, T* dx) {
  __shared__ T sh[kBlock];
  T wsum = T(0);
  for (int64_t k = threadIdx.x; k < C; k += kBlock) wsum += weight_at(w, k);
  wsum = block_sum(wsum, sh);
  const T ec = eps / T(C);
  for (int64_t i = blockIdx.x; i < P; i += gridDim.x) {
    const int64_t nn = i / S, ss = i % S;
    const T* xi = x + nn * C * S + ss;
    T* di = dx + nn * C * S + ss;
    const int64_t ti = t[i];
    if (ti == ignore) {
      for (int64_t k = threadIdx.x; k < C; k += kBlock) di[k * S] = T(0);
      continue;
    }
    const T scale = loss_scale(g, i, red, count);
    const T hot = (T(1) - eps) * weight_at(w, ti);
    const T lse = block_lse(xi, C, S, sh);
    const T sp = scale * (hot + ec * wsum);
    for (int64_t k = threadIdx.x; k < C; k += kBlock) {
      T d = sp * exp(xi[k * S] - lse);
      if (eps != T(0)) d -= scale * ec * weight_at(w, k);
      di[k * S] = d - (k == ti ? scale * hot : T(0));
    }
  }
}

// One thread per element of dx [N, C, S].
template <typename T>
__global__ void nll_backward(const T* g, const int64_t* t, const T* w, int64_t n, int64_t C,
                             int64_t S, int64_t ignore, int red, const T* count, T* dx) {
  LETHE_GRID_LOOP(e, n) {
    const int64_t ss = e % S, k = (e / S) % C, nn = e / (S * C), i = nn * S + ss;
    const int64_t ti = t[i];
    dx[e] = ti != ignore && ti == k ? -weight_at(w, ti) * loss_scale(g, i, red, count) : T(0);
  }
}

}  // namespace

void cross_entropy_backward(const Op& op, const KernelCall& c) {
  const CeView v = ce_view(c.in_shape(1));
  const CrossEntropyAttrs& a = op.attrs_as<CrossEntropyAttrs>();
  const int64_t P = v.n * v.s;
  if (P == 0) return;
  dispatch_f(c.in_meta[1]->dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* w = class_weight<T>(op, c, 3);
    const T* count = backward_count<T>(op, c, w, P);
    ce_backward<T><<<rows_grid(P), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.in<T>(1), c.in<int64_t>(2), w, static_cast<T>(a.label_smoothing), P, v.c, v.s,
        a.ignore_index, reduction_of(op), count, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void nll_loss_backward(const Op& op, const KernelCall& c) {
  const CeView v = ce_view(c.in_shape(1));
  const int64_t P = v.n * v.s, n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.in_meta[1]->dtype, "nll_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* w = class_weight<T>(op, c, 3);
    const T* count = backward_count<T>(op, c, w, P);
    nll_backward<T><<<grid_for(n), 256, 0, stream(c)>>>(
        c.in<T>(0), c.in<int64_t>(2), w, n, v.c, v.s, op.attrs_as<CrossEntropyAttrs>().ignore_index,
        reduction_of(op), count, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

namespace {

// ops/loss.cpp's bce_logits and bce_logits_grad; operands (x, y, pos_weight?) or (g, x, y, pw?).
template <typename T>
__device__ T bce_value(T x, T y, T pw) {
  const T lw = T(1) + (pw - T(1)) * y;
  return (T(1) - y) * x + lw * (log1p(exp(-fabs(x))) + fmax(-x, T(0)));
}
template <typename T>
__device__ T bce_grad(T x, T y, T pw) {
  const T lw = T(1) + (pw - T(1)) * y;
  const T s = x >= T(0) ? exp(-x) / (T(1) + exp(-x)) : T(1) / (T(1) + exp(x));
  return (T(1) - y) - lw * s;
}

template <typename T, int N>
struct BceF {
  __device__ T operator()(const T (&v)[N], int64_t) const {
    return bce_value(v[0], v[1], N > 2 ? v[N > 2 ? 2 : 0] : T(1));
  }
};
template <typename T, int N>
struct BceGradF {
  __device__ T operator()(const T (&v)[N], int64_t) const {
    return v[0] * bce_grad(v[1], v[2], N > 3 ? v[N > 3 ? 3 : 0] : T(1));
  }
};

}  // namespace

void bce_with_logits(const Op&, const KernelCall& c) {
  dispatch_f(c.in_meta[0]->dtype, "bce_with_logits", [&](auto tag) {
    using T = decltype(tag);
    if (c.inputs.size() > 2)
      launch_ew<T, T, 3>(c, BceF<T, 3>{});
    else
      launch_ew<T, T, 2>(c, BceF<T, 2>{});
  });
}

void bce_with_logits_backward(const Op&, const KernelCall& c) {
  dispatch_f(c.in_meta[0]->dtype, "bce_with_logits_backward", [&](auto tag) {
    using T = decltype(tag);
    if (c.inputs.size() > 3)
      launch_ew<T, T, 4>(c, BceGradF<T, 4>{});
    else
      launch_ew<T, T, 3>(c, BceGradF<T, 3>{});
  });
}

}  // namespace lethe::cuda::detail
