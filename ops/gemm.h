// Internal: row-major GEMM on raw pointers (OpenBLAS), C = alpha·op(A)·op(B) + beta·C.
// Kept out of ops.h; the declaration hides cblas.h from the headers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace lethe::detail {

// cuBLAS workspace of a GEMM on CUDA (placed in the session's arena like any workspace): 32 MiB as
// recommended for Hopper for big products, less for small ones so small budgets stay feasible.
inline size_t cuda_gemm_workspace_bytes(size_t out_bytes) {
  return std::min<size_t>(size_t(32) << 20, std::max<size_t>(size_t(256) << 10, out_bytes));
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

}  // namespace lethe::detail
