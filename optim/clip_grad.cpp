#include "optim/clip_grad.h"

#include <cmath>

#include "framework/error.h"
#include "framework/session.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

namespace lethe::optim {

namespace {

// Elementwise max(x, bound) by a reduction over a stacked axis: a selection, so exact (and NaN in x
// stays NaN, as the reduction propagates it).
Tensor max_with(const Tensor& x, double bound) {
  Tensor stacked = concat({unsqueeze(x, 0), unsqueeze(full_like(x, bound), 0)}, 0);
  return max(stacked, 0);
}

std::vector<Tensor> with_grads(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params)
    if (p.has_grad()) out.push_back(p);
  return out;
}

}  // namespace

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  LETHE_CHECK(norm_type == 2.0, "clip_grad_norm_: only norm_type 2 is supported, got ", norm_type);
  LETHE_CHECK(std::isfinite(max_norm) && max_norm >= 0,
              "clip_grad_norm_: max_norm must be finite and >= 0, got ", max_norm);
  NoGradGuard no_grad;
  const std::vector<Tensor> ps = with_grads(params);
  LETHE_CHECK(!ps.empty(),
              "clip_grad_norm_: no parameter has a gradient (call loss.backward() first)");
  const DType t = ps.front().grad().dtype();
  std::vector<Tensor> norms;
  for (const Tensor& p : ps) {
    const Tensor g = p.grad();
    LETHE_CHECK(g.dtype() == t, "clip_grad_norm_: the gradients mix ", dtype_name(t), " and ",
                dtype_name(g.dtype()));
    norms.push_back(reshape(sqrt(sum(mul(g, g))), {1}));
  }
  const Tensor stacked = norms.size() == 1 ? norms.front() : concat(norms, 0);
  const Tensor total = sqrt(sum(mul(stacked, stacked)));
  const Tensor coef = rdiv_scalar(add_scalar(total, 1e-6), max_norm);
  const Tensor clamped = neg(max_with(neg(coef), -1.0));  // min(coef, 1)
  for (const Tensor& p : ps) {
    Tensor param = p;
    param.set_grad(mul(p.grad(), clamped));
  }
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  LETHE_CHECK(std::isfinite(clip_value) && clip_value >= 0,
              "clip_grad_value_: clip_value must be finite and >= 0, got ", clip_value);
  NoGradGuard no_grad;
  for (const Tensor& p : with_grads(params)) {
    Tensor param = p;
    // min(max(g, -c), c) = -max(-max(g, -c), -c)
    param.set_grad(neg(max_with(neg(max_with(p.grad(), -clip_value)), -clip_value)));
  }
}

}  // namespace lethe::optim
