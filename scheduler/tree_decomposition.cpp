#include "scheduler/tree_decomposition.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <queue>
#include <tuple>

namespace lethe::sched {

UndirectedGraph undirected_skeleton(const Problem& p, const std::vector<char>& active) {
  UndirectedGraph g;
  g.vertex_of.assign(p.nodes.size(), -1);
  for (const Node& n : p.nodes) {
    if (active[n.id]) {
      g.vertex_of[n.id] = static_cast<int>(g.node_of.size());
      g.node_of.push_back(n.id);
    }
  }
  g.adj.assign(g.node_of.size(), {});
  for (const Node& n : p.nodes) {
    const int v = g.vertex_of[n.id];
    if (v < 0) continue;
    for (NodeId in : n.inputs) {
      const int u = g.vertex_of[in];
      if (u < 0 || u == v) continue;
      g.adj[v].push_back(u);
      g.adj[u].push_back(v);
    }
  }
  for (auto& a : g.adj) {
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
  }
  return g;
}

int TreeDecomposition::width() const {
  int w = -1;
  for (const auto& b : bags) w = std::max(w, static_cast<int>(b.size()) - 1);
  return w;
}

namespace {

// Fill counts cost O(sum of neighbour degrees); past this degree the degree bound is used instead.
constexpr int kExactFillMaxDegree = 48;

}  // namespace

TreeDecomposition min_fill_decomposition(const std::vector<std::vector<int>>& adj_in) {
  const int n = static_cast<int>(adj_in.size());
  std::vector<std::vector<int>> adj = adj_in;
  std::vector<char> gone(n, 0);
  std::vector<uint32_t> stamp(n, 0);
  uint32_t cur = 0;

  auto fill_of = [&](int v) -> int64_t {
    const auto& nb = adj[v];
    const int64_t d = static_cast<int64_t>(nb.size());
    if (d > kExactFillMaxDegree) return d * (d - 1) / 2;
    int64_t missing = 0;
    for (std::size_t i = 0; i < nb.size(); ++i) {
      ++cur;
      for (int w : adj[nb[i]]) stamp[w] = cur;
      for (std::size_t j = i + 1; j < nb.size(); ++j)
        if (stamp[nb[j]] != cur) ++missing;
    }
    return missing;
  };

  using Key = std::tuple<int64_t, int64_t, int>;  // fill, degree, vertex
  std::priority_queue<Key, std::vector<Key>, std::greater<Key>> pq;
  std::vector<Key> key(n);
  for (int v = 0; v < n; ++v) {
    key[v] = {fill_of(v), static_cast<int64_t>(adj[v].size()), v};
    pq.push(key[v]);
  }

  TreeDecomposition td;
  td.bags.resize(n);
  td.parent.assign(n, -1);
  std::vector<int> rank(n, -1);
  int next_rank = 0;
  while (!pq.empty()) {
    const Key k = pq.top();
    pq.pop();
    const int v = std::get<2>(k);
    if (gone[v] || k != key[v]) continue;
    gone[v] = 1;
    rank[v] = next_rank++;
    std::vector<int> nb = adj[v];
    td.bags[v] = nb;
    td.bags[v].push_back(v);
    std::sort(td.bags[v].begin(), td.bags[v].end());
    // Turn the neighbourhood into a clique and drop v.
    for (int a : nb) {
      auto& la = adj[a];
      la.erase(std::find(la.begin(), la.end(), v));
    }
    for (std::size_t i = 0; i < nb.size(); ++i) {
      const int a = nb[i];
      ++cur;
      for (int w : adj[a]) stamp[w] = cur;
      for (std::size_t j = i + 1; j < nb.size(); ++j) {
        const int b = nb[j];
        if (stamp[b] != cur) {
          adj[a].push_back(b);
          adj[b].push_back(a);
        }
      }
    }
    for (int a : nb) {
      key[a] = {fill_of(a), static_cast<int64_t>(adj[a].size()), a};
      pq.push(key[a]);
    }
  }
  // Parent of v's bag: the bag of the neighbour eliminated first after v.
  for (int v = 0; v < n; ++v) {
    int best = -1;
    for (int u : td.bags[v])
      if (u != v && (best < 0 || rank[u] < rank[best])) best = u;
    td.parent[v] = best;
  }
  return td;
}

bool is_tree_decomposition(const TreeDecomposition& td, const std::vector<std::vector<int>>& adj) {
  const int n = static_cast<int>(adj.size());
  const int nb = static_cast<int>(td.bags.size());
  if (static_cast<int>(td.parent.size()) != nb) return false;
  std::vector<std::vector<int>> holds(n);
  for (int b = 0; b < nb; ++b)
    for (int v : td.bags[b]) {
      if (v < 0 || v >= n) return false;
      holds[v].push_back(b);
    }
  for (int v = 0; v < n; ++v) {
    if (holds[v].empty()) return false;
    // Connected: exactly one bag of v has its parent outside v's bags.
    int tops = 0;
    for (int b : holds[v]) {
      const int pb = td.parent[b];
      if (pb < 0 || !std::binary_search(td.bags[pb].begin(), td.bags[pb].end(), v)) ++tops;
    }
    if (tops != 1) return false;
    for (int u : adj[v]) {
      bool together = false;
      for (int b : holds[v])
        if (std::binary_search(td.bags[b].begin(), td.bags[b].end(), u)) together = true;
      if (!together) return false;
    }
  }
  return true;
}

int SeparatorTree::height() const {
  int h = 0;
  for (int d : depth) h = std::max(h, d);
  return h;
}

SeparatorTree balanced_separator_tree(const TreeDecomposition& td, int num_vertices,
                                      const std::vector<int64_t>& weight, double balance) {
  const int nb = static_cast<int>(td.bags.size());
  std::vector<std::vector<int>> tadj(nb);
  for (int b = 0; b < nb; ++b)
    if (td.parent[b] >= 0) {
      tadj[b].push_back(td.parent[b]);
      tadj[td.parent[b]].push_back(b);
    }

  SeparatorTree st;
  st.root = 0;
  st.bag.push_back(-1);
  st.parent.push_back(-1);
  st.depth.push_back(0);
  st.children.emplace_back();

  std::vector<char> removed(nb, 0);
  std::vector<int> size(nb, 0), par(nb, -1), order;
  order.reserve(nb);
  // Work list of (a bag in a component not yet split, separator node to hang the component under).
  std::vector<std::pair<int, int>> work;
  std::vector<char> seen(nb, 0);
  // Weighted: vertices in the bag of a separator chosen already (every such separator is an
  // ancestor of the one being chosen, or its bag holds no vertex of this component).
  std::vector<char> claimed(weight.empty() ? 0 : num_vertices, 0);
  for (int b = 0; b < nb; ++b)
    if (td.parent[b] < 0) work.push_back({b, st.root});

  while (!work.empty()) {
    auto [start, hang] = work.back();
    work.pop_back();
    // Sizes of the component containing `start`, iteratively.
    order.clear();
    order.push_back(start);
    par[start] = -1;
    for (std::size_t i = 0; i < order.size(); ++i) {
      const int b = order[i];
      for (int c : tadj[b])
        if (!removed[c] && c != par[b]) {
          par[c] = b;
          order.push_back(c);
        }
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      size[*it] = 1;
      for (int c : tadj[*it])
        if (!removed[c] && c != par[*it]) size[*it] += size[c];
    }
    const int total = static_cast<int>(order.size());
    // Walk from the start towards the heavy child until no side exceeds half.
    int c = start;
    for (;;) {
      int heavy = -1;
      for (int d : tadj[c])
        if (!removed[d] && d != par[c] && size[d] * 2 > total) heavy = d;
      if (heavy < 0) break;
      c = heavy;
    }
    if (!weight.empty()) {
      // The lightest bag (by the weight of the vertices it would own) whose largest remaining
      // component is within the balance; the centroid is one of them.
      const int limit = std::max(total / 2, static_cast<int>(balance * total));
      auto largest_left = [&](int b) {
        int m = total - size[b];  // the side of its parent
        for (int d : tadj[b])
          if (!removed[d] && d != par[b]) m = std::max(m, size[d]);
        return m;
      };
      auto owned_weight = [&](int b) {
        int64_t w = 0;
        for (int v : td.bags[b])
          if (!claimed[v]) w += weight[v];
        return w;
      };
      int64_t best_w = owned_weight(c);
      int best_left = largest_left(c);
      for (int b : order) {
        const int left = largest_left(b);
        if (left > limit) continue;
        const int64_t w = owned_weight(b);
        if (w < best_w || (w == best_w && left < best_left)) {
          best_w = w;
          best_left = left;
          c = b;
        }
      }
      for (int v : td.bags[c]) claimed[v] = 1;
    }
    removed[c] = 1;
    const int s = static_cast<int>(st.bag.size());
    st.bag.push_back(c);
    st.parent.push_back(hang);
    st.depth.push_back(st.depth[hang] + 1);
    st.children.emplace_back();
    st.children[hang].push_back(s);
    for (int d : tadj[c])
      if (!removed[d]) work.push_back({d, s});
  }

  // Ownership: the shallowest separator whose bag holds the vertex (BFS order = by depth).
  const int ns = static_cast<int>(st.bag.size());
  st.owned.assign(ns, {});
  st.owner.assign(num_vertices, -1);
  std::vector<int> bfs{st.root};
  for (std::size_t i = 0; i < bfs.size(); ++i) {
    const int s = bfs[i];
    if (st.bag[s] >= 0)
      for (int v : td.bags[st.bag[s]])
        if (st.owner[v] < 0) {
          st.owner[v] = s;
          st.owned[s].push_back(v);
        }
    for (int c : st.children[s]) bfs.push_back(c);
  }
  for (auto& o : st.owned) std::sort(o.begin(), o.end());

  // Euler intervals, iteratively.
  st.tin.assign(ns, 0);
  st.tout.assign(ns, 0);
  int timer = 0;
  std::vector<std::pair<int, std::size_t>> stack{{st.root, 0}};
  st.tin[st.root] = timer++;
  while (!stack.empty()) {
    auto& [s, i] = stack.back();
    if (i < st.children[s].size()) {
      const int c = st.children[s][i++];
      st.tin[c] = timer++;
      stack.push_back({c, 0});
    } else {
      st.tout[s] = timer;
      stack.pop_back();
    }
  }
  return st;
}

}  // namespace lethe::sched
