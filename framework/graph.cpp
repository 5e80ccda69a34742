#include "framework/graph.h"

#include <functional>

namespace lethe {

int Graph::leaf_for(const std::shared_ptr<Storage>& storage, const TensorMeta& meta,
                    const std::shared_ptr<TensorImpl>& impl, bool requires_grad) {
  auto& index = leaf_of_[requires_grad ? 1 : 0];
  auto it = index.find(storage.get());
  if (it != index.end()) {
    Node& n = nodes[static_cast<size_t>(it->second)];
    if (n.meta == meta) {
      if (n.handle.expired()) n.handle = impl;
      return it->second;
    }
  }
  Node n;
  n.meta = meta;
  n.leaf = storage;
  n.handle = impl;
  n.requires_grad = requires_grad;
  nodes.push_back(std::move(n));
  int id = static_cast<int>(nodes.size()) - 1;
  index[storage.get()] = id;
  return id;
}

namespace {
inline void mix(uint64_t& h, uint64_t v) {
  // FNV-1a over 64-bit words, then a final avalanche: cheap and order-sensitive.
  h ^= v;
  h *= 0x100000001b3ull;
}
inline void mix_str(uint64_t& h, const std::string& s) {
  mix(h, std::hash<std::string>{}(s));
  mix(h, s.size());
}
}  // namespace

uint64_t Graph::structural_hash() const {
  uint64_t h = 0xcbf29ce484222325ull;
  mix(h, nodes.size());
  for (const Node& n : nodes) {
    mix_str(h, n.op ? n.op->name() : std::string("leaf"));
    // Attributes of side-effect nodes (learning rate, step count) change every step without
    // changing what the step computes or keeps: leaving them out lets a training loop plan once.
    if (n.op && n.op->mutated_inputs().empty()) mix_str(h, n.op->attrs());
    mix(h, static_cast<uint64_t>(n.meta.dtype));
    mix(h, static_cast<uint64_t>(n.meta.device.kind) * 131 +
               static_cast<uint64_t>(n.meta.device.index));
    mix(h, static_cast<uint64_t>(n.meta.shape.ndim()));
    for (int64_t d : n.meta.shape.dims()) mix(h, static_cast<uint64_t>(d));
    mix(h, n.inputs.size());
    for (int i : n.inputs) mix(h, static_cast<uint64_t>(i));
    mix(h, n.requires_grad ? 1 : 2);
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace lethe
