// The forward/backward split on training graphs shaped as PyTorch exports them (the gradient seed
// a resident tangent, the loss an output nobody reads, gradient formulas recomputing values from
// the forward in the backward), and the baselines that rely on it (sqrt, chain).
#include <doctest/doctest.h>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/graph_io.h"
#include "scheduler/plan_builder.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "test_helpers.h"
#include "torch_like.h"

using namespace lethe::sched;
using lethe::sched::test::torch_like;

namespace {

const std::string kData = LETHE_SCHEDULER_TEST_DATA;

}  // namespace

TEST_CASE("split: a loss nobody reads is found from where the backward starts") {
  // chain3-torch: the backward starts at the tangent (3); the sigmoid's derivative (11, 12) is
  // computed from the forward value a1 alone, in the backward.
  const Problem p = read_problem_file(kData + "/chain3-torch.graph.json");
  const Dag g(p);
  const TrainingSplit s = split_training(g);
  CHECK(s.loss == 7);
  CHECK(s.forward == std::vector<NodeId>{4, 5, 6, 7});
  for (NodeId b : {8, 9, 10, 11, 12, 13, 14}) CHECK(s.backward[static_cast<size_t>(b)]);
}

TEST_CASE(
    "split: a backward op's result that is an output and read by the next op is not the loss") {
  // As PyTorch's multi-result backward ops (a convolution's input and weight gradients) export:
  // g_a1 (10) is an output and the next backward op reads it. It is the only output something
  // reads, but the loss (7), read by nothing, is neither computed from it nor its ancestor.
  Problem p = read_problem_file(kData + "/chain3-torch.graph.json");
  p.outputs.push_back(10);
  const TrainingSplit s = split_training(Dag(p));
  CHECK(s.loss == 7);
  CHECK(s.forward == std::vector<NodeId>{4, 5, 6, 7});
}

TEST_CASE("split: the same forward whether the seed reads the loss or is a resident tangent") {
  for (const std::string& family : generator_families()) {
    for (uint64_t seed : {3u, 11u}) {
      const Problem p = generate(family, 24, seed);
      const TrainingSplit s = split_training(Dag(p));
      REQUIRE(s.loss >= 0);
      // Without helpers torch_like only adds the tangent in front: every id moves up by one.
      const Problem q = torch_like(p, 0);
      const TrainingSplit t = split_training(Dag(q));
      CHECK_MESSAGE(t.loss == s.loss + 1, family << " seed " << seed);
      std::vector<NodeId> moved;
      for (NodeId f : s.forward) moved.push_back(f + 1);
      CHECK_MESSAGE(t.forward == moved, family << " seed " << seed);
      // With helpers: the helpers are backward, the forward is the same.
      const Problem h = torch_like(p, 1);
      const TrainingSplit u = split_training(Dag(h));
      REQUIRE(u.loss >= 0);
      CHECK(h.nodes[static_cast<size_t>(u.loss)].name == p.nodes[static_cast<size_t>(s.loss)].name);
      CHECK(u.forward.size() == s.forward.size());
      for (const Node& v : h.nodes) {
        if (v.op == "helper") CHECK(u.backward[static_cast<size_t>(v.id)]);
      }
    }
  }
}

TEST_CASE("split: an inference graph (one output) is all forward") {
  const Problem p = read_problem_file(kData + "/chain3-torch.graph.json");
  Problem q = p;
  q.outputs = {7};
  const TrainingSplit s = split_training(Dag(q));
  CHECK(s.loss == -1);
  CHECK(s.forward == std::vector<NodeId>{4, 5, 6, 7});
}

TEST_CASE("split: sqrt and chain plan PyTorch-shaped graphs below their activations") {
  // Before the split found the loss from where the backward starts, both planners saw an
  // inference graph here and fitted no budget below the no-remat peak.
  for (const Problem& p :
       {torch_like(resnet_graph(2, 4, 1)), torch_like(generate("transformer", 40, 3))}) {
    for (const char* name : {"sqrt", "chain"}) {
      const int64_t b = fraction_budget(0.5, p);
      const std::optional<PlanResult> r = try_plan(p, b, name);
      REQUIRE_MESSAGE(r, p.name << " " << name);
      const SimResult sim = simulate(p, r->plan);
      CHECK(sim.valid);
      CHECK(sim.peak_bytes <= b);
    }
  }
}

TEST_CASE("split: a planner that finds no split says so when it refuses") {
  // One output: an inference graph, nothing to checkpoint below what keep-all needs.
  Problem p = read_problem_file(kData + "/chain3-torch.graph.json");
  p.outputs = {7};
  const int64_t b = floor_bytes(p) + 100;  // below any op of the forward
  for (const char* name : {"sqrt", "chain"}) {
    CAPTURE(name);
    try {
      (void)plan(p, b, name);
      FAIL("expected a refusal");
    } catch (const Infeasible& e) {
      CHECK(lethe::sched::test::contains(e.what(),
                                         std::string(name) + ": no forward/backward split"));
    }
  }
}

TEST_CASE("split: large gradients computed last, and the plan mapped back is valid") {
  // g_w2 (9) is an output nothing reads, larger than its computed inputs (8 and 5: 800 bytes).
  Problem p = read_problem_file(kData + "/chain3-torch.graph.json");
  p.nodes[9].bytes = 1000;
  const std::optional<Reordered> r = late_outputs_last(p);
  REQUIRE(r);
  CHECK(r->old_id.back() == 9);
  CHECK(r->problem.nodes.back().name == "g_w2");
  CHECK(r->problem.outputs.size() == p.outputs.size());
  const Plan q = plan_in_original(plan(r->problem, no_remat_peak(r->problem), "keep-all").plan, *r);
  const SimResult sim = simulate(p, q);
  CHECK(sim.valid);
  // Nothing to move on the unchanged graph (its weight gradients are smaller than their inputs).
  CHECK(!late_outputs_last(read_problem_file(kData + "/chain3-torch.graph.json")));
}
