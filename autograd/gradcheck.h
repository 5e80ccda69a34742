// Finite-difference gradient check in f64.
//
//   auto r = lethe::autograd::gradcheck(
//       [](const std::vector<lethe::Tensor>& in) { return (in[0] * in[1]).sum(); },
//       {lethe::randn({3, 4}, lethe::DType::f64), lethe::randn({4}, lethe::DType::f64)});
//   CHECK_MESSAGE(r.ok, r.message);
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace lethe::autograd {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0.0;  // |analytic - numeric| at the worst element
  double max_rel_error = 0.0;
  int worst_input = -1;      // which input holds the worst element
  int64_t worst_index = -1;  // its flat index
  double analytic = 0.0, numeric = 0.0;
  std::string message;  // names the worst element; empty when ok
};

// fn maps the inputs to a tensor; its gradient is checked through sum(fn(x) * r) for a fixed random
// r, against central differences with step eps. Inputs must be f64; every input is checked unless
// `check` says otherwise. Passes when |a - n| <= atol + rtol * |n| for every element.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, double eps = 1e-6, double atol = 1e-6,
                          double rtol = 1e-4, std::vector<bool> check = {});

}  // namespace lethe::autograd
