// Losses: cross_entropy (reductions, ignore_index, spatial dims, range checks) and mse_loss.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK_MESSAGE(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])), "element ", i, ": got ", got[i],
                  ", want ", want[i]);
}

void check_grad(const Fn& fn, const std::vector<Tensor>& in, std::vector<bool> which = {}) {
  auto r = autograd::gradcheck(fn, in, 1e-6, 1e-6, 1e-4, std::move(which));
  CHECK_MESSAGE(r.ok, r.message);
}

const double kL0 = 0.4076059644443806;  // -log_softmax([1, 2, 3])[2]
const double kL1 = 1.09861228866811;    // -log_softmax([1, 1, 1])[0] = log 3

}  // namespace

TEST_CASE("loss: cross_entropy reductions") {
  Session s;
  auto logits = from_vector<double>({1, 2, 3, 1, 1, 1}, {2, 3});
  auto target = from_vector<int64_t>({2, 0}, {2});
  check_close(cross_entropy(logits, target, "none").to_vector<double>(), {kL0, kL1});
  CHECK(cross_entropy(logits, target, "none").shape() == Shape{2});
  check_close(cross_entropy(logits, target, "sum").to_vector<double>(), {kL0 + kL1});
  check_close(cross_entropy(logits, target).to_vector<double>(), {(kL0 + kL1) / 2});
  CHECK(cross_entropy(logits, target).shape() == Shape{});
  auto f = from_vector<float>({1, 2, 3, 1, 1, 1}, {2, 3});
  CHECK(cross_entropy(f, target).item<float>() == doctest::Approx((kL0 + kL1) / 2));
  CHECK(cross_entropy(f, target).dtype() == DType::f32);
}

TEST_CASE("loss: cross_entropy ignore_index (mean over the others, as PyTorch)") {
  Session s;
  auto logits = from_vector<double>({1, 2, 3, 1, 1, 1, 5, 0, 0}, {3, 3});
  auto target = from_vector<int64_t>({2, -100, 0}, {3});
  const double l2 = -(5 - std::log(std::exp(5.0) + 2));
  check_close(cross_entropy(logits, target, "none").to_vector<double>(), {kL0, 0, l2});
  check_close(cross_entropy(logits, target, "sum").to_vector<double>(), {kL0 + l2});
  check_close(cross_entropy(logits, target, "mean").to_vector<double>(), {(kL0 + l2) / 2});
  // a custom ignore_index
  auto t2 = from_vector<int64_t>({2, 1, 1}, {3});
  check_close(cross_entropy(logits, t2, "mean", 1).to_vector<double>(), {kL0});
  // all ignored: 0/0, as PyTorch
  auto t3 = from_vector<int64_t>({-100, -100, -100}, {3});
  CHECK(std::isnan(cross_entropy(logits, t3).item<double>()));
  // the gradient is zero at ignored rows and divided by the count of the others
  auto w = from_vector<double>({1, 2, 3, 1, 1, 1, 5, 0, 0}, {3, 3}).set_requires_grad(true);
  cross_entropy(w, target).backward();
  auto g = w.grad().to_vector<double>();
  CHECK(g[3] == 0);
  CHECK(g[4] == 0);
  CHECK(g[5] == 0);
  check_close({g[0], g[1], g[2]}, {0.09003057317038043 / 2, 0.24472847105479759 / 2, (0.6652409557748217 - 1) / 2});
}

TEST_CASE("loss: cross_entropy with spatial dims [N, C, d]") {
  Session s;
  // N = 1, C = 2, d = 2: position 0 has logits (0, 2), position 1 has (1, -1)
  auto logits = from_vector<double>({0, 1, 2, -1}, {1, 2, 2});
  auto target = from_vector<int64_t>({1, 0}, {1, 2});
  const double l = 0.1269280110429727;  // -log_softmax([0, 2])[1] = -log_softmax([1, -1])[0]
  check_close(cross_entropy(logits, target, "none").to_vector<double>(), {l, l});
  CHECK(cross_entropy(logits, target, "none").shape() == Shape{1, 2});
  check_close(cross_entropy(logits, target).to_vector<double>(), {l});
  // equals the [N*d, C] form after moving C last
  Session s2({.seed = 3});
  auto x = randn({2, 4, 3, 2}, DType::f64);
  auto t = from_vector<int64_t>({0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 1, 1}, {2, 3, 2});
  auto flat = cross_entropy(permute(x, {0, 2, 3, 1}).reshape({-1, 4}), t.reshape({-1}), "none");
  check_close(cross_entropy(x, t, "none").reshape({-1}).to_vector<double>(), flat.to_vector<double>(), 1e-14);
}

TEST_CASE("loss: cross_entropy errors name the index, C and the shapes") {
  Session s;
  auto logits = zeros({2, 3});
  CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector<int64_t>({0, 3}, {2})).item(),
                       doctest::Contains("cross_entropy: target 3 at position 1 is out of range for 3 classes"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector<int64_t>({-1, 0}, {2})).item(),
                       doctest::Contains("target -1 at position 0 is out of range for 3 classes"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector<int64_t>({0, 1, 2}, {3})),
                       doctest::Contains("cross_entropy: logits [2, 3] and target [3] do not match (expected target [2])"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({2})), doctest::Contains("cross_entropy: target must hold i64"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({3}), from_vector<int64_t>({0}, {1})),
                       doctest::Contains("cross_entropy: logits must be [N, C] or [N, C, d...], got [3]"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector<int64_t>({0, 1}, {2}), "avg"),
                       doctest::Contains("cross_entropy: reduction must be"), Error);
}

TEST_CASE("loss: cross_entropy gradients (f64 gradcheck)") {
  Session s({.seed = 12});
  auto x = randn({4, 5}, DType::f64);
  auto t = from_vector<int64_t>({0, 4, 2, -100}, {4});
  for (const char* red : {"mean", "sum", "none"}) {
    CAPTURE(red);
    check_grad([red](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], red); }, {x, t}, {true, false});
  }
  auto x3 = randn({2, 3, 2, 2}, DType::f64);
  auto t3 = from_vector<int64_t>({0, 1, 2, 1, 2, -100, 0, 0}, {2, 2, 2});
  for (const char* red : {"mean", "sum", "none"}) {
    CAPTURE(red);
    check_grad([red](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], red); }, {x3, t3}, {true, false});
  }
}

TEST_CASE("loss: mse_loss") {
  Session s;
  auto a = from_vector<double>({1, 2, 3, 4}, {2, 2});
  auto b = from_vector<double>({0, 2, 5, 1}, {2, 2});
  check_close(mse_loss(a, b, "none").to_vector<double>(), {1, 0, 4, 9});
  check_close(mse_loss(a, b, "sum").to_vector<double>(), {14});
  check_close(mse_loss(a, b).to_vector<double>(), {3.5});
  check_grad([](const std::vector<Tensor>& v) { return mse_loss(v[0], v[1]); },
             {randn({2, 3}, DType::f64), randn({2, 3}, DType::f64)});
  check_grad([](const std::vector<Tensor>& v) { return mse_loss(v[0], v[1], "none"); },
             {randn({3}, DType::f64), randn({3}, DType::f64)});
  CHECK_THROWS_WITH_AS(mse_loss(a, zeros({4}, DType::f64)),
                       doctest::Contains("mse_loss: input [2, 2] and target [4] shapes differ"), Error);
  CHECK_THROWS_WITH_AS(mse_loss(a, zeros({2, 2})), doctest::Contains("mse_loss: input dtype f64 and target dtype f32"),
                       Error);
  CHECK_THROWS_WITH_AS(mse_loss(a, b, "max"), doctest::Contains("mse_loss: reduction must be"), Error);
}
