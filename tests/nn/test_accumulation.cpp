// Gradient accumulation over micro-batches, as the README documents it: several backward() calls in
// one step add into the same gradients, bitwise as one backward() of the summed loss (the same
// contributions, summed by explicit nodes in the same order).
#include <doctest/doctest.h>

#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"

using namespace lethe;

namespace {

std::vector<std::vector<float>> grads_after(bool micro_batches) {
  Session s({.seed = 3});
  auto model = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(6, 8),
                                                std::make_shared<nn::ReLU>(),
                                                std::make_shared<nn::Linear>(8, 3));
  Tensor x1 = randn({4, 6}), x2 = randn({4, 6});
  Tensor y1 = from_vector<int64_t>({0, 1, 2, 1}, {4}), y2 = from_vector<int64_t>({2, 2, 0, 1}, {4});
  if (micro_batches) {
    (cross_entropy(model->forward(x1), y1) * 0.5).backward();
    (cross_entropy(model->forward(x2), y2) * 0.5).backward();
  } else {
    (cross_entropy(model->forward(x1), y1) * 0.5 + cross_entropy(model->forward(x2), y2) * 0.5)
        .backward();
  }
  std::vector<Tensor> gs;
  for (const Tensor& p : model->parameters()) gs.push_back(p.grad());
  std::vector<std::vector<float>> out;
  for (const Tensor& g : gs) out.push_back(g.to_vector<float>());
  return out;
}

}  // namespace

TEST_CASE(
    "accumulation: two micro-batch backward() calls give bitwise the gradients of their summed "
    "loss") {
  const auto acc = grads_after(true), joint = grads_after(false);
  REQUIRE(acc.size() == joint.size());
  for (size_t i = 0; i < acc.size(); ++i) {
    REQUIRE(acc[i].size() == joint[i].size());
    for (size_t k = 0; k < acc[i].size(); ++k) CHECK(acc[i][k] == joint[i][k]);
  }
}
