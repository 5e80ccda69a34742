// Inverted dropout. Element i of the node's output keeps x[i]·1/(1-p) when
// uniform01(seed, op_stream(step, node), i) >= p. The gradient op redraws the mask of the FORWARD
// node (its id is an attribute), so neither pass stores a mask and a recomputation draws the same
// one.
#include "ops/dropout.h"

#include <memory>
#include <sstream>

#include "framework/error.h"
#include "ops/attrs.h"
#include "framework/random.h"

namespace lethe {
namespace {

std::string num_text(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

// y[i] = keep(i) ? x[i]·scale : 0 on the mask of stream (step, mask_node).
template <typename T>
void apply_mask(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t stream) {
  const T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i)
    y[i] = rng::uniform01(seed, stream, static_cast<uint64_t>(i)) >= p ? x[i] * scale : T(0);
}

class DropoutOp final : public Op {
 public:
  explicit DropoutOp(double p) : a_{p, -1} {}
  OpKind kind() const override { return OpKind::dropout; }
  std::string attrs() const override { return "p=" + num_text(a_.p); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(is_floating(in[0].dtype), "dropout: expected a floating-point input, got ",
                in[0].dtype);
    return in[0];
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 20.0 * double(out.numel());  // Philox rounds
    return c;
  }
  void cpu(const KernelCall& kc) const override {
    const uint64_t stream = rng::op_stream(kc.step, static_cast<uint64_t>(kc.node));
    dispatch_float(kc.out_meta->dtype, "dropout", [&](auto tag) {
      using T = decltype(tag);
      apply_mask(kc.in<T>(0), kc.out<T>(), kc.out_meta->numel(), a_.p, kc.seed, stream);
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  DropoutAttrs a_;
};

class DropoutBackwardOp final : public Op {
 public:
  DropoutBackwardOp(double p, int64_t forward_node) : a_{p, forward_node} {}
  OpKind kind() const override { return OpKind::dropout_backward; }
  std::string attrs() const override {
    return "p=" + num_text(a_.p) + ",forward_node=" + std::to_string(a_.forward_node);
  }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override { return in[0]; }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 20.0 * double(out.numel());
    return c;
  }
  void cpu(const KernelCall& kc) const override {
    const uint64_t stream = rng::op_stream(kc.step, static_cast<uint64_t>(a_.forward_node));
    dispatch_float(kc.out_meta->dtype, "dropout_backward", [&](auto tag) {
      using T = decltype(tag);
      apply_mask(kc.in<T>(0), kc.out<T>(), kc.out_meta->numel(), a_.p, kc.seed, stream);
    });
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  DropoutAttrs a_;
};

std::vector<Tensor> DropoutOp::backward(const BackwardCtx& c) const {
  return {
      record(std::make_shared<DropoutBackwardOp>(a_.p, c.output.impl()->node), {c.grad_output})};
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training) {
  LETHE_CHECK(x.defined(), "dropout: the input is undefined");
  LETHE_CHECK(p >= 0.0 && p <= 1.0, "dropout: p must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  return record(std::make_shared<DropoutOp>(p), {x});
}

}  // namespace lethe
