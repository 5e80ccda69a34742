// Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost": keep a few forward values
// (segment boundaries), drop the rest during the forward pass, and in the backward pass recompute
// each segment once, when its gradients are first needed. The boundaries come from Chen's greedy
// memory-threshold rule (close a segment once it holds more than b bytes), for a grid of thresholds
// b, over two candidate sets: the forward articulation points (Chen's choice on DAGs: dropping
// everything inside a segment is then safe) and every forward node (for graphs with few of them).
// The cheapest plan that fits wins.
#include <algorithm>
#include <cmath>
#include <set>

#include "scheduler/plan_builder.h"
#include "scheduler/planners/planners.h"
#include "scheduler/simulator.h"

namespace lethe::sched {
namespace {

constexpr int kThresholds = 16;

// Why no plan fits (the planner's note on a refusal).
struct Refusal {
  bool no_split = false;
  int64_t lowest_peak = INT64_MAX;  // the lowest peak of its checkpoint sets, whatever the budget
  size_t sets = 0;
};

// With `why`, also runs the checkpoint sets that do not fit without a limit, for their peaks.
// With `late`, the split is the read output with the most ancestors even when the other outputs
// are not all computed from it. In PyTorch's exports that is a late backward op (a multi-result
// gradient): the "forward" then spans most of the backward, and values whose next use is in the
// last few backward ops (the stem's activations) are dropped and recomputed there. On DenseNet,
// ShuffleNetV2, EfficientNet and BERT that is cheaper than checkpointing the true forward (or the
// only plan at half the activations).
std::optional<Plan> sqrt_in_id_order(const Problem& p, int64_t budget, PlannerInfo* info,
                                     Refusal* why = nullptr, bool late = false) {
  const Dag g(p);
  const TrainingSplit split = late ? split_at_read_output(g) : split_training(g);
  if (why && !late) why->no_split = split.loss < 0;
  if (late && (split.loss < 0 || split.backward == split_training(g).backward))
    return std::nullopt;  // no other split
  const std::vector<uint8_t> cuts = forward_cuts(g, split);

  int64_t total = 0, smallest = INT64_MAX;
  for (NodeId f : split.forward) {
    total += g.bytes[f];
    if (g.bytes[f] > 0) smallest = std::min(smallest, g.bytes[f]);
  }
  if (smallest == INT64_MAX) smallest = 1;

  // Candidate checkpoint sets, each a sorted list of forward nodes; the set dedupes thresholds that
  // give the same segments.
  std::set<std::vector<NodeId>> candidates;
  candidates.insert({});  // no checkpoint: every forward value recomputed from the resident ones
  for (int only_cuts = 0; only_cuts <= 1; ++only_cuts) {
    for (int k = 0; k < kThresholds; ++k) {
      const double b = static_cast<double>(smallest) *
                       std::pow(static_cast<double>(std::max<int64_t>(total, smallest)) / smallest,
                                static_cast<double>(k) / (kThresholds - 1));
      std::vector<NodeId> ck;
      double acc = 0.0;
      for (NodeId f : split.forward) {
        acc += static_cast<double>(g.bytes[f]);
        if (acc > b && (!only_cuts || cuts[f])) {
          ck.push_back(f);
          acc = 0.0;
        }
      }
      candidates.insert(std::move(ck));
    }
  }

  std::optional<BuildResult> best;
  CheckpointSpec spec;
  // Keep-all first: when it fits nothing is cheaper.
  if (auto r = build_checkpoint_plan(g, all_kept(g), budget, "sqrt")) return std::move(r->plan);
  size_t best_count = 0;
  for (const std::vector<NodeId>& ck : candidates) {
    spec.keep.assign(g.n, 0);
    spec.stage.assign(g.n, 0);
    int seg = 0;
    size_t next = 0;
    for (NodeId f : split.forward) {
      spec.stage[f] = seg;
      if (next < ck.size() && ck[next] == f) {
        spec.keep[f] = 1;
        ++seg;
        ++next;
      }
    }
    // A gradient sum runs with its first-made input, the later ones made on demand (the chain
    // planner's rule, waiting for the last-made input, fits fewer budgets here on the exported
    // GPTs).
    assign_backward_stages(g, split, spec.stage, seg, false);
    for (NodeId f : split.forward) spec.stage[f] = -1;
    for (NodeId v : g.targets) {
      if (split.backward[v]) spec.keep[v] = 1;  // gradients are never recomputed
    }
    auto r = build_checkpoint_plan(g, spec, budget, "sqrt");
    if (!r && why) {
      ++why->sets;
      if (auto u = build_checkpoint_plan(g, spec, INT64_MAX, "sqrt"))
        why->lowest_peak = std::min(why->lowest_peak, u->peak);
    }
    if (r && (!best || r->cost < best->cost || (r->cost == best->cost && r->peak < best->peak))) {
      best = std::move(r);
      best_count = ck.size();
    }
  }
  if (!best) return std::nullopt;
  if (info) info->note = std::to_string(best_count) + " checkpoints";
  return std::move(best->plan);
}

}  // namespace

std::optional<Plan> plan_sqrt(const Problem& p, int64_t budget, const PlannerOptions&,
                              PlannerInfo* info) {
  Refusal why;
  // Three rules, the cheapest plan wins: the training split; the split at a late backward op (see
  // sqrt_in_id_order); the training split with the large gradients computed last (parameter
  // gradients larger than their inputs, held from the backward's start over the first layers'
  // working set in PyTorch's CNN exports).
  std::optional<Plan> best;
  std::string best_note;
  auto consider = [&](std::optional<Plan> plan, const PlannerInfo& pi, const char* how) {
    // Cheaper by more than rounding (the same computes summed in another order).
    if (plan && (!best || plan->predicted_cost < best->predicted_cost * (1 - 1e-9))) {
      best = std::move(plan);
      best_note = pi.note + how;
    }
  };
  {
    PlannerInfo pi;
    consider(sqrt_in_id_order(p, budget, &pi, info ? &why : nullptr), pi, "");
  }
  {
    PlannerInfo pi;
    consider(sqrt_in_id_order(p, budget, &pi, info ? &why : nullptr, true), pi,
             ", split at a late backward op");
  }
  if (std::optional<Reordered> r = late_outputs_last(p)) {
    PlannerInfo pi;
    std::optional<Plan> plan = sqrt_in_id_order(r->problem, budget, &pi, info ? &why : nullptr);
    if (plan) plan = plan_in_original(std::move(*plan), *r);
    consider(std::move(plan), pi, ", large gradients computed last");
  }
  if (best) {
    if (info) info->note = best_note;
    return best;
  }
  if (info) {
    if (budget < floor_bytes(p)) {
      info->note = "the budget is below the floor (resident values + outputs)";
    } else if (why.no_split) {
      info->note =
          "no forward/backward split: no output is a loss (one the other outputs are computed "
          "from, or "
          "the one the start of the backward does not lead to), so there is no backward to "
          "checkpoint";
    } else if (why.lowest_peak < INT64_MAX) {
      info->note = "the lowest peak of its " + std::to_string(why.sets) + " checkpoint sets is " +
                   std::to_string(why.lowest_peak) +
                   " bytes: a segment's recomputation beside the kept "
                   "checkpoints and gradients does not fit";
    } else {
      info->note =
          "every checkpoint set recomputes past its step limit (the forward has too few "
          "single-node cuts)";
    }
  }
  return std::nullopt;
}

}  // namespace lethe::sched
