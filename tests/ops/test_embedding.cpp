// embedding: gathered rows (hand-computed), scattered gradient with repeated indices, f64 gradient
// check, out-of-range indices raised when the step runs, dtype errors.
#include <doctest/doctest.h>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

TEST_CASE("embedding: forward gathers rows (hand-computed)") {
  Session s;
  auto w = from_vector<double>({0, 1, 2, 3, 4, 5}, {3, 2});
  auto idx = from_vector<int64_t>({2, 0, 1, 1}, {2, 2});
  auto y = embedding(w, idx);
  CHECK(y.shape() == Shape{2, 2, 2});
  CHECK(y.dtype() == DType::f64);
  close(y.to_vector<double>(), {4, 5, 0, 1, 2, 3, 2, 3});
  auto y0 = embedding(w.to(DType::f32), from_vector<int64_t>({1}, {1}));
  close(y0.to_vector<double>(), {2, 3});
  CHECK(embedding(w, from_vector<int64_t>({}, {0})).shape() == Shape{0, 2});
}

TEST_CASE("embedding: gradient sums repeated rows, f64 gradcheck") {
  Session s;
  auto w = zeros({4, 2}, DType::f64).set_requires_grad(true);
  auto idx = from_vector<int64_t>({3, 1, 3, 3}, {4});
  auto coef = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2});
  (embedding(w, idx) * coef).sum().backward();
  // Row 3 collects positions 0, 2, 3; row 1 position 1; rows 0 and 2 nothing.
  close(w.grad().to_vector<double>(), {0, 0, 3, 4, 0, 0, 1 + 5 + 7, 2 + 6 + 8});

  auto ids = from_vector<int64_t>({0, 2, 2, 1, 0, 2}, {2, 3});
  grad_ok([&](const std::vector<Tensor>& v) { return embedding(v[0], ids); }, {rnd({3, 4})});
  grad_ok([](const std::vector<Tensor>& v) { return embedding(v[0], v[1]); },
          {rnd({5, 2}), from_vector<int64_t>({4, 4, 0}, {3})}, {true, false});
}

TEST_CASE("embedding: an out-of-range index names the index and the table size") {
  Session s;
  auto w = zeros({3, 2});
  throws_with(
      [&] {
        embedding(w, from_vector<int64_t>({0, 5}, {2})).to_vector<double>();
      },
      {"embedding", "index 5", "3 rows"});
  throws_with([&] { embedding(w, from_vector<int64_t>({-1}, {1})).to_vector<double>(); },
              {"embedding", "index -1", "3 rows"});
  throws_with(
      [&] {
        embedding(w, from_vector<float>({0, 1}, {2}));
      },
      {"embedding", "[3, 2]", "[2]", "i64"});
  throws_with([&] { embedding(zeros({6}), from_vector<int64_t>({0}, {1})); },
              {"embedding", "[6]", "[1]"});
}
