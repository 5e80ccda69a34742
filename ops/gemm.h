// Internal: row-major GEMM on raw pointers (OpenBLAS), C = alpha·op(A)·op(B) + beta·C.
// Kept out of ops.h; the declaration hides cblas.h from the headers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace lethe::detail {

// cuBLAS documents a 256-byte alignment for cublasSetWorkspace; arena buffers are 64-byte aligned.
constexpr size_t kCublasWorkspaceAlignment = 256;

// cuBLAS workspace of a GEMM on CUDA (placed in the session's arena like any workspace): 32 MiB as
// recommended for Hopper for big products, less for small ones so small budgets stay feasible, plus
// the alignment headroom of cublas_workspace_window().
inline size_t cuda_gemm_workspace_bytes(size_t out_bytes) {
  return std::min<size_t>(size_t(32) << 20, std::max<size_t>(size_t(256) << 10, out_bytes)) +
         kCublasWorkspaceAlignment;
}

// The part of an op's workspace handed to cuBLAS: its first 256-byte aligned address, and a size
// that depends only on the workspace's size, never on where the buffer was placed. cuBLAS may pick
// its kernels by workspace size, so a size that moved with the placement could give a budgeted step
// other bits than the unlimited one.
struct CublasWorkspace {
  void* data = nullptr;
  size_t bytes = 0;
};
inline CublasWorkspace cublas_workspace_window(void* workspace, size_t workspace_bytes) {
  if (workspace == nullptr || workspace_bytes < kCublasWorkspaceAlignment) return {};
  const auto p = reinterpret_cast<uintptr_t>(workspace);
  const uintptr_t aligned =
      (p + kCublasWorkspaceAlignment - 1) / kCublasWorkspaceAlignment * kCublasWorkspaceAlignment;
  const size_t usable = (workspace_bytes - kCublasWorkspaceAlignment) / kCublasWorkspaceAlignment *
                        kCublasWorkspaceAlignment;
  return {reinterpret_cast<void*>(aligned), usable};
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc);

}  // namespace lethe::detail
