#include "framework/cuda.h"

#include <atomic>
#include <mutex>

#include "framework/error.h"

#if defined(LETHE_HAVE_CUDA)
#include "framework/cuda/backend.h"
#endif

namespace lethe::cuda {
namespace {
std::atomic<bool> g_tf32{false};
}

int device_count() {
#if defined(LETHE_HAVE_CUDA)
  static const int n = detail::runtime_device_count();  // the driver's answer does not change
  return n;
#else
  return 0;
#endif
}

bool is_available() { return device_count() > 0; }

void set_allow_tf32(bool allow) { g_tf32 = allow; }
bool allow_tf32() { return g_tf32.load(); }

void init() {
#if defined(LETHE_HAVE_CUDA)
  LETHE_CHECK(is_available(), "no CUDA device is available (cudaGetDeviceCount found none: no GPU, "
              "no driver or an insufficient driver); use Device::cpu()");
  static std::once_flag once;
  std::call_once(once, [] { detail::install_backend(); });
#else
  throw Error("no CUDA device is available (this build of Lethe has no CUDA backend: configure with "
              "-DLETHE_CUDA=ON); use Device::cpu()");
#endif
}

}  // namespace lethe::cuda
