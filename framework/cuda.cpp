#include "framework/cuda.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "framework/backend.h"
#include "framework/error.h"

#if defined(LETHE_HAVE_CUDA)
#include "framework/cuda/backend.h"
#endif

namespace lethe::cuda {
namespace {
std::atomic<bool> g_tf32{false};
}

namespace {
struct Probe {
  int count = 0;
  std::string why;  // empty when a device is usable
};
const Probe& probe() {
  static const Probe p = [] {  // the driver's answer does not change
    Probe r;
#if defined(LETHE_HAVE_CUDA)
    r.count = detail::runtime_device_count(&r.why);
#else
    r.why = "this build of Lethe has no CUDA backend (configure with -DLETHE_CUDA=ON)";
#endif
    return r;
  }();
  return p;
}
}  // namespace

int device_count() {
  return probe().count;
}

bool is_available() {
  return device_count() > 0;
}

bool required_by(const char* value) {
  return value != nullptr && *value != '\0' && std::string(value) != "0";
}
bool device_required() {
  return required_by(std::getenv("LETHE_REQUIRE_CUDA"));
}

std::string unavailable_reason() {
  return probe().why;
}

void set_allow_tf32(bool allow) {
  g_tf32 = allow;
}
bool allow_tf32() {
  return g_tf32.load();
}

void init() {
#if defined(LETHE_HAVE_CUDA)
  LETHE_CHECK(is_available(), "no CUDA device is available (", unavailable_reason(),
              "; no GPU, no driver or an insufficient driver); use Device::cpu()");
  static std::once_flag once;
  std::call_once(once, [] { set_backend(DeviceKind::cuda, &detail::cuda_backend()); });
#else
  // The same reason unavailable_reason() gives, word for word.
  throw Error("no CUDA device is available: " + unavailable_reason() + "; use Device::cpu()");
#endif
}

}  // namespace lethe::cuda
