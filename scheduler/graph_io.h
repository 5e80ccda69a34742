// Reading and writing graphs (`remat-graph/1`) and plans (`remat-plan/1`), exactly as in
// shared/specs/graph-and-plan-format.md. Readers ignore unknown fields; every malformed input
// throws sched::Error naming the node and the rule it breaks.
//
//   Problem p = read_problem_file("g.graph.json");
//   Plan plan = plan(p, parse_budget("0.5", p), "sqrt").plan;
//   write_plan_file(plan, "g.plan.json");
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "scheduler/planner.h"
#include "scheduler/problem.h"

namespace lethe::sched {

inline constexpr const char* kGraphFormat = "remat-graph/1";
inline constexpr const char* kPlanFormat = "remat-plan/1";

// Throws Error when `p` breaks a rule of the format (ids 0..n-1 in order, inputs smaller than the
// node, non-negative bytes, finite non-negative cost, outputs in range).
void validate_problem(const Problem& p);

Problem read_problem_json(const std::string& text);
Problem read_problem_file(const std::string& path);
Problem problem_from_json(const nlohmann::json& j);
nlohmann::json problem_to_json(const Problem& p);
std::string problem_to_string(const Problem& p);  // one node per line, stable layout
void write_problem_file(const Problem& p, const std::string& path);

// Plans are read without a problem: node ids are checked by simulate(), not here. Steps may carry a
// stream and waits (docs/plan-format.md); with `check_waits` (the default) a wait on the step
// itself, on a later step or on no step, a negative stream or one not below "streams" is refused
// naming the step. Without it such a plan is read as written and simulate() reports it (lethe-plan
// --check).
Plan read_plan_json(const std::string& text, bool check_waits = true);
Plan read_plan_file(const std::string& path, bool check_waits = true);
Plan plan_from_json(const nlohmann::json& j, bool check_waits = true);
nlohmann::json plan_to_json(const Plan& plan);
// Steps 8 to a line, serial steps as {"compute":3}; stream and waits only where set (so a serial
// plan is written exactly as before streams existed).
std::string plan_to_string(const Plan& plan);
void write_plan_file(const Plan& plan, const std::string& path);

}  // namespace lethe::sched
