// One budget syntax everywhere: the session's memory_budget and lethe-plan read a text the same way
// (scheduler/budget.h), and a budget too small to hold one buffer is said plainly.
#include <doctest/doctest.h>

#include <string>

#include "lethe.h"
#include "scheduler/budget.h"
#include "scheduler/planner.h"

using namespace lethe;

namespace {
std::string session_error(const std::string& budget) {
  try {
    Session s({.memory_budget = budget});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
std::string parser_error(const std::string& budget) {
  try {
    sched::parse_budget_spec(budget);
  } catch (const sched::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("budgets: the session and lethe-plan read a text the same way") {
  for (const std::string& b : {"0", "-1", "1.5", "abc", "3 parsecs", ""}) {
    CAPTURE(b);
    if (b.empty()) continue;  // empty means unlimited in a session
    const std::string lib = session_error(b), cli = parser_error(b);
    REQUIRE(!cli.empty());
    CHECK(lib == "memory_budget: " + cli);
  }
  CHECK(parser_error("0").find("zero bytes") != std::string::npos);
  const sched::BudgetSpec one = sched::parse_budget_spec("1");
  CHECK(one.fraction);
  CHECK(one.f == 1.0);
  CHECK(sched::parse_budget_spec("0.25").fraction);
  CHECK(sched::parse_budget_spec("4096").bytes == 4096);
  CHECK(sched::parse_budget_spec("2MiB").bytes == 2 << 20);
  CHECK(session_error("0.25").empty());
  CHECK(session_error("1").empty());
  CHECK(session_error("4MiB").empty());
}

TEST_CASE(
    "budgets: a byte budget smaller than one buffer says so and how to write what was meant") {
  const std::string e = session_error("2");
  CHECK(e.find("'2' is 2 bytes, less than one 64-byte buffer") != std::string::npos);
  CHECK(e.find("2MiB") != std::string::npos);
}

TEST_CASE("budgets: an infeasible budget gives exact bytes beside the rounded ones") {
  Session s({.memory_budget = "0.01"});
  auto w = randn({64, 64}).set_requires_grad(true);
  std::string msg;
  try {
    matmul(randn({256, 64}), w).relu().sum().backward();
    s.flush();
  } catch (const InfeasibleBudget& e) {
    msg = e.what();
  }
  CHECK(msg.find(" bytes) is too small for this step") != std::string::npos);
}
