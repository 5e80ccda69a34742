// CUDA kernels of ops/softmax.cpp: softmax and log_softmax along an axis (+ their backwards), one
// block per line, fixed-order block sums.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/layout.h"

namespace lethe::cuda::detail {
namespace {

constexpr int kBlock = 256;
using layout::axis_view;
using layout::AxisView;

// One block per (outer, inner) line of R elements with stride `inner`.
template <typename T>
__global__ void softmax_kernel(const T* x, T* y, AxisView v, bool log_) {
  __shared__ T sh[kBlock];
  for (int64_t t = blockIdx.x; t < v.outer * v.inner; t += gridDim.x) {
    const int64_t o = t / v.inner, i = t % v.inner;
    const T* xr = x + o * v.r * v.inner + i;
    T* yr = y + o * v.r * v.inner + i;
    T m = -INFINITY;
    for (int64_t k = threadIdx.x; k < v.r; k += kBlock) m = fmax(m, xr[k * v.inner]);
    m = block_max(m, sh);
    if (isinf(m) && m < 0) m = T(0);
    T s = T(0);
    for (int64_t k = threadIdx.x; k < v.r; k += kBlock) s += exp(xr[k * v.inner] - m);
    s = block_sum(s, sh);
    if (log_) {
      const T lse = m + log(s);
      for (int64_t k = threadIdx.x; k < v.r; k += kBlock) yr[k * v.inner] = xr[k * v.inner] - lse;
    } else {
      const T inv = T(1) / s;
      for (int64_t k = threadIdx.x; k < v.r; k += kBlock)
        yr[k * v.inner] = exp(xr[k * v.inner] - m) * inv;
    }
  }
}

template <typename T>
__global__ void softmax_backward_kernel(const T* g, const T* y, T* dx, AxisView v, bool log_) {
  __shared__ T sh[kBlock];
  for (int64_t t = blockIdx.x; t < v.outer * v.inner; t += gridDim.x) {
    const int64_t base = (t / v.inner) * v.r * v.inner + t % v.inner;
    T s = T(0);
    for (int64_t k = threadIdx.x; k < v.r; k += kBlock) {
      const int64_t j = base + k * v.inner;
      s += log_ ? g[j] : g[j] * y[j];
    }
    s = block_sum(s, sh);
    for (int64_t k = threadIdx.x; k < v.r; k += kBlock) {
      const int64_t j = base + k * v.inner;
      dx[j] = log_ ? g[j] - exp(y[j]) * s : y[j] * (g[j] - s);
    }
  }
}

}  // namespace

void softmax(const Op& op, const KernelCall& c) {
  const AxisView v = axis_view(c.in_shape(0), op.attrs_as<SoftmaxAttrs>().axis);
  if (c.out_meta->numel() == 0) return;
  const bool log_ = op.kind() == OpKind::log_softmax;
  dispatch_f(c.in_meta[0]->dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T>
        <<<rows_grid(v.outer * v.inner), kBlock, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), v, log_);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void softmax_backward(const Op& op, const KernelCall& c) {
  const AxisView v = axis_view(c.in_shape(0), op.attrs_as<SoftmaxAttrs>().axis);
  if (c.out_meta->numel() == 0) return;
  const bool log_ = op.kind() == OpKind::log_softmax_backward;
  dispatch_f(c.in_meta[0]->dtype, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<T><<<rows_grid(v.outer * v.inner), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.in<T>(1), c.out<T>(), v, log_);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
