// The one entry point that registers every CUDA kernel (called from lethe::cuda::init(), never from a
// static initialiser, so that no linker can drop it).
#include "framework/cuda/backend.h"

namespace lethe::cuda::detail {

void register_elementwise();
void register_reduce();
void register_shape();
void register_gemm();

void register_kernels() {
  register_elementwise();
  register_reduce();
  register_shape();
  register_gemm();
}

}  // namespace lethe::cuda::detail
