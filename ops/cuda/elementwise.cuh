// Internal (lethe_cuda .cu files): the one broadcasting elementwise kernel, templated on a functor
// f(v, i) of the operands' values at output element i (elementwise.cu, dropout.cu).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/cuda/common.cuh"
#include "ops/layout.h"

namespace lethe::cuda::detail {

template <typename T, int N>
struct Ptrs {
  const T* p[N];
};

// out[i] = f(v, i) where v[k] is operand k at output element i (broadcast through ix unless every
// operand is contiguous with the output).
template <typename O, typename T, int N, typename F>
__global__ void ew_kernel(F f, O* __restrict__ out, Ptrs<T, N> in, Strided<N> ix, bool contiguous,
                          int64_t n) {
  LETHE_GRID_LOOP(i, n) {
    T v[N];
    if (contiguous) {
      for (int k = 0; k < N; ++k) v[k] = in.p[k][i];
    } else {
      int64_t off[N];
      ix.offsets(i, off);
      for (int k = 0; k < N; ++k) v[k] = in.p[k][off[k]];
    }
    out[i] = f(v, i);
  }
}

template <typename O, typename T, int N, typename F>
void launch_ew(const KernelCall& c, F f) {
  const Shape& os = c.out_shape();
  const int64_t n = os.numel();
  if (n == 0) return;
  Ptrs<T, N> in;
  bool contiguous = true;
  std::vector<std::vector<int64_t>> st;
  for (int k = 0; k < N; ++k) {
    in.p[k] = c.in<T>(static_cast<size_t>(k));
    contiguous = contiguous && c.in_shape(static_cast<size_t>(k)).numel() == n;
    st.push_back(layout::broadcast_strides(c.in_shape(static_cast<size_t>(k)), os));
  }
  Strided<N> ix = make_strided<N>(os, st);
  ew_kernel<O, T, N, F><<<grid_for(n), 256, 0, stream(c)>>>(f, c.out<O>(), in, ix, contiguous, n);
  LETHE_CUDA_LAUNCH_CHECK();
}

}  // namespace lethe::cuda::detail
