// Internal (lethe_cuda only): every CUDA, cuBLAS and cuDNN call goes through these macros, which
// throw lethe::Error naming the call, the file, the line and the library's own message.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "framework/error.h"

namespace lethe::cuda::detail {

[[noreturn]] inline void fail(const char* lib, const char* call, const char* file, int line,
                              int code, const char* msg) {
  throw Error(lethe::detail::concat(lib, " call ", call, " failed at ", file, ":", line, ": ", msg,
                                    " (code ", code, ")"));
}

}  // namespace lethe::cuda::detail

#define LETHE_CUDA_CHECK(call)                                                                   \
  do {                                                                                           \
    cudaError_t lethe_e_ = (call);                                                               \
    if (lethe_e_ != cudaSuccess) {                                                               \
      (void)cudaGetLastError();                                                                  \
      ::lethe::cuda::detail::fail("CUDA", #call, __FILE__, __LINE__, static_cast<int>(lethe_e_), \
                                  cudaGetErrorString(lethe_e_));                                 \
    }                                                                                            \
  } while (0)

#define LETHE_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                             \
    cublasStatus_t lethe_s_ = (call);                                                              \
    if (lethe_s_ != CUBLAS_STATUS_SUCCESS)                                                         \
      ::lethe::cuda::detail::fail("cuBLAS", #call, __FILE__, __LINE__, static_cast<int>(lethe_s_), \
                                  cublasGetStatusString(lethe_s_));                                \
  } while (0)

#define LETHE_CUDNN_CHECK(call)                                                                   \
  do {                                                                                            \
    cudnnStatus_t lethe_s_ = (call);                                                              \
    if (lethe_s_ != CUDNN_STATUS_SUCCESS)                                                         \
      ::lethe::cuda::detail::fail("cuDNN", #call, __FILE__, __LINE__, static_cast<int>(lethe_s_), \
                                  cudnnGetErrorString(lethe_s_));                                 \
  } while (0)

// After every kernel launch, in every build type: cudaGetLastError reports a bad launch
// configuration (and any earlier asynchronous fault) at the launch that caused it, instead of as a
// fault at an unrelated later call with this kernel's output left unwritten. Debug builds also
// synchronise the device, so a kernel that faults while running is named here too; Release builds
// do not (a synchronisation per launch would serialise host and device).
#ifndef NDEBUG
#define LETHE_CUDA_LAUNCH_CHECK()              \
  do {                                         \
    LETHE_CUDA_CHECK(cudaGetLastError());      \
    LETHE_CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
#else
#define LETHE_CUDA_LAUNCH_CHECK()         \
  do {                                    \
    LETHE_CUDA_CHECK(cudaGetLastError()); \
  } while (0)
#endif
