// softmax and log_softmax along an axis: values, stability, gradients.
#include <doctest/doctest.h>

#include <cmath>
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

}  // namespace

TEST_CASE("softmax: last axis and inner axis values") {
  Session s;
  auto x = from_vector<double>({1, 2, 3, 1, 1, 1}, {2, 3});
  check_close(softmax(x).to_vector<double>(), {0.09003057317038043, 0.24472847105479759,
                                               0.6652409557748217, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  check_close(log_softmax(x, 1).to_vector<double>(),
              {-2.4076059644443806, -1.4076059644443806, -0.4076059644443806, -1.09861228866811,
               -1.09861228866811, -1.09861228866811});
  // axis 0 of [[1, 2], [3, 5]]: columns normalised
  auto y = from_vector<double>({1, 2, 3, 5}, {2, 2});
  check_close(softmax(y, 0).to_vector<double>(),
              {0.11920292202211753, 0.04742587317756678, 0.8807970779778823, 0.9525741268224333});
  check_close(log_softmax(y, 0).to_vector<double>(),
              {std::log(0.11920292202211753), std::log(0.04742587317756678),
               std::log(0.8807970779778823), std::log(0.9525741268224333)});
  // f32, rows sum to one
  auto z = softmax(randn({5, 7}), -1).sum({1}).to_vector<float>();
  for (float v : z) CHECK(v == doctest::Approx(1.0f).epsilon(1e-6));
}

TEST_CASE("softmax: numerically stable for large logits") {
  Session s;
  auto x = from_vector<float>({1000, 0, -1000, 1000}, {2, 2});
  CHECK(softmax(x).to_vector<float>() == std::vector<float>{1, 0, 0, 1});
  CHECK(log_softmax(x).to_vector<float>() == std::vector<float>{0, -1000, -2000, 0});
  auto y = from_vector<double>({1000, 0}, {2, 1});
  check_close(softmax(y, 0).to_vector<double>(), {1, 0});
}

TEST_CASE("softmax: errors") {
  Session s;
  auto x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(
      softmax(x, 2), doctest::Contains("softmax: axis 2 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(log_softmax(x, -3),
                       doctest::Contains("log_softmax: axis -3 is out of range"), Error);
  CHECK_THROWS_WITH_AS(softmax(from_vector<int64_t>({1, 2}, {2})),
                       doctest::Contains("softmax: expected a floating-point tensor, got i64[2]"),
                       Error);
}

TEST_CASE("softmax: gradients along every axis (f64 gradcheck)") {
  Session s({.seed = 6});
  auto x = randn({2, 3, 4}, DType::f64);
  for (int axis : {0, 1, 2, -1}) {
    CAPTURE(axis);
    check_grad([axis](const std::vector<Tensor>& v) { return softmax(v[0], axis); }, {x});
    check_grad([axis](const std::vector<Tensor>& v) { return log_softmax(v[0], axis); }, {x});
  }
}

TEST_CASE("softmax: large inner-axis softmax is deterministic and normalised") {
  Session s({.seed = 9});
  auto x = randn({8, 50, 300});
  auto a = softmax(x, 1).to_vector<float>();
  auto b = softmax(x, 1).to_vector<float>();
  CHECK(a == b);
  auto sums = softmax(x, 1).sum({1}).to_vector<float>();
  for (float v : sums) CHECK(v == doctest::Approx(1.0f).epsilon(1e-5));
}
