// Gradient clipping: closed-form gradients (loss = sum(c·p) has gradient c), clipped as
// torch.nn.utils.clip_grad_norm_ / clip_grad_value_ do, and applied by the optimizer's step.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "lethe.h"
#include "optim/optim.h"

using namespace lethe;

namespace {

struct Params {
  Tensor a = zeros({2}), b = zeros({2});
  Params() {
    a.set_requires_grad(true);
    b.set_requires_grad(true);
  }
  // Gradients: a -> {3, 4}, b -> {0, 12} (per-parameter norms 5 and 12, total 13).
  Tensor loss() const {
    return (from_vector<float>({3, 4}) * a).sum() + (from_vector<float>({0, 12}) * b).sum();
  }
};

}  // namespace

TEST_CASE(
    "clip_grad_norm_: scales by max_norm / (total + 1e-6) when the norm is larger, returns the "
    "norm") {
  Session s({.seed = 1});
  Params p;
  optim::SGD opt({p.a, p.b}, optim::SGDOptions(1.0));
  p.loss().backward();
  Tensor norm = optim::clip_grad_norm_({p.a, p.b}, 6.5);
  Tensor ga = p.a.grad(), gb = p.b.grad();
  opt.step();
  CHECK(norm.item<float>() == 13.0f);
  // The op's arithmetic, in f32: coef = 6.5 / (13 + 1e-6), then each gradient times coef.
  const float coef = 6.5f / (13.0f + static_cast<float>(1e-6));
  CHECK(ga.to_vector<float>() == std::vector<float>{3 * coef, 4 * coef});
  CHECK(gb.to_vector<float>() == std::vector<float>{0 * coef, 12 * coef});
  // SGD with lr 1 from 0: the parameters are minus the clipped gradients.
  CHECK(p.a.to_vector<float>() == std::vector<float>{-3 * coef, -4 * coef});
}

TEST_CASE("clip_grad_norm_: a norm within max_norm leaves the gradients bitwise as they were") {
  Session s({.seed = 1});
  Params p;
  p.loss().backward();
  Tensor norm = optim::clip_grad_norm_({p.a, p.b}, 100.0);
  CHECK(p.a.grad().to_vector<float>() == std::vector<float>{3, 4});
  CHECK(p.b.grad().to_vector<float>() == std::vector<float>{0, 12});
  CHECK(norm.item<float>() == 13.0f);
}

TEST_CASE("clip_grad_value_: clamps exactly into [-c, c], NaN stays NaN") {
  Session s({.seed = 1});
  Tensor a = zeros({5});
  a.set_requires_grad(true);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  (from_vector<float>({-7.0f, -0.3f, 0.25f, 9.0f, nan}) * a).sum().backward();
  optim::clip_grad_value_({a}, 0.3);
  const std::vector<float> g = a.grad().to_vector<float>();
  CHECK(g[0] == -0.3f);
  CHECK(g[1] == -0.3f);
  CHECK(g[2] == 0.25f);
  CHECK(g[3] == 0.3f);
  CHECK(std::isnan(g[4]));
}

TEST_CASE("clip_grad: bad arguments and missing gradients are named") {
  Session s({.seed = 1});
  Params p;
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({p.a}, 1.0),
                       doctest::Contains("no parameter has a gradient"), Error);
  p.loss().backward();
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({p.a}, 1.0, 1.0),
                       doctest::Contains("only norm_type 2"), Error);
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({p.a}, -1.0),
                       doctest::Contains("max_norm must be finite and >= 0"), Error);
  CHECK_THROWS_WITH_AS(optim::clip_grad_value_({p.a}, -1.0),
                       doctest::Contains("clip_value must be finite and >= 0"), Error);
  CHECK_THROWS_WITH_AS(p.a.set_grad(zeros({3})),
                       doctest::Contains("set_grad(): the gradient is f32[3]"), Error);
}
