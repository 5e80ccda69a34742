// Training graphs in the shape PyTorch's joint (AOTAutograd) graphs have, made from the generated
// ones, for the tests of the forward/backward split and of the baselines that rely on it:
// - the gradient seed is a resident tangent: the first gradient op reads the tangent and the loss's
//   own inputs, not the loss, so the loss is an output nobody reads;
// - some gradient ops read a helper computed from forward values alone, placed in the backward
//   (PyTorch's formulas recompute sigmoid(x), 1 - tanh(x)^2 and the like there).
//
//   Problem p = torch_like(generate("unet", 12, 7));
#pragma once

#include <stdexcept>
#include <vector>

#include "scheduler/problem.h"

namespace lethe::sched::test {

// `p` must have an output that some node reads (the generators' loss, read by its gradient).
// Every `helper_every`-th gradient op that reads a computed forward value gets a helper (0: none).
inline Problem torch_like(const Problem& p, int helper_every = 2) {
  std::vector<uint8_t> is_out(static_cast<size_t>(p.size()), 0),
      read(static_cast<size_t>(p.size()), 0);
  for (NodeId o : p.outputs) is_out[static_cast<size_t>(o)] = 1;
  for (const Node& v : p.nodes) {
    for (NodeId u : v.inputs) read[static_cast<size_t>(u)] = 1;
  }
  NodeId loss = -1;
  for (NodeId o : p.outputs) {
    if (read[static_cast<size_t>(o)] && !p.nodes[static_cast<size_t>(o)].resident) loss = o;
  }
  if (loss < 0) throw std::invalid_argument("torch_like: no output is read, nothing to rewrite");

  Problem q;
  q.name = p.name + "-torch";
  std::vector<NodeId> map(static_cast<size_t>(p.size()), -1);
  auto add = [&](Node v) {
    v.id = static_cast<NodeId>(q.nodes.size());
    q.nodes.push_back(std::move(v));
    return q.nodes.back().id;
  };
  Node tangent;
  tangent.name = "tangents_1";
  tangent.op = "tangent";
  tangent.bytes = 4;
  tangent.resident = true;
  const NodeId t = add(tangent);
  int grads = 0;
  for (const Node& v : p.nodes) {
    Node w = v;
    w.inputs.clear();
    bool reads_loss = false;
    std::vector<NodeId> fwd;  // computed forward values it reads (ids in q)
    for (NodeId u : v.inputs) {
      if (u == loss) {
        reads_loss = true;
        continue;
      }
      w.inputs.push_back(map[static_cast<size_t>(u)]);
      if (v.id > loss && u < loss && !p.nodes[static_cast<size_t>(u)].resident)
        fwd.push_back(map[static_cast<size_t>(u)]);
    }
    if (reads_loss) {
      w.inputs.push_back(t);
      for (NodeId u : p.nodes[static_cast<size_t>(loss)].inputs)
        w.inputs.push_back(map[static_cast<size_t>(u)]);
    }
    if (v.id > loss && !fwd.empty() && helper_every > 0 && grads++ % helper_every == 0) {
      Node h;
      h.name = "helper_" + v.name;
      h.op = "helper";
      h.bytes = q.nodes[static_cast<size_t>(fwd.front())].bytes;
      h.cost = v.cost / 4;
      h.inputs = fwd;
      w.inputs.push_back(add(std::move(h)));
    }
    map[static_cast<size_t>(v.id)] = add(std::move(w));
  }
  for (NodeId o : p.outputs) q.outputs.push_back(map[static_cast<size_t>(o)]);
  return q;
}

}  // namespace lethe::sched::test
