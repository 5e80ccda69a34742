#include "framework/max_batch.h"

#include <cmath>
#include <cstdio>
#include <memory>

#include "framework/error.h"
#include "scheduler/budget.h"

namespace lethe {
namespace {

std::string bytes_str(size_t b) {
  return b == 0 ? "-" : sched::format_bytes(static_cast<int64_t>(b));
}

// The first sentence of an InfeasibleBudget's message (its breakdown is too long for a table).
std::string short_reason(const InfeasibleBudget& e) {
  if (e.smallest_feasible_bytes > 0)
    return "infeasible: the smallest budget a plan was found at is " +
           sched::format_bytes(static_cast<int64_t>(e.smallest_feasible_bytes));
  std::string m = e.what();
  for (const char* stop : {". Breakdown", "; "}) {
    const size_t at = m.find(stop);
    if (at != std::string::npos) m.resize(at);
  }
  return "infeasible: " + m;
}

BatchCandidate plan_candidate(const SessionOptions& options,
                              const std::function<void(int64_t)>& record_step, int64_t batch,
                              double max_overhead) {
  BatchCandidate c;
  c.batch = batch;
  SessionOptions o = options;
  o.plan_only = true;
  std::unique_ptr<Session> session;
  try {
    session = std::make_unique<Session>(o);
  } catch (const InfeasibleBudget&) {
    throw;
  } catch (Error& e) {
    e.add_context("find_max_batch: ");
    throw;
  }
  c.budget_bytes = session->state()->budget_bytes();
  try {
    record_step(batch);
    session->flush();  // a step recorded without optimizer.step() is planned too
  } catch (const InfeasibleBudget& e) {
    c.smallest_bytes = e.smallest_feasible_bytes;
    c.why = short_reason(e);
    return c;
  }
  const StepReport& r = session->last_report();
  LETHE_CHECK(
      r.plan_only, "find_max_batch: record_step(", batch,
      ") recorded no step in the plan-only session it was called in; build the model and the "
      "optimizer inside record_step (tensors of another session record into that session) and "
      "record one training step there");
  c.planner = r.planner;
  c.predicted_overhead = r.predicted_overhead;
  c.no_remat_peak_bytes = r.no_remat_peak_bytes;
  c.fits = true;
  if (max_overhead > 0 && r.predicted_overhead > max_overhead) {
    c.fits = false;
    char buf[96];
    std::snprintf(buf, sizeof buf, "predicted overhead %.3fx > max_overhead %.3fx",
                  r.predicted_overhead, max_overhead);
    c.why = buf;
  }
  return c;
}

}  // namespace

MaxBatchResult find_max_batch(const SessionOptions& options,
                              const std::function<void(int64_t batch)>& record_step,
                              const MaxBatchOptions& mb) {
  LETHE_CHECK(static_cast<bool>(record_step), "find_max_batch: record_step is empty");
  LETHE_CHECK(mb.min_batch >= 1, "find_max_batch: min_batch must be >= 1, got ", mb.min_batch);
  LETHE_CHECK(mb.min_batch <= mb.max_batch, "find_max_batch: min_batch (", mb.min_batch,
              ") must be <= max_batch (", mb.max_batch, ")");
  LETHE_CHECK(
      std::isfinite(mb.max_overhead) && (mb.max_overhead == 0 || mb.max_overhead >= 1),
      "find_max_batch: max_overhead is a ratio of step costs, plan / no recomputation (1.0: none "
      "recomputed, 1.3: 30 % more), or 0 for any; got ",
      mb.max_overhead);

  MaxBatchResult res;
  auto fits = [&](int64_t b) {
    res.tried.push_back(plan_candidate(options, record_step, b, mb.max_overhead));
    return res.tried.back().fits;
  };
  // Invariant: `good` fits (0: none known), `bad` does not (0: none known).
  int64_t good = 0, bad = 0;
  for (int64_t b = mb.min_batch;;) {
    if (!fits(b)) {
      bad = b;
      break;
    }
    good = b;
    if (b == mb.max_batch) break;
    b = b > mb.max_batch / 2 ? mb.max_batch : 2 * b;
  }
  if (good > 0 && bad > 0) {
    while (bad - good > 1) {
      const int64_t mid = good + (bad - good) / 2;
      (fits(mid) ? good : bad) = mid;
    }
  }
  res.batch = good;
  return res;
}

size_t find_min_budget(const SessionOptions& options, const std::function<void()>& record_step) {
  LETHE_CHECK(static_cast<bool>(record_step), "find_min_budget: record_step is empty");
  const std::function<void(int64_t)> record = [&](int64_t) { record_step(); };
  auto attempt = [&](size_t bytes) {
    SessionOptions o = options;
    o.memory_budget = std::to_string(bytes);
    return plan_candidate(o, record, 1, 0);
  };
  size_t refused = 0,
         fits = 0;  // the step's own values did not fit at `refused`; it plans at `fits`
  for (size_t b = size_t{1} << 20;; b *= 2) {
    const BatchCandidate c = attempt(b);
    if (c.fits) {
      fits = b;
      break;
    }
    if (c.smallest_bytes > 0) return c.smallest_bytes;
    LETHE_CHECK(b < (size_t{1} << 50), "find_min_budget: the step does not fit 1 PiB: ", c.why);
    refused = b;
  }
  while (fits - refused > 4096) {
    const size_t mid = refused + (fits - refused) / 2;
    const BatchCandidate c = attempt(mid);
    if (c.fits)
      fits = mid;
    else if (c.smallest_bytes > 0)
      return c.smallest_bytes;
    else
      refused = mid;
  }
  return fits;
}

std::string MaxBatchResult::table() const {
  std::string out = "batch | fits | planner | predicted overhead | no-remat peak | why\n";
  for (const BatchCandidate& c : tried) {
    char overhead[32] = "-";
    if (!c.planner.empty()) std::snprintf(overhead, sizeof overhead, "%.3fx", c.predicted_overhead);
    out += std::to_string(c.batch) + " | " + (c.fits ? "yes" : "no") + " | " +
           (c.planner.empty() ? "-" : c.planner) + " | " + overhead + " | " +
           bytes_str(c.no_remat_peak_bytes) + " | " + (c.why.empty() ? "-" : c.why) + "\n";
  }
  return out;
}

}  // namespace lethe
