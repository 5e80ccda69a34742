// A training step on CUDA against the same step on the CPU, and rematerialisation on CUDA bitwise
// equal to unlimited memory on CUDA (DESIGN invariant 2, on the device).
#include <memory>

#include "nn/nn.h"
#include "optim/optim.h"
#include "tests/cuda/cuda_checks.h"

using namespace lethe;

namespace {

struct Result {
  std::vector<float> losses;
  std::vector<std::vector<float>> params;
  StepReport last;
};

// Three AdamW steps of a small Transformer block + MLP head (dropout included) on `d`.
Result train(Device d, const std::string& budget) {
  Session s({.device = d, .seed = 21, .memory_budget = budget});
  auto block = std::make_shared<nn::TransformerBlock>(
      nn::TransformerBlockOptions(32, 4).mlp_ratio(2).dropout(0.1).causal(true));
  auto head = std::make_shared<nn::Linear>(32, 7);
  auto x = randn({4, 16, 32});
  std::vector<int64_t> lab(64);
  for (size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<int64_t>((i * 5) % 7);
  auto y = from_vector(lab, {64});
  std::vector<Tensor> params = block->parameters();
  for (auto& p : head->parameters()) params.push_back(p);
  block->train();
  optim::AdamW opt(params, optim::AdamWOptions(1e-3).weight_decay(0.01));
  Result r;
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    Tensor logits = head->forward(block->forward(x)).reshape({64, 7});
    Tensor loss = cross_entropy(logits, y);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.last = s.last_report();
    if (!budget.empty()) CHECK_MESSAGE(r.last.peak_bytes <= r.last.budget_bytes, r.last.str());
  }
  for (auto& p : params) r.params.push_back(p.to_vector<float>());
  return r;
}

}  // namespace

TEST_CASE("cuda: a training step matches the CPU step") {
  LETHE_SKIP_WITHOUT_CUDA();
  cuda::set_allow_tf32(false);
  Result cpu = train(Device::cpu(), "");
  Result gpu = train(Device::cuda(0), "");
  REQUIRE(cpu.params.size() == gpu.params.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i) CHECK(gpu.losses[i] == doctest::Approx(cpu.losses[i]).epsilon(1e-4));
  for (size_t p = 0; p < cpu.params.size(); ++p)
    for (size_t i = 0; i < cpu.params[p].size(); ++i)
      CHECK_MESSAGE(std::abs(cpu.params[p][i] - gpu.params[p][i]) <= 1e-4 * (1 + std::abs(cpu.params[p][i])),
                    "param ", p, " element ", i);
}

TEST_CASE("cuda: remat under a budget is bitwise equal to unlimited memory") {
  LETHE_SKIP_WITHOUT_CUDA();
  Result full = train(Device::cuda(0), "");
  for (const char* budget : {"0.5", "0.25"}) {
    Result r = train(Device::cuda(0), budget);
    CHECK(r.last.budget_bytes > 0);
    CHECK(r.losses == full.losses);
    CHECK(r.params == full.params);
  }
}
