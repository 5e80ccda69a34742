#include "framework/step_problem.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "framework/storage.h"

namespace lethe {

const CostModel& CostModel::calibrated() {
  static const CostModel model = [] {
    CostModel m;
    using clock = std::chrono::steady_clock;
    const int n = 256;
    std::vector<float> a(n * n, 1.0f), b(n * n, 0.5f), c(n * n, 0.0f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);  // warm-up
    auto t0 = clock::now();
    const int reps = 4;
    for (int r = 0; r < reps; ++r)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(),
                  n, 0.0f, c.data(), n);
    double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s > 0) m.flops_per_s = 2.0 * n * n * n * reps / s;
    std::vector<float> x(1 << 22, 1.0f), y(1 << 22, 2.0f);
    t0 = clock::now();
    for (int r = 0; r < reps; ++r)
      for (size_t i = 0; i < x.size(); ++i) y[i] = y[i] * 0.5f + x[i];
    s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s > 0) m.bytes_per_s = 3.0 * sizeof(float) * x.size() * reps / s;
    return m;
  }();
  return model;
}

StepProblem build_step_problem(const Graph& g, const std::vector<int>& targets, bool side_effects,
                               const std::vector<double>* measured, const CostModel& model,
                               bool early_updates) {
  const size_t n = g.nodes.size();
  StepProblem sp;
  std::vector<char> needed(n, 0), output(n, 0), early(n, 0);
  for (int t : targets) needed[static_cast<size_t>(t)] = output[static_cast<size_t>(t)] = 1;
  auto storage_of = [&](int k) -> const Storage* {
    const Node& in = g.nodes[static_cast<size_t>(k)];
    return in.is_leaf() ? in.leaf.get() : nullptr;
  };
  // A leaf whose home is the second tier (Storage::home) is no resident: the plan reads it in
  // (a node without inputs costing its bytes over the tier's bandwidth) where it needs it, and may
  // free it and read it again as it recomputes anything else.
  auto homed = [&](int k) {
    const Storage* st = storage_of(k);
    return st != nullptr && st->home != nullptr;
  };
  if (side_effects) {
    std::vector<int> effects;
    for (size_t i = 0; i < n; ++i) {
      const Node& nd = g.nodes[i];
      if (nd.op && !nd.op->mutated_inputs().empty()) effects.push_back(static_cast<int>(i));
    }
    // An update may run inside the plan when everything it overwrites is a leaf, and every leaf
    // storage a side effect overwrites that it touches is touched by no other side effect (their
    // record order then does not matter).
    std::map<const Storage*, int> written, touched;
    for (int e : effects) {
      const Node& nd = g.nodes[static_cast<size_t>(e)];
      std::set<const Storage*> mine;
      for (int k : nd.inputs)
        if (const Storage* st = storage_of(k)) mine.insert(st);
      for (const Storage* st : mine) ++touched[st];
      for (int m : nd.op->mutated_inputs())
        if (const Storage* st = storage_of(nd.inputs[static_cast<size_t>(m)])) ++written[st];
    }
    // With values whose home is the second tier, an update runs inside the plan only when all it
    // overwrites has a home there: its writes then go to the homes' other places, current only
    // once the whole step succeeded (framework/tier.h), so a copy that fails later in the step
    // leaves nothing half-updated.
    bool any_home = false;
    for (size_t i = 0; i < n && !any_home; ++i) any_home = homed(static_cast<int>(i));
    for (int e : effects) {
      const Node& nd = g.nodes[static_cast<size_t>(e)];
      bool ok = early_updates;
      for (int m : nd.op->mutated_inputs()) {
        const int k = nd.inputs[static_cast<size_t>(m)];
        ok = ok && storage_of(k) != nullptr && (!any_home || homed(k));
      }
      for (int k : nd.inputs)
        if (const Storage* st = storage_of(k); st && written.count(st) && touched[st] != 1)
          ok = false;
      if (ok) {
        early[static_cast<size_t>(e)] = needed[static_cast<size_t>(e)] = 1;
        output[static_cast<size_t>(e)] = 1;  // computed once, its placeholder kept
        continue;
      }
      sp.side_effects.push_back(e);
      // A value whose home is the second tier is read in for the side effect itself (into the
      // side effects' region), not held to the end of the plan.
      for (int in : nd.inputs)
        if (!homed(in)) needed[static_cast<size_t>(in)] = output[static_cast<size_t>(in)] = 1;
    }
  }
  for (size_t i = n; i-- > 0;) {
    if (!needed[i]) continue;
    for (int in : g.nodes[i].inputs) needed[static_cast<size_t>(in)] = 1;
  }
  // Side effects after the plan are not part of the problem: they run once, after it.
  for (int s : sp.side_effects) needed[static_cast<size_t>(s)] = 0;
  // Each early update comes, in id order, right after the last of its inputs and of the nodes that
  // read what it overwrites (those read the old values): the natural order is then valid.
  std::map<const Storage*, std::vector<int>> updating;  // storage -> early updates writing it
  std::vector<int> anchor(n, -1);
  std::vector<std::vector<int>> reads(n);  // graph id -> early updates whose targets it reads
  for (size_t u = 0; u < n; ++u) {
    if (!early[u]) continue;
    const Node& nd = g.nodes[u];
    for (int k : nd.inputs) anchor[u] = std::max(anchor[u], k);
    for (int m : nd.op->mutated_inputs())
      updating[storage_of(nd.inputs[static_cast<size_t>(m)])].push_back(static_cast<int>(u));
  }
  // A reader is placed before the update, and so is the last node that uses the reader's value: a
  // plan rarely recomputes the reader after that (a batch norm's forward reads its running
  // statistics, and its value is used until its backward).
  std::vector<int> last_use(n, -1);
  for (size_t j = 0; j < n; ++j)
    if (needed[j] && !early[j])
      for (int k : g.nodes[j].inputs) last_use[static_cast<size_t>(k)] = static_cast<int>(j);
  for (size_t j = 0; j < n && !updating.empty(); ++j) {
    if (!needed[j] || early[j] || g.nodes[j].is_leaf()) continue;
    for (int k : g.nodes[j].inputs) {
      const Storage* st = storage_of(k);
      auto it = st ? updating.find(st) : updating.end();
      if (it == updating.end()) continue;
      for (int u : it->second) {
        int& a = anchor[static_cast<size_t>(u)];
        a = std::max({a, static_cast<int>(j), last_use[j]});
        reads[j].push_back(u);
      }
    }
  }
  for (auto& r : reads) {
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
  }
  std::vector<std::vector<int>> readers_of(n);  // early update -> the graph ids reading its targets
  for (size_t j = 0; j < n; ++j)
    for (int u : reads[j]) readers_of[static_cast<size_t>(u)].push_back(static_cast<int>(j));
  std::vector<sched::NodeId> token_of(n, -1);  // reader -> its order token's problem id
  std::vector<std::vector<int>> anchored(n);
  for (size_t u = 0; u < n; ++u)
    if (early[u]) anchored[static_cast<size_t>(anchor[u])].push_back(static_cast<int>(u));
  sp.from_graph.assign(n, -1);
  sp.problem.name = "step";
  auto emit = [&](size_t i) {
    const Node& nd = g.nodes[i];
    sched::Node pn;
    pn.name = nd.name.empty() ? (nd.op ? nd.op->name() : "leaf") + std::to_string(i) : nd.name;
    pn.op = nd.op ? nd.op->name() : (nd.requires_grad ? "param" : "input");
    pn.bytes = nd.buffer_bytes();
    pn.resident = nd.is_leaf();
    sched::NodeId scratch = -1;
    if (pn.resident && homed(static_cast<int>(i))) {
      pn.resident = false;
      pn.op = "read_home";
      const double m = measured && i < measured->size() ? (*measured)[i] : -1.0;
      const double bw =
          model.tier_in_bytes_per_s > 0 ? model.tier_in_bytes_per_s : model.bytes_per_s;
      pn.cost = m >= 0 ? m : static_cast<double>(nd.leaf->bytes) / bw + 1e-6;
    } else if (!pn.resident) {
      std::vector<TensorMeta> in;
      for (int k : nd.inputs) in.push_back(g.nodes[static_cast<size_t>(k)].meta);
      double m = measured && i < measured->size() ? (*measured)[i] : -1.0;
      if (m >= 0) {
        pn.cost = m;
      } else {
        OpCost c = nd.op->cost(in, nd.meta);
        pn.cost = c.flops / model.flops_per_s + c.bytes / model.bytes_per_s + 1e-7;
      }
      const size_t ws = align_up(kernel_workspace_bytes(*nd.op, in, nd.meta));
      size_t working = ws + static_cast<size_t>(pn.bytes);
      for (const auto& m2 : in) working += align_up(m2.bytes());
      sp.largest_working_set = std::max(sp.largest_working_set, working);
      if (ws > 0) {
        // The op's workspace: a node of its own, computed (for free) right before the op and an
        // input of it, so the plan holds it only while the op runs and the layout places it.
        sched::Node sn;
        sn.id = static_cast<sched::NodeId>(sp.to_graph.size());
        sn.name = pn.name + ".workspace";
        sn.op = "workspace";
        sn.bytes = static_cast<int64_t>(ws);
        scratch = sn.id;
        sp.to_graph.push_back(static_cast<int>(i));
        sp.scratch.push_back(1);
        sp.token.push_back(0);
        sp.problem.nodes.push_back(std::move(sn));
      }
    }
    pn.id = static_cast<sched::NodeId>(sp.to_graph.size());
    for (int k : nd.inputs) pn.inputs.push_back(sp.from_graph[static_cast<size_t>(k)]);
    if (scratch >= 0) pn.inputs.push_back(scratch);
    if (early[i])
      for (int r : readers_of[i]) pn.inputs.push_back(token_of[static_cast<size_t>(r)]);
    sp.from_graph[i] = pn.id;
    sp.to_graph.push_back(static_cast<int>(i));
    sp.scratch.push_back(0);
    sp.token.push_back(0);
    const std::string name = pn.name;
    sp.problem.nodes.push_back(std::move(pn));
    if (!reads[i].empty()) {
      // The order token of a reader of what an update overwrites (StepProblem::token).
      sched::Node tn;
      tn.id = static_cast<sched::NodeId>(sp.to_graph.size());
      tn.name = name + ".order";
      tn.op = "order";
      tn.bytes = static_cast<int64_t>(kAlignment);
      tn.inputs = {sp.from_graph[i]};
      token_of[i] = tn.id;
      sp.to_graph.push_back(static_cast<int>(i));
      sp.scratch.push_back(0);
      sp.token.push_back(1);
      sp.problem.nodes.push_back(std::move(tn));
    }
  };
  // A value whose home is the tier comes right before its first reader (the natural schedule
  // then reads it in when it is first needed, not at the start of the step).
  auto emit_after_homes = [&](size_t i) {
    for (int k : g.nodes[i].inputs)
      if (homed(k) && sp.from_graph[static_cast<size_t>(k)] < 0) emit(static_cast<size_t>(k));
    emit(i);
  };
  for (size_t i = 0; i < n; ++i) {
    if (needed[i] && !early[i] && !homed(static_cast<int>(i))) emit_after_homes(i);
    for (int u : anchored[i]) emit_after_homes(static_cast<size_t>(u));
  }
  for (size_t i = 0; i < n; ++i)
    if (output[i] && needed[i] && !g.nodes[i].is_leaf())
      sp.problem.outputs.push_back(sp.from_graph[i]);
  const size_t pn = sp.problem.nodes.size();
  sp.role.assign(pn, ResidentRole::other);
  sp.gradient.assign(pn, 0);
  sp.comm.assign(pn, 0);
  sp.from_bucket.assign(pn, 0);
  sp.update.assign(pn, 0);
  sp.reads_updated.assign(pn, {});
  for (size_t id = 0; id < pn; ++id) {
    const size_t gid = static_cast<size_t>(sp.to_graph[id]);
    const Node& gn = g.nodes[gid];
    if (sp.scratch[id] || sp.token[id]) continue;
    sp.comm[id] = gn.op && gn.op->kind() == OpKind::all_reduce ? 1 : 0;
    sp.from_bucket[id] = gn.op && gn.op->kind() == OpKind::bucket_slice ? 1 : 0;
    sp.update[id] = early[gid] ? 1 : 0;
    for (int u : reads[gid]) sp.reads_updated[id].push_back(sp.from_graph[static_cast<size_t>(u)]);
    if (sp.problem.nodes[id].resident) {
      if (gn.requires_grad)
        sp.role[id] = ResidentRole::parameter;
      else if (gn.op == nullptr && gn.leaf && gn.leaf->role == StorageRole::optimizer_state)
        sp.role[id] = ResidentRole::optimizer_state;
    }
    sp.gradient[id] = gn.is_gradient ? 1 : 0;
  }
  // Side effects after the plan run one at a time, in a region above the plan's buffers: their
  // output, then their workspace.
  // Values whose home is the second tier that a side effect reads are read in for it, at the top
  // of that region.
  for (int s : sp.side_effects) {
    const Node& nd = g.nodes[static_cast<size_t>(s)];
    std::vector<TensorMeta> in;
    size_t homes = 0;
    std::set<int> seen;
    for (int k : nd.inputs) {
      in.push_back(g.nodes[static_cast<size_t>(k)].meta);
      if (homed(k) && seen.insert(k).second) homes += align_up(storage_of(k)->bytes);
    }
    sp.max_workspace =
        std::max(sp.max_workspace, static_cast<size_t>(nd.buffer_bytes()) + homes +
                                       align_up(kernel_workspace_bytes(*nd.op, in, nd.meta)));
  }
  return sp;
}

bool update_ok(const StepProblem& sp, const sched::Plan& plan) {
  if (std::find(sp.update.begin(), sp.update.end(), uint8_t{1}) == sp.update.end()) return true;
  std::vector<uint8_t> ran(sp.update.size(), 0);
  for (const sched::Step& st : plan.steps) {
    if (st.kind != sched::Step::Kind::compute) continue;
    const size_t id = static_cast<size_t>(st.node);
    for (int u : sp.reads_updated[id])
      if (ran[static_cast<size_t>(u)]) return false;  // would read the updated value
    if (sp.update[id]) {
      if (ran[id]) return false;  // a second update
      ran[id] = 1;
    }
  }
  return true;
}

StepProblem step_problem_from(const sched::Problem& p) {
  StepProblem sp;
  sp.problem = p;
  const size_t n = p.nodes.size();
  for (size_t i = 0; i < n; ++i) {
    sp.to_graph.push_back(static_cast<int>(i));
    sp.from_graph.push_back(static_cast<int>(i));
  }
  sp.scratch.assign(n, 0);
  sp.role.assign(n, ResidentRole::other);
  sp.gradient.assign(n, 0);
  sp.comm.assign(n, 0);
  sp.from_bucket.assign(n, 0);
  sp.update.assign(n, 0);
  sp.reads_updated.assign(n, {});
  sp.token.assign(n, 0);
  for (const sched::Node& nd : p.nodes) {
    if (nd.resident) continue;
    sp.comm[static_cast<size_t>(nd.id)] = nd.op == op_kind_name(OpKind::all_reduce) ? 1 : 0;
    sp.from_bucket[static_cast<size_t>(nd.id)] =
        nd.op == op_kind_name(OpKind::bucket_slice) ? 1 : 0;
    int64_t working = nd.bytes;
    for (sched::NodeId k : nd.inputs) working += p.nodes[static_cast<size_t>(k)].bytes;
    sp.largest_working_set = std::max(sp.largest_working_set, static_cast<size_t>(working));
  }
  return sp;
}

}  // namespace lethe
