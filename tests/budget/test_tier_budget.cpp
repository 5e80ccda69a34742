// A second memory tier (SessionOptions::host_budget, a file in offload_path on the CPU): steps
// copy values out of the budget and back, planned jointly with recomputation, and train bitwise
// as unlimited memory, below the smallest budget recomputation alone reaches. Faults (a missing
// directory, a disk that fills up mid-step) are errors that name the problem and leave the
// parameters as they were.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../../examples/unet/model.h"
#include "lethe.h"

using namespace lethe;

namespace {

struct Net {
  std::shared_ptr<nn::Module> module;
  std::function<Tensor()> loss;
};

// A deep, narrow MLP on a large batch: activations dominate the step (parameters are small), and
// each is idle for long stretches between its forward use and its backward use.
Net make_deep_mlp() {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Linear>(16, 64));
  for (int i = 0; i < 10; ++i) {
    seq->push_back(std::make_shared<nn::Tanh>());
    seq->push_back(std::make_shared<nn::Linear>(64, 64));
  }
  seq->push_back(std::make_shared<nn::Linear>(64, 10));
  auto x = randn({1024, 16});
  auto y = from_vector<int64_t>(std::vector<int64_t>(1024, 3), {1024});
  return {seq, [seq, x, y] { return cross_entropy(seq->forward(x), y); }};
}

// Convolutions with batch norm (running statistics) and dropout: 1x1 convolutions mixing
// channels between 3x3 ones, so that activations, not one convolution's workspace, dominate.
Net make_cnn() {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1)));
  seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::Dropout>(0.2));
  for (int i = 0; i < 8; ++i) {
    seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 4, 1)));
    seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
    seq->push_back(std::make_shared<nn::Tanh>());
  }
  auto head = std::make_shared<nn::Linear>(4 * 16 * 16, 3);
  auto root = std::make_shared<nn::Sequential>();
  root->push_back(seq);
  root->push_back(head);
  auto x = randn({32, 3, 16, 16});
  auto y = from_vector<int64_t>(std::vector<int64_t>(32, 1), {32});
  return {root, [seq, head, x, y] {
            return cross_entropy(head->forward(seq->forward(x).flatten(1)), y);
          }};
}

// Transformer blocks with causal attention and dropout.
Net make_transformer() {
  auto blocks = std::make_shared<nn::Sequential>();
  for (int i = 0; i < 3; ++i)
    blocks->push_back(std::make_shared<nn::TransformerBlock>(
        nn::TransformerBlockOptions(32, 4).causal(true).dropout(0.1)));
  auto x = randn({4, 16, 32});
  return {blocks, [blocks, x] { return blocks->forward(x).pow(2.0).mean(); }};
}

// A small U-Net (examples/unet): skip connections hold encoder values across the decoder.
Net make_unet() {
  auto net = std::make_shared<examples::UNet>(
      examples::UNetConfig{.depth = 2, .width = 4, .in_channels = 3, .classes = 3});
  auto x = randn({4, 3, 16, 16});
  std::vector<int64_t> labels(4 * 16 * 16);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>((i * 7) % 3);
  auto y = from_vector(labels, {4, 16, 16});
  return {net, [net, x, y] {
            Tensor logits = net->forward(x);  // [N, C, H, W] -> rows of C
            return cross_entropy(logits.permute({0, 2, 3, 1}).reshape({-1, 3}), y.reshape({-1}));
          }};
}

struct Run {
  std::vector<float> losses;
  std::vector<std::vector<float>> params, buffers;
  StepReport report;
};

SessionOptions tier_options(const std::string& budget, const std::string& host) {
  SessionOptions o{.seed = 7, .memory_budget = budget};
  o.host_budget = host;
  o.offload_path = std::filesystem::temp_directory_path().string();
  // Plans with copies weigh copy times by the bandwidths: stated, they plan alike on every machine
  // and under any load (a probe's figures would move the budgets that fit with copies).
  o.tier_bandwidth = "1GB/s";
  return o;
}

Run train(const std::function<Net()>& make, const SessionOptions& o, int steps = 3) {
  Session s(o);
  Net n = make();
  n.module->train();
  optim::AdamW opt(n.module->parameters(), optim::AdamWOptions(1e-2));
  Run r;
  for (int step = 0; step < steps; ++step) {
    Tensor loss = n.loss();
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.report = s.last_report();
    if (!o.memory_budget.empty())
      CHECK_MESSAGE(r.report.peak_bytes <= r.report.budget_bytes, r.report.str());
  }
  for (const Tensor& p : n.module->parameters()) r.params.push_back(p.to_vector<float>());
  for (const Tensor& b : n.module->buffers()) r.buffers.push_back(b.to_vector<float>());
  return r;
}

// The smallest budget of the step with recomputation alone (as find_min_budget plans it).
size_t recompute_smallest(const std::function<Net()>& make) {
  return find_min_budget({.seed = 7, .early_updates = false}, [&] {
    Net n = make();
    n.module->train();
    optim::AdamW opt(n.module->parameters(), optim::AdamWOptions(1e-2));
    n.loss().backward();
    opt.step();
  });
}

// `must_copy`: some budget below recompute-only's smallest must fit with copies (false where that
// smallest is within a few percent of the resident bytes plus the largest op's working set, which
// no plan goes below).
void check_below_recompute_only(const std::function<Net()>& make, bool must_copy) {
  const Run ref = train(make, {.seed = 7});
  const size_t smallest = recompute_smallest(make);
  // Around and below what recomputation alone fits, with a tier as large as the step: every
  // budget that trains is bitwise unlimited, and below it plans with copies train.
  bool copied = false;
  for (const double f : {1.25, 0.97, 0.93, 0.9, 0.8}) {
    const size_t b = static_cast<size_t>(f * static_cast<double>(smallest));
    CAPTURE(b);
    Run r;
    try {
      r = train(make, tier_options(std::to_string(b) + "B", "64MiB"));
    } catch (const InfeasibleBudget& e) {
      MESSAGE("the fraction " << f << " of recompute-only's smallest budget does not fit: "
                              << std::string(e.what()));
      break;
    }
    MESSAGE(r.report.str());
    CHECK(r.losses == ref.losses);
    CHECK(r.params == ref.params);
    CHECK(r.buffers == ref.buffers);
    CHECK(!r.report.tier_plan.empty());
    CHECK(r.report.tier_peak_bytes <= size_t{64} << 20);
    if (r.report.tier_plan != "recompute") {
      CHECK(r.report.copy_out_bytes > 0);
      CHECK(r.report.copy_in_bytes > 0);
      CHECK(r.report.tier_peak_bytes > 0);
      // Below the smallest budget recomputation alone fits (at the first step; later steps plan
      // from measured times, which can move that smallest a little either way).
      if (f < 1) copied = true;
    }
  }
  if (must_copy)
    CHECK_MESSAGE(copied, "no budget below recompute-only's smallest trained with copies");
}

}  // namespace

TEST_CASE("tier: a deep MLP trains below recompute-only's smallest budget, bitwise as unlimited" *
          doctest::test_suite("executor")) {
  check_below_recompute_only(make_deep_mlp, true);
}

TEST_CASE("tier: a CNN with batch norm and dropout, below recompute-only's smallest budget" *
          doctest::test_suite("tier")) {
  check_below_recompute_only(make_cnn, false);
}

TEST_CASE("tier: Transformer blocks, below recompute-only's smallest budget" *
          doctest::test_suite("tier")) {
  check_below_recompute_only(make_transformer, true);
}

TEST_CASE("tier: a U-Net, below recompute-only's smallest budget" * doctest::test_suite("tier")) {
  check_below_recompute_only(make_unet, false);
}

TEST_CASE("tier: joint planning measures each kind's plan and keeps the fastest measured" *
          doctest::test_suite("tier")) {
  // Once the plan is made from warm measured times (the fourth step), the plan predicted fastest
  // and the fastest plan of each other kind run a step each in turn, for three rounds, and more (up
  // to six) while the two fastest are within 5 %; then the fastest measured stays. Whatever runs,
  // every step is bitwise the unlimited one, within the budget.
  constexpr int kSteps = 23;
  const Run ref = train(make_deep_mlp, {.seed = 7}, kSteps);
  const size_t smallest = recompute_smallest(make_deep_mlp);
  bool compared = false;
  for (const double f : {1.1, 1.0, 0.97}) {
    CAPTURE(f);
    Session s(tier_options(
        std::to_string(static_cast<size_t>(f * static_cast<double>(smallest))) + "B", "64MiB"));
    Net n = make_deep_mlp();
    n.module->train();
    optim::AdamW opt(n.module->parameters(), optim::AdamWOptions(1e-2));
    std::vector<float> losses;
    std::vector<StepReport> reports;
    try {
      for (int step = 0; step < kSteps; ++step) {
        Tensor loss = n.loss();
        loss.backward();
        opt.step();
        losses.push_back(loss.item<float>());
        reports.push_back(s.last_report());
        CHECK_MESSAGE(reports.back().peak_bytes <= reports.back().budget_bytes,
                      reports.back().str());
      }
    } catch (const InfeasibleBudget& e) {
      MESSAGE("the fraction " << f << " does not fit: " << std::string(e.what()));
      continue;
    }
    CHECK(losses == ref.losses);
    std::vector<std::vector<float>> params;
    for (const Tensor& p : n.module->parameters()) params.push_back(p.to_vector<float>());
    CHECK(params == ref.params);
    // The steps that measured a candidate: consecutive from the fourth, each kind as often.
    std::vector<std::string> kinds;
    size_t first = kSteps, last = 0;
    for (size_t i = 0; i < reports.size(); ++i) {
      if (!reports[i].tier_trial) continue;
      first = std::min(first, i);
      last = i;
      kinds.push_back(reports[i].tier_plan);
    }
    if (kinds.empty()) {
      MESSAGE("only one kind of plan fits at " << f << ": " << reports.back().str());
      continue;
    }
    compared = true;
    MESSAGE(reports.back().str());
    CHECK(first == 3);
    REQUIRE(last - first + 1 == kinds.size());
    const std::vector<std::pair<std::string, double>>& measured = reports.back().tier_measured;
    REQUIRE(measured.size() >= 2);
    REQUIRE(kinds.size() % measured.size() == 0);
    const size_t rounds = kinds.size() / measured.size();
    CHECK(rounds >= 3);
    CHECK(rounds <= 6);
    std::vector<double> times;
    for (const auto& [kind, secs] : measured) times.push_back(secs);
    std::sort(times.begin(), times.end());
    if (rounds < 6) CHECK(times[1] >= 1.05 * times[0]);  // it stopped early: not close
    for (size_t i = 0; i < kinds.size(); ++i)
      CHECK(kinds[i] == measured[i % measured.size()].first);
    // After them: one plan, the fastest measured unless within 2 % of the predicted fastest.
    REQUIRE(last + 1 < reports.size());
    size_t pick = 0;
    for (size_t i = 1; i < measured.size(); ++i)
      if (measured[i].second < measured[pick].second) pick = i;
    if (measured[pick].second >= 0.98 * measured[0].second) pick = 0;
    for (size_t i = last + 1; i < reports.size(); ++i) {
      CHECK(!reports[i].tier_trial);
      CHECK(reports[i].tier_plan == measured[pick].first);
      CHECK(reports[i].tier_measured == measured);
    }
    CHECK(reports.back().str().find("plans measured: ") != std::string::npos);
  }
  CHECK_MESSAGE(compared, "no budget had plans of two kinds to measure");
}

TEST_CASE("tier: bad tier settings are errors naming the problem") {
  SessionOptions missing = tier_options("1MiB", "8MiB");
  missing.offload_path = "/nonexistent/lethe-tier";
  CHECK_THROWS_WITH_AS(Session{missing}, doctest::Contains("/nonexistent/lethe-tier"), Error);
  CHECK_THROWS_WITH_AS(Session{tier_options("1MiB", "0.5")}, doctest::Contains("host_budget"),
                       Error);
  CHECK_THROWS_WITH_AS(Session{tier_options("", "8MiB")}, doctest::Contains("memory_budget"),
                       Error);
  SessionOptions bad_bandwidth = tier_options("1MiB", "8MiB");
  bad_bandwidth.tier_bandwidth = "fast";
  CHECK_THROWS_WITH_AS(Session{bad_bandwidth}, doctest::Contains("tier_bandwidth"), Error);
  SessionOptions no_tier{.seed = 7, .memory_budget = "1MiB"};
  no_tier.tier_bandwidth = "1GB/s";
  CHECK_THROWS_WITH_AS(Session{no_tier}, doctest::Contains("set host_budget too"), Error);
}

TEST_CASE("tier: a disk that fills up mid-step is an error; the parameters are as before") {
  const size_t smallest = recompute_smallest(make_deep_mlp);
  const std::string budget = std::to_string(smallest * 9 / 10) + "B";
  // Every copy out of the tier's first step fails as on a full disk (ENOSPC after half the bytes).
  ::setenv("LETHE_TIER_FAIL_WRITE", "1", 1);
  Session s(tier_options(budget, "64MiB"));
  ::unsetenv("LETHE_TIER_FAIL_WRITE");
  Net n = make_deep_mlp();
  optim::AdamW opt(n.module->parameters(), optim::AdamWOptions(1e-2));
  std::vector<std::vector<float>> before;
  for (const Tensor& p : n.module->parameters()) before.push_back(p.to_vector<float>());
  Tensor loss = n.loss();
  loss.backward();
  bool failed = false;
  try {
    opt.step();
    (void)loss.item<float>();
  } catch (const InfeasibleBudget& e) {
    FAIL("the budget should fit with the tier: " << std::string(e.what()));
  } catch (const Error& e) {
    failed = true;
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.find("second memory tier") != std::string::npos, msg);
    CHECK_MESSAGE(msg.find("No space left") != std::string::npos, msg);
  }
  REQUIRE(failed);
  std::vector<std::vector<float>> after;
  for (const Tensor& p : n.module->parameters()) after.push_back(p.to_vector<float>());
  CHECK(after == before);
}

TEST_CASE("tier: the trace shows the copies on their streams and the tier's bytes" *
          doctest::test_suite("executor")) {
  const size_t smallest = recompute_smallest(make_deep_mlp);
  const std::string path = "tier_trace_test.json";
  const Run ref = train(make_deep_mlp, {.seed = 7});
  {
    SessionOptions o = tier_options(std::to_string(smallest) + "B", "64MiB");
    o.tier_plan = "offload";  // only the natural schedule with copies
    o.trace_path = path;
    const Run r = train(make_deep_mlp, o);
    CHECK(r.report.tier_plan == "offload");
    CHECK(r.losses == ref.losses);
    CHECK(r.params == ref.params);
  }
  std::ifstream f(path);
  const std::string trace((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::remove(path.c_str());
  CHECK(trace.find("\"cat\":\"copy out\"") != std::string::npos);
  CHECK(trace.find("\"cat\":\"copy in\"") != std::string::npos);
  CHECK(trace.find("second tier in use") != std::string::npos);
}

TEST_CASE("tier: a tier too small for the copies is refused naming both budgets") {
  const size_t smallest = recompute_smallest(make_deep_mlp);
  try {
    train(make_deep_mlp, tier_options(std::to_string(smallest * 9 / 10) + "B", "16KiB"), 1);
    FAIL("expected InfeasibleBudget");
  } catch (const InfeasibleBudget& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.find("memory budget of") != std::string::npos, msg);
    CHECK_MESSAGE(msg.find("host_budget 16.00 KiB") != std::string::npos, msg);
    // What to raise: the memory budget, or the host budget where copies to a larger tier fit
    // this memory budget (then the message names that tier's size).
    const bool host_named =
        msg.find("at this memory_budget a plan with copies fits a host_budget of") !=
        std::string::npos;
    CHECK_MESSAGE(msg.find(host_named ? "raise host_budget or memory_budget"
                                      : "raise memory_budget") != std::string::npos,
                  msg);
    CHECK(e.smallest_feasible_bytes > 0);
  }
}

TEST_CASE("tier: a refusal names the host_budget copies need at that budget, which then trains" *
          doctest::test_suite("executor")) {
  const size_t smallest = recompute_smallest(make_deep_mlp);
  const std::string budget = std::to_string(smallest * 5 / 4) + "B";
  SessionOptions o = tier_options(budget, "16KiB");
  o.tier_plan = "offload";  // plans with copies only: the tier is what must grow
  std::string msg;
  size_t named = 0;
  try {
    train(make_deep_mlp, o, 1);
    FAIL("expected InfeasibleBudget");
  } catch (const InfeasibleBudget& e) {
    msg = e.what();
    named = e.smallest_feasible_bytes;
  }
  CAPTURE(msg);
  const std::string key = "at this memory_budget a plan with copies fits a host_budget of ";
  const size_t at = msg.find(key);
  REQUIRE(at != std::string::npos);
  CHECK(msg.find("raise host_budget or memory_budget") != std::string::npos);
  // "... of 2.00 MiB (2097152 bytes)": the exact bytes in parentheses.
  const size_t open = msg.find('(', at + key.size());
  REQUIRE(open != std::string::npos);
  const size_t host = std::stoull(msg.substr(open + 1));
  CHECK(host > size_t{16} << 10);
  o.host_budget = std::to_string(host) + "B";
  const Run ref = train(make_deep_mlp, {.seed = 7});
  const Run r = train(make_deep_mlp, o);
  CHECK(r.report.tier_plan == "offload");
  CHECK(r.report.copy_out_bytes > 0);
  CHECK(r.report.tier_peak_bytes <= host);
  CHECK(r.losses == ref.losses);
  CHECK(r.params == ref.params);
  // The budget the refusal names (copies at 16 KiB, or none) is above the one refused.
  if (named > 0) CHECK(named > smallest * 5 / 4);
}
