// A model built from the ops and modules added for PyTorch parity (upsampling, padding, transposed
// convolution, group norm, LeakyReLU, SiLU, clamp, where, comparisons, gather, index_select,
// cumsum, abs, maximum, NLL) trains under budgets bitwise equal to unlimited memory: the new ops
// are recorded lazily, planned and rematerialised like the others.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

struct Net {
  std::shared_ptr<nn::Sequential> down, up;
  std::shared_ptr<nn::Linear> head;
  std::vector<Tensor> parameters() const {
    std::vector<Tensor> p = down->parameters();
    for (const auto& m : {up->parameters(), head->parameters()})
      p.insert(p.end(), m.begin(), m.end());
    return p;
  }
};

Net make() {
  Net n;
  n.down = std::make_shared<nn::Sequential>();
  n.down->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 8, 3).stride(2).padding(1)));
  n.down->push_back(std::make_shared<nn::GroupNorm>(2, 8));
  n.down->push_back(std::make_shared<nn::LeakyReLU>(0.1));
  n.up = std::make_shared<nn::Sequential>();
  n.up->push_back(std::make_shared<nn::Upsample>(
      nn::UpsampleOptions().scale_factor(std::array<double, 2>{2.0, 2.0}).mode("bilinear")));
  n.up->push_back(
      std::make_shared<nn::ConvTranspose2d>(nn::ConvTranspose2dOptions(8, 4, 3).padding(1)));
  n.up->push_back(std::make_shared<nn::SiLU>());
  n.head = std::make_shared<nn::Linear>(4 * 6, 5);
  return n;
}

struct Run {
  std::vector<float> losses;
  std::vector<std::vector<float>> params;
};

Run train(const std::string& budget) {
  Session s({.seed = 13, .memory_budget = budget});
  Net n = make();
  optim::AdamW opt(n.parameters(), optim::AdamWOptions(1e-2).amsgrad(true));
  const Tensor x = randn({4, 3, 12, 12});
  const Tensor y = from_vector<int64_t>({0, 3, 4, 1}, {4});
  const Tensor rows = from_vector<int64_t>({0, 2, 5, 7, 9, 11}, {6});
  Run r;
  for (int step = 0; step < 4; ++step) {
    Tensor h = n.up->forward(n.down->forward(x));                  // [4, 4, 12, 12]
    h = pad(h, {1, 1, 0, 0}, "reflect");                           // [4, 4, 12, 14]
    h = index_select(h, 3, rows);                                  // [4, 4, 12, 6]
    h = clamp(h, -3.0, 3.0) + where(gt(h, 0.0), abs(h), h * 0.5);  // comparisons, where, abs
    h = maximum(h, cumsum(h, 2) * 0.01).mean({2});                 // [4, 4, 6]
    h = gather(h, 2, from_vector<int64_t>(std::vector<int64_t>(96, 1), {4, 4, 6})) + h;
    Tensor loss = nll_loss(log_softmax(n.head->forward(h.reshape({4, 24})), 1), y);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    if (!budget.empty())
      CHECK_MESSAGE(s.last_report().peak_bytes <= s.last_report().budget_bytes,
                    s.last_report().str());
  }
  for (const Tensor& p : n.parameters()) r.params.push_back(p.to_vector<float>());
  return r;
}

}  // namespace

TEST_CASE(
    "budget: a model of the PyTorch-parity ops and modules trains bitwise equal to unlimited" *
    doctest::test_suite("executor")) {
  const Run ref = train("");
  std::string smallest;
  try {
    train("0.0001");
  } catch (const InfeasibleBudget& e) {
    smallest = std::to_string(e.smallest_feasible_bytes) + "B";
  }
  REQUIRE(smallest != "0B");
  REQUIRE(!smallest.empty());
  for (const std::string& budget : {std::string("0.5"), smallest}) {
    CAPTURE(budget);
    const Run r = train(budget);
    CHECK(r.losses == ref.losses);
    CHECK(r.params == ref.params);
  }
}
