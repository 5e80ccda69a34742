// dropout: identity when off, zeros at p = 1, keep rate near 1 - p with 1/(1-p) scaling, the same
// mask for the same (seed, step, node), and a gradient that reuses the forward mask.
#include <doctest/doctest.h>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

namespace {
std::vector<double> masked_run(uint64_t seed, double p) {
  Session s({.seed = seed});
  auto x = ones({4096}, DType::f64);
  return dropout(x, p).to_vector<double>();
}
}  // namespace

TEST_CASE("dropout: off in eval mode and at p = 0, zeros at p = 1") {
  Session s;
  auto x = rnd({3, 4});
  CHECK(dropout(x, 0.5, false).impl() == x.impl());
  CHECK(dropout(x, 0.0).impl() == x.impl());
  close(dropout(x, 1.0).to_vector<double>(), std::vector<double>(12, 0.0));
  throws_with([&] { dropout(x, 1.5); }, {"dropout", "1.5"});
  throws_with([&] { dropout(from_vector<int64_t>({1, 2}, {2}), 0.5); }, {"dropout", "i64"});
}

TEST_CASE("dropout: keep rate near 1 - p, kept values scaled by 1/(1-p)") {
  const double p = 0.3;
  auto y = masked_run(11, p);
  int64_t kept = 0;
  for (double v : y) {
    CHECK((v == 0.0 || std::abs(v - 1.0 / (1.0 - p)) < 1e-12));
    kept += v != 0.0;
  }
  const double rate = 1.0 - double(kept) / double(y.size());
  CHECK(rate > p - 0.03);
  CHECK(rate < p + 0.03);
}

TEST_CASE("dropout: the same seed, step and node give the same mask, another seed another") {
  auto a = masked_run(5, 0.5), b = masked_run(5, 0.5), c = masked_run(6, 0.5);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("dropout: the gradient redraws the forward mask") {
  Session s({.seed = 3});
  auto x = rnd({64}).set_requires_grad(true);
  auto coef = rnd({64});
  auto y = dropout(x, 0.4);
  (y * coef).sum().backward();
  auto yv = y.to_vector<double>(), xv = x.to_vector<double>(), cv = coef.to_vector<double>();
  auto g = x.grad().to_vector<double>();
  int dropped = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool kept = yv[i] != 0.0;
    dropped += !kept;
    if (kept) CHECK(std::abs(yv[i] - xv[i] / 0.6) < 1e-12);
    CHECK(std::abs(g[i] - (kept ? cv[i] / 0.6 : 0.0)) < 1e-12);
  }
  CHECK(dropped > 0);
  CHECK(dropped < 64);
}
