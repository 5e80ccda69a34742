// ModuleList and ModuleDict: submodules by index and by name, under PyTorch's state-dict names.
#include <doctest/doctest.h>

#include "lethe.h"
#include "nn/nn.h"

using namespace lethe;

TEST_CASE("ModuleList: modules named by index, reachable by parameters, state dicts and train()") {
  Session s({.seed = 1});
  auto list = std::make_shared<nn::ModuleList>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(4, 3), std::make_shared<nn::ReLU>()});
  list->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).bias(false)));
  CHECK(list->size() == 3);
  std::vector<std::string> names;
  for (const auto& [n, _] : list->named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight"});
  CHECK(list->get<nn::Linear>(2) != nullptr);
  CHECK_THROWS_WITH_AS(list->get<nn::Linear>(1),
                       doctest::Contains("module 1 is a ReLU, not the type asked for"), Error);
  CHECK_THROWS_WITH_AS((*list)[3], doctest::Contains("index 3 is out of range (size 3)"), Error);
  CHECK_THROWS_WITH_AS(list->push_back(nullptr), doctest::Contains("the module is null"), Error);
  list->eval();
  CHECK_FALSE((*list)[0]->is_training());
  // Used by a module: the forward is the owner's.
  Tensor h = relu(list->get<nn::Linear>(0)->forward(ones({5, 4})));
  CHECK(list->get<nn::Linear>(2)->forward(h).shape() == Shape{5, 2});
}

TEST_CASE("ModuleDict: modules by name in insertion order, unknown names listed") {
  Session s({.seed = 1});
  nn::ModuleDict d(
      {{"enc", std::make_shared<nn::Linear>(4, 3)}, {"act", std::make_shared<nn::GELU>()}});
  d.insert("dec", std::make_shared<nn::Linear>(3, 4));
  CHECK(d.keys() == std::vector<std::string>{"enc", "act", "dec"});
  CHECK(d.contains("dec"));
  CHECK_FALSE(d.contains("x"));
  CHECK(d.state_dict().keys() ==
        std::vector<std::string>{"enc.weight", "enc.bias", "dec.weight", "dec.bias"});
  CHECK_THROWS_WITH_AS(
      d["x"], doctest::Contains("no module named 'x'; the keys are 'enc', 'act', 'dec'"), Error);
  CHECK_THROWS_WITH_AS(d.insert("enc", std::make_shared<nn::ReLU>()),
                       doctest::Contains("'enc' is already registered"), Error);
  CHECK_THROWS_WITH_AS(d.insert("a.b", std::make_shared<nn::ReLU>()),
                       doctest::Contains("must not contain '.'"), Error);
  CHECK_THROWS_WITH_AS(d.get<nn::Linear>("act"), doctest::Contains("module 'act' is a GELU"),
                       Error);
}
