// Gradient clipping between backward() and step(), as torch.nn.utils.clip_grad_norm_ and
// clip_grad_value_. Both record ordinary ops on the gradients (lazily, planned with the step: no
// read, no partial run) and replace each gradient (Tensor::set_grad).
//
//   loss.backward();
//   lethe::Tensor norm = lethe::optim::clip_grad_norm_(model->parameters(), /*max_norm=*/1.0);
//   opt.step();
//   double before = norm.item();   // the total norm before clipping (hold the handle across
//   step())
#pragma once

#include <vector>

#include "framework/tensor.h"

namespace lethe::optim {

// Scales every gradient by min(1, max_norm / (total_norm + 1e-6)), where total_norm is the 2-norm
// of the per-parameter 2-norms (PyTorch's order of operations). Parameters without a gradient are
// skipped. Returns the total norm (a scalar of the gradients' dtype); non-finite norms propagate
// (error_if_nonfinite=False). Only norm_type 2 is supported.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);

// Clamps every gradient element into [-clip_value, clip_value] (exactly: the result is one of the
// element or the bounds; NaN stays NaN).
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace lethe::optim
