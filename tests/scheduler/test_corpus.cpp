// The planners on every graph of the corpora: bench/graphs (exported by the examples) and
// bench/graphs/torch (exported from PyTorch by scripts/export_torch_graph.py, AOTAutograd joint
// graphs: the gradient seed a resident tangent, the loss read by nothing).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include "scheduler/budget.h"
#include "scheduler/graph_io.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"

using namespace lethe::sched;

namespace {

std::vector<std::string> corpus() {
  std::vector<std::string> files;
  for (const std::string dir :
       {std::string(LETHE_BENCH_GRAPHS), std::string(LETHE_BENCH_GRAPHS) + "/torch"}) {
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().string().ends_with(".graph.json")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Where sqrt or chain do not reach half the activations yet (smallest fraction each fits, measured
// when the corpus was exported). The test checks they still refuse, with a reason, so that the list
// stays true: a planner that starts fitting must leave it.
//
// Since the exporter makes a multi-result op one node (the format's rule), a node holding several
// results lives until the last reader of any: a convolution_backward or native_batch_norm_backward
// node holds its input gradient with the weight gradient, an output, so the input gradients sit in
// the floor; a native_batch_norm or max_pool2d_with_indices node holds its activation-sized output
// with the statistics or indices its backward reads, so those outputs are kept for the backward.
// The floors rose and the activations above them shrank (README), and five pairs joined the list.
struct Short {
  const char* graph;
  const char* planner;
};
constexpr Short kShort[] = {
    // The vocabulary head: logits, log-softmax and their gradients, 32 MiB each (chain 0.69; block
    // 8's backward alone needs 133 MiB with the resident values).
    {"bert-b8-128", "chain"},
    // GoogLeNet, ResNet-18, ShuffleNetV2: their plans peak at the stem's backward, which comes
    // last,
    // when every other output (with its input gradient) is held; the stem's 2/8/3 MiB activations
    // and gradients they hold on top are more than half of what is left above the floor (chain
    // 0.64; sqrt 0.72, chain 0.98; chain 0.53; lethe fits 0.39, 0.26, 0.21).
    {"googlenet-b8-64px", "chain"},
    {"resnet18-b32-64px", "sqrt"},
    {"resnet18-b32-64px", "chain"},
    {"shufflenetv2-b32-64px", "chain"},
    // SqueezeNet at batch 32: sqrt's lowest peak is 68.2 MiB, at the last pool's backward with 58.7
    // MiB of forward values held (sqrt 0.80); chain's block 0's backward alone needs 59.4 MiB with
    // the resident values (chain 1.0). No planner fits half: lethe 0.55.
    {"squeezenet-b32-64px", "sqrt"},
    {"squeezenet-b32-64px", "chain"},
    // The top skip connection spans the whole graph, and each batch norm's output, in the node its
    // backward reads for the statistics, is held for the backward: sqrt's lowest peak over its 9
    // checkpoint sets is the no-remat peak, and chain's one-block schedule exceeds the budget when
    // run; neither fits below 1.0 (lethe fits 0.18).
    {"unet-b8-64px", "sqrt"},
    {"unet-b8-64px", "chain"},
};

bool known_short(const std::string& graph, const std::string& planner) {
  return std::any_of(std::begin(kShort), std::end(kShort),
                     [&](const Short& s) { return graph == s.graph && planner == s.planner; });
}

}  // namespace

TEST_CASE("corpus: sqrt and chain fit half the activations of every graph, with valid plans") {
  const std::vector<std::string> files = corpus();
  REQUIRE(files.size() >= 5);
  for (const std::string& f : files) {
    CAPTURE(f);
    const Problem p = read_problem_file(f);
    const int64_t b = fraction_budget(0.5, p);
    for (const char* name : {"sqrt", "chain"}) {
      CAPTURE(name);
      if (known_short(p.name, name)) {
        try {
          (void)plan(p, b, name);
          FAIL_CHECK("fits now: remove it from kShort");
        } catch (const Infeasible& e) {
          CHECK(std::string(e.what()).find(std::string(name) + ": ") != std::string::npos);
        }
        continue;
      }
      const std::optional<PlanResult> r = try_plan(p, b, name);
      REQUIRE(r);
      const SimResult sim = simulate(p, r->plan);
      CHECK(sim.valid);
      CHECK(sim.peak_bytes <= b);
    }
  }
}

TEST_CASE("corpus: lethe is never costlier than any other planner") {
  for (const std::string& f : corpus()) {
    CAPTURE(f);
    const Problem p = read_problem_file(f);
    for (const double frac : {0.5, 0.33}) {
      CAPTURE(frac);
      const int64_t b = fraction_budget(frac, p);
      const std::optional<PlanResult> l = try_plan(p, b, "lethe");
      for (const char* name : {"sqrt", "chain", "dtr", "treewidth"}) {
        CAPTURE(name);
        const std::optional<PlanResult> r = try_plan(p, b, name);
        if (!r) continue;
        REQUIRE(l);
        CHECK(l->plan.predicted_cost <= r->plan.predicted_cost);
      }
    }
  }
}
