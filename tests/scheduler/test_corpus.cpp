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
  for (const std::string dir : {std::string(LETHE_BENCH_GRAPHS), std::string(LETHE_BENCH_GRAPHS) + "/torch"}) {
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().string().ends_with(".graph.json")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
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
