// A chain of unary modules, named "0", "1", ... in order.
//
//   auto mlp = std::make_shared<lethe::nn::Sequential>(
//       std::make_shared<lethe::nn::Linear>(784, 256), std::make_shared<lethe::nn::ReLU>(),
//       std::make_shared<lethe::nn::Linear>(256, 10));
//   mlp->push_back(std::make_shared<lethe::nn::Dropout>(0.1));
//   auto logits = mlp->forward(x);   // parameters: "0.weight", "0.bias", "2.weight", ...
#pragma once

#include <memory>
#include <type_traits>
#include <vector>

#include "nn/module.h"

namespace lethe::nn {

class Sequential : public UnaryModule {
 public:
  Sequential() : UnaryModule("Sequential") {}
  // Every element must be a UnaryModule (one tensor in, one out): a static_assert says so in a
  // sentence instead of pages of overload-resolution notes.
  template <typename... Ms>
  requires(sizeof...(Ms) > 0) explicit Sequential(std::shared_ptr<Ms>... ms) : Sequential() {
    static_assert(
        (std::is_base_of_v<UnaryModule, Ms> && ...),
        "nn::Sequential holds UnaryModules (a forward(const Tensor&) -> Tensor): derive the module "
        "from lethe::nn::UnaryModule, or call it from a module of your own instead of a "
        "Sequential");
    (push_back(std::move(ms)), ...);
  }

  void push_back(std::shared_ptr<UnaryModule> m);
  template <typename M>
  requires(!std::is_convertible_v<std::shared_ptr<M>, std::shared_ptr<UnaryModule>>) void push_back(
      std::shared_ptr<M>) {
    static_assert(std::is_base_of_v<UnaryModule, M>,
                  "nn::Sequential::push_back takes a UnaryModule (a forward(const Tensor&) -> "
                  "Tensor): derive "
                  "the module from lethe::nn::UnaryModule");
  }
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  bool empty() const { return layers_.empty(); }
  const std::shared_ptr<UnaryModule>& operator[](size_t i) const { return layers_.at(i); }
  auto begin() const { return layers_.begin(); }
  auto end() const { return layers_.end(); }
  void pretty_print(std::ostream& os) const override { os << "Sequential"; }

 private:
  std::vector<std::shared_ptr<UnaryModule>> layers_;
};

}  // namespace lethe::nn
