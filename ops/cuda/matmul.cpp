// CUDA kernels of ops/matmul.cpp: matmul and linear through cuBLAS (row-major via the column-major
// transpose identity). f32 uses TF32 tensor cores only when lethe::cuda::set_allow_tf32(true); the
// workspace is the op's own (in the arena) and atomics are disabled: results are deterministic.
#include <cuda_runtime.h>

#include <climits>
#include <vector>

#include "framework/cuda.h"
#include "framework/cuda/context.h"
#include "ops/cuda/kernels.h"
#include "ops/gemm.h"
#include "ops/layout.h"

namespace lethe::cuda::detail {

namespace {

using layout::batch_shape;
using layout::broadcast_index;

cublasHandle_t prepare(const KernelCall& c, bool f32) {
  Context& ctx = context(c);
  const lethe::detail::CublasWorkspace ws =
      lethe::detail::cublas_workspace_window(c.workspace, c.workspace_bytes);
  LETHE_CUBLAS_CHECK(cublasSetWorkspace(ctx.blas, ws.data, ws.bytes));
  LETHE_CUBLAS_CHECK(cublasSetMathMode(ctx.blas, f32 && lethe::cuda::allow_tf32()
                                                     ? CUBLAS_TF32_TENSOR_OP_MATH
                                                     : CUBLAS_DEFAULT_MATH));
  return ctx.blas;
}

bool fits_int(int64_t v) {
  return v >= 0 && v <= INT_MAX;
}

// C[b] = beta C[b] for an empty product (k = 0): cuBLAS rejects k = 0 in some versions. With
// beta = 0 the output is written with zeros, as the CPU does: scaling would keep a stale NaN or Inf
// left in the arena (0 * NaN = NaN). Row-major C[b] is m rows of n elements, ldc apart.
template <typename T>
void scale_output(const KernelCall& c, cublasHandle_t h, int64_t m, int64_t n, T beta, T* C,
                  int64_t ldc, int64_t sc, int64_t count) {
  for (int64_t b = 0; b < count; ++b) {
    T* cb = C + b * sc;
    if (beta == T(0)) {
      LETHE_CUDA_CHECK(cudaMemset2DAsync(cb, static_cast<size_t>(ldc) * sizeof(T), 0,
                                         static_cast<size_t>(n) * sizeof(T), static_cast<size_t>(m),
                                         stream(c)));
      continue;
    }
    // Contiguous rows: one scal over m*n; otherwise one per row.
    const int64_t runs = ldc == n ? 1 : m, len = ldc == n ? m * n : n;
    for (int64_t r = 0; r < runs; ++r) {
      if constexpr (sizeof(T) == 4)
        LETHE_CUBLAS_CHECK(
            cublasSscal_64(h, len, &beta, reinterpret_cast<float*>(cb + r * ldc), 1));
      else
        LETHE_CUBLAS_CHECK(
            cublasDscal_64(h, len, &beta, reinterpret_cast<double*>(cb + r * ldc), 1));
    }
  }
}

// Row-major C[b] = alpha op(A[b]) op(B[b]) + beta C[b] for `count` products with constant strides.
// Sizes that fit in int use cuBLAS's classic entry points; larger ones (a batch folded into m on a
// 141 GB device can pass 2^31) use its 64-bit ones instead of wrapping.
template <typename T>
void gemm(const KernelCall& c, cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
          T alpha, const T* A, int64_t lda, int64_t sa, const T* B, int64_t ldb, int64_t sb, T beta,
          T* C, int64_t ldc, int64_t sc, int64_t count) {
  if (m == 0 || n == 0 || count == 0) return;
  if (k == 0) return scale_output<T>(c, h, m, n, beta, C, ldc, sc, count);
  const cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  // Column-major: Cᵀ = op(B)ᵀ op(A)ᵀ.
  const int64_t M = n, N = m, K = k;
  const int64_t LA = std::max<int64_t>(ldb, 1), LB = std::max<int64_t>(lda, 1),
                LC = std::max<int64_t>(ldc, 1);
  const bool small = fits_int(M) && fits_int(N) && fits_int(K) && fits_int(LA) && fits_int(LB) &&
                     fits_int(LC) && fits_int(count);
  if (count == 1) {
    if (small) {
      if constexpr (sizeof(T) == 4)
        LETHE_CUBLAS_CHECK(cublasSgemm(h, ob, oa, int(M), int(N), int(K), &alpha, B, int(LA), A,
                                       int(LB), &beta, C, int(LC)));
      else
        LETHE_CUBLAS_CHECK(cublasDgemm(h, ob, oa, int(M), int(N), int(K), &alpha, B, int(LA), A,
                                       int(LB), &beta, C, int(LC)));
    } else {
      if constexpr (sizeof(T) == 4)
        LETHE_CUBLAS_CHECK(cublasSgemm_64(h, ob, oa, M, N, K, &alpha, B, LA, A, LB, &beta, C, LC));
      else
        LETHE_CUBLAS_CHECK(cublasDgemm_64(h, ob, oa, M, N, K, &alpha, B, LA, A, LB, &beta, C, LC));
    }
    return;
  }
  if (small) {
    if constexpr (sizeof(T) == 4)
      LETHE_CUBLAS_CHECK(cublasSgemmStridedBatched(h, ob, oa, int(M), int(N), int(K), &alpha, B,
                                                   int(LA), sb, A, int(LB), sa, &beta, C, int(LC),
                                                   sc, int(count)));
    else
      LETHE_CUBLAS_CHECK(cublasDgemmStridedBatched(h, ob, oa, int(M), int(N), int(K), &alpha, B,
                                                   int(LA), sb, A, int(LB), sa, &beta, C, int(LC),
                                                   sc, int(count)));
  } else {
    if constexpr (sizeof(T) == 4)
      LETHE_CUBLAS_CHECK(cublasSgemmStridedBatched_64(h, ob, oa, M, N, K, &alpha, B, LA, sb, A, LB,
                                                      sa, &beta, C, LC, sc, count));
    else
      LETHE_CUBLAS_CHECK(cublasDgemmStridedBatched_64(h, ob, oa, M, N, K, &alpha, B, LA, sb, A, LB,
                                                      sa, &beta, C, LC, sc, count));
  }
}

template <typename T>
void matmul_t(const Op& op, const KernelCall& c) {
  const MatmulAttrs& a_ = op.attrs_as<MatmulAttrs>();
  const bool ta = a_.transpose_a, tb = a_.transpose_b, reduce = a_.reduce_batch;
  const Shape &a = c.in_shape(0), &b = c.in_shape(1);
  const int64_t m = ta ? a.at(-1) : a.at(-2), k = ta ? a.at(-2) : a.at(-1),
                n = tb ? b.at(-2) : b.at(-1);
  const Shape ba = batch_shape(a), bb = batch_shape(b);
  const T* A = c.in<T>(0);
  const T* B = c.in<T>(1);
  T* C = c.out<T>();
  const int64_t lda = ta ? m : k, ldb = tb ? k : n, sa = m * k, sb = k * n, sc = m * n;
  cublasHandle_t h = prepare(c, sizeof(T) == 4);
  if (reduce) {
    const int64_t nb = ba.numel();
    if (ta && !tb) {  // Σ_b A_bᵀ B_b = [A_0; A_1; ...]ᵀ · [B_0; B_1; ...]
      gemm<T>(c, h, true, false, m, n, k * nb, T(1), A, m, 0, B, n, 0, T(0), C, n, 0, 1);
      return;
    }
    if (nb == 0) {
      LETHE_CUDA_CHECK(cudaMemsetAsync(C, 0, c.out_meta->bytes(), stream(c)));
      return;
    }
    for (int64_t i = 0; i < nb; ++i)  // fixed order: deterministic accumulation
      gemm<T>(c, h, ta, tb, m, n, k, T(1), A + i * sa, lda, 0, B + i * sb, ldb, 0,
              i == 0 ? T(0) : T(1), C, n, 0, 1);
    return;
  }
  const Shape bo = broadcast_shapes(ba, bb, "matmul");
  const int64_t na = ba.numel(), nbb = bb.numel(), no = bo.numel();
  if (!ta && nbb == 1 && na == no) {  // B shared by every batch: fold the batch into M
    gemm<T>(c, h, false, tb, na * m, n, k, T(1), A, k, 0, B, ldb, 0, T(0), C, n, 0, 1);
    return;
  }
  if ((na == no || na == 1) && (nbb == no || nbb == 1)) {
    gemm<T>(c, h, ta, tb, m, n, k, T(1), A, lda, na == 1 ? 0 : sa, B, ldb, nbb == 1 ? 0 : sb, T(0),
            C, n, sc, no);
    return;
  }
  const auto ia = broadcast_index(ba, bo), ib = broadcast_index(bb, bo);
  for (int64_t i = 0; i < no; ++i)
    gemm<T>(c, h, ta, tb, m, n, k, T(1), A + ia[static_cast<size_t>(i)] * sa, lda, 0,
            B + ib[static_cast<size_t>(i)] * sb, ldb, 0, T(0), C + i * sc, n, 0, 1);
}

template <typename T>
void linear_t(const Op& op, const KernelCall& c) {
  const bool bias = op.attrs_as<LinearAttrs>().bias;
  const int64_t in_f = c.in_shape(1)[1], out_f = c.in_shape(1)[0];
  const int64_t rows = out_f == 0 ? 0 : c.out_meta->numel() / out_f;
  if (bias) add_bias_rows(c, c.inputs[2], c.output, rows, out_f);
  cublasHandle_t h = prepare(c, sizeof(T) == 4);
  gemm<T>(c, h, false, true, rows, out_f, in_f, T(1), c.in<T>(0), in_f, 0, c.in<T>(1), in_f, 0,
          bias ? T(1) : T(0), c.out<T>(), out_f, 0, 1);
}

}  // namespace

void matmul(const Op& op, const KernelCall& c) {
  if (c.out_meta->dtype == DType::f32) return matmul_t<float>(op, c);
  if (c.out_meta->dtype == DType::f64) return matmul_t<double>(op, c);
  throw Error("matmul: the CUDA kernel expects f32 or f64");
}

void linear(const Op& op, const KernelCall& c) {
  if (c.out_meta->dtype == DType::f32) return linear_t<float>(op, c);
  if (c.out_meta->dtype == DType::f64) return linear_t<double>(op, c);
  throw Error("linear: the CUDA kernel expects f32 or f64");
}

size_t gemm_workspace(const Op&, const std::vector<TensorMeta>&, const TensorMeta& out) {
  return lethe::detail::cuda_gemm_workspace_bytes(out.bytes());
}

}  // namespace lethe::cuda::detail
