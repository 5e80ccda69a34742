#include <doctest/doctest.h>

#include "lethe.h"

using namespace lethe;

TEST_CASE("gradcheck passes on a correct gradient and names the worst element of a wrong one") {
  Session s({.seed = 5});
  auto a = randn({3, 4}, DType::f64);
  auto b = randn({4}, DType::f64);
  auto ok = autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[1] + in[0]; },
                                {a, b});
  CHECK_MESSAGE(ok.ok, ok.message);
  // A function whose recorded gradient is wrong: detach hides half of the dependency.
  auto bad = autograd::gradcheck(
      [](const std::vector<Tensor>& in) { return in[0] * in[0].detach(); }, {a});
  CHECK_FALSE(bad.ok);
  CHECK(bad.message.find("input 0 element") != std::string::npos);
  CHECK(bad.worst_input == 0);
}

TEST_CASE("gradcheck rejects f32 inputs with a clear message") {
  Session s;
  CHECK_THROWS_WITH_AS(
      autograd::gradcheck([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {ones({2})}),
      doctest::Contains("must be f64"), Error);
}
