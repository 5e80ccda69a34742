#include "scheduler/offload.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "scheduler/budget.h"
#include "scheduler/simulator.h"
#include "scheduler/streams.h"

namespace lethe::sched {
namespace {

constexpr int kComputeStream = 0, kOutStream = 1, kInStream = 2;

// One computed instance of a value: its compute, the steps that read it (the compute first), and
// the gaps between consecutive uses that copies may take it out of the device for.
struct Instance {
  NodeId node = 0;
  std::vector<int> uses;  // base step indices, increasing, the compute at uses[0]
};

// A gap (a, r) between two consecutive uses of an instance, and what was chosen for it: free
// before base step q, fetch before base step s (the value is off the device for steps [q, s)).
struct Gap {
  int inst = 0;
  int a = 0, r = 0;
  int q = -1, s = -1;  // -1: not chosen
};

std::string budgets_str(int64_t device_budget, int64_t host_budget) {
  return "the device budget of " + std::to_string(device_budget) + " bytes with a host budget of " +
         std::to_string(host_budget) + " bytes";
}

}  // namespace

TierBandwidth parse_bandwidth(const std::string& text) {
  auto one = [&](std::string t) {
    auto bad = [&]() {
      return Error("bandwidth '" + text +
                   "': expected OUT[,IN] in bytes/s, e.g. 12e9, 2GB/s or 512MiB/s, each positive");
    };
    if (t.empty()) throw bad();
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(t, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != t.size()) {
      if (t.size() > 2 && (t.substr(t.size() - 2) == "/s" || t.substr(t.size() - 2) == "/S"))
        t.resize(t.size() - 2);
      BudgetSpec b;
      try {
        b = parse_budget_spec(t);
      } catch (const Error&) {
        throw bad();
      }
      if (b.fraction) throw bad();
      v = static_cast<double>(b.bytes);
    }
    if (!std::isfinite(v) || v <= 0) throw bad();
    return v;
  };
  const size_t comma = text.find(',');
  TierBandwidth bw;
  bw.out = one(text.substr(0, comma));
  bw.in = comma == std::string::npos ? bw.out : one(text.substr(comma + 1));
  return bw;
}

Plan natural_plan(const Problem& p) {
  const int n = p.size();
  std::vector<uint8_t> is_out(static_cast<size_t>(n), 0);
  for (NodeId o : p.outputs) is_out[static_cast<size_t>(o)] = 1;
  std::vector<NodeId> last_use(static_cast<size_t>(n), -1);
  for (const Node& v : p.nodes)
    for (NodeId u : v.inputs) last_use[static_cast<size_t>(u)] = v.id;
  Plan plan;
  plan.graph = p.name;
  plan.planner = "natural";
  for (const Node& v : p.nodes) {
    if (v.resident) continue;
    plan.steps.push_back(Step::compute(v.id));
    for (NodeId u : v.inputs) {
      const size_t uu = static_cast<size_t>(u);
      if (last_use[uu] == v.id && !is_out[uu] && !p.nodes[uu].resident) {
        plan.steps.push_back(Step::free(u));
        last_use[uu] = -2;  // freed once even when listed twice
      }
    }
    if (last_use[static_cast<size_t>(v.id)] == -1 && !is_out[static_cast<size_t>(v.id)])
      plan.steps.push_back(Step::free(v.id));
  }
  const SimResult r = simulate(p, [&] {
    Plan q = plan;
    q.budget_bytes = std::numeric_limits<int64_t>::max();
    return q;
  }());
  plan.budget_bytes = r.peak_bytes;
  plan.predicted_peak_bytes = r.peak_bytes;
  plan.predicted_cost = r.cost;
  return plan;
}

namespace {

// One greedy pass; copy times are stretched by `slack` where the pass places frees and fetches (a
// copy queued behind others on its stream starts late: more slack hides more of that).
OffloadPlan offload_pass(const Problem& p0, const Plan& base, int64_t device_budget,
                         int64_t host_budget, TierBandwidth bw, double slack) {
  if (has_streams(base) || has_copies(base))
    throw Error("plan_offload: the base plan must be serial (compute and free on stream 0)");
  if (!bw.known()) {
    throw Error("plan_offload: the copies need positive bandwidths (bytes/s), got out " +
                std::to_string(bw.out) + ", in " + std::to_string(bw.in));
  }
  if (host_budget < 0) throw Error("plan_offload: negative host budget");
  Problem p = p0;
  p.bandwidth = bw;
  {
    Plan check = base;
    check.budget_bytes = std::numeric_limits<int64_t>::max();
    const SimResult r = simulate(p, check);
    if (!r.valid) throw Error("plan_offload: the base plan is not valid: " + r.message);
  }
  const int N = static_cast<int>(base.steps.size());

  // Memory after each base step (a compute's peak), compute time before each step, and the
  // instances with their uses.
  std::vector<int64_t> mem(static_cast<size_t>(N), 0);
  std::vector<double> before(static_cast<size_t>(N) + 1, 0.0);
  std::vector<Instance> inst;
  std::vector<int> current(static_cast<size_t>(p.size()), -1);
  int64_t m = resident_bytes(p);
  for (int t = 0; t < N; ++t) {
    const Step& s = base.steps[static_cast<size_t>(t)];
    const Node& node = p.nodes[static_cast<size_t>(s.node)];
    before[static_cast<size_t>(t) + 1] = before[static_cast<size_t>(t)];
    if (s.kind == Step::Kind::compute) {
      for (NodeId u : node.inputs) {
        const int k = current[static_cast<size_t>(u)];
        if (k < 0) continue;  // resident
        std::vector<int>& uses = inst[static_cast<size_t>(k)].uses;
        if (uses.back() != t) uses.push_back(t);
      }
      current[static_cast<size_t>(s.node)] = static_cast<int>(inst.size());
      inst.push_back({s.node, {t}});
      m += node.bytes;
      before[static_cast<size_t>(t) + 1] += node.cost;
    } else {
      current[static_cast<size_t>(s.node)] = -1;
      m -= node.bytes;
    }
    mem[static_cast<size_t>(t)] = m;
  }
  // An output still on the device at the end is used by the end (step N): it may wait there on the
  // tier, fetched back before the plan ends.
  {
    std::vector<uint8_t> is_out(static_cast<size_t>(p.size()), 0);
    for (NodeId o : p.outputs) is_out[static_cast<size_t>(o)] = 1;
    for (size_t v = 0; v < current.size(); ++v) {
      if (current[v] >= 0 && is_out[v]) inst[static_cast<size_t>(current[v])].uses.push_back(N);
    }
  }
  std::vector<Gap> gaps;
  for (size_t k = 0; k < inst.size(); ++k) {
    if (p.nodes[static_cast<size_t>(inst[k].node)].bytes == 0) continue;
    const std::vector<int>& u = inst[k].uses;
    for (size_t j = 0; j + 1 < u.size(); ++j) {
      if (u[j + 1] - u[j] < 2) continue;  // no step in between
      gaps.push_back({static_cast<int>(k), u[j], u[j + 1]});
    }
  }

  // The device profile with the chosen gaps taken out, and the tier profile: an instance's copy is
  // held from after its first chosen gap's use (the offload waits for it) to its last chosen gap's
  // reader (the drop follows it on the compute stream).
  std::vector<int64_t> dev = mem, tier(static_cast<size_t>(N) + 1, 0);
  std::vector<int> first(inst.size(), -1), last(inst.size(), -1);  // chosen gaps' a and r
  auto time_between = [&](int x, int y) {                          // compute time of steps [x, y)
    return before[static_cast<size_t>(y)] - before[static_cast<size_t>(x)];
  };
  const double total = before[static_cast<size_t>(N)];
  const double eps = 1e-12 * (1.0 + total);
  int64_t copies = 0;
  for (;;) {
    int worst = -1;
    // Every state counts: after a free, a fetch anchored there may bring a larger value back.
    for (int t = 0; t < N; ++t) {
      if (dev[static_cast<size_t>(t)] > device_budget &&
          (worst < 0 || dev[static_cast<size_t>(t)] > dev[static_cast<size_t>(worst)]))
        worst = t;
    }
    if (worst < 0) break;
    struct Candidate {
      int gap;
      int q, s;
      double score;
      int64_t bytes;
    };
    std::vector<Candidate> cands;
    for (size_t g = 0; g < gaps.size(); ++g) {
      const Gap& gp = gaps[g];
      // Off the device for the states after steps q .. s-2: the fetch (after step s-1) may be
      // done as soon as step s-1 is, before step s starts.
      if (!(gp.a < worst && worst + 1 < gp.r)) continue;
      if (gp.q >= 0 && gp.q <= worst && worst < gp.s - 1) continue;  // already out there
      const int k = gp.inst;
      const int64_t bytes = p.nodes[static_cast<size_t>(inst[static_cast<size_t>(k)].node)].bytes;
      const double out_d = slack * static_cast<double>(bytes) / bw.out;
      const double in_d = slack * static_cast<double>(bytes) / bw.in;
      // The offload: none when an earlier gap of the instance already copied it out.
      const bool offloaded =
          first[static_cast<size_t>(k)] >= 0 && first[static_cast<size_t>(k)] < gp.a;
      int q = gp.a + 1;
      double exposed = 0.0;
      if (!offloaded) {
        // The earliest free the offload (after step a) is done by, while steps a+1.. run.
        // before[] is non-decreasing: binary searches, not walks (gaps can span the whole plan).
        const double want = before[static_cast<size_t>(gp.a) + 1] + out_d;
        q = static_cast<int>(
            std::lower_bound(before.begin() + gp.a + 1, before.begin() + worst, want) -
            before.begin());
        exposed += std::max(0.0, out_d - time_between(gp.a + 1, q));
      }
      // The latest fetch (after step s-1) done by the reader, while steps s..r-1 run.
      int s = gp.r;
      {
        const double limit = before[static_cast<size_t>(gp.r)] - in_d;
        // The largest s in [worst + 2, r] with before[s] <= limit (worst + 2 when none).
        const auto it =
            std::upper_bound(before.begin() + worst + 2, before.begin() + gp.r + 1, limit);
        s = std::max(worst + 2, static_cast<int>(it - before.begin()) - 1);
      }
      exposed += std::max(0.0, in_d - time_between(s, gp.r));
      if (gp.q >= 0) {
        q = std::min(q, gp.q);
        s = std::max(s, gp.s);
      }
      cands.push_back(
          {static_cast<int>(g), q, s, static_cast<double>(bytes) / (exposed + eps), bytes});
    }
    std::sort(cands.begin(), cands.end(), [](const Candidate& x, const Candidate& y) {
      return x.score != y.score ? x.score > y.score : x.bytes > y.bytes;
    });
    bool applied = false;
    for (const Candidate& c : cands) {
      Gap& gp = gaps[static_cast<size_t>(c.gap)];
      const int k = gp.inst;
      // The tier range after this choice, and the room it needs.
      const int f0 = first[static_cast<size_t>(k)], l0 = last[static_cast<size_t>(k)];
      const int f1 = f0 < 0 ? gp.a : std::min(f0, gp.a);
      const int l1 = l0 < 0 ? gp.r : std::max(l0, gp.r);
      bool fits = true;
      // Held in the states after steps a .. r (the offload waits for step a, the drop follows r).
      for (int t = f1; t <= l1 && fits; ++t) {
        const bool had = f0 >= 0 && t >= f0 && t <= l0;
        if (!had && tier[static_cast<size_t>(t)] + c.bytes > host_budget) fits = false;
      }
      if (!fits) continue;
      for (int t = f1; t <= l1; ++t) {
        const bool had = f0 >= 0 && t >= f0 && t <= l0;
        if (!had) tier[static_cast<size_t>(t)] += c.bytes;
      }
      first[static_cast<size_t>(k)] = f1;
      last[static_cast<size_t>(k)] = l1;
      // The device range [q, s-1) minus what the gap already had out.
      for (int t = c.q; t < c.s - 1; ++t) {
        const bool had = gp.q >= 0 && t >= gp.q && t < gp.s - 1;
        if (!had) dev[static_cast<size_t>(t)] -= c.bytes;
      }
      if (gp.q < 0) ++copies;
      gp.q = c.q;
      gp.s = c.s;
      applied = true;
      break;
    }
    if (!applied) {
      throw Infeasible(
          "no plan with copies fits " + budgets_str(device_budget, host_budget) + ": step " +
              std::to_string(worst) + " (" +
              kind_name(base.steps[static_cast<size_t>(worst)].kind) + " node " +
              std::to_string(base.steps[static_cast<size_t>(worst)].node) + ") still needs " +
              std::to_string(dev[static_cast<size_t>(worst)]) + " bytes on the device, and " +
              (cands.empty() ? "no value idle there can be copied out (its inputs, its output and "
                               "the resident values are all it holds beyond the copies made)"
                             : "the host budget has no room for another copy"),
          device_budget, -1);
    }
  }

  // The plan: the base steps in order on stream 0; around them, the copies.
  const size_t N1 = static_cast<size_t>(N) + 1;  // the end is a position too
  std::vector<std::vector<int>> frees_at(N1), fetches_at(N1), readers_at(N1), offloads_at(N1),
      drops_at(N1);
  for (size_t g = 0; g < gaps.size(); ++g) {
    const Gap& gp = gaps[g];
    if (gp.q < 0) continue;
    frees_at[static_cast<size_t>(gp.q)].push_back(static_cast<int>(g));
    fetches_at[static_cast<size_t>(gp.s)].push_back(static_cast<int>(g));
    readers_at[static_cast<size_t>(gp.r)].push_back(static_cast<int>(g));
  }
  for (size_t k = 0; k < inst.size(); ++k) {
    if (first[k] < 0) continue;
    offloads_at[static_cast<size_t>(first[k])].push_back(static_cast<int>(k));
    drops_at[static_cast<size_t>(last[k])].push_back(static_cast<int>(k));
  }
  Plan out;
  out.graph = base.graph.empty() ? p.name : base.graph;
  out.planner = (base.planner.empty() ? std::string("plan") : base.planner) + "+offload";
  out.budget_bytes = device_budget;
  out.host_budget_bytes = host_budget;
  std::vector<int64_t> offload_step(inst.size(), -1), fetch_step(gaps.size(), -1);
  int64_t last0 = -1;  // the latest step on the compute stream
  auto emit = [&](Step st) {
    out.steps.push_back(std::move(st));
    return static_cast<int64_t>(out.steps.size()) - 1;
  };
  for (int t = 0; t <= N; ++t) {
    for (int g : frees_at[static_cast<size_t>(t)]) {
      const int k = gaps[static_cast<size_t>(g)].inst;
      last0 = emit(Step::free(inst[static_cast<size_t>(k)].node, kComputeStream,
                              {offload_step[static_cast<size_t>(k)]}));
    }
    for (int g : fetches_at[static_cast<size_t>(t)]) {
      const int k = gaps[static_cast<size_t>(g)].inst;
      std::vector<int64_t> after;
      if (last0 >= 0) after.push_back(last0);
      fetch_step[static_cast<size_t>(g)] =
          emit(Step::fetch(inst[static_cast<size_t>(k)].node, kInStream, std::move(after)));
    }
    if (t == N) {
      // Copies held to the end: dropped after their fetches, on the fetch stream.
      for (int k : drops_at[static_cast<size_t>(t)])
        emit(Step::drop(inst[static_cast<size_t>(k)].node, kInStream));
      break;
    }
    Step st = base.steps[static_cast<size_t>(t)];
    st.stream = kComputeStream;
    st.after.clear();
    for (int g : readers_at[static_cast<size_t>(t)])
      st.after.push_back(fetch_step[static_cast<size_t>(g)]);
    std::sort(st.after.begin(), st.after.end());
    last0 = emit(std::move(st));
    for (int k : offloads_at[static_cast<size_t>(t)])
      offload_step[static_cast<size_t>(k)] =
          emit(Step::offload(inst[static_cast<size_t>(k)].node, kOutStream, {last0}));
    for (int k : drops_at[static_cast<size_t>(t)])
      last0 = emit(Step::drop(inst[static_cast<size_t>(k)].node, kComputeStream));
  }
  if (copies > 0) out.streams = 3;

  OffloadPlan res;
  const SimResult r = simulate(p, out);
  if (!r.valid) throw Error("internal error: plan_offload made an invalid plan: " + r.message);
  out.predicted_peak_bytes = r.peak_bytes;
  out.predicted_cost = r.cost;
  res.makespan = r.makespan;
  res.device_peak_bytes = r.peak_bytes;
  res.tier_peak_bytes = r.tier_peak_bytes;
  for (const Step& s : out.steps)
    res.copies += s.kind == Step::Kind::offload || s.kind == Step::Kind::fetch ? 1 : 0;
  if (res.copies == 0) out.host_budget_bytes = base.host_budget_bytes;
  res.plan = std::move(out);
  return res;
}

}  // namespace

OffloadPlan plan_offload(const Problem& p, const Plan& base, int64_t device_budget,
                         int64_t host_budget, TierBandwidth bw) {
  // A few slacks, the fastest plan kept: the passes differ only in where copies go, each is valid.
  std::optional<OffloadPlan> best;
  std::optional<Infeasible> first_error;
  for (const double slack : {1.0, 2.0, 4.0}) {
    try {
      OffloadPlan o = offload_pass(p, base, device_budget, host_budget, bw, slack);
      if (o.copies == 0) return o;  // nothing to place
      if (!best || o.makespan < best->makespan) best = std::move(o);
    } catch (const Infeasible& e) {
      if (!first_error) first_error = e;
    }
  }
  if (!best) throw *first_error;
  return *best;
}

JointPlans plan_joint(const Problem& p, int64_t device_budget, int64_t host_budget,
                      TierBandwidth bw, const std::string& planner, int intermediates,
                      const PlannerOptions& opts) {
  JointPlans j;
  auto offload = [&](const Plan& base, int64_t remat_budget) -> std::optional<OffloadPlan> {
    try {
      OffloadPlan o = plan_offload(p, base, device_budget, host_budget, bw);
      o.remat_budget_bytes = remat_budget;
      return o;
    } catch (const Infeasible&) {
      return std::nullopt;
    }
  };
  if (std::optional<PlanResult> r = try_plan(p, device_budget, planner, opts)) {
    OffloadPlan o;
    o.makespan = makespan(p, r->plan);
    o.device_peak_bytes = r->plan.predicted_peak_bytes;
    o.remat_budget_bytes = device_budget;
    o.plan = std::move(r->plan);
    j.recompute_only = std::move(o);
  }
  const int64_t peak0 = no_remat_peak(p);
  j.offload_only = offload(natural_plan(p), peak0);
  auto better = [](const std::optional<OffloadPlan>& a, const std::optional<OffloadPlan>& b) {
    return a && (!b || a->makespan < b->makespan);
  };
  j.joint = j.recompute_only;
  if (better(j.offload_only, j.joint)) j.joint = j.offload_only;
  for (int i = 1; i <= intermediates && peak0 > device_budget; ++i) {
    const int64_t b =
        device_budget +
        static_cast<int64_t>(static_cast<double>(peak0 - device_budget) * i / (intermediates + 1));
    std::optional<PlanResult> r = try_plan(p, b, planner, opts);
    if (!r) continue;
    std::optional<OffloadPlan> o = offload(r->plan, b);
    if (better(o, j.joint)) j.joint = std::move(o);
  }
  if (!j.joint) {
    throw Infeasible("no plan fits " + budgets_str(device_budget, host_budget) + " (planner '" +
                         planner + "' with copies, and without)",
                     device_budget, -1);
  }
  return j;
}

}  // namespace lethe::sched
