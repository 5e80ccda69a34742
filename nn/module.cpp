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
  LETHE_CHECK(
      t.is_materialised(), type_name_, ": parameter '", name,
      "' must be a materialised tensor (create it with lethe::zeros/randn/..., not from ops)");
  if (requires_grad) t.set_requires_grad(true);
  if (t.name().empty()) t.set_name(name);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_name(name, "buffer");
  LETHE_CHECK(t.defined(), type_name_, ": buffer '", name, "' is an undefined tensor");
  LETHE_CHECK(t.is_materialised(), type_name_, ": buffer '", name,
              "' must be a materialised tensor");
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

void Module::collect_state(const std::string& prefix, StateDict& out) const {
  for (const auto& [n, t] : params_) out.insert(prefix + n, t);
  for (const auto& [n, t] : buffers_) out.insert(prefix + n, t);
  for (const auto& [n, c] : children_) c->collect_state(prefix + n + ".", out);
}

StateDict Module::state_dict() const {
  StateDict sd;
  collect_state("", sd);
  return sd;
}

bool Module::ignores_key(const std::string& key) const {
  const size_t dot = key.find('.');
  if (dot == std::string::npos) return ignores_state_key(key);
  const std::string head = key.substr(0, dot);
  for (const auto& [n, c] : children_)
    if (n == head) return c->ignores_key(key.substr(dot + 1));
  return false;
}

std::string LoadStateDictResult::str() const {
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& k : v) s += (s.empty() ? "" : ", ") + k;
    return s;
  };
  std::string s;
  if (!missing_keys.empty()) s += "missing keys: " + join(missing_keys);
  if (!unexpected_keys.empty())
    s += std::string(s.empty() ? "" : "; ") + "unexpected keys: " + join(unexpected_keys);
  return s.empty() ? "all keys matched" : s;
}

LoadStateDictResult Module::load_state_dict(const StateDict& sd, bool strict) {
  const LoadStateDictResult r = check_state_dict(sd, strict);
  for (const auto& [k, t] : state_dict()) {
    const Tensor* src = sd.find(k);
    if (!src || src->impl() == t.impl()) continue;
    const std::vector<unsigned char> bytes = src->to_bytes();
    Tensor dst = t;
    dst.assign_bytes(bytes.data(), bytes.size());
  }
  return r;
}

LoadStateDictResult Module::check_state_dict(const StateDict& sd, bool strict) const {
  const StateDict own = state_dict();
  LoadStateDictResult r;
  for (const auto& [k, t] : own)
    if (!sd.contains(k)) r.missing_keys.push_back(k);
  for (const auto& [k, t] : sd)
    if (!own.contains(k) && !ignores_key(k)) r.unexpected_keys.push_back(k);
  LETHE_CHECK(!strict || r.ok(), type_name_, ".load_state_dict: ", r.str(),
              " (pass strict = false to load the matching keys only)");
  // Check every shape and dtype before copying anything: a failed load leaves the module as it was.
  for (const auto& [k, t] : own) {
    const Tensor* src = sd.find(k);
    if (!src) continue;
    LETHE_CHECK(src->shape() == t.shape(), type_name_, ".load_state_dict: '", k, "' has shape ",
                src->shape(), " in the state dict, the module's is ", t.shape());
    LETHE_CHECK(src->dtype() == t.dtype(), type_name_, ".load_state_dict: '", k, "' is ",
                src->dtype(), " in the state dict, the module's is ", t.dtype());
  }
  return r;
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
