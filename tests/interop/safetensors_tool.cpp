// The Lethe side of the Python interop test (tests/interop/check_python.sh): a small CNN with every
// kind of state (conv, batch norm with running statistics, linear), by PyTorch's names.
//   safetensors_tool write FILE   saves its state dict, prints {"name": {"shape": [...], "values":
//   [...]}} safetensors_tool read FILE    loads FILE into it (strict), prints the same for what it
//   now holds
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "lethe.h"

using namespace lethe;

namespace {

std::shared_ptr<nn::Sequential> model() {
  return std::make_shared<nn::Sequential>(
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1)),
      std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4 * 5 * 5, 6));
}

nlohmann::json dump(const StateDict& sd) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, t] : sd)
    j[k] = {{"shape", t.shape().dims()}, {"values", t.to_vector<double>()}};
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "read")) {
    std::fprintf(stderr, "usage: %s write|read FILE\n", argv[0]);
    return 2;
  }
  try {
    Session s({.seed = 11});
    auto m = model();
    if (std::string(argv[1]) == "write") {
      // Running statistics other than their initial values.
      for (auto& [k, b] : m->named_buffers()) b.assign(rand(b.shape()) + 0.5);
      save(argv[2], m->state_dict(), {{"written_by", "lethe"}});
    } else {
      const Loaded l = load(argv[2]);
      m->load_state_dict(l.tensors);
    }
    std::cout << dump(m->state_dict()).dump() << "\n";
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
