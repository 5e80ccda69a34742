// Helpers of the CUDA tests: run the same function on the CPU and on CUDA from the same inputs.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "framework/cuda.h"
#include "lethe.h"

#define LETHE_SKIP_WITHOUT_CUDA()                 \
  do {                                            \
    if (!lethe::cuda::is_available()) {           \
      MESSAGE("no CUDA device: skipped");         \
      return;                                     \
    }                                             \
  } while (0)

namespace cuda_checks {

using Fn = std::function<lethe::Tensor(const std::vector<lethe::Tensor>&)>;

struct Input {
  lethe::Shape shape;
  lethe::DType dtype = lethe::DType::f32;
  bool grad = true;                 // differentiate with respect to it (floating inputs only)
  std::vector<int64_t> ints;        // i64 input values (indices, labels)
};

// Output values, then the gradient of sum(output * r) for every input marked `grad`, as doubles.
inline std::vector<double> run(lethe::Device d, const Fn& f, const std::vector<Input>& ins, bool backward = true) {
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
    CHECK_MESSAGE((both_nan || both_inf || std::abs(cpu[i] - gpu[i]) <= rtol * (1 + std::abs(cpu[i]))),
                  "element ", i, ": cpu ", cpu[i], ", cuda ", gpu[i]);
  }
}

}  // namespace cuda_checks
