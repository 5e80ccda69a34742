// layer_norm and batch_norm: hand-computed normalisations, running statistics (updated when the
// step runs, used in eval mode), f64 gradient checks through the batch statistics, errors.
#include <doctest/doctest.h>

#include <cmath>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

TEST_CASE("layer_norm: forward (hand-computed), weight and bias") {
  Session s;
  auto x = from_vector<double>({1, 2, 3, 4, 10, 12, 10, 12}, {2, 4});
  const double r = 1.0 / std::sqrt(1.25);  // mean 2.5, variance 1.25
  close(layer_norm(x, {4}, Tensor(), Tensor(), 0.0).to_vector<double>(),
        {-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r, -1, 1, -1, 1});  // row 2: mean 11, var 1
  auto w = from_vector<double>({1, 2, 1, 2}, {4});
  auto b = from_vector<double>({0, 0, 1, 1}, {4});
  close(layer_norm(x, {4}, w, b, 0.0).to_vector<double>(),
        {-1.5 * r, -1.0 * r, 0.5 * r + 1, 3.0 * r + 1, -1, 2, 0, 3});
  // eps enters under the square root; normalising over two trailing dims equals over the flattened
  // row.
  CHECK(std::abs(layer_norm(x, {4}, Tensor(), Tensor(), 0.75).to_vector<double>()[0] +
                 1.5 / std::sqrt(2.0)) < 1e-12);
  auto x3 = rnd({2, 2, 3});
  close(layer_norm(x3, {2, 3}).to_vector<double>(),
        layer_norm(x3.reshape({2, 6}), {6}).to_vector<double>(), 1e-12);
  // f32 agrees with f64.
  close(layer_norm(x3.to(DType::f32), {3}).to_vector<double>(),
        layer_norm(x3, {3}).to_vector<double>(), 1e-5);
}

TEST_CASE("layer_norm: gradients (f64 gradcheck)") {
  Session s;
  auto ln = [](std::vector<int64_t> ns) {
    return [ns](const std::vector<Tensor>& v) {
      return layer_norm(v[0], ns, v.size() > 1 ? v[1] : Tensor(), v.size() > 2 ? v[2] : Tensor());
    };
  };
  grad_ok(ln({4}), {rnd({3, 4}), rnd({4}), rnd({4})});
  grad_ok(ln({2, 3}), {rnd({2, 2, 3}), rnd({2, 3}), rnd({2, 3})});
  grad_ok(ln({3}), {rnd({2, 2, 3})});
  grad_ok(ln({3}), {rnd({2, 3}), rnd({3})});
  grad_ok([](const std::vector<Tensor>& v) { return layer_norm(v[0], {3}, Tensor(), v[1]); },
          {rnd({2, 3}), rnd({3})});
}

TEST_CASE("layer_norm: shape errors name the op and both shapes") {
  Session s;
  throws_with([] { layer_norm(zeros({2, 3}), {4}); }, {"layer_norm", "[2, 3]", "[4]"});
  throws_with([] { layer_norm(zeros({2, 3}), {3}, zeros({4})); }, {"layer_norm", "[2, 3]", "[4]"});
  throws_with(
      [] {
        layer_norm(zeros({2, 3}), {3}, zeros({3}, DType::f64));
      },
      {"layer_norm", "f64"});
}

TEST_CASE("batch_norm: training forward, running statistics after the step, eval mode") {
  Session s;
  auto x = from_vector<double>({1, 10, 3, 30}, {2, 2});  // channel means 2, 20; variances 1, 100
  auto rm = zeros({2}, DType::f64), rv = ones({2}, DType::f64);
  auto y = batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.1, 0.0);
  close(y.to_vector<double>(), {-1, -1, 1, 1});
  current_session()->flush();
  // Unbiased variance (n / (n - 1) = 2): 0.9·1 + 0.1·2 and 0.9·1 + 0.1·200.
  close(rm.to_vector<double>(), {0.2, 2.0});
  close(rv.to_vector<double>(), {1.1, 20.9});

  // Eval mode normalises with the running statistics and leaves them alone.
  auto w = from_vector<double>({2, 1}, {2});
  auto b = from_vector<double>({0, 5}, {2});
  auto ye = batch_norm(x, rm, rv, w, b, false, 0.1, 0.0);
  close(ye.to_vector<double>(), {2 * (1 - 0.2) / std::sqrt(1.1), (10 - 2.0) / std::sqrt(20.9) + 5,
                                 2 * (3 - 0.2) / std::sqrt(1.1), (30 - 2.0) / std::sqrt(20.9) + 5});
  current_session()->flush();
  close(rm.to_vector<double>(), {0.2, 2.0});

  // 4-d input: statistics over N, H, W per channel; weight and bias per channel.
  auto x4 = from_vector<double>({1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8, 2, 2, 2, 2}, {2, 2, 2, 2});
  auto y4 = batch_norm(x4, Tensor(), Tensor(), w, b, true, 0.1, 0.0).to_vector<double>();
  const double r = 1.0 / std::sqrt(5.25);  // channel 0: values 1..8, mean 4.5, variance 5.25
  CHECK(std::abs(y4[0] - 2 * (1 - 4.5) * r) < 1e-12);
  CHECK(std::abs(y4[8] - 2 * (5 - 4.5) * r) < 1e-12);
  CHECK(std::abs(y4[4] - 4) < 1e-12);  // channel 1: values 0 and 2, mean 1, variance 1: -1 + 5
}

TEST_CASE("batch_norm: gradients through the batch statistics (f64 gradcheck)") {
  Session s;
  auto bn_train = [](const std::vector<Tensor>& v) {
    return batch_norm(v[0], Tensor(), Tensor(), v.size() > 1 ? v[1] : Tensor(),
                      v.size() > 2 ? v[2] : Tensor(), true);
  };
  grad_ok(bn_train, {rnd({4, 3}), rnd({3}), rnd({3})});
  grad_ok(bn_train, {rnd({2, 3, 2, 2}), rnd({3}), rnd({3})});
  grad_ok(bn_train, {rnd({3, 2, 3})});
  // With running statistics (the side-effect node runs on every evaluation; gradients unaffected).
  auto rm = zeros({2}, DType::f64), rv = ones({2}, DType::f64);
  grad_ok([&](const std::vector<Tensor>& v) { return batch_norm(v[0], rm, rv, v[1], v[2], true); },
          {rnd({3, 2, 2}), rnd({2}), rnd({2})});
  // Eval mode: running statistics are constants.
  auto erm = from_vector<double>({0.5, -0.2}, {2}), erv = from_vector<double>({1.5, 0.7}, {2});
  grad_ok(
      [&](const std::vector<Tensor>& v) { return batch_norm(v[0], erm, erv, v[1], v[2], false); },
      {rnd({3, 2, 2}), rnd({2}), rnd({2})});
  grad_ok(
      [&](const std::vector<Tensor>& v) {
        return batch_norm(v[0], erm, erv, Tensor(), Tensor(), false);
      },
      {rnd({3, 2})});
}

TEST_CASE("batch_norm: errors name the op and the shapes") {
  Session s;
  throws_with(
      [] {
        batch_norm(zeros({4, 3}), Tensor(), Tensor(), zeros({2}), Tensor(), true);
      },
      {"batch_norm", "[4, 3]", "[2]"});
  throws_with(
      [] {
        batch_norm(zeros({4, 3}), zeros({2}), zeros({2}), Tensor(), Tensor(), false);
      },
      {"batch_norm", "[4, 3]", "[2]"});
  throws_with(
      [] {
        batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true);
      },
      {"batch_norm", "[1, 3]", "more than 1 value"});
  throws_with(
      [] {
        batch_norm(zeros({4, 3}), Tensor(), Tensor(), Tensor(), Tensor(), false);
      },
      {"batch_norm", "running"});
}
