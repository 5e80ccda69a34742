// The host side of the out-of-range index check of cross_entropy and embedding on CUDA.
#include "ops/cuda/index_check.h"

#include <cuda_runtime.h>

#include "framework/cuda/context.h"

namespace lethe::cuda::detail {

unsigned long long* bad_index_slot(const KernelCall& c) {
  return reinterpret_cast<unsigned long long*>(static_cast<char*>(context(c).scratch) +
                                               kScratchBadIndex);
}

void arm_bad_index(const KernelCall& c) {
  LETHE_CUDA_CHECK(cudaMemsetAsync(bad_index_slot(c), 0xFF, sizeof(unsigned long long), stream(c)));
}

int64_t read_bad_index(const KernelCall& c) {
  unsigned long long pos = 0;
  LETHE_CUDA_CHECK(
      cudaMemcpyAsync(&pos, bad_index_slot(c), sizeof(pos), cudaMemcpyDeviceToHost, stream(c)));
  LETHE_CUDA_CHECK(cudaStreamSynchronize(stream(c)));
  return pos == ~0ull ? -1 : static_cast<int64_t>(pos);
}

int64_t read_index_at(const KernelCall& c, const int64_t* p) {
  int64_t v = 0;
  LETHE_CUDA_CHECK(cudaMemcpyAsync(&v, p, sizeof(v), cudaMemcpyDeviceToHost, stream(c)));
  LETHE_CUDA_CHECK(cudaStreamSynchronize(stream(c)));
  return v;
}

}  // namespace lethe::cuda::detail
