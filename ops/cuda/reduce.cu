// CUDA kernels of ops/reduce.cpp: sum and mean over any axes (and the sums of sum_to), max/argmax
// and min/argmin along an axis, max's (and min's) gradient, cumsum. Every sum has an order fixed by
// the shapes (no atomics): a step is bitwise reproducible.
#include <cmath>
#include <limits>

#include "ops/cuda/column_sums.cuh"
#include "ops/cuda/common.cuh"
#include "ops/layout.h"

namespace lethe::cuda::detail {
namespace {

constexpr int64_t kChunk = 65536;  // = cpu::kReduceChunk: the workspace the ops report fits it
constexpr int kBlock = 256;

// ------------------------------------------------------------------------------- sums

template <typename T>
__global__ void chunk_sums(const T* x, int64_t n, T* partial) {
  __shared__ T sh[kBlock];
  const int64_t base = blockIdx.x * kChunk, end = min(n, base + kChunk);
  T acc = T(0);
  for (int64_t i = base + threadIdx.x; i < end; i += kBlock) acc += x[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// out[0] = scale * sum of x[0..n) (one block).
template <typename T>
__global__ void final_sum(const T* x, int64_t n, T* out, T scale) {
  __shared__ T sh[kBlock];
  T acc = T(0);
  for (int64_t i = threadIdx.x; i < n; i += kBlock) acc += x[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) out[0] = acc * scale;
}

// Rows of R contiguous elements: one block per row.
template <typename T>
__global__ void row_sums(const T* x, int64_t K, int64_t R, T* out, T scale) {
  __shared__ T sh[kBlock];
  for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
    const T* row = x + k * R;
    T acc = T(0);
    for (int64_t i = threadIdx.x; i < R; i += kBlock) acc += row[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) out[k] = acc * scale;
  }
}

// Nothing reduced, mean over size-1 axes: out = x * scale (the CPU kernel copies, then scales).
template <typename T>
__global__ void scaled_copy(const T* x, int64_t n, T* out, T scale) {
  LETHE_GRID_LOOP(i, n) out[i] = x[i] * scale;
}

// x[k0][r][k1] of a contiguous [K0, R, K1].
template <typename T>
struct ColumnTerm {
  const T* x;
  int64_t R, K1;
  __device__ T operator()(int64_t k0, int64_t r, int64_t k1) const {
    return x[(k0 * R + r) * K1 + k1];
  }
};

// Anything else: one thread per output, walking its reduced elements in row-major order.
// ix.strides[0] maps the output index to the input base; rx the reduced index to the offset.
template <typename T>
__global__ void general_sums(const T* x, int64_t m, Strided<1> ox, Strided<1> rx, int64_t rcount,
                             T* out, T scale) {
  LETHE_GRID_LOOP(o, m) {
    int64_t base;
    ox.offsets(o, &base);
    T acc = T(0);
    for (int64_t r = 0; r < rcount; ++r) {
      int64_t off;
      rx.offsets(r, &off);
      acc += x[base + off];
    }
    out[o] = acc * scale;
  }
}

// Sums x (shape xs) into out (shape keep: xs with reduced dims set to 1).
template <typename T>
void reduce_sum(const KernelCall& c, const T* x, const Shape& xs, const Shape& keep, T* out,
                T scale) {
  cudaStream_t s = stream(c);
  std::vector<int64_t> size;
  std::vector<bool> red;
  for (int d = 0; d < xs.ndim(); ++d) {
    if (xs[d] == 1) continue;
    const bool r = keep[d] == 1;
    if (!size.empty() && red.back() == r) {
      size.back() *= xs[d];
    } else {
      size.push_back(xs[d]);
      red.push_back(r);
    }
  }
  const int64_t n = xs.numel(), m = keep.numel();
  if (m == 0) return;
  if (n == 0) {
    LETHE_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(m) * sizeof(T), s));
    return;
  }
  bool any = false;
  for (bool b : red) any = any || b;
  if (!any) {
    if (scale == T(1)) {
      LETHE_CUDA_CHECK(
          cudaMemcpyAsync(out, x, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice, s));
    } else {
      scaled_copy<T><<<grid_for(n), kBlock, 0, s>>>(x, n, out, scale);
      LETHE_CUDA_LAUNCH_CHECK();
    }
    return;
  }
  if (size.size() == 1) {
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    if (chunks <= 1) {
      final_sum<T><<<1, kBlock, 0, s>>>(x, n, out, scale);
    } else {
      T* partial = static_cast<T*>(c.workspace);
      LETHE_CHECK(partial && c.workspace_bytes >= static_cast<size_t>(chunks) * sizeof(T),
                  "sum: the CUDA kernel needs ", chunks, " elements of workspace");
      chunk_sums<T><<<static_cast<unsigned>(chunks), kBlock, 0, s>>>(x, n, partial);
      LETHE_CUDA_LAUNCH_CHECK();
      final_sum<T><<<1, kBlock, 0, s>>>(partial, chunks, out, scale);
    }
    LETHE_CUDA_LAUNCH_CHECK();
    return;
  }
  if (size.size() == 2 && red[1]) {
    const int64_t K = size[0];
    row_sums<T><<<static_cast<unsigned>(std::min<int64_t>(K, 65535 * 8)), kBlock, 0, s>>>(
        x, K, size[1], out, scale);
    LETHE_CUDA_LAUNCH_CHECK();
    return;
  }
  if ((size.size() == 2 && red[0]) || (size.size() == 3 && red[1])) {
    const int64_t K0 = size.size() == 3 ? size[0] : 1;
    const int64_t R = size.size() == 3 ? size[1] : size[0];
    const int64_t K1 = size.back();
    const int64_t cap = static_cast<int64_t>(c.workspace_bytes / sizeof(T));
    column_reduce<T, T>(c, ColumnTerm<T>{x, R, K1}, K0, R, K1, static_cast<T*>(c.workspace), cap,
                        out, scale);
    return;
  }
  const std::vector<int64_t> xstr = xs.strides();
  std::vector<int64_t> kd, ks, rd, rs;
  for (int d = 0; d < xs.ndim(); ++d) {
    if (keep[d] == 1 && xs[d] != 1) {
      rd.push_back(xs[d]);
      rs.push_back(xstr[static_cast<size_t>(d)]);
    } else {
      kd.push_back(xs[d]);
      ks.push_back(xstr[static_cast<size_t>(d)]);
    }
  }
  int64_t rcount = 1;
  for (int64_t v : rd) rcount *= v;
  Strided<1> ox = make_strided<1>(Shape(kd), {ks});
  Strided<1> rx = make_strided<1>(Shape(rd), {rs});
  general_sums<T><<<grid_for(m), kBlock, 0, s>>>(x, m, ox, rx, rcount, out, scale);
  LETHE_CUDA_LAUNCH_CHECK();
}

}  // namespace

void sum_mean(const Op& op, const KernelCall& c) {
  const Shape& xs = c.in_shape(0);
  const Shape keep = layout::keep_shape(xs, op.attrs_as<ReduceAttrs>().axes);
  const bool mean = op.kind() == OpKind::mean;
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    T scale = T(1);
    if constexpr (std::is_floating_point_v<T>)
      if (mean) scale = T(1) / static_cast<T>(xs.numel() / std::max<int64_t>(keep.numel(), 1));
    reduce_sum<T>(c, c.in<T>(0), xs, keep, c.out<T>(), scale);
  });
}

void reduce_sum_into(const KernelCall& c, const Shape& xs, const Shape& keep) {
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    reduce_sum<T>(c, c.in<T>(0), xs, keep, c.out<T>(), T(1));
  });
}

// ------------------------------------------------------------------------------- max / argmax

namespace {

using layout::axis_view;
using layout::AxisView;

template <bool Min, typename T>
__device__ bool better(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (isnan(best)) return false;
    if (isnan(v)) return true;
  }
  return Min ? v < best : v > best;
}

template <bool Min, typename T>
__global__ void max_kernel(const T* x, AxisView v, T* vals, int64_t* idx) {
  LETHE_GRID_LOOP(t, v.outer * v.inner) {
    const int64_t o = t / v.inner, i = t % v.inner;
    const T* src = x + o * v.r * v.inner + i;
    T best = src[0];
    int64_t bi = 0;
    for (int64_t r = 1; r < v.r; ++r) {
      const T cand = src[r * v.inner];
      if (better<Min>(cand, best)) {
        best = cand;
        bi = r;
      }
    }
    if (vals) vals[t] = best;
    if (idx) idx[t] = bi;
  }
}

}  // namespace

void max_argmax(const Op& op, const KernelCall& c) {
  const AxisView v = axis_view(c.in_shape(0), op.attrs_as<AxisAttrs>().axis);
  const bool arg = op.kind() == OpKind::argmax || op.kind() == OpKind::argmin;
  const bool min = op.kind() == OpKind::min || op.kind() == OpKind::argmin;
  if (v.outer * v.inner == 0) return;
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    T* vals = arg ? nullptr : c.out<T>();
    int64_t* idx = arg ? c.out<int64_t>() : nullptr;
    if (min)
      max_kernel<true, T>
          <<<grid_for(v.outer * v.inner), kBlock, 0, stream(c)>>>(c.in<T>(0), v, vals, idx);
    else
      max_kernel<false, T>
          <<<grid_for(v.outer * v.inner), kBlock, 0, stream(c)>>>(c.in<T>(0), v, vals, idx);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

namespace {
template <typename T>
__global__ void max_backward_kernel(const T* g, const int64_t* idx, AxisView v, T* out) {
  LETHE_GRID_LOOP(e, v.outer * v.r * v.inner) {
    const int64_t i = e % v.inner, r = (e / v.inner) % v.r, o = e / (v.inner * v.r);
    const int64_t k = o * v.inner + i;
    out[e] = idx[k] == r ? g[k] : T(0);
  }
}

}  // namespace

void max_backward(const Op& op, const KernelCall& c) {
  const AxisView v = axis_view(c.out_shape(), op.attrs_as<AxisAttrs>().axis);
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.in_meta[0]->dtype, "max_backward", [&](auto tag) {
    using T = decltype(tag);
    max_backward_kernel<T>
        <<<grid_for(n), kBlock, 0, stream(c)>>>(c.in<T>(0), c.in<int64_t>(1), v, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// ------------------------------------------------------------------------------- cumsum

namespace {
// One thread per (outer, inner) line, adding along the axis in the CPU kernel's order.
template <typename T>
__global__ void cumsum_kernel(const T* x, AxisView v, bool reverse, T* y) {
  LETHE_GRID_LOOP(t, v.outer * v.inner) {
    const int64_t o = t / v.inner, i = t % v.inner;
    const T* src = x + o * v.r * v.inner + i;
    T* dst = y + o * v.r * v.inner + i;
    T acc = T(0);
    for (int64_t k = 0; k < v.r; ++k) {
      const int64_t r = reverse ? v.r - 1 - k : k;
      acc = k == 0 ? src[r * v.inner] : acc + src[r * v.inner];
      dst[r * v.inner] = acc;
    }
  }
}
}  // namespace

void cumsum(const Op& op, const KernelCall& c) {
  const CumsumAttrs& a = op.attrs_as<CumsumAttrs>();
  const AxisView v = axis_view(c.in_shape(0), a.axis);
  if (c.out_meta->numel() == 0) return;
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    cumsum_kernel<T><<<grid_for(v.outer * v.inner), kBlock, 0, stream(c)>>>(c.in<T>(0), v,
                                                                            a.reverse, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// sum, mean and sum_to: the CPU kernel's scratch, or room for the partial sums of long columns
// (column_plan), whichever is larger.
size_t column_sums_workspace(const Op& op, const std::vector<TensorMeta>& in,
                             const TensorMeta& out) {
  const size_t partials =
      static_cast<size_t>(column_partials_bound(in[0].numel())) * dtype_size(in[0].dtype);
  return std::max(op.workspace_bytes(in, out), partials);
}

}  // namespace lethe::cuda::detail
