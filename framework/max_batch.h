// The largest batch whose training step fits a memory budget, found by planning steps, not running
// them (SessionOptions::plan_only): nothing is trained and no kernel of a step runs.
//
//   lethe::SessionOptions opts{.memory_budget = "2GiB", .planner = "auto"};
//   lethe::MaxBatchResult r = lethe::find_max_batch(opts, [&](int64_t batch) {
//     auto model = make_model();  // built here: each candidate has a session of its own
//     lethe::optim::AdamW opt(model->parameters(), lethe::optim::AdamWOptions(1e-3));
//     auto x = lethe::randn({batch, 784});
//     auto y = lethe::zeros({batch}, lethe::DType::i64);
//     lethe::Tensor loss = lethe::cross_entropy(model->forward(x), y);
//     loss.backward();
//     opt.step();                 // plans the step; reads nothing
//   }, {.max_overhead = 1.3});    // at most 30 % predicted recomputation
//   std::printf("%s\nlargest batch: %lld\n", r.table().c_str(), (long long)r.batch);
//
// Each candidate is planned exactly as a budgeted step of a real session with these options would
// be planned on its first step (same planner, same layout check, same arena contents), so a batch
// reported to fit runs under the budget. Plans weigh ops by a cost model calibrated once per
// process (a short timing of this machine), so predicted overheads, and an answer bounded by
// max_overhead, can differ a little between processes. Later steps of a real session plan again
// with measured op times, which can change the planner's choice and its overhead, not whether the
// step fits.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "framework/session.h"

namespace lethe {

// One batch size planned.
struct BatchCandidate {
  int64_t batch = 0;
  bool fits = false;               // the plan fits the budget (and the overhead bound, if any)
  std::string planner;             // empty when no plan fits the budget
  double predicted_overhead = 0;   // plan cost / no-remat cost; 0 when no plan fits
  size_t budget_bytes = 0;         // the arena's size
  size_t no_remat_peak_bytes = 0;  // 0 when no plan fits the budget
  size_t smallest_bytes = 0;  // when infeasible: the smallest budget a plan was found at (0: none)
  std::string why;            // why it does not fit; empty when it fits
};

struct MaxBatchOptions {
  int64_t min_batch = 1;
  int64_t max_batch = int64_t{1} << 20;
  // A bound on the predicted overhead (1.0: no recomputation, 1.3: 30 % more compute); 0: any.
  double max_overhead = 0;
};

struct MaxBatchResult {
  int64_t batch = 0;                  // the largest fitting batch; 0 when min_batch does not fit
  std::vector<BatchCandidate> tried;  // in the order tried
  // One row per candidate: batch | fits | planner | predicted overhead | no-remat peak | why.
  std::string table() const;
};

// record_step(batch) builds the model and optimizer in the current session and records one
// training step of that batch (forward, loss, backward, optimizer.step()). Each candidate runs in a
// fresh plan-only session made from `options` (a memory budget in bytes is required).
//
// Search: doubling from min_batch until a batch does not fit (or max_batch is reached), then
// bisection between the last fitting and the first non-fitting batch. The answer b fits and b + 1
// was tried and does not (unless b == max_batch). A candidate that does not fit is one whose step,
// or anything record_step allocates (parameters, optimizer state, the batch), is refused with
// InfeasibleBudget; every other error of record_step propagates.
MaxBatchResult find_max_batch(const SessionOptions& options,
                              const std::function<void(int64_t batch)>& record_step,
                              const MaxBatchOptions& mb = {});

// The smallest memory budget, in bytes, at which the step record_step() records plans (its
// parameters, optimizer state and batch included), with `options` otherwise (planner, early
// updates; memory_budget is ignored). record_step() builds the model and optimizer and records one
// training step, as for find_max_batch. Each try is a fresh plan-only session: budgets double from
// 1 MiB until the step's own values fit, and the planners' smallest budget is taken from the
// InfeasibleBudget of the first that does not plan; when a budget plans outright, the gap to the
// last refused one is bisected to 4 KiB.
size_t find_min_budget(const SessionOptions& options, const std::function<void()>& record_step);

}  // namespace lethe
