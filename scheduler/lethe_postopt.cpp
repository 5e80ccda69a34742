#include "scheduler/lethe_postopt.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace lethe::sched {
namespace {

// Range add, range max over the compute positions of a plan: the memory in use at each compute.
class MaxTree {
 public:
  explicit MaxTree(const std::vector<int64_t>& init) : n_(static_cast<int>(init.size())) {
    size_ = 1;
    while (size_ < std::max(1, n_)) size_ <<= 1;
    mx_.assign(2 * size_, kNeg);
    lz_.assign(2 * size_, 0);
    for (int i = 0; i < n_; ++i) mx_[size_ + i] = init[i];
    for (int i = size_ - 1; i >= 1; --i) mx_[i] = std::max(mx_[2 * i], mx_[2 * i + 1]);
  }
  void add(int l, int r, int64_t d) {
    if (l > r) return;
    add(1, 0, size_ - 1, l, r, d);
  }
  int64_t max(int l, int r) const {
    if (l > r) return kNeg;
    return max(1, 0, size_ - 1, l, r);
  }
  static constexpr int64_t kNeg = std::numeric_limits<int64_t>::min() / 4;

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
    if (r < lo || hi < l) return kNeg;
    if (l <= lo && hi <= r) return mx_[x];
    const int mid = (lo + hi) / 2;
    return std::max(max(2 * x, lo, mid, l, r), max(2 * x + 1, mid + 1, hi, l, r)) + lz_[x];
  }
  int n_, size_;
  std::vector<int64_t> mx_, lz_;
};

}  // namespace

std::optional<Plan> post_optimise(const Dag& g, const Plan& plan, int64_t budget) {
  // An instance is one compute step, named by its position among the compute steps.
  std::vector<NodeId> C;
  for (const Step& s : plan.steps) {
    if (s.kind == Step::Kind::compute) C.push_back(s.node);
  }
  const int m = static_cast<int>(C.size());
  const int n = g.n;
  std::vector<int32_t> latest(n, -1);
  std::vector<int32_t> prev(m, -1);
  std::vector<int32_t> ref_start(m + 1, 0);
  std::vector<int32_t>
      refs;  // per position, the instance each (distinct, non-resident) input comes from
  std::vector<std::vector<int32_t>> uses(m);
  for (int k = 0; k < m; ++k) {
    const NodeId v = C[k];
    if (v < 0 || v >= n || g.resident[v]) return std::nullopt;
    for (NodeId u : g.inputs(v)) {
      if (g.resident[u]) continue;
      const int32_t r = latest[u];
      if (r < 0) return std::nullopt;
      refs.push_back(r);
      uses[r].push_back(k);
    }
    ref_start[k + 1] = static_cast<int32_t>(refs.size());
    prev[k] = latest[v];
    latest[v] = k;
  }
  std::vector<uint8_t> final_(m, 0), alive(m, 1);
  for (NodeId o : g.outputs) {
    if (g.resident[o]) continue;
    if (latest[o] < 0) return std::nullopt;
    final_[latest[o]] = 1;
  }
  std::vector<int32_t> cnt(m), last(m), parent(m);
  for (int k = 0; k < m; ++k) {
    parent[k] = k;
    cnt[k] = static_cast<int32_t>(uses[k].size());
    last[k] = final_[k] ? m - 1 : (uses[k].empty() ? k : uses[k].back());
  }
  auto find = [&](int32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  int64_t res = 0;
  for (int v = 0; v < n; ++v) {
    if (g.resident[v]) res += g.bytes[v];
  }
  std::vector<int64_t> diff(m + 1, 0);
  for (int k = 0; k < m; ++k) {
    diff[k] += g.bytes[C[k]];
    diff[last[k] + 1] -= g.bytes[C[k]];
  }
  std::vector<int64_t> init(m);
  int64_t run = res;
  for (int k = 0; k < m; ++k) init[k] = (run += diff[k]);
  MaxTree mem(init);

  std::vector<int32_t> work;
  auto drop_use = [&](int32_t r, int32_t k) {
    --cnt[r];
    if (final_[r]) return;
    if (cnt[r] == 0) {
      work.push_back(r);
      return;
    }
    if (last[r] != k) return;
    const std::vector<int32_t>& us = uses[r];
    int32_t nl = r;
    for (size_t i = us.size(); i-- > 0;) {
      if (alive[us[i]]) {
        nl = us[i];
        break;
      }
    }
    mem.add(nl + 1, last[r], -g.bytes[C[r]]);
    last[r] = nl;
  };
  auto drop_inputs = [&](int32_t k) {
    for (int32_t i = ref_start[k]; i < ref_start[k + 1]; ++i) drop_use(find(refs[i]), k);
  };
  auto drain = [&] {
    while (!work.empty()) {
      const int32_t k = work.back();
      work.pop_back();
      if (!alive[k]) continue;
      alive[k] = 0;
      mem.add(k, last[k], -g.bytes[C[k]]);
      mem.add(k, k, MaxTree::kNeg);
      drop_inputs(k);
    }
  };
  for (int k = 0; k < m; ++k) {
    if (cnt[k] == 0 && !final_[k]) work.push_back(k);
  }
  drain();

  // Keep instead of recompute: recomputations in order of saved cost per byte kept per step.
  std::vector<int32_t> cand;
  for (int k = 0; k < m; ++k) {
    if (prev[k] >= 0 && alive[k]) cand.push_back(k);
  }
  std::vector<double> score(m, 0.0);
  for (int32_t k : cand) {
    const int32_t gap = std::max<int32_t>(1, k - last[std::max(0, prev[k])]);
    score[k] = g.cost[C[k]] / (static_cast<double>(std::max<int64_t>(1, g.bytes[C[k]])) * gap);
  }
  std::stable_sort(cand.begin(), cand.end(),
                   [&](int32_t a, int32_t b) { return score[a] > score[b]; });
  for (int pass = 0; pass < 3; ++pass) {
    bool changed = false;
    for (int32_t j : cand) {
      if (!alive[j]) continue;
      int32_t i = prev[j];
      while (i >= 0 && !alive[i]) i = prev[i];
      if (i < 0) continue;
      const int64_t b = g.bytes[C[j]];
      if (mem.max(last[i] + 1, j - 1) + b > budget) continue;
      mem.add(last[i] + 1, j - 1, b);
      mem.add(j, j, MaxTree::kNeg);
      alive[j] = 0;
      parent[j] = i;
      last[i] = last[j];
      final_[i] = final_[j];
      cnt[i] += cnt[j];
      uses[i].insert(uses[i].end(), uses[j].begin(), uses[j].end());
      uses[j].clear();
      drop_inputs(j);
      drain();
      changed = true;
    }
    if (!changed) break;
  }

  // Emit: each compute, then the values whose last use it was.
  std::vector<int32_t> end_start(m + 1, 0), ends;
  for (int k = 0; k < m; ++k) {
    if (alive[k] && !final_[k]) ++end_start[last[k] + 1];
  }
  for (int k = 0; k < m; ++k) end_start[k + 1] += end_start[k];
  ends.resize(end_start[m]);
  {
    std::vector<int32_t> fill(end_start.begin(), end_start.end() - 1);
    for (int k = 0; k < m; ++k) {
      if (alive[k] && !final_[k]) ends[fill[last[k]]++] = k;
    }
  }
  Plan out;
  out.graph = plan.graph;
  out.planner = plan.planner;
  out.budget_bytes = budget;
  for (int k = 0; k < m; ++k) {
    if (alive[k]) out.steps.push_back(Step::compute(C[k]));
    for (int32_t i = end_start[k]; i < end_start[k + 1]; ++i)
      out.steps.push_back(Step::free(C[ends[i]]));
  }
  return out;
}

}  // namespace lethe::sched
