#include "nn/sequential.h"

#include <string>

namespace lethe::nn {

void Sequential::push_back(std::shared_ptr<UnaryModule> m) {
  LETHE_CHECK(m != nullptr, "Sequential::push_back: the module is null");
  register_module(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  LETHE_CHECK(!layers_.empty(), "Sequential::forward: the sequence is empty");
  Tensor h = x;
  for (auto& m : layers_) h = m->forward(h);
  return h;
}

}  // namespace lethe::nn
