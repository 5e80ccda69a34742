// The one entry point that registers every CUDA kernel (called from lethe::cuda::init(), never from a
// static initialiser, so that no linker can drop it).
#include "framework/cuda/backend.h"

namespace lethe::cuda::detail {

void register_elementwise();
void register_reduce();
void register_shape();
void register_gemm();
void register_conv();
void register_pool();
void register_norm();

void register_kernels() {
  register_elementwise();
  register_reduce();
  register_shape();
  register_gemm();
  register_conv();  // also installs the conv workspace hook (ops/conv_workspace.h)
  register_pool();
  register_norm();
}

}  // namespace lethe::cuda::detail
