#include "nn/module.h"

#include "framework/error.h"

namespace lethe::nn {

void Module::check_name(const std::string& name, const char* what) const {
  LETHE_CHECK(!name.empty(), type_name_, ": a ", what, " name must not be empty");
  LETHE_CHECK(name.find('.') == std::string::npos, type_name_, ": ", what, " name '", name,
              "' must not contain '.' (dots separate submodule names)");
  auto taken = [&](const auto& v) {
    for (const auto& [n, _] : v)
      if (n == name) return true;
    return false;
  };
  LETHE_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), type_name_, ": the name '",
              name, "' is already registered in this module");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_name(name, "parameter");
  LETHE_CHECK(t.defined(), type_name_, ": parameter '", name, "' is an undefined tensor");
  LETHE_CHECK(t.is_materialised(), type_name_, ": parameter '", name,
              "' must be a materialised tensor (create it with lethe::zeros/randn/..., not from ops)");
  if (requires_grad) t.set_requires_grad(true);
  if (t.name().empty()) t.set_name(name);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_name(name, "buffer");
  LETHE_CHECK(t.defined(), type_name_, ": buffer '", name, "' is an undefined tensor");
  LETHE_CHECK(t.is_materialised(), type_name_, ": buffer '", name, "' must be a materialised tensor");
  if (t.name().empty()) t.set_name(name);
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_name(name, "submodule");
  LETHE_CHECK(m != nullptr, type_name_, ": submodule '", name, "' is null");
  LETHE_CHECK(m.get() != this, type_name_, ": a module cannot be its own submodule");
  children_.emplace_back(name, std::move(m));
}

void Module::collect_params(const std::string& prefix, bool recurse,
                            std::vector<std::pair<std::string, Tensor>>& out, bool buffers) const {
  for (const auto& [n, t] : buffers ? buffers_ : params_) out.emplace_back(prefix + n, t);
  if (!recurse) return;
  for (const auto& [n, c] : children_) c->collect_params(prefix + n + ".", true, out, buffers);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect_params("", recurse, out, false);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect_params("", recurse, out, true);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [_, c] : children_) out.push_back(c);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

void Module::print_tree(std::ostream& os, int indent) const {
  pretty_print(os);
  if (children_.empty()) return;
  os << "(\n";
  for (const auto& [n, c] : children_) {
    os << std::string(static_cast<size_t>(indent + 2), ' ') << "(" << n << "): ";
    c->print_tree(os, indent + 2);
    os << "\n";
  }
  os << std::string(static_cast<size_t>(indent), ' ') << ")";
}

std::ostream& operator<<(std::ostream& os, const Module& m) {
  m.print_tree(os);
  return os;
}

}  // namespace lethe::nn
