// Internal (lethe_cuda .cu files): launch helpers, strided indexing and deterministic block sums.
#pragma once

#include <cstdint>
#include <vector>

#include "framework/cuda/context.h"
#include "framework/dtype.h"
#include "framework/shape.h"
#include "ops/cuda/kernels.h"
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

// Builds a Strided<N> from a shape and one stride vector per operand, merging dims that every
// operand walks contiguously together (as cpu::collapse does).
template <int N>
Strided<N> make_strided(const Shape& s, const std::vector<std::vector<int64_t>>& st) {
  Strided<N> r;
  r.nd = 0;
  for (int d = 0; d < s.ndim(); ++d) {
    if (s[d] == 1) continue;
    bool merge = r.nd > 0;
    for (int k = 0; merge && k < N; ++k)
      merge = r.strides[k][r.nd - 1] == st[static_cast<size_t>(k)][static_cast<size_t>(d)] * s[d];
    if (merge) {
      r.sizes[r.nd - 1] *= s[d];
      for (int k = 0; k < N; ++k) r.strides[k][r.nd - 1] = st[static_cast<size_t>(k)][static_cast<size_t>(d)];
    } else {
      LETHE_CHECK(r.nd < kMaxDims, "CUDA kernel: more than ", kMaxDims, " non-mergeable dims in ", s);
      r.sizes[r.nd] = s[d];
      for (int k = 0; k < N; ++k) r.strides[k][r.nd] = st[static_cast<size_t>(k)][static_cast<size_t>(d)];
      ++r.nd;
    }
  }
  if (r.nd == 0) {
    r.nd = 1;
    r.sizes[0] = 1;
    for (int k = 0; k < N; ++k) r.strides[k][0] = 0;
  }
  return r;
}

// Strides of a contiguous tensor of shape `in` broadcast to `out`.
inline std::vector<int64_t> bcast_strides(const Shape& in, const Shape& out) {
  const int n = out.ndim(), off = n - in.ndim();
  std::vector<int64_t> st(static_cast<size_t>(n), 0);
  int64_t s = 1;
  for (int d = in.ndim() - 1; d >= 0; --d) {
    st[static_cast<size_t>(d + off)] = in[d] == 1 ? 0 : s;
    s *= in[d];
  }
  return st;
}

#define LETHE_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

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
    if (threadIdx.x < w) sh[threadIdx.x] = sh[threadIdx.x] > sh[threadIdx.x + w] ? sh[threadIdx.x] : sh[threadIdx.x + w];
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
  throw Error(lethe::detail::concat(op, ": the CUDA kernel expects f32 or f64, got ", dtype_name(t)));
}
template <typename F>
void dispatch_a(DType t, F&& f) {
  if (t == DType::f32) return f(float{});
  if (t == DType::f64) return f(double{});
  return f(int64_t{});
}

}  // namespace lethe::cuda::detail
