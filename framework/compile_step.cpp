#include "framework/compile_step.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "framework/error.h"
#include "framework/session.h"
#include "framework/storage.h"
#include "scheduler/budget.h"
#include "scheduler/layout.h"
#include "scheduler/offload.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "scheduler/stream_assign.h"
#include "scheduler/streams.h"

namespace lethe {

// A compiled step's plan before the workspace steps were folded into their ops: what a plan on
// streams is derived from.
struct StreamSource {
  StepProblem sp;       // to_graph, scratch
  sched::Problem prob;  // the problem the plan was made for (workspaces reserved or not)
  sched::Plan plan;
  sched::Layout layout;
  bool reserved = false;
  int64_t cap = 0;  // the bytes the plan's buffers may lay out in
  int64_t max_scratch = 0;
  int64_t ws = 0;
  double base_cost = 0;  // no-remat cost (for the predicted overhead)
};

namespace {

std::string mib(int64_t b) {
  return sched::format_bytes(b);
}

// A plan and its layout. `reserved`: the ops' workspaces share one region set aside above the plan
// (the largest workspace), instead of each being a buffer of the plan.
struct Candidate {
  sched::PlanResult r;
  sched::Layout layout;
  bool reserved = false;
};

// Collectives (StepProblem::comm) are computed once each, in id order: every rank then issues them
// in one order, whatever its budget and planner (the graph orders them too: data_parallel.cpp).
bool collectives_once_in_order(const StepProblem& sp, const sched::Plan& plan) {
  if (std::find(sp.comm.begin(), sp.comm.end(), uint8_t{1}) == sp.comm.end()) return true;
  std::vector<uint8_t> seen(sp.comm.size(), 0);
  sched::NodeId last = -1;
  for (const sched::Step& st : plan.steps) {
    if (st.kind != sched::Step::Kind::compute || !sp.comm[static_cast<size_t>(st.node)]) continue;
    if (seen[static_cast<size_t>(st.node)] || st.node < last) return false;
    seen[static_cast<size_t>(st.node)] = 1;
    last = st.node;
  }
  return true;
}

// What every plan of a step must respect beyond the spec's rules: the collectives once each in
// order, and each early update once, after every read of what it overwrites.
bool order_ok(const StepProblem& sp, const sched::Plan& plan) {
  return collectives_once_in_order(sp, plan) && update_ok(sp, plan);
}

// A plan on streams derived from a valid serial plan: each early update also waits for the last
// compute before it of every node that reads what it overwrites (a read on another stream could
// otherwise run after it), which no data dependency orders.
void add_update_waits(const StepProblem& sp, sched::Plan& plan) {
  if (std::find(sp.update.begin(), sp.update.end(), uint8_t{1}) == sp.update.end()) return;
  std::map<int, std::vector<int>> readers;  // update -> nodes reading what it overwrites
  for (size_t id = 0; id < sp.reads_updated.size(); ++id)
    for (int u : sp.reads_updated[id]) readers[u].push_back(static_cast<int>(id));
  std::vector<int64_t> last(sp.update.size(), -1);  // node -> its last compute step so far
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    sched::Step& st = plan.steps[i];
    if (st.kind != sched::Step::Kind::compute) continue;
    const size_t id = static_cast<size_t>(st.node);
    if (sp.update[id])
      for (int r : readers[static_cast<int>(id)]) {
        const int64_t step = last[static_cast<size_t>(r)];
        if (step >= 0 && std::find(st.after.begin(), st.after.end(), step) == st.after.end())
          st.after.push_back(step);
      }
    last[id] = static_cast<int64_t>(i);
  }
}

// sched::smallest_feasible_budget(), remembered per process by the problem's content, the step's
// order rules and the planner: the search is the costly part of refusing a budget, and fresh
// sessions of one model (find_max_batch, find_min_budget, a user lowering the budget) plan the
// same problem again. Planners are deterministic given the problem (costs included), so a
// remembered answer is the answer (-1: none at any budget, as the search says).
int64_t cached_smallest_budget(const sched::Problem& p, const StepProblem& sp,
                               const std::string& planner, const sched::PlannerOptions& opts) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); };
  for (const char c : planner) mix(static_cast<uint64_t>(c));
  for (const sched::Node& n : p.nodes) {
    uint64_t cost = 0;
    std::memcpy(&cost, &n.cost, sizeof cost);
    mix(static_cast<uint64_t>(n.bytes));
    mix(cost);
    mix(n.resident ? 1 : 2);
    for (const sched::NodeId in : n.inputs) mix(static_cast<uint64_t>(in));
    mix(0xfeed);
  }
  for (const sched::NodeId o : p.outputs) mix(static_cast<uint64_t>(o));
  for (size_t id = 0; id < sp.update.size(); ++id) {
    mix(static_cast<uint64_t>(sp.update[id]) | static_cast<uint64_t>(sp.comm[id]) << 1);
    for (const int u : sp.reads_updated[id]) mix(static_cast<uint64_t>(u));
  }
  static std::mutex mu;
  static std::map<uint64_t, int64_t> known;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = known.find(h);
    if (it != known.end()) return it->second;
  }
  const int64_t b = sched::smallest_feasible_budget(p, planner, opts);
  std::lock_guard<std::mutex> lock(mu);
  known[h] = b;
  return b;
}

// The problem two ways, and the window, as every strategy reads them.
struct Search {
  const StepProblem& sp;
  const CompileOptions& o;
  const sched::Problem& p;    // each op's workspace a buffer of the plan (transient)
  sched::Problem reserved_p;  // workspace nodes weigh nothing (the largest is reserved)
  int64_t resident = 0, floor = 0, no_remat = 0;
  int64_t ws = 0;           // the side effects' region, above the plan
  int64_t max_scratch = 0;  // the largest op workspace
  int64_t base = 0, region_end = 0;
  int64_t capacity = 0;                            // bytes the plan's non-resident buffers may use
  bool collectives = false;                        // the step has collectives (StepProblem::comm)
  sched::Problem planning_p, planning_reserved_p;  // with collectives: p and reserved_p as planned

  Search(const StepProblem& s, const CompileOptions& opts, const StepWindow& w)
      : sp(s), o(opts), p(s.problem), reserved_p(s.problem) {
    resident = sched::resident_bytes(p);
    no_remat = sched::no_remat_peak(p);
    floor = sched::floor_bytes(p);
    ws = static_cast<int64_t>(sp.max_workspace);
    for (sched::Node& n : reserved_p.nodes) {
      if (!sp.scratch[static_cast<size_t>(n.id)]) continue;
      max_scratch = std::max(max_scratch, n.bytes);
      n.bytes = 0;
    }
    base = w.base;
    region_end = w.region_end;
    capacity = region_end - base - ws;
    if (std::find(sp.comm.begin(), sp.comm.end(), uint8_t{1}) != sp.comm.end()) {
      // A collective is never recomputed (every rank runs it once): the planners see it as dearer
      // than recomputing the whole step many times over; plan costs are then those of the real
      // problem (real_cost()).
      const double dear = 1000.0 * (sched::no_remat_cost(p) + 1e-6);
      planning_p = p;
      planning_reserved_p = reserved_p;
      for (sched::Problem* q : {&planning_p, &planning_reserved_p})
        for (sched::Node& n : q->nodes)
          if (sp.comm[static_cast<size_t>(n.id)]) n.cost += dear;
      collectives = true;
    }
  }
  // The problem the planners see for `prob` (p or reserved_p).
  const sched::Problem& planning(const sched::Problem& prob) const {
    if (!collectives) return prob;
    return &prob == &reserved_p ? planning_reserved_p : planning_p;
  }
  // A planner's result on planning(prob), costed on prob.
  sched::PlanResult real_cost(const sched::Problem& prob, sched::PlanResult r) const {
    if (collectives) r.plan.predicted_cost = sched::simulate(prob, r.plan).cost;
    return r;
  }

  // The plans at the smallest budget the planner fits, both ways, with their lowest layouts:
  // the error message names the smaller arena, and the last strategy falls back on them, so that
  // the smallest budget named always runs. Computed once, when first needed.
  const std::vector<Candidate>& smallest_plans() {
    if (smallest_) return *smallest_;
    smallest_.emplace();
    for (const bool reserved : {false, true}) {
      if (reserved && max_scratch == 0) continue;
      const sched::Problem& prob = reserved ? reserved_p : p;
      try {
        // Only plans every rank and every update can run count (order_ok).
        sched::PlannerOptions ordered;
        ordered.accept = [this](const sched::Plan& pl) { return order_ok(sp, pl); };
        const int64_t pb = cached_smallest_budget(planning(prob), sp, o.planner, ordered);
        Candidate c{
            real_cost(prob, sched::plan(planning(prob), pb, o.planner, ordered)), {}, reserved};
        if (!order_ok(sp, c.r.plan)) continue;
        c.layout = sched::layout_plan(prob, c.r.plan, static_cast<int64_t>(kAlignment));
        smallest_->push_back(std::move(c));
      } catch (const sched::Error&) {
      }
    }
    return *smallest_;
  }
  int64_t smallest_arena() {
    int64_t best = -1;
    for (const Candidate& c : smallest_plans()) {
      const int64_t arena = base + c.layout.high_water + (c.reserved ? max_scratch : 0) + ws;
      if (best < 0 || arena < best) best = arena;
    }
    return best;
  }

  std::string breakdown(int64_t smallest_region) const {
    int64_t params = 0, opt = 0, other = 0, grads = 0;
    for (const auto& n : p.nodes) {
      if (!n.resident) continue;
      switch (sp.role[static_cast<size_t>(n.id)]) {
        case ResidentRole::parameter:
          params += n.bytes;
          break;
        case ResidentRole::optimizer_state:
          opt += n.bytes;
          break;
        case ResidentRole::other:
          other += n.bytes;
          break;
      }
    }
    // Gradients held to the end of the step (outputs), and those an early update frees.
    int64_t freed_early = 0;
    std::vector<uint8_t> is_output(p.nodes.size(), 0);
    for (int out : p.outputs) is_output[static_cast<size_t>(out)] = 1;
    for (const auto& n : p.nodes) {
      if (!sp.gradient[static_cast<size_t>(n.id)] || n.resident) continue;
      (is_output[static_cast<size_t>(n.id)] ? grads : freed_early) += n.bytes;
    }
    const int64_t smallest = smallest_region < 0 ? -1 : base + smallest_region + ws;
    std::ostringstream os;
    // Exact bytes beside the rounded figures: a budget and the smallest can round alike.
    os << "memory budget of " << mib(region_end) << " (" << region_end
       << " bytes) is too small for this step";
    if (smallest > 0)
      os << "; the smallest budget at which a plan was found is " << mib(smallest) << " ("
         << smallest << " bytes)";
    os << ". Breakdown: parameters " << mib(params) << ", gradients " << mib(grads);
    if (freed_early > 0) os << " (+ " << mib(freed_early) << " freed by early updates)";
    os << ", optimizer state " << mib(opt) << ", other resident values (batch, buffers) "
       << mib(other) << ", values kept from earlier steps "
       << mib(base - resident > 0 ? base - resident : 0) << ", largest op working set "
       << mib(static_cast<int64_t>(sp.largest_working_set))
       << ", activations without rematerialisation " << mib(no_remat - floor)
       << " (no-remat peak of the step " << mib(base + (no_remat - resident) + ws) << ")";
    return os.str();
  }
  // The refusal without a tier (refuse() adds what a tier would need).
  InfeasibleBudget infeasible() {
    const int64_t smallest = smallest_arena();
    return InfeasibleBudget(breakdown(smallest < 0 ? -1 : smallest - base - ws),
                            smallest < 0 ? 0 : static_cast<size_t>(smallest));
  }
  std::string tier_note;  // why plans with copies to the tier did not fit (with_tier)

 private:
  std::optional<std::vector<Candidate>> smallest_;
};

// The cheapest plan of `prob` whose buffers lay out within `cap` bytes. Planner budgets whose plan
// did not lay out lie above `too_big`; the planner budget steps down by the layout's excess until
// one fits, then the gap is bisected for a cheaper plan that still fits (the planners' costs fall
// in steps as the budget grows, so the largest fitting budget is not always the first found).
std::optional<Candidate> plan_within(const Search& s, const sched::Problem& prob, int64_t cap,
                                     bool reserved) {
  if (cap <= 0) return std::nullopt;
  std::optional<Candidate> best;
  int64_t planner_budget = cap + s.resident;
  int64_t too_big = -1, fits = -1;
  // The planners weigh only plans whose buffers lay out within the capacity (lethe picks among its
  // candidates); without one, the plan below the budget is taken and the loop plans tighter by the
  // layout's excess.
  sched::PlannerOptions fit_opts;
  fit_opts.accept = [&](const sched::Plan& pl) {
    return order_ok(s.sp, pl) &&
           sched::layout_plan(prob, pl, static_cast<int64_t>(kAlignment), cap).high_water <= cap;
  };
  auto try_budget =
      [&](int64_t b) -> std::optional<int64_t> {  // the layout's excess, if it does not fit
    sched::PlanResult r;
    try {
      std::optional<sched::PlanResult> fit =
          sched::try_plan(s.planning(prob), b, s.o.planner, fit_opts);
      if (!fit) fit = sched::try_plan(s.planning(prob), b, s.o.planner);
      if (!fit || !order_ok(s.sp, fit->plan)) return std::nullopt;
      r = s.real_cost(prob, std::move(*fit));
    } catch (Error& e) {
      e.add_context("planning the step failed: ");
      throw;
    }
    sched::Layout layout = sched::layout_plan(prob, r.plan, static_cast<int64_t>(kAlignment), cap);
    if (layout.high_water > cap) return layout.high_water - cap;
    if (!best || r.plan.predicted_cost < best->r.plan.predicted_cost)
      best = Candidate{std::move(r), std::move(layout), reserved};
    return int64_t{0};
  };
  for (int attempt = 0; attempt < 12 && planner_budget >= s.floor; ++attempt) {
    const std::optional<int64_t> excess = try_budget(planner_budget);
    if (!excess) break;  // infeasible here: lower budgets are too
    if (*excess == 0) {
      fits = planner_budget;
      break;
    }
    too_big = planner_budget;
    planner_budget -= std::max<int64_t>(*excess, static_cast<int64_t>(kAlignment));
  }
  for (int probe = 0; probe < 4 && fits >= 0 && too_big > fits + static_cast<int64_t>(kAlignment);
       ++probe) {
    const int64_t mid = fits + (too_big - fits) / 2;
    const std::optional<int64_t> excess = try_budget(mid);
    if (excess && *excess == 0)
      fits = mid;
    else
      too_big = mid;
  }
  return best;
}

// The strategies, tried in order; the first that returns a plan wins.
// 1. Each op's workspace a buffer of the plan, live only while its op runs: the rest of the step
//    has that memory.
std::optional<Candidate> transient_workspaces(Search& s) {
  return plan_within(s, s.p, s.capacity, false);
}
// 2. The largest workspace set aside above the plan for the whole step (workspace nodes weigh
//    nothing): plans that lay out more easily, since a large workspace then needs no hole of its
//    own wherever its op runs.
std::optional<Candidate> reserved_workspace(Search& s) {
  if (s.max_scratch == 0) return std::nullopt;
  return plan_within(s, s.reserved_p, s.capacity - s.max_scratch, true);
}
// 3. A plan at the smallest feasible budget, which may still lay out within the capacity.
std::optional<Candidate> smallest_budget_plan(Search& s) {
  if (s.capacity <= 0) return std::nullopt;
  for (const Candidate& c : s.smallest_plans())
    if (c.layout.high_water <= s.capacity - (c.reserved ? s.max_scratch : 0)) return c;
  return std::nullopt;
}

// Where a plan's copies go in the tier: each value copied out gets its own bytes, in plan order (a
// value offloaded twice keeps its place), so no order of the copies the plan allows can mix two.
// `total`: the tier bytes they take.
std::map<sched::NodeId, int64_t> tier_places(const sched::Problem& p, const sched::Plan& plan,
                                             int64_t& total) {
  std::map<sched::NodeId, int64_t> at;
  total = 0;
  for (const sched::Step& st : plan.steps)
    if (st.kind == sched::Step::Kind::offload && !at.count(st.node)) {
      at[st.node] = total;
      total += static_cast<int64_t>(
          align_up(static_cast<size_t>(p.nodes[static_cast<size_t>(st.node)].bytes)));
    }
  return at;
}

// A plan with copies to a tier of `host` bytes (sched::plan_joint) at the planners' budget
// `budget`, kept when it passes the step's order rules, lays out within `capacity` bytes, fits the
// tier with a place of its own per value copied out, and is predicted faster than `than`. The
// planner budget is lowered by the layout's excess a few times when fragmentation puts a plan past
// the capacity. The greedy's choices weigh copy times by the bandwidths, so whether it fits can
// depend on them (a probe on a loaded machine): when nothing fits at the measured bandwidths, it
// plans again with them scaled by each of `scales` in turn, its plans timed at the measured
// bandwidths like the others. With one factor (1000), budgets near the smallest fitted at some
// probes' figures and not at others' (tests/budget/test_tier_budget.cpp: at 5e8 and 2e9-3e10 B/s,
// not at 1e8 or 1e9). `note`: the first planner error, when nothing fits.
constexpr std::initializer_list<double> kTierScales = {1.0,  1000.0, 0.1,  0.01,
                                                       10.0, 0.3,    0.03, 3.0};
struct CopyPlan {
  Candidate c;
  std::string kind;  // "offload" or "joint" (the mode's name when only one is asked for)
  int64_t tier = 0;  // the tier bytes its copies take
  double time = 0;   // predicted, at the measured bandwidths
};
// The fastest plan with copies at `budget` predicted faster than `than`. `kinds`, when given,
// receives the fastest plan of each kind weighed on the way, faster than `than` or not (the
// session measures them against each other: CompiledStep::alternatives).
std::optional<CopyPlan> plan_with_copies(const Search& s, int64_t budget, int64_t capacity,
                                         int64_t host, std::initializer_list<double> scales,
                                         double than, std::string* note,
                                         std::vector<CopyPlan>* kinds = nullptr) {
  const sched::TierBandwidth bw{s.o.out_bandwidth, s.o.in_bandwidth};
  if (!bw.known() || budget <= s.floor) return std::nullopt;
  const std::string planner = s.o.planner == "auto" ? "lethe" : s.o.planner;
  std::optional<CopyPlan> best;
  double best_time = than;
  for (const double scale : scales) {
    if (best) break;
    const sched::TierBandwidth planning_bw{bw.out * scale, bw.in * scale};
    sched::Problem planning_p = s.p;
    planning_p.bandwidth = planning_bw;
    int64_t b = budget;
    for (int attempt = 0; attempt < 4 && b > s.floor; ++attempt) {
      sched::JointPlans j;
      try {
        sched::PlannerOptions po;
        po.accept = [&s](const sched::Plan& pl) { return order_ok(s.sp, pl); };
        j = sched::plan_joint(planning_p, b, host, planning_bw, planner, 4, po);
      } catch (const sched::Error& e) {
        if (note && note->empty()) *note = e.what();
        break;
      }
      int64_t excess = 0;
      const std::string& mode = s.o.tier_mode;
      for (const auto* c : {&j.joint, &j.offload_only}) {
        if (!*c || !order_ok(s.sp, (*c)->plan)) continue;
        if ((mode == "offload" && c != &j.offload_only) || (mode == "joint" && c != &j.joint))
          continue;
        // Without copies it is a plan the usual search weighs already (unless only offload-only
        // or joint planning is asked for: at a budget that needs no copies, theirs has none).
        if (!sched::has_copies((*c)->plan) && mode == "auto") continue;
        int64_t tier = 0;
        tier_places(s.p, (*c)->plan, tier);
        if (tier > host) continue;
        sched::Layout layout =
            sched::layout_plan(s.p, (*c)->plan, static_cast<int64_t>(kAlignment), capacity);
        if (layout.high_water > capacity) {
          excess = std::max(excess, layout.high_water - capacity);
          continue;
        }
        const double time = sched::makespan(s.p, (*c)->plan);  // at the measured bandwidths
        const std::string label = mode != "auto"                                   ? mode
                                  : c == &j.joint && (*c)->remat_budget_bytes >= 0 ? "joint"
                                                                                   : "offload";
        CopyPlan* same = nullptr;  // the kind's fastest so far
        if (kinds)
          for (CopyPlan& k : *kinds)
            if (k.kind == label) same = &k;
        const bool kind_best = kinds && (!same || time < same->time);
        if (time >= best_time && !kind_best) continue;
        sched::PlanResult r;
        r.plan = (*c)->plan;
        r.plan.predicted_cost = sched::simulate(s.p, r.plan).cost;
        CopyPlan cp{Candidate{std::move(r), std::move(layout), false}, label, tier, time};
        if (kind_best) {
          if (same)
            *same = cp;
          else
            kinds->push_back(cp);
        }
        if (time >= best_time) continue;
        best = std::move(cp);
        best_time = time;
      }
      if (best || excess == 0) break;
      b -= std::max<int64_t>(excess, static_cast<int64_t>(kAlignment));
    }
  }
  return best;
}

// With a second tier (CompileOptions::host_bytes): the fastest plan with copies at the window's
// budget, if it is predicted faster than `than` (the recompute-only plan's time).
std::optional<Candidate> with_tier(Search& s, double than, std::string& kind,
                                   std::vector<CopyPlan>* kinds) {
  std::optional<CopyPlan> p =
      plan_with_copies(s, s.capacity + s.resident, s.capacity, s.o.host_bytes, kTierScales, than,
                       &s.tier_note, kinds);
  if (!p) return std::nullopt;
  kind = p->kind;
  return std::move(p->c);
}

// The refusal of a step: with a tier, also what copies would need both ways, so that the message
// says which budget to raise and by how much.
InfeasibleBudget refuse(Search& s) {
  if (s.o.quick_refusal)
    return InfeasibleBudget("no plan of the step fits its window (CompileOptions::quick_refusal)",
                            0);
  if (s.o.host_bytes <= 0) return s.infeasible();
  const int64_t smallest = s.smallest_arena();
  // tier_plan "offload" takes only plans with copies: recomputation's smallest is no answer.
  const int64_t recompute = s.o.tier_mode == "offload" ? -1 : smallest;
  const std::string msg = s.breakdown(recompute < 0 ? -1 : recompute - s.base - s.ws);
  // As with_tier would plan them at a budget; no faster-than filter: recomputation fits none of
  // these budgets.
  const double inf = std::numeric_limits<double>::infinity();
  auto fits = [&](int64_t budget, int64_t host, std::initializer_list<double> scales) {
    return plan_with_copies(s, budget, budget - s.resident, host, scales, inf, nullptr);
  };
  const int64_t budget = s.capacity + s.resident;  // the planners' budget of this window
  // A tier as large as every value of the step together: no plan can need more.
  int64_t all_values = 0;
  for (const sched::Node& n : s.p.nodes) all_values += static_cast<int64_t>(align_up(n.bytes));
  const std::optional<CopyPlan> here = fits(budget, all_values, kTierScales);
  // Six probes of a bisection between `lo` (no plan fits) and `hi`: the smallest value at which
  // `fits` found a plan (what it returns: at most the value probed), or -1.
  auto bisect = [](int64_t lo, int64_t hi, auto fits) {
    int64_t found = -1;
    for (int i = 0; i < 6 && hi - lo > static_cast<int64_t>(kAlignment); ++i) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (const std::optional<int64_t> at = fits(mid))
        found = hi = *at;
      else
        lo = mid;
    }
    return found;
  };
  // The smallest host_budget found for this memory budget, below what that plan's copies take (a
  // plan made with a smaller tier may copy other values, or fewer). Its probes try every bandwidth
  // factor, as a session does: with two (1, 1000), the GPT 6x256 at 78 MiB named 99.91 MiB where
  // 46.41 MiB trains, and the refusal took 7.5 s rather than 12.8 s.
  int64_t host_needed = -1;
  if (here) {
    host_needed = bisect(0, here->tier, [&](int64_t host) -> std::optional<int64_t> {
      const std::optional<CopyPlan> p = fits(budget, host, kTierScales);
      if (!p) return std::nullopt;
      return std::min(host, p->tier);
    });
    if (host_needed < 0) host_needed = here->tier;
  }
  // The smallest arena found with copies at this host_budget: the planners' budget from this one
  // (no plan with copies fits it) up to recomputation's smallest (or the no-remat peak). Two
  // bandwidth factors only: the probes below a budget that fits nothing fail, and a failure tries
  // every factor given.
  int64_t with_copies =
      bisect(budget, recompute > 0 ? recompute - s.base - s.ws + s.resident : s.no_remat,
             [&](int64_t b) -> std::optional<int64_t> {
               if (!fits(b, s.o.host_bytes, {1.0, 1000.0})) return std::nullopt;
               return b;
             });
  if (with_copies >= 0) with_copies = s.base + (with_copies - s.resident) + s.ws;
  std::ostringstream os;
  os << ". With the second tier (host_budget " << mib(s.o.host_bytes)
     << "), no plan with copies fits either";
  if (!s.tier_note.empty()) os << " (" << s.tier_note << ")";
  if (here)
    os << "; at this memory_budget a plan with copies fits a host_budget of " << mib(host_needed)
       << " (" << host_needed << " bytes)";
  else
    os << "; at this memory_budget no plan with copies fits whatever the host_budget";
  if (with_copies > 0)
    os << "; at this host_budget, copies fit a memory_budget of " << mib(with_copies) << " ("
       << with_copies << " bytes)";
  if (recompute < 0 && smallest > 0)
    os << " (recomputation alone fits " << mib(smallest)
       << ", but tier_plan \"offload\" takes only plans with copies)";
  os << ": raise " << (here ? "host_budget or memory_budget" : "memory_budget");
  const int64_t named =
      with_copies > 0 && (recompute < 0 || with_copies < recompute) ? with_copies : recompute;
  return InfeasibleBudget(msg + os.str(), named < 0 ? 0 : static_cast<size_t>(named));
}

struct Strategy {
  const char* name;
  std::optional<Candidate> (*run)(Search&);
};
constexpr Strategy kStrategies[] = {
    {"transient workspaces", transient_workspaces},
    {"reserved workspace", reserved_workspace},
    {"plan at the smallest feasible budget", smallest_budget_plan},
};

// The compiled step of a plan: workspace nodes are not executed (an op's workspace is its workspace
// node's buffer, the one computed last before the op, or the reserved region), offsets per step.
// A plan on streams keeps its streams; a wait on a dropped workspace step becomes what that step
// itself waited for (its waits and the step before it on its stream).
void fill(CompiledStep& cs, const StepProblem& sp, const sched::Plan& plan,
          const sched::Layout& layout, bool reserved, int64_t max_scratch, int64_t ws) {
  const std::map<sched::NodeId, int64_t> tier_at = tier_places(sp.problem, plan, cs.tier_bytes);
  const int64_t reserved_at = layout.high_water;
  const bool streamed = sched::has_streams(plan);
  const size_t m = plan.steps.size();
  std::vector<int32_t> kept(m, -1);  // plan step -> compiled step
  std::vector<std::vector<int32_t>> inherited(
      m);                                 // dropped plan step -> compiled steps it waited for
  std::map<int, int32_t> last_on_stream;  // stream -> its last plan step so far
  auto resolve = [&](int64_t a, std::vector<int32_t>& out) {
    if (kept[static_cast<size_t>(a)] >= 0)
      out.push_back(kept[static_cast<size_t>(a)]);
    else
      out.insert(out.end(), inherited[static_cast<size_t>(a)].begin(),
                 inherited[static_cast<size_t>(a)].end());
  };
  std::map<int, int64_t> ws_at;  // graph op id -> offset of its live workspace buffer
  for (size_t i = 0; i < m; ++i) {
    const sched::Step& st = plan.steps[i];
    const bool compute = st.kind == sched::Step::Kind::compute;
    const int gid = sp.to_graph[static_cast<size_t>(st.node)];
    std::vector<int32_t> waits;
    if (streamed) {
      for (int64_t a : st.after) resolve(a, waits);
      // The step before it on its stream (kept: filtered below as a wait on the same stream, but a
      // dropped step passes it on to whoever waited for the dropped one).
      auto prev = last_on_stream.find(st.stream);
      if (prev != last_on_stream.end()) resolve(prev->second, waits);
      last_on_stream[st.stream] = static_cast<int32_t>(i);
    }
    if (sp.token[static_cast<size_t>(st.node)]) {  // planning only: never run
      inherited[i] = std::move(waits);
      continue;
    }
    if (sp.scratch[static_cast<size_t>(st.node)]) {
      if (compute) ws_at[gid] = reserved ? reserved_at : layout.offsets[i];
      inherited[i] = std::move(waits);
      continue;
    }
    kept[i] = static_cast<int32_t>(cs.steps.size());
    ExecStep es{compute, gid};
    switch (st.kind) {
      case sched::Step::Kind::offload:
        es.copy = CopyKind::offload;
        break;
      case sched::Step::Kind::fetch:
        es.copy = CopyKind::fetch;
        break;
      case sched::Step::Kind::drop:
        es.copy = CopyKind::drop;
        break;
      case sched::Step::Kind::compute:
      case sched::Step::Kind::free:
        break;
    }
    if (!tier_at.empty())
      cs.tier_offsets.push_back(es.copy == CopyKind::none ? -1 : tier_at.at(st.node));
    cs.steps.push_back(es);
    cs.offsets.push_back(layout.offsets[i]);
    auto w = compute ? ws_at.find(gid) : ws_at.end();
    cs.ws_offsets.push_back(w == ws_at.end() ? -1 : w->second);
    if (streamed) {
      cs.stream.push_back(st.stream);
      std::sort(waits.begin(), waits.end());
      waits.erase(std::unique(waits.begin(), waits.end()), waits.end());
      // Waits on the step's own stream are kept by the stream's order.
      std::vector<int32_t> others;
      for (int32_t a : waits)
        if (cs.stream[static_cast<size_t>(a)] != st.stream) others.push_back(a);
      cs.after.push_back(std::move(others));
    }
  }
  if (streamed) cs.streams = sched::stream_count(plan);
  const int64_t plan_end = layout.high_water + (reserved ? max_scratch : 0);
  cs.workspace_offset = static_cast<size_t>(plan_end);
  cs.region_bytes = static_cast<size_t>(plan_end + ws);
  cs.planner = plan.planner;
}

// The compiled step of the plan `c` found by the search `s` of the step `sp`.
void finish(CompiledStep& cs, const Search& s, const StepProblem& sp, Candidate c) {
  const CompileOptions& o = s.o;
  cs.side_effects = sp.side_effects;
  cs.workspace_bytes = static_cast<size_t>(s.ws);
  cs.no_remat_region = static_cast<size_t>(s.no_remat - s.resident + s.ws);
  fill(cs, sp, c.r.plan, c.layout, c.reserved, s.max_scratch, s.ws);
  LETHE_CHECK(cs.tier_bytes <= o.host_bytes || o.host_bytes == 0,
              "internal error: a plan's copies take ", cs.tier_bytes, " bytes of a second tier of ",
              o.host_bytes);
  const double base_cost = sched::no_remat_cost(s.p);
  cs.predicted_overhead = base_cost > 0 ? c.r.plan.predicted_cost / base_cost : 1.0;
  const sched::Problem& prob = c.reserved ? s.reserved_p : s.p;
  cs.predicted_seconds = sched::makespan(prob, c.r.plan);
  cs.problem = std::make_shared<sched::Problem>(sp.problem);
  cs.collectives = std::find(sp.comm.begin(), sp.comm.end(), uint8_t{1}) != sp.comm.end();
  cs.early_updates = static_cast<int>(std::count(sp.update.begin(), sp.update.end(), uint8_t{1}));
  auto src = std::make_shared<StreamSource>();
  src->sp = sp;
  src->prob = prob;
  src->plan = c.r.plan;
  src->layout = std::move(c.layout);
  src->reserved = c.reserved;
  src->cap = s.capacity - (c.reserved ? s.max_scratch : 0);
  src->max_scratch = s.max_scratch;
  src->ws = s.ws;
  src->base_cost = base_cost;
  cs.source = std::move(src);
  if (o.streams >= 2)
    cs.parallel = streamed_step(cs, o.streams, o.stream_costs, o.unknown_cost_factor);
}

}  // namespace

std::shared_ptr<CompiledStep> compile_step(const StepProblem& step, const StepWindow& window,
                                           const CompileOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  // With a tier, the problem carries its bandwidths (the copies' predicted times).
  StepProblem with_bandwidth;
  if (o.host_bytes > 0) {
    with_bandwidth = step;
    with_bandwidth.problem.bandwidth = {o.out_bandwidth, o.in_bandwidth};
  }
  const StepProblem& sp = o.host_bytes > 0 ? with_bandwidth : step;
  Search s(sp, o, window);
  auto cs = std::make_shared<CompiledStep>();
  if (s.capacity <= 0 || s.capacity + s.resident < s.floor) throw refuse(s);
  std::optional<Candidate> found;
  for (const Strategy& st : kStrategies) {
    found = st.run(s);
    if (found) {
      cs->strategy = st.name;
      break;
    }
  }
  // Tier mode "auto" with CompileOptions::alternatives: the other kinds' plans, for the session to
  // measure.
  const bool alternatives = o.alternatives && o.host_bytes > 0 && o.tier_mode == "auto";
  std::optional<Candidate> recompute_only;
  std::vector<CopyPlan> copy_kinds;
  if (o.host_bytes > 0 && o.tier_mode != "recompute") {
    // With a second tier: the recompute-only plan found above, or one that copies values out
    // (offload-only, or joint with recomputation), whichever is predicted faster (tier_mode "auto";
    // "offload" and "joint" take only such plans).
    const double recompute_time =
        found && o.tier_mode == "auto"
            ? sched::makespan(found->reserved ? s.reserved_p : s.p, found->r.plan)
            : std::numeric_limits<double>::infinity();
    std::string kind;
    if (std::optional<Candidate> copied =
            with_tier(s, recompute_time, kind, alternatives ? &copy_kinds : nullptr)) {
      if (alternatives) recompute_only = std::move(found);
      found = std::move(copied);
      cs->strategy = "second tier: " + kind;
      cs->tier_plan = kind;
    } else if (o.tier_mode == "offload") {
      found.reset();
    } else if (found) {
      // Recompute-only is one of joint planning's candidates too.
      cs->tier_plan = "recompute";
    }
  } else if (o.host_bytes > 0 && found) {
    cs->tier_plan = "recompute";
  }
  if (!found) throw refuse(s);
  finish(*cs, s, sp, std::move(*found));
  auto alternative = [&](const std::string& kind, Candidate c) {
    auto alt = std::make_shared<CompiledStep>();
    alt->strategy = "second tier: " + kind + " (alternative)";
    alt->tier_plan = kind;
    finish(*alt, s, sp, std::move(c));
    cs->alternatives.push_back(std::move(alt));
  };
  if (recompute_only) alternative("recompute", std::move(*recompute_only));
  for (CopyPlan& k : copy_kinds)
    if (k.kind != cs->tier_plan) alternative(k.kind, std::move(k.c));
  cs->planning_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return cs;
}

std::shared_ptr<CompiledStep> streamed_step(const CompiledStep& serial, int streams,
                                            const std::vector<double>* stream_costs,
                                            double unknown_cost_factor, bool comm_stream,
                                            int64_t headroom) {
  LETHE_CHECK(serial.source != nullptr,
              "internal error: streamed_step needs a step from compile_step");
  const StreamSource& src = *serial.source;
  const sched::Problem& prob = src.prob;
  sched::StreamAssignOptions ao;
  ao.streams = streams;
  if (comm_stream) {
    // The collectives and the copies out of their buckets on a stream of their own after the
    // compute streams, in plan order: the compute streams never wait for a bucket.
    ao.streams = streams + 1;
    ao.dedicated.assign(prob.nodes.size(), 0);
    for (size_t id = 0; id < prob.nodes.size(); ++id)
      ao.dedicated[id] = src.sp.comm[id] || src.sp.from_bucket[id];
  }
  ao.alignment = static_cast<int64_t>(kAlignment);
  ao.cost.resize(prob.nodes.size());
  for (size_t id = 0; id < prob.nodes.size(); ++id) {
    const int gid = src.sp.to_graph[id];
    if (src.sp.scratch[id] || src.sp.token[id]) continue;
    const double m = stream_costs && gid >= 0 && static_cast<size_t>(gid) < stream_costs->size()
                         ? (*stream_costs)[static_cast<size_t>(gid)]
                         : -1.0;
    ao.cost[id] = m >= 0 ? m : prob.nodes[id].cost * unknown_cost_factor;
  }
  if (src.reserved) {
    // One reserved workspace region: the ops that use it run one at a time.
    ao.exclusive.assign(prob.nodes.size(), 0);
    for (size_t id = 0; id < prob.nodes.size(); ++id)
      if (src.sp.scratch[id]) {
        const int op = src.sp.from_graph[static_cast<size_t>(src.sp.to_graph[id])];
        if (op >= 0) ao.exclusive[static_cast<size_t>(op)] = 1;
      }
  }
  struct Option {
    sched::Plan plan;
    sched::Layout layout;
    const char* name;
    double time;
  };
  std::vector<Option> options;
  const int64_t cap = src.cap + std::max<int64_t>(0, headroom);
  int64_t comm_excess = -1;  // the fresh layout's excess over `cap` with a communication stream
  // Laid out afresh, when that fits: with only the plan's own waits (buffers that may be live
  // together kept apart), then with the frees in plan order ahead of later computes (no order holds
  // more than the serial plan), fewer waits than the serial layout's when fragmentation leaves
  // room.
  for (const bool keep_serial_peak : {false, true}) {
    // Frees in plan order chain every compute stream to the frees on the communication stream,
    // whose times depend on the other ranks: the collectives would no longer overlap anything.
    if (keep_serial_peak && comm_stream) continue;
    ao.keep_serial_peak = keep_serial_peak;
    sched::Plan pl = sched::assign_streams(prob, src.plan, ao);
    add_update_waits(src.sp, pl);
    sched::Layout l = sched::layout_plan(prob, pl, static_cast<int64_t>(kAlignment), cap);
    if (comm_stream) comm_excess = std::max<int64_t>(0, l.high_water - cap);
    if (l.high_water > cap) continue;
    const double t = sched::makespan(prob, pl, &ao.cost);
    options.push_back({std::move(pl), std::move(l),
                       keep_serial_peak ? "frees in plan order, own layout" : "own layout", t});
  }
  ao.keep_serial_peak = false;
  {
    // The serial layout: memory waits keep it valid in every order; it always fits.
    ao.layout = &src.layout;
    sched::Plan pl = sched::assign_streams(prob, src.plan, ao);
    add_update_waits(src.sp, pl);
    const double t = sched::makespan(prob, pl, &ao.cost);
    options.push_back({std::move(pl), src.layout, "serial layout + memory waits", t});
  }
  // With a communication stream, the fewest waits of compute streams on it first: its steps' real
  // times depend on the other ranks (a collective waits for the slowest), which the costs do not
  // know, and each such wait can stall a compute stream for a whole all-reduce.
  auto comm_waits = [&](const Option& op) {
    if (!comm_stream) return size_t{0};
    size_t n = 0;
    for (const sched::Step& st : op.plan.steps)
      if (st.stream != ao.streams - 1)
        for (int64_t a : st.after)
          n += op.plan.steps[static_cast<size_t>(a)].stream == ao.streams - 1;
    return n;
  };
  const Option& best =
      *std::min_element(options.begin(), options.end(), [&](const Option& a, const Option& b) {
        const size_t wa = comm_waits(a), wb = comm_waits(b);
        return wa != wb ? wa < wb : a.time < b.time;
      });
  auto cs = std::make_shared<CompiledStep>();
  cs->side_effects = serial.side_effects;
  cs->workspace_bytes = serial.workspace_bytes;
  cs->no_remat_region = serial.no_remat_region;
  fill(*cs, src.sp, best.plan, best.layout, src.reserved, src.max_scratch, src.ws);
  cs->streams = std::max(cs->streams, ao.streams);
  cs->planner = serial.planner;
  cs->strategy = serial.strategy;
  cs->predicted_overhead = serial.predicted_overhead;
  cs->planning_seconds = serial.planning_seconds;
  cs->measured_costs = serial.measured_costs;
  cs->measured_steps = serial.measured_steps;
  cs->problem = serial.problem;
  cs->predicted_seconds = best.time;
  cs->stream_layout = best.name;
  cs->source = serial.source;
  cs->collectives = serial.collectives;
  cs->early_updates = serial.early_updates;
  cs->comm_layout_excess = std::max<int64_t>(0, comm_excess);
  cs->planned_short = std::max<int64_t>(0, headroom);
  return cs;
}

int64_t fraction_step_bytes(const StepProblem& sp, double fraction) {
  const CompileOptions o;
  const Search s(sp, o, StepWindow{});
  return sched::fraction_budget(fraction, s.reserved_p) - s.resident + s.max_scratch + s.ws;
}

}  // namespace lethe
