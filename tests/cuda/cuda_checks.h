// Helpers of the CUDA tests: run the same function on the CPU and on CUDA from the same inputs.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "framework/cuda.h"
#include "lethe.h"

// Without a usable device a CUDA test skips itself, saying why (the runtime's own message: an
// insufficient driver reads as "no device" otherwise). With LETHE_REQUIRE_CUDA=1 in the environment
// (tests/gpu/check.sh sets it) it fails instead, so a GPU check cannot pass without running
// anything.
#define LETHE_SKIP_WITHOUT_CUDA()                                                         \
  do {                                                                                    \
    switch (cuda_checks::without_device(lethe::cuda::is_available(),                      \
                                        std::getenv("LETHE_REQUIRE_CUDA"))) {             \
      case cuda_checks::Verdict::run:                                                     \
        break;                                                                            \
      case cuda_checks::Verdict::skip:                                                    \
        MESSAGE("no CUDA device: skipped (" << lethe::cuda::unavailable_reason() << ")"); \
        return;                                                                           \
      case cuda_checks::Verdict::fail:                                                    \
        FAIL("LETHE_REQUIRE_CUDA is set but no CUDA device is usable: "                   \
             << lethe::cuda::unavailable_reason());                                       \
        return;                                                                           \
    }                                                                                     \
  } while (0)

namespace cuda_checks {

enum class Verdict { run, skip, fail };

// What a CUDA test does: run on a device; without one, skip, or fail when the environment variable
// LETHE_REQUIRE_CUDA (`require`, null when unset) is set to anything but "" or "0".
inline Verdict without_device(bool available, const char* require) {
  if (available) return Verdict::run;
  return lethe::cuda::required_by(require) ? Verdict::fail : Verdict::skip;
}

using Fn = std::function<lethe::Tensor(const std::vector<lethe::Tensor>&)>;

struct Input {
  lethe::Shape shape;
  lethe::DType dtype = lethe::DType::f32;
  bool grad = true;           // differentiate with respect to it (floating inputs only)
  std::vector<int64_t> ints;  // i64 input values (indices, labels)
};

// Output values, then the gradient of sum(output * r) for every input marked `grad`, as doubles.
inline std::vector<double> run(lethe::Device d, const Fn& f, const std::vector<Input>& ins,
                               bool backward = true) {
  lethe::Session s({.device = d, .seed = 5});
  std::vector<lethe::Tensor> in;
  for (const auto& i : ins) {
    if (i.dtype == lethe::DType::i64) {
      in.push_back(lethe::from_vector(i.ints, i.shape));
    } else {
      lethe::Tensor t = lethe::randn(i.shape, i.dtype);
      if (backward && i.grad) t.set_requires_grad(true);
      in.push_back(t);
    }
  }
  lethe::Tensor y = f(in);
  std::vector<double> r = y.to_vector<double>();
  if (backward && lethe::is_floating(y.dtype())) {
    lethe::Tensor w = lethe::randn(y.shape(), y.dtype());
    (y * w).sum().backward();
    for (size_t k = 0; k < in.size(); ++k)
      if (ins[k].dtype != lethe::DType::i64 && ins[k].grad) {
        auto g = in[k].grad().to_vector<double>();
        r.insert(r.end(), g.begin(), g.end());
      }
  }
  return r;
}

// CUDA against CPU within rtol (relative to 1 + |cpu|).
inline void same(const Fn& f, const std::vector<Input>& ins, double rtol, bool backward = true) {
  const auto cpu = run(lethe::Device::cpu(), f, ins, backward);
  const auto gpu = run(lethe::Device::cuda(0), f, ins, backward);
  REQUIRE(cpu.size() == gpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    const bool both_nan = std::isnan(cpu[i]) && std::isnan(gpu[i]);
    const bool both_inf = std::isinf(cpu[i]) && cpu[i] == gpu[i];
    CHECK_MESSAGE(
        (both_nan || both_inf || std::abs(cpu[i] - gpu[i]) <= rtol * (1 + std::abs(cpu[i]))),
        "element ", i, ": cpu ", cpu[i], ", cuda ", gpu[i]);
  }
}

}  // namespace cuda_checks
