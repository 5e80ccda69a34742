// lethe-plan --check: the binary run on plan files, its exit code and what it prints.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "test_helpers.h"

using lethe::sched::test::contains;

namespace {

const std::string kData = LETHE_SCHEDULER_TEST_DATA;
const std::string kExe = LETHE_PLAN_EXE;

struct Run {
  int code = -1;
  std::string out;  // stdout and stderr
};

// A fresh folder per process for the files the cases write, removed when the process ends.
struct Scratch {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lethe-plan-cli-" + std::to_string(::getpid()));
  Scratch() { std::filesystem::create_directories(dir); }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

const std::filesystem::path& scratch() {
  static const Scratch s;
  return s.dir;
}

std::string write(const std::string& name, const std::string& text) {
  const std::string path = (scratch() / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  return path;
}

Run run(const std::string& args) {
  const std::string log = (scratch() / "out.txt").string();
  const int status = std::system((kExe + " " + args + " > " + log + " 2>&1").c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::ostringstream ss;
  ss << in.rdbuf();
  r.out = ss.str();
  return r;
}

const std::string kGraph = kData + "/chain3-train.graph.json";

// The spec example's training step with the two gradients of the second layer (g_w2 on stream 1,
// g_a1 on stream 0) in parallel: worst-case peak 2304 bytes against the serial plan's 1904.
std::string streamed_plan(int64_t budget, const std::string& wait_of_free7 = "[6]",
                          const std::string& wait_of_gw2 = "[5]") {
  return R"({"format": "remat-plan/1", "graph": "chain3-train", "planner": "hand", "budget_bytes": )" +
         std::to_string(budget) + R"(, "streams": 2, "steps": [
    {"compute": 3}, {"compute": 4}, {"compute": 5}, {"compute": 6}, {"free": 5}, {"compute": 7},
    {"compute": 8, "stream": 1, "after": )" +
         wait_of_gw2 + R"(}, {"free": 4, "stream": 1},
    {"compute": 9}, {"free": 7, "after": )" +
         wait_of_free7 + R"(}, {"compute": 10}, {"free": 9}, {"free": 3},
    {"compute": 11}, {"free": 10}]})";
}

}  // namespace

TEST_CASE("lethe-plan --check: a valid streamed plan within its budget exits 0") {
  const Run r = run("--check " + kGraph + " " + write("ok.plan.json", streamed_plan(2304)));
  CAPTURE(r.out);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "valid          yes"));
  CHECK(contains(r.out, "peak           2304 bytes"));
  CHECK(contains(r.out, "streams        2"));
  CHECK(contains(r.out, "cost           5.6"));
  CHECK(contains(r.out, "makespan       4.6"));
  // The spec's serial example too.
  const Run s = run("--check " + kGraph + " " + kData + "/chain3-train.keep-all.plan.json");
  CAPTURE(s.out);
  CHECK(s.code == 0);
  CHECK(contains(s.out, "peak           1904 bytes"));
  CHECK(contains(s.out, "makespan       5.6"));
}

TEST_CASE("lethe-plan --check: over the budget exits 1 naming the step and the steps in flight") {
  const std::string plan = write("over.plan.json", streamed_plan(1904));
  Run r = run("--check " + kGraph + " " + plan);
  CAPTURE(r.out);
  CHECK(r.code == 1);
  CHECK(contains(
      r.out,
      "step 8: rule 2: compute node 9 can bring memory to 2304 bytes, over the budget of 1904"));
  CHECK(contains(r.out, "budget         1904 bytes (1.86 KiB), exceeded"));
  CHECK(contains(r.out, "in flight      6 values can be in memory together"));
  CHECK(contains(r.out, "step 6 (node 8, 100 B), step 8 (node 9, 400 B)"));
  // --budget overrides the file's budget, in the usual syntax.
  r = run("--check " + kGraph + " " + plan + " --budget 2304");
  CHECK(r.code == 0);
  r = run("--check " + kGraph + " " + plan + " --budget 2KiB");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "over the budget of 2048"));
}

TEST_CASE(
    "lethe-plan --check: waits on later steps, cycles and unordered frees exit 1 naming the step") {
  // g_w2 (step 6, stream 1) also waits for g_a1 (step 8, stream 0), which does not wait for it.
  Run r =
      run("--check " + kGraph + " " + write("fwd.plan.json", streamed_plan(4096, "[6]", "[5, 8]")));
  CAPTURE(r.out);
  CHECK(r.code == 1);
  CHECK(contains(
      r.out,
      "step 6: waits for step 8, a later step (a step waits only for earlier steps of the plan)"));
  CHECK_FALSE(contains(r.out, "cycle"));
  r = run("--check " + kGraph + " " + write("self.plan.json", streamed_plan(4096, "[9]")));
  CHECK(r.code == 1);
  CHECK(contains(r.out, "step 9: waits for itself"));
  // Step 9 waits for 10 (on its own stream, later) and 10 follows 9: a cycle.
  r = run("--check " + kGraph + " " + write("cycle.plan.json", streamed_plan(4096, "[10]")));
  CHECK(r.code == 1);
  CHECK(contains(r.out, "step 9: waits for step 10, a later step"));
  CHECK(contains(r.out, "closes a cycle: step 10 itself waits for step 9"));
  // The free of g_h2 no longer waits for g_w2's compute on the other stream.
  r = run("--check " + kGraph + " " + write("race.plan.json", streamed_plan(4096, "[]")));
  CHECK(r.code == 1);
  CHECK(contains(r.out,
                 "step 9: rule 3: free node 7 can run before step 6 (compute node 8) reads it"));
}

TEST_CASE("lethe-plan --check: unreadable input exits 2") {
  Run r = run("--check " + kGraph + " " + (scratch() / "missing.plan.json").string());
  CHECK(r.code == 2);
  CHECK(contains(r.out, "cannot open"));
  r = run("--check " + kGraph + " " + write("bad.json", "{\"format\": \"remat-plan/1\", "));
  CHECK(r.code == 2);
  CHECK(contains(r.out, "bad JSON"));
  r = run(
      "--check " + kGraph + " " +
      write(
          "badstream.json",
          R"({"format": "remat-plan/1", "budget_bytes": 1, "steps": [{"compute": 3, "stream": "x"}]})"));
  CHECK(r.code == 2);
  CHECK(contains(r.out, "plan step 0: field \"stream\" must be an integer"));
  r = run("--check " + kGraph);
  CHECK(r.code == 2);
  CHECK(contains(r.out, "--check needs a graph and a plan"));
  r = run(kGraph + " " + kData + "/chain3-train.keep-all.plan.json --budget 1");
  CHECK(r.code == 2);
  CHECK(contains(r.out, "only with --check"));
}

TEST_CASE(
    "lethe-plan --streams: a plan on two streams that --check accepts, and bad counts refused") {
  const std::string graph = std::string(LETHE_BENCH_GRAPHS) + "/resnet18-w16.graph.json";
  const std::string out = (scratch() / "two.plan.json").string();
  Run r = run(graph + " --budget 0.5 --streams 2 -o " + out);
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("streams        2: predicted time") != std::string::npos);
  r = run("--check " + graph + " " + out + " --budget 0.5");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("streams        2") != std::string::npos);
  for (const char* bad : {"0", "-1", "two"}) {
    r = run(graph + " --budget 0.5 --streams " + std::string(bad));
    CHECK(r.code == 2);
    CHECK(r.out.find("--streams: expected a positive number of streams") != std::string::npos);
  }
}

TEST_CASE("lethe-plan: a graph with no outputs is refused, not planned at overhead 0") {
  const std::string g =
      write("no-outputs.graph.json", R"({"format": "remat-graph/1", "name": "none", "nodes": [
    {"id": 0, "bytes": 8, "cost": 0, "inputs": [], "resident": true},
    {"id": 1, "bytes": 8, "cost": 1, "inputs": [0]}], "outputs": []})");
  const Run r = run(g + " --budget 1");
  CAPTURE(r.out);
  CHECK(r.code == 2);
  CHECK(contains(r.out, "field \"outputs\" is empty"));
  CHECK_FALSE(contains(r.out, "overhead"));
}

TEST_CASE(
    "lethe-plan --sweep: --help explains the columns, and checkmate's limit is named as such") {
  Run r = run("--help");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "'smallest', the smallest budget any planner but checkmate"));
  CHECK(contains(r.out, "--time-limit"));
  const std::string g = (scratch() / "unet.graph.json").string();
  REQUIRE(run("--generate unet --n 6 -o " + g).code == 0);
  // A limit no MILP can finish in: every cell checkmate leaves unproven says so ('*' on a plan, or
  // "time limit" without one); a budget every planner fits gets a plan (the heuristics' incumbent).
  r = run(g + " --sweep --time-limit 0.000001");
  CAPTURE(r.out);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "smallest: the smallest budget any planner but checkmate fits"));
  const size_t row = r.out.find("\ncheckmate ");
  REQUIRE(row != std::string::npos);
  const std::string line = r.out.substr(row + 1, r.out.find('\n', row + 1) - row - 1);
  CAPTURE(line);
  if (!contains(line, "n/a")) {  // built without CBC
    std::istringstream cells(line);
    std::string name, at_full;
    cells >> name >> at_full;
    CHECK(at_full.find('x') != std::string::npos);  // a plan at budget 1
    CHECK((contains(r.out, "*: checkmate's limit (--time-limit 1e-06 s)") ||
           contains(r.out, "time limit: checkmate found no plan within --time-limit 1e-06 s")));
  }
}
