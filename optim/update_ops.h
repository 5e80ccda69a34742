// The side-effect ops behind the optimizers: each overwrites its parameter and state buffers in
// place (mutated_inputs), so the executor runs it once, after every read of the old values.
// Inputs: param, grad, state...; output: an empty f32[0] placeholder. Internal to optim/.
#pragma once

#include <string>

#include "framework/op.h"

namespace lethe::optim {

struct SgdHyper {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first = false;  // the momentum buffer is fresh: buf = grad (PyTorch's first step)
};

// Inputs: param, grad[, momentum_buffer when momentum != 0].
class SgdUpdateOp final : public Op {
 public:
  explicit SgdUpdateOp(SgdHyper h) : h_(h) {}
  OpKind kind() const override { return OpKind::sgd_update; }
  std::string attrs() const override;
  TensorMeta infer(const std::vector<TensorMeta>& in) const override;
  void cpu(const KernelCall& k) const override;
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override;
  bool differentiable() const override { return false; }
  std::vector<int> mutated_inputs() const override;
  const SgdHyper& hyper() const { return h_; }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(h_); }  // the CUDA kernel's attributes

 private:
  SgdHyper h_;
};

struct AdamWHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  int64_t step = 1;      // 1-based, for the bias corrections
  bool amsgrad = false;  // denominators from max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq)
};

// Inputs: param, grad, exp_avg, exp_avg_sq[, max_exp_avg_sq when amsgrad].
class AdamWUpdateOp final : public Op {
 public:
  explicit AdamWUpdateOp(AdamWHyper h) : h_(h) {}
  OpKind kind() const override { return OpKind::adamw_update; }
  std::string attrs() const override;
  TensorMeta infer(const std::vector<TensorMeta>& in) const override;
  void cpu(const KernelCall& k) const override;
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override;
  bool differentiable() const override { return false; }
  std::vector<int> mutated_inputs() const override;
  const AdamWHyper& hyper() const { return h_; }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(h_); }

 private:
  AdamWHyper h_;
};

struct RmspropHyper {
  double lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0;
  bool centered = false;
};

// Inputs: param, grad, square_avg[, grad_avg when centered][, momentum_buffer when momentum > 0].
class RmspropUpdateOp final : public Op {
 public:
  explicit RmspropUpdateOp(RmspropHyper h) : h_(h) {}
  OpKind kind() const override { return OpKind::rmsprop_update; }
  std::string attrs() const override;
  TensorMeta infer(const std::vector<TensorMeta>& in) const override;
  void cpu(const KernelCall& k) const override;
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override;
  bool differentiable() const override { return false; }
  std::vector<int> mutated_inputs() const override;
  const RmspropHyper& hyper() const { return h_; }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(h_); }

 private:
  RmspropHyper h_;
};

}  // namespace lethe::optim
