// `dtr` against a plain simulation of DTR's published heuristic (Kirisame et al. 2021): program
// (id) order; before a compute that would pass the budget, evict the value in memory with the least
// h = cost / (bytes x staleness) until it fits; recompute evicted inputs on demand; free a value
// after its last use. `dtr` (h_DTR-eq, evicted neighbourhoods, sampling) must fit wherever this
// plain version fits.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "torch_like.h"

using namespace lethe::sched;

namespace {

bool plain_dtr_fits(const Problem& p, int64_t budget) {
  const int n = p.size();
  std::vector<uint8_t> out(static_cast<size_t>(n), 0), needed(static_cast<size_t>(n), 0),
      in(static_cast<size_t>(n), 0);
  std::vector<std::vector<NodeId>> consumers(static_cast<size_t>(n));
  for (NodeId o : p.outputs) out[static_cast<size_t>(o)] = 1;
  for (const Node& v : p.nodes) {
    for (NodeId u : v.inputs) consumers[static_cast<size_t>(u)].push_back(v.id);
  }
  for (int v = n - 1; v >= 0; --v) {
    bool need = out[static_cast<size_t>(v)];
    for (NodeId c : consumers[static_cast<size_t>(v)])
      need = need || needed[static_cast<size_t>(c)];
    needed[static_cast<size_t>(v)] = need && !p.nodes[static_cast<size_t>(v)].resident;
  }
  int64_t mem = 0, clock = 1, computes = 0;
  for (const Node& v : p.nodes) {
    if (v.resident) in[static_cast<size_t>(v.id)] = 1, mem += v.bytes;
  }
  std::vector<int64_t> last(static_cast<size_t>(n), 0);
  std::vector<int32_t> pinned(static_cast<size_t>(n), 0);
  NodeId done = -1;  // targets up to here are computed
  auto evict_for = [&](int64_t bytes) {
    while (mem + bytes > budget) {
      NodeId best = -1;
      double best_h = 0;
      for (int t = 0; t < n; ++t) {
        const Node& v = p.nodes[static_cast<size_t>(t)];
        if (!in[static_cast<size_t>(t)] || v.resident || pinned[static_cast<size_t>(t)] ||
            out[static_cast<size_t>(t)] || v.bytes == 0)
          continue;
        const double h = v.cost / (static_cast<double>(v.bytes) *
                                   static_cast<double>(clock - last[static_cast<size_t>(t)] + 1));
        if (best < 0 || h < best_h) best = t, best_h = h;
      }
      if (best < 0) return false;
      in[static_cast<size_t>(best)] = 0;
      mem -= p.nodes[static_cast<size_t>(best)].bytes;
    }
    return true;
  };
  std::function<bool(NodeId)> ensure = [&](NodeId v) {
    if (in[static_cast<size_t>(v)]) return true;
    const Node& nd = p.nodes[static_cast<size_t>(v)];
    for (NodeId u : nd.inputs) ++pinned[static_cast<size_t>(u)];
    bool ok = true;
    for (NodeId u : nd.inputs) ok = ok && ensure(u);
    ok = ok && ++computes < 20 * static_cast<int64_t>(n) && evict_for(nd.bytes);
    for (NodeId u : nd.inputs)
      --pinned[static_cast<size_t>(u)], last[static_cast<size_t>(u)] = clock;
    if (!ok) return false;
    in[static_cast<size_t>(v)] = 1;
    mem += nd.bytes;
    last[static_cast<size_t>(v)] = clock++;
    return true;
  };
  auto used_later = [&](NodeId u) {
    for (NodeId c : consumers[static_cast<size_t>(u)]) {
      if (needed[static_cast<size_t>(c)] && c > done) return true;
    }
    return false;
  };
  for (int v = 0; v < n; ++v) {
    if (!needed[static_cast<size_t>(v)]) continue;
    done = v;
    if (!ensure(v)) return false;
    std::vector<NodeId> offer = p.nodes[static_cast<size_t>(v)].inputs;
    offer.push_back(v);
    for (NodeId u : offer) {
      if (in[static_cast<size_t>(u)] && !p.nodes[static_cast<size_t>(u)].resident &&
          !out[static_cast<size_t>(u)] && !used_later(u)) {
        in[static_cast<size_t>(u)] = 0;
        mem -= p.nodes[static_cast<size_t>(u)].bytes;
      }
    }
  }
  return true;
}

}  // namespace

TEST_CASE("dtr fits wherever DTR's published heuristic fits") {
  int checked = 0;
  for (const std::string& family : generator_families()) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      const Problem base = generate(family, 30, seed);
      for (const Problem& p : {base, lethe::sched::test::torch_like(base)}) {
        for (int k = 1; k < 20; ++k) {
          const int64_t b = fraction_budget(0.05 * k, p);
          if (!plain_dtr_fits(p, b)) continue;
          ++checked;
          CHECK_MESSAGE(try_plan(p, b, "dtr"), p.name << " seed " << seed << " at " << 0.05 * k);
        }
      }
    }
  }
  MESSAGE(checked << " budgets the plain heuristic fits");
}
