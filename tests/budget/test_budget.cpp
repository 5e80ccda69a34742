// Training under a memory budget gives bitwise the results of unlimited memory, with every planner,
// and never uses more than the budget.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>

#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "scheduler/graph_io.h"
#include "scheduler/planner.h"

using namespace lethe;

namespace {

struct Model {
  std::shared_ptr<nn::Module> module;
  std::function<Tensor(int step)> loss;  // records one step's loss
};

Model make_mlp() {
  auto seq = std::make_shared<nn::Sequential>();
  // Activations dominate (batch 256, width 32), as in the models budgets are for.
  seq->push_back(std::make_shared<nn::Linear>(16, 32));
  for (int i = 0; i < 10; ++i) {
    seq->push_back(std::make_shared<nn::ReLU>());
    seq->push_back(std::make_shared<nn::Linear>(32, 32));
  }
  seq->push_back(std::make_shared<nn::GELU>());
  seq->push_back(std::make_shared<nn::Linear>(32, 5));
  auto x = randn({256, 16});
  std::vector<int64_t> labels(256);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 5);
  auto y = from_vector(labels, {256});
  return {seq, [seq, x, y](int) { return cross_entropy(seq->forward(x), y); }};
}

Model make_cnn() {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1)));
  seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::Dropout>(0.25));
  // Deep enough that activations, not one op's working set, dominate the step's memory.
  for (int i = 0; i < 10; ++i) {
    seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 4, 3).padding(1)));
    seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
    seq->push_back(std::make_shared<nn::ReLU>());
  }
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 4, 3).padding(1).stride(2)));
  seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
  seq->push_back(std::make_shared<nn::ReLU>());
  auto head = std::make_shared<nn::Linear>(4 * 8 * 8, 3);
  auto x = randn({8, 3, 16, 16});
  auto y = from_vector<int64_t>({0, 1, 2, 1, 0, 2, 2, 1}, {8});
  auto root = std::make_shared<nn::Sequential>();
  root->push_back(seq);
  root->push_back(head);
  return {root, [seq, head, x, y](int) {
            auto h = seq->forward(x);
            return cross_entropy(head->forward(h.flatten(1)), y);
          }};
}

Model make_transformer() {
  auto blocks = std::make_shared<nn::Sequential>();
  for (int i = 0; i < 8; ++i)
    blocks->push_back(std::make_shared<nn::TransformerBlock>(
        nn::TransformerBlockOptions(16, 2).mlp_ratio(2).dropout(0.1).causal(true)));
  auto x = randn({4, 24, 16});
  auto target = randn({4, 24, 16});
  return {blocks, [blocks, x, target](int) { return mse_loss(blocks->forward(x), target); }};
}

struct RunResult {
  std::vector<float> losses;
  std::vector<std::vector<float>> params, buffers, adam_state;
  size_t budget = 0;
};

// Three AdamW steps of `make` under `budget` with `planner`.
RunResult run(const std::function<Model()>& make, const std::string& budget,
              const std::string& planner) {
  Session s({.seed = 11, .memory_budget = budget, .planner = planner});
  Model m = make();
  m.module->train();
  optim::AdamW opt(m.module->parameters(), optim::AdamWOptions(1e-2).weight_decay(0.01));
  RunResult r;
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    opt.zero_grad();
    Tensor loss = m.loss(step);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    const StepReport& rep = s.last_report();
    if (!budget.empty()) {
      CHECK(rep.budget_bytes > 0);
      CHECK_MESSAGE(rep.peak_bytes <= rep.budget_bytes, rep.str());
    }
    r.budget = rep.budget_bytes;
  }
  for (auto& p : m.module->parameters()) {
    r.params.push_back(p.to_vector<float>());
    if (auto* st = opt.state(p)) {
      r.adam_state.push_back(st->exp_avg.to_vector<float>());
      r.adam_state.push_back(st->exp_avg_sq.to_vector<float>());
    }
  }
  for (auto& b : m.module->buffers()) r.buffers.push_back(b.to_vector<float>());
  return r;
}

std::vector<std::string> available_planners() {
  std::vector<std::string> names{"auto"};
  for (const auto& e : sched::planners())
    if (e.fn && e.name != "checkmate") names.push_back(e.name);
  return names;
}

void check_all_budgets(const std::function<Model()>& make) {
  RunResult ref = run(make, "", "auto");
  REQUIRE(ref.losses.size() == 3);
  CHECK(ref.losses[2] < ref.losses[0]);
  for (const std::string& planner : available_planners()) {
    // The smallest budget this planner fits, from the error a hopeless budget raises.
    size_t smallest = 0;
    try {
      run(make, "0.0001", planner);
    } catch (const InfeasibleBudget& e) {
      smallest = e.smallest_feasible_bytes;
      CHECK(std::string(e.what()).find("smallest budget") != std::string::npos);
    }
    std::vector<std::string> budgets{"0.5", "0.25"};
    if (smallest) budgets.push_back(std::to_string(smallest));
    for (const std::string& b : budgets) {
      CAPTURE(planner);
      CAPTURE(b);
      RunResult r;
      try {
        r = run(make, b, planner);
      } catch (const InfeasibleBudget& e) {
        // Below what this planner can fit (keep-all fits only fraction 1); the best planner must
        // fit.
        CHECK_MESSAGE(planner != "auto", e.what());
        CHECK(e.smallest_feasible_bytes > 0);
        MESSAGE(planner << " cannot fit budget " << b << ": " << std::string(e.what()));
        continue;
      }
      CHECK(r.losses == ref.losses);
      CHECK(r.params == ref.params);
      CHECK(r.buffers == ref.buffers);
      CHECK(r.adam_state == ref.adam_state);
      // The smallest budget the error names is no larger than one this planner runs at.
      if (smallest) CHECK(smallest <= r.budget);
    }
  }
}

}  // namespace

TEST_CASE("budget: MLP trains bitwise equal to unlimited under every planner and budget") {
  check_all_budgets(make_mlp);
}

TEST_CASE("budget: CNN with batch norm and dropout, running statistics included") {
  check_all_budgets(make_cnn);
}

TEST_CASE("budget: Transformer block with causal attention and dropout") {
  check_all_budgets(make_transformer);
}

TEST_CASE("budget: a budget below the minimum is refused before anything runs, with a breakdown") {
  Session s({.seed = 1, .memory_budget = "0.0001", .planner = "keep-all"});
  Model m = make_mlp();
  auto before = m.module->parameters()[0].to_vector<float>();
  optim::SGD opt(m.module->parameters(), optim::SGDOptions(0.1));
  Tensor loss = m.loss(0);
  loss.backward();
  try {
    opt.step();
    FAIL("expected InfeasibleBudget");
  } catch (const InfeasibleBudget& e) {
    std::string msg = e.what();
    CHECK(e.smallest_feasible_bytes > 0);
    for (const char* part : {"smallest budget", "parameters", "gradients", "optimizer state",
                             "largest op working set", "activations"})
      CHECK_MESSAGE(msg.find(part) != std::string::npos, msg);
  }
  // Nothing ran: the parameters are untouched.
  CHECK(m.module->parameters()[0].to_vector<float>() == before);
}

TEST_CASE("budget: a byte budget allocates one arena of exactly that size") {
  Session s({.seed = 1, .memory_budget = "4MiB"});
  CHECK(s.state()->budget_bytes() == 4u * 1024 * 1024);
  Model m = make_mlp();
  optim::SGD opt(m.module->parameters(), optim::SGDOptions(0.1));
  Tensor loss = m.loss(0);
  loss.backward();
  opt.step();
  CHECK(s.last_report().budget_bytes == 4u * 1024 * 1024);
  CHECK(s.last_report().peak_bytes <= 4u * 1024 * 1024);
  CHECK(s.last_report().peak_bytes > 0);
}

TEST_CASE("budget: identical steps plan once, a changed graph plans again" *
          doctest::test_suite("executor")) {
  Session s({.seed = 2, .memory_budget = "0.75"});
  Model m = make_mlp();
  optim::SGD opt(m.module->parameters(), optim::SGDOptions(0.1));
  std::vector<bool> cached;
  for (int i = 0; i < 6; ++i) {
    Tensor loss = m.loss(i);
    loss.backward();
    opt.step();
    cached.push_back(s.last_report().plan_from_cache);
  }
  // Step 0 plans from estimates, step 1 again from the times measured in step 0, step 3 once more
  // from the fastest time of each op over steps 0-2 (warm), then the cache serves.
  CHECK(cached == std::vector<bool>{false, false, true, false, true, true});
  auto x = randn({3, 16});  // another batch size: another graph
  auto loss = std::dynamic_pointer_cast<nn::Sequential>(m.module)->forward(x).sum();
  loss.backward();
  opt.step();
  CHECK_FALSE(s.last_report().plan_from_cache);
}

TEST_CASE("budget: export_graph writes the step as a remat-graph/1 file") {
  Session s({.seed = 3});
  Model m = make_mlp();
  optim::SGD opt(m.module->parameters(), optim::SGDOptions(0.1));
  Tensor loss = m.loss(0);
  loss.backward();
  opt.step();
  std::string path = "budget_export_test.graph.json";
  s.export_graph(path);
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(text.find("remat-graph/1") != std::string::npos);
  CHECK(text.find("resident") != std::string::npos);
  // backward()'s implied gradient seed reads the loss: the backward pass starts from it in the
  // graph, which is where the planners split forward from backward.
  const sched::Problem p = sched::read_problem_json(text);
  int seeds = 0;
  for (const sched::Node& n : p.nodes) {
    if (n.op != "full" || n.inputs.size() != 1) continue;
    ++seeds;
    CHECK(p.nodes[static_cast<size_t>(n.inputs[0])].op == "cross_entropy");
  }
  CHECK(seeds == 1);
  std::remove(path.c_str());
}

// A convolution over many channels first (a large im2col workspace, a small output), then wide
// layers with small workspaces: the workspace and the activations peak at different times.
Model make_workspace_cnn() {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(128, 4, 3).padding(1)));
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 64, 3).padding(1)));
  for (int i = 0; i < 8; ++i) {
    seq->push_back(std::make_shared<nn::ReLU>());
    seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(64, 64, 1)));
  }
  auto x = randn({8, 128, 8, 8});
  auto target = randn({8, 64, 8, 8});
  return {seq, [seq, x, target](int) { return mse_loss(seq->forward(x), target); }};
}

TEST_CASE("budget: an op's workspace is a node of the step, held only while the op runs" *
          doctest::test_suite("executor")) {
  // Convolutions on CPU take an im2col workspace. It is a node of the step's problem (op
  // "workspace", cost 0, no inputs) just before its op and one of the op's inputs, so a plan holds
  // it only around that op instead of reserving the largest one for the whole step.
  Session s({.seed = 5});
  Model m = make_workspace_cnn();
  optim::AdamW opt(m.module->parameters(), optim::AdamWOptions(1e-2).weight_decay(0.01));
  Tensor loss = m.loss(0);
  loss.backward();
  opt.step();
  const std::string path = "budget_workspace_test.graph.json";
  s.export_graph(path);
  const sched::Problem p = sched::read_problem_file(path);
  std::remove(path.c_str());
  int workspaces = 0, backward_ones = 0;
  for (const sched::Node& n : p.nodes) {
    if (n.op != "workspace") continue;
    ++workspaces;
    CHECK(n.cost == 0.0);
    CHECK(n.inputs.empty());
    CHECK_FALSE(n.resident);
    REQUIRE(static_cast<size_t>(n.id) + 1 < p.nodes.size());
    const sched::Node& op = p.nodes[static_cast<size_t>(n.id) + 1];
    CHECK(std::find(op.inputs.begin(), op.inputs.end(), n.id) != op.inputs.end());
    CHECK(n.name == op.name + ".workspace");
    backward_ones += op.op.find("backward") != std::string::npos;
  }
  CHECK(workspaces >= 3);
  CHECK(backward_ones > 0);
  // The smallest budget that fits is below what reserving the largest workspace for the whole
  // step would need at least: the resident values, that workspace and the largest working set of
  // any other op (its output and the inputs that are not resident).
  int64_t resident = 0, largest_ws = 0, largest_working = 0;
  for (const sched::Node& n : p.nodes) {
    if (n.resident) {
      resident += n.bytes;
    } else if (n.op == "workspace") {
      largest_ws = std::max(largest_ws, n.bytes);
    } else {
      int64_t w = n.bytes;
      for (sched::NodeId u : n.inputs) {
        const sched::Node& in = p.nodes[static_cast<size_t>(u)];
        if (!in.resident && in.op != "workspace") w += in.bytes;
      }
      largest_working = std::max(largest_working, w);
    }
  }
  size_t smallest = 0;
  try {
    run(make_workspace_cnn, "0.0001", "auto");
  } catch (const InfeasibleBudget& e) {
    smallest = e.smallest_feasible_bytes;
  }
  REQUIRE(smallest > 0);
  CHECK(static_cast<int64_t>(smallest) < resident + largest_ws + largest_working);
  // And it runs there, bitwise as without a budget.
  const RunResult ref = run(make_workspace_cnn, "", "auto");
  const RunResult at = run(make_workspace_cnn, std::to_string(smallest), "auto");
  CHECK(at.losses == ref.losses);
  CHECK(at.params == ref.params);
  CHECK(at.adam_state == ref.adam_state);
}

TEST_CASE(
    "budget: a value read inside a step is refused with the smallest budget of the whole step") {
  // 100 KiB holds the parameters and the data (62 KiB), not the forward part of the step nor the
  // step.
  size_t gradient_bytes = 0;
  auto refusal = [&](bool read_first, bool early_updates) {
    Session s({.seed = 1, .memory_budget = "100KiB", .early_updates = early_updates});
    Model m = make_mlp();
    gradient_bytes = 0;
    for (const Tensor& p : m.module->parameters()) gradient_bytes += p.meta().bytes();
    optim::SGD opt(m.module->parameters(), optim::SGDOptions(0.1));
    Tensor loss = m.loss(0);
    loss.backward();
    try {
      if (read_first) (void)loss.item();  // runs the forward part only
      opt.step();
    } catch (const InfeasibleBudget& e) {
      return std::make_pair(std::string(e.what()), e.smallest_feasible_bytes);
    }
    return std::make_pair(std::string(), size_t{0});
  };
  for (const bool early : {false, true}) {
    CAPTURE(early);
    const auto [read_what, read_smallest] = refusal(true, early);
    const auto [step_what, step_smallest] = refusal(false, early);
    CAPTURE(read_what);
    CAPTURE(step_what);
    REQUIRE(read_smallest > 0);
    REQUIRE(step_smallest > 0);
    CHECK(read_what.find("runs only the part of the step that computes it") != std::string::npos);
    CHECK(read_what.find("but the budget must hold the whole step") != std::string::npos);
    // The budget named at the read is the step's (as recorded at the read: the optimizer's
    // updates, recorded later, and the value the read keeps move it by a few bytes), not the
    // forward part's.
    CHECK(static_cast<double>(read_smallest) > 0.99 * static_cast<double>(step_smallest));
    if (!early) {
      CHECK(static_cast<double>(read_smallest) < 1.01 * static_cast<double>(step_smallest));
    } else {
      // With early updates the whole step frees each gradient at its update; at the read none is
      // recorded yet and the gradients are held (.grad): at most their bytes more.
      CHECK(read_smallest <= step_smallest + gradient_bytes);
    }
  }
}

namespace {

// A residual MLP in a ModuleList trained with Adam (L2 decay), gradient accumulation over two
// micro-batches in one step, clip_grad_norm_ then clip_grad_value_, and a OneCycleLR schedule.
struct BreadthRun {
  std::vector<float> losses, norms;
  std::vector<std::vector<float>> params;
  size_t recomputed = 0;
};

BreadthRun run_breadth(const std::string& budget) {
  Session s({.seed = 5, .memory_budget = budget});
  auto blocks = std::make_shared<nn::ModuleList>();
  for (int i = 0; i < 6; ++i) blocks->push_back(std::make_shared<nn::Linear>(32, 32));
  auto heads = std::make_shared<nn::ModuleDict>();
  heads->insert("in", std::make_shared<nn::Linear>(16, 32));
  heads->insert("out", std::make_shared<nn::Linear>(32, 5));
  auto root = std::make_shared<nn::ModuleDict>();
  root->insert("blocks", blocks);
  root->insert("heads", heads);
  auto forward = [&](const Tensor& x) {
    Tensor h = heads->get<nn::Linear>("in")->forward(x);
    for (size_t i = 0; i < blocks->size(); ++i)
      h = h + relu(blocks->get<nn::Linear>(i)->forward(h));
    return heads->get<nn::Linear>("out")->forward(h);
  };
  std::vector<Tensor> xs{randn({128, 16}), randn({128, 16})};
  std::vector<int64_t> labels(128);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 5);
  Tensor y = from_vector(labels, {128});
  optim::Adam opt(root->parameters(), optim::AdamOptions(1e-2).weight_decay(1e-3));
  optim::OneCycleLR sched(opt, 2e-2, 3);
  BreadthRun r;
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    Tensor total;
    for (const Tensor& x : xs) {
      Tensor loss = mul_scalar(cross_entropy(forward(x), y), 0.5);
      loss.backward();
      total = total.defined() ? total + loss : loss;
    }
    Tensor norm = optim::clip_grad_norm_(root->parameters(), 0.5);
    optim::clip_grad_value_(root->parameters(), 0.02);
    opt.step();
    sched.step();
    if (!budget.empty())
      CHECK_MESSAGE(s.last_report().peak_bytes <= s.last_report().budget_bytes,
                    s.last_report().str());
    r.recomputed += s.last_report().recomputed;
    r.losses.push_back(total.item<float>());
    r.norms.push_back(norm.item<float>());
  }
  for (auto& p : root->parameters()) r.params.push_back(p.to_vector<float>());
  return r;
}

}  // namespace

TEST_CASE(
    "budget: Adam, accumulation, gradient clipping, OneCycleLR and module containers train bitwise "
    "as unlimited") {
  const BreadthRun ref = run_breadth("");
  CHECK(ref.losses[2] < ref.losses[0]);
  CHECK(ref.norms[0] > 0.5f);  // the clipping is exercised
  // The smallest budget a plan fits, from the error a hopeless budget raises, and one between.
  size_t smallest = 0;
  try {
    run_breadth("0.0001");
  } catch (const InfeasibleBudget& e) {
    smallest = e.smallest_feasible_bytes;
  }
  REQUIRE(smallest > 0);
  for (const std::string& b : {std::string("0.75"), std::to_string(smallest) + "B"}) {
    CAPTURE(b);
    const BreadthRun r = run_breadth(b);
    CHECK(r.losses == ref.losses);
    CHECK(r.norms == ref.norms);
    CHECK(r.params == ref.params);
    if (b.back() == 'B') CHECK(r.recomputed > 0);  // the smallest budget rematerialises
  }
}

TEST_CASE(
    "budget: a fraction budget is a fraction of the whole step, even when a read runs part of it "
    "first") {
  size_t gradient_bytes = 0;
  auto run = [&](bool read_first, bool early_updates) {
    Session s({.seed = 1, .memory_budget = "0.5", .early_updates = early_updates});
    Model m = make_mlp();
    gradient_bytes = 0;
    for (const Tensor& p : m.module->parameters()) gradient_bytes += p.meta().bytes();
    optim::SGD opt(m.module->parameters(), optim::SGDOptions(0.1));
    Tensor loss = m.loss(0);
    loss.backward();
    if (read_first) (void)loss.item();  // runs the forward part first
    opt.step();
    return std::make_pair(loss.item<float>(), s.state()->budget_bytes());
  };
  {
    const auto [loss_a, arena_a] = run(false, false);
    const auto [loss_b, arena_b] = run(true, false);
    CHECK(loss_a == loss_b);
    // The arena is sized from the step as recorded at the read (before the optimizer's updates,
    // whose region is a few bytes), not from its forward part (about a seventh of the step here).
    CHECK(static_cast<double>(arena_b) > 0.99 * static_cast<double>(arena_a));
    CHECK(arena_b <= arena_a);
  }
  {
    // With early updates the whole step frees each gradient at its update; at the read no update
    // is recorded yet and the gradients are held (.grad): the arena is sized from that step, at
    // most the gradients' bytes larger.
    const auto [loss_a, arena_a] = run(false, true);
    const auto [loss_b, arena_b] = run(true, true);
    CHECK(loss_a == loss_b);
    CHECK(static_cast<double>(arena_b) > 0.99 * static_cast<double>(arena_a));
    CHECK(arena_b <= arena_a + gradient_bytes);
  }
}
