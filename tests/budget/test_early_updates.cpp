// Early optimizer updates (SessionOptions::early_updates): each update runs inside the plan as soon
// as its gradient is final and every read of the old parameter has run, so the gradient is freed
// there. Results stay bitwise those of unlimited memory, the smallest budget drops, and an update
// never runs before a recomputation that still reads the old weights.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "framework/step_problem.h"
#include "lethe.h"
#include "scheduler/problem.h"

using namespace lethe;

namespace {

struct Run {
  std::vector<float> losses, stats;
  std::vector<std::vector<float>> params;
  StepReport report;
};

// An MLP whose layers are wide (gradients weigh as much as activations), trained with AdamW.
std::shared_ptr<nn::Sequential> make_mlp() {
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Linear>(32, 96));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Linear>(96, 96));
  net->push_back(std::make_shared<nn::Tanh>());
  net->push_back(std::make_shared<nn::Linear>(96, 96));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Linear>(96, 10));
  return net;
}

// One batch for the whole run (made once: a batch made every step would take new arena bytes).
struct Batch {
  Tensor x = randn({16, 32});
  Tensor y = from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5}, {16});
};

Tensor mlp_loss(nn::Sequential& net, const Batch& b) {
  return cross_entropy(net.forward(b.x), b.y);
}

Run train_mlp(const std::string& budget, bool early, int streams = 1) {
  Session s({.seed = 5, .memory_budget = budget, .streams = streams, .early_updates = early});
  auto net = make_mlp();
  optim::AdamW opt(net->parameters(), optim::AdamWOptions(1e-2));
  const Batch batch;
  Run r;
  for (int step = 0; step < 3; ++step) {
    Tensor loss = mlp_loss(*net, batch);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.report = s.last_report();
    if (!budget.empty())
      CHECK_MESSAGE(r.report.peak_bytes <= r.report.budget_bytes, r.report.str());
  }
  for (const Tensor& p : net->parameters()) r.params.push_back(p.to_vector<float>());
  return r;
}

// The smallest budget at which three steps train: the first step's smallest (find_min_budget),
// raised to what a refusal of a later step names (its plan from measured times, and the optimizer
// state made by the first step, can need a few bytes more).
size_t smallest_budget(bool early) {
  size_t b = find_min_budget({.seed = 5, .early_updates = early}, [] {
    auto net = make_mlp();
    optim::AdamW opt(net->parameters(), optim::AdamWOptions(1e-2));
    mlp_loss(*net, Batch{}).backward();
    opt.step();
  });
  for (int attempt = 0; attempt < 8; ++attempt) {
    try {
      train_mlp(std::to_string(b) + "B", early);
      return b;
    } catch (const InfeasibleBudget& e) {
      b = std::max(b + 64, e.smallest_feasible_bytes);
    }
  }
  FAIL("no budget found that trains three steps");
  return b;
}

// A step where a forward value is read again after the backward pass (a statistic of the hidden
// layer, recorded after backward()): a plan that drops it and recomputes it there would read the
// first layer's weights after their early update. Plans must run that update after the
// recomputation (or after the plan).
Run train_stale_read(const std::string& budget, bool early, int streams = 1) {
  Session s({.seed = 9, .memory_budget = budget, .streams = streams, .early_updates = early});
  auto l1 = std::make_shared<nn::Linear>(24, 64);
  auto l2 = std::make_shared<nn::Linear>(64, 64);
  auto l3 = std::make_shared<nn::Linear>(64, 4);
  std::vector<Tensor> params = l1->parameters();
  for (const auto& m : {l2->parameters(), l3->parameters()})
    params.insert(params.end(), m.begin(), m.end());
  optim::SGD opt(params, optim::SGDOptions(0.1).momentum(0.9));
  const Tensor x = randn({32, 24});
  const Tensor y = randn({32, 4});
  Run r;
  for (int step = 0; step < 3; ++step) {
    Tensor stat;
    Tensor loss;
    {
      Tensor h = l1->forward(x);
      loss = mse_loss(l3->forward(tanh(l2->forward(relu(h)))), y);
      loss.backward();
      stat = (h * h).mean();  // reads h after the backward pass
    }
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.stats.push_back(stat.item<float>());
    r.report = s.last_report();
    if (!budget.empty())
      CHECK_MESSAGE(r.report.peak_bytes <= r.report.budget_bytes, r.report.str());
  }
  for (const Tensor& p : params) r.params.push_back(p.to_vector<float>());
  return r;
}

}  // namespace

TEST_CASE("budget: early updates lower the smallest budget, bitwise equal to unlimited" *
          doctest::test_suite("executor")) {
  const Run ref = train_mlp("", true);
  const size_t late = smallest_budget(false), early = smallest_budget(true);
  MESSAGE("smallest budget: " << late << " B with updates after the plan, " << early
                              << " B with early updates");
  CHECK(early < late);
  // At its smallest budget every update ran inside the plan, bitwise as unlimited.
  const Run r = train_mlp(std::to_string(early) + "B", true);
  CHECK(r.report.early_updates == 8);
  CHECK(r.losses == ref.losses);
  CHECK(r.params == ref.params);
  // Without early updates that budget is too small, and the error says so.
  CHECK_THROWS_AS(train_mlp(std::to_string(early) + "B", false), InfeasibleBudget);
  // Updates after the plan (the opt-out) give the same bits.
  const Run off = train_mlp(std::to_string(late + late / 8) + "B", false);
  CHECK(off.report.early_updates == 0);
  CHECK(off.params == ref.params);
  // On two streams, every update waits for the reads of its parameter on the other stream.
  const Run two = train_mlp(std::to_string(early + early / 4) + "B", true, 2);
  CHECK(two.params == ref.params);
  CHECK(two.losses == ref.losses);
}

TEST_CASE(
    "budget: an update never runs before a recomputation that reads the old weights, at any "
    "budget" *
    doctest::test_suite("executor")) {
  const Run ref = train_stale_read("", false);
  // The smallest budget, found as a user would: lower until refused, then the error's figure.
  size_t smallest = size_t{1} << 20;
  for (bool refused = false; !refused;) {
    try {
      train_stale_read(std::to_string(smallest) + "B", true);
      smallest /= 2;
    } catch (const InfeasibleBudget& e) {
      refused = true;
      smallest = e.smallest_feasible_bytes > 0 ? e.smallest_feasible_bytes : smallest * 2;
    }
  }
  // From the smallest budget up, in steps: every plan, whichever updates it runs early, gives the
  // bits of unlimited memory.
  for (int k = 0; k <= 6; ++k) {
    const size_t b = smallest + smallest * static_cast<size_t>(k) / 8;
    CAPTURE(b);
    for (int streams : {1, 2}) {
      CAPTURE(streams);
      const Run r = train_stale_read(std::to_string(b) + "B", true, streams);
      CHECK(r.losses == ref.losses);
      CHECK(r.stats == ref.stats);
      CHECK(r.params == ref.params);
    }
  }
}

TEST_CASE("budget: update_ok refuses a plan that reads an updated parameter or updates twice") {
  // w (resident) -> h = f(w) -> g = grad(h) -> u = update(w, g); s = stat(h) reads h, and h's
  // recomputation reads w.
  sched::Problem p;
  auto node = [&](const std::string& name, int64_t bytes, bool resident,
                  std::vector<sched::NodeId> in) {
    sched::Node n;
    n.id = static_cast<sched::NodeId>(p.nodes.size());
    n.name = name;
    n.op = resident ? "param" : "op";
    n.bytes = bytes;
    n.resident = resident;
    n.cost = resident ? 0.0 : 1.0;
    n.inputs = std::move(in);
    p.nodes.push_back(n);
    return n.id;
  };
  const auto w = node("w", 64, true, {});
  const auto h = node("h", 64, false, {w});
  const auto g = node("g", 64, false, {h});
  const auto u = node("u", 64, false, {w, g});
  const auto st = node("s", 64, false, {h});
  p.outputs = {u, st};
  StepProblem sp = step_problem_from(p);
  sp.update[static_cast<size_t>(u)] = 1;
  sp.reads_updated[static_cast<size_t>(h)] = {u};
  using S = sched::Step;
  sched::Plan keep;
  keep.steps = {S::compute(h), S::compute(g), S::compute(u), S::free(g), S::compute(st)};
  CHECK(update_ok(sp, keep));
  sched::Plan stale = keep;  // h dropped and recomputed after the update
  stale.steps = {S::compute(h), S::compute(g), S::free(h),    S::compute(u),
                 S::free(g),    S::compute(h), S::compute(st)};
  CHECK_FALSE(update_ok(sp, stale));
  sched::Plan twice = keep;
  twice.steps.push_back(S::compute(u));
  CHECK_FALSE(update_ok(sp, twice));
}
