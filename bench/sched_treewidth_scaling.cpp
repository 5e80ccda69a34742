// Kumar et al. 2019, reproduced: on graphs of treewidth k, the `treewidth` planner fits a budget of
// O(k log n) activations above the floor. For chains and width-k grids of n = 10 ... 10,000 forward
// operations, prints the smallest feasible budget (above the floor, in units of the graph's largest
// activation) of `treewidth`, `sqrt` and `chain`, the ratio treewidth / (k log2 n), and the
// treewidth solve time at 10,000 nodes.
//
//   ./sched_treewidth_scaling [max_n]        (default 10000)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "scheduler/generators.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "scheduler/tree_decomposition.h"

using namespace lethe::sched;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int64_t largest_activation(const Problem& p) {
  int64_t m = 1;
  for (const Node& n : p.nodes)
    if (!n.resident) m = std::max(m, n.bytes);
  return m;
}

// Smallest feasible budget above the floor, in activations; -1 when the planner fails or the
// search exceeded `skip_after_s` on a smaller graph already.
double smallest(const Problem& p, const std::string& planner, double* secs) {
  const auto t0 = std::chrono::steady_clock::now();
  int64_t b = -1;
  try {
    b = smallest_feasible_budget(p, planner);
  } catch (const std::exception&) {
    b = -1;
  }
  *secs = seconds_since(t0);
  if (b < 0) return -1;
  return static_cast<double>(b - floor_bytes(p)) / static_cast<double>(largest_activation(p));
}

}  // namespace

int main(int argc, char** argv) {
  const int max_n = argc > 1 ? std::atoi(argv[1]) : 10000;
  const std::vector<int> sizes = {10, 30, 100, 300, 1000, 3000, 10000};
  struct Family {
    std::string name;
    int width;
  };
  const std::vector<Family> families = {{"chain", 1}, {"grid", 2}, {"grid", 4}};
  std::printf(
      "smallest feasible budget above the floor, in largest activations (search time in s)\n");
  std::printf("%-8s %6s %7s %4s | %16s %8s | %16s | %16s\n", "family", "n", "nodes", "k",
              "treewidth", "/klog2n", "sqrt", "chain");
  for (const Family& f : families) {
    bool others = true;  // stop the slower searches once one takes too long
    for (int n : sizes) {
      if (n > max_n) break;
      const Problem p = generate(f.name, n, 1, f.width);
      int k = 0;
      treewidth_recursive_schedule(p, &k);
      double ts = 0, ss = 0, cs = 0;
      const double tw = smallest(p, "treewidth", &ts);
      double sq = -2, ch = -2;
      if (others) {
        sq = smallest(p, "sqrt", &ss);
        ch = smallest(p, "chain", &cs);
        if (ss + cs > 60) others = false;
      }
      const double klogn = std::max(1, k) * std::log2(static_cast<double>(std::max(n, 2)));
      auto cell = [](double v, double s) {
        static char buf[4][64];
        static int i = 0;
        char* b = buf[i++ % 4];
        if (v == -2)
          std::snprintf(b, 64, "skipped");
        else if (v < 0)
          std::snprintf(b, 64, "none (%.2f)", s);
        else
          std::snprintf(b, 64, "%7.1f (%6.2f)", v, s);
        return b;
      };
      std::printf("%-8s %6d %7d %4d | %16s %8.2f | %16s | %16s\n",
                  (f.name + (f.name == "grid" ? std::to_string(f.width) : "")).c_str(), n, p.size(),
                  k, cell(tw, ts), tw / klogn, cell(sq, ss), cell(ch, cs));
      std::fflush(stdout);
    }
  }
  // Solve time of one treewidth plan on 10,000-node training graphs, at the no-remat peak and
  // half-way.
  std::printf("\ntreewidth solve time, ~10,000-node graphs\n");
  for (const std::string& fam : generator_families()) {
    if (max_n < 10000) break;
    Problem p = generate(fam, 5000, 1);
    const int64_t hi = no_remat_peak(p);
    int64_t lo = -1;
    try {
      lo = smallest_feasible_budget(p, "treewidth");
    } catch (const std::exception&) {
    }
    for (int64_t b : {hi, lo < 0 ? hi : lo + (hi - lo) / 2, lo}) {
      if (b < 0) continue;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        PlanResult r = plan(p, b, "treewidth");
        std::printf(
            "%-12s %6d nodes  width %3d  budget %12lld  %7.3f s  cost %.4g (no-remat %.4g)  %zu "
            "steps\n",
            fam.c_str(), p.size(), r.info.treewidth, static_cast<long long>(b), seconds_since(t0),
            r.plan.predicted_cost, no_remat_cost(p), r.plan.steps.size());
      } catch (const std::exception& e) {
        std::printf("%-12s %6d nodes  budget %12lld  %7.3f s  %s\n", fam.c_str(), p.size(),
                    static_cast<long long>(b), seconds_since(t0), e.what());
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
