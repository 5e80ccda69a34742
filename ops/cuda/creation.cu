// CUDA kernels of ops/creation.cpp: full (a fill) and copy (a device-to-device copy).
#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {

namespace {
template <typename T>
__global__ void fill_kernel(T* o, T v, int64_t n) {
  LETHE_GRID_LOOP(i, n) o[i] = v;
}

}  // namespace

void full(const Op& op, const KernelCall& c) {
  const double v = op.attrs_as<FullAttrs>().value;
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_a(c.out_meta->dtype, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(c.out<T>(), static_cast<T>(v), n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void copy(const Op&, const KernelCall& c) {
  const size_t b = c.out_meta->bytes();
  if (b)
    LETHE_CUDA_CHECK(
        cudaMemcpyAsync(c.output, c.inputs[0], b, cudaMemcpyDeviceToDevice, stream(c)));
}

}  // namespace lethe::cuda::detail
