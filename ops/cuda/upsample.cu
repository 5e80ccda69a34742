// CUDA kernels of ops/upsample.cpp: one thread per output pixel forward, per input pixel backward,
// each computed by the same functions of ops/resample_index.h as the CPU kernels.
#include "ops/cuda/common.cuh"
#include "ops/resample_index.h"

namespace lethe::cuda::detail {
namespace {

// Pixel (p, q) of every [P, Q] plane of y: upsample_at of x's plane (forward) or upsample_grad_at
// of the gradient's (backward), as the CPU's run_pixels.
template <typename T>
__global__ void upsample_kernel(const T* x, T* y, resample::UpAxis h, resample::UpAxis w,
                                bool bilinear, bool backward, int64_t n) {
  const int64_t P = backward ? h.in : h.out, Q = backward ? w.in : w.out;
  const int64_t in_plane = backward ? h.out * w.out : h.in * w.in;
  LETHE_GRID_LOOP(e, n) {
    const T* src = x + e / (P * Q) * in_plane;
    const int64_t p = (e / Q) % P, q = e % Q;
    y[e] = backward ? resample::upsample_grad_at<T>(src, h, w, bilinear, p, q)
                    : resample::upsample_at<T>(src, h, w, bilinear, p, q);
  }
}

void launch(const Op& op, const KernelCall& c, bool backward) {
  const UpsampleAttrs& a = op.attrs_as<UpsampleAttrs>();
  const bool bilinear =
      op.kind() == OpKind::upsample_bilinear2d || op.kind() == OpKind::upsample_bilinear2d_backward;
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, op_kind_name(op.kind()), [&](auto tag) {
    using T = decltype(tag);
    upsample_kernel<T>
        <<<grid_for(n), 256, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), resample::up_axis(a, 0),
                                             resample::up_axis(a, 1), bilinear, backward, n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace

void upsample2d(const Op& op, const KernelCall& c) {
  launch(op, c, false);
}
void upsample2d_backward(const Op& op, const KernelCall& c) {
  launch(op, c, true);
}

}  // namespace lethe::cuda::detail
