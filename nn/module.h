// Modules: named trees of parameters, buffers and submodules, as torch::nn::Module.
//
//   struct Net : lethe::nn::UnaryModule {
//     Net() {
//       fc1 = register_module("fc1", std::make_shared<lethe::nn::Linear>(784, 128));
//       fc2 = register_module("fc2", std::make_shared<lethe::nn::Linear>(128, 10));
//     }
//     lethe::Tensor forward(const lethe::Tensor& x) override { return
//     fc2->forward(fc1->forward(x).relu()); } std::shared_ptr<lethe::nn::Linear> fc1, fc2;
//   };
//   auto net = std::make_shared<Net>();
//   net->named_parameters();   // {"fc1.weight", ...}, in registration order
//
// Parameters are materialised leaf tensors with requires_grad; a Tensor is a handle, so the module
// and every copy of the handle (an optimizer's, the user's) see the same value.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "framework/state_dict.h"
#include "framework/tensor.h"

namespace lethe::nn {

// What load_state_dict() did not match (PyTorch's _IncompatibleKeys).
struct LoadStateDictResult {
  std::vector<std::string> missing_keys;     // the module's, absent from the state dict
  std::vector<std::string> unexpected_keys;  // the state dict's, not the module's
  bool ok() const { return missing_keys.empty() && unexpected_keys.empty(); }
  std::string str() const;  // "missing keys: a, b; unexpected keys: c"
};

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // "Linear", "Sequential", ...
  const std::string& type_name() const { return type_name_; }

  // Registers a materialised tensor as a parameter (requires_grad is set when `requires_grad`).
  // Names are unique within a module and must not contain '.'.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  // Non-trainable state saved with the module (running statistics).
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  std::vector<Tensor> parameters(bool recurse = true) const;
  // "fc1.weight", "fc1.bias", ... depth first, in registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<std::shared_ptr<Module>> children() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  // Total number of parameter elements.
  int64_t num_parameters() const;

  // Parameters and buffers by PyTorch's names and in its order: a module's own parameters, then its
  // own buffers, then each submodule's ("layers.0.weight", "bn.running_mean", ...). The tensors are
  // the module's own (handles, not copies), as torch's state_dict() with keep_vars.
  StateDict state_dict() const;
  // Copies the values of `sd` into the module's parameters and buffers (in place: optimizers and
  // every other handle see them). Shapes and dtypes must match, or it throws naming the key. With
  // `strict`, a missing or unexpected key throws listing them all, before anything is copied;
  // without, they are returned and the matching keys are loaded.
  LoadStateDictResult load_state_dict(const StateDict& sd, bool strict = true);
  // The checks of load_state_dict() alone: throws as it would, copies nothing.
  LoadStateDictResult check_state_dict(const StateDict& sd, bool strict = true) const;
  // Keys of PyTorch's modules that this module accepts on load and has no use for
  // (BatchNorm2d: num_batches_tracked, which only momentum=None uses). Names are the module's own.
  virtual bool ignores_state_key(const std::string& /*name*/) const { return false; }

  // Training mode switch, applied to every submodule.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's gradient.
  void zero_grad();

  // A tree of the module, one line per module: "Linear(in_features=784, out_features=256,
  // bias=true)".
  virtual void pretty_print(std::ostream& os) const { os << type_name_; }
  void print_tree(std::ostream& os, int indent = 0) const;

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> m);

 private:
  void collect_params(const std::string& prefix, bool recurse,
                      std::vector<std::pair<std::string, Tensor>>& out, bool buffers) const;
  void collect_state(const std::string& prefix, StateDict& out) const;
  bool ignores_key(const std::string& key) const;  // a dotted key, ignored by its module
  void check_name(const std::string& name, const char* what) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

std::ostream& operator<<(std::ostream& os, const Module& m);

// A module mapping one tensor to one tensor; what Sequential holds.
class UnaryModule : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace lethe::nn
