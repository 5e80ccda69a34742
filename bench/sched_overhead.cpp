// sched_overhead: (1) overhead (plan cost / no-remat cost) of every planner at every budget on
// every generator family, side by side (mean over seeds; "-" = infeasible for every seed);
// (2) solve time of treewidth, chain, sqrt, dtr (and keep-all) on ~10,000-node graphs (target <= 1
// s).
//
//   sched_overhead [--n 60] [--seeds 5] [--csv out.csv]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"

using namespace lethe::sched;

int main(int argc, char** argv) {
  int n = 60, seeds = 5;
  const char* csv = nullptr;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--n")) n = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seeds")) seeds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--csv")) csv = argv[i + 1];
  }
  FILE* out = csv ? std::fopen(csv, "w") : nullptr;
  if (out) std::fprintf(out, "family,planner,budget,mean_overhead,feasible,seeds\n");
  const std::vector<std::string> budgets = {"1", "0.75", "0.5", "0.35", "0.25", "0.15"};
  std::printf(
      "Overhead (cost / no-remat cost), mean over %d seeds, n=%d forward ops; '-' = infeasible\n",
      seeds, n);
  for (const std::string& family : generator_families()) {
    std::printf("\n%-12s", family.c_str());
    for (const auto& b : budgets) std::printf(" %9s", b.c_str());
    std::printf("\n");
    std::vector<Problem> graphs;
    for (int s = 0; s < seeds; ++s)
      graphs.push_back(generate(family, n, static_cast<uint64_t>(s) + 1));
    for (const PlannerEntry& e : planners()) {
      if (!e.fn) continue;
      if (e.name == "checkmate" && graphs[0].size() > 150) continue;
      std::printf("  %-10s", e.name.c_str());
      for (const auto& b : budgets) {
        double sum = 0.0;
        int ok = 0;
        for (const Problem& p : graphs) {
          if (const auto r = try_plan(p, parse_budget(b, p), e.name)) {
            sum += r->plan.predicted_cost / no_remat_cost(p);
            ++ok;
          }
        }
        if (ok) {
          char cell[32];
          std::snprintf(cell, sizeof cell, "%.3f%s", sum / ok, ok < seeds ? "*" : "");
          std::printf(" %9s", cell);
        } else {
          std::printf(" %9s", "-");
        }
        if (out)
          std::fprintf(out, "%s,%s,%s,%.6f,%d,%d\n", family.c_str(), e.name.c_str(), b.c_str(),
                       ok ? sum / ok : 0.0, ok, seeds);
      }
      std::printf("\n");
    }
  }
  std::printf("\n(* = feasible for only some seeds; mean over those)\n");

  std::printf(
      "\nSolve time on ~10,000-node graphs (target <= 1 s), budget 0.5 / 0.25 of activations\n");
  std::printf("%-12s %7s %-10s %11s %11s %9s %9s\n", "family", "nodes", "planner", "t(0.5) s",
              "t(0.25) s", "ovh 0.5", "ovh 0.25");
  const struct {
    const char* family;
    int n;
  } big[] = {{"chain", 3300}, {"transformer", 3000}, {"unet", 2800}, {"layered", 3300}};
  for (const auto& bg : big) {
    const Problem p = generate(bg.family, bg.n, 1);
    for (const char* name : {"keep-all", "treewidth", "chain", "sqrt", "dtr"}) {
      const PlannerEntry& e = find_planner(name);
      if (!e.fn) continue;
      std::printf("%-12s %7d %-10s", bg.family, p.size(), name);
      std::string times, overheads;
      for (const char* b : {"0.5", "0.25"}) {
        char t[32], o[32];
        if (const auto r = try_plan(p, parse_budget(b, p), name)) {
          std::snprintf(t, sizeof t, " %11.3f", r->solve_seconds);
          std::snprintf(o, sizeof o, " %9.3f", r->plan.predicted_cost / no_remat_cost(p));
        } else {
          std::snprintf(t, sizeof t, " %11s", "infeasible");
          std::snprintf(o, sizeof o, " %9s", "-");
        }
        times += t;
        overheads += o;
      }
      std::printf("%s%s", times.c_str(), overheads.c_str());
      std::printf("\n");
      if (out) std::fflush(out);
    }
  }
  if (out) std::fclose(out);
  return 0;
}
