// The step graph: the tape of one training step. Nodes are appended in execution order as ops are
// recorded; leaves hold values that exist before the step (parameters, optimizer state, the batch).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "framework/op.h"
#include "framework/storage.h"

namespace lethe {

struct TensorImpl;
class SessionState;

struct Node {
  std::shared_ptr<const Op> op;  // null for a leaf
  std::vector<int> inputs;
  TensorMeta meta;
  bool requires_grad = false;
  bool is_gradient = false;          // a parameter's gradient (for the budget breakdown)
  std::shared_ptr<Storage> leaf;     // a leaf's value
  std::weak_ptr<TensorImpl> handle;  // the user's handle, if any is alive
  std::string name;

  bool is_leaf() const { return op == nullptr; }
  // The bytes its value takes as a buffer: aligned, and an empty value still takes one slot. The
  // planning problem, the layout, the executor and the trace all count a value so.
  int64_t buffer_bytes() const {
    return static_cast<int64_t>(align_up(std::max<size_t>(meta.bytes(), 1)));
  }
};

class Graph {
 public:
  std::vector<Node> nodes;
  SessionState* session = nullptr;  // the owner (the session outlives its graphs' use)
  uint64_t step = 0;                // index of the step this graph records
  bool executed = false;            // set once flushed: its pending handles are kept or gone
  bool has_side_effects = false;
  bool has_grad = false;  // some node requires grad
  // Per node: a backward() without retain_graph went through it; another backward through it would
  // add its gradient contributions a second time (autograd/backward.cpp refuses, as PyTorch does).
  std::vector<uint8_t> backward_done;
  // Values computed eagerly (eager mode) or kept by a partial execution; indexed by node.
  std::vector<std::shared_ptr<Storage>> values;
  std::shared_ptr<Storage> node_value(int id) const {
    return static_cast<size_t>(id) < values.size() ? values[static_cast<size_t>(id)] : nullptr;
  }

  // The leaf node holding `storage` (one per storage per graph).
  // (Leaves requiring a gradient and leaves that do not are distinct nodes even when they share a
  // storage, so that a detached view never receives a parameter's gradient.)
  int leaf_for(const std::shared_ptr<Storage>& storage, const TensorMeta& meta,
               const std::shared_ptr<TensorImpl>& impl, bool requires_grad);
  // 64-bit structural hash of ops, attributes, shapes, dtypes and edges (not of leaf values).
  uint64_t structural_hash() const;

 private:
  std::unordered_map<const Storage*, int> leaf_of_[2];  // by requires_grad
};

}  // namespace lethe
