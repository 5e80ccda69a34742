#include "scheduler/plan_builder.h"

#include <algorithm>
#include <bit>
#include <climits>

namespace lethe::sched {

Dag::Dag(const Problem& p) : problem(&p), n(p.size()) {
  bytes.resize(n);
  cost.resize(n);
  resident.assign(n, 0);
  is_output.assign(n, 0);
  needed.assign(n, 0);
  in_start_.assign(n + 1, 0);
  std::vector<int32_t> out_count(n + 1, 0);
  // Distinct inputs: a node lists few inputs, so a linear scan for duplicates is cheapest.
  for (const Node& v : p.nodes) {
    bytes[v.id] = v.bytes;
    cost[v.id] = v.cost;
    resident[v.id] = v.resident;
    const size_t first = in_.size();
    for (NodeId u : v.inputs) {
      if (std::find(in_.begin() + first, in_.end(), u) == in_.end()) {
        in_.push_back(u);
        ++out_count[u];
      }
    }
    in_start_[v.id + 1] = static_cast<int32_t>(in_.size());
  }
  out_start_.assign(n + 1, 0);
  for (int v = 0; v < n; ++v) out_start_[v + 1] = out_start_[v] + out_count[v];
  out_.resize(in_.size());
  std::vector<int32_t> fill(out_start_.begin(), out_start_.end() - 1);
  for (int v = 0; v < n; ++v) {
    for (NodeId u : inputs(v)) out_[fill[u]++] = v;  // consumers come out in id order
  }
  for (NodeId o : p.outputs) {
    if (!is_output[o]) outputs.push_back(o);
    is_output[o] = 1;
  }
  for (int v = n - 1; v >= 0; --v) {
    bool need = is_output[v];
    for (NodeId c : consumers(v)) need = need || needed[c];
    needed[v] = need && !resident[v];
  }
  for (int v = 0; v < n; ++v) {
    if (needed[v]) targets.push_back(v);
  }
}

namespace {

// Loss candidates of a graph in which no output is read: the backward starts at a node (a
// resident tangent, or the first gradient op) that leads to every output but the loss, and to no
// fewer outputs than any other node that does not lead to all of them. The outputs such nodes do
// not lead to are the candidates (the loss, and any forward statistics kept as outputs; on a tiny
// graph a parameter can miss as few outputs as the tangent: its misses join the candidates, and
// the loss is told from them by its ancestors). Empty when there are fewer than two outputs (an
// inference graph).
std::vector<NodeId> unread_loss_candidates(const Dag& g) {
  std::vector<NodeId> outs, none;
  for (NodeId o : g.outputs) {
    if (g.needed[o]) outs.push_back(o);
  }
  const size_t k = outs.size();
  if (k < 2) return none;
  std::vector<int32_t> index(static_cast<size_t>(g.n), -1);
  for (size_t i = 0; i < k; ++i) index[static_cast<size_t>(outs[i])] = static_cast<int32_t>(i);
  const size_t words = (k + 63) / 64;
  std::vector<uint64_t> reach(static_cast<size_t>(g.n) * words, 0);
  auto row = [&](NodeId v) { return reach.data() + static_cast<size_t>(v) * words; };
  size_t best_count = 0;
  std::vector<uint64_t> missed(words, 0);  // outputs the best nodes miss
  for (NodeId v = g.n - 1; v >= 0; --v) {
    uint64_t* r = row(v);
    if (index[static_cast<size_t>(v)] >= 0) {
      const size_t i = static_cast<size_t>(index[static_cast<size_t>(v)]);
      r[i / 64] |= uint64_t{1} << (i % 64);
    }
    for (NodeId c : g.consumers(v)) {
      if (!g.needed[c]) continue;
      const uint64_t* rc = row(c);
      for (size_t w = 0; w < words; ++w) r[w] |= rc[w];
    }
    size_t count = 0;
    for (size_t w = 0; w < words; ++w) count += static_cast<size_t>(std::popcount(r[w]));
    if (count == 0 || count == k || count < best_count) continue;
    if (count > best_count) std::fill(missed.begin(), missed.end(), 0);
    best_count = count;
    for (size_t w = 0; w < words; ++w) missed[w] |= ~r[w];
  }
  std::vector<NodeId> cands;
  if (best_count == 0) return cands;
  for (size_t i = 0; i < k; ++i) {
    if (missed[i / 64] >> (i % 64) & 1) cands.push_back(outs[i]);
  }
  std::sort(cands.begin(), cands.end());
  return cands;
}

}  // namespace

TrainingSplit split_training(const Dag& g) {
  TrainingSplit s;
  s.backward.assign(g.n, 0);
  // The loss, when something reads it (the framework's gradient seed reads it): an output some
  // needed node reads and from which every other output is computed or which is computed from
  // it. In a framework step such outputs include statistics kept for side effects (batch norm's
  // batch statistics, read by its backward too), so the loss is the candidate with the most needed
  // ancestors: everything the forward computes leads to it. In a PyTorch joint graph a backward op
  // with several results (a convolution's input and weight gradients) is an output read by the
  // next one, but the loss, read by nothing, is neither computed from it nor from its results.
  std::vector<NodeId> read;
  for (NodeId v : g.targets) {
    if (!g.is_output[v]) continue;
    bool consumed = false;
    for (NodeId c : g.consumers(v)) consumed = consumed || g.needed[c];
    if (consumed) read.push_back(v);
  }
  constexpr size_t kMaxCandidates = 256;  // the last ones by id: the loss comes after the forward
  std::vector<uint8_t> anc(static_cast<size_t>(g.n), 0), desc(static_cast<size_t>(g.n), 0);
  std::vector<uint8_t> loss_anc;
  auto choose = [&](std::vector<NodeId> candidates, bool covering) {
    if (candidates.size() > kMaxCandidates)
      candidates.erase(candidates.begin(),
                       candidates.end() - static_cast<std::ptrdiff_t>(kMaxCandidates));
    int64_t most = -1;
    for (NodeId cand : candidates) {
      std::fill(anc.begin(), anc.end(), 0);
      anc[static_cast<size_t>(cand)] = 1;
      int64_t count = 0;
      for (NodeId v = cand; v >= 0; --v) {
        if (!anc[static_cast<size_t>(v)]) continue;
        ++count;
        for (NodeId u : g.inputs(v))
          if (g.needed[u]) anc[static_cast<size_t>(u)] = 1;
      }
      if (count <= most) continue;
      if (covering) {
        std::fill(desc.begin(), desc.end(), 0);
        desc[static_cast<size_t>(cand)] = 1;
        for (NodeId v : g.targets) {
          if (v <= cand) continue;
          for (NodeId u : g.inputs(v)) desc[static_cast<size_t>(v)] |= desc[static_cast<size_t>(u)];
        }
        bool covers = true;
        for (NodeId o : g.outputs)
          covers = covers &&
                   (!g.needed[o] || anc[static_cast<size_t>(o)] || desc[static_cast<size_t>(o)]);
        if (!covers) continue;
      }
      most = count;
      s.loss = cand;
      loss_anc = anc;
    }
  };
  choose(std::move(read), true);
  // Nothing reads the loss (a PyTorch joint graph: the gradient seed is a resident tangent, not a
  // function of the loss): the loss is found from where the backward starts.
  if (s.loss < 0) choose(unread_loss_candidates(g), false);
  // The forward is what the loss is computed from; the backward everything else the outputs need:
  // the gradients (from the loss or from a seed beside it), the computed nodes without inputs
  // (scratch buffers) that only backward nodes read, and what the backward computes from forward
  // values alone (PyTorch's gradient formulas recompute sigmoid(x) and the like).
  if (s.loss >= 0) {
    for (NodeId v : g.targets) s.backward[v] = !loss_anc[static_cast<size_t>(v)];
  }
  for (NodeId v : g.targets) {
    if (!s.backward[v]) s.forward.push_back(v);
  }
  return s;
}

// The rule split_training had before PyTorch's graphs (kept for sqrt's late split, see
// plan_builder.h): the read output with the most ancestors, the backward its descendants.
TrainingSplit split_at_read_output(const Dag& g) {
  TrainingSplit s;
  s.backward.assign(g.n, 0);
  // Candidates: outputs some needed node reads. In a framework step those include statistics kept
  // for side effects (batch norm's batch statistics, read by its backward too), so the loss is the
  // candidate with the most needed ancestors: everything the forward computes leads to it.
  std::vector<NodeId> candidates;
  for (NodeId v : g.targets) {
    if (!g.is_output[v]) continue;
    bool consumed = false;
    for (NodeId c : g.consumers(v)) consumed = consumed || g.needed[c];
    if (consumed) candidates.push_back(v);
  }
  constexpr size_t kMaxCandidates = 256;  // the last ones by id: the loss comes after the forward
  if (candidates.size() > kMaxCandidates)
    candidates.erase(candidates.begin(),
                     candidates.end() - static_cast<std::ptrdiff_t>(kMaxCandidates));
  int64_t most = -1;
  std::vector<uint8_t> anc(static_cast<size_t>(g.n), 0);
  for (NodeId cand : candidates) {
    std::fill(anc.begin(), anc.end(), 0);
    anc[static_cast<size_t>(cand)] = 1;
    int64_t count = 0;
    for (NodeId v = cand; v >= 0; --v) {
      if (!anc[static_cast<size_t>(v)]) continue;
      ++count;
      for (NodeId u : g.inputs(v))
        if (g.needed[u]) anc[static_cast<size_t>(u)] = 1;
    }
    if (count > most) {
      most = count;
      s.loss = cand;
    }
  }
  if (s.loss >= 0) {
    std::vector<uint8_t> desc(g.n, 0);
    desc[s.loss] = 1;
    for (NodeId v : g.targets) {
      if (v <= s.loss) continue;
      for (NodeId u : g.inputs(v)) {
        if (desc[u]) {
          desc[v] = 1;
          break;
        }
      }
      s.backward[v] = desc[v];
    }
    // A computed node without inputs (an op's scratch buffer, as the framework adds them) belongs
    // to the part its consumers are in.
    for (NodeId v : g.targets) {
      if (v <= s.loss || !g.inputs(v).empty()) continue;
      for (NodeId c : g.consumers(v))
        s.backward[v] = s.backward[v] || (g.needed[c] && s.backward[c]);
    }
  }
  for (NodeId v : g.targets) {
    if (!s.backward[v]) s.forward.push_back(v);
  }
  return s;
}

std::optional<Reordered> late_outputs_last(const Problem& p) {
  const int n = p.size();
  std::vector<uint8_t> read(static_cast<size_t>(n), 0), out(static_cast<size_t>(n), 0);
  for (const Node& v : p.nodes) {
    for (NodeId u : v.inputs) read[static_cast<size_t>(u)] = 1;
  }
  for (NodeId o : p.outputs) out[static_cast<size_t>(o)] = 1;
  std::vector<uint8_t> late(static_cast<size_t>(n), 0);
  bool any = false;
  for (const Node& v : p.nodes) {
    if (!out[static_cast<size_t>(v.id)] || read[static_cast<size_t>(v.id)] || v.resident) continue;
    int64_t in_bytes = 0;
    std::vector<NodeId> ins = v.inputs;
    std::sort(ins.begin(), ins.end());
    ins.erase(std::unique(ins.begin(), ins.end()), ins.end());
    for (NodeId u : ins) {
      if (!p.nodes[static_cast<size_t>(u)].resident)
        in_bytes += p.nodes[static_cast<size_t>(u)].bytes;
    }
    if (v.bytes > in_bytes) late[static_cast<size_t>(v.id)] = 1, any = true;
  }
  if (!any) return std::nullopt;
  Reordered r;
  for (int pass = 0; pass < 2; ++pass) {
    for (const Node& v : p.nodes) {
      if (late[static_cast<size_t>(v.id)] == pass) r.old_id.push_back(v.id);
    }
  }
  std::vector<NodeId> new_id(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) new_id[static_cast<size_t>(r.old_id[static_cast<size_t>(i)])] = i;
  r.problem.name = p.name;
  r.problem.nodes.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    Node v = p.nodes[static_cast<size_t>(r.old_id[static_cast<size_t>(i)])];
    v.id = i;
    for (NodeId& u : v.inputs) u = new_id[static_cast<size_t>(u)];
    r.problem.nodes.push_back(std::move(v));
  }
  for (NodeId o : p.outputs) r.problem.outputs.push_back(new_id[static_cast<size_t>(o)]);
  return r;
}

Plan plan_in_original(Plan plan, const Reordered& r) {
  for (Step& s : plan.steps) s.node = r.old_id[static_cast<size_t>(s.node)];
  return plan;
}

std::vector<uint8_t> forward_cuts(const Dag& g, const TrainingSplit& s) {
  std::vector<uint8_t> cut(g.n, 0);
  // reach = the largest forward consumer of any forward node seen so far; node f is a cut when
  // nothing before it reaches past it.
  NodeId reach = -1;
  for (NodeId f : s.forward) {
    if (reach <= f) cut[f] = 1;
    for (NodeId c : g.consumers(f)) {
      if (g.needed[c] && !s.backward[c]) reach = std::max(reach, c);
    }
  }
  return cut;
}

void assign_backward_stages(const Dag& g, const TrainingSplit& s, std::vector<int>& stage,
                            int last_segment, bool wait_for_inputs) {
  for (NodeId v : g.targets) {
    if (!s.backward[v]) continue;
    int fwd = -1, bwd = wait_for_inputs ? INT_MAX : -1;
    for (NodeId u : g.inputs(v)) {
      if (g.resident[u]) continue;
      if (s.backward[u]) {
        bwd = wait_for_inputs ? std::min(bwd, stage[u]) : std::max(bwd, stage[u]);
      } else {
        fwd = std::max(fwd, stage[u]);
      }
    }
    // The backward runs from the last stage down, so v can run only once its last-made backward
    // input (the lowest stage) exists.
    if (!wait_for_inputs) {
      stage[v] = fwd >= 0 ? fwd : (bwd >= 0 ? bwd : last_segment);
    } else if (fwd >= 0) {
      stage[v] = std::min(fwd, bwd);
    } else {
      stage[v] = bwd != INT_MAX ? bwd : last_segment;
    }
  }
}

Executor::Executor(const Dag& g, int64_t limit)
    : g_(g), limit_(limit), in_mem_(g.n, 0), pin_(g.n, 0) {
  for (int v = 0; v < g.n; ++v) {
    if (g.resident[v]) {
      in_mem_[v] = 1;
      mem_ += g.bytes[v];
    }
  }
  peak_ = mem_;
}

void Executor::free(NodeId v) {
  if (!in_mem_[v] || g_.resident[v]) return;
  in_mem_[v] = 0;
  mem_ -= g_.bytes[v];
  steps_.push_back(Step::free(v));
}

bool Executor::compute(NodeId v) {
  const int64_t b = g_.bytes[v];
  if (mem_ + b > limit_ && !(make_room && make_room(v, b) && mem_ + b <= limit_)) {
    failed_ = true;
    return false;
  }
  if (static_cast<int64_t>(steps_.size()) >= max_steps) {
    failed_ = true;
    return false;
  }
  in_mem_[v] = 1;
  mem_ += b;
  peak_ = std::max(peak_, mem_);
  cost_ += g_.cost[v];
  steps_.push_back(Step::compute(v));
  if (on_compute) on_compute(v);
  return true;
}

bool Executor::ensure(NodeId v) {
  if (failed_) return false;
  if (in_mem_[v]) return true;
  auto push = [&](NodeId w) {
    for (NodeId u : g_.inputs(w)) ++pin_[u];
    stack_.push_back({w, 0});
  };
  push(v);
  while (!stack_.empty()) {
    Frame& f = stack_.back();
    const auto ins = g_.inputs(f.v);
    while (f.k < static_cast<int32_t>(ins.size()) && in_mem_[ins[f.k]]) ++f.k;
    if (f.k < static_cast<int32_t>(ins.size())) {
      push(ins[f.k]);  // f is invalidated; it is re-read on the next iteration
      continue;
    }
    const NodeId w = f.v;
    if (!compute(w)) {
      for (const Frame& fr : stack_) {
        for (NodeId u : g_.inputs(fr.v)) --pin_[u];
      }
      stack_.clear();
      return false;
    }
    stack_.pop_back();
    for (NodeId u : ins) {
      if (--pin_[u] == 0 && !g_.resident[u] && in_mem_[u] && drop && drop(u)) free(u);
    }
  }
  return true;
}

bool Executor::run_targets(const std::function<void(size_t)>& before) {
  for (size_t i = 0; i < g_.targets.size(); ++i) {
    const NodeId t = g_.targets[i];
    if (before) before(i);
    if (!ensure(t)) return false;
    // t may have been in memory already (recomputed early for another node): its inputs' use at
    // this position is over either way, so they are offered again.
    for (NodeId u : g_.inputs(t)) {
      if (!g_.resident[u] && in_memory(u) && !pinned(u) && drop && drop(u)) free(u);
    }
    if (drop && drop(t)) free(t);
  }
  for (NodeId o : g_.outputs) {
    if (!ensure(o)) return false;
  }
  return true;
}

Plan Executor::make_plan(const std::string& planner, int64_t budget) {
  Plan plan;
  plan.graph = g_.problem->name;
  plan.planner = planner;
  plan.budget_bytes = budget;
  plan.predicted_peak_bytes = peak_;
  plan.predicted_cost = cost_;
  plan.steps = take_steps();
  return plan;
}

CheckpointSpec all_kept(const Dag& g) {
  CheckpointSpec s;
  s.keep.assign(g.n, 1);
  s.stage.assign(g.n, 0);
  return s;
}

std::optional<BuildResult> build_checkpoint_plan(const Dag& g, const CheckpointSpec& spec,
                                                 int64_t budget, const std::string& planner) {
  const int n = g.n;
  // Positions of the targets and, per value, the positions of its needed consumers (ascending,
  // because consumers are stored in id order).
  std::vector<int32_t> pos(n, -1);
  for (size_t i = 0; i < g.targets.size(); ++i) pos[g.targets[i]] = static_cast<int32_t>(i);
  std::vector<int32_t> next(n, 0);  // index into consumers(v) of the next use not yet done
  int32_t done = -1;                // targets at positions <= done are computed
  int cur_stage = 0;

  auto next_use = [&](NodeId u) -> NodeId {
    const auto cs = g.consumers(u);
    int32_t& k = next[u];
    while (k < static_cast<int32_t>(cs.size()) && (pos[cs[k]] < 0 || pos[cs[k]] <= done)) ++k;
    return k < static_cast<int32_t>(cs.size()) ? cs[k] : -1;
  };

  Executor ex(g, budget);
  // Sparse checkpoints in a wide DAG can make on-demand recomputation explode; such a plan is
  // useless anyway, so give up past a generous multiple of the natural schedule's length.
  int64_t edges = 0;
  for (NodeId v : g.targets) edges += static_cast<int64_t>(g.inputs(v).size());
  ex.max_steps = 32 * (static_cast<int64_t>(g.targets.size()) + edges) + 1000;
  ex.drop = [&](NodeId u) {
    if (g.is_output[u]) return false;
    const NodeId c = next_use(u);
    if (c < 0) return true;
    if (spec.keep[u]) return false;
    return spec.stage[c] != cur_stage;
  };
  const bool ok = ex.run_targets([&](size_t i) {
    done = static_cast<int32_t>(i);  // t's own inputs are pinned while it is computed
    cur_stage = spec.stage[g.targets[i]];
  });
  if (!ok) return std::nullopt;
  BuildResult r;
  r.peak = ex.peak();
  r.cost = ex.cost();
  r.plan = ex.make_plan(planner, budget);
  return r;
}

}  // namespace lethe::sched
