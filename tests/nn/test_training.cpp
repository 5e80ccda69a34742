// End to end: a small classifier trains (its loss falls) and two runs with one seed give bitwise
// the same losses and parameters (DESIGN invariant 2: determinism, dropout included).
#include <doctest/doctest.h>

#include <cstring>

#include "data/data.h"
#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"

using namespace lethe;
namespace nn = lethe::nn;

namespace {

// 512 points in 8-d, labelled by the argmax of a fixed linear teacher (4 classes). A plain LCG
// keeps the data identical on every platform.
std::shared_ptr<data::TensorDataset> teacher_dataset() {
  uint64_t s = 12345;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>((s >> 40) & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f;
  };
  std::vector<float> teacher(4 * 8);
  for (auto& t : teacher) t = next();
  const int n = 512;
  std::vector<float> x(static_cast<size_t>(n * 8));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    float best = -1e9f;
    for (int d = 0; d < 8; ++d) x[static_cast<size_t>(i * 8 + d)] = next();
    for (int c = 0; c < 4; ++c) {
      float z = 0;
      for (int d = 0; d < 8; ++d)
        z += teacher[static_cast<size_t>(c * 8 + d)] * x[static_cast<size_t>(i * 8 + d)];
      if (z > best) {
        best = z;
        y[static_cast<size_t>(i)] = c;
      }
    }
  }
  return std::make_shared<data::TensorDataset>(x, Shape{8}, y);
}

struct Run {
  std::vector<float> losses;
  std::vector<std::vector<float>> params;
};

Run train(bool adamw, uint64_t seed) {
  Session session({.seed = seed});
  auto model = std::make_shared<nn::Sequential>(
      std::make_shared<nn::Linear>(8, 32), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Dropout>(0.1), std::make_shared<nn::Linear>(32, 4));
  std::unique_ptr<optim::Optimizer> opt;
  if (adamw)
    opt = std::make_unique<optim::AdamW>(model->parameters(), optim::AdamWOptions(0.02));
  else
    opt = std::make_unique<optim::SGD>(model->parameters(),
                                       optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
  optim::CosineWarmupLR sched(*opt, 5, 48, 1e-3);
  data::DataLoader loader(teacher_dataset(),
                          data::DataLoaderOptions().batch_size(32).shuffle(true).seed(seed));
  Run r;
  for (int epoch = 0; epoch < 3; ++epoch)
    for (const auto& b : loader) {
      Tensor loss = cross_entropy(model->forward(b.data), b.target);
      opt->zero_grad();
      loss.backward();
      opt->step();
      sched.step();
      r.losses.push_back(loss.item<float>());
    }
  for (auto& p : model->parameters()) r.params.push_back(p.to_vector<float>());
  return r;
}

float mean_of(const std::vector<float>& v, size_t from, size_t to) {
  float s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / static_cast<float>(to - from);
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("training a small classifier lowers the loss, bitwise reproducibly (SGD, AdamW)") {
  for (bool adamw : {false, true}) {
    CAPTURE(adamw);
    Run a = train(adamw, 42);
    REQUIRE(a.losses.size() == 48);
    const float first = mean_of(a.losses, 0, 8), last = mean_of(a.losses, 40, 48);
    CHECK(first > 1.0f);  // about log(4) = 1.386 at the start
    CHECK(last < 0.6f * first);
    Run b = train(adamw, 42);
    CHECK(bitwise_equal(a.losses, b.losses));
    REQUIRE(a.params.size() == b.params.size());
    for (size_t i = 0; i < a.params.size(); ++i) CHECK(bitwise_equal(a.params[i], b.params[i]));
    Run c = train(adamw, 43);
    CHECK_FALSE(bitwise_equal(a.losses, c.losses));
  }
}
