// Running a step inside the session's arena: plan under the budget, lay the plan out at static
// offsets, execute with recomputation, keep what the user holds.
#include <algorithm>
#include <optional>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

#include "framework/arena.h"
#include "framework/error.h"
#include "framework/executor.h"
#include "framework/session.h"
#include "framework/step_problem.h"
#include "framework/tensor.h"
#include "framework/trace.h"
#include "scheduler/budget.h"
#include "scheduler/graph_io.h"
#include "scheduler/layout.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"

namespace lethe {

struct CompiledStep {
  std::vector<ExecStep> steps;   // graph node ids
  std::vector<int64_t> offsets;  // per step: offset of a compute's buffer above the region base
  std::vector<int64_t> ws_offsets;  // per step: offset of a compute's workspace, -1 when it has none
  std::vector<int> side_effects;
  size_t region_bytes = 0;       // layout high-water + the side effects' region
  size_t workspace_offset = 0;   // the side effects' region (output, then workspace; after the plan)
  size_t workspace_bytes = 0;
  size_t no_remat_region = 0;    // what keep-all would need in the region
  std::string planner;
  double predicted_overhead = 1.0;
  double planning_seconds = 0.0;
  bool measured_costs = false;
  int measured_steps = 0;  // how many measured steps the costs folded in (0: estimates)
  std::shared_ptr<sched::Problem> problem;
};

namespace {

// Op times are measured over the first kMeasuredSteps budgeted steps of a graph (per-node minimum);
// the step is planned again after the first and after the last of them.
constexpr int kMeasuredSteps = 3;
int replan_point(int measured_steps) {
  return measured_steps >= kMeasuredSteps ? kMeasuredSteps : std::min(measured_steps, 1);
}

// The seconds a compiled plan's computes take by the per-node times `measured` (-1: not measured).
double measured_plan_cost(const CompiledStep& c, const std::vector<double>& measured) {
  double s = 0;
  for (const ExecStep& st : c.steps) {
    if (!st.compute || st.node < 0 || static_cast<size_t>(st.node) >= measured.size()) continue;
    s += std::max(0.0, measured[static_cast<size_t>(st.node)]);
  }
  return s;
}

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

std::string mib(int64_t b) { return sched::format_bytes(b); }

}  // namespace

std::shared_ptr<CompiledStep> SessionState::compile(Graph& g, const std::vector<int>& targets,
                                                    bool side_effects, uint64_t hash) {
  auto t0 = std::chrono::steady_clock::now();
  auto mit = measured_.find(hash);
  const std::vector<double>* measured = mit == measured_.end() ? nullptr : &mit->second;
  StepProblem sp = build_step_problem(g, targets, side_effects, measured, CostModel::calibrated());
  // Side effects run after the plan, one at a time, in a region above the plan's buffers: their
  // output, then their workspace.
  for (int s : sp.side_effects) {
    const Node& n = g.nodes[static_cast<size_t>(s)];
    std::vector<TensorMeta> in;
    for (int k : n.inputs) in.push_back(g.nodes[static_cast<size_t>(k)].meta);
    sp.max_workspace = std::max(sp.max_workspace, align_up(std::max<size_t>(n.meta.bytes(), 1)) +
                                                      align_up(n.op->workspace_bytes(in, n.meta)));
  }
  const sched::Problem& p = sp.problem;
  const int64_t resident = sched::resident_bytes(p);
  const int64_t no_remat = sched::no_remat_peak(p);
  const int64_t floor = sched::floor_bytes(p);
  const int64_t ws = static_cast<int64_t>(sp.max_workspace);
  // The step without its ops' workspace nodes (they weigh nothing): what a fraction budget is
  // taken of, and what is planned when the largest workspace is reserved for the whole step.
  sched::Problem reserved_p = p;
  int64_t max_scratch = 0;
  for (sched::Node& n : reserved_p.nodes) {
    if (!sp.scratch[static_cast<size_t>(n.id)]) continue;
    max_scratch = std::max(max_scratch, n.bytes);
    n.bytes = 0;
  }

  if (!arena_) {
    // A fraction budget: the arena is sized from this first step, as that fraction of the step's
    // activation memory plus the largest op workspace (not an activation: an op needs all of it
    // to run, whatever the plan).
    int64_t act = sched::fraction_budget(budget_fraction_, reserved_p) - resident + max_scratch;
    int64_t staged = 0;
    for (auto& w : staged_)
      if (auto st = w.lock()) staged += static_cast<int64_t>(align_up(st->bytes));
    ensure_arena(static_cast<size_t>(staged + act + ws));
  }
  const int64_t region_end = static_cast<int64_t>(arena_->capacity());
  // Persistent values outside this graph (kept tensors, unused parameters) also occupy the arena.
  const int64_t base = static_cast<int64_t>(arena_->persistent_end());
  const int64_t capacity = region_end - base - ws;  // bytes the plan's non-resident buffers may use

  auto breakdown = [&](int64_t smallest_region) {
    int64_t params = 0, opt = 0, other = 0, grads = 0;
    for (const auto& n : p.nodes) {
      if (!n.resident) continue;
      const Node& gn = g.nodes[static_cast<size_t>(sp.to_graph[static_cast<size_t>(n.id)])];
      if (gn.requires_grad) params += n.bytes;
      else if (gn.op == nullptr && gn.leaf && gn.leaf->role == StorageRole::optimizer_state) opt += n.bytes;
      else other += n.bytes;
    }
    for (int o : p.outputs) {
      const Node& gn = g.nodes[static_cast<size_t>(sp.to_graph[static_cast<size_t>(o)])];
      if (gn.is_gradient) grads += p.nodes[static_cast<size_t>(o)].bytes;
    }
    int64_t smallest = smallest_region < 0 ? -1 : base + smallest_region + ws;
    std::ostringstream os;
    os << "memory budget of " << mib(region_end) << " is too small for this step";
    if (smallest > 0) os << "; the smallest budget at which a plan was found is " << mib(smallest) << " (" << smallest << " bytes)";
    os << ". Breakdown: parameters " << mib(params) << ", gradients " << mib(grads)
       << ", optimizer state " << mib(opt) << ", other resident values (batch, buffers) " << mib(other)
       << ", values kept from earlier steps " << mib(base - resident > 0 ? base - resident : 0)
       << ", largest op working set " << mib(static_cast<int64_t>(sp.largest_working_set))
       << ", activations without rematerialisation " << mib(no_remat - floor)
       << " (no-remat peak of the step " << mib(base + (no_remat - resident) + ws) << ")";
    return os.str();
  };

  auto cs = std::make_shared<CompiledStep>();
  cs->measured_costs = measured != nullptr;
  if (auto ms = measured_steps_.find(hash); ms != measured_steps_.end()) cs->measured_steps = ms->second;
  cs->side_effects = sp.side_effects;
  cs->workspace_bytes = static_cast<size_t>(ws);
  cs->no_remat_region = static_cast<size_t>(no_remat - resident + ws);
  // The plan at the smallest budget the planner fits, for each of the two ways of holding the ops'
  // workspaces that the search below tries (each op's workspace a buffer of the plan, or the
  // largest one reserved for the whole step): the error message names the smaller arena, and when
  // the search finds nothing, these plans are the last resort, so that the smallest budget named
  // always runs.
  struct AtSmallest {
    sched::PlanResult r;
    sched::Layout layout;  // its lowest layout (no capacity to stop at)
    bool reserved = false;
  };
  std::vector<AtSmallest> at_smallest;
  bool at_smallest_done = false;
  auto smallest_plans = [&]() -> std::vector<AtSmallest>& {
    if (at_smallest_done) return at_smallest;
    at_smallest_done = true;
    for (const bool reserved : {false, true}) {
      if (reserved && max_scratch == 0) continue;
      const sched::Problem& prob = reserved ? reserved_p : p;
      try {
        const int64_t pb = sched::smallest_feasible_budget(prob, opts_.planner);
        AtSmallest a{sched::plan(prob, pb, opts_.planner), {}, reserved};
        a.layout = sched::layout_plan(prob, a.r.plan, static_cast<int64_t>(kAlignment));
        at_smallest.push_back(std::move(a));
      } catch (const sched::Error&) {
      }
    }
    return at_smallest;
  };
  auto smallest_arena = [&]() -> int64_t {
    int64_t best = -1;
    for (const AtSmallest& a : smallest_plans()) {
      const int64_t arena = base + a.layout.high_water + (a.reserved ? max_scratch : 0) + ws;
      if (best < 0 || arena < best) best = arena;
    }
    return best;
  };
  auto infeasible = [&]() {
    int64_t smallest = smallest_arena();
    return InfeasibleBudget(breakdown(smallest < 0 ? -1 : smallest - base - ws),
                            smallest < 0 ? 0 : static_cast<size_t>(smallest));
  };
  if (capacity <= 0 || capacity + resident < floor) throw infeasible();
  // The ops' workspace, two ways. Transient (tried first): each op's workspace node is a buffer
  // of the plan, live only while its op runs, so the rest of the step has that memory. Reserved
  // (the fallback): the largest workspace is set aside above the plan's buffers for the whole step
  // and the workspace nodes count nothing, as before workspace nodes existed. Transient plans can
  // be harder to lay out (a large workspace needs a hole of its own wherever its op runs), so the
  // reserved way is tried when the transient one found no plan that lays out.
  auto accept = [&](const sched::PlanResult& r, sched::Layout& layout, bool reserved) {
    // Workspace nodes are not executed: an op's workspace is its workspace node's buffer, the one
    // computed last before the op (a valid plan has it in memory then), or the reserved region.
    const int64_t reserved_at = layout.high_water;
    std::map<int, int64_t> ws_at;  // graph op id -> offset of its live workspace buffer
    for (size_t i = 0; i < r.plan.steps.size(); ++i) {
      const sched::Step& s = r.plan.steps[i];
      const bool compute = s.kind == sched::Step::Kind::compute;
      const int gid = sp.to_graph[static_cast<size_t>(s.node)];
      if (sp.scratch[static_cast<size_t>(s.node)]) {
        if (compute) ws_at[gid] = reserved ? reserved_at : layout.offsets[i];
        continue;
      }
      cs->steps.push_back({compute, gid});
      cs->offsets.push_back(layout.offsets[i]);
      auto w = compute ? ws_at.find(gid) : ws_at.end();
      cs->ws_offsets.push_back(w == ws_at.end() ? -1 : w->second);
    }
    const int64_t plan_end = layout.high_water + (reserved ? max_scratch : 0);
    cs->workspace_offset = static_cast<size_t>(plan_end);
    cs->region_bytes = static_cast<size_t>(plan_end + ws);
    cs->planner = r.plan.planner;
    double base_cost = sched::no_remat_cost(p);
    cs->predicted_overhead = base_cost > 0 ? r.plan.predicted_cost / base_cost : 1.0;
  };
  bool done = false;
  std::optional<sched::PlanResult> best_r;
  sched::Layout best_layout;
  bool best_reserved = false;
  // Plans `prob` for buffers within `cap` bytes, keeping the cheapest plan that lays out in
  // best_r.
  auto search = [&](const sched::Problem& prob, int64_t cap, bool reserved) {
    if (cap <= 0) return;
    int64_t planner_budget = cap + resident;
    // Planner budgets whose plan did not lay out within the capacity lie above `too_big`; once one
    // fits, the gap between the two is bisected for a cheaper plan that still fits (the cost of
    // the planners' plans falls in steps as the budget grows, so the largest fitting budget is
    // not always the first one found by stepping down).
    int64_t too_big = -1, fits = -1;
    // The planners weigh only plans whose buffers lay out within the capacity (lethe picks among
    // its candidates); without one, the plan below the budget is taken and the loop below plans
    // tighter by the layout's excess.
    sched::PlannerOptions fit_opts;
    fit_opts.accept = [&](const sched::Plan& pl) {
      return sched::layout_plan(prob, pl, static_cast<int64_t>(kAlignment), cap).high_water <= cap;
    };
    auto try_budget = [&](int64_t b) -> std::optional<int64_t> {  // the layout's excess, if it does not fit
      sched::PlanResult r;
      try {
        std::optional<sched::PlanResult> fit = sched::try_plan(prob, b, opts_.planner, fit_opts);
        if (!fit) fit = sched::try_plan(prob, b, opts_.planner);
        if (!fit) return std::nullopt;
        r = std::move(*fit);
      } catch (const sched::Error& e) {
        throw Error(std::string("planning the step failed: ") + e.what());
      }
      sched::Layout layout = sched::layout_plan(prob, r.plan, static_cast<int64_t>(kAlignment), cap);
      if (layout.high_water > cap) return layout.high_water - cap;
      if (!best_r || r.plan.predicted_cost < best_r->plan.predicted_cost) {
        best_r = std::move(r);
        best_layout = std::move(layout);
        best_reserved = reserved;
      }
      return int64_t{0};
    };
    for (int attempt = 0; attempt < 12 && planner_budget >= floor; ++attempt) {
      const std::optional<int64_t> excess = try_budget(planner_budget);
      if (!excess) break;  // infeasible here: lower budgets are too
      if (*excess == 0) {
        fits = planner_budget;
        break;
      }
      too_big = planner_budget;
      planner_budget -= std::max<int64_t>(*excess, static_cast<int64_t>(kAlignment));
    }
    for (int probe = 0; probe < 4 && fits >= 0 && too_big > fits + static_cast<int64_t>(kAlignment); ++probe) {
      const int64_t mid = fits + (too_big - fits) / 2;
      const std::optional<int64_t> excess = try_budget(mid);
      if (excess && *excess == 0) {
        fits = mid;
      } else {
        too_big = mid;
      }
    }
  };
  search(p, capacity, false);
  if (!best_r && max_scratch > 0) search(reserved_p, capacity - max_scratch, true);
  if (best_r) {
    accept(*best_r, best_layout, best_reserved);
    done = true;
  }
  if (!done && capacity > 0) {
    // A plan at the smallest feasible budget may still lay out within the capacity.
    for (AtSmallest& a : smallest_plans()) {
      if (a.layout.high_water > capacity - (a.reserved ? max_scratch : 0)) continue;
      accept(a.r, a.layout, a.reserved);
      done = true;
      break;
    }
  }
  if (!done) throw infeasible();
  cs->problem = std::make_shared<sched::Problem>(std::move(sp.problem));
  cs->planning_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return cs;
}

void SessionState::run_budgeted(Graph& g, const std::vector<int>& targets, bool side_effects,
                                std::vector<std::shared_ptr<Storage>>& values) {
  const uint64_t ghash = g.structural_hash();
  uint64_t key = mix(ghash, side_effects ? 1 : 2);
  for (int t : targets) key = mix(key, static_cast<uint64_t>(t));
  key = mix(key, arena_ ? arena_->persistent_end() : 0);
  key = mix(key, static_cast<uint64_t>(budget_value_));
  key = mix(key, static_cast<uint64_t>(opts_.device.kind) * 64 + static_cast<uint64_t>(opts_.device.index));
  bool from_cache = false;
  std::shared_ptr<CompiledStep> cs;
  auto it = plans_.find(key);
  // A plan made from estimated costs is made again once the step's times have been measured, and
  // once more when the first kMeasuredSteps steps have been (warm times).
  const int want = replan_point(measured_steps_.count(ghash) ? measured_steps_[ghash] : 0);
  if (it != plans_.end() && (replan_point(it->second->measured_steps) >= want || !measured_.count(ghash))) {
    cs = it->second;
    from_cache = true;
  } else if (it != plans_.end()) {
    // Planning again with measured costs can land on a plan that does not fit where the plan from
    // estimates did (costs steer the planners); then the working plan stays.
    try {
      std::shared_ptr<CompiledStep> fresh = compile(g, targets, side_effects, ghash);
      // The working plan stays when, under the times just measured, it costs at most 1 % more than
      // the new one: a replan never makes the step dearer in the planner's own terms, and near the
      // smallest budget (where the planners' choice is sensitive to a few percent of timing noise)
      // the plan made from the deterministic estimates anchors every run.
      const double old_cost = measured_plan_cost(*it->second, measured_[ghash]);
      const double new_cost = measured_plan_cost(*fresh, measured_[ghash]);
      if (new_cost > 0 && old_cost <= 1.01 * new_cost) {
        cs = it->second;
        cs->predicted_overhead = fresh->predicted_overhead * old_cost / new_cost;
        cs->planning_seconds = fresh->planning_seconds;
        cs->problem = fresh->problem;
        cs->measured_costs = true;
        cs->measured_steps = fresh->measured_steps;
      } else {
        cs = fresh;
      }
    } catch (const InfeasibleBudget&) {
      cs = it->second;
      cs->measured_costs = true;
      cs->measured_steps = measured_steps_[ghash];
      from_cache = true;
    }
    plans_[key] = cs;
  } else {
    cs = compile(g, targets, side_effects, ghash);
    plans_[key] = cs;
  }
  if (opts_.plan_only) {
    // The plan is the answer: nothing runs, so nothing is measured and no value is kept.
    std::vector<char> seen(g.nodes.size(), 0);
    size_t computes = cs->side_effects.size(), again = 0;
    for (const ExecStep& e : cs->steps) {
      if (!e.compute) continue;
      ++computes;
      again += seen[static_cast<size_t>(e.node)];
      seen[static_cast<size_t>(e.node)] = 1;
    }
    for (size_t i = 0; i < values.size(); ++i)
      if (!g.nodes[i].is_leaf()) values[i].reset();
    last_problem_ = cs->problem;
    report_ = StepReport{};
    report_.plan_only = true;
    report_.budget_bytes = arena_->capacity();
    report_.no_remat_peak_bytes = arena_->persistent_end() + cs->no_remat_region;
    report_.planner = cs->planner;
    report_.nodes = computes;
    report_.recomputed = again;
    report_.predicted_overhead = cs->predicted_overhead;
    report_.planning_seconds = from_cache ? 0.0 : cs->planning_seconds;
    report_.plan_from_cache = from_cache;
    return;
  }
  Arena& arena = *arena_;
  const size_t base = arena.persistent_end();
  LETHE_ASSERT(base + cs->region_bytes <= arena.capacity());
  char* region = arena.base() + base;
  arena.reset_peak();

  values.resize(g.nodes.size());
  std::vector<double> seconds(g.nodes.size(), -1.0);
  std::vector<char> done(g.nodes.size(), 0);
  size_t computed = 0, recomputed = 0;
  const Device dev = opts_.device;
  auto place = [&](size_t offset, int64_t ws_offset) {
    return [&, offset, ws_offset](size_t bytes, bool workspace) {
      LETHE_ASSERT(!workspace || ws_offset >= 0);
      auto s = std::make_shared<Storage>();
      size_t off = workspace ? static_cast<size_t>(ws_offset) : offset;
      s->data = region + off;
      s->bytes = bytes;
      s->device = dev;
      s->context = arena.context();
      arena.note_extent(base + off + align_up(bytes ? bytes : 1));
      return s;
    };
  };
  Tracer* tr = tracer_.get();
  if (tr && !from_cache) tr->slice(Tracer::Kind::plan, "plan " + cs->planner, -1, g.step,
                                   tr->now_us() - cs->planning_seconds * 1e6, tr->now_us());
  // Traced: measured = the highest end of a live buffer in the arena (fragmentation included);
  // predicted = the plan's account: resident base + the values it holds live.
  std::map<size_t, int> trace_ends;  // end offsets of live step buffers (a multiset)
  std::vector<size_t> trace_end(tr ? g.nodes.size() : 0, 0);
  int64_t trace_live = 0;
  auto value_bytes = [&](size_t id) { return static_cast<int64_t>(align_up(std::max<size_t>(g.nodes[id].meta.bytes(), 1))); };
  // Op times come from the session's timer (CUDA: events on the session's stream, so GPU time, not
  // launch time), read once the device has finished the step; the trace's slices too, placed from
  // the host time the step began.
  StepTimer& timer = step_timer();
  timer.reset();
  struct Timed {
    size_t id;
    int begin, end;
    Tracer::Kind kind;
    int64_t extent, predicted;  // traced memory right after the op
  };
  std::vector<Timed> timed;
  auto trace_op = [&](size_t id, size_t offset, Tracer::Kind kind, int m0, int m1) {
    const int64_t b = value_bytes(id);
    if (kind != Tracer::Kind::update) {
      trace_end[id] = base + offset + static_cast<size_t>(b);
      ++trace_ends[trace_end[id]];
      trace_live += b;
    }
    const int64_t extent = static_cast<int64_t>(trace_ends.empty() ? base : trace_ends.rbegin()->first);
    timed.push_back({id, m0, m1, kind, extent, static_cast<int64_t>(base) + trace_live});
  };
  auto trace_free = [&](size_t id) {
    if (!values[id] || trace_end[id] == 0) return;
    auto it = trace_ends.find(trace_end[id]);
    if (it != trace_ends.end() && --it->second == 0) trace_ends.erase(it);
    trace_end[id] = 0;
    trace_live -= value_bytes(id);
  };
  std::vector<std::pair<int, int>> first_marks(g.nodes.size(), {-1, -1});  // a node's first compute
  auto t0 = std::chrono::steady_clock::now();
  const double start_us = tr ? tr->now_us() : 0.0;
  const int start = timer.mark();
  for (size_t i = 0; i < cs->steps.size(); ++i) {
    const ExecStep& e = cs->steps[i];
    const size_t id = static_cast<size_t>(e.node);
    if (!e.compute) {
      if (tr) trace_free(id);
      values[id].reset();
      continue;
    }
    const int m0 = timer.mark();
    compute_node(*this, g, e.node, values, place(static_cast<size_t>(cs->offsets[i]), cs->ws_offsets[i]));
    const int m1 = timer.mark();
    if (!done[id]) first_marks[id] = {m0, m1};
    if (tr) {
      if (trace_end[id]) trace_free(id);  // a recomputation over a value still held (not in valid plans)
      trace_op(id, static_cast<size_t>(cs->offsets[i]), done[id] ? Tracer::Kind::recompute : Tracer::Kind::compute, m0, m1);
    }
    recomputed += done[id];
    done[id] = 1;
    ++computed;
  }
  // Side effects run once, after every read of what they overwrite (recomputations included).
  for (int id : cs->side_effects) {
    const int m0 = timer.mark();
    // Its output, then its workspace (as compile() reserved them).
    compute_node(*this, g, id, values,
                 place(cs->workspace_offset,
                       static_cast<int64_t>(cs->workspace_offset) + value_bytes(static_cast<size_t>(id))));
    const int m1 = timer.mark();
    if (tr) trace_op(static_cast<size_t>(id), cs->workspace_offset, Tracer::Kind::update, m0, m1);
    values[static_cast<size_t>(id)].reset();
    ++computed;
  }
  // The step's time ends when the device has finished it, not when the host has launched it.
  timer.synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t id = 0; id < first_marks.size(); ++id)
    if (first_marks[id].first >= 0) seconds[id] = timer.seconds(first_marks[id].first, first_marks[id].second);
  for (const Timed& t : timed) {
    const double b = start_us + timer.seconds(start, t.begin) * 1e6, e = start_us + timer.seconds(start, t.end) * 1e6;
    tr->slice(t.kind, g.nodes[t.id].op->name(), static_cast<int>(t.id), g.step, b, e, value_bytes(t.id));
    tr->memory(b, t.extent, t.predicted);
  }
  // Keep what the user holds: move it down among the long-lived values, lowest address first, so
  // no move overwrites a value not yet moved.
  std::vector<int> kept;
  for (int t : targets)
    if (values[static_cast<size_t>(t)]) kept.push_back(t);
  std::sort(kept.begin(), kept.end(), [&](int a, int b) {
    return values[static_cast<size_t>(a)]->data < values[static_cast<size_t>(b)]->data;
  });
  for (int t : kept) {
    LETHE_ASSERT(arena.relocate_to_persistent(*values[static_cast<size_t>(t)]));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    bool is_kept = std::find(kept.begin(), kept.end(), static_cast<int>(i)) != kept.end();
    if (!is_kept && !g.nodes[i].is_leaf()) values[i].reset();
  }
  if (side_effects) {
    int& n = measured_steps_[ghash];
    std::vector<double>& m = measured_[ghash];
    if (n == 0 || m.size() != seconds.size()) {
      m = seconds;
      n = 1;
    } else if (n < kMeasuredSteps) {
      for (size_t i = 0; i < m.size(); ++i)
        if (seconds[i] >= 0 && (m[i] < 0 || seconds[i] < m[i])) m[i] = seconds[i];
      ++n;
    }
  }
  last_problem_ = cs->problem;

  report_ = StepReport{};
  report_.budget_bytes = arena.capacity();
  report_.peak_bytes = arena.peak();
  report_.no_remat_peak_bytes = base + cs->no_remat_region;
  report_.planner = cs->planner;
  report_.nodes = computed;
  report_.recomputed = recomputed;
  report_.predicted_overhead = cs->predicted_overhead;
  report_.seconds = secs;
  report_.planning_seconds = from_cache ? 0.0 : cs->planning_seconds;
  report_.plan_from_cache = from_cache;
  report_.measured_costs = cs->measured_costs;
}

void SessionState::export_graph(const std::string& path) {
  std::shared_ptr<sched::Problem> p = std::static_pointer_cast<sched::Problem>(last_problem_);
  sched::Problem fresh;
  if (!p || graph_) {
    // The pending step (or nothing has run yet): export what is recorded now.
    LETHE_CHECK(graph_ != nullptr || p, "export_graph: nothing has been recorded or run in this session");
    if (graph_) {
      std::vector<int> targets;
      for (size_t i = 0; i < graph_->nodes.size(); ++i)
        if (!graph_->nodes[i].is_leaf() && !graph_->nodes[i].handle.expired()) targets.push_back(static_cast<int>(i));
      auto mit = measured_.find(graph_->structural_hash());
      fresh = build_step_problem(*graph_, targets, true, mit == measured_.end() ? nullptr : &mit->second,
                                 CostModel::calibrated()).problem;
      if (!fresh.nodes.empty() || !p) p = std::make_shared<sched::Problem>(std::move(fresh));
    }
  }
  sched::Problem out = *p;
  out.name = "lethe-step";
  try {
    sched::write_problem_file(out, path);
  } catch (const sched::Error& e) {
    throw Error(std::string("export_graph: ") + e.what());
  }
}

}  // namespace lethe
