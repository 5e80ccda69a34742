// Beaumont, Herrmann, Pallez, Shilova, "Optimal checkpointing for heterogeneous chains" (2019, the
// rotor algorithm): a dynamic program over a chain of stages with different costs and sizes, which
// generalises Griewank's revolve. A training graph becomes a chain by cutting its forward part at
// single-node cuts (articulation points of the forward in id order); each block's backward nodes
// pair with it. Blocks are merged to at most kMaxBlocks and memory is discretised into kSlots, so
// the DP is O(kMaxBlocks^3 * kSlots) whatever the graph size.
//
// DP (entry: the block input x_{s-1} is held by the caller; m = free memory in slots, not counting
// the resident values, the loss and the outputs (parameter gradients) of blocks after t; out_s is
// what block s's backward adds to the outputs, O(a..b) the sum over blocks a..b):
//   opt(s, s, m) = uf_s + ub_s                                 if tape_s + wb_s + out_s <= m
//   opt(s, t, m) = min( uf_s + opt(s+1, t, m - tape_s) + ub_s,                keep block s's tape
//                         (needs tape_s + wb_s + out_s + O(s+1..t) <= m)
//                       min_{s<s'<=t} sum_{k=s}^{s'-1} uf_k                     run s..s'-1 without tape,
//                           + opt(s', t, m - x_{s'-1})                          keep x_{s'-1}
//                           + opt(s, s'-1, m - O(s'..t)) )
// The working-memory estimates are rough; the emitted plan is measured exactly by the executor and
// the largest m whose plan fits is found by binary search (the slots span 1.25x the free memory so
// that conservative estimates can be overruled). The executor recomputes anything the model got
// wrong, so every emitted plan is valid.
#include <algorithm>
#include <cmath>
#include <limits>

#include "scheduler/plan_builder.h"
#include "scheduler/planners/planners.h"
#include "scheduler/simulator.h"

namespace lethe::sched {
namespace {

constexpr int kMaxBlocks = 64;
constexpr int kSlots = 256;
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Chain {
  int L = 0;
  std::vector<std::vector<NodeId>> fwd, bwd;  // per block, id order
  std::vector<double> uf, ub;
  std::vector<int64_t> x, tape, wb;  // bytes: boundary, tape (boundary included), backward working set
  std::vector<int64_t> out;          // bytes of the outputs (parameter gradients) block i's backward makes
  int64_t fixed = 0;                 // resident values and outputs no block makes (the loss)
};

class ChainPlanner {
 public:
  ChainPlanner(const Problem& p, int64_t budget) : p_(p), g_(p), budget_(budget) {}

  std::optional<Plan> run(PlannerInfo* info) {
    if (auto r = build_checkpoint_plan(g_, all_kept(g_), budget_, "chain")) return std::move(r->plan);
    if (budget_ < floor_bytes(p_)) return std::nullopt;
    make_chain();
    if (ch_.L == 0) return std::nullopt;
    const int64_t avail = budget_ - ch_.fixed;
    if (avail <= 0) return std::nullopt;
    // The slots span a little more than the real free memory: the working-set estimates are
    // conservative, and an over-optimistic answer is caught by the executor (then m goes down).
    slot_ = std::max<int64_t>(1, (avail + avail / 4 + kSlots - 1) / kSlots);
    solve_dp();
    std::optional<Plan> best;
    double best_cost = 0.0;
    int best_m = -1;
    auto attempt = [&](int m) {
      if (!(at(0, ch_.L - 1, m) < kInf)) return false;
      std::optional<Plan> plan = emit(m);
      if (!plan) return false;
      if (!best || plan->predicted_cost < best_cost) {
        best_cost = plan->predicted_cost;
        best = std::move(plan);
        best_m = m;
      }
      return true;
    };
    // The DP is feasible from some m_min up; emitted plans fit from some m down. Search the
    // largest m in [m_min, kSlots] whose plan fits (assuming fitting is monotone in m).
    int lo = 0, hi = kSlots;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      (at(0, ch_.L - 1, mid) < kInf ? hi : lo) = (at(0, ch_.L - 1, mid) < kInf ? mid : mid + 1);
    }
    if (!attempt(kSlots)) {
      hi = kSlots - 1;
      while (lo <= hi) {
        const int mid = (lo + hi) / 2;
        if (attempt(mid)) {
          lo = mid + 1;
        } else {
          hi = mid - 1;
        }
      }
    }
    if (best && info) {
      info->note = std::to_string(ch_.L) + " blocks, DP memory " + std::to_string(best_m) + "/" +
                   std::to_string(kSlots) + " slots";
    }
    return best;
  }

 private:
  int64_t slots(int64_t bytes) const { return (bytes + slot_ - 1) / slot_; }
  int64_t out_slots(int s, int t) const {
    int64_t b = 0;
    for (int i = s; i <= t; ++i) b += ch_.out[i];
    return slots(b);
  }
  float& at(int s, int t, int m) { return opt_[(static_cast<size_t>(s) * ch_.L + t) * (kSlots + 1) + m]; }
  int16_t& choice(int s, int t, int m) { return choice_[(static_cast<size_t>(s) * ch_.L + t) * (kSlots + 1) + m]; }

  void make_chain() {
    split_ = split_training(g_);
    const std::vector<uint8_t> cuts = forward_cuts(g_, split_);
    const auto& F = split_.forward;
    if (F.empty()) return;
    // Fine blocks end at every cut; merge them into at most kMaxBlocks of similar cost (+ a small
    // per-node weight so zero-cost graphs still split evenly).
    double total = 0.0;
    for (NodeId f : F) total += g_.cost[f];
    const double per_node = total > 0 ? total / (10.0 * F.size()) : 1.0;
    total += per_node * F.size();
    const double target = total / kMaxBlocks;
    block_of_.assign(g_.n, -1);
    std::vector<NodeId> cur;
    double acc = 0.0;
    for (size_t i = 0; i < F.size(); ++i) {
      const NodeId f = F[i];
      cur.push_back(f);
      acc += g_.cost[f] + per_node;
      const bool last = i + 1 == F.size();
      if (last || (cuts[f] && acc >= target && static_cast<int>(ch_.fwd.size()) < kMaxBlocks - 1)) {
        for (NodeId v : cur) block_of_[v] = static_cast<int>(ch_.fwd.size());
        ch_.fwd.push_back(std::move(cur));
        cur.clear();
        acc = 0.0;
      }
    }
    ch_.L = static_cast<int>(ch_.fwd.size());
    stage_.assign(g_.n, 0);
    for (NodeId f : F) stage_[f] = block_of_[f];
    assign_backward_stages(g_, split_, stage_, ch_.L - 1);
    ch_.bwd.assign(ch_.L, {});
    ch_.uf.assign(ch_.L, 0.0);
    ch_.ub.assign(ch_.L, 0.0);
    ch_.x.assign(ch_.L, 0);
    ch_.tape.assign(ch_.L, 0);
    ch_.wb.assign(ch_.L, 0);
    ch_.out.assign(ch_.L, 0);
    for (NodeId v : g_.targets) {
      if (split_.backward[v]) ch_.bwd[stage_[v]].push_back(v);
    }
    // Parameter gradients appear block by block during the backward pass, so the DP charges each
    // block's outputs only from its backward on (not the whole floor from the start).
    for (int v = 0; v < g_.n; ++v) {
      if (g_.resident[v]) ch_.fixed += g_.bytes[v];
    }
    for (NodeId o : g_.outputs) {
      if (g_.resident[o]) continue;
      if (split_.backward[o]) {
        ch_.out[stage_[o]] += g_.bytes[o];
      } else {
        ch_.fixed += g_.bytes[o];
      }
    }
    // Outputs are in the floor already, so they count 0 here.
    auto sz = [&](NodeId v) { return g_.is_output[v] ? int64_t{0} : g_.bytes[v]; };
    for (int i = 0; i < ch_.L; ++i) {
      const NodeId xi = ch_.fwd[i].back();
      ch_.x[i] = sz(xi);
      int64_t tape = 0, fmax = 0;
      for (NodeId f : ch_.fwd[i]) {
        ch_.uf[i] += g_.cost[f];
        fmax = std::max(fmax, sz(f));
        bool used_by_backward = f == xi;
        for (NodeId c : g_.consumers(f)) used_by_backward = used_by_backward || split_.backward[c];
        if (used_by_backward) tape += sz(f);
      }
      int64_t bmax = 0;
      for (NodeId b : ch_.bwd[i]) {
        ch_.ub[i] += g_.cost[b];
        bmax = std::max(bmax, sz(b));
      }
      ch_.tape[i] = tape;
      // Gradients in flight while block i runs backward: roughly the incoming one and the one
      // being made; a forward pass needs its largest value and the next.
      ch_.wb[i] = std::max(2 * bmax, 2 * fmax);
    }
    // Within a block, a forward value can be dropped after its last forward consumer in the block.
    last_in_block_.assign(g_.n, -1);
    for (NodeId f : F) {
      for (NodeId c : g_.consumers(f)) {
        if (g_.needed[c] && !split_.backward[c] && block_of_[c] == block_of_[f]) {
          last_in_block_[f] = std::max(last_in_block_[f], c);
        }
      }
    }
  }

  void solve_dp() {
    const int L = ch_.L;
    opt_.assign(static_cast<size_t>(L) * L * (kSlots + 1), kInf);
    choice_.assign(opt_.size(), -2);
    std::vector<double> prefix(L + 1, 0.0);
    std::vector<int64_t> out_prefix(L + 1, 0);
    for (int i = 0; i < L; ++i) {
      prefix[i + 1] = prefix[i] + ch_.uf[i];
      out_prefix[i + 1] = out_prefix[i] + ch_.out[i];
    }
    // Outputs of blocks s..t made by the time a range's backward ends.
    auto outs = [&](int s, int t) { return slots(out_prefix[t + 1] - out_prefix[s]); };
    for (int len = 0; len < L; ++len) {
      for (int s = 0; s + len < L; ++s) {
        const int t = s + len;
        const int64_t tape = slots(ch_.tape[s]);
        // Block s's backward runs after s+1..t's: their outputs are in memory by then.
        const int64_t need_b = slots(ch_.tape[s] + ch_.wb[s] + ch_.out[s]) + (s < t ? outs(s + 1, t) : 0);
        for (int m = 0; m <= kSlots; ++m) {
          float best = kInf;
          int16_t how = -2;
          if (len == 0) {
            if (need_b <= m) {
              best = static_cast<float>(ch_.uf[s] + ch_.ub[s]);
              how = -1;
            }
          } else {
            if (need_b <= m) {
              const float rest = at(s + 1, t, static_cast<int>(m - tape));
              if (rest < kInf) {
                best = static_cast<float>(ch_.uf[s] + ch_.ub[s]) + rest;
                how = -1;
              }
            }
            for (int s2 = s + 1; s2 <= t; ++s2) {
              const int64_t xs = slots(ch_.x[s2 - 1]);
              if (xs > m) continue;
              const float right = at(s2, t, static_cast<int>(m - xs));
              if (!(right < kInf)) continue;
              const int64_t made = outs(s2, t);
              if (made > m) continue;
              const float left = at(s, s2 - 1, static_cast<int>(m - made));
              if (!(left < kInf)) continue;
              const float c = static_cast<float>(prefix[s2] - prefix[s]) + right + left;
              if (c < best) {
                best = c;
                how = static_cast<int16_t>(s2);
              }
            }
          }
          at(s, t, m) = best;
          choice(s, t, m) = how;
        }
      }
    }
  }

  // ---- emission: block operations on top of the executor
  void release(NodeId v) {
    if (hold_[v] > 0) --hold_[v];
    if (hold_[v] == 0 && ex_->in_memory(v) && !ex_->pinned(v) && ex_->drop(v)) ex_->free(v);
  }

  // Forward of block i. keep_tape: hold every value the backward uses (rotor's F_all); otherwise
  // hold only the boundary (F_ck / F_n).
  bool forward(int i, bool keep_tape) {
    const auto& blk = ch_.fwd[i];
    const NodeId xi = blk.back();
    for (NodeId f : blk) {
      ++hold_[f];
      if (!ex_->ensure(f)) return false;
      for (NodeId u : g_.inputs(f)) {
        if (block_of_[u] != i || last_in_block_[u] != f || u == xi) continue;
        bool tape = false;
        for (NodeId c : g_.consumers(u)) tape = tape || split_.backward[c];
        if (!(keep_tape && tape)) release(u);
      }
      if (last_in_block_[f] < 0 && f != xi) {
        bool tape = false;
        for (NodeId c : g_.consumers(f)) tape = tape || split_.backward[c];
        if (!(keep_tape && tape)) release(f);
      }
    }
    return true;
  }

  bool backward(int i) {
    for (NodeId b : ch_.bwd[i]) {
      if (!ex_->ensure(b)) return false;
    }
    for (NodeId f : ch_.fwd[i]) {
      hold_[f] = 1;
      release(f);
    }
    return true;
  }

  bool emit_range(int s, int t, int m) {
    const int how = choice(s, t, m);
    if (how == -2) return false;
    if (how == -1) {
      if (!forward(s, true)) return false;
      if (s < t && !emit_range(s + 1, t, static_cast<int>(m - slots(ch_.tape[s])))) return false;
      return backward(s);
    }
    const int s2 = how;
    for (int i = s; i < s2; ++i) {
      if (!forward(i, false)) return false;
      if (i > s) release(ch_.fwd[i - 1].back());
    }
    if (!emit_range(s2, t, static_cast<int>(m - slots(ch_.x[s2 - 1])))) return false;
    release(ch_.fwd[s2 - 1].back());
    return emit_range(s, s2 - 1, static_cast<int>(m - out_slots(s2, t)));
  }

  std::optional<Plan> emit(int m) {
    Executor ex(g_, budget_);
    ex_ = &ex;
    hold_.assign(g_.n, 0);
    // rem[u]: needed consumers not computed yet; at zero nothing can need u again (short of
    // recomputing a consumer, which the executor handles by recomputing u too).
    std::vector<int32_t> rem(g_.n, 0);
    std::vector<uint8_t> once(g_.n, 0);
    for (NodeId v : g_.targets) {
      for (NodeId u : g_.inputs(v)) ++rem[u];
    }
    ex.on_compute = [&](NodeId v) {
      if (once[v]) return;
      once[v] = 1;
      for (NodeId u : g_.inputs(v)) --rem[u];
    };
    ex.drop = [&](NodeId u) {
      if (g_.is_output[u]) return false;
      if (rem[u] == 0) return true;
      return !split_.backward[u] && hold_[u] == 0;
    };
    bool ok = emit_range(0, ch_.L - 1, m);
    // Nodes the blocks missed (none in a well-formed training graph) and the outputs.
    for (NodeId v : g_.targets) {
      if (!ok) break;
      if (!once[v]) ok = ex.ensure(v);
    }
    for (NodeId o : g_.outputs) {
      if (!ok) break;
      ok = ex.ensure(o);
    }
    ex_ = nullptr;
    if (!ok) return std::nullopt;
    return ex.make_plan("chain", budget_);
  }

  const Problem& p_;
  const Dag g_;
  const int64_t budget_;
  TrainingSplit split_;
  Chain ch_;
  std::vector<int> block_of_, stage_;
  std::vector<NodeId> last_in_block_;
  int64_t slot_ = 1;
  std::vector<float> opt_;
  std::vector<int16_t> choice_;
  Executor* ex_ = nullptr;
  std::vector<int32_t> hold_;
};

}  // namespace

std::optional<Plan> plan_chain(const Problem& p, int64_t budget, const PlannerOptions&, PlannerInfo* info) {
  ChainPlanner planner(p, budget);
  return planner.run(info);
}

}  // namespace lethe::sched
