// leaky_relu and silu with their backward ops (inputs: grad, x).
#include "ops/activation.h"

#include <cmath>
#include <cstdio>
#include <memory>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

// sigmoid without overflow (as ops/elementwise.cpp's).
template <typename T>
T stable_sigmoid(T v) {
  if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
  const T e = std::exp(v);
  return e / (T(1) + e);
}

// x > 0 ? x : slope x, and its derivative (1 or slope; slope at 0, as PyTorch).
template <typename T>
T leaky(T x, T slope) {
  return x > T(0) ? x : x * slope;
}
template <typename T>
T leaky_grad(T x, T slope) {
  return x > T(0) ? T(1) : slope;
}
// d(x sigmoid(x)) = s (1 + x (1 - s)).
template <typename T>
T silu_grad(T x) {
  const T s = stable_sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

std::string slope_text(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "negative_slope=%.17g", v);
  return buf;
}

// One class for the four kinds: forward (x) or backward (grad, x), leaky (slope) or silu.
class ActivationOp final : public Op {
 public:
  ActivationOp(OpKind k, double slope) : k_(k), a_{slope} {}
  OpKind kind() const override { return k_; }
  std::string attrs() const override { return is_leaky() ? slope_text(a_.value) : std::string(); }
  bool is_leaky() const { return k_ == OpKind::leaky_relu || k_ == OpKind::leaky_relu_backward; }
  bool is_backward() const {
    return k_ == OpKind::leaky_relu_backward || k_ == OpKind::silu_backward;
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(is_floating(in[0].dtype), name(),
                ": expected a floating-point tensor (f32 or f64), got ", in[0].dtype, in[0].shape);
    if (is_backward())
      LETHE_CHECK(in[0].shape == in[1].shape && in[0].dtype == in[1].dtype, name(), ": gradient ",
                  in[0].str(), " and saved tensor ", in[1].str(), " differ");
    return in[0];
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops *= is_leaky() ? 1 : 10;
    return c;
  }
  bool differentiable() const override { return !is_backward(); }
  void cpu(const KernelCall& c) const override {
    const int64_t n = c.out_meta->numel();
    dispatch_float(c.in_meta[0]->dtype, name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      const T slope = static_cast<T>(a_.value);
      T* o = c.out<T>();
      if (!is_backward()) {
        const T* x = c.in<T>(0);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
        for (int64_t i = 0; i < n; ++i)
          o[i] = is_leaky() ? leaky(x[i], slope) : x[i] * stable_sigmoid(x[i]);
        return;
      }
      const T* g = c.in<T>(0);
      const T* x = c.in<T>(1);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i)
        o[i] = g[i] * (is_leaky() ? leaky_grad(x[i], slope) : silu_grad(x[i]));
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor()};
    const OpKind b = k_ == OpKind::leaky_relu ? OpKind::leaky_relu_backward : OpKind::silu_backward;
    return {record(std::make_shared<ActivationOp>(b, a_.value), {c.grad_output, c.inputs[0]})};
  }

 protected:
  AttrsRef attrs_ref() const override {
    return is_leaky() ? AttrsRef::of(a_) : AttrsRef{};
  }

 private:
  OpKind k_;
  ScalarAttrs a_;  // the negative slope (leaky_relu kinds)
};

}  // namespace

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  LETHE_CHECK(std::isfinite(negative_slope), "leaky_relu: negative_slope must be finite, got ",
              negative_slope);
  return record(std::make_shared<ActivationOp>(OpKind::leaky_relu, negative_slope), {x});
}

Tensor silu(const Tensor& x) {
  return record(std::make_shared<ActivationOp>(OpKind::silu, 0.0), {x});
}

}  // namespace lethe
