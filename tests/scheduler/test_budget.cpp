#include <doctest/doctest.h>

#include "scheduler/budget.h"
#include "scheduler/graph_io.h"
#include "scheduler/simulator.h"
#include "test_helpers.h"

using namespace lethe::sched;
using lethe::sched::test::contains;
using lethe::sched::test::error_of;

TEST_CASE("budget: bytes and units") {
  const Problem p =
      read_problem_file(std::string(LETHE_SCHEDULER_TEST_DATA) + "/chain3-train.graph.json");
  CHECK(parse_budget("1904", p) == 1904);
  CHECK(parse_budget("2", p) == 2);
  CHECK(parse_budget("512MiB", p) == 512LL << 20);
  CHECK(parse_budget("2GiB", p) == 2LL << 30);
  CHECK(parse_budget("1.5GB", p) == 1500000000LL);
  CHECK(parse_budget("64KiB", p) == 65536);
  CHECK(parse_budget("64KB", p) == 64000);
  CHECK(parse_budget("3MB", p) == 3000000);
  CHECK(parse_budget("100B", p) == 100);
  CHECK(parse_budget("1B", p) == 1);
  CHECK(parse_budget(" 512 mib ", p) == 512LL << 20);
}

TEST_CASE("budget: activation fractions") {
  const Problem p =
      read_problem_file(std::string(LETHE_SCHEDULER_TEST_DATA) + "/chain3-train.graph.json");
  // floor 804, no-remat peak 1904
  CHECK(parse_budget("1", p) == 1904);
  CHECK(parse_budget("1.0", p) == 1904);
  CHECK(parse_budget("0.5", p) == 804 + 550);
  CHECK(parse_budget("0.25", p) == 804 + 275);
  CHECK(parse_budget("0.001", p) == 804 + 2);  // 1.1 rounds up
  CHECK(parse_budget(".5", p) == 804 + 550);
}

TEST_CASE("budget: garbage is refused naming the text and the accepted forms") {
  const Problem p =
      read_problem_file(std::string(LETHE_SCHEDULER_TEST_DATA) + "/chain3-train.graph.json");
  for (const char* bad :
       {"", "abc", "-5", "0", "0.0", "1.5", "2.0", "12XB", "1e9", "5 M", "0B", "1..2"}) {
    const std::string msg = error_of([&] { parse_budget(bad, p); });
    CAPTURE(bad);
    CHECK(contains(msg, std::string("'") + bad + "'"));
    CHECK(contains(msg, "512MiB"));
  }
  CHECK(contains(error_of([&] { parse_budget("1.5", p); }), "at most 1"));
  CHECK(contains(error_of([&] { parse_budget("-1", p); }), "negative"));
}

TEST_CASE("budget: format_bytes") {
  CHECK(format_bytes(512) == "512 B");
  CHECK(format_bytes(65536) == "64.00 KiB");
  CHECK(format_bytes(1572864) == "1.50 MiB");
  CHECK(format_bytes(2LL << 30) == "2.00 GiB");
}
