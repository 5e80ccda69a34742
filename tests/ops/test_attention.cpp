// scaled_dot_product_attention: a hand-computed softmax, the causal mask (also with Lq != Lk), the
// composition against matmul/softmax, f64 gradient checks and errors.
#include <doctest/doctest.h>

#include <cmath>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

TEST_CASE("attention: hand-computed single query") {
  Session s;
  auto q = from_vector<double>({1, 0}, {1, 2});
  auto k = from_vector<double>({1, 0, 0, 1}, {2, 2});
  auto v = from_vector<double>({1, 2, 3, 4}, {2, 2});
  const double e = std::exp(1.0 / std::sqrt(2.0)), p0 = e / (e + 1), p1 = 1 / (e + 1);
  auto y = scaled_dot_product_attention(q, k, v);
  CHECK(y.shape() == Shape{1, 2});
  close(y.to_vector<double>(), {p0 * 1 + p1 * 3, p0 * 2 + p1 * 4}, 1e-12);
}

TEST_CASE("attention: causal mask, the composition, Lq != Lk") {
  Session s;
  auto q = rnd({2, 3, 4}), k = rnd({2, 3, 4}), v = rnd({2, 3, 5});
  auto yc = scaled_dot_product_attention(q, k, v, true).to_vector<double>();
  auto vv = v.to_vector<double>();
  for (int b = 0; b < 2; ++b)  // the first query sees only the first key
    for (int j = 0; j < 5; ++j)
      CHECK(std::abs(yc[size_t(b * 15 + j)] - vv[size_t(b * 15 + j)]) < 1e-12);
  auto ref = matmul(softmax(matmul(q, k.transpose(-2, -1)) * (1 / std::sqrt(4.0)), -1), v);
  close(scaled_dot_product_attention(q, k, v).to_vector<double>(), ref.to_vector<double>(), 1e-12);
  // Lq = 2 < Lk = 3: query i sees keys j <= i + 1 (bottom-right aligned), so the last query sees
  // all.
  auto q2 = rnd({1, 2, 4});
  auto y2 = scaled_dot_product_attention(q2, k.slice(0, 0, 1), v.slice(0, 0, 1), true)
                .to_vector<double>();
  auto full = scaled_dot_product_attention(q2, k.slice(0, 0, 1), v.slice(0, 0, 1), false)
                  .to_vector<double>();
  for (int j = 0; j < 5; ++j) CHECK(std::abs(y2[size_t(5 + j)] - full[size_t(5 + j)]) < 1e-12);
  CHECK(std::abs(y2[0] - full[0]) > 1e-9);
  // f32 agrees.
  close(scaled_dot_product_attention(q.to(DType::f32), k.to(DType::f32), v.to(DType::f32), true)
            .to_vector<double>(),
        yc, 1e-5);
}

TEST_CASE("attention: gradients for q, k and v (f64 gradcheck)") {
  Session s;
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    auto f = [causal](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1], in[2], causal);
    };
    grad_ok(f, {rnd({3, 2}), rnd({3, 2}), rnd({3, 3})});
    grad_ok(f, {rnd({2, 2, 3, 2}), rnd({2, 2, 3, 2}), rnd({2, 2, 3, 2})});
    grad_ok(f, {rnd({2, 2, 3}), rnd({2, 3, 3}), rnd({2, 3, 2})});  // Lq = 2, Lk = 3
  }
}

TEST_CASE("attention: shape errors name the op and the shapes") {
  Session s;
  throws_with(
      [] {
        scaled_dot_product_attention(zeros({2, 3, 4}), zeros({2, 3, 5}), zeros({2, 3, 5}));
      },
      {"scaled_dot_product_attention", "[2, 3, 4]", "[2, 3, 5]"});
  throws_with(
      [] {
        scaled_dot_product_attention(zeros({2, 3, 4}), zeros({2, 3, 4}), zeros({2, 2, 4}));
      },
      {"scaled_dot_product_attention", "[2, 3, 4]", "[2, 2, 4]"});
  throws_with([] { scaled_dot_product_attention(zeros({4}), zeros({4}), zeros({4})); },
              {"scaled_dot_product_attention", "[4]"});
}
