// Internal (lethe_cuda .cu files): launch helpers, strided indexing and deterministic block sums.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "framework/cuda/context.h"
#include "framework/dtype.h"
#include "framework/shape.h"
#include "ops/cuda/kernels.h"
#include "ops/layout.h"
#include "ops/cuda/index_check.h"

namespace lethe::cuda::detail {

constexpr int kMaxDims = 8;

// An iteration space over `nd` dims (outermost first) read through N stride vectors.
template <int N>
struct Strided {
  int nd = 1;
  int64_t sizes[kMaxDims] = {1};
  int64_t strides[N][kMaxDims] = {};
  __host__ __device__ void offsets(int64_t i, int64_t* off) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t idx = i % sizes[d];
      i /= sizes[d];
      for (int k = 0; k < N; ++k) off[k] += idx * strides[k][d];
    }
  }
};

// A Strided<N> of a shape and one stride vector per operand: the merged iteration space of
// layout::collapse (the CPU kernels' own), in fixed arrays a kernel takes by value.
template <int N>
Strided<N> make_strided(const Shape& s, const std::vector<std::vector<int64_t>>& st) {
  const layout::StridedLoop l = layout::collapse(s, st);
  const int nd = static_cast<int>(l.sizes.size());
  LETHE_CHECK(nd <= kMaxDims, "CUDA kernel: more than ", kMaxDims, " non-mergeable dims in ", s);
  Strided<N> r;
  r.nd = nd;
  for (int d = 0; d < nd; ++d) {
    r.sizes[d] = l.sizes[static_cast<size_t>(d)];
    for (int k = 0; k < N; ++k)
      r.strides[k][d] = l.strides[static_cast<size_t>(k)][static_cast<size_t>(d)];
  }
  return r;
}

// Blocks for one block per row (capped; kernels loop over the rest).
inline unsigned rows_grid(int64_t rows) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(rows, 65535 * 8)));
}

// dst[space index i through dst_st] = src[i through src_st], elements of `elem` bytes
// (shape_ops.cu).
void launch_copy(const KernelCall& c, void* dst, const void* src, const Shape& space,
                 const std::vector<int64_t>& dst_st, const std::vector<int64_t>& src_st,
                 size_t elem);
// Sums input 0 (shape xs) into the output as a tensor of shape `keep` (xs with summed dims set to
// 1), in the fixed order of reduce.cu (sum_to's kernel).
void reduce_sum_into(const KernelCall& c, const Shape& xs, const Shape& keep);

#define LETHE_GRID_LOOP(i, n)                                               \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

// Sum of v over the block (blockDim.x a power of two <= 1024) in a fixed tree order; every thread
// gets the result. `sh` holds blockDim.x values.
template <typename T>
__device__ T block_sum(T v, T* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  T r = sh[0];
  __syncthreads();
  return r;
}
template <typename T>
__device__ T block_max(T v, T* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w)
      sh[threadIdx.x] =
          sh[threadIdx.x] > sh[threadIdx.x + w] ? sh[threadIdx.x] : sh[threadIdx.x + w];
    __syncthreads();
  }
  T r = sh[0];
  __syncthreads();
  return r;
}

template <typename F>
void dispatch_f(DType t, const char* op, F&& f) {
  if (t == DType::f32) return f(float{});
  if (t == DType::f64) return f(double{});
  throw Error(
      lethe::detail::concat(op, ": the CUDA kernel expects f32 or f64, got ", dtype_name(t)));
}
template <typename F>
void dispatch_a(DType t, F&& f) {
  if (t == DType::f32) return f(float{});
  if (t == DType::f64) return f(double{});
  return f(int64_t{});
}

}  // namespace lethe::cuda::detail
