#include "nn/linear.h"

#include <cmath>

#include "nn/init.h"
#include "ops/creation.h"
#include "ops/matmul.h"

namespace lethe::nn {

Linear::Linear(const LinearOptions& o) : UnaryModule("Linear"), options_(o) {
  LETHE_CHECK(o.in_features() > 0 && o.out_features() > 0,
              "Linear: in_features and out_features must be positive, got ", o.in_features(),
              " and ", o.out_features());
  weight = register_parameter("weight", zeros({o.out_features(), o.in_features()}, o.dtype()));
  if (o.bias()) bias = register_parameter("bias", zeros({o.out_features()}, o.dtype()));
  reset_parameters();
}

void Linear::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    double bound = 1.0 / std::sqrt(static_cast<double>(options_.in_features()));
    init::uniform_(bias, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& x) {
  LETHE_CHECK(x.dim() >= 1 && x.size(-1) == options_.in_features(), "Linear: expected input [..., ",
              options_.in_features(), "], got ", x.shape());
  return linear(x, weight, bias);
}

void Linear::pretty_print(std::ostream& os) const {
  os << "Linear(in_features=" << options_.in_features()
     << ", out_features=" << options_.out_features()
     << ", bias=" << (options_.bias() ? "true" : "false") << ")";
}

}  // namespace lethe::nn
