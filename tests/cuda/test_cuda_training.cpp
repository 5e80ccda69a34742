// Training steps on CUDA against the same steps on the CPU (a Transformer block, a small CNN), and
// rematerialisation on CUDA bitwise equal to unlimited memory on CUDA (DESIGN invariant 2, on the
// device).
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

enum class Opt { adamw, sgd };

// Three steps of a small Transformer block + MLP head (dropout included) on `d`, by AdamW or SGD
// with momentum.
// `host_budget`: a pinned tier holding the parameters and the optimizer state from the first step
// (SessionOptions::offload_state "always").
Result train(Device d, const std::string& budget, Opt which = Opt::adamw, int streams = 1,
             bool data_parallel = false, const std::string& host_budget = "") {
  SessionOptions o{.device = d,
                   .seed = 21,
                   .memory_budget = budget,
                   .streams = streams,
                   .data_parallel = data_parallel,
                   .bucket_bytes = 4096};
  if (!host_budget.empty()) {
    o.host_budget = host_budget;
    o.tier_bandwidth = "10GB/s";
    o.offload_state = "always";
  }
  Session s(o);
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
  std::unique_ptr<optim::Optimizer> opt;
  if (which == Opt::adamw)
    opt = std::make_unique<optim::AdamW>(params, optim::AdamWOptions(1e-3).weight_decay(0.01));
  else
    opt = std::make_unique<optim::SGD>(params,
                                       optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.01));
  Result r;
  for (int step = 0; step < 3; ++step) {
    opt->zero_grad();
    Tensor logits = head->forward(block->forward(x)).reshape({64, 7});
    Tensor loss = cross_entropy(logits, y);
    loss.backward();
    opt->step();
    r.losses.push_back(loss.item<float>());
    r.last = s.last_report();
    if (!budget.empty()) CHECK_MESSAGE(r.last.peak_bytes <= r.last.budget_bytes, r.last.str());
  }
  for (auto& p : params) r.params.push_back(p.to_vector<float>());
  return r;
}

}  // namespace

// SGD, not AdamW: the key part of the qkv bias has a mathematically zero gradient (softmax is
// invariant to a shift of a query's scores), so both devices hold f32 rounding noise there, and
// AdamW's first steps turn any noise into steps of about lr (m / sqrt(v) ~ ±1): two correct f32
// runs, CPU and CPU, were measured 0.84x this tolerance apart. SGD moves a parameter by lr times
// its gradient, so the noise stays noise. AdamW's update itself is compared below on exact
// gradients.
TEST_CASE("cuda: a training step matches the CPU step") {
  LETHE_SKIP_WITHOUT_CUDA();
  cuda::set_allow_tf32(false);
  Result cpu = train(Device::cpu(), "", Opt::sgd);
  Result gpu = train(Device::cuda(0), "", Opt::sgd);
  REQUIRE(cpu.params.size() == gpu.params.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i)
    CHECK(gpu.losses[i] == doctest::Approx(cpu.losses[i]).epsilon(1e-4));
  for (size_t p = 0; p < cpu.params.size(); ++p)
    for (size_t i = 0; i < cpu.params[p].size(); ++i)
      CHECK_MESSAGE(
          std::abs(cpu.params[p][i] - gpu.params[p][i]) <= 1e-4 * (1 + std::abs(cpu.params[p][i])),
          "param ", p, " element ", i);
}

// Three AdamW steps where every gradient is exact on both devices (d/dw sum(w * x) = x): the
// update kernel against the CPU's.
std::vector<float> adamw_steps(Device d) {
  Session s({.device = d, .seed = 8});
  Tensor w = randn({1000});
  w.set_requires_grad(true);
  Tensor x = randn({1000});
  optim::AdamW opt({w}, optim::AdamWOptions(1e-2).weight_decay(0.1));
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    (w * x).sum().backward();
    opt.step();
  }
  return w.to_vector<float>();
}

TEST_CASE("cuda: AdamW steps match the CPU's") {
  LETHE_SKIP_WITHOUT_CUDA();
  const std::vector<float> cpu = adamw_steps(Device::cpu()), gpu = adamw_steps(Device::cuda(0));
  REQUIRE(cpu.size() == gpu.size());
  for (size_t i = 0; i < cpu.size(); ++i)
    CHECK_MESSAGE(std::abs(cpu[i] - gpu[i]) <= 1e-6 * (1 + std::abs(cpu[i])), "element ", i,
                  ": cpu ", cpu[i], ", cuda ", gpu[i]);
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

TEST_CASE("cuda: parameters and optimizer state in the pinned tier, bitwise as unlimited") {
  LETHE_SKIP_WITHOUT_CUDA();
  Result full = train(Device::cuda(0), "");
  for (int streams : {1, 2}) {
    CAPTURE(streams);
    Result r = train(Device::cuda(0), "0.5", Opt::adamw, streams, false, "64MiB");
    MESSAGE(r.last.str());
    CHECK(r.last.tier_home_bytes > 0);
    CHECK(r.losses == full.losses);
    CHECK(r.params == full.params);
  }
}

namespace {

struct CnnResult {
  std::vector<float> losses;
  std::vector<std::vector<float>> params, buffers;
  StepReport last;
};

// Three AdamW steps of a small CNN on `d`: conv+bn+relu, max pool, strided conv+bn+relu, average
// pool, conv (groups, bias), adaptive average pool to a size that does not divide, linear head.
CnnResult train_cnn(Device d, const std::string& budget, int streams = 1) {
  Session s({.device = d, .seed = 31, .memory_budget = budget, .streams = streams});
  using nn::Conv2dOptions;
  auto body = std::make_shared<nn::Sequential>();
  auto c1 = std::make_shared<nn::Conv2d>(Conv2dOptions(3, 16, 3).padding(1).bias(false));
  auto b1 = std::make_shared<nn::BatchNorm2d>(16);
  auto c2 = std::make_shared<nn::Conv2d>(Conv2dOptions(16, 16, 3).padding(1).stride(2).bias(false));
  auto b2 = std::make_shared<nn::BatchNorm2d>(16);
  auto c3 = std::make_shared<nn::Conv2d>(Conv2dOptions(16, 16, 3).padding(2).dilation(2).groups(2));
  auto head = std::make_shared<nn::Linear>(16 * 3 * 3, 5);
  for (std::shared_ptr<nn::UnaryModule> m :
       std::vector<std::shared_ptr<nn::UnaryModule>>{c1, b1, c2, b2, c3, head})
    body->push_back(m);  // a container for parameters and buffers; forward is written out below
  auto x = randn({8, 3, 32, 32});  // activations, not one op's working set, dominate the step
  auto y = from_vector<int64_t>({0, 1, 2, 3, 4, 1, 3, 2}, {8});
  body->train();
  optim::AdamW opt(body->parameters(), optim::AdamWOptions(1e-2).weight_decay(0.01));
  CnnResult r;
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    Tensor h = max_pool2d(b1->forward(c1->forward(x)).relu(), {2, 2});  // 32 -> 16
    h = b2->forward(c2->forward(h)).relu();                             // 16 -> 8
    h = avg_pool2d(h, {3, 3}, {1, 1}, {1, 1});                          // 8 -> 8
    h = adaptive_avg_pool2d(c3->forward(h), {3, 3});                    // 8 -> 3 (windows overlap)
    Tensor loss = cross_entropy(head->forward(h.flatten(1)), y);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.last = s.last_report();
    if (!budget.empty()) CHECK_MESSAGE(r.last.peak_bytes <= r.last.budget_bytes, r.last.str());
  }
  for (auto& p : body->parameters()) r.params.push_back(p.to_vector<float>());
  for (auto& b : body->buffers()) r.buffers.push_back(b.to_vector<float>());
  return r;
}

}  // namespace

TEST_CASE("cuda: a CNN training step (conv, batch norm, pooling) matches the CPU step") {
  LETHE_SKIP_WITHOUT_CUDA();
  cuda::set_allow_tf32(false);
  CnnResult cpu = train_cnn(Device::cpu(), "");
  CnnResult gpu = train_cnn(Device::cuda(0), "");
  REQUIRE(cpu.params.size() == gpu.params.size());
  REQUIRE(cpu.buffers.size() == gpu.buffers.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i)
    CHECK(gpu.losses[i] == doctest::Approx(cpu.losses[i]).epsilon(1e-4));
  auto close = [](const std::vector<std::vector<float>>& a,
                  const std::vector<std::vector<float>>& b, const char* what) {
    for (size_t p = 0; p < a.size(); ++p) {
      REQUIRE(a[p].size() == b[p].size());
      for (size_t i = 0; i < a[p].size(); ++i)
        CHECK_MESSAGE(std::abs(a[p][i] - b[p][i]) <= 1e-4 * (1 + std::abs(a[p][i])), what, " ", p,
                      " element ", i, ": cpu ", a[p][i], ", cuda ", b[p][i]);
    }
  };
  close(cpu.params, gpu.params, "param");
  close(cpu.buffers, gpu.buffers, "buffer");
}

// Bitwise equality with the smallest budget the planner fits (the cuDNN workspaces are in it) and
// half of the no-remat peak when that fits too.
void cnn_budgets_match(Device d) {
  CnnResult full = train_cnn(d, "");
  size_t smallest = 0;
  try {
    train_cnn(d, "0.0001");
  } catch (const InfeasibleBudget& e) {
    smallest = e.smallest_feasible_bytes;
  }
  REQUIRE(smallest > 0);
  for (const std::string& budget : {std::string("0.5"), std::to_string(smallest)}) {
    CAPTURE(budget);
    CnnResult r;
    try {
      r = train_cnn(d, budget);
    } catch (const InfeasibleBudget& e) {
      CHECK_MESSAGE(budget == "0.5", e.what());  // the smallest feasible budget must fit
      continue;
    }
    CHECK(r.last.budget_bytes > 0);
    CHECK(r.losses == full.losses);
    CHECK(r.params == full.params);
    CHECK(r.buffers == full.buffers);
  }
}

TEST_CASE("cuda: a CNN under a tight budget is bitwise equal to unlimited memory") {
  LETHE_SKIP_WITHOUT_CUDA();
  cnn_budgets_match(Device::cuda(0));
}

// Plans on CUDA streams (a context, cuBLAS and cuDNN handle per stream, events between them) give
// bitwise the serial unlimited step's results (the streams issue).
TEST_CASE("cuda: steps on 2 and 3 streams are bitwise equal to the serial unlimited step") {
  LETHE_SKIP_WITHOUT_CUDA();
  const Result full = train(Device::cuda(0), "");
  const CnnResult cnn_full = train_cnn(Device::cuda(0), "");
  for (const int streams : {2, 3})
    for (const char* budget : {"1", "0.5", "0.25"}) {
      CAPTURE(streams);
      CAPTURE(budget);
      const Result r = train(Device::cuda(0), budget, Opt::adamw, streams);
      CHECK(r.last.streams == streams);
      CHECK(r.losses == full.losses);
      CHECK(r.params == full.params);
      const CnnResult c = train_cnn(Device::cuda(0), budget, streams);
      CHECK(c.last.streams == streams);
      CHECK(c.losses == cnn_full.losses);
      CHECK(c.params == cnn_full.params);
      CHECK(c.buffers == cnn_full.buffers);
    }
}

// Data parallel on one CUDA rank: the buckets, their all-reduces (a copy on one rank; NCCL across
// ranks) and the copies out run on a communication stream beside the compute stream, bitwise the
// step without data parallel, unlimited and under budgets. (Two CUDA ranks need two GPUs and
// mpirun: tests/dist on such a machine.)
TEST_CASE("cuda: data parallel on one rank is bitwise the step without it") {
  LETHE_SKIP_WITHOUT_CUDA();
  const Result ref = train(Device::cuda(0), "");
  for (const char* budget : {"", "1", "0.5"}) {
    CAPTURE(budget);
    const Result r = train(Device::cuda(0), budget, Opt::adamw, 1, true);
    CHECK(r.last.buckets >= 2);
    CHECK(r.last.streams == 2);
    CHECK(r.losses == ref.losses);
    CHECK(r.params == ref.params);
  }
}
