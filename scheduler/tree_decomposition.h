// Tree decompositions of the undirected skeleton of a planning problem, and the balanced separator
// tree that the `treewidth` planner recurses on (Kumar et al., NeurIPS 2019).
//
//   using namespace lethe::sched;
//   UndirectedGraph g = undirected_skeleton(p, active);       // non-resident nodes that matter
//   TreeDecomposition td = min_fill_decomposition(g.adj);     // td.width() == k
//   SeparatorTree st = balanced_separator_tree(td, g.size());  // depth O(log n), st.owner[v]
//
// Vertices are dense local indices 0..n-1; UndirectedGraph maps them back to node ids.
#pragma once

#include <cstdint>
#include <vector>

#include "scheduler/problem.h"

namespace lethe::sched {

struct UndirectedGraph {
  std::vector<NodeId> node_of;        // local vertex -> problem node id
  std::vector<int> vertex_of;         // problem node id -> local vertex, -1 when left out
  std::vector<std::vector<int>> adj;  // symmetric, no self loops, no duplicates
  int size() const { return static_cast<int>(adj.size()); }
};

// The plain undirected graph of the nodes with active[id] set (edges input -- node between two
// active nodes). Resident nodes should be left out by the caller: they are always in memory, so
// they never need to be separated.
UndirectedGraph undirected_skeleton(const Problem& p, const std::vector<char>& active);

struct TreeDecomposition {
  std::vector<std::vector<int>> bags;  // each bag sorted
  std::vector<int> parent;             // parent bag, -1 for the root of each tree of the forest
  int width() const;                   // max bag size - 1; -1 when there is no bag
};

// Greedy elimination: repeatedly eliminate the vertex whose elimination adds the fewest fill edges
// (ties by smallest degree, then smallest index), its bag being itself plus its neighbours at that
// time. Fill counts are refreshed for the eliminated vertex's neighbours only (the usual cheap
// variant of min-fill); very high degrees fall back to the degree bound so large widths stay fast.
// One bag per vertex; the result is a forest with one tree per connected component.
TreeDecomposition min_fill_decomposition(const std::vector<std::vector<int>>& adj);

// True when `td` is a tree decomposition of `adj`: every vertex in a bag, every edge inside a bag,
// and the bags holding each vertex connected. For tests.
bool is_tree_decomposition(const TreeDecomposition& td, const std::vector<std::vector<int>>& adj);

// The balanced separator tree: the centroid decomposition of the bag forest. The root of each tree
// is a bag whose removal leaves components of at most half its bags; its children are the balanced
// separator trees of those components. A vertex is owned by the highest separator node whose bag
// holds it ("each bag's nodes removed from its subtrees"). Node `root` is a virtual separator with
// no bag and no vertex whose children are the trees of the forest.
struct SeparatorTree {
  int root = 0;
  std::vector<int> bag;     // separator node -> bag index (-1 for the virtual root)
  std::vector<int> parent;  // -1 for the root
  std::vector<int> depth;
  std::vector<std::vector<int>> children;
  std::vector<std::vector<int>> owned;  // vertices owned, sorted
  std::vector<int> owner;               // vertex -> separator node
  std::vector<int> tin, tout;  // Euler intervals: s is in subtree(t) iff tin[t]<=tin[s]<tout[t]
  int height() const;          // max depth
  bool in_subtree(int s, int t) const { return tin[t] <= tin[s] && tin[s] < tout[t]; }
};

//
// With `weight` (per vertex; e.g. its bytes, what the recursion holds while it recurses below the
// separator), each separator is instead the bag of least weight not already owned above it among
// those whose removal leaves components of at most `balance` of the component's bags (balance in
// [1/2, 1); ties by the largest component left): depth O(log n) to the base 1/balance, and lighter
// separators on every root-to-leaf path.
SeparatorTree balanced_separator_tree(const TreeDecomposition& td, int num_vertices,
                                      const std::vector<int64_t>& weight = {},
                                      double balance = 0.5);

// The `treewidth` planner's memory-minimising schedule alone (planners/treewidth.cpp): the
// recursion over the separator tree, dead computes dropped and frees moved early, without the
// natural-order fallback or the budget post-optimisation. For tests and benches.
std::vector<Step> treewidth_recursive_schedule(const Problem& p, int* width = nullptr);

}  // namespace lethe::sched
