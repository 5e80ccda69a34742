// CUDA kernels of ops/upsample.cpp: one thread per output pixel forward, per input pixel backward,
// each computed by the same functions of ops/resample_index.h as the CPU kernels.
#include "ops/cuda/common.cuh"
#include "ops/resample_index.h"

namespace lethe::cuda::detail {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void upsample_kernel(const T* x, T* y, resample::UpAxis h, resample::UpAxis w, bool bilinear,
                                int64_t n) {
  LETHE_GRID_LOOP(e, n) {
    const int64_t q = e % w.out, p = (e / w.out) % h.out, plane = e / (w.out * h.out);
    y[e] = resample::upsample_at<T>(x + plane * h.in * w.in, h, w, bilinear, p, q);
  }
}

template <typename T>
__global__ void upsample_backward_kernel(const T* g, T* dx, resample::UpAxis h, resample::UpAxis w,
                                         bool bilinear, int64_t n) {
  LETHE_GRID_LOOP(e, n) {
    const int64_t q = e % w.in, p = (e / w.in) % h.in, plane = e / (w.in * h.in);
    dx[e] = resample::upsample_grad_at<T>(g + plane * h.out * w.out, h, w, bilinear, p, q);
  }
}

bool bilinear_kind(OpKind k) {
  return k == OpKind::upsample_bilinear2d || k == OpKind::upsample_bilinear2d_backward;
}

}  // namespace

void upsample2d(const Op& op, const KernelCall& c) {
  const UpsampleAttrs& a = op.attrs_as<UpsampleAttrs>();
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, op_kind_name(op.kind()), [&](auto tag) {
    using T = decltype(tag);
    upsample_kernel<T><<<grid_for(n), kBlock, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), resample::up_axis(a, 0),
                                                              resample::up_axis(a, 1), bilinear_kind(op.kind()), n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void upsample2d_backward(const Op& op, const KernelCall& c) {
  const UpsampleAttrs& a = op.attrs_as<UpsampleAttrs>();
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, op_kind_name(op.kind()), [&](auto tag) {
    using T = decltype(tag);
    upsample_backward_kernel<T><<<grid_for(n), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.out<T>(), resample::up_axis(a, 0), resample::up_axis(a, 1), bilinear_kind(op.kind()), n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
