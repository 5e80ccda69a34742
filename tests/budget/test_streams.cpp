// Steps on several streams (SessionOptions::streams) give bitwise the losses, parameters, optimizer
// state and running statistics of the serial unlimited step: streams {1, 2, 3, auto} x budgets
// {1, 0.5, 0.25, the smallest feasible} x planners {auto, lethe, a baseline} on an MLP, a CNN with
// batch norm and dropout, a Transformer and a U-Net; then 50 steps with a random pause before every
// op (LETHE_JITTER) so that a missing wait shows. The test binary runs with LETHE_ARENA_CHECK=1
// (tests/CMakeLists.txt): every buffer is checked against the buffers live beside it, and its guard
// bytes after it, while the streams run.
#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../../examples/inception/model.h"
#include "../../examples/unet/model.h"
#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"

using namespace lethe;

namespace {

struct Model {
  std::shared_ptr<nn::Module> module;
  std::function<Tensor()> loss;
};

Model mlp() {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Linear>(16, 32));
  for (int i = 0; i < 6; ++i) {
    seq->push_back(std::make_shared<nn::ReLU>());
    seq->push_back(std::make_shared<nn::Linear>(32, 32));
  }
  seq->push_back(std::make_shared<nn::Linear>(32, 5));
  auto x = randn({128, 16});
  std::vector<int64_t> labels(128);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 5);
  auto y = from_vector(labels, {128});
  return {seq, [seq, x, y] { return cross_entropy(seq->forward(x), y); }};
}

Model cnn() {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1)));
  seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::Dropout>(0.25));
  for (int i = 0; i < 5; ++i) {
    seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 4, 3).padding(1)));
    seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
    seq->push_back(std::make_shared<nn::ReLU>());
  }
  auto head = std::make_shared<nn::Linear>(4 * 16 * 16, 3);
  auto x = randn({8, 3, 16, 16});
  auto y = from_vector<int64_t>({0, 1, 2, 1, 0, 2, 2, 1}, {8});
  auto root = std::make_shared<nn::Sequential>();
  root->push_back(seq);
  root->push_back(head);
  return {root, [seq, head, x, y] {
            return cross_entropy(head->forward(seq->forward(x).flatten(1)), y);
          }};
}

Model transformer() {
  auto blocks = std::make_shared<nn::Sequential>();
  for (int i = 0; i < 3; ++i)
    blocks->push_back(std::make_shared<nn::TransformerBlock>(
        nn::TransformerBlockOptions(16, 2).mlp_ratio(2).dropout(0.1).causal(true)));
  auto x = randn({4, 12, 16});
  auto target = randn({4, 12, 16});
  return {blocks, [blocks, x, target] { return mse_loss(blocks->forward(x), target); }};
}

Model unet() {
  auto net = std::make_shared<examples::UNet>(
      examples::UNetConfig{.depth = 2, .width = 4, .in_channels = 3, .classes = 3});
  auto x = randn({2, 3, 16, 16});
  std::vector<int64_t> labels(2 * 16 * 16);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>((i * 7) % 3);
  auto y = from_vector(labels, {2, 16, 16});
  return {net, [net, x, y] {
            Tensor logits = net->forward(x);  // [N, C, H, W] -> rows of C
            return cross_entropy(logits.permute({0, 2, 3, 1}).reshape({-1, 3}), y.reshape({-1}));
          }};
}

struct Result {
  std::vector<float> losses;
  std::vector<std::vector<float>> state;  // parameters, AdamW moments, buffers
  std::vector<int> streams;               // per step: streams the step ran on
  size_t budget = 0;
};

Result train(const std::function<Model()>& make, const std::string& budget,
             const std::string& planner, int streams, int steps) {
  Session s({.seed = 5,
             .memory_budget = budget,
             .planner = planner,
             .num_threads = 2,
             .streams = streams});
  Model m = make();
  m.module->train();
  optim::AdamW opt(m.module->parameters(), optim::AdamWOptions(1e-2).weight_decay(0.01));
  Result r;
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    Tensor loss = m.loss();
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    const StepReport& rep = s.last_report();
    if (!budget.empty()) CHECK_MESSAGE(rep.peak_bytes <= rep.budget_bytes, rep.str());
    r.streams.push_back(rep.streams);
    r.budget = rep.budget_bytes;
  }
  for (auto& p : m.module->parameters()) {
    r.state.push_back(p.to_vector<float>());
    if (auto* st = opt.state(p)) {
      r.state.push_back(st->exp_avg.to_vector<float>());
      r.state.push_back(st->exp_avg_sq.to_vector<float>());
    }
  }
  for (auto& b : m.module->buffers()) r.state.push_back(b.to_vector<float>());
  return r;
}

size_t smallest_budget(const std::function<Model()>& make, const std::string& planner) {
  try {
    train(make, "0.0001", planner, 1, 1);
  } catch (const InfeasibleBudget& e) {
    return e.smallest_feasible_bytes;
  }
  return 0;
}

// Eight steps: under kAutoStreams the first three run serially, the next four on streams, and the
// choice is made after them.
void check_model(const std::function<Model()>& make) {
  constexpr int kSteps = 8;
  const Result ref = train(make, "", "auto", 1, kSteps);
  int parallel_steps = 0;
  for (const std::string planner : {"auto", "lethe", "sqrt"}) {
    std::vector<std::string> budgets{"1", "0.5", "0.25"};
    if (const size_t smallest = smallest_budget(make, planner))
      budgets.push_back(std::to_string(smallest) + "B");
    for (const std::string& b : budgets)
      for (const int streams : {1, 2, 3, kAutoStreams}) {
        CAPTURE(planner);
        CAPTURE(b);
        CAPTURE(streams);
        Result r;
        try {
          r = train(make, b, planner, streams, kSteps);
        } catch (const InfeasibleBudget& e) {
          // A baseline may not fit every budget; the best planner fits every budget from the
          // smallest it names (a fraction may lie below it on these small models).
          CHECK_MESSAGE((planner != "auto" || b.back() != 'B'), e.what());
          continue;
        }
        CHECK(r.losses == ref.losses);
        CHECK(r.state == ref.state);
        for (int used : r.streams) {
          CHECK(used == (streams == kAutoStreams ? used : streams));
          parallel_steps += used > 1;
        }
      }
  }
  CHECK(parallel_steps > 0);
}

}  // namespace

// Suite "executor": also runs under ThreadSanitizer in the README's test command (scripts/test.sh);
// the larger grids stay out of it (instrumented, they would take most of the CI's time).
TEST_CASE("streams: MLP bitwise equal to the serial unlimited step on 1, 2, 3 and auto streams" *
          doctest::test_suite("executor")) {
  check_model(mlp);
}
TEST_CASE("streams: CNN with batch norm and dropout bitwise equal on every stream count") {
  check_model(cnn);
}
TEST_CASE(
    "streams: Transformer with causal attention and dropout bitwise equal on every stream count") {
  check_model(transformer);
}
TEST_CASE("streams: U-Net bitwise equal on every stream count") {
  check_model(unet);
}

// Three stages of Inception blocks: 3x3 convolutions of 432 inputs per output (48 channels), where
// OpenBLAS's own threading once changed the bits between one thread and two (ops/gemm.cpp).
TEST_CASE(
    "streams: an Inception-style CNN on 2 streams of 1 thread is bitwise the serial step on 2 "
    "threads") {
  const auto make = [] {
    auto net = std::make_shared<examples::Inception>(
        examples::InceptionConfig{.width = 12, .blocks = {1, 1, 1}});
    auto x = randn({8, 3, 32, 32});
    auto y = from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7}, {8});
    return Model{net, [net, x, y] { return cross_entropy(net->forward(x), y); }};
  };
  const Result ref = train(make, "", "auto", 1, 3);
  for (const char* b : {"1", "0.5"}) {
    CAPTURE(b);
    const Result r = train(make, b, "auto", 2, 3);
    CHECK(r.losses == ref.losses);
    CHECK(r.state == ref.state);
  }
}

TEST_CASE("streams: 50 steps with a random pause before every op stay bitwise equal" *
          doctest::test_suite("executor")) {
  const Result ref = train(transformer, "", "auto", 1, 50);
  ::setenv("LETHE_JITTER", "12345", 1);
  Result r;
  try {
    r = train(transformer, "0.5", "auto", 3, 50);
  } catch (...) {
    ::unsetenv("LETHE_JITTER");
    throw;
  }
  ::unsetenv("LETHE_JITTER");
  CHECK(r.losses == ref.losses);
  CHECK(r.state == ref.state);
  for (int used : r.streams) CHECK(used == 3);
}

TEST_CASE("streams: bad stream counts are refused with the flag or option named") {
  CHECK_THROWS_WITH_AS(Session({.streams = 0}), doctest::Contains("SessionOptions::streams is 0"),
                       Error);
  CHECK_THROWS_WITH_AS(Session({.streams = -3}), doctest::Contains("positive number of streams"),
                       Error);
  CHECK(parse_streams("auto") == kAutoStreams);
  CHECK(parse_streams("3") == 3);
  for (const char* bad : {"0", "-2", "two", "", "1.5"})
    CHECK_THROWS_WITH_AS(parse_streams(bad),
                         doctest::Contains("--streams: expected a positive number"), Error);
}

TEST_CASE("streams: the report says how the streams ran, and the trace has a track per stream" *
          doctest::test_suite("executor")) {
  const std::string path = "streams_test.trace.json";
  {
    Session s(
        {.seed = 5, .memory_budget = "0.5", .num_threads = 2, .trace_path = path, .streams = 2});
    Model m = transformer();
    optim::AdamW opt(m.module->parameters(), optim::AdamWOptions(1e-2));
    for (int i = 0; i < 3; ++i) {
      opt.zero_grad();
      Tensor loss = m.loss();
      loss.backward();
      opt.step();
      (void)loss.item<float>();
    }
    const StepReport& rep = s.last_report();
    CHECK(rep.streams == 2);
    CHECK(rep.predicted_seconds > 0);
    CHECK(rep.parallel_seconds >= 0);
    CHECK(rep.parallel_seconds <= rep.seconds);
    CHECK(rep.overlapped_recompute_seconds >= 0);
    CHECK(rep.str().find("streams 2") != std::string::npos);
  }
  std::FILE* f = std::fopen(path.c_str(), "r");
  REQUIRE(f != nullptr);
  std::string text;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) text.append(buf, n);
  std::fclose(f);
  std::remove(path.c_str());
  CHECK(text.find("\"name\":\"stream 1\"") != std::string::npos);
  CHECK(text.find("\"tid\":2") != std::string::npos);
}
