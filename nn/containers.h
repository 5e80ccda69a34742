// Containers of submodules that, unlike Sequential, have no forward of their own: the owning
// module decides how to call them (torch::nn::ModuleList, ModuleDict). Their modules are registered
// as submodules, so parameters, state dicts and train()/eval() reach them, under PyTorch's names.
//
//   struct Tower : lethe::nn::UnaryModule {
//     Tower() {
//       blocks = register_module("blocks", std::make_shared<lethe::nn::ModuleList>());
//       for (int i = 0; i < 4; ++i) blocks->push_back(std::make_shared<lethe::nn::Linear>(64, 64));
//       heads = register_module("heads", std::make_shared<lethe::nn::ModuleDict>());
//       heads->insert("cls", std::make_shared<lethe::nn::Linear>(64, 10));
//     }
//     lethe::Tensor forward(const lethe::Tensor& x) override {
//       lethe::Tensor h = x;
//       for (size_t i = 0; i < blocks->size(); ++i) h =
//       blocks->get<lethe::nn::Linear>(i)->forward(h).relu(); return
//       heads->get<lethe::nn::Linear>("cls")->forward(h);   // "heads.cls.weight", ...
//     }
//     std::shared_ptr<lethe::nn::ModuleList> blocks;
//     std::shared_ptr<lethe::nn::ModuleDict> heads;
//   };
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/error.h"
#include "nn/module.h"

namespace lethe::nn {

// Modules named "0", "1", ... in order.
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  explicit ModuleList(std::vector<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> m);
  size_t size() const { return modules_.size(); }
  bool empty() const { return modules_.empty(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;
  // Module i as an M; throws naming the index and both types when it is not one.
  template <typename M>
  std::shared_ptr<M> get(size_t i) const {
    std::shared_ptr<M> m = std::dynamic_pointer_cast<M>((*this)[i]);
    LETHE_CHECK(m != nullptr, "ModuleList::get: module ", i, " is a ", (*this)[i]->type_name(),
                ", not the type asked for");
    return m;
  }
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }
  void pretty_print(std::ostream& os) const override { os << "ModuleList"; }

 private:
  std::vector<std::shared_ptr<Module>> modules_;
};

// Modules by name, in insertion order (as PyTorch's ModuleDict); a name is a submodule name (not
// empty, no '.') and is inserted once.
class ModuleDict : public Module {
 public:
  ModuleDict() : Module("ModuleDict") {}
  explicit ModuleDict(std::vector<std::pair<std::string, std::shared_ptr<Module>>> items);
  void insert(const std::string& key, std::shared_ptr<Module> m);
  bool contains(const std::string& key) const;
  // Throws naming the key and the keys there are when it is absent.
  const std::shared_ptr<Module>& operator[](const std::string& key) const;
  template <typename M>
  std::shared_ptr<M> get(const std::string& key) const {
    std::shared_ptr<M> m = std::dynamic_pointer_cast<M>((*this)[key]);
    LETHE_CHECK(m != nullptr, "ModuleDict::get: module '", key, "' is a ",
                (*this)[key]->type_name(), ", not the type asked for");
    return m;
  }
  size_t size() const { return named_children().size(); }
  bool empty() const { return named_children().empty(); }
  std::vector<std::string> keys() const;
  auto begin() const { return named_children().begin(); }
  auto end() const { return named_children().end(); }
  void pretty_print(std::ostream& os) const override { os << "ModuleDict"; }
};

}  // namespace lethe::nn
