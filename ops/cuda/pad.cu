// CUDA kernels of ops/pad.cpp: pad (one thread per output element) and pad_backward (one thread per
// input element, summing the output positions that read it in increasing order, as the CPU).
// Both map coordinates with ops/resample_index.h, as the CPU kernels do.
#include "ops/cuda/common.cuh"
#include "ops/layout.h"
#include "ops/resample_index.h"

namespace lethe::cuda::detail {
namespace {

constexpr int kBlock = 256;

// The pad of up to kMaxDims dims: sizes, strides of the input, pads before.
struct PadGeom {
  int nd = 0;
  int64_t in[kMaxDims] = {}, out[kMaxDims] = {}, stride[kMaxDims] = {}, before[kMaxDims] = {};
};

template <typename T>
__global__ void pad_kernel(const T* x, T* y, PadGeom g, PadMode mode, T value, int64_t n) {
  LETHE_GRID_LOOP(e, n) {
    int64_t rem = e, off = 0;
    bool inside = true;
    for (int d = g.nd - 1; d >= 0; --d) {
      const int64_t o = rem % g.out[d];
      rem /= g.out[d];
      const int64_t s = resample::pad_source(mode, o, g.before[d], g.in[d]);
      if (s < 0) inside = false;
      off += s * g.stride[d];
    }
    y[e] = inside ? x[off] : value;
  }
}

template <typename T>
__global__ void pad_backward_kernel(const T* g, T* dx, layout::AxisView v, int64_t out_len,
                                    PadBackwardAttrs a, int64_t n) {
  LETHE_GRID_LOOP(e, n) {
    const int64_t j = e % v.inner, i = (e / v.inner) % v.r, o = e / (v.inner * v.r);
    int64_t lo[3], hi[3];
    const int k = resample::pad_readers(a.mode, i, a.before, v.r, out_len, lo, hi);
    const T* src = g + o * out_len * v.inner + j;
    T acc = T(0);
    for (int q = 0; q < k; ++q)
      for (int64_t p = lo[q]; p < hi[q]; ++p) acc += src[p * v.inner];
    dx[e] = acc;
  }
}

}  // namespace

void pad(const Op& op, const KernelCall& c) {
  const PadAttrs& a = op.attrs_as<PadAttrs>();
  const Shape &xs = c.in_shape(0), &os = c.out_shape();
  const int64_t n = os.numel();
  if (n == 0) return;
  // Leading dims without padding merge into one (they are walked as they are).
  const int nd = xs.ndim(), padded = static_cast<int>(a.pads.size() / 2);
  const int first = nd - padded;
  int64_t lead = 1;
  for (int d = 0; d < first; ++d) lead *= xs[d];
  PadGeom g;
  LETHE_CHECK(padded + 1 <= kMaxDims, "pad: the CUDA kernel pads at most ", kMaxDims - 1,
              " dims, got ", padded);
  g.nd = padded + 1;
  g.in[0] = g.out[0] = lead;
  const std::vector<int64_t> st = xs.strides();
  g.stride[0] = first > 0 ? st[static_cast<size_t>(first - 1)] : 0;
  for (int d = first; d < nd; ++d) {
    const int k = d - first + 1;
    const size_t p = static_cast<size_t>(2 * (nd - 1 - d));
    g.in[k] = xs[d];
    g.out[k] = os[d];
    g.stride[k] = st[static_cast<size_t>(d)];
    g.before[k] = a.pads[p];
  }
  dispatch_a(c.out_meta->dtype, [&](auto tag) {
    using T = decltype(tag);
    pad_kernel<T><<<grid_for(n), kBlock, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), g, a.mode,
                                                         static_cast<T>(a.value), n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void pad_backward(const Op& op, const KernelCall& c) {
  const PadBackwardAttrs& a = op.attrs_as<PadBackwardAttrs>();
  const layout::AxisView v = layout::axis_view(c.out_shape(), a.axis);
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "pad_backward", [&](auto tag) {
    using T = decltype(tag);
    pad_backward_kernel<T><<<grid_for(n), kBlock, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), v,
                                                                  c.in_shape(0)[a.axis], a, n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
