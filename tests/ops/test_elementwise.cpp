// Elementwise ops: forward against hand-computed values, f64 gradient checks (broadcasting
// included), and the errors users see.
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

std::vector<double> seq(int n, double start, double step) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(start + step * i);
  return v;
}

// a + b with both broadcast to out, computed naively from multi-indices.
std::vector<double> naive_broadcast(const std::vector<double>& a, const Shape& sa,
                                    const std::vector<double>& b, const Shape& sb, const Shape& so,
                                    double (*f)(double, double)) {
  std::vector<double> out;
  const int n = so.ndim();
  for (int64_t i = 0; i < so.numel(); ++i) {
    std::vector<int64_t> idx(n);
    int64_t r = i;
    for (int d = n - 1; d >= 0; --d) {
      idx[d] = r % so[d];
      r /= so[d];
    }
    auto flat = [&](const Shape& s) {
      int64_t off = 0;
      for (int d = 0; d < s.ndim(); ++d) off = off * s[d] + (s[d] == 1 ? 0 : idx[d + n - s.ndim()]);
      return off;
    };
    out.push_back(f(a[flat(sa)], b[flat(sb)]));
  }
  return out;
}

}  // namespace

TEST_CASE("elementwise: add/sub/mul/div forward, same shape and broadcast") {
  Session s;
  auto a = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto b = from_vector<double>({10, 20, 30}, {3});
  auto c = from_vector<double>({2, 4}, {2, 1});
  check_close(add(a, a).to_vector<double>(), {2, 4, 6, 8, 10, 12});
  check_close(add(a, b).to_vector<double>(), {11, 22, 33, 14, 25, 36});
  check_close(sub(a, b).to_vector<double>(), {-9, -18, -27, -6, -15, -24});
  check_close(sub(b, a).to_vector<double>(), {9, 18, 27, 6, 15, 24});
  check_close(mul(a, c).to_vector<double>(), {2, 4, 6, 16, 20, 24});
  check_close(div(a, c).to_vector<double>(), {0.5, 1, 1.5, 1, 1.25, 1.5});
  check_close(div(c, a).to_vector<double>(), {2, 1, 2.0 / 3, 1, 0.8, 4.0 / 6});
  // [2,1] with [3] -> [2,3]: both operands broadcast.
  auto d = add(c, b);
  CHECK(d.shape() == Shape{2, 3});
  check_close(d.to_vector<double>(), {12, 22, 32, 14, 24, 34});
  // one-element operands (scalar fast path) on either side
  auto one = from_vector<double>({2}, {1});
  check_close(mul(a, one).to_vector<double>(), {2, 4, 6, 8, 10, 12});
  check_close(sub(one, a).to_vector<double>(), {1, 0, -1, -2, -3, -4});
  // f32 too
  auto af = from_vector<float>({1, 2, 3}, {3});
  CHECK(mul(af, af).to_vector<float>() == std::vector<float>{1, 4, 9});
  // operators forward to the same ops
  check_close((a - b * c).to_vector<double>(), {-19, -38, -57, -36, -75, -114});
}

TEST_CASE("elementwise: i64 add/sub/mul") {
  Session s;
  auto a = from_vector<int64_t>({1, 2, 3, 4}, {2, 2});
  auto b = from_vector<int64_t>({10, -1}, {2});
  CHECK(add(a, b).to_vector<int64_t>() == std::vector<int64_t>{11, 1, 13, 3});
  CHECK(sub(a, b).to_vector<int64_t>() == std::vector<int64_t>{-9, 3, -7, 5});
  CHECK(mul(a, b).to_vector<int64_t>() == std::vector<int64_t>{10, -2, 30, -4});
  CHECK(neg(a).to_vector<int64_t>() == std::vector<int64_t>{-1, -2, -3, -4});
  CHECK(add_scalar(a, 3).to_vector<int64_t>() == std::vector<int64_t>{4, 5, 6, 7});
  CHECK(mul_scalar(a, -2).to_vector<int64_t>() == std::vector<int64_t>{-2, -4, -6, -8});
  CHECK_THROWS_WITH_AS(div(a, a),
                       doctest::Contains("div: expected floating-point tensors, got i64"), Error);
  CHECK_THROWS_WITH_AS(exp(a), doctest::Contains("exp: expected a floating-point tensor"), Error);
  CHECK_THROWS_WITH_AS(mul_scalar(a, 0.5), doctest::Contains("mul_scalar"), Error);
}

TEST_CASE("elementwise: generic broadcast path matches a naive reference (large, parallel)") {
  Session s;
  auto f_add = [](double x, double y) { return x + y; };
  auto f_div = [](double x, double y) { return x / y; };
  struct Case {
    Shape sa, sb;
  };
  const std::vector<Case> cases = {{{2, 1, 3}, {4, 1}},      {{3, 1, 5, 1}, {1, 4, 1, 6}},
                                   {{5, 4, 3}, {5, 1, 3}},   {{7, 1}, {1, 9}},
                                   {{64, 300, 3}, {300, 1}}, {{2, 70000}, {2, 1}},
                                   {{70000, 2}, {2}}};
  for (const auto& c : cases) {
    auto va = seq(static_cast<int>(c.sa.numel()), 0.5, 0.25);
    auto vb = seq(static_cast<int>(c.sb.numel()), 1.0, 0.125);
    auto a = from_vector(va, c.sa);
    auto b = from_vector(vb, c.sb);
    const Shape so = broadcast_shapes(c.sa, c.sb, "test");
    auto got = add(a, b);
    CHECK(got.shape() == so);
    CHECK(got.to_vector<double>() == naive_broadcast(va, c.sa, vb, c.sb, so, f_add));
    CHECK(div(b, a).to_vector<double>() == naive_broadcast(vb, c.sb, va, c.sa, so, f_div));
  }
}

TEST_CASE("elementwise: results are bitwise reproducible") {
  Session s({.seed = 3});
  auto a = randn({300, 257});
  auto b = randn({257});
  auto r1 = (a * b + a.sigmoid()).to_vector<float>();
  auto r2 = (a * b + a.sigmoid()).to_vector<float>();
  CHECK(r1 == r2);
}

TEST_CASE("elementwise: binary shape and dtype errors name the op and both shapes") {
  Session s;
  auto a = zeros({2, 3});
  auto b = zeros({4});
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("add: shapes [2, 3] and [4] cannot broadcast"),
                       Error);
  CHECK_THROWS_WITH_AS(sub(a, b), doctest::Contains("sub: shapes [2, 3] and [4]"), Error);
  CHECK_THROWS_WITH_AS(mul(b, a), doctest::Contains("mul: shapes [4] and [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(div(a, zeros({3, 3})), doctest::Contains("div: shapes [2, 3] and [3, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(
      add(a, zeros({2, 3}, DType::f64)),
      doctest::Contains("add: dtypes f32 and f64 differ (shapes [2, 3] and [2, 3])"), Error);
  CHECK_THROWS_WITH_AS(a + zeros({1, 2}), doctest::Contains("add: shapes [2, 3] and [1, 2]"),
                       Error);
}

TEST_CASE("elementwise: binary gradients with broadcasting (f64 gradcheck)") {
  Session s({.seed = 11});
  const std::vector<std::pair<Shape, Shape>> shapes = {{{2, 3}, {2, 3}},    {{2, 3, 4}, {3, 1}},
                                                       {{2, 1, 4}, {3, 1}}, {{4}, {2, 3, 4}},
                                                       {{2, 3}, {1}},       {{1}, {3, 2}}};
  for (const auto& [sa, sb] : shapes) {
    CAPTURE(sa);
    CAPTURE(sb);
    auto a = randn(sa, DType::f64);
    auto b = randn(sb, DType::f64);
    auto bpos = uniform(sb, 0.5, 2.0, DType::f64);  // away from zero for division
    check_grad([](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {a, b});
    check_grad([](const std::vector<Tensor>& x) { return sub(x[0], x[1]); }, {a, b});
    check_grad([](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {a, b});
    check_grad([](const std::vector<Tensor>& x) { return div(x[0], x[1]); }, {a, bpos});
  }
  // the same tensor on both sides: gradients accumulate
  auto a = randn({3, 2}, DType::f64);
  check_grad([](const std::vector<Tensor>& x) { return mul(x[0], x[0]); }, {a});
}

TEST_CASE("elementwise: scalar ops forward and gradients") {
  Session s;
  auto x = from_vector<double>({1, 2, 4}, {3});
  check_close(add_scalar(x, 1.5).to_vector<double>(), {2.5, 3.5, 5.5});
  check_close(mul_scalar(x, -2).to_vector<double>(), {-2, -4, -8});
  check_close(rsub_scalar(x, 1).to_vector<double>(), {0, -1, -3});
  check_close(rdiv_scalar(x, 2).to_vector<double>(), {2, 1, 0.5});
  check_close((x - 1.0).to_vector<double>(), {0, 1, 3});
  check_close((x / 4.0).to_vector<double>(), {0.25, 0.5, 1});
  check_close((1.0 / x).to_vector<double>(), {1, 0.5, 0.25});
  check_close((3.0 - x).to_vector<double>(), {2, 1, -1});
  auto f = from_vector<double>({0.5, 1.5, -2.0, 3.0}, {2, 2});
  check_grad([](const std::vector<Tensor>& v) { return add_scalar(v[0], 3.0); }, {f});
  check_grad([](const std::vector<Tensor>& v) { return mul_scalar(v[0], -1.5); }, {f});
  check_grad([](const std::vector<Tensor>& v) { return rsub_scalar(v[0], 2.0); }, {f});
  check_grad([](const std::vector<Tensor>& v) { return rdiv_scalar(v[0], 2.0); }, {f});
}

TEST_CASE("elementwise: unary maths forward") {
  Session s;
  auto x = from_vector<double>({0.25, 1, 4}, {3});
  check_close(neg(x).to_vector<double>(), {-0.25, -1, -4});
  check_close(exp(x).to_vector<double>(),
              {1.2840254166877414, 2.718281828459045, 54.598150033144236});
  check_close(log(x).to_vector<double>(), {-1.3862943611198906, 0, 1.3862943611198906});
  check_close(sqrt(x).to_vector<double>(), {0.5, 1, 2});
  check_close(pow(x, 2).to_vector<double>(), {0.0625, 1, 16});
  check_close(pow(x, -0.5).to_vector<double>(), {2, 1, 0.5});
  check_close(pow(x, 3).to_vector<double>(), {0.015625, 1, 64});
  auto xf = from_vector<float>({0.25f, 1, 4}, {3});
  auto e = exp(xf).to_vector<float>();
  CHECK(e[1] == doctest::Approx(2.7182818f));
  CHECK(x.exp().log().to_vector<double>().size() == 3);
}

TEST_CASE("elementwise: activations forward") {
  Session s;
  auto x = from_vector<double>({-2, -0.5, 0, 0.5, 2}, {5});
  check_close(relu(x).to_vector<double>(), {0, 0, 0, 0.5, 2});
  // sigmoid(v) = 1 / (1 + e^-v)
  check_close(sigmoid(x).to_vector<double>(), {0.11920292202211755, 0.3775406687981454, 0.5,
                                               0.6224593312018546, 0.8807970779778823});
  check_close(tanh(x).to_vector<double>(), {-0.9640275800758169, -0.46211715726000974, 0,
                                            0.46211715726000974, 0.9640275800758169});
  // gelu(v) = v * Phi(v)
  check_close(gelu(x).to_vector<double>(), {-0.04550026389635842, -0.15426876936299344, 0,
                                            0.34573123063700656, 1.9544997361036416});
  // tanh approximation: 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3)))
  check_close(gelu(x, "tanh").to_vector<double>(), {-0.04540230591222494, -0.15428599017485606, 0,
                                                    0.34571400982514394, 1.954597694087775});
  // no overflow at the extremes
  auto big = from_vector<float>({-1000, 1000}, {2});
  CHECK(sigmoid(big).to_vector<float>() == std::vector<float>{0, 1});
  CHECK_THROWS_WITH_AS(gelu(x, "fast"), doctest::Contains("gelu: approximate must be"), Error);
}

TEST_CASE("elementwise: unary gradients (f64 gradcheck)") {
  Session s;
  auto x = from_vector<double>({-1.7, -0.6, 0.3, 0.9, 2.1, -0.2}, {2, 3});
  auto xp = from_vector<double>({0.3, 0.7, 1.1, 1.9, 2.6, 4.0}, {2, 3});
  check_grad([](const std::vector<Tensor>& v) { return neg(v[0]); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return exp(v[0]); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return log(v[0]); }, {xp});
  check_grad([](const std::vector<Tensor>& v) { return sqrt(v[0]); }, {xp});
  for (double e : {0.0, 1.0, 2.0, 3.0, -1.5, 0.5}) {
    CAPTURE(e);
    check_grad([e](const std::vector<Tensor>& v) { return pow(v[0], e); }, {xp});
  }
  check_grad([](const std::vector<Tensor>& v) { return relu(v[0]); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return gelu(v[0]); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return gelu(v[0], "tanh"); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return sigmoid(v[0]); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return tanh(v[0]); }, {x});
  // chained: the backward ops themselves sit inside a bigger graph
  check_grad([](const std::vector<Tensor>& v) { return mul(tanh(v[0]), sigmoid(v[1])); }, {x, xp});
}

TEST_CASE("elementwise: relu gradient is exactly 0 or 1") {
  Session s;
  auto x = from_vector<float>({-1, 0, 2}, {3}).set_requires_grad(true);
  relu(x).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{0, 0, 1});
}

TEST_CASE("elementwise: cast converts and its gradient casts back") {
  Session s;
  auto x = from_vector<float>({1.5f, -2.25f, 3}, {3});
  auto d = cast(x, DType::f64);
  CHECK(d.dtype() == DType::f64);
  CHECK(d.to_vector<double>() == std::vector<double>{1.5, -2.25, 3});
  auto i = cast(x, DType::i64);
  CHECK(i.to_vector<int64_t>() ==
        std::vector<int64_t>{1, -2, 3});  // truncation, as C++ and PyTorch
  CHECK(cast(i, DType::f32).to_vector<float>() == std::vector<float>{1, -2, 3});
  CHECK(x.to(DType::f32).impl() == x.impl());  // no-op cast

  auto w = from_vector<float>({1, 2, 3}, {3}).set_requires_grad(true);
  (cast(w, DType::f64) * from_vector<double>({2, 3, 4}, {3})).sum().backward();
  CHECK(w.grad().dtype() == DType::f32);
  CHECK(w.grad().to_vector<float>() == std::vector<float>{2, 3, 4});
  // f64 -> f64 through f64 ops: gradcheck of the identity-like cast chain in f64
  auto v = from_vector<double>({0.5, -1.0}, {2});
  check_grad([](const std::vector<Tensor>& t) { return cast(mul(t[0], t[0]), DType::f64); }, {v});
}

TEST_CASE("elementwise: sum_to and broadcast_to") {
  Session s;
  auto x = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  check_close(sum_to(x, {3}).to_vector<double>(), {5, 7, 9});
  check_close(sum_to(x, {1, 3}).to_vector<double>(), {5, 7, 9});
  check_close(sum_to(x, {2, 1}).to_vector<double>(), {6, 15});
  check_close(sum_to(x, {1}).to_vector<double>(), {21});
  check_close(sum_to(x, Shape{}).to_vector<double>(), {21});
  CHECK(sum_to(x, {2, 3}).impl() == x.impl());
  auto b = from_vector<double>({1, 2}, {2, 1});
  check_close(broadcast_to(b, {2, 3}).to_vector<double>(), {1, 1, 1, 2, 2, 2});
  check_close(broadcast_to(from_vector<double>({7, 8, 9}, {3}), {2, 3}).to_vector<double>(),
              {7, 8, 9, 7, 8, 9});
  check_close(broadcast_to(b, {2, 2, 2}).to_vector<double>(), {1, 1, 2, 2, 1, 1, 2, 2});
  // i64
  CHECK(sum_to(from_vector<int64_t>({1, 2, 3, 4}, {2, 2}), {2}).to_vector<int64_t>() ==
        std::vector<int64_t>{4, 6});
  // gradients
  auto y = randn({2, 3, 4}, DType::f64);
  check_grad([](const std::vector<Tensor>& v) { return sum_to(v[0], {3, 1}); }, {y});
  check_grad([](const std::vector<Tensor>& v) { return sum_to(v[0], {2, 1, 4}); }, {y});
  check_grad(
      [](const std::vector<Tensor>& v) {
        return broadcast_to(v[0], {2, 3, 4});
      },
      {randn({3, 1}, DType::f64)});
  // errors name the op and both shapes
  CHECK_THROWS_WITH_AS(sum_to(x, {4}),
                       doctest::Contains("sum_to: shape [2, 3] cannot be summed to [4]"), Error);
  CHECK_THROWS_WITH_AS(
      broadcast_to(x, {3, 3}),
      doctest::Contains("broadcast_to: shape [2, 3] cannot be broadcast to [3, 3]"), Error);
}

TEST_CASE("elementwise: large sum_to (parallel chunked reduction) is exact on integers") {
  Session s;
  const int64_t n = 300000;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<double>(i % 7);
  auto x = from_vector(v, {n});
  double want = 0;
  for (double e : v) want += e;
  CHECK(sum_to(x, {1}).item<double>() == want);
  auto m = from_vector(v, {n / 3, 3});
  auto cols = sum_to(m, {3}).to_vector<double>();
  double c0 = 0;
  for (int64_t i = 0; i < n; i += 3) c0 += v[static_cast<size_t>(i)];
  CHECK(cols[0] == c0);
}
