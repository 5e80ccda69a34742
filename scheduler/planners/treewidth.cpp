// `treewidth`: Kumar, Purohit, Svitkina, Vee, Wang, "Efficient Rematerialization for Deep
// Networks", NeurIPS 2019.
//
// 1. Tree decomposition of the plain undirected skeleton (non-resident ancestors of the outputs) by
//    greedy min-fill elimination; its width k is reported in PlannerInfo::treewidth.
// 2. Balanced separator tree (centroid decomposition of the bag forest), each vertex owned by the
//    highest separator whose bag holds it. Depth O(log n). Where the plan of that tree does not fit
//    the budget, a second tree whose separators are the bags of least bytes within 3/4 balance
//    (depth O(log n) still) is tried when its recursion holds less.
// 3. The recursion compute(P, X): targets X inside the subtree of separator P, with every input
// from
//    outside that subtree already in memory. The ancestors A of X owned by P are computed in
//    topological order and held; an input of a ∈ A that lies in a child subtree C is produced by a
//    recursive compute(C, J), J batching every input (and every target) of C that is computable at
//    that point, held until its last consumer in A. Then the remaining targets of each child are
//    computed with A held, and A minus the targets is freed. Memory O(k log n) values (plus the
//    in-degree of the batch), compute O(n log n) on chains.
// 4. Below the recursion's own peak (its memory is O(k log n) values, but with the constant of
//    every ancestor level's separator held), an eviction pass along its schedule: its computes are
//    demanded in order and its frees applied, and at memory pressure the held value with the
//    smallest recompute cost / (bytes x distance to its next use^a) is evicted and recomputed on
//    demand (own cost, or with its evicted ancestry as DTR's neighbourhood; a in {0.5, 1, 2}).
// 5. Budget-driven post-optimisation, to a fixed point: drop computes whose value is never used,
//    move every free right after the value's last use, and keep values instead of recomputing them
//    (best cost/bytes first) whenever the peak over the kept interval stays within the budget.
//    When the natural schedule (id order, free after last use) fits the budget it is returned
//    instead: it computes every needed node once, so nothing is cheaper.
// nullopt when neither the memory-minimising schedule nor the eviction along it fits the budget.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/plan_builder.h"
#include "scheduler/planner.h"
#include "scheduler/planners/planners.h"
#include "scheduler/problem.h"
#include "scheduler/simulator.h"
#include "scheduler/tree_decomposition.h"

namespace lethe::sched {

namespace {

constexpr int64_t kNegInf = std::numeric_limits<int64_t>::min() / 4;

// Peak and cost of a plan under the spec's rules; valid=false on the first broken rule.
struct Eval {
  bool valid = true;
  int64_t peak = 0;
  double cost = 0.0;
};

Eval evaluate(const Problem& p, const std::vector<Step>& steps) {
  Eval e;
  std::vector<char> in(p.nodes.size(), 0);
  int64_t mem = 0;
  for (const Node& n : p.nodes)
    if (n.resident) {
      in[n.id] = 1;
      mem += n.bytes;
    }
  e.peak = mem;
  for (const Step& s : steps) {
    const Node& n = p.nodes[s.node];
    if (s.kind == Step::Kind::compute) {
      if (in[n.id] || n.resident) return {false, e.peak, e.cost};
      for (NodeId w : n.inputs)
        if (!in[w]) return {false, e.peak, e.cost};
      in[n.id] = 1;
      mem += n.bytes;
      e.peak = std::max(e.peak, mem);
      e.cost += n.cost;
    } else {
      if (!in[n.id] || n.resident) return {false, e.peak, e.cost};
      in[n.id] = 0;
      mem -= n.bytes;
    }
  }
  for (NodeId o : p.outputs)
    if (!in[o]) e.valid = false;
  return e;
}

// Range add, range max over step positions.
class MaxSegTree {
 public:
  explicit MaxSegTree(const std::vector<int64_t>& v) : n_(static_cast<int>(v.size())) {
    size_ = 1;
    while (size_ < std::max(n_, 1)) size_ <<= 1;
    mx_.assign(2 * size_, kNegInf);
    lz_.assign(2 * size_, 0);
    for (int i = 0; i < n_; ++i) mx_[size_ + i] = v[i];
    for (int i = size_ - 1; i >= 1; --i) mx_[i] = std::max(mx_[2 * i], mx_[2 * i + 1]);
  }
  void add(int l, int r, int64_t d) { add(1, 0, size_ - 1, l, r, d); }    // inclusive
  int64_t max(int l, int r) const { return max(1, 0, size_ - 1, l, r); }  // inclusive

 private:
  void add(int x, int lo, int hi, int l, int r, int64_t d) {
    if (r < lo || hi < l) return;
    if (l <= lo && hi <= r) {
      mx_[x] += d;
      lz_[x] += d;
      return;
    }
    const int mid = (lo + hi) / 2;
    add(2 * x, lo, mid, l, r, d);
    add(2 * x + 1, mid + 1, hi, l, r, d);
    mx_[x] = std::max(mx_[2 * x], mx_[2 * x + 1]) + lz_[x];
  }
  int64_t max(int x, int lo, int hi, int l, int r) const {
    if (r < lo || hi < l) return kNegInf;
    if (l <= lo && hi <= r) return mx_[x];
    const int mid = (lo + hi) / 2;
    return std::max(max(2 * x, lo, mid, l, r), max(2 * x + 1, mid + 1, hi, l, r)) + lz_[x];
  }
  int n_, size_;
  std::vector<int64_t> mx_, lz_;
};

class Planner {
 public:
  Planner(const Problem& p) : p_(p), n_(p.size()), dag_(p) {
    is_output_.assign(n_, 0);
    for (NodeId o : p.outputs) is_output_[o] = 1;
    resident_bytes_ = 0;
    for (const Node& nd : p.nodes)
      if (nd.resident) resident_bytes_ += nd.bytes;
    // Active: non-resident ancestors of non-resident outputs (nothing else is ever needed).
    active_.assign(n_, 0);
    std::vector<NodeId> stack;
    for (NodeId o : p.outputs)
      if (!p.nodes[o].resident && !active_[o]) {
        active_[o] = 1;
        stack.push_back(o);
      }
    while (!stack.empty()) {
      const NodeId v = stack.back();
      stack.pop_back();
      for (NodeId w : p.nodes[v].inputs)
        if (!p.nodes[w].resident && !active_[w]) {
          active_[w] = 1;
          stack.push_back(w);
        }
    }
    ins_.assign(n_, {});
    for (const Node& nd : p.nodes) {
      if (!active_[nd.id]) continue;
      auto& in = ins_[nd.id];
      for (NodeId w : nd.inputs)
        if (!p.nodes[w].resident) in.push_back(w);
      std::sort(in.begin(), in.end());
      in.erase(std::unique(in.begin(), in.end()), in.end());
    }
  }

  int depth() const { return st_.height(); }

  // `balance` > 0: separators chosen by the bytes they hold, within that balance, rather than the
  // centroids (balanced_separator_tree).
  int decompose(double balance) {
    g_ = undirected_skeleton(p_, active_);
    TreeDecomposition td = min_fill_decomposition(g_.adj);
    std::vector<int64_t> weight;
    if (balance > 0)
      for (NodeId v : g_.node_of) weight.push_back(p_.nodes[v].bytes);
    st_ = balanced_separator_tree(td, g_.size(), weight, std::max(balance, 0.5));
    owner_.assign(n_, -1);
    for (int v = 0; v < g_.size(); ++v) owner_[g_.node_of[v]] = st_.owner[v];
    return std::max(td.width(), 0);
  }

  // The memory-minimising schedule of the recursion.
  std::vector<Step> recursive_schedule() {
    steps_.clear();
    inmem_.assign(n_, 0);
    mark_.assign(n_, 0);
    stamp_ = 0;
    pos_a_.assign(n_, -1);
    last_a_.assign(n_, -1);
    std::vector<NodeId> targets;
    for (NodeId o : p_.outputs)
      if (active_[o]) targets.push_back(o);
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    if (!targets.empty()) compute(st_.root, targets);
    return steps_;
  }

  // Natural schedule of the active nodes: id order, free after last use unless an output.
  std::vector<Step> natural_schedule() const {
    std::vector<int> last_use(n_, -1);
    for (int v = 0; v < n_; ++v)
      if (active_[v])
        for (NodeId w : ins_[v]) last_use[w] = v;
    std::vector<Step> s;
    std::vector<std::vector<NodeId>> frees_after(n_);
    for (int v = 0; v < n_; ++v)
      if (active_[v] && !is_output_[v]) frees_after[std::max(last_use[v], v)].push_back(v);
    for (int v = 0; v < n_; ++v) {
      if (!active_[v]) continue;
      s.push_back(Step::compute(v));
      for (NodeId w : frees_after[v]) s.push_back(Step::free(w));
    }
    return s;
  }

  // Drops computes whose value is never used, then moves every free right after the last use of the
  // value (and frees non-outputs left in memory at the end).
  std::vector<Step> cleanup(const std::vector<Step>& steps) const {
    const int L = static_cast<int>(steps.size());
    std::vector<char> del(L, 0), live(n_, 0);
    std::vector<int> pending_free(n_, -1);
    for (int v = 0; v < n_; ++v) live[v] = is_output_[v];
    for (int i = L - 1; i >= 0; --i) {
      const NodeId v = steps[i].node;
      if (steps[i].kind == Step::Kind::free) {
        live[v] = 0;
        pending_free[v] = i;
      } else {
        if (!live[v]) {
          del[i] = 1;
          if (pending_free[v] >= 0) del[pending_free[v]] = 1;
        } else {
          for (NodeId w : ins_[v]) live[w] = 1;
        }
        pending_free[v] = -1;
        live[v] = 0;
      }
    }
    std::vector<int> last_touch(n_, -1);
    std::vector<char> in(n_, 0);
    std::vector<std::vector<NodeId>> after(L);
    for (int i = 0; i < L; ++i) {
      if (del[i]) continue;
      const NodeId v = steps[i].node;
      if (steps[i].kind == Step::Kind::compute) {
        last_touch[v] = i;
        in[v] = 1;
        for (NodeId w : ins_[v]) last_touch[w] = i;
      } else {
        after[last_touch[v]].push_back(v);
        in[v] = 0;
      }
    }
    for (int v = 0; v < n_; ++v)
      if (in[v] && !is_output_[v]) after[last_touch[v]].push_back(v);
    std::vector<Step> out;
    out.reserve(L);
    for (int i = 0; i < L; ++i) {
      if (del[i] || steps[i].kind == Step::Kind::free) continue;
      out.push_back(steps[i]);
      for (NodeId v : after[i]) out.push_back(Step::free(v));
    }
    return out;
  }

  // Keeps values across a free/recompute pair when the peak over the interval allows, best
  // cost/bytes first. Returns the number of recomputes removed.
  int keep_pass(std::vector<Step>& steps, int64_t budget) const {
    const int L = static_cast<int>(steps.size());
    std::vector<int64_t> mem(L, kNegInf);
    int64_t m = resident_bytes_;
    struct Cand {
      int i, j;
      double ratio;
    };
    std::vector<Cand> cands;
    std::vector<int> last_free(n_, -1);
    for (int i = 0; i < L; ++i) {
      const Node& nd = p_.nodes[steps[i].node];
      if (steps[i].kind == Step::Kind::compute) {
        m += nd.bytes;
        mem[i] = m;
        if (last_free[nd.id] >= 0) {
          const double ratio = nd.bytes > 0 ? nd.cost / static_cast<double>(nd.bytes)
                                            : std::numeric_limits<double>::infinity();
          cands.push_back({last_free[nd.id], i, ratio});
        }
        last_free[nd.id] = -1;
      } else {
        m -= nd.bytes;
        last_free[nd.id] = i;
      }
    }
    std::stable_sort(cands.begin(), cands.end(),
                     [](const Cand& a, const Cand& b) { return a.ratio > b.ratio; });
    MaxSegTree seg(mem);
    std::vector<char> del(L, 0);
    int applied = 0;
    for (const Cand& c : cands) {
      const int64_t bytes = p_.nodes[steps[c.i].node].bytes;
      if (c.j - c.i >= 2 && seg.max(c.i + 1, c.j - 1) + bytes > budget) continue;
      if (c.j - c.i >= 2) seg.add(c.i + 1, c.j - 1, bytes);
      del[c.i] = del[c.j] = 1;
      ++applied;
    }
    if (applied) {
      std::vector<Step> out;
      out.reserve(L);
      for (int i = 0; i < L; ++i)
        if (!del[i]) out.push_back(steps[i]);
      steps.swap(out);
    }
    return applied;
  }

  // The recursion's schedule under a budget below its peak: its computes are demanded in order
  // and its frees applied, and when a compute would pass the budget the executor evicts the held
  // value (not an output, not an input of a pending compute) with the smallest recompute cost /
  // (bytes x (steps to its next use)^alpha), recomputing it on demand later. The recursion decides
  // the order and most of what is held; this pass only drops what is cheap to make again.
  // nullopt when even that cannot fit (nothing left to evict).
  std::optional<std::vector<Step>> evict_along(const std::vector<Step>& steps, int64_t budget,
                                               double alpha, bool ancestry) const {
    const Dag& g = dag_;
    const int L = static_cast<int>(steps.size());
    std::vector<std::vector<int>> uses(n_);
    for (int i = 0; i < L; ++i) {
      if (steps[i].kind != Step::Kind::compute) continue;
      uses[steps[i].node].push_back(i);
      for (NodeId w : g.inputs(steps[i].node)) uses[w].push_back(i);
    }
    std::vector<int> ptr(n_, 0);
    int now = 0;
    auto next_use = [&](NodeId v) {
      const std::vector<int>& u = uses[v];
      int& k = ptr[v];
      while (k < static_cast<int>(u.size()) && u[k] <= now) ++k;
      return k < static_cast<int>(u.size()) ? u[k] : std::numeric_limits<int>::max();
    };
    Executor ex(g, budget);
    ex.max_steps = 32 * static_cast<int64_t>(L) + 1000;
    std::vector<NodeId> pool;
    std::vector<char> in_pool(n_, 0);
    ex.on_compute = [&](NodeId v) {
      if (!in_pool[v] && !g.is_output[v]) {
        in_pool[v] = 1;
        pool.push_back(v);
      }
    };
    // Cost of making t again: its own, plus its ancestors no longer in memory that a recompute
    // would need too (up to kWalk of them): evicting the last value before a stretch already
    // evicted is as dear as the stretch, and long recompute chains pin memory.
    constexpr int kWalk = 24;
    std::vector<uint32_t> seen(n_, 0);
    uint32_t stamp = 0;
    std::vector<NodeId> walk;
    auto recompute_cost = [&](NodeId t) {
      double c = g.cost[t];
      if (!ancestry) return c;
      ++stamp;
      walk.clear();
      walk.push_back(t);
      for (std::size_t i = 0; i < walk.size() && i < kWalk; ++i)
        for (NodeId w : g.inputs(walk[i]))
          if (!g.resident[w] && !ex.in_memory(w) && seen[w] != stamp) {
            seen[w] = stamp;
            c += g.cost[w];
            walk.push_back(w);
          }
      return c;
    };
    ex.make_room = [&](NodeId, int64_t bytes) {
      while (ex.memory() + bytes > budget) {
        int best = -1;
        double best_score = std::numeric_limits<double>::infinity();
        for (int k = 0; k < static_cast<int>(pool.size());) {
          const NodeId t = pool[k];
          if (!ex.in_memory(t)) {  // freed since: leaves the pool
            in_pool[t] = 0;
            pool[k] = pool.back();
            pool.pop_back();
            continue;
          }
          if (!ex.pinned(t) && g.bytes[t] > 0) {
            const int nu = next_use(t);
            const double dist =
                nu == std::numeric_limits<int>::max() ? 1e9 : static_cast<double>(nu - now);
            const double sc =
                recompute_cost(t) / (static_cast<double>(g.bytes[t]) * std::pow(dist, alpha));
            if (sc < best_score) {
              best_score = sc;
              best = k;
            }
          }
          ++k;
        }
        if (best < 0) return false;
        ex.free(pool[best]);
      }
      return true;
    };
    for (now = 0; now < L; ++now) {
      if (steps[now].kind == Step::Kind::compute) {
        if (!ex.ensure(steps[now].node)) return std::nullopt;
      } else {
        ex.free(steps[now].node);
      }
    }
    for (NodeId o : p_.outputs)
      if (!p_.nodes[o].resident && !ex.ensure(o)) return std::nullopt;
    return ex.take_steps();
  }

 private:
  int child_of(NodeId u, int P) const {
    int s = owner_[u];
    while (st_.parent[s] != P) s = st_.parent[s];
    return s;
  }
  bool in_sub(NodeId u, int P) const { return st_.in_subtree(owner_[u], P); }

  void emit_compute(NodeId v) {
    steps_.push_back(Step::compute(v));
    inmem_[v] = 1;
  }
  void emit_free(NodeId v) {
    steps_.push_back(Step::free(v));
    inmem_[v] = 0;
  }

  // Targets X (sorted, none in memory, all in the subtree of P); every input from outside the
  // subtree of an ancestor of X is in memory. On return X is in memory and nothing else new is.
  void compute(int P, const std::vector<NodeId>& X) {
    const uint32_t S = ++stamp_;
    std::vector<NodeId> N;
    std::vector<NodeId> stack;
    for (NodeId x : X)
      if (mark_[x] != S) {
        mark_[x] = S;
        stack.push_back(x);
      }
    while (!stack.empty()) {
      const NodeId u = stack.back();
      stack.pop_back();
      N.push_back(u);
      for (NodeId w : ins_[u])
        if (!inmem_[w] && mark_[w] != S && in_sub(w, P)) {
          mark_[w] = S;
          stack.push_back(w);
        }
    }
    std::sort(N.begin(), N.end());

    std::vector<NodeId> A;
    for (NodeId u : N)
      if (owner_[u] == P) {
        pos_a_[u] = static_cast<int>(A.size());
        A.push_back(u);
      }
    // last_a_[u]: last position in A that u (outside A) depends on inside N.
    for (NodeId u : N) {
      if (owner_[u] == P) continue;
      int la = -1;
      for (NodeId w : ins_[u])
        if (mark_[w] == S) la = std::max(la, owner_[w] == P ? pos_a_[w] : last_a_[w]);
      last_a_[u] = la;
    }

    // Targets among N (X is sorted).
    auto is_target = [&](NodeId u) { return std::binary_search(X.begin(), X.end(), u); };

    // I: nodes of the child subtrees that A reads, or that are targets.
    struct Item {
      NodeId id;
      int child;
      int last_a;
      int last_use;
      bool target;
    };
    std::vector<Item> items;
    std::vector<std::pair<NodeId, int>> use;  // (input node, consumer position)
    for (int j = 0; j < static_cast<int>(A.size()); ++j)
      for (NodeId w : ins_[A[j]])
        if (mark_[w] == S && owner_[w] != P) use.push_back({w, j});
    for (NodeId x : X)
      if (owner_[x] != P) use.push_back({x, -1});
    std::sort(use.begin(), use.end());
    std::vector<NodeId> ids;
    for (std::size_t k = 0; k < use.size(); ++k) {
      if (k == 0 || use[k].first != use[k - 1].first) {
        const NodeId w = use[k].first;
        items.push_back({w, child_of(w, P), last_a_[w], -1, is_target(w)});
        ids.push_back(w);
      }
      items.back().last_use = std::max(items.back().last_use, use[k].second);
    }
    // Items grouped by child (stable in id order inside a group).
    std::vector<int> by_child(items.size());
    for (std::size_t k = 0; k < items.size(); ++k) by_child[k] = static_cast<int>(k);
    std::stable_sort(by_child.begin(), by_child.end(),
                     [&](int a, int b) { return items[a].child < items[b].child; });
    std::vector<int> group_begin(items.size()), group_end(items.size());
    for (std::size_t k = 0; k < by_child.size();) {
      std::size_t e = k;
      while (e < by_child.size() && items[by_child[e]].child == items[by_child[k]].child) ++e;
      for (std::size_t q = k; q < e; ++q) {
        group_begin[by_child[q]] = static_cast<int>(k);
        group_end[by_child[q]] = static_cast<int>(e);
      }
      k = e;
    }
    // Inputs of each A node as item indices.
    std::vector<std::vector<int>> needs(A.size());
    for (int j = 0; j < static_cast<int>(A.size()); ++j)
      for (NodeId w : ins_[A[j]])
        if (mark_[w] == S && owner_[w] != P)
          needs[j].push_back(
              static_cast<int>(std::lower_bound(ids.begin(), ids.end(), w) - ids.begin()));
    std::vector<char> a_target(A.size());
    for (int j = 0; j < static_cast<int>(A.size()); ++j) a_target[j] = is_target(A[j]);

    std::vector<NodeId> J;
    for (int j = 0; j < static_cast<int>(A.size()); ++j) {
      for (int r : needs[j]) {
        if (inmem_[items[r].id]) continue;
        J.clear();
        for (int q = group_begin[r]; q < group_end[r]; ++q) {
          const Item& it = items[by_child[q]];
          if (!inmem_[it.id] && it.last_a < j && (it.last_use >= j || it.target))
            J.push_back(it.id);
        }
        std::sort(J.begin(), J.end());
        compute(items[r].child, J);
      }
      emit_compute(A[j]);
      for (int r : needs[j])
        if (items[r].last_use == j && !items[r].target && inmem_[items[r].id])
          emit_free(items[r].id);
    }
    // Remaining targets, one child at a time, with A held.
    for (std::size_t k = 0; k < by_child.size();) {
      const std::size_t b = k;
      J.clear();
      while (k < by_child.size() && items[by_child[k]].child == items[by_child[b]].child) {
        const Item& it = items[by_child[k]];
        if (it.target && !inmem_[it.id]) J.push_back(it.id);
        ++k;
      }
      if (!J.empty()) {
        std::sort(J.begin(), J.end());
        compute(items[by_child[b]].child, J);
      }
    }
    for (int j = static_cast<int>(A.size()) - 1; j >= 0; --j)
      if (!a_target[j]) emit_free(A[j]);
  }

  const Problem& p_;
  int n_;
  Dag dag_;
  std::vector<char> is_output_, active_;
  std::vector<std::vector<NodeId>> ins_;
  int64_t resident_bytes_ = 0;
  UndirectedGraph g_;
  SeparatorTree st_;
  std::vector<int> owner_;
  // Recursion state.
  std::vector<Step> steps_;
  std::vector<char> inmem_;
  std::vector<uint32_t> mark_;
  uint32_t stamp_ = 0;
  std::vector<int> pos_a_, last_a_;
};

}  // namespace

namespace {

// `below`: when the memory-minimising schedule's peak is not below it, nullopt at once (with
// that peak in `peak`): another tree's recursion already held less.
std::optional<Plan> treewidth_once(const Problem& p, int64_t budget_bytes, double balance,
                                   PlannerInfo* info, int64_t* peak = nullptr,
                                   int64_t below = std::numeric_limits<int64_t>::max()) {
  Planner pl(p);
  const int k = pl.decompose(balance);
  if (info) {
    info->treewidth = k;
    info->depth = pl.depth();
  }

  // The natural schedule computes every needed node once: when it fits nothing is cheaper.
  std::vector<Step> nat = pl.cleanup(pl.natural_schedule());
  const Eval en = evaluate(p, nat);
  std::vector<Step> rec = pl.cleanup(pl.recursive_schedule());
  Eval er = evaluate(p, rec);
  if (!er.valid || !en.valid) {
    if (info) info->note = "internal error: schedule invalid";
    return std::nullopt;
  }
  const int64_t min_peak = std::min(er.peak, en.peak);
  if (peak) *peak = min_peak;
  if (min_peak >= below) return std::nullopt;
  std::string evicted;
  if (min_peak > budget_bytes) {
    // Below the recursion's own peak: the eviction pass along its schedule, the cheapest plan of
    // four scores (two distance weightings of the own cost, two of the evicted ancestry's).
    std::optional<std::vector<Step>> best;
    double best_cost = std::numeric_limits<double>::infinity();
    // The eviction is not monotone in its budget (it can get stuck at a budget above one it
    // fits): lower limits are tried too, whose plans fit the budget, and the keep rounds below give
    // the slack back.
    const int64_t room = budget_bytes - floor_bytes(p);
    for (const auto [alpha, ancestry] :
         {std::pair{1.0, false}, {2.0, false}, {0.5, true}, {1.0, true}}) {
      for (const double down : {0.0, 0.05, 0.1, 0.2, 0.3}) {
        std::optional<std::vector<Step>> s = pl.evict_along(
            rec, budget_bytes - static_cast<int64_t>(down * static_cast<double>(room)), alpha,
            ancestry);
        if (!s) continue;
        *s = pl.cleanup(*s);
        const Eval es = evaluate(p, *s);
        if (es.valid && es.peak <= budget_bytes && es.cost < best_cost) {
          best_cost = es.cost;
          best = std::move(s);
        }
        break;
      }
    }
    if (!best) {
      if (info)
        info->note = "memory-minimising schedule needs " + std::to_string(min_peak) +
                     " bytes (width " + std::to_string(k) + ", separator tree depth " +
                     std::to_string(pl.depth()) + ") and evicting along it found no plan either";
      return std::nullopt;
    }
    rec = std::move(*best);
    evicted = ", evicted along it below its peak " + std::to_string(min_peak);
  }
  std::vector<Step> steps;
  Eval e;
  std::string how;
  if (en.peak <= budget_bytes) {
    steps = std::move(nat);
    e = en;
    how = "natural order fits";
  } else {
    int rounds = 0;
    while (rounds < 64 && pl.keep_pass(rec, budget_bytes) > 0) {
      rec = pl.cleanup(rec);
      ++rounds;
    }
    er = evaluate(p, rec);
    if (!er.valid || er.peak > budget_bytes) {
      if (info) info->note = "internal error: post-optimised schedule invalid";
      return std::nullopt;
    }
    steps = std::move(rec);
    e = er;
    how = "recursive schedule" + evicted + ", " + std::to_string(rounds) + " keep rounds";
  }

  Plan plan;
  plan.graph = p.name;
  plan.planner = "treewidth";
  plan.budget_bytes = budget_bytes;
  plan.steps = std::move(steps);
  plan.predicted_peak_bytes = e.peak;
  plan.predicted_cost = e.cost;
  if (info)
    info->note = (balance > 0 ? "separators by bytes within balance " +
                                    std::to_string(balance).substr(0, 4) + ", "
                              : std::string()) +
                 "width " + std::to_string(k) + ", depth " + std::to_string(pl.depth()) +
                 ", memory-minimising peak " + std::to_string(min_peak) + ", " + how;
  return plan;
}

// The plan of the centroids' separator tree (the paper's), or where it finds none, of the lightest
// bags (by bytes) within 3/4 balance, when that tree's recursion holds less. The recursion holds
// the separators of every level above it, so lighter separators, at a little more depth, lower its
// peak and what the eviction along it reaches (GPT 6x256's smallest budget: 110.6 to 100.7 MiB).
std::optional<Plan> treewidth_best(const Problem& p, int64_t budget_bytes, PlannerInfo* info) {
  int64_t centroid_peak = 0;
  if (std::optional<Plan> plan = treewidth_once(p, budget_bytes, 0.0, info, &centroid_peak))
    return plan;
  PlannerInfo here;
  std::optional<Plan> plan = treewidth_once(p, budget_bytes, 0.75, &here, nullptr, centroid_peak);
  if (plan && info) *info = here;  // else the centroids' note says why
  return plan;
}

}  // namespace

std::optional<Plan> plan_treewidth(const Problem& p, int64_t budget_bytes,
                                   const PlannerOptions& opts, PlannerInfo* info) {
  (void)opts;
  if (std::optional<Plan> plan = treewidth_best(p, budget_bytes, info)) return plan;
  // Parameter gradients larger than their inputs (a CNN's last layers, in PyTorch's exports) held
  // from where the id order makes them: with them made last, the natural order and the recursion
  // hold their inputs instead.
  if (std::optional<Reordered> r = late_outputs_last(p)) {
    PlannerInfo again;
    if (std::optional<Plan> plan = treewidth_best(r->problem, budget_bytes, &again)) {
      if (info) *info = again, info->note += ", large gradients computed last";
      Plan q = plan_in_original(std::move(*plan), *r);
      q.graph = p.name;
      return q;
    }
  }
  return std::nullopt;
}

// For tests and benches: the recursion's schedule (after dropping dead computes and moving frees
// early), without the natural-order fallback or the budget post-optimisation.
std::vector<Step> treewidth_recursive_schedule(const Problem& p, int* width) {
  Planner pl(p);
  const int k = pl.decompose(0.0);
  if (width) *width = k;
  return pl.cleanup(pl.recursive_schedule());
}

}  // namespace lethe::sched
