// Running a step inside the session's arena: compile it (framework/compile_step.h, cached by the
// graph's structure), run it through the executor loop at its static offsets, keep what the user
// holds, and fold the op times it measured into the costs the next plans use.
#include <algorithm>
#include <optional>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "framework/arena.h"
#include "framework/compile_step.h"
#include "framework/error.h"
#include "framework/executor.h"
#include "framework/session.h"
#include "framework/step_problem.h"
#include "framework/tier.h"
#include "framework/tensor.h"
#include "framework/trace.h"
#include "scheduler/graph_io.h"
#include "scheduler/planner.h"

namespace lethe {

namespace {

// Op times are measured over the first kMeasuredSteps budgeted steps of a graph (per-node minimum);
// the step is planned again after the first and after the last of them.
constexpr int kMeasuredSteps = 3;
// A plan with a tier and its alternatives run in turn, a round of one step each, before the fastest
// is kept: at least kTrialRounds rounds (an alternative's first step is cold, its first touch of
// arena and tier bytes, so every candidate gets two warm steps at least), and while the two fastest
// are within kTrialClose of each other, up to kTrialRoundsMax. Steps here vary by 10 % and more (a
// file tier's writeback), and two samples each picked plans 5 % slower than the other kind.
constexpr size_t kTrialRounds = 3;
constexpr size_t kTrialRoundsMax = 6;
constexpr double kTrialClose = 1.05;
// A configuration measured against the one in use replaces it only when at least 2 % faster, above
// the noise of one step's time here (streams under kAutoStreams, tier plans' alternatives).
constexpr double kFasterBy = 0.98;
// Folds the per-node times `x` of one step into `m` by a per-node minimum (-1: not measured); a
// table of another size (another graph) is replaced.
void fold_min(std::vector<double>& m, const std::vector<double>& x) {
  if (m.size() != x.size()) {
    m = x;
    return;
  }
  for (size_t i = 0; i < m.size(); ++i)
    if (x[i] >= 0 && (m[i] < 0 || x[i] < m[i])) m[i] = x[i];
}

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

// Planned steps: every buffer at the static offset the compiled step gives it, in the arena's
// region above the long-lived values. Traced memory: the highest end of a live buffer in the arena
// (measured: fragmentation included) and the plan's account (predicted: the base + the values it
// holds live).
// The guard after every step buffer under LETHE_ARENA_CHECK (the plan reserves it).
constexpr size_t kGuardBytes = 64;
constexpr unsigned char kGuardByte = 0xA5;

class ArenaMemory final : public StepMemory {
 public:
  ArenaMemory(const Graph& g, const CompiledStep& cs, Arena& arena, size_t base, bool check)
      : g_(g),
        cs_(cs),
        arena_(arena),
        base_(base),
        region_(arena.base() + base),
        end_(g.nodes.size(), 0),
        check_(check && arena.device().is_cpu()) {}
  BufferFn buffers(size_t step, int node) override {
    return place(static_cast<size_t>(cs_.offsets[step]), cs_.ws_offsets[step], node);
  }
  BufferFn side_effect_buffers(int node) override {
    // Its output, then its workspace (as compile_step() reserved them).
    return place(cs_.workspace_offset, static_cast<int64_t>(cs_.workspace_offset) + bytes(node),
                 -1);
  }
  BufferFn home_buffers(int, bool side_effect) override {
    if (!side_effect) return {};
    // Values whose home is the tier that a side effect reads: from the top of the side effects'
    // region down (build_step_problem() counts them in its size), below them its output and
    // workspace.
    auto top = std::make_shared<size_t>(cs_.workspace_offset + cs_.workspace_bytes);
    return [this, top](size_t n, bool) {
      const size_t a = align_up(n ? n : 1);
      LETHE_ASSERT(*top >= cs_.workspace_offset + a);
      *top -= a;
      return place(*top, -1, -1)(n, false);
    };
  }
  void finished() override {
    if (!check_) return;
    std::lock_guard<std::mutex> lock(check_mu_);
    for (const auto& [lo, b] : live_bufs_) check_guard(lo, b, "at the end of the step");
    live_bufs_.clear();
  }
  std::pair<int64_t, int64_t> computed(size_t step, int node, bool update) override {
    if (!update) {
      const size_t id = static_cast<size_t>(node);
      end_[id] = base_ + static_cast<size_t>(cs_.offsets[step]) + static_cast<size_t>(bytes(node));
      ++ends_[end_[id]];
      live_ += bytes(node);
    }
    const int64_t extent = static_cast<int64_t>(ends_.empty() ? base_ : ends_.rbegin()->first);
    return {extent, static_cast<int64_t>(base_) + live_};
  }
  void freed(int node) override {
    const size_t id = static_cast<size_t>(node);
    if (check_) {
      std::lock_guard<std::mutex> lock(check_mu_);
      for (auto it = live_bufs_.begin(); it != live_bufs_.end(); ++it)
        if (it->second.node == node && !it->second.workspace) {
          check_guard(it->first, it->second, "when it was freed");
          live_bufs_.erase(it);
          break;
        }
    }
    if (end_[id] == 0) return;
    auto it = ends_.find(end_[id]);
    if (it != ends_.end() && --it->second == 0) ends_.erase(it);
    end_[id] = 0;
    live_ -= bytes(node);
  }

 private:
  int64_t bytes(int node) const { return g_.nodes[static_cast<size_t>(node)].buffer_bytes(); }
  BufferFn place(size_t offset, int64_t ws_offset, int node) {
    return [this, offset, ws_offset, node](size_t n, bool workspace) {
      LETHE_ASSERT(!workspace || ws_offset >= 0);
      auto s = std::make_shared<Storage>();
      const size_t off = workspace ? static_cast<size_t>(ws_offset) : offset;
      s->data = region_ + off;
      s->bytes = n;
      s->device = arena_.device();
      s->context = arena_.context();
      arena_.note_extent(base_ + off + align_up(n ? n : 1));
      if (check_ && node >= 0) {
        std::lock_guard<std::mutex> lock(check_mu_);
        const Buf b{off + n, off + align_up(n ? n : 1) + kGuardBytes, node, workspace};
        // Nothing live may share these bytes: with streams, only a missing wait lets it.
        auto it = live_bufs_.lower_bound(b.hi);
        if (it != live_bufs_.begin()) {
          --it;
          LETHE_CHECK(it->second.hi <= off,
                      "arena check: ", step_name(g_.nodes[static_cast<size_t>(node)]), " (node ",
                      node, ") writes its ", workspace ? "workspace" : "output",
                      " at arena bytes [", base_ + off, ", ", base_ + b.hi, ") over the ",
                      it->second.workspace ? "workspace" : "value", " of node ", it->second.node,
                      " at [", base_ + it->first, ", ", base_ + it->second.hi,
                      "), which is still live: the plan lacks a wait between them");
        }
        std::memset(region_ + b.end, kGuardByte, b.hi - b.end);
        live_bufs_.emplace(off, b);
        if (workspace)
          s->release = [this, off](void*) {
            std::lock_guard<std::mutex> l(check_mu_);
            auto w = live_bufs_.find(off);
            if (w == live_bufs_.end()) return;
            check_guard(w->first, w->second, "after its op ran");
            live_bufs_.erase(w);
          };
      }
      return s;
    };
  }
  struct Buf {
    size_t end, hi;  // the buffer's bytes end at `end`; its guard runs to `hi` (region offsets)
    int node;
    bool workspace;
  };
  void check_guard(size_t lo, const Buf& b, const char* when) const {
    for (size_t i = b.end; i < b.hi; ++i)
      LETHE_CHECK(static_cast<unsigned char>(region_[i]) == kGuardByte,
                  "arena check: the guard bytes after the ", b.workspace ? "workspace" : "value",
                  " of node ", b.node, " (", step_name(g_.nodes[static_cast<size_t>(b.node)]),
                  ", arena bytes [", base_ + lo, ", ", base_ + b.end,
                  ")) were overwritten at byte ", base_ + i, ", found ", when,
                  ": a kernel wrote past its buffer, or a buffer was placed over it");
  }
  const Graph& g_;
  const CompiledStep& cs_;
  Arena& arena_;
  size_t base_;
  char* region_;
  std::map<size_t, int> ends_;  // end offsets of live step buffers (a multiset)
  std::vector<size_t> end_;     // per node: the end of its live buffer, 0 when none
  int64_t live_ = 0;
  bool check_ = false;
  std::mutex check_mu_;
  std::map<size_t, Buf> live_bufs_;  // LETHE_ARENA_CHECK: live buffers by region offset
};

// Bytes of the graph's leaves whose home is the second tier.
size_t tier_home_bytes(const Graph& g) {
  std::set<const Storage*> seen;
  size_t n = 0;
  for (const Node& nd : g.nodes)
    if (nd.is_leaf() && nd.leaf && nd.leaf->home && seen.insert(nd.leaf.get()).second)
      n += nd.leaf->bytes;
  return n;
}

}  // namespace

void SessionState::note_persistent(const std::shared_ptr<Storage>& s) {
  if (!tier_) return;
  persistent_.push_back(s);
  // Values die with the user's handles (a step's loss): the list is pruned when it has doubled.
  if (persistent_.size() > 2 * persistent_pruned_ + 64) {
    std::erase_if(persistent_, [](const std::weak_ptr<Storage>& w) { return w.expired(); });
    persistent_pruned_ = persistent_.size();
  }
}

bool SessionState::move_state_home(bool dry_run) {
  if (!tier_ || !arena_ || opts_.offload_state == "never" || opts_.data_parallel) return false;
  const char* lo = arena_->base();
  const char* hi = lo + arena_->capacity();
  auto in_arena = [&](const Storage& st) {
    const char* p = static_cast<const char*>(st.data);
    return !st.home && p != nullptr && p >= lo && p < hi;
  };
  // Optimizer state first (only its update reads it), then parameters; the other long-lived
  // values stay.
  std::vector<std::shared_ptr<Storage>> state, params, rest;
  for (const std::weak_ptr<Storage>& w : persistent_) {
    std::shared_ptr<Storage> st = w.lock();
    if (!st || !in_arena(*st)) continue;  // died (note_persistent() prunes those)
    if (st->role == StorageRole::optimizer_state)
      state.push_back(st);
    else if (st->role == StorageRole::parameter)
      params.push_back(st);
    else
      rest.push_back(st);
  }
  state.insert(state.end(), params.begin(), params.end());
  if (state.empty()) return false;
  // All of them or none: a tier too small for their two places each (or that would leave the
  // plans' copies nothing) keeps them in the budget, and the refusal names the budgets as before.
  // Each value's two places: first-fit among the places of homes whose values died, else from
  // the top of the tier down (home_bytes_ grows).
  std::lock_guard<std::mutex> lock(free_homes_->mu);
  std::map<size_t, size_t> ranges = free_homes_->ranges;
  size_t top = home_bytes_;
  std::vector<size_t> at;
  for (const auto& st : state) {
    const size_t n = 2 * align_up(st->bytes ? st->bytes : 1);
    auto it =
        std::find_if(ranges.begin(), ranges.end(), [&](const auto& r) { return r.second >= n; });
    if (it != ranges.end()) {
      at.push_back(it->first);
      if (it->second > n) ranges[it->first + n] = it->second - n;
      ranges.erase(it);
      continue;
    }
    top += n;
    if (top >= tier_->capacity()) return false;
    at.push_back(tier_->capacity() - top);
  }
  if (dry_run) return true;
  free_homes_->ranges = std::move(ranges);
  home_bytes_ = top;
  for (size_t i = 0; i < state.size(); ++i) {
    Storage& st = *state[i];
    const size_t a = align_up(st.bytes ? st.bytes : 1);
    move_home(st, tier_, at[i], at[i] + a);
    st.home->release = [w = std::weak_ptr<FreeHomes>(free_homes_), off = at[i], n = 2 * a] {
      const std::shared_ptr<FreeHomes> f = w.lock();
      if (!f) return;
      std::lock_guard<std::mutex> l(f->mu);
      auto [it, fresh] = f->ranges.emplace(off, n);
      LETHE_ASSERT(fresh, "a home's places freed twice");
      // Merged with the free places on either side.
      if (auto next = std::next(it);
          next != f->ranges.end() && it->first + it->second == next->first) {
        it->second += next->second;
        f->ranges.erase(next);
      }
      if (it != f->ranges.begin()) {
        auto prev = std::prev(it);
        if (prev->first + prev->second == it->first) {
          prev->second += it->second;
          f->ranges.erase(it);
        }
      }
    };
  }
  // The other long-lived values move down into the holes, lowest first, so the window above them
  // grows.
  std::sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) {
    return static_cast<const char*>(a->data) < static_cast<const char*>(b->data);
  });
  for (const auto& st : rest) arena_->move_down(*st);
  return true;
}

void SessionState::settle_homes(const Graph& g, bool ok) {
  if (home_bytes_ == 0) return;
  for (const Node& n : g.nodes)
    if (n.is_leaf() && n.leaf && n.leaf->home) settle_home(*n.leaf, ok);
}

ExecStats SessionState::run_settled(Graph& g, const StepRun& run,
                                    std::vector<std::shared_ptr<Storage>>& values) {
  ExecStats st;
  try {
    st = run_steps(g, run, values);
    if (home_bytes_ > 0) tier_->synchronize();  // CUDA: the reads of homes the streams waited on
  } catch (...) {
    settle_homes(g, false);
    throw;
  }
  settle_homes(g, true);
  return st;
}

std::shared_ptr<CompiledStep> SessionState::compile(Graph& g, const std::vector<int>& targets,
                                                    bool side_effects, uint64_t hash,
                                                    int64_t headroom, bool move_state) {
  auto t0 = std::chrono::steady_clock::now();
  auto mit = measured_.find(hash);
  const std::vector<double>* measured = mit == measured_.end() ? nullptr : &mit->second;
  if (tier_ && tier_out_bw_ <= 0) {
    // Each direction's bandwidth, measured once (a few MiB each way, cached per process), unless
    // SessionOptions::tier_bandwidth states them.
    const TierBandwidth bw = tier_->measure();
    tier_out_bw_ = bw.out_bytes_per_s;
    tier_in_bw_ = bw.in_bytes_per_s;
  }
  CostModel model = CostModel::calibrated();
  model.tier_in_bytes_per_s = tier_in_bw_;
  auto problem = [&](const std::vector<double>* costs, bool early) {
    StepProblem p = build_step_problem(g, targets, side_effects, costs, model, early);
    if (arena_check_)
      for (sched::Node& n : p.problem.nodes)
        if (!n.resident) n.bytes += static_cast<int64_t>(kGuardBytes);  // ArenaMemory checks them
    return p;
  };
  // With a second tier the updates run after the plan: a copy that fails mid-step then leaves the
  // parameters and optimizer state as they were (SessionOptions::host_budget); those that write
  // only values whose home is the tier run inside it (their writes are current only once the
  // step succeeded: build_step_problem()). Data parallel: the updates run after the plan too:
  // its first step broadcasts the parameters (in-place writes of the storages the updates write),
  // so its steps would plan differently and a fraction arena sized from the first may not hold
  // the next.
  auto early_now = [&] {
    return opts_.early_updates && !opts_.data_parallel && (!tier_ || home_bytes_ > 0);
  };
  bool early = early_now();
  StepProblem sp = problem(measured, early);
  if (!arena_) {
    // A fraction budget: the arena is sized from this first step, as that fraction of the step's
    // activation memory plus the largest op workspace (not an activation: an op needs all of it
    // to run, whatever the plan), above the values made before the budget was known. With early
    // updates the step's floor and no-remat peak are those of the step that frees each gradient at
    // its update.
    int64_t staged = 0;
    for (auto& w : staged_)
      if (auto st = w.lock()) staged += static_cast<int64_t>(align_up(st->bytes));
    ensure_arena(static_cast<size_t>(staged + fraction_step_bytes(sp, budget_fraction_)));
  }
  if (opts_.offload_state == "always" && move_state_home())
    sp = problem(measured, early = early_now());
  std::shared_ptr<CompiledStep> cs;
  std::exception_ptr refused;
  size_t refused_smallest = 0;
  // Plans in order of preference: measured costs before the deterministic estimates (measured
  // times steer the planners, and a plan made from them may not lay out where the one from the
  // estimates does: timing noise must not decide whether a step fits), early updates before
  // updates after the plan (no plan under the budget may order every update after the reads of
  // its old values).
  auto attempt_all = [&](bool quick) {
    // Persistent values outside this graph (kept tensors, unused parameters) also occupy the
    // arena.
    const StepWindow window{static_cast<int64_t>(arena_->persistent_end()),
                            static_cast<int64_t>(arena_->capacity()) - headroom};
    CompileOptions co;
    co.planner = opts_.planner;
    co.quick_refusal = quick;
    if (tier_) {
      // The plans' copies go below the homes of parameters and optimizer state.
      co.host_bytes = static_cast<int64_t>(tier_->capacity() - home_bytes_);
      // Joint planning weighs recompute-only and offload-only among its candidates: "joint" is
      // "auto".
      co.tier_mode = opts_.tier_plan == "joint" ? "auto" : opts_.tier_plan;
      // The other kinds' plans, measured against the one predicted fastest (run_budgeted). Not
      // with data parallel: every rank must run the same plan's collectives.
      co.alternatives = !opts_.data_parallel && !opts_.plan_only;
      co.out_bandwidth = tier_out_bw_;
      co.in_bandwidth = tier_in_bw_;
    }
    struct Attempt {
      const std::vector<double>* costs;
      bool early;
    };
    std::vector<Attempt> attempts{{measured, early}};
    if (measured) attempts.push_back({nullptr, early});
    if (early) {
      attempts.push_back({measured, false});
      if (measured) attempts.push_back({nullptr, false});
    }
    // When none fits: the error naming the smallest budget at which one of them plans (that
    // budget runs: the attempt that named it comes first there or is reached), else the first
    // error.
    refused = nullptr;
    refused_smallest = 0;
    for (const Attempt& a : attempts) {
      try {
        cs = compile_step(a.costs == measured && a.early == early ? sp : problem(a.costs, a.early),
                          window, co);
        measured = a.costs;
        break;
      } catch (const InfeasibleBudget& e) {
        const size_t smallest = e.smallest_feasible_bytes;
        if (!refused || (smallest > 0 && (refused_smallest == 0 || smallest < refused_smallest))) {
          refused = std::current_exception();
          refused_smallest = smallest;
        }
      }
    }
  };
  // No plan with the parameters and optimizer state in the budget: with a tier, they move to it
  // (SessionOptions::offload_state) and the step is planned again. Where they can, the first
  // refusal skips the search for the smallest budgets: only the second one is shown.
  const bool may_move = move_state && opts_.offload_state == "auto" && move_state_home(true);
  attempt_all(may_move);
  if (!cs && may_move) {
    if (move_state_home()) sp = problem(measured, early = early_now());
    attempt_all(false);
  }
  if (!cs) std::rethrow_exception(refused);
  cs->measured_costs = measured != nullptr;
  if (auto ms = measured_steps_.find(hash); ms != measured_steps_.end())
    cs->measured_steps = ms->second;
  cs->planning_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return cs;
}

void SessionState::run_budgeted(Graph& g, const std::vector<int>& targets, bool side_effects,
                                std::vector<std::shared_ptr<Storage>>& values) {
  const uint64_t ghash = g.structural_hash();
  // The plan's key: the step, and where its window starts (compile() may move parameters and
  // optimizer state to the tier, which moves that start: a plan made there is kept under the key
  // of the arena it was made for).
  auto key_now = [&] {
    uint64_t k = mix(ghash, side_effects ? 1 : 2);
    for (int t : targets) k = mix(k, static_cast<uint64_t>(t));
    k = mix(k, arena_ ? arena_->persistent_end() : 0);
    k = mix(k, static_cast<uint64_t>(budget_value_));
    k = mix(k, static_cast<uint64_t>(home_bytes_));
    return mix(k, static_cast<uint64_t>(opts_.device.kind) * 64 +
                      static_cast<uint64_t>(opts_.device.index));
  };
  const uint64_t key = key_now();
  uint64_t cs_key = key;  // where cs is kept in plans_
  bool from_cache = false;
  std::shared_ptr<CompiledStep> cs;
  auto it = plans_.find(key);
  // A plan made from estimated costs is made again once the step's times have been measured, and
  // once more when the first kMeasuredSteps steps have been (warm times).
  const int want = replan_point(measured_steps_.count(ghash) ? measured_steps_[ghash] : 0);
  if (it != plans_.end() &&
      (replan_point(it->second->measured_steps) >= want || !measured_.count(ghash))) {
    cs = it->second;
    from_cache = true;
  } else if (it != plans_.end()) {
    // Planning again with measured costs can land on a plan that does not fit where the plan from
    // estimates did (costs steer the planners); then the working plan stays.
    try {
      std::shared_ptr<CompiledStep> fresh = compile(g, targets, side_effects, ghash, 0, false);
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
    cs_key = key_now();
    plans_[cs_key] = cs;
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
    report_.early_updates = static_cast<size_t>(cs->early_updates);
    report_.tier_peak_bytes = static_cast<size_t>(cs->tier_bytes);
    report_.tier_plan = cs->tier_plan;
    return;
  }
  // With a tier (tier_plan "auto"/"joint"), the plan predicted fastest and its alternatives of
  // the other kinds are measured against each other once the plan is made from warm measured
  // costs: a step each in turn, for three to six rounds; then the fastest measured (the predicted
  // one unless another was at least 2 % faster: a step's time is noisy) becomes this step's plan.
  // The predictions miss what the copies cost the computes beside them (threads, memory bandwidth).
  std::shared_ptr<CompiledStep> trial_of;  // the plan whose candidates are being measured
  size_t trial_index = 0;
  if (!cs->alternatives.empty() && side_effects && cs->measured_steps >= kMeasuredSteps) {
    trial_of = cs;
    const size_t n = cs->alternatives.size() + 1;
    cs->trial_best.resize(n, 0.0);
    trial_index = static_cast<size_t>(cs->trial_runs) % n;
    if (trial_index > 0) {
      cs = cs->alternatives[trial_index - 1];
      cs->measured_costs = trial_of->measured_costs;
      cs->measured_steps = trial_of->measured_steps;
    }
  }
  Arena& arena = *arena_;
  const size_t base = arena.persistent_end();
  LETHE_ASSERT(base + cs->region_bytes <= arena.capacity());
  arena.reset_peak();

  // Streams: the plan on N streams (derived from the serial plan, in the same window), when
  // SessionOptions::streams asks for N, or under kAutoStreams while measuring it and once it has
  // measured faster than the serial plan.
  // Data parallel: the all-reduces run on a communication stream beside the compute stream(s).
  const bool comm = opts_.data_parallel && side_effects && cs->collectives;
  const int parallel = opts_.streams >= 2 ? opts_.streams : comm ? 1 : 2;
  // CPU: auto needs two threads to share between streams; CUDA streams share the device.
  // A plan with copies to the tier runs on its own streams (the copies' channels).
  const bool copies = !cs->tier_offsets.empty();
  const bool can_stream = side_effects && !comm && !copies && !trial_of &&
                          (opts_.streams >= 2 || (opts_.streams == kAutoStreams &&
                                                  (threads_ >= 2 || opts_.device.is_cuda())));
  StreamTuning& tune = tuning_[ghash];
  bool use_parallel = comm;
  if (can_stream) {
    if (opts_.streams >= 2)
      use_parallel = true;
    else if (tune.decided)
      use_parallel = tune.decided > 1;
    else
      // Serial first (the plan's costs are measured there), then two parallel steps.
      use_parallel = (measured_steps_.count(ghash) ? measured_steps_[ghash] : 0) >= kMeasuredSteps;
  }
  const int threads_per_stream = std::max(1, threads_ / parallel);
  std::shared_ptr<CompiledStep> par;
  if (use_parallel) {
    // Made again while its op times are being measured (each of the first kMeasuredSteps steps on
    // streams folds in more), and for each new serial plan.
    const int folded = std::min(tune.parallel_runs, kMeasuredSteps);
    const int total = parallel + (comm ? 1 : 0);
    if (!cs->parallel || cs->parallel->streams != total || cs->parallel->measured_steps != folded) {
      const std::vector<double>* costs = tune.costs.empty() ? nullptr : &tune.costs;
      const double factor =
          opts_.device.is_cuda() ? 1.0 : static_cast<double>(threads_) / threads_per_stream;
      cs->parallel = streamed_step(*cs, parallel, costs, factor, comm);
      // Data parallel: where the fresh layout (no compute step waits for the communication stream)
      // missed the arena by a little, the serial plan made that much short of it (more
      // recomputation) leaves room for it. Otherwise the serial layout's memory waits hold the
      // next computes until each all-reduce has read its gradients, and nothing overlaps them.
      // The roomy plan is run unless predicted more than 5 % slower: the predictions do not know
      // those stalls (an all-reduce also waits for the slowest rank), as streamed_step() puts it.
      const int64_t window = static_cast<int64_t>(arena.capacity() - arena.persistent_end());
      int64_t excess = comm ? cs->parallel->comm_layout_excess : 0;
      int64_t headroom = 0;
      for (int attempt = 0; attempt < 2 && excess > 0; ++attempt) {
        headroom += static_cast<int64_t>(
            align_up(static_cast<size_t>(excess + excess / 4) + (size_t{16} << 10)));
        if (headroom >= window / 4) break;
        CompiledStep::Roomy& room = cs->comm_room;
        if (!room.serial || room.bytes != headroom) {
          room = {};
          try {
            room = {headroom, compile(g, targets, side_effects, ghash, headroom, false)};
          } catch (const InfeasibleBudget&) {
            break;
          }
        }
        std::shared_ptr<CompiledStep> roomy =
            streamed_step(*room.serial, parallel, costs, factor, comm, headroom);
        excess = roomy->comm_layout_excess;
        if (excess == 0 && roomy->predicted_seconds <= 1.05 * cs->parallel->predicted_seconds)
          cs->parallel = roomy;
      }
      cs->parallel->measured_steps = folded;
    }
    par = cs->parallel;
  }
  const CompiledStep& used = par ? *par : *cs;
  // A plan on streams may come from a serial plan made short of the window (data parallel): its
  // fresh layout still ends within the window.
  LETHE_ASSERT(base + used.region_bytes <= arena.capacity());

  Tracer* tr = tracer_.get();
  if (tr && !from_cache)
    tr->slice(Tracer::Kind::plan, "plan " + cs->planner, -1, g.step,
              tr->now_us() - cs->planning_seconds * 1e6, tr->now_us());
  ArenaMemory memory(g, used, arena, base, arena_check_);
  StepRun run;
  run.steps = &used.steps;
  run.side_effects = &used.side_effects;
  run.memory = &memory;
  run.env = {opts_.seed, backend_.get(), opts_.detect_anomaly};
  run.timer = timer_.get();
  run.tracer = tr;
  run.jitter_seed = jitter_seed_;
  run.report_frees = arena_check_;
  if (par) {
    run.stream = &par->stream;
    run.after = &par->after;
    run.streams = par->streams;
    run.threads_per_stream = threads_per_stream;
    run.comm_stream = comm ? par->streams - 1 : -1;
    run.device_streams = device_streams(par->streams);
  } else if (copies) {
    // Computes on stream 0 with every thread; the copy streams wait for the tier's I/O threads.
    run.stream = &cs->stream;
    run.after = &cs->after;
    run.streams = cs->streams;
    run.threads_per_stream = threads_;
    run.device_streams = device_streams(cs->streams);
  }
  run.tier = tier_.get();
  run.tier_offsets = copies ? &cs->tier_offsets : nullptr;
  ExecStats st = run_settled(g, run, values);
  std::vector<double>& seconds = st.first_seconds;
  const size_t computed = st.computed, recomputed = st.recomputed;
  const double secs = st.seconds;
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
    note_persistent(values[static_cast<size_t>(t)]);
  }
  for (size_t i = 0; i < values.size(); ++i) {
    bool is_kept = std::find(kept.begin(), kept.end(), static_cast<int>(i)) != kept.end();
    if (!is_kept && !g.nodes[i].is_leaf()) values[i].reset();
  }
  if (par) {
    // Op times on one stream of the parallel configuration, for the next plans on streams.
    if (tune.parallel_runs < kMeasuredSteps) fold_min(tune.costs, seconds);
    ++tune.parallel_runs;
    if (tune.parallel_runs >= 2 && (tune.parallel_best == 0 || secs < tune.parallel_best))
      tune.parallel_best = secs;
  } else if (side_effects && can_stream) {
    // A warm serial step (not the first) of a step that may run on streams.
    if (++tune.serial_runs >= 2 && (tune.serial_best == 0 || secs < tune.serial_best))
      tune.serial_best = secs;
  }
  if (opts_.streams == kAutoStreams && can_stream && !tune.decided && tune.parallel_runs >= 4 &&
      tune.serial_best > 0) {
    // Streams are kept only when they measured faster than the serial plan (by 2 %, above the
    // noise of one step's time here): otherwise every later step runs serially.
    tune.decided = tune.parallel_best < kFasterBy * tune.serial_best ? parallel : 1;
  }
  if (trial_of) {
    double& best = trial_of->trial_best[trial_index];
    if (best == 0 || secs < best) best = secs;
    const size_t n = trial_of->trial_best.size();
    const size_t runs = static_cast<size_t>(++trial_of->trial_runs);
    std::vector<double> sorted = trial_of->trial_best;
    std::sort(sorted.begin(), sorted.end());
    const bool close = sorted[1] < kTrialClose * sorted[0];
    if (runs % n == 0 && runs >= kTrialRounds * n && (!close || runs >= kTrialRoundsMax * n)) {
      size_t pick = static_cast<size_t>(
          std::min_element(trial_of->trial_best.begin(), trial_of->trial_best.end()) -
          trial_of->trial_best.begin());
      if (trial_of->trial_best[pick] >= kFasterBy * trial_of->trial_best[0]) pick = 0;
      std::shared_ptr<CompiledStep> chosen =
          pick == 0 ? trial_of : trial_of->alternatives[pick - 1];
      for (size_t i = 0; i < n; ++i)
        chosen->tier_measured.emplace_back(
            i == 0 ? trial_of->tier_plan : trial_of->alternatives[i - 1]->tier_plan,
            trial_of->trial_best[i]);
      chosen->alternatives.clear();  // (an alternative took measured_* in its trial steps)
      plans_[cs_key] = chosen;
    }
  }
  if (side_effects && !(par && opts_.streams == kAutoStreams)) {
    int& n = measured_steps_[ghash];
    std::vector<double>& m = measured_[ghash];
    if (n == 0 || m.size() != seconds.size()) {
      m = seconds;
      n = 1;
    } else if (n < kMeasuredSteps) {
      fold_min(m, seconds);
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
  report_.streams = st.streams;
  report_.allreduce_room_bytes = par ? static_cast<size_t>(par->planned_short) : 0;
  report_.early_updates = static_cast<size_t>(cs->early_updates);
  report_.copy_out_bytes = st.copy_out_bytes;
  report_.copy_in_bytes = st.copy_in_bytes;
  report_.copy_seconds = st.copy_seconds;
  report_.copy_hidden_seconds = st.copy_hidden_seconds;
  report_.tier_peak_bytes = static_cast<size_t>(cs->tier_bytes);
  report_.tier_plan = cs->tier_plan;
  report_.tier_trial = trial_of != nullptr;
  report_.tier_measured = cs->tier_measured;
  report_.tier_home_bytes = home_bytes_ ? tier_home_bytes(g) : 0;
  report_.predicted_seconds =
      used.measured_costs || (par && tune.parallel_runs > 1) ? used.predicted_seconds : 0.0;
  report_.parallel_seconds = st.parallel_seconds;
  report_.overlapped_recompute_seconds = st.overlapped_recompute_seconds;
  report_.recompute_seconds = st.recompute_seconds;
  report_comm(g, used.steps, st);
}

void SessionState::export_graph(const std::string& path) {
  std::shared_ptr<sched::Problem> p = std::static_pointer_cast<sched::Problem>(last_problem_);
  sched::Problem fresh;
  if (!p || graph_) {
    // The pending step (or nothing has run yet): export what is recorded now.
    LETHE_CHECK(graph_ != nullptr || p,
                "export_graph: nothing has been recorded or run in this session");
    if (graph_) {
      std::vector<int> targets;
      for (size_t i = 0; i < graph_->nodes.size(); ++i)
        if (!graph_->nodes[i].is_leaf() && !graph_->nodes[i].handle.expired())
          targets.push_back(static_cast<int>(i));
      auto mit = measured_.find(graph_->structural_hash());
      fresh = build_step_problem(*graph_, targets, true,
                                 mit == measured_.end() ? nullptr : &mit->second,
                                 CostModel::calibrated())
                  .problem;
      if (!fresh.nodes.empty() || !p) p = std::make_shared<sched::Problem>(std::move(fresh));
    }
  }
  sched::Problem out = *p;
  out.name = "lethe-step";
  try {
    sched::write_problem_file(out, path);
  } catch (Error& e) {
    e.add_context("export_graph: ");
    throw;
  }
}

}  // namespace lethe
