#include "nn/containers.h"

namespace lethe::nn {

ModuleList::ModuleList(std::vector<std::shared_ptr<Module>> modules) : ModuleList() {
  for (auto& m : modules) push_back(std::move(m));
}

void ModuleList::push_back(std::shared_ptr<Module> m) {
  LETHE_CHECK(m != nullptr, "ModuleList::push_back: the module is null");
  register_module(std::to_string(modules_.size()), m);
  modules_.push_back(std::move(m));
}

const std::shared_ptr<Module>& ModuleList::operator[](size_t i) const {
  LETHE_CHECK(i < modules_.size(), "ModuleList: index ", i, " is out of range (size ",
              modules_.size(), ")");
  return modules_[i];
}

ModuleDict::ModuleDict(std::vector<std::pair<std::string, std::shared_ptr<Module>>> items)
    : ModuleDict() {
  for (auto& [k, m] : items) insert(k, std::move(m));
}

void ModuleDict::insert(const std::string& key, std::shared_ptr<Module> m) {
  LETHE_CHECK(m != nullptr, "ModuleDict::insert: the module for '", key, "' is null");
  register_module(key, std::move(m));
}

bool ModuleDict::contains(const std::string& key) const {
  for (const auto& [k, _] : named_children())
    if (k == key) return true;
  return false;
}

const std::shared_ptr<Module>& ModuleDict::operator[](const std::string& key) const {
  for (const auto& [k, m] : named_children())
    if (k == key) return m;
  std::string have;
  for (const std::string& k : keys()) have += (have.empty() ? "'" : ", '") + k + "'";
  throw Error(detail::concat("ModuleDict: no module named '", key, "'; the keys are ",
                             have.empty() ? "none" : have));
}

std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : named_children()) out.push_back(k);
  return out;
}

}  // namespace lethe::nn
