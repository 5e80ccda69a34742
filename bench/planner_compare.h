// Shared by the two parts of bench/planner_compare: one planner run, timed and simulated.
#pragma once

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/planner.h"
#include "scheduler/simulator.h"

namespace planner_compare {

struct Outcome {
  bool ok = false;
  double cost = 0, seconds = 0;
  int64_t peak = 0;
  bool optimal = false;
  lethe::sched::PlannerInfo info;
};

// The planner function itself, not plan(): plan() answers an infeasible budget by searching the
// smallest feasible one with every planner, which is slow and not what is measured here.
inline Outcome run(const lethe::sched::Problem& p, int64_t budget, const std::string& planner,
                   const lethe::sched::PlannerOptions& opts) {
  using namespace lethe::sched;
  Outcome o;
  const PlannerEntry& e = find_planner(planner);
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<Plan> pl = e.fn(p, budget, opts, &o.info);
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!pl) return o;
  pl->budget_bytes = budget;
  const SimResult r = simulate(p, *pl);
  if (!r.valid) {
    std::fprintf(stderr, "INVALID plan from %s on %s: %s\n", planner.c_str(), p.name.c_str(),
                 r.message.c_str());
    return o;
  }
  o.ok = true;
  o.cost = r.cost;
  o.peak = r.peak_bytes;
  o.optimal = o.info.optimal;
  return o;
}

inline std::string fmt(double v, int prec = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

// Sections (a)-(d) of the earlier bench (bench/planner_compare_synthetic.cpp).
int run_synthetic(const std::string& out, double cm_time, bool quick,
                  const std::vector<std::string>& files);

}  // namespace planner_compare
