#include "ops/gemm.h"

#include <cblas.h>

#include <algorithm>
#ifdef _OPENMP
#include <omp.h>
#endif

extern "C" void openblas_set_num_threads(int);

namespace lethe::detail {

namespace {
// k == 0 is a valid empty product: C = beta·C (BLAS implementations differ on it, so do it here).
template <typename T>
bool empty_product(int64_t m, int64_t n, int64_t k, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return true;
  if (k != 0) return false;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
  return true;
}

// OpenBLAS is run single-threaded, and a GEMM is parallelised here over blocks of C's columns (or
// rows, when C is tall) of a fixed size, each block one single-threaded call, the blocks shared out
// among the calling thread's OpenMP threads. Reason: the results must not depend on the number of
// threads (a step on two streams of one thread each gives bitwise the serial step's results on two
// threads). OpenBLAS's threaded driver blocks the inner dimension differently from its
// single-threaded one (on this machine's Zen cores a 48x432 by 432x512 product differed in 77 % of
// its elements between one and two threads), and even single-threaded it picks its kernels by the
// shape it is given; so the blocks here depend on the product's shape only, never on the threads.
void blas_single_threaded() {
  static const bool once = [] {
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
#endif
    openblas_set_num_threads(
        1);  // the pthread build; the OpenMP build also sets this thread's OpenMP count
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    return true;
  }();
  (void)once;
}

template <typename T, typename Call>
void blocked(bool ta, bool tb, int64_t m, int64_t n, const T* a, int64_t lda, const T* b,
             int64_t ldb, T* c, int64_t ldc, Call call) {
  blas_single_threaded();
  // Blocks of kBlock columns (rows), the last one shorter: their number depends on the shape only.
  constexpr int64_t kBlock = 256;
  int threads = 1;
#ifdef _OPENMP
  if (!omp_in_parallel()) threads = omp_get_max_threads();
#endif
  const bool by_rows = m > n;
  const int64_t len = by_rows ? m : n;
  const int64_t per = kBlock, blocks = (len + per - 1) / per;
  const auto block = [&](int64_t j) {
    const int64_t lo = j * per, w = std::min(len, lo + per) - lo;
    if (by_rows)  // rows lo.. of op(A) and C
      call(w, n, ta ? a + lo : a + lo * lda, b, c + lo * ldc);
    else  // columns lo.. of op(B) and C
      call(m, w, a, tb ? b + lo * ldb : b + lo, c + lo);
  };
  if (blocks <= 1 || threads <= 1) {
#ifdef _OPENMP
    // The OpenMP build of OpenBLAS takes its thread count from the caller's OpenMP count.
    if (threads > 1) omp_set_num_threads(1);
#endif
    for (int64_t j = 0; j < blocks; ++j) block(j);
#ifdef _OPENMP
    if (threads > 1) omp_set_num_threads(threads);
#endif
    return;
  }
#pragma omp parallel for schedule(static) \
    num_threads(static_cast <int>(std::min <int64_t>(threads, blocks)))
  for (int64_t j = 0; j < blocks; ++j) block(j);
}

}  // namespace

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (empty_product(m, n, k, beta, c, ldc)) return;
  blocked(ta, tb, m, n, a, lda, b, ldb, c, ldc,
          [&](int64_t mm, int64_t nn, const float* aa, const float* bb, float* cc) {
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, static_cast<blasint>(mm),
                        static_cast<blasint>(nn), static_cast<blasint>(k), alpha, aa,
                        static_cast<blasint>(std::max<int64_t>(lda, 1)), bb,
                        static_cast<blasint>(std::max<int64_t>(ldb, 1)), beta, cc,
                        static_cast<blasint>(std::max<int64_t>(ldc, 1)));
          });
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (empty_product(m, n, k, beta, c, ldc)) return;
  blocked(ta, tb, m, n, a, lda, b, ldb, c, ldc,
          [&](int64_t mm, int64_t nn, const double* aa, const double* bb, double* cc) {
            cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, static_cast<blasint>(mm),
                        static_cast<blasint>(nn), static_cast<blasint>(k), alpha, aa,
                        static_cast<blasint>(std::max<int64_t>(lda, 1)), bb,
                        static_cast<blasint>(std::max<int64_t>(ldb, 1)), beta, cc,
                        static_cast<blasint>(std::max<int64_t>(ldc, 1)));
          });
}

}  // namespace lethe::detail
