// GEMM results do not depend on the number of threads: a step on streams of one thread each gives
// bitwise the serial step's results on all of them (ops/gemm.cpp runs OpenBLAS single-threaded and
// splits C into blocks; OpenBLAS's own threaded driver blocks the inner dimension differently from
// its single-threaded one, which changed 77 % of a 48x432 by 432x512 product between 1 and 2
// threads).
#include <doctest/doctest.h>

#include <tuple>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

std::vector<float> product(int threads, int64_t m, int64_t k, int64_t n, bool transposed) {
  Session s({.seed = 9, .num_threads = threads});
  Tensor a = randn({m, k}), b = transposed ? randn({n, k}) : randn({k, n});
  return matmul(a, transposed ? b.transpose(0, 1) : b).to_vector<float>();
}

}  // namespace

TEST_CASE("gemm: the same bits on 1, 2 and 3 threads, whatever the inner dimension") {
  for (auto [m, k, n] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{48, 432, 512},
                                                                           {48, 432, 64},
                                                                           {96, 400, 512},
                                                                           {600, 432, 40},
                                                                           {24, 1000, 1024},
                                                                           {7, 3, 5}})
    for (bool transposed : {false, true}) {
      CAPTURE(m);
      CAPTURE(k);
      CAPTURE(n);
      CAPTURE(transposed);
      const std::vector<float> one = product(1, m, k, n, transposed);
      CHECK(product(2, m, k, n, transposed) == one);
      CHECK(product(3, m, k, n, transposed) == one);
    }
}
