// Adam: torch.optim.Adam's update, built on AdamW's op. Checked against a reference written from
// PyTorch's single-tensor Adam (f64, its order of operations) on the quadratic of test_optim.cpp,
// and bitwise against AdamW with no weight decay (the same op).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "lethe.h"
#include "nn/nn.h"
#include "optim/adam.h"
#include "optim/optim.h"

using namespace lethe;

namespace {

const std::vector<double> kP0 = {1.0, -2.0, 3.0, 0.5}, kW = {0.5, 1.5, 2.0, 1.0},
                          kC = {0.1, -0.3, 0.2, -0.4};

template <typename Opt, typename Options>
std::vector<double> train(const Options& o, int steps) {
  Session session({.seed = 1});
  Tensor p = from_vector<double>(kP0);
  p.set_requires_grad(true);
  Tensor w = from_vector<double>(kW), c = from_vector<double>(kC);
  Opt opt({p}, o);
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    Tensor loss = (0.5 * w * p * p + c * p).sum();
    loss.backward();
    opt.step();
  }
  return p.to_vector<double>();
}

// torch.optim.Adam (amsgrad=False, maximize=False), single-tensor path, in f64.
std::vector<double> reference(double lr, double b1, double b2, double eps, double wd, int steps) {
  std::vector<double> p = kP0, m(4, 0.0), v(4, 0.0);
  for (int t = 1; t <= steps; ++t) {
    const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    const double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
    for (size_t i = 0; i < 4; ++i) {
      double g = kW[i] * p[i] + kC[i];
      if (wd != 0) g = g + wd * p[i];
      m[i] = m[i] * b1 + (1 - b1) * g;
      v[i] = v[i] * b2 + (1 - b2) * g * g;
      p[i] = p[i] - step_size * (m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps));
    }
  }
  return p;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
}

}  // namespace

TEST_CASE("Adam matches torch.optim.Adam's update, with and without weight decay") {
  check_close(train<optim::Adam>(optim::AdamOptions(0.01).betas({0.9, 0.99}), 5),
              reference(0.01, 0.9, 0.99, 1e-8, 0, 5));
  check_close(train<optim::Adam>(optim::AdamOptions(0.01).betas({0.9, 0.99}).weight_decay(0.1), 5),
              reference(0.01, 0.9, 0.99, 1e-8, 0.1, 5));
}

TEST_CASE("Adam without weight decay is bitwise AdamW with weight_decay 0") {
  const auto a = train<optim::Adam>(optim::AdamOptions(0.01).eps(1e-6), 4);
  const auto b = train<optim::AdamW>(optim::AdamWOptions(0.01).eps(1e-6).weight_decay(0.0), 4);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

TEST_CASE("Adam: state dict says Adam, and bad arguments are named") {
  Session session({.seed = 1});
  Tensor p = from_vector<double>(kP0);
  p.set_requires_grad(true);
  optim::Adam opt({p}, optim::AdamOptions(0.01));
  CHECK(std::string(opt.type_name()) == "Adam");
  CHECK(opt.state_dict().fields.at("type") == "Adam");
  CHECK_THROWS_WITH_AS(optim::Adam({p}, optim::AdamOptions(0.01).betas({1.0, 0.9})),
                       doctest::Contains("Adam: betas must be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(optim::Adam({p}, optim::AdamOptions(0.01).weight_decay(-1)),
                       doctest::Contains("weight_decay must be >= 0"), Error);
  // An AdamW state does not load into Adam: the types differ.
  optim::AdamW w({p}, optim::AdamWOptions(0.01));
  CHECK_THROWS_AS(opt.load_state_dict(w.state_dict()), Error);
}
