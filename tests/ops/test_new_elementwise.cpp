// abs, sign, log1p, expm1, clamp, minimum, maximum, pow(Tensor, Tensor), comparisons, where, min,
// argmin and cumsum: values against hand- or torch-computed ones, torch's gradient rules at ties
// and bounds, NaN propagation, errors that name the problem.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

namespace {
const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

std::vector<double> grad_of(const std::function<Tensor(const Tensor&)>& f, std::vector<double> v,
                            Shape s) {
  auto x = from_vector<double>(v, s).set_requires_grad(true);
  f(x).sum().backward();
  return x.grad().to_vector<double>();
}
}  // namespace

TEST_CASE("abs, sign, log1p, expm1: values and gradients") {
  Session s;
  auto x = from_vector<double>({-2, 0, 3, kNan}, {4});
  close(abs(x).slice(0, 0, 3).to_vector<double>(), {2, 0, 3});
  CHECK(std::isnan(abs(x).to_vector<double>()[3]));
  close(sign(x).to_vector<double>(), {-1, 0, 1, 0});  // sign(NaN) = 0, as torch
  CHECK(abs(from_vector<int64_t>({-4, 5}, {2})).to_vector<int64_t>() == std::vector<int64_t>{4, 5});
  close(grad_of([](const Tensor& t) { return abs(t); }, {-2, 0, 3}, {3}), {-1, 0, 1});
  close(log1p(from_vector<double>({1e-12, 1}, {2})).to_vector<double>(),
        {1e-12 - 5e-25, std::log(2.0)}, 1e-15);
  close(expm1(from_vector<double>({1e-12, -kInf}, {2})).to_vector<double>(), {1e-12 + 5e-25, -1},
        1e-15);
  close(grad_of([](const Tensor& t) { return log1p(t); }, {0, 1}, {2}), {1, 0.5});
  close(grad_of([](const Tensor& t) { return expm1(t); }, {0, 1}, {2}), {1, std::exp(1.0)});
  grad_ok([](const std::vector<Tensor>& v) { return expm1(v[0]) + log1p(v[0] * v[0]) + abs(v[0]); },
          {rnd({5})});
}

TEST_CASE("clamp: bounds, NaN, gradient passes where min <= x <= max (torch)") {
  Session s;
  auto x = from_vector<double>({-1, 0, 0.5, 1, 2, kNan}, {6});
  auto y = clamp(x, 0.0, 1.0).to_vector<double>();
  close({y.begin(), y.end() - 1}, {0, 0, 0.5, 1, 1});
  CHECK(std::isnan(y[5]));
  close(x.clamp(std::nullopt, 0.5).slice(0, 0, 5).to_vector<double>(), {-1, 0, 0.5, 0.5, 0.5});
  close(x.clamp(1.5, 0.5).slice(0, 0, 5).to_vector<double>(),
        {0.5, 0.5, 0.5, 0.5, 0.5});  // min > max: max
  // torch: [0, 1, 1, 1, 0] for clamp(x, 0, 1) at x = -1, 0, 0.5, 1, 2 (the bounds pass).
  close(grad_of([](const Tensor& t) { return clamp(t, 0.0, 1.0); }, {-1, 0, 0.5, 1, 2}, {5}),
        {0, 1, 1, 1, 0});
  close(grad_of([](const Tensor& t) { return clamp(t, 0.0); }, {-1, 0, 2}, {3}), {0, 1, 1});
  close(grad_of([](const Tensor& t) { return clamp(t, 1.5, 0.5); }, {-1, 1, 2}, {3}), {0, 0, 0});
  CHECK(clamp(from_vector<int64_t>({-5, 3, 9}, {3}), 0.0, 4.0).to_vector<int64_t>() ==
        std::vector<int64_t>{0, 3, 4});
  throws_with([&] { clamp(x, std::nullopt, std::nullopt); }, {"clamp", "min", "max"});
  throws_with([&] { clamp(from_vector<int64_t>({1}, {1}), 0.5); },
              {"clamp", "i64", "non-integral bound"});
}

TEST_CASE("minimum, maximum: broadcasting, NaN, ties split the gradient (torch)") {
  Session s;
  auto a = from_vector<double>({1, 2, 3, kNan}, {4});
  auto b = from_vector<double>({1, 5, 0, 0}, {4});
  auto mx = maximum(a, b).to_vector<double>(), mn = minimum(a, b).to_vector<double>();
  close({mx.begin(), mx.end() - 1}, {1, 5, 3});
  close({mn.begin(), mn.end() - 1}, {1, 2, 0});
  CHECK(std::isnan(mx[3]));
  CHECK(std::isnan(mn[3]));
  close(maximum(from_vector<double>({1, 4}, {2, 1}), from_vector<double>({0, 2, 5}, {3}))
            .to_vector<double>(),
        {1, 2, 5, 4, 4, 5});
  // torch: maximum([1, 2, 3], [1, 5, 0]) gives a.grad [0.5, 0, 1], b.grad [0.5, 1, 0].
  auto ga = from_vector<double>({1, 2, 3}, {3}).set_requires_grad(true);
  auto gb = from_vector<double>({1, 5, 0}, {3}).set_requires_grad(true);
  maximum(ga, gb).sum().backward();
  close(ga.grad().to_vector<double>(), {0.5, 0, 1});
  close(gb.grad().to_vector<double>(), {0.5, 1, 0});
  ga.zero_grad();
  gb.zero_grad();
  minimum(ga, gb).sum().backward();
  close(ga.grad().to_vector<double>(), {0.5, 1, 0});
  close(gb.grad().to_vector<double>(), {0.5, 0, 1});
  grad_ok([](const std::vector<Tensor>& v) { return minimum(v[0], v[1]) * maximum(v[1], v[0]); },
          {rnd({2, 3}), rnd({3})});
  throws_with([&] { maximum(a, from_vector<float>({1}, {1})); }, {"maximum", "f64", "f32"});
  throws_with([&] { minimum(a, zeros({3}, DType::f64)); }, {"minimum", "[4]", "[3]"});
}

TEST_CASE("pow of two tensors: values and torch's gradients at 0") {
  Session s;
  auto a = from_vector<double>({0, 0, 2, -1}, {4}).set_requires_grad(true);
  auto b = from_vector<double>({0, 2, 0.5, 2}, {4}).set_requires_grad(true);
  auto y = pow(a, b);
  close(y.to_vector<double>(), {1, 0, std::sqrt(2.0), 1});
  y.sum().backward();
  // torch 1.13: a.grad [0, 0, 0.3536, -2], b.grad [0, 0, 0.9803, nan].
  close(a.grad().to_vector<double>(), {0, 0, 0.5 / std::sqrt(2.0), -2});
  auto gb = b.grad().to_vector<double>();
  close({gb.begin(), gb.end() - 1}, {0, 0, std::sqrt(2.0) * std::log(2.0)});
  CHECK(std::isnan(gb[3]));
  grad_ok([](const std::vector<Tensor>& v) { return pow(v[0] * v[0] + 0.5, v[1]); },
          {rnd({2, 3}), rnd({3})});
  throws_with([&] { pow(from_vector<int64_t>({1}, {1}), from_vector<int64_t>({1}, {1})); },
              {"pow_tensor", "floating-point"});
}

TEST_CASE("comparisons: i64 0/1 masks, broadcasting, scalars, NaN unequal to everything") {
  Session s;
  auto a = from_vector<double>({1, 2, 3, kNan}, {4});
  auto b = from_vector<double>({1, 3, 2, kNan}, {4});
  using V = std::vector<int64_t>;
  CHECK(eq(a, b).dtype() == DType::i64);
  CHECK(eq(a, b).to_vector<int64_t>() == V{1, 0, 0, 0});
  CHECK(ne(a, b).to_vector<int64_t>() == V{0, 1, 1, 1});
  CHECK(lt(a, b).to_vector<int64_t>() == V{0, 1, 0, 0});
  CHECK(le(a, b).to_vector<int64_t>() == V{1, 1, 0, 0});
  CHECK(gt(a, b).to_vector<int64_t>() == V{0, 0, 1, 0});
  CHECK(ge(a, b).to_vector<int64_t>() == V{1, 0, 1, 0});
  CHECK(a.ge(2.0).to_vector<int64_t>() == V{0, 1, 1, 0});
  CHECK(ne(a, 1.0).to_vector<int64_t>() == V{0, 1, 1, 1});
  // An i64 tensor against a non-integral scalar compares as doubles (torch: [True, False]).
  CHECK(lt(from_vector<int64_t>({1, 2}, {2}), 1.5).to_vector<int64_t>() == V{1, 0});
  CHECK(eq(from_vector<int64_t>({1, 2}, {2}), 1.5).to_vector<int64_t>() == V{0, 0});
  auto m = lt(from_vector<double>({1, 4}, {2, 1}), from_vector<double>({0, 2, 5}, {3}));
  CHECK(m.shape() == Shape{2, 3});
  CHECK(m.to_vector<int64_t>() == V{0, 1, 1, 0, 0, 1});
  // No gradient flows through a mask.
  auto x = from_vector<double>({1, 2}, {2}).set_requires_grad(true);
  CHECK_FALSE(gt(x, 1.0).requires_grad());
  throws_with([&] { eq(a, from_vector<int64_t>({1}, {1})); }, {"eq", "f64", "i64", "cast"});
  throws_with([&] { lt(a, zeros({2, 3}, DType::f64)); }, {"lt", "[4]", "[2, 3]"});
}

TEST_CASE("where: broadcasting of all three, any condition dtype, gradients to both branches") {
  Session s;
  auto cond = from_vector<int64_t>({1, 0}, {2, 1});
  auto a = from_vector<double>({1, 2, 3}, {3});
  auto b = from_vector<double>({-1}, {1});
  auto y = where(cond, a, b);
  CHECK(y.shape() == Shape{2, 3});
  close(y.to_vector<double>(), {1, 2, 3, -1, -1, -1});
  // A float condition: nonzero (NaN included) is true.
  close(where(from_vector<double>({0, 0.5, kNan}, {3}), a, b).to_vector<double>(), {-1, 2, 3});
  close(a.where(gt(a, 1.5), b).to_vector<double>(), {-1, 2, 3});
  auto ga = from_vector<double>({1, 2, 3}, {3}).set_requires_grad(true);
  auto gb = from_vector<double>({-1}, {1}).set_requires_grad(true);
  where(cond, ga, gb).sum().backward();
  close(ga.grad().to_vector<double>(), {1, 1, 1});
  close(gb.grad().to_vector<double>(), {3});
  grad_ok([&](const std::vector<Tensor>& v) { return where(cond, v[0], v[1]) * v[0]; },
          {rnd({2, 3}), rnd({3})});
  throws_with([&] { where(cond, a, from_vector<float>({1}, {1})); }, {"where", "f64", "f32"});
  throws_with([&] { where(zeros({4}), a, b); }, {"where", "[4]", "[3]"});
}

TEST_CASE("min, argmin: values, first index on ties, NaN wins, gradient to the argmin") {
  Session s;
  auto x = from_vector<double>({3, 1, 1, 0, 5, -2}, {2, 3});
  close(min(x, 1).to_vector<double>(), {1, -2});
  CHECK(argmin(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 2});
  CHECK(x.argmin(0, true).shape() == Shape{1, 3});
  CHECK(x.argmin(0, true).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});
  CHECK(argmin(from_vector<double>({1, kNan, 0}, {3}), 0).item<int64_t>() == 1);  // torch: 1
  CHECK(std::isnan(min(from_vector<double>({1, kNan, 0}, {3}), 0).item()));
  close(grad_of([](const Tensor& t) { return t.min(1); }, {3, 1, 1}, {1, 3}),
        {0, 1, 0});  // torch: [0, 1, 0]
  grad_ok([](const std::vector<Tensor>& v) { return min(v[0], 0, true) * 2.0; }, {rnd({4, 3})});
  throws_with([&] { min(x, 2); }, {"min", "2"});
  throws_with([&] { argmin(x, -3); }, {"argmin", "-3"});
}

TEST_CASE("cumsum: values along either axis, reverse-cumsum gradient, i64") {
  Session s;
  auto x = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  close(cumsum(x, 0).to_vector<double>(), {1, 2, 3, 5, 7, 9});
  close(x.cumsum(-1).to_vector<double>(), {1, 3, 6, 4, 9, 15});
  CHECK(cumsum(from_vector<int64_t>({1, -2, 3}, {3}), 0).to_vector<int64_t>() ==
        std::vector<int64_t>{1, -1, 2});
  auto c = from_vector<double>({1, 2, 3}, {3}).set_requires_grad(true);
  (cumsum(c, 0) * from_vector<double>({1, 10, 100}, {3})).sum().backward();
  close(c.grad().to_vector<double>(), {111, 110, 100});  // torch
  grad_ok([](const std::vector<Tensor>& v) { return cumsum(v[0], 1) * v[0]; }, {rnd({2, 4, 3})});
  auto n = cumsum(from_vector<double>({1, kNan, 2}, {3}), 0).to_vector<double>();
  CHECK(n[0] == 1);
  CHECK(std::isnan(n[1]));
  CHECK(std::isnan(n[2]));
  throws_with([&] { cumsum(x, 2); }, {"cumsum", "2"});
}
