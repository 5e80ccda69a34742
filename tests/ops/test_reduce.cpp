// Reductions: sum/mean over axes (keepdim), max/argmax along an axis.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

void check_close(const std::vector<double>& got, const std::vector<double>& want,
                 double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK_MESSAGE(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])), "element ", i,
                  ": got ", got[i], ", want ", want[i]);
}

void check_grad(const Fn& fn, const std::vector<Tensor>& in) {
  auto r = autograd::gradcheck(fn, in);
  CHECK_MESSAGE(r.ok, r.message);
}

// x[i, j, k] = i*100 + j*10 + k on shape [2, 3, 4]
Tensor iota3() {
  std::vector<double> v;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) v.push_back(i * 100 + j * 10 + k);
  return from_vector(v, {2, 3, 4});
}

}  // namespace

TEST_CASE("reduce: sum over axes, keepdim") {
  Session s;
  auto x = iota3();
  CHECK(sum(x).shape() == Shape{});
  check_close(sum(x).to_vector<double>(), {100 * 12 + 10 * 8 * 3 / 1 + 6 * 6});  // 1200 + 240 + 36
  CHECK(sum(x, {}, true).shape() == Shape{1, 1, 1});
  // axis 0: i summed
  check_close(sum(x, {0}).to_vector<double>(),
              {100, 102, 104, 106, 120, 122, 124, 126, 140, 142, 144, 146});
  // axis 1 (middle): j summed -> 3*100i + 30 + 3k
  check_close(sum(x, {1}).to_vector<double>(), {30, 33, 36, 39, 330, 333, 336, 339});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1, 4});
  // last axis: 4*(100i + 10j) + 6
  check_close(sum(x, {-1}).to_vector<double>(), {6, 46, 86, 406, 446, 486});
  // two axes, non-adjacent (generic path): sum over i and k -> 4*100 + 2*4*10j + 2*6
  check_close(sum(x, {0, 2}).to_vector<double>(), {412, 492, 572});
  CHECK(sum(x, {2, 0}, true).shape() == Shape{1, 3, 1});
  // adjacent leading axes
  check_close(sum(x, {0, 1}).to_vector<double>(), {360, 366, 372, 378});
  // method form and i64
  CHECK(x.sum({1, 2}).to_vector<double>() == std::vector<double>{138, 1338});
  CHECK(from_vector<int64_t>({1, 2, 3, 4}, {2, 2}).sum({0}).to_vector<int64_t>() ==
        std::vector<int64_t>{4, 6});
  // f32
  CHECK(from_vector<float>({1, 2, 3, 4}, {2, 2}).sum().item<float>() == 10.f);
}

TEST_CASE("reduce: mean over axes, keepdim") {
  Session s;
  auto x = iota3();
  check_close(mean(x).to_vector<double>(), {(1200.0 + 240 + 36) / 24});
  check_close(mean(x, {1}).to_vector<double>(), {10, 11, 12, 13, 110, 111, 112, 113});
  check_close(mean(x, {0, 2}, true).to_vector<double>(), {51.5, 61.5, 71.5});
  CHECK(mean(x, {0, 2}, true).shape() == Shape{1, 3, 1});
  CHECK_THROWS_WITH_AS(mean(from_vector<int64_t>({1, 2}, {2})),
                       doctest::Contains("mean: expected a floating-point"), Error);
}

TEST_CASE("reduce: axis errors") {
  Session s;
  auto x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(sum(x, {2}),
                       doctest::Contains("sum: axis 2 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(mean(x, {-3}),
                       doctest::Contains("mean: axis -3 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(sum(x, {1, -1}), doctest::Contains("sum: axis 1 is repeated"), Error);
  CHECK_THROWS_WITH_AS(max(x, 5), doctest::Contains("max: axis 5 is out of range for shape [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(argmax(x, -4), doctest::Contains("argmax: axis -4 is out of range"), Error);
}

TEST_CASE("reduce: large sums are deterministic and exact on integers") {
  Session s;
  const int64_t n = 1 << 18;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<double>((i * 37) % 11);
  double want = 0;
  for (double e : v) want += e;
  auto x = from_vector(v, {n});
  CHECK(sum(x).item<double>() == want);
  auto m = from_vector(v, {64, n / 64});
  auto rows = sum(m, {1}).to_vector<double>();
  auto cols = sum(m, {0}).to_vector<double>();
  double r0 = 0, c0 = 0;
  for (int64_t j = 0; j < n / 64; ++j) r0 += v[static_cast<size_t>(j)];
  for (int64_t i = 0; i < 64; ++i) c0 += v[static_cast<size_t>(i * (n / 64))];
  CHECK(rows[0] == r0);
  CHECK(cols[0] == c0);
  Session s2({.seed = 5});
  auto r = randn({1000, 300});
  CHECK(r.sum().item<float>() == r.sum().item<float>());
  CHECK(r.mean({0}).to_vector<float>() == r.mean({0}).to_vector<float>());
}

TEST_CASE("reduce: sum/mean gradients (f64 gradcheck)") {
  Session s({.seed = 2});
  auto x = randn({2, 3, 4}, DType::f64);
  for (bool keep : {false, true}) {
    CAPTURE(keep);
    for (const std::vector<int>& axes :
         std::vector<std::vector<int>>{{}, {0}, {1}, {2}, {0, 2}, {1, 2}}) {
      check_grad([&](const std::vector<Tensor>& v) { return sum(v[0], axes, keep); }, {x});
      check_grad([&](const std::vector<Tensor>& v) { return mean(v[0], axes, keep); }, {x});
    }
  }
}

TEST_CASE("reduce: max and argmax") {
  Session s;
  auto x = from_vector<double>({1, 5, 3, 7, 2, 7}, {2, 3});
  check_close(max(x, 1).to_vector<double>(), {5, 7});
  check_close(max(x, 0).to_vector<double>(), {7, 5, 7});
  CHECK(max(x, 1, true).shape() == Shape{2, 1});
  CHECK(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0});  // ties: first index
  CHECK(argmax(x, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});
  CHECK(argmax(x, -1, true).shape() == Shape{2, 1});
  CHECK(argmax(x, 1).dtype() == DType::i64);
  // middle axis of a 3-d tensor
  auto y = from_vector<float>({0, 9, 4, 1, 8, 2, /**/ 3, 3, 5, 6, 1, 0}, {2, 3, 2});
  CHECK(y.max(1).to_vector<float>() == std::vector<float>{8, 9, 5, 6});
  CHECK(y.argmax(1).to_vector<int64_t>() == std::vector<int64_t>{2, 0, 1, 1});
  // i64 input
  CHECK(argmax(from_vector<int64_t>({3, 9, 2}, {3}), 0).to_vector<int64_t>() ==
        std::vector<int64_t>{1});
  // NaN propagates
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto z = from_vector<double>({1, nan, 3}, {3});
  CHECK(std::isnan(max(z, 0).item<double>()));
  CHECK(argmax(z, 0).item<int64_t>() == 1);
}

TEST_CASE("reduce: max gradient goes to the first argmax") {
  Session s({.seed = 4});
  auto x = randn({3, 4, 2}, DType::f64);
  for (int axis : {0, 1, 2, -1})
    for (bool keep : {false, true}) {
      CAPTURE(axis);
      check_grad([&](const std::vector<Tensor>& v) { return max(v[0], axis, keep); }, {x});
    }
  auto w = from_vector<double>({2, 5, 5, 1}, {4}).set_requires_grad(true);
  max(w, 0).backward();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{0, 1, 0, 0});
}
