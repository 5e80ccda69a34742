// CUDA kernel of ops/attention.cpp: causal_mask (bottom-right aligned, as the CPU kernel).
#include <cmath>

#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {

namespace {
template <typename T>
__global__ void causal_mask_kernel(const T* x, T* y, int64_t lq, int64_t lk, int64_t n, T fill) {
  LETHE_GRID_LOOP(e, n) {
    const int64_t j = e % lk, i = (e / lk) % lq;
    int64_t keep = i + (lk - lq) + 1;
    keep = keep < 0 ? 0 : keep > lk ? lk : keep;
    y[e] = j < keep ? x[e] : fill;
  }
}

}  // namespace

void causal_mask(const Op& op, const KernelCall& c) {
  const Shape& s = c.in_shape(0);
  const int64_t lq = s.at(-2), lk = s.at(-1), n = s.numel();
  const bool neg_inf = op.attrs_as<CausalMaskAttrs>().neg_inf;
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "causal_mask", [&](auto tag) {
    using T = decltype(tag);
    const T fill = neg_inf ? -INFINITY : T(0);
    causal_mask_kernel<T>
        <<<grid_for(n), 256, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), lq, lk, n, fill);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
