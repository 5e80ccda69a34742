// sched_property: every planner (checkmate excepted: too slow for this many graphs) on many
// generated training graphs at several budgets; counts plans that are invalid, over budget or
// missing an output. The answer should be 0 everywhere.
//
//   sched_property [--graphs 100000] [--csv out.csv]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"

using namespace lethe::sched;

int main(int argc, char** argv) {
  long graphs = 100000;
  const char* csv = nullptr;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--graphs")) graphs = std::atol(argv[i + 1]);
    if (!std::strcmp(argv[i], "--csv")) csv = argv[i + 1];
  }
  const auto families = generator_families();
  const char* budgets[] = {"1", "0.5", "0.25", "0.1"};
  struct Cell {
    long plans = 0, infeasible = 0, invalid = 0;
  };
  std::map<std::pair<std::string, std::string>, Cell> table;
  const auto t0 = std::chrono::steady_clock::now();
  long invalid = 0;
  for (long g = 0; g < graphs; ++g) {
    const std::string& family = families[g % families.size()];
    const uint64_t seed = static_cast<uint64_t>(g);
    const int n = 3 + static_cast<int>((seed * 2654435761u) % 38);  // ~8..100 nodes
    const Problem p = generate(family, n, seed, 2 + static_cast<int>(g % 5));
    for (const PlannerEntry& e : planners()) {
      if (!e.fn || e.name == "checkmate") continue;
      Cell& c = table[{family, e.name}];
      for (const char* b : budgets) {
        const int64_t bytes = parse_budget(b, p);
        try {
          const std::optional<PlanResult> r = try_plan(p, bytes, e.name);
          if (!r) {
            ++c.infeasible;
            continue;
          }
          const SimResult s = simulate(p, r->plan);
          ++c.plans;
          if (!s.valid || s.peak_bytes > bytes) {
            ++c.invalid;
            ++invalid;
            std::fprintf(stderr, "INVALID %s seed %llu n %d planner %s budget %s: %s\n",
                         family.c_str(), static_cast<unsigned long long>(seed), n, e.name.c_str(),
                         b, s.message.c_str());
          }
        } catch (const Error& err) {  // plan() found an invalid plan
          ++c.plans;
          ++c.invalid;
          ++invalid;
          std::fprintf(stderr, "INVALID %s seed %llu: %s\n", family.c_str(),
                       static_cast<unsigned long long>(seed), err.what());
        }
      }
    }
    if ((g + 1) % 10000 == 0) std::fprintf(stderr, "%ld graphs...\n", g + 1);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%ld graphs x budgets {1, 0.5, 0.25, 0.1}, %.1f s\n", graphs, secs);
  std::printf("%-12s %-10s %10s %11s %8s\n", "family", "planner", "plans", "infeasible", "invalid");
  FILE* out = csv ? std::fopen(csv, "w") : nullptr;
  if (out) std::fprintf(out, "family,planner,plans,infeasible,invalid\n");
  for (const auto& [key, c] : table) {
    std::printf("%-12s %-10s %10ld %11ld %8ld\n", key.first.c_str(), key.second.c_str(), c.plans,
                c.infeasible, c.invalid);
    if (out)
      std::fprintf(out, "%s,%s,%ld,%ld,%ld\n", key.first.c_str(), key.second.c_str(), c.plans,
                   c.infeasible, c.invalid);
  }
  if (out) std::fclose(out);
  std::printf("invalid plans: %ld\n", invalid);
  return invalid == 0 ? 0 : 1;
}
