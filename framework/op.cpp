#include "framework/op.h"

#include <sstream>

#include "framework/error.h"
#include "framework/tensor.h"

namespace lethe {

std::string TensorMeta::str() const {
  std::ostringstream os;
  os << dtype_name(dtype) << shape.str() << " on " << device.str();
  return os.str();
}

OpCost Op::cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const {
  OpCost c;
  c.flops = static_cast<double>(out.numel());
  c.bytes = static_cast<double>(out.bytes());
  for (const auto& m : in) c.bytes += static_cast<double>(m.bytes());
  return c;
}

std::vector<Tensor> Op::backward(const BackwardCtx& ctx) const {
  throw Error(name() +
              ": this op has no gradient rule (its input needs a gradient; detach() it or "
              "compute it under no_grad)");
}

}  // namespace lethe
