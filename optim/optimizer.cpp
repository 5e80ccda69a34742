#include "optim/optimizer.h"

#include <cstdio>
#include <cstdlib>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "framework/error.h"
#include "framework/session.h"

namespace lethe::optim {

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay,
                     const char* name)
    : groups_(std::move(groups)), name_(name) {
  LETHE_CHECK(lr >= 0, name, ": learning rate must be >= 0, got ", lr);
  LETHE_CHECK(weight_decay >= 0, name, ": weight_decay must be >= 0, got ", weight_decay);
  std::unordered_set<const TensorImpl*> seen;
  size_t total = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& g = groups_[gi];
    if (!g.lr) g.lr = lr;
    if (!g.weight_decay) g.weight_decay = weight_decay;
    LETHE_CHECK(*g.lr >= 0 && *g.weight_decay >= 0, name, ": group ", gi,
                " has a negative learning rate or weight decay");
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i];
      LETHE_CHECK(p.defined(), name, ": parameter ", i, " of group ", gi, " is undefined");
      LETHE_CHECK(p.is_materialised() && p.requires_grad(), name, ": parameter ", i, " of group ",
                  gi, p.name().empty() ? "" : " ('" + p.name() + "')",
                  " must be a materialised tensor with requires_grad (a module parameter)");
      LETHE_CHECK(is_floating(p.dtype()), name, ": parameter ", i, " is ", p.dtype(),
                  "; expected f32 or f64");
      LETHE_CHECK(seen.insert(p.impl().get()).second, name, ": parameter ", i, " of group ", gi,
                  " appears more than once");
      ++total;
    }
  }
  LETHE_CHECK(total > 0, name, ": got an empty parameter list");
}

void Optimizer::step() {
  ++step_count_;
  for (const auto& g : groups_)
    for (const Tensor& p : g.params) {
      if (!p.has_grad()) continue;
      Tensor grad = p.grad();
      LETHE_CHECK(grad.shape() == p.shape() && grad.dtype() == p.dtype(), name_,
                  ": the gradient of a parameter is ", grad.meta().str(), ", the parameter ",
                  p.meta().str());
      update(p, grad, g);
    }
  // The updates consumed the gradients; dropping the handles lets the step free them at once
  // instead of keeping every gradient alive past the step.
  zero_grad();
  // The parameters' session (which need not be the current one) runs the step.
  groups_.front().params.front().impl()->session->flush();
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  LETHE_CHECK(lr >= 0, name_, ": learning rate must be >= 0, got ", lr);
  for (auto& g : groups_) g.lr = lr;
}

double Optimizer::lr(size_t group) const {
  return *groups_.at(group).lr;
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (const auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

}  // namespace lethe::optim

namespace lethe::optim {
namespace {

std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);  // round-trips: a resumed run uses the same bits
  return buf;
}

}  // namespace

Tensor Optimizer::state_tensor_like(const Tensor& param, const Tensor& src) {
  const std::vector<unsigned char> bytes = src.to_bytes();
  Tensor t = tensor_from_bytes(param.impl()->session, param.shape(), param.dtype(), bytes.data(),
                               bytes.size());
  t.impl()->storage->role = StorageRole::optimizer_state;
  return t;
}

void Optimizer::check_state_tensor(const Tensor& param, const Tensor& src,
                                   const std::string& key) const {
  LETHE_CHECK(src.shape() == param.shape() && src.dtype() == param.dtype(), name_,
              ".load_state_dict: '", key, "' is ", src.meta().str(), ", its parameter ",
              param.meta().str());
}

int64_t Optimizer::parse_step_field(const std::string& key, const std::string& value) const {
  char* end = nullptr;
  const long long n = std::strtoll(value.c_str(), &end, 10);
  LETHE_CHECK(end && *end == '\0' && !value.empty() && n >= 0, name_, ".load_state_dict: '", key,
              "' is not a step count: '", value, "'");
  return n;
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState s;
  s.fields["type"] = name_;
  s.fields["step_count"] = std::to_string(step_count_);
  nlohmann::json groups = nlohmann::json::array();
  size_t index = 0;
  for (const ParamGroup& g : groups_) {
    nlohmann::json j;
    j["lr"] = exact(*g.lr);
    j["weight_decay"] = exact(*g.weight_decay);
    std::vector<size_t> ids;
    for (const Tensor& p : g.params) {
      save_param_state(p, "state." + std::to_string(index) + ".", s);
      ids.push_back(index++);
    }
    j["params"] = ids;
    groups.push_back(j);
  }
  s.fields["param_groups"] = groups.dump();
  return s;
}

void Optimizer::load_state_dict(const OptimizerState& s) {
  auto field = [&](const std::string& k) -> const std::string& {
    auto it = s.fields.find(k);
    LETHE_CHECK(it != s.fields.end(), name_, ".load_state_dict: the state has no '", k, "' field");
    return it->second;
  };
  LETHE_CHECK(field("type") == name_, name_, ".load_state_dict: the state is of a ", field("type"),
              " optimizer");
  int64_t steps = 0;
  nlohmann::json groups;
  try {
    steps = std::stoll(field("step_count"));
    groups = nlohmann::json::parse(field("param_groups"));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(detail::concat(name_, ".load_state_dict: malformed step_count or param_groups (",
                               e.what(), ")"));
  }
  LETHE_CHECK(groups.is_array() && groups.size() == groups_.size(), name_,
              ".load_state_dict: the state has ", groups.is_array() ? groups.size() : 0,
              " parameter groups, this optimizer ", groups_.size());
  std::vector<std::pair<double, double>> hyper;
  size_t index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const nlohmann::json& j = groups[gi];
    LETHE_CHECK(j.is_object() && j.contains("params") && j["params"].is_array() &&
                    j["params"].size() == groups_[gi].params.size(),
                name_, ".load_state_dict: group ", gi, " of the state does not hold ",
                groups_[gi].params.size(), " parameters");
    try {
      hyper.emplace_back(std::stod(j.at("lr").get<std::string>()),
                         std::stod(j.at("weight_decay").get<std::string>()));
    } catch (const std::exception& e) {
      throw Error(detail::concat(name_, ".load_state_dict: group ", gi,
                                 " has no valid lr or weight_decay (", e.what(), ")"));
    }
    for (const Tensor& p : groups_[gi].params)
      load_param_state(p, "state." + std::to_string(index++) + ".", s,
                       true);  // check everything first
  }
  index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    groups_[gi].lr = hyper[gi].first;
    groups_[gi].weight_decay = hyper[gi].second;
    for (const Tensor& p : groups_[gi].params)
      load_param_state(p, "state." + std::to_string(index++) + ".", s, false);
  }
  step_count_ = steps;
}

}  // namespace lethe::optim
