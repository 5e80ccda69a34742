// Small helpers shared by the op tests of matmul, conv, norm, embedding, dropout and attention.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "lethe.h"

namespace op_checks {

using Fn = std::function<lethe::Tensor(const std::vector<lethe::Tensor>&)>;

inline void close(const std::vector<double>& got, const std::vector<double>& want,
                  double tol = 1e-9) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK_MESSAGE(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])), "element ", i,
                  ": got ", got[i], ", want ", want[i]);
}

inline void grad_ok(const Fn& fn, const std::vector<lethe::Tensor>& in,
                    std::vector<bool> check = {}) {
  auto r = lethe::autograd::gradcheck(fn, in, 1e-6, 1e-6, 1e-4, std::move(check));
  CHECK_MESSAGE(r.ok, r.message);
}

// f must throw lethe::Error whose message contains every part.
inline void throws_with(const std::function<void()>& f, const std::vector<std::string>& parts) {
  bool threw = false;
  try {
    f();
  } catch (const lethe::Error& e) {
    threw = true;
    const std::string m = e.what();
    for (const auto& p : parts)
      CHECK_MESSAGE(m.find(p) != std::string::npos, "'", p, "' not in: ", m);
  }
  CHECK_MESSAGE(threw, "expected a lethe::Error");
}

inline lethe::Tensor rnd(const lethe::Shape& s) {
  return lethe::randn(s, lethe::DType::f64);
}

inline std::vector<double> seq(int64_t n, double start = 0, double step = 1) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(start + step * double(i));
  return v;
}

}  // namespace op_checks
