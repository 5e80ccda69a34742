// backward() twice through the same step: refused (PyTorch's "backward through the graph a second
// time"), unless the earlier call asked to retain it, in which case gradients accumulate.
#include <doctest/doctest.h>

#include "lethe.h"

using namespace lethe;

TEST_CASE("backward: a second backward() through the same step is refused and changes nothing") {
  Session s({.seed = 1});
  Tensor w = randn({3, 2}).set_requires_grad(true);
  Tensor x = randn({4, 3});
  Tensor loss = matmul(x, w).relu().sum();
  loss.backward();
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("a second time"), Error);
  const std::vector<float> once = w.grad().to_vector<float>();
  // The same value computed in one backward.
  Session s2({.seed = 1});
  Tensor w2 = randn({3, 2}).set_requires_grad(true);
  Tensor x2 = randn({4, 3});
  matmul(x2, w2).relu().sum().backward();
  CHECK(once == w2.grad().to_vector<float>());
}

TEST_CASE("backward: retain_graph makes a second backward() accumulate, as in PyTorch") {
  Session s({.seed = 2});
  Tensor w = randn({3, 2}).set_requires_grad(true);
  Tensor x = randn({4, 3});
  Tensor h = matmul(x, w);
  Tensor a = h.relu().sum(), b = (h * h).sum();
  a.backward(Tensor(), /*retain_graph=*/true);
  b.backward();  // shares h's matmul with a: allowed because a retained it
  const std::vector<float> both = w.grad().to_vector<float>();
  Session s2({.seed = 2});
  Tensor w2 = randn({3, 2}).set_requires_grad(true);
  Tensor x2 = randn({4, 3});
  Tensor h2 = matmul(x2, w2);
  (h2.relu().sum() + (h2 * h2).sum()).backward();
  const std::vector<float> sum = w2.grad().to_vector<float>();
  REQUIRE(both.size() == sum.size());
  for (size_t i = 0; i < both.size(); ++i) CHECK(both[i] == doctest::Approx(sum[i]).epsilon(1e-5));
}

TEST_CASE("backward: on a value of a finished step, the error says the step boundary detached it") {
  Session s({.seed = 3});
  Tensor w = randn({2}).set_requires_grad(true);
  Tensor loss = (w * w).sum();
  s.flush();  // ends the step (as optimizer.step() does)
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("step boundary detaches"), Error);
}
