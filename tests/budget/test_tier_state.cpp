// Parameters and optimizer state whose home is the second tier (SessionOptions::offload_state):
// a budget below parameters + gradients + optimizer state trains, bitwise as unlimited memory.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

// Wide layers on a small batch: parameters and AdamW's state dominate the step.
struct Wide {
  std::shared_ptr<nn::Sequential> net = std::make_shared<nn::Sequential>();
  Tensor x, y;
  Wide() {
    net->push_back(std::make_shared<nn::Linear>(64, 256));
    for (int i = 0; i < 4; ++i) {
      net->push_back(std::make_shared<nn::GELU>());
      net->push_back(std::make_shared<nn::Linear>(256, 256));
    }
    net->push_back(std::make_shared<nn::Linear>(256, 10));
    x = randn({8, 64});
    y = from_vector<int64_t>({1, 2, 3, 4, 5, 6, 7, 8}, {8});
  }
};

struct Run {
  std::vector<float> losses;
  std::vector<std::vector<float>> params;
  StepReport report;
  size_t state_bytes = 0;  // parameters + gradients + AdamW state
};

SessionOptions state_options(const std::string& budget, const std::string& offload_state) {
  SessionOptions o{.seed = 3, .memory_budget = budget};
  o.host_budget = "64MiB";
  o.offload_path = std::filesystem::temp_directory_path().string();
  o.tier_bandwidth = "1GB/s";
  o.offload_state = offload_state;
  return o;
}

Run train(const SessionOptions& o, int steps = 4) {
  Session s(o);
  Wide w;
  optim::AdamW opt(w.net->parameters(), optim::AdamWOptions(1e-2));
  Run r;
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(w.net->forward(w.x), w.y);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.report = s.last_report();
    if (!o.memory_budget.empty())
      CHECK_MESSAGE(r.report.peak_bytes <= r.report.budget_bytes, r.report.str());
  }
  for (const Tensor& p : w.net->parameters()) {
    r.params.push_back(p.to_vector<float>());
    r.state_bytes += 4 * p.numel() * sizeof(float);
  }
  return r;
}

}  // namespace

TEST_CASE("tier state: half of parameters + gradients + AdamW state trains, bitwise") {
  const Run ref = train({.seed = 3});
  const size_t half = ref.state_bytes / 2;
  const std::string budget = std::to_string(half) + "B";
  CAPTURE(half);
  // Kept in the budget, the parameters and state alone exceed it.
  CHECK_THROWS_AS(train(state_options(budget, "never"), 1), InfeasibleBudget);
  for (const char* mode : {"auto", "always"}) {
    CAPTURE(mode);
    const Run r = train(state_options(budget, mode));
    MESSAGE(r.report.str());
    CHECK(r.losses == ref.losses);
    CHECK(r.params == ref.params);
    CHECK(r.report.tier_home_bytes >= ref.state_bytes * 3 / 4);
    CHECK(r.report.budget_bytes <= half);
    // The updates write only values whose home is the tier: they run inside the plan, each
    // freeing its gradient (SessionOptions::early_updates).
    CHECK(r.report.early_updates > 0);
  }
}

TEST_CASE("tier state: with early updates, below parameters + gradients alone") {
  const Run ref = train({.seed = 3});
  // 0.3 of parameters + gradients + AdamW state is less than the gradients plus the largest op's
  // working set (a linear's backward): no step holding every gradient to its end fits.
  const size_t b = ref.state_bytes * 3 / 10;
  CAPTURE(b);
  SessionOptions o = state_options(std::to_string(b) + "B", "auto");
  const Run r = train(o);
  MESSAGE(r.report.str());
  CHECK(r.losses == ref.losses);
  CHECK(r.params == ref.params);
  CHECK(r.report.early_updates > 0);
  o.early_updates = false;
  CHECK_THROWS_AS(train(o, 1), InfeasibleBudget);
}

TEST_CASE("tier state: evaluation outside the budget and a checkpoint read and write the homes") {
  const std::string path =
      (std::filesystem::temp_directory_path() / "lethe_tier_state_ckpt.safetensors").string();
  const Run ref = train({.seed = 3});
  const size_t half = ref.state_bytes / 2;
  Session s(state_options(std::to_string(half) + "B", "always"));
  Wide w;
  optim::AdamW opt(w.net->parameters(), optim::AdamWOptions(1e-2));
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = cross_entropy(w.net->forward(w.x), w.y);
    loss.backward();
    opt.step();
    return loss.item<float>();
  };
  std::vector<float> losses;
  for (int i = 0; i < 2; ++i) losses.push_back(step());
  REQUIRE(s.last_report().tier_home_bytes > 0);
  save_checkpoint(path, *w.net, opt, {.step = 2});
  // Outside the budget the forward pass reads the parameters from their homes.
  float eval = 0;
  {
    NoGradGuard no_grad;
    OutsideBudgetGuard outside;
    eval = cross_entropy(w.net->forward(w.x), w.y).item<float>();
  }
  std::vector<float> after;
  for (int i = 0; i < 2; ++i) after.push_back(step());
  losses.insert(losses.end(), after.begin(), after.end());
  CHECK(losses == ref.losses);
  // Back to the checkpoint: the same two steps again, bitwise.
  (void)load_checkpoint(path, *w.net, opt);
  std::filesystem::remove(path);
  {
    NoGradGuard no_grad;
    OutsideBudgetGuard outside;
    CHECK(cross_entropy(w.net->forward(w.x), w.y).item<float>() == eval);
  }
  std::vector<float> again;
  for (int i = 0; i < 2; ++i) again.push_back(step());
  CHECK(again == after);
}

TEST_CASE("tier state: a write that fails mid-update leaves parameters and state as before") {
  const Run ref = train({.seed = 3});
  const std::string budget = std::to_string(ref.state_bytes / 2) + "B";
  // 36 values (12 parameters, 24 AdamW moments) move to their homes first; then the k-th copy out
  // fails: among the first step's write-backs of updated values (and its plan's copies).
  for (const char* k : {"42", "67"}) {
    CAPTURE(k);
    ::setenv("LETHE_TIER_FAIL_WRITE", k, 1);
    Session s(state_options(budget, "always"));
    ::unsetenv("LETHE_TIER_FAIL_WRITE");
    Wide w;
    optim::AdamW opt(w.net->parameters(), optim::AdamWOptions(1e-2));
    std::vector<std::vector<float>> before;
    for (const Tensor& p : w.net->parameters()) before.push_back(p.to_vector<float>());
    bool failed = false;
    try {
      Tensor loss = cross_entropy(w.net->forward(w.x), w.y);
      loss.backward();
      opt.step();
      (void)loss.item<float>();
    } catch (const Error& e) {
      failed = true;
      const std::string msg = e.what();
      CHECK_MESSAGE(msg.find("second") != std::string::npos, msg);
      CHECK_MESSAGE(msg.find("No space left") != std::string::npos, msg);
    }
    REQUIRE(failed);
    std::vector<std::vector<float>> after;
    for (const Tensor& p : w.net->parameters()) after.push_back(p.to_vector<float>());
    CHECK(after == before);
    for (const auto& [name, t] : opt.state_dict().tensors)
      if (t.dtype() == DType::f32) {
        CAPTURE(name);
        const std::vector<float> v = t.to_vector<float>();
        CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; }));
      }
  }
}

TEST_CASE("tier state: on two streams, with a trace of the reads" *
          doctest::test_suite("executor")) {
  const Run ref = train({.seed = 3});
  const std::string trace = "tier_state_trace_test.json";
  SessionOptions o = state_options(std::to_string(ref.state_bytes / 2) + "B", "always");
  o.streams = 2;
  o.num_threads = 2;
  o.tier_plan = "recompute";  // no copies of activations: the plan runs on the streams
  o.trace_path = trace;
  const Run r = train(o);
  MESSAGE(r.report.str());
  CHECK(r.report.streams == 2);
  CHECK(r.losses == ref.losses);
  CHECK(r.params == ref.params);
  std::ifstream f(trace);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::remove(trace.c_str());
  CHECK(text.find("read_home") != std::string::npos);
}

TEST_CASE("tier state: a model that dies gives its homes back to the next one") {
  // Two models, one after the other, in one session; the tier holds the homes of one (two places
  // of parameters + AdamW state each) and little more.
  auto rounds = [](const SessionOptions& o) {
    Session s(o);
    std::vector<float> losses;
    for (int round = 0; round < 2; ++round) {
      Wide w;
      optim::AdamW opt(w.net->parameters(), optim::AdamWOptions(1e-2));
      for (int step = 0; step < 2; ++step) {
        opt.zero_grad();
        Tensor loss = cross_entropy(w.net->forward(w.x), w.y);
        loss.backward();
        opt.step();
        losses.push_back(loss.item<float>());
        if (!o.memory_budget.empty()) CHECK(s.last_report().tier_home_bytes > 0);
      }
    }
    return losses;
  };
  const Run ref = train({.seed = 3}, 1);
  const std::vector<float> unlimited = rounds({.seed = 3});
  SessionOptions o = state_options(std::to_string(ref.state_bytes / 2) + "B", "always");
  o.host_budget = std::to_string(ref.state_bytes * 3 / 4 * 2 + (size_t{1} << 20)) + "B";
  CHECK(rounds(o) == unlimited);
}

TEST_CASE("tier state: bad settings are errors naming the option") {
  SessionOptions o{.seed = 3, .memory_budget = "1MiB"};
  o.offload_state = "sometimes";
  CHECK_THROWS_WITH_AS(Session{o}, doctest::Contains("offload_state 'sometimes'"), Error);
  o.offload_state = "always";
  CHECK_THROWS_WITH_AS(Session{o}, doctest::Contains("set host_budget too"), Error);
}
