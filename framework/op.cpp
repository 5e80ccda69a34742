#include "framework/op.h"

#include <map>
#include <mutex>
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

namespace {
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::pair<DeviceKind, OpKind>, DeviceKernel>& registry() {
  static std::map<std::pair<DeviceKind, OpKind>, DeviceKernel> r;
  return r;
}
}  // namespace

void register_device_kernel(DeviceKind device, OpKind op, DeviceKernel fn) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[{device, op}] = fn;
}

DeviceKernel find_device_kernel(DeviceKind device, OpKind op) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto it = registry().find({device, op});
  return it == registry().end() ? nullptr : it->second;
}

void run_kernel(const Op& op, const KernelCall& call, Device device) {
  if (device.is_cpu()) {
    op.cpu(call);
    return;
  }
  DeviceKernel k = find_device_kernel(device.kind, op.kind());
  LETHE_CHECK(k != nullptr, op.name(), ": no kernel for device ", device.str(),
              " (this build has no CUDA backend, or the op has no CUDA kernel yet)");
  k(op, call);
}

}  // namespace lethe
