// CUDA kernels of ops/indexing.cpp: gather, scatter_add and index_select. An out-of-range index is
// read as 0 and its position recorded (index_check.h); the host then throws the CPU kernel's
// message. scatter_add walks each line along dim in one thread, in order: no atomics, the CPU's
// order of additions.
#include <cstring>

#include "ops/cuda/common.cuh"
#include "ops/layout.h"

namespace lethe::cuda::detail {
namespace {

constexpr int kBlock = 256;

__device__ int64_t checked(int64_t v, int64_t size, int64_t pos, unsigned long long* bad) {
  if (v < 0 || v >= size) {
    atomicMin(bad, static_cast<unsigned long long>(pos));
    return 0;
  }
  return v;
}

template <typename T>
__global__ void gather_kernel(const T* x, const int64_t* idx, T* out, Strided<2> ix, int64_t step,
                              int64_t size, int64_t n, unsigned long long* bad) {
  LETHE_GRID_LOOP(e, n) {
    int64_t off[2];
    ix.offsets(e, off);
    out[e] = x[off[0] + checked(idx[off[1]], size, off[1], bad) * step];
  }
}

template <typename T>
__global__ void scatter_add_kernel(const T* src, const int64_t* idx, T* out, Strided<3> ix,
                                   int64_t len, int64_t xstep, int64_t sstep, int64_t istep,
                                   int64_t size, int64_t lines, unsigned long long* bad) {
  LETHE_GRID_LOOP(e, lines) {
    int64_t off[3];
    ix.offsets(e, off);
    for (int64_t r = 0; r < len; ++r) {
      const int64_t p = off[2] + r * istep;
      const int64_t v = idx[p];
      if (v < 0 || v >= size) {
        atomicMin(bad, static_cast<unsigned long long>(p));
        continue;
      }
      out[off[0] + v * xstep] += src[off[1] + r * sstep];
    }
  }
}

template <typename E>
__global__ void index_select_kernel(const E* x, const int64_t* idx, E* out, layout::AxisView v,
                                    int64_t k, int64_t n, unsigned long long* bad) {
  LETHE_GRID_LOOP(e, n) {
    const int64_t i = e % v.inner, j = (e / v.inner) % k, o = e / (v.inner * k);
    out[e] = x[(o * v.r + checked(idx[j], v.r, j, bad)) * v.inner + i];
  }
}

// Throws the CPU kernel's message (ops/indexing.cpp) when a position was recorded.
void throw_if_bad(const KernelCall& c, const char* op, const int64_t* idx, int dim, int64_t size) {
  const int64_t pos = read_bad_index(c);
  if (pos < 0) return;
  const int64_t v = read_index_at(c, idx + pos);
  throw Error(lethe::detail::concat(op, ": index ", v, " (at position ", pos,
                                    ") is out of range for dim ", dim, " of size ", size));
}

}  // namespace

void gather(const Op& op, const KernelCall& c) {
  const int dim = op.attrs_as<IndexAttrs>().dim;
  const Shape &xs = c.in_shape(0), &is = c.in_shape(1);
  const int64_t n = is.numel();
  if (n == 0) return;
  const Strided<2> ix = make_strided<2>(is, {layout::strides_without(xs, dim), is.strides()});
  const int64_t step = xs.strides()[static_cast<size_t>(dim)];
  arm_bad_index(c);
  dispatch_a(c.out_meta->dtype, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<grid_for(n), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.in<int64_t>(1), c.out<T>(), ix, step, xs[dim], n, bad_index_slot(c));
    LETHE_CUDA_LAUNCH_CHECK();
  });
  throw_if_bad(c, "gather", c.in<int64_t>(1), dim, xs[dim]);
}

void scatter_add(const Op& op, const KernelCall& c) {
  const int dim = op.attrs_as<IndexAttrs>().dim;
  const Shape &xs = c.in_shape(0), &is = c.in_shape(1), &ss = c.in_shape(2);
  const size_t bytes = c.out_meta->bytes();
  if (bytes && c.output != c.inputs[0])
    LETHE_CUDA_CHECK(
        cudaMemcpyAsync(c.output, c.inputs[0], bytes, cudaMemcpyDeviceToDevice, stream(c)));
  if (is.numel() == 0) return;
  const Shape space = layout::keep_shape(is, {dim});
  const Strided<3> ix = make_strided<3>(space, {xs.strides(), ss.strides(), is.strides()});
  const size_t d = static_cast<size_t>(dim);
  const int64_t lines = space.numel();
  arm_bad_index(c);
  dispatch_a(c.out_meta->dtype, [&](auto tag) {
    using T = decltype(tag);
    scatter_add_kernel<T><<<grid_for(lines), kBlock, 0, stream(c)>>>(
        c.in<T>(2), c.in<int64_t>(1), c.out<T>(), ix, is[dim], xs.strides()[d], ss.strides()[d],
        is.strides()[d], xs[dim], lines, bad_index_slot(c));
    LETHE_CUDA_LAUNCH_CHECK();
  });
  throw_if_bad(c, "scatter_add", c.in<int64_t>(1), dim, xs[dim]);
}

void index_select(const Op& op, const KernelCall& c) {
  const int dim = op.attrs_as<IndexAttrs>().dim;
  const Shape& xs = c.in_shape(0);
  const int64_t k = c.in_shape(1).numel(), n = c.out_meta->numel();
  if (n == 0) return;
  const layout::AxisView v = layout::axis_view(xs, dim);
  arm_bad_index(c);
  if (dtype_size(c.out_meta->dtype) == 4)
    index_select_kernel<uint32_t><<<grid_for(n), kBlock, 0, stream(c)>>>(
        c.in<uint32_t>(0), c.in<int64_t>(1), c.out<uint32_t>(), v, k, n, bad_index_slot(c));
  else
    index_select_kernel<uint64_t><<<grid_for(n), kBlock, 0, stream(c)>>>(
        c.in<uint64_t>(0), c.in<int64_t>(1), c.out<uint64_t>(), v, k, n, bad_index_slot(c));
  LETHE_CUDA_LAUNCH_CHECK();
  throw_if_bad(c, "index_select", c.in<int64_t>(1), dim, xs[dim]);
}

}  // namespace lethe::cuda::detail
