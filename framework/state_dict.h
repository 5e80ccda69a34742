// A state dict: named tensors in a fixed order, as PyTorch's OrderedDict of tensors. Modules,
// optimizers and checkpoints read and write them (nn/module.h, optim/optimizer.h, serialize/).
//
//   lethe::StateDict sd = model->state_dict();          // "layers.0.weight", "layers.0.bias", ...
//   lethe::save("model.safetensors", sd);
//   model->load_state_dict(lethe::load("model.safetensors").tensors);
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "framework/error.h"
#include "framework/tensor.h"

namespace lethe {

class StateDict {
 public:
  using Item = std::pair<std::string, Tensor>;

  // Appends `name` (names are unique: a second insert of one throws).
  void insert(const std::string& name, Tensor t) {
    LETHE_CHECK(!name.empty(), "StateDict: an entry needs a non-empty name");
    LETHE_CHECK(find(name) == nullptr, "StateDict: '", name, "' is already present");
    LETHE_CHECK(t.defined(), "StateDict: '", name, "' is an undefined tensor");
    items_.emplace_back(name, std::move(t));
  }
  // The tensor of `name`, or null.
  const Tensor* find(const std::string& name) const {
    for (const auto& [n, t] : items_)
      if (n == name) return &t;
    return nullptr;
  }
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  const Tensor& at(const std::string& name) const {
    const Tensor* t = find(name);
    LETHE_CHECK(t != nullptr, "StateDict: no entry '", name, "'");
    return *t;
  }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& [n, t] : items_) k.push_back(n);
    return k;
  }
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }

  // The entries whose names start with `prefix`, with the prefix removed ("model." -> the model's).
  StateDict with_prefix_removed(const std::string& prefix) const {
    StateDict out;
    for (const auto& [n, t] : items_)
      if (n.size() > prefix.size() && n.compare(0, prefix.size(), prefix) == 0)
        out.items_.emplace_back(n.substr(prefix.size()), t);
    return out;
  }
  // Every entry of `other` under `prefix` + its name, appended.
  void insert_all(const StateDict& other, const std::string& prefix = "") {
    for (const auto& [n, t] : other) insert(prefix + n, t);
  }

 private:
  std::vector<Item> items_;
};

}  // namespace lethe
