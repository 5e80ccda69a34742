#include "scheduler/budget.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "scheduler/planner.h"
#include "scheduler/simulator.h"

namespace lethe::sched {
namespace {

[[noreturn]] void bad(const std::string& text, const std::string& why) {
  throw Error(
      "bad budget '" + text + "': " + why +
      "; expected bytes (an integer, or a number with a unit B, KB, MB, GB, KiB, MiB, GiB, e.g. "
      "512MiB, 1.5GB) or an activation fraction in (0, 1] (e.g. 0.25, 1)");
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

int64_t fraction_budget(double f, const Problem& p) {
  const int64_t lo = floor_bytes(p);
  const int64_t hi = no_remat_peak(p);
  if (f >= 1.0) return hi;
  // ceil so that the budget never falls below what the fraction asks for.
  const double extra = std::ceil(f * static_cast<double>(hi - lo));
  return lo + static_cast<int64_t>(extra);
}

int64_t parse_budget(const std::string& text, const Problem& p) {
  const BudgetSpec s = parse_budget_spec(text);
  return s.fraction ? fraction_budget(s.f, p) : s.bytes;
}

BudgetSpec parse_budget_spec(const std::string& text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  const std::string t = text.substr(b, e - b);
  if (t.empty()) bad(text, "empty");
  // Number: digits with at most one decimal point; no sign, no exponent (units cover big values).
  size_t i = 0;
  bool dot = false, digits = false;
  for (; i < t.size(); ++i) {
    const char c = t[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digits) {
    bad(text, t[0] == '-' ? "negative" : "no number");
  }
  const std::string num = t.substr(0, i);
  size_t j = i;
  while (j < t.size() && std::isspace(static_cast<unsigned char>(t[j]))) ++j;
  const std::string unit = lower(t.substr(j));
  const double value = std::strtod(num.c_str(), nullptr);
  if (!std::isfinite(value)) bad(text, "not a finite number");

  if (unit.empty()) {
    if (dot || num == "1") {
      if (value <= 0.0) bad(text, "a fraction must be greater than 0");
      if (value > 1.0)
        bad(text, "a fraction must be at most 1 (write a unit, e.g. 1.5GB, for bytes)");
      return {true, value, 0};
    }
    if (value <= 0.0) bad(text, "zero bytes");
    if (value > 4.6e18) bad(text, "too large (at most 2^62 bytes)");
    return {false, 0, static_cast<int64_t>(std::strtoll(num.c_str(), nullptr, 10))};
  }

  double scale = 0.0;
  static const struct {
    const char* name;
    double scale;
  } kUnits[] = {{"b", 1.0},         {"kb", 1e3},           {"mb", 1e6},
                {"gb", 1e9},        {"tb", 1e12},          {"kib", 1024.0},
                {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
  for (const auto& u : kUnits) {
    if (unit == u.name) scale = u.scale;
  }
  if (scale == 0.0) bad(text, "unknown unit '" + t.substr(j) + "'");
  const double bytes = std::floor(value * scale);
  if (bytes <= 0.0) bad(text, "zero bytes");
  if (bytes > 4.6e18) bad(text, "too large (at most 2^62 bytes)");
  return {false, 0, static_cast<int64_t>(bytes)};
}

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024 && bytes > -1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int k = -1;
  while (std::fabs(v) >= 1024.0 && k < 3) {
    v /= 1024.0;
    ++k;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %s", v, units[k]);
  return buf;
}

}  // namespace lethe::sched
