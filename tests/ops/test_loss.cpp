// Losses: cross_entropy (reductions, ignore_index, spatial dims, range checks) and mse_loss.
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
  check_close({g[0], g[1], g[2]},
              {0.09003057317038043 / 2, 0.24472847105479759 / 2, (0.6652409557748217 - 1) / 2});
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
  check_close(cross_entropy(x, t, "none").reshape({-1}).to_vector<double>(),
              flat.to_vector<double>(), 1e-14);
}

TEST_CASE("loss: cross_entropy errors name the index, C and the shapes") {
  Session s;
  auto logits = zeros({2, 3});
  CHECK_THROWS_WITH_AS(
      cross_entropy(logits, from_vector<int64_t>({0, 3}, {2})).item(),
      doctest::Contains("cross_entropy: target 3 at position 1 is out of range for 3 classes"),
      Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, from_vector<int64_t>({-1, 0}, {2})).item(),
                       doctest::Contains("target -1 at position 0 is out of range for 3 classes"),
                       Error);
  CHECK_THROWS_WITH_AS(
      cross_entropy(logits, from_vector<int64_t>({0, 1, 2}, {3})),
      doctest::Contains(
          "cross_entropy: logits [2, 3] and target [3] do not match (expected target [2])"),
      Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({2})),
                       doctest::Contains("cross_entropy: target must hold i64"), Error);
  CHECK_THROWS_WITH_AS(
      cross_entropy(zeros({3}), from_vector<int64_t>({0}, {1})),
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
    check_grad([red](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], red); },
               {x, t}, {true, false});
  }
  auto x3 = randn({2, 3, 2, 2}, DType::f64);
  auto t3 = from_vector<int64_t>({0, 1, 2, 1, 2, -100, 0, 0}, {2, 2, 2});
  for (const char* red : {"mean", "sum", "none"}) {
    CAPTURE(red);
    check_grad([red](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], red); },
               {x3, t3}, {true, false});
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
                       doctest::Contains("mse_loss: input [2, 2] and target [4] shapes differ"),
                       Error);
  CHECK_THROWS_WITH_AS(mse_loss(a, zeros({2, 2})),
                       doctest::Contains("mse_loss: input dtype f64 and target dtype f32"), Error);
  CHECK_THROWS_WITH_AS(mse_loss(a, b, "max"), doctest::Contains("mse_loss: reduction must be"),
                       Error);
}

// Expected values below were computed with PyTorch 1.13 (torch.nn.functional, float64).

TEST_CASE("loss: cross_entropy with class weights and label_smoothing (as PyTorch)") {
  Session s;
  auto logits = from_vector<double>({1, 2, 3, 1, 1, 1, 5, 0, 0, 0.5, -1, 2}, {4, 3});
  auto target = from_vector<int64_t>({2, -100, 0, 1}, {4});
  auto w = from_vector<double>({0.5, 2.0, 1.5}, {3});
  check_close(cross_entropy(logits, target, "mean", -100, w).to_vector<double>(),
              {1.7751811227104024});
  check_close(cross_entropy(logits, target, "none", -100, w).to_vector<double>(),
              {0.61140895, 0, 0.00669295, 6.48262259}, 1e-8);
  check_close(cross_entropy(logits, target, "mean", -100, {}, 0.2).to_vector<double>(),
              {1.4096566098298844});
  check_close(cross_entropy(logits, target, "sum", -100, {}, 0.2).to_vector<double>(),
              {4.228969829489653});
  check_close(cross_entropy(logits, target, "sum", -100, w, 0.2).to_vector<double>(),
              {7.673860436092751});
  auto x =
      from_vector<double>({1, 2, 3, 1, 1, 1, 5, 0, 0, 0.5, -1, 2}, {4, 3}).set_requires_grad(true);
  auto l = cross_entropy(x, target, "mean", -100, w, 0.2);
  check_close(l.to_vector<double>(), {1.9184651090231877});
  l.backward();
  check_close(x.grad().to_vector<double>(),
              {0.024677876829140, 0.056400439386759, -0.081078316215899, 0, 0, 0, 0.056117215173711,
               -0.032225274253522, -0.023891940920189, 0.073468849665350, -0.415080799140346,
               0.341611949474995},
              1e-12);
  check_grad(
      [&](const std::vector<Tensor>& v) {
        return cross_entropy(v[0], target, "sum", -100, w, 0.3);
      },
      {from_vector<double>({1, 2, 3, 1, 1, 1, 5, 0, 0, 0.5, -1, 2}, {4, 3})
           .set_requires_grad(true)});
  CHECK_THROWS_WITH_AS(
      cross_entropy(logits, target, "mean", -100, from_vector<double>({1, 2}, {2})),
      "cross_entropy: weight must be [C] = [3] for input [4, 3], got [2]", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, target, "mean", -100, {}, 1.5),
                       "cross_entropy: label_smoothing must be in [0, 1], got 1.5", Error);
}

TEST_CASE("loss: nll_loss on log-probabilities (as PyTorch)") {
  Session s;
  auto x =
      from_vector<double>({0.2, -1.3, 0.7, 1.1, 0.4, -0.6, -0.8, 0.0, 2.2, 0.3, 0.3, -1.0}, {4, 3});
  auto target = from_vector<int64_t>({1, 0, -100, 2}, {4});
  auto w = from_vector<double>({0.5, 2.0, 1.5}, {3});
  auto lp = from_vector(log_softmax(x, 1).to_vector<double>(), {4, 3}).set_requires_grad(true);
  check_close(nll_loss(lp, target, {}, "none").to_vector<double>(),
              {2.554956919641991, 0.5183584771574499, 0.0, 2.120894537305632});
  check_close(nll_loss(lp, target, {}, "sum").to_vector<double>(), {5.194209934105072});
  auto l = nll_loss(lp, target, w);
  check_close(l.to_vector<double>(), {2.1376087209552885});
  l.backward();
  check_close(lp.grad().to_vector<double>(), {0, -0.5, 0, -0.125, 0, 0, 0, 0, 0, 0, 0, -0.375});
  // log_softmax + nll_loss is cross_entropy
  check_close(nll_loss(log_softmax(x, 1), target, w, "sum").to_vector<double>(),
              cross_entropy(x, target, "sum", -100, w).to_vector<double>(), 1e-12);
  CHECK_THROWS_WITH_AS(
      nll_loss(lp, from_vector<int64_t>({1, 3, 0, 0}, {4})).item<double>(),
      "nll_loss: target 3 at position 1 is out of range for 3 classes (expected 0 <= target < 3 "
      "or ignore_index -100)",
      Error);
  CHECK_THROWS_WITH_AS(nll_loss(lp, from_vector<int64_t>({1, 0}, {2})),
                       "nll_loss: input [4, 3] and target [2] do not match (expected target [4])",
                       Error);
}

TEST_CASE("loss: binary_cross_entropy_with_logits (stable, weight, pos_weight, as PyTorch)") {
  Session s;
  auto z = from_vector<double>({0.5, -2.0, 30.0, -40.0, 1.0, 0.0}, {2, 3});
  auto y = from_vector<double>({1, 0, 1, 0, 1, 0.3}, {2, 3});
  check_close(binary_cross_entropy_with_logits(z, y, {}, {}, "none").to_vector<double>(),
              {0.4740769841801067, 0.1269280110429726, 9.348077867343381e-14, 0.0,
               0.31326168751822286, 0.6931471805599453},
              1e-10);
  auto pw = from_vector<double>({2.0, 0.5, 1.0}, {3});
  auto ww = from_vector<double>({1.0, 3.0}, {2, 1});
  auto zg = from_vector<double>({0.5, -2.0, 30.0, -40.0, 1.0, 0.0}, {2, 3}).set_requires_grad(true);
  auto l = binary_cross_entropy_with_logits(zg, y, ww, pw);
  check_close(l.to_vector<double>(), {0.6040693420600749});
  l.backward();
  check_close(zg.grad().to_vector<double>(),
              {-0.1258468895993818, 0.019867153670352924, -1.5580129778906365e-14,
               2.1241771276457944e-18, -0.06723535534249878, 0.10000000000000002},
              1e-10);
  check_grad(
      [&](const std::vector<Tensor>& v) {
        return binary_cross_entropy_with_logits(v[0], y, ww, pw, "sum");
      },
      {from_vector<double>({0.5, -2.0, 3.0, -4.0, 1.0, 0.1}, {2, 3}).set_requires_grad(true)});
  CHECK_THROWS_WITH_AS(
      binary_cross_entropy_with_logits(z, from_vector<double>({1, 0, 1}, {3})),
      "binary_cross_entropy_with_logits: input [2, 3] and target [3] shapes differ", Error);
}

TEST_CASE("loss: huber_loss and smooth_l1_loss (as PyTorch, exact gradients)") {
  Session s;
  auto b = from_vector<double>({0.0, 1.0, -1.0, -0.5, 0.9, 0.4}, {6});
  auto a = from_vector<double>({0.0, 0.3, -1.5, 2.0, 0.9, -0.2}, {6}).set_requires_grad(true);
  check_close(huber_loss(a, b, "none", 0.8).to_vector<double>(),
              {0.0, 0.245, 0.125, 1.68, 0.0, 0.18});
  huber_loss(a, b, "sum", 0.8).backward();
  check_close(a.grad().to_vector<double>(), {0.0, -0.7, -0.5, 0.8, 0.0, -0.6});
  auto a2 = from_vector<double>({0.0, 0.3, -1.5, 2.0, 0.9, -0.2}, {6}).set_requires_grad(true);
  auto l = smooth_l1_loss(a2, b, "mean", 0.5);
  check_close(l.to_vector<double>(), {0.5499999999999999});
  l.backward();
  const double g = 1.0 / 6;
  check_close(a2.grad().to_vector<double>(), {0.0, -g, -g, g, 0.0, -g});
  check_close(smooth_l1_loss(a2, b, "none", 0.0).to_vector<double>(),
              {0.0, 0.7, 0.5, 2.5, 0.0, 0.6});
  CHECK_THROWS_WITH_AS(huber_loss(a, b, "mean", 0.0), "huber_loss: delta must be positive, got 0",
                       Error);
  CHECK_THROWS_WITH_AS(smooth_l1_loss(a, from_vector<double>({1}, {1})),
                       "smooth_l1_loss: input [6] and target [1] shapes differ", Error);
}
