// Internal (lethe_cuda only): a session's CUDA context. KernelCall::stream points at one.
#pragma once

#include <cstddef>

#include "framework/cuda/check.h"
#include "framework/op.h"

namespace lethe::cuda::detail {

// Context::scratch: kScratchBytes of device memory made with the context. Bytes [0, 8) hold the
// target count of cross_entropy_backward; [kScratchBadIndex, +8) the smallest position of an
// out-of-range index seen by cross_entropy or embedding (ops/cuda/index_check.cpp).
constexpr size_t kScratchBytes = 256;
constexpr size_t kScratchBadIndex = 64;

struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cudnnHandle_t dnn = nullptr;
  // A few bytes of device scratch made with the context (layout above).
  void* scratch = nullptr;
  ~Context();
};

// Makes c's stream, cuBLAS and cuDNN handles (deterministic settings) and scratch on `device`, the
// current device (framework/cuda/runtime.cpp). A session's context and each extra stream's use it.
void init_context(Context& c, int device);

inline Context& context(const KernelCall& k) {
  LETHE_ASSERT(k.stream != nullptr);
  return *static_cast<Context*>(k.stream);
}
inline cudaStream_t stream(const KernelCall& k) {
  return context(k).stream;
}

// Grid size for a grid-stride loop over n elements.
inline unsigned grid_for(long long n, int block = 256) {
  long long g = (n + block - 1) / block;
  if (g < 1) g = 1;
  if (g > 65535LL * 16) g = 65535LL * 16;
  return static_cast<unsigned>(g);
}

}  // namespace lethe::cuda::detail
