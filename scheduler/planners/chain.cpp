// Beaumont, Herrmann, Pallez, Shilova, "Optimal checkpointing for heterogeneous chains" (2019, the
// rotor algorithm): a dynamic program over a chain of stages with different costs and sizes, which
// generalises Griewank's revolve. A training graph becomes a chain by cutting its forward part at
// single-node cuts (articulation points of the forward in id order); each block's backward nodes
// pair with it. Blocks are merged to at most kMaxBlocks and memory is discretised into kSlots, so
// the DP is O(kMaxBlocks^3 * kSlots) whatever the graph size.
//
// Each block has several tape options (Rockmate's idea, here without an ILP): keep the whole tape
// (rotor's F_all), or only its densest 3/4, 1/2, 1/4 or none of it by cost per byte, the rest
// recomputed from the kept values and the block's input during the block's backward, either held
// once recomputed or recomputed at every use. Each option's backward is simulated as the emission
// runs it, which gives its extra cost and its peak; options no other option beats on tape, peak
// and extra cost are kept.
//
// DP (entry: the block input x_{s-1} and the gradient flowing into block t are held by the caller;
// m = free memory in slots, not counting the resident values, the loss, those held values and the
// outputs (parameter gradients) of blocks after t; out_s is what block s's backward adds to the
// outputs, O(a..b) the sum over blocks a..b, gin_s the gradients later blocks passed to block s):
//   opt(s, s, m) = min_k uf_s + ub_s + extra_sk                  if own_sk + out_s <= m
//   opt(s, t, m) = min( min_k uf_s + extra_sk + opt(s+1, t, m - tape_sk) + ub_s,   option k of s
//                         (needs need_sk + out_s + O(s+1..t) <= m)
//                       min_{s<s'<=t} sum_{k=s}^{s'-1} uf_k                     run s..s'-1 without
//                       tape,
//                           + opt(s', t, m - x_{s'-1})                          keep x_{s'-1}
//                           + opt(s, s'-1, m - O(s'..t) - gin_{s'-1}) )
// where need_sk is option k's simulated peak and own_sk the same without the incoming gradient.
// The emitted plan is measured exactly by the executor, and the largest m whose plan fits is found
// by binary search. The executor recomputes anything the model got wrong, so every emitted plan
// is valid.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>

#include "scheduler/plan_builder.h"
#include "scheduler/planners/planners.h"
#include "scheduler/simulator.h"

namespace lethe::sched {
namespace {

constexpr int kMaxBlocks = 64;
constexpr int kSlots = 256;
constexpr float kInf = std::numeric_limits<float>::infinity();

// How much of a block's tape its forward keeps (Rockmate's idea of several options per block, here
// by density): the kept values and the boundary stay until the block's backward, which recomputes
// the rest from them and from the block's input.
struct TapeOption {
  std::vector<NodeId> kept;  // tape values kept (the boundary not included)
  int64_t tape = 0;          // bytes held from the forward to the backward, the boundary included
  int64_t need = 0;          // peak bytes while the block's backward runs (the tape included)
  int64_t need_own = 0;      // the same without the incoming gradients (when the caller holds them)
  double extra = 0.0;        // cost of the recomputations its backward makes
  bool hold = true;          // the backward holds a recomputed tape value until its last use
  bool thrashes = false;     // the simulation recomputed past its step limit: not an option
};

struct Chain {
  int L = 0;
  std::vector<std::vector<NodeId>> fwd, bwd;  // per block, id order
  std::vector<double> uf, ub;
  std::vector<int64_t> x;  // bytes of the boundary (the block's last forward value)
  std::vector<std::vector<NodeId>>
      tape;  // per block: forward values its backward uses, but the boundary
  std::vector<std::vector<TapeOption>> opts;  // per block, Pareto-optimal in (tape, need, extra)
  std::vector<int64_t> out;  // bytes of the outputs (parameter gradients) block i's backward makes
  std::vector<int64_t>
      gin;  // bytes of the gradients later blocks' backward made, held when block i's starts
  int64_t fixed = 0;  // resident values and outputs no block makes (the loss)
};

class ChainPlanner {
 public:
  ChainPlanner(const Problem& p, int64_t budget) : p_(p), g_(p), budget_(budget) {}

  std::optional<Plan> run(PlannerInfo* info) {
    if (auto r = build_checkpoint_plan(g_, all_kept(g_), budget_, "chain"))
      return std::move(r->plan);
    auto refuse = [&](const std::string& why) {
      if (info) info->note = why;
      return std::nullopt;
    };
    if (budget_ < floor_bytes(p_))
      return refuse("the budget is below the floor (resident values + outputs)");
    make_chain();
    if (ch_.L == 0 || split_.loss < 0) {
      return refuse(
          "no forward/backward split: no output is a loss (one the other outputs are computed "
          "from, or "
          "the one the start of the backward does not lead to), so there is no chain of blocks");
    }
    const int64_t avail = budget_ - ch_.fixed;
    if (avail <= 0) return refuse("the resident values and the loss fill the budget");
    // The slots span the free memory; an over-optimistic answer is caught by the executor (then m
    // goes down).
    slot_ = std::max<int64_t>(1, (avail + kSlots - 1) / kSlots);
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
    if (!best && info) {
      // The block whose backward needs the most even with its smallest option bounds what the DP
      // can fit.
      int64_t worst = 0;
      int worst_block = 0;
      for (int i = 0; i < ch_.L; ++i) {
        int64_t least = INT64_MAX;
        for (const TapeOption& o : ch_.opts[i]) least = std::min(least, o.need_own + ch_.out[i]);
        if (least != INT64_MAX && least > worst) worst = least, worst_block = i;
      }
      info->note = !(at(0, ch_.L - 1, kSlots) < kInf)
                       ? "its DP over " + std::to_string(ch_.L) +
                             " blocks (cut at the forward's single-node cuts) finds "
                             "no schedule: block " +
                             std::to_string(worst_block) + "'s backward alone needs " +
                             std::to_string(worst + ch_.fixed) + " bytes with the resident values"
                       : "the schedules its DP found over " + std::to_string(ch_.L) +
                             " blocks exceed the budget when run (the DP's memory model is coarser "
                             "than the plan)";
    }
    return best;
  }

 private:
  int64_t slots(int64_t bytes) const { return (bytes + slot_ - 1) / slot_; }
  // Outputs are in the floor already, so they count 0 here.
  int64_t sz(NodeId v) const { return g_.is_output[v] ? int64_t{0} : g_.bytes[v]; }

  // Block i's option that keeps `kept` (and the boundary) from its forward to its backward. Its
  // backward is simulated as the emission runs it: backward nodes in id order, missing forward
  // values of the block recomputed on demand; a recomputed tape value stays until its last
  // backward use, other recomputed values go right after use. Values from outside the block (the
  // block's input, incoming gradients) are there; the incoming gradients count.
  TapeOption tape_option(int i, const std::vector<NodeId>& kept, bool hold, int64_t fmax) {
    TapeOption o;
    o.kept = kept;
    o.hold = hold;
    for (NodeId v : kept) keep_[v] = 1;
    const NodeId xi = ch_.fwd[i].back();
    std::vector<NodeId> touched;
    int64_t mem = 0, peak = 0, incoming = 0, peak_own = 0;
    auto touch = [&](NodeId v) {
      if (sim_seen_[v]) return;
      sim_seen_[v] = 1;
      touched.push_back(v);
      int32_t r = 0;
      for (NodeId c : g_.consumers(v)) r += g_.needed[c] && split_.backward[c] && stage_[c] <= i;
      sim_rem_[v] = r;
    };
    auto put = [&](NodeId v) {
      touch(v);
      sim_in_[v] = 1;
      mem += sz(v);
      peak = std::max(peak, mem);
      peak_own = std::max(peak_own, mem - incoming);
    };
    auto local = [&](NodeId v) { return split_.backward[v] ? stage_[v] == i : block_of_[v] == i; };
    for (NodeId v : kept) put(v);
    put(xi);
    o.tape = mem;
    for (NodeId b : ch_.bwd[i]) {
      for (NodeId u : g_.inputs(b)) {
        if (!g_.resident[u] && split_.backward[u] && !local(u) && !sim_in_[u]) {
          put(u);
          incoming += sz(u);
        }
      }
    }
    auto offer = [&](NodeId u) {
      // Values from outside the block: the caller holds the forward ones (the block's input); the
      // incoming gradients go after their last use.
      if (!sim_in_[u] || sim_pin_[u] > 0 || (!local(u) && !split_.backward[u])) return;
      const bool drop = sim_rem_[u] == 0 ||
                        (!split_.backward[u] && u != xi && !(on_tape_[u] && (hold || keep_[u])));
      if (drop && !g_.is_output[u]) {
        sim_in_[u] = 0;
        mem -= sz(u);
        if (!local(u)) incoming -= sz(u);
      }
    };
    // Depth is bounded by the block's size. Recomputing without holding can take exponential time
    // on a dense block, so the simulation gives up past a few computes per node.
    int64_t budget = 8 * static_cast<int64_t>(ch_.fwd[i].size() + ch_.bwd[i].size()) + 64;
    std::function<void(NodeId)> ensure = [&](NodeId v) {
      if (g_.resident[v] || sim_in_[v] || !local(v) || o.thrashes) return;
      if (--budget < 0) {
        o.thrashes = true;
        return;
      }
      touch(v);
      for (NodeId u : g_.inputs(v)) {
        ensure(u);
        ++sim_pin_[u];
      }
      put(v);
      if (split_.backward[v]) {
        for (NodeId u : g_.inputs(v)) {
          touch(u);
          --sim_rem_[u];
        }
      } else {
        o.extra += g_.cost[v];
      }
      for (NodeId u : g_.inputs(v)) {
        --sim_pin_[u];
        offer(u);
      }
    };
    for (NodeId b : ch_.bwd[i]) ensure(b);
    for (NodeId v : touched) sim_in_[v] = sim_seen_[v] = 0;
    for (NodeId v : kept) keep_[v] = 0;
    o.need = std::max(peak, o.tape + 2 * fmax);
    o.need_own = std::max(peak_own, o.tape + 2 * fmax);
    return o;
  }
  int64_t out_slots(int s, int t) const {
    int64_t b = 0;
    for (int i = s; i <= t; ++i) b += ch_.out[i];
    return slots(b);
  }
  float& at(int s, int t, int m) {
    return opt_[(static_cast<size_t>(s) * ch_.L + t) * (kSlots + 1) + m];
  }
  int16_t& choice(int s, int t, int m) {
    return choice_[(static_cast<size_t>(s) * ch_.L + t) * (kSlots + 1) + m];
  }

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
    ch_.opts.assign(ch_.L, {});
    ch_.tape.assign(ch_.L, {});
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
    ch_.gin.assign(ch_.L, 0);
    for (NodeId v : g_.targets) {
      if (!split_.backward[v] || g_.is_output[v]) continue;
      int first = stage_[v];
      for (NodeId c : g_.consumers(v)) {
        if (g_.needed[c] && split_.backward[c]) first = std::min(first, stage_[c]);
      }
      for (int i = first; i < stage_[v]; ++i) ch_.gin[i] += g_.bytes[v];
    }
    on_tape_.assign(g_.n, 0);
    for (NodeId f : F) {
      for (NodeId c : g_.consumers(f))
        on_tape_[f] = on_tape_[f] || (g_.needed[c] && split_.backward[c]);
    }
    keep_.assign(g_.n, 0);
    sim_in_.assign(g_.n, 0);
    sim_seen_.assign(g_.n, 0);
    sim_pin_.assign(g_.n, 0);
    sim_rem_.assign(g_.n, 0);
    for (int i = 0; i < ch_.L; ++i) {
      const NodeId xi = ch_.fwd[i].back();
      ch_.x[i] = sz(xi);
      int64_t fmax = 0;
      std::vector<NodeId> tape;
      for (NodeId f : ch_.fwd[i]) {
        ch_.uf[i] += g_.cost[f];
        fmax = std::max(fmax, sz(f));
        if (on_tape_[f] && f != xi) tape.push_back(f);
      }
      for (NodeId b : ch_.bwd[i]) ch_.ub[i] += g_.cost[b];
      // Options: the whole tape, then the densest 3/4, 1/2, 1/4 and none of it (by cost per byte:
      // what is cheap to recompute for the memory it takes goes first), each with the recomputed
      // values held until their last use or recomputed at every use.
      std::vector<NodeId> by_density = tape;
      std::stable_sort(by_density.begin(), by_density.end(), [&](NodeId a, NodeId b) {
        return g_.cost[a] * static_cast<double>(std::max<int64_t>(1, sz(b))) >
               g_.cost[b] * static_cast<double>(std::max<int64_t>(1, sz(a)));
      });
      std::vector<TapeOption> all;
      size_t last = SIZE_MAX;
      for (int q = 4; q >= 0; --q) {
        const size_t k = (by_density.size() * q + 3) / 4;
        if (k == last) continue;
        last = k;
        std::vector<NodeId> kept(by_density.begin(),
                                 by_density.begin() + static_cast<std::ptrdiff_t>(k));
        std::sort(kept.begin(), kept.end());
        for (bool hold : {true, false}) {
          if (!hold && k == tape.size()) continue;
          TapeOption o = tape_option(i, kept, hold, fmax);
          if (!o.thrashes) all.push_back(std::move(o));
        }
      }
      for (size_t a = 0; a < all.size(); ++a) {
        bool dominated = false;
        for (size_t b = 0; b < all.size() && !dominated; ++b) {
          const TapeOption &x = all[a], &y = all[b];
          const bool le = y.tape <= x.tape && y.need <= x.need && y.extra <= x.extra;
          const bool lt = y.tape < x.tape || y.need < x.need || y.extra < x.extra;
          dominated = le && (lt || b < a);
        }
        if (!dominated) ch_.opts[i].push_back(std::move(all[a]));
      }
      ch_.tape[i] = std::move(tape);
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
    choice_.assign(opt_.size(), 0);
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
        // Block s's backward runs after s+1..t's: their outputs are in memory by then. Slot
        // counts that do not depend on m are computed once per range.
        const int64_t made_after = s < t ? outs(s + 1, t) : 0;
        const auto& opts = ch_.opts[s];
        const size_t K = opts.size();
        opt_need_.resize(K);
        opt_tape_.resize(K);
        opt_cost_.resize(K);
        for (size_t k = 0; k < K; ++k) {
          // A range's last block: its incoming gradient is the caller's, outside m.
          opt_need_[k] =
              slots((len > 0 ? opts[k].need : opts[k].need_own) + ch_.out[s]) + made_after;
          opt_tape_[k] = slots(opts[k].tape);
          opt_cost_[k] = static_cast<float>(ch_.uf[s] + ch_.ub[s] + opts[k].extra);
        }
        split_x_.assign(L + 1, 0);
        split_made_.assign(L + 1, 0);
        for (int s2 = s + 1; s2 <= t; ++s2) {
          split_x_[s2] = slots(ch_.x[s2 - 1]);
          // While s..s2-1 run again, s2..t's outputs and the gradient they passed down are held.
          split_made_[s2] = outs(s2, t) + slots(ch_.gin[s2 - 1]);
        }
        for (int m = 0; m <= kSlots; ++m) {
          float best = kInf;
          int16_t how = 0;
          for (size_t k = 0; k < K; ++k) {
            if (opt_need_[k] > m) continue;
            float c = opt_cost_[k];
            if (len > 0) {
              const float rest = at(s + 1, t, static_cast<int>(m - opt_tape_[k]));
              if (!(rest < kInf)) continue;
              c += rest;
            }
            if (c < best) {
              best = c;
              how = static_cast<int16_t>(-1 - static_cast<int>(k));
            }
          }
          for (int s2 = s + 1; s2 <= t; ++s2) {
            const int64_t xs = split_x_[s2], made = split_made_[s2];
            if (xs > m || made > m) continue;
            const float right = at(s2, t, static_cast<int>(m - xs));
            if (!(right < kInf)) continue;
            const float left = at(s, s2 - 1, static_cast<int>(m - made));
            if (!(left < kInf)) continue;
            const float c = static_cast<float>(prefix[s2] - prefix[s]) + right + left;
            if (c < best) {
              best = c;
              how = static_cast<int16_t>(s2);
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

  // Forward of block i. With an option, hold its kept tape values (rotor's F_all when it is the
  // whole tape); without, hold only the boundary (F_ck / F_n).
  bool forward(int i, const TapeOption* o) {
    const auto& blk = ch_.fwd[i];
    const NodeId xi = blk.back();
    if (o) {
      for (NodeId v : o->kept) keep_[v] = 1;
    }
    bool ok = true;
    for (NodeId f : blk) {
      ++hold_[f];
      if (!(ok = ex_->ensure(f))) break;
      for (NodeId u : g_.inputs(f)) {
        if (block_of_[u] != i || last_in_block_[u] != f || u == xi) continue;
        if (!keep_[u]) release(u);
      }
      if (last_in_block_[f] < 0 && f != xi && !keep_[f]) release(f);
    }
    if (o) {
      for (NodeId v : o->kept) keep_[v] = 0;
    }
    return ok;
  }

  // Backward of block i after a forward with option k: if the option holds, the tape values it did
  // not keep are held, once recomputed, until their last backward use.
  bool backward(int i, size_t k) {
    const TapeOption& o = ch_.opts[i][k];
    if (o.hold) {
      for (NodeId v : o.kept) keep_[v] = 1;
      for (NodeId v : ch_.tape[i]) {
        if (!keep_[v]) hold_[v] = 1;
      }
      for (NodeId v : o.kept) keep_[v] = 0;
    }
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
    if (how == 0) return false;
    if (how < 0) {
      const size_t k = static_cast<size_t>(-1 - how);
      const TapeOption& o = ch_.opts[s][k];
      if (!forward(s, &o)) return false;
      if (s < t && !emit_range(s + 1, t, static_cast<int>(m - slots(o.tape)))) return false;
      return backward(s, k);
    }
    const int s2 = how;
    for (int i = s; i < s2; ++i) {
      if (!forward(i, nullptr)) return false;
      if (i > s) release(ch_.fwd[i - 1].back());
    }
    if (!emit_range(s2, t, static_cast<int>(m - slots(ch_.x[s2 - 1])))) return false;
    release(ch_.fwd[s2 - 1].back());
    return emit_range(s, s2 - 1, static_cast<int>(m - out_slots(s2, t) - slots(ch_.gin[s2 - 1])));
  }

  std::optional<Plan> emit(int m) {
    Executor ex(g_, budget_);
    // A plan that recomputes this much is no use (and on a dense block it could take exponential
    // time): 32x the natural schedule's computes and frees.
    ex.max_steps = 64 * static_cast<int64_t>(g_.targets.size()) + 1024;
    ex_ = &ex;
    hold_.assign(g_.n, 0);
    keep_.assign(g_.n, 0);
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
  std::vector<int64_t> opt_need_, opt_tape_, split_x_,
      split_made_;  // solve_dp's per-range slot counts
  std::vector<float> opt_cost_;
  std::vector<int16_t> choice_;
  Executor* ex_ = nullptr;
  std::vector<int32_t> hold_;
  std::vector<uint8_t> keep_, on_tape_;
  // tape_option's simulation state, all zero between calls
  std::vector<uint8_t> sim_in_, sim_seen_;
  std::vector<int32_t> sim_pin_, sim_rem_;
};

}  // namespace

std::optional<Plan> plan_chain(const Problem& p, int64_t budget, const PlannerOptions&,
                               PlannerInfo* info) {
  {
    ChainPlanner planner(p, budget);
    if (std::optional<Plan> plan = planner.run(info)) return plan;
  }
  // As sqrt: parameter gradients larger than their inputs computed last.
  if (std::optional<Reordered> r = late_outputs_last(p)) {
    ChainPlanner planner(r->problem, budget);
    if (std::optional<Plan> plan = planner.run(info)) {
      if (info) info->note += ", large gradients computed last";
      return plan_in_original(std::move(*plan), *r);
    }
  }
  return std::nullopt;
}

}  // namespace lethe::sched
