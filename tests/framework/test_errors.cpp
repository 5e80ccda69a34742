// One error hierarchy, as PyTorch's c10::Error: every error of the library is a lethe::Error that
// knows where it was raised; context is added to an error in flight, not by wrapping it.
#include <doctest/doctest.h>

#include <string>

#include "framework/error.h"
#include "io/safetensors.h"
#include "lethe.h"
#include "scheduler/budget.h"
#include "scheduler/planner.h"

using namespace lethe;

TEST_CASE("errors: LETHE_CHECK and LETHE_ASSERT carry the message and the source location") {
  try {
    LETHE_CHECK(1 + 1 == 3, "arithmetic: expected ", 3, ", got ", 2);
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "arithmetic: expected 3, got 2");
    REQUIRE(e.file() != nullptr);
    CHECK(std::string(e.file()).find("test_errors.cpp") != std::string::npos);
    CHECK(e.line() > 0);
  }
  try {
    LETHE_ASSERT(sizeof(int) == 1, "ints are ", sizeof(int), " bytes");
    FAIL("no throw");
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.find("internal error: sizeof(int) == 1 failed at ") == 0);
    CHECK(what.find("ints are 4 bytes") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(LETHE_ASSERT(false), doctest::Contains("internal error: false failed at"),
                       Error);
}

TEST_CASE(
    "errors: the scheduler's and the file format's errors are lethe::Errors, context added in "
    "flight") {
  // A bad budget through the session: the parser's own error (a sched::Error), its context added.
  try {
    Session s({.memory_budget = "3 parsecs"});
    FAIL("no throw");
  } catch (const sched::Error& e) {
    CHECK(std::string(e.what()).find("memory_budget: ") == 0);
  }
  CHECK_THROWS_AS(sched::find_planner("no-such-planner"), Error);
  try {
    Session s({.planner = "no-such-planner"});
    FAIL("no throw");
  } catch (const sched::Error& e) {
    CHECK(std::string(e.what()).find("SessionOptions::planner: ") == 0);
  }
  CHECK_THROWS_AS(io::read_safetensors("/nonexistent/file.safetensors"), Error);
  try {
    load("/nonexistent/file.safetensors");
    FAIL("no throw");
  } catch (const io::Error& e) {
    CHECK(std::string(e.what()).find("load: ") == 0);
  }
}
