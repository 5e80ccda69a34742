// Budgets as users write them (shared/specs/graph-and-plan-format.md, "Budgets").
//
//   parse_budget("512MiB", p) == 536870912
//   parse_budget("1.5GB", p)  == 1500000000
//   parse_budget("0.25", p)   == floor + ceil(0.25 * (no_remat_peak - floor))
//   parse_budget("1", p)      == no_remat_peak(p)       // "1" is the fraction 1, never one byte
//   format_bytes(1572864)     == "1.50 MiB"
#pragma once

#include <cstdint>
#include <string>

#include "scheduler/problem.h"

namespace lethe::sched {

// A budget as written, before any graph is known: the one parser of every tool (the library's
// SessionOptions::memory_budget, lethe-plan, the examples), so a text means the same everywhere.
// A number without a unit is an activation fraction when it has a decimal point or is exactly "1"
// (it must then lie in (0, 1]); otherwise an integer count of bytes ("0" is zero bytes: refused).
// Units: B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (powers of 1024), case-insensitive.
// Throws Error on anything else.
struct BudgetSpec {
  bool fraction = false;
  double f = 0;       // the fraction, when `fraction`
  int64_t bytes = 0;  // the bytes, otherwise
};
BudgetSpec parse_budget_spec(const std::string& text);
// parse_budget_spec, with a fraction resolved against `p`.
int64_t parse_budget(const std::string& text, const Problem& p);

// floor + ceil(f * (no_remat_peak - floor)); f == 1 gives the no-remat peak exactly.
int64_t fraction_budget(double f, const Problem& p);

// "512 B", "64.00 KiB", "1.50 MiB", "2.00 GiB".
std::string format_bytes(int64_t bytes);

}  // namespace lethe::sched
