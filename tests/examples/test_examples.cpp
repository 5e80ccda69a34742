// The example models (examples/*/model.h) at small sizes: a few training steps under a tight budget
// give bitwise the losses of the unlimited run, and the execution trace is valid Chrome trace-event
// JSON with compute slices, recompute slices and memory counters.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gpt/model.h"
#include "lethe.h"
#include "mlp_fashion/model.h"
#include "resnet/model.h"
#include "unet/model.h"

using namespace lethe;
using namespace lethe::examples;

namespace {

using StepFn = std::function<Tensor(int64_t step)>;                      // records one step's loss
using MakeFn = std::function<std::pair<StepFn, std::vector<Tensor>>()>;  // step + parameters

struct Run {
  std::vector<float> losses;
  size_t recomputed = 0, peak = 0, budget = 0, no_remat = 0;
};

Run train(const MakeFn& make, int steps, const std::string& budget, const std::string& trace = "",
          const std::string& planner = "lethe") {
  Run r;
  // One thread: on a loaded 2-core machine OpenMP barriers dominate these tiny kernels.
  Session s({.seed = 3,
             .memory_budget = budget,
             .planner = planner,
             .num_threads = 1,
             .trace_path = trace});
  auto [step, params] = make();
  optim::AdamW opt(params, optim::AdamWOptions(1e-2));
  for (int i = 0; i < steps; ++i) {
    Tensor loss = step(i);
    opt.zero_grad();
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.recomputed = std::max(r.recomputed, s.last_report().recomputed);
    r.peak = std::max(r.peak, s.last_report().peak_bytes);
    r.budget = s.last_report().budget_bytes;
    r.no_remat = s.last_report().no_remat_peak_bytes;
  }
  return r;
}

// Under `fraction` of the activations, or, where that is below what the planner can fit, at the
// smallest budget the framework reports as feasible (the tightest budget there is).
Run train_tight(const MakeFn& make, int steps, const std::string& fraction,
                const std::string& trace = "", const std::string& planner = "lethe") {
  try {
    return train(make, steps, fraction, trace, planner);
  } catch (const InfeasibleBudget& e) {
    REQUIRE(e.smallest_feasible_bytes > 0);
    return train(make, steps, std::to_string(e.smallest_feasible_bytes), trace, planner);
  }
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

MakeFn mlp() {
  return [] {
    auto m = make_mlp(64, 48, 32, 10);
    auto x = randn({32, 1, 8, 8});
    std::vector<int64_t> labels(32);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 10);
    auto y = from_vector(labels, {32});
    return std::make_pair(StepFn([m, x, y](int64_t) { return cross_entropy(m->forward(x), y); }),
                          m->parameters());
  };
}

MakeFn resnet(int depth) {
  return [depth] {
    auto net = std::make_shared<ResNet>(ResNetConfig{.depth = depth, .width = 4, .classes = 5});
    auto data = std::make_shared<SyntheticImages>(64, 16, 5, 7);
    return std::make_pair(StepFn([net, data](int64_t step) {
                            std::vector<int64_t> idx;
                            for (int64_t k = 0; k < 4; ++k) idx.push_back((step * 4 + k) % 64);
                            auto b = data->get_batch(idx);
                            return cross_entropy(net->forward(b.data), b.target);
                          }),
                          net->parameters());
  };
}

MakeFn unet() {
  return [] {
    auto net = std::make_shared<UNet>(UNetConfig{.depth = 2, .width = 4, .classes = 3});
    auto data = std::make_shared<SyntheticSegmentation>(16, 16, 3, 7);
    return std::make_pair(StepFn([net, data](int64_t step) {
                            std::vector<int64_t> idx;
                            for (int64_t k = 0; k < 2; ++k) idx.push_back((step * 2 + k) % 16);
                            auto b = data->get_batch(idx);
                            return cross_entropy(net->forward(b.data), b.target);
                          }),
                          net->parameters());
  };
}

std::string small_text_file() {
  auto path = std::filesystem::temp_directory_path() / "lethe_test_examples.txt";
  std::ofstream f(path);
  for (int i = 0; i < 40; ++i) f << "the quick brown fox jumps over the lazy dog " << i << "\n";
  return path.string();
}

MakeFn gpt() {
  auto text = std::make_shared<CharText>(std::vector<std::string>{small_text_file()});
  return [text] {
    auto g = std::make_shared<GPT>(GPTConfig{.vocab = text->vocab_size(),
                                             .context = 16,
                                             .layers = 2,
                                             .d_model = 32,
                                             .heads = 2,
                                             .dropout = 0.1});
    return std::make_pair(StepFn([g, text](int64_t step) {
                            auto [x, y] = text->batch(3, 16, step, 5);
                            return g->loss(x, y);
                          }),
                          g->parameters());
  };
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  REQUIRE(f.good());
  return nlohmann::json::parse(f);  // throws on invalid JSON
}

}  // namespace

TEST_CASE("examples: MLP under a tight budget trains bitwise like unlimited memory") {
  Run a = train(mlp(), 3, "");
  Run b = train_tight(mlp(), 3, "0.3");
  CHECK(bitwise_equal(a.losses, b.losses));
  CHECK(b.peak <= b.budget);
}

TEST_CASE(
    "examples: ResNet-18 and ResNet-50 (narrow) under a tight budget train bitwise like "
    "unlimited") {
  for (int depth : {18, 50}) {
    CAPTURE(depth);
    Run a = train(resnet(depth), 3, "");
    Run b = train_tight(resnet(depth), 3, "0.25");
    CHECK(bitwise_equal(a.losses, b.losses));
    CHECK(b.recomputed > 0);
    CHECK(b.peak <= b.budget);
    CHECK(b.peak < b.no_remat);
  }
}

TEST_CASE(
    "examples: U-Net (tiny) under a tight budget trains bitwise like unlimited (long skips, "
    "upsampling)") {
  Run a = train(unet(), 3, "");
  Run b = train_tight(unet(), 3, "0.25");
  CHECK(bitwise_equal(a.losses, b.losses));
  CHECK(b.recomputed > 0);
  CHECK(b.peak <= b.budget);
  CHECK(b.peak < b.no_remat);
}

TEST_CASE(
    "examples: the U-Net upsampling repeats each pixel over a 2x2 block and segments every pixel") {
  Session s({.seed = 1});
  auto x = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 2});
  CHECK(upsample_nearest2x(x).to_vector<float>() ==
        std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4,
                           5, 5, 6, 6, 5, 5, 6, 6, 7, 7, 8, 8, 7, 7, 8, 8});
  UNet net(UNetConfig{.depth = 2, .width = 2, .classes = 4});
  auto b = SyntheticSegmentation(2, 8, 4, 3).get_batch({0, 1});
  CHECK(net.forward(b.data).shape() == Shape({2, 4, 8, 8}));
  CHECK(b.target.shape() == Shape({2, 8, 8}));
  CHECK_THROWS_AS(net.forward(randn({1, 3, 6, 6})), Error);
}

TEST_CASE("examples: GPT under a tight budget trains bitwise like unlimited (dropout included)") {
  Run a = train(gpt(), 3, "");
  for (const char* planner : {"lethe", "dtr"}) {
    CAPTURE(planner);
    Run b = train_tight(gpt(), 3, "0.25", "", planner);
    CHECK(bitwise_equal(a.losses, b.losses));
    CHECK(b.recomputed > 0);
    CHECK(b.peak <= b.budget);
  }
}

TEST_CASE("examples: the GPT sampler returns the requested characters") {
  auto text = std::make_shared<CharText>(std::vector<std::string>{small_text_file()});
  Session s({.seed = 1, .memory_budget = "1"});
  GPT g(
      GPTConfig{.vocab = text->vocab_size(), .context = 8, .layers = 1, .d_model = 16, .heads = 2});
  std::string out = sample_text(g, *text, "the ", 5, 0.8, 1);
  CHECK(out.size() == 5);
}

TEST_CASE(
    "examples: a budgeted trace is valid JSON with compute, recompute slices and memory counters") {
  const std::string path =
      (std::filesystem::temp_directory_path() / "lethe_test_trace.json").string();
  std::filesystem::remove(path);
  train_tight(resnet(18), 2, "0.25", path);  // written when the session ends
  nlohmann::json j = read_json(path);
  REQUIRE(j.contains("traceEvents"));
  size_t slices = 0, recompute = 0, steps = 0, in_use = 0, predicted = 0;
  int64_t max_in_use = 0;
  for (const auto& e : j["traceEvents"]) {
    const std::string ph = e.at("ph");
    if (ph == "X") {
      CHECK(e.contains("ts"));
      CHECK(e.contains("dur"));
      if (e.at("cat") == "step") ++steps;
      if (e.at("cat") == "compute") {
        ++slices;
        CHECK(e.at("args").contains("node"));
      }
      if (e.at("cat") == "recompute") {
        ++recompute;
        CHECK(e.at("args").at("recompute") == true);
      }
    } else if (ph == "C") {
      if (e.at("name") == "arena in use") {
        ++in_use;
        max_in_use = std::max<int64_t>(max_in_use, e.at("args").at("bytes").get<int64_t>());
      }
      if (e.at("name") == "plan predicted") ++predicted;
    }
  }
  CHECK(slices > 50);
  CHECK(recompute > 0);
  CHECK(steps == 2);
  CHECK(in_use > 0);
  CHECK(predicted == in_use);
  CHECK(max_in_use > 0);
  std::filesystem::remove(path);
}

TEST_CASE("examples: start_trace/stop_trace on an unlimited session write a valid trace") {
  const std::string path =
      (std::filesystem::temp_directory_path() / "lethe_test_trace2.json").string();
  std::filesystem::remove(path);
  {
    Session s({.seed = 2});
    auto m = make_mlp(16, 8, 8, 3);
    auto x = randn({4, 16});
    auto y = from_vector<int64_t>({0, 1, 2, 0}, {4});
    optim::SGD opt(m->parameters(), optim::SGDOptions(0.1));
    s.start_trace(path);
    for (int i = 0; i < 2; ++i) {
      Tensor loss = cross_entropy(m->forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    s.stop_trace();
    CHECK(std::filesystem::exists(path));
  }
  nlohmann::json j = read_json(path);
  size_t x = 0, c = 0, updates = 0;
  for (const auto& e : j["traceEvents"]) {
    x += e.at("ph") == "X";
    c += e.at("ph") == "C";
    updates += e.at("ph") == "X" && e.at("cat") == "update";
  }
  CHECK(x > 10);
  CHECK(c > 10);
  CHECK(updates > 0);
  std::filesystem::remove(path);
}
