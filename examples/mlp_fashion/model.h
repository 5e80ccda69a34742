// The MLP of the mlp_fashion example: Flatten -> 784-256-128-10 with ReLU (hidden sizes adjustable
// for tests and sweeps).
#pragma once

#include <memory>

#include "lethe.h"

namespace lethe::examples {

inline std::shared_ptr<nn::Sequential> make_mlp(int64_t in = 784, int64_t h1 = 256,
                                                int64_t h2 = 128, int64_t classes = 10) {
  using namespace lethe::nn;
  return std::make_shared<Sequential>(std::make_shared<Flatten>(), std::make_shared<Linear>(in, h1),
                                      std::make_shared<ReLU>(), std::make_shared<Linear>(h1, h2),
                                      std::make_shared<ReLU>(),
                                      std::make_shared<Linear>(h2, classes));
}

}  // namespace lethe::examples
