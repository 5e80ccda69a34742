// softmax and log_softmax along one axis (max-subtracted, so never overflowing), with backward ops
// that use the forward output only.
#include "ops/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

using cpu::axis_view;
using cpu::AxisView;

// Forward on one line of r elements at stride 1 (the common last-axis case).
template <typename T>
void softmax_row(const T* x, T* y, int64_t r, bool log) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < r; ++i) m = std::max(m, x[i]);
  if (std::isinf(m) && m < 0) m = T(0);  // a row of -inf: avoid (-inf) - (-inf)
  T s = T(0);
  if (log) {
    for (int64_t i = 0; i < r; ++i) s += std::exp(x[i] - m);
    const T lse = m + std::log(s);
    for (int64_t i = 0; i < r; ++i) y[i] = x[i] - lse;
  } else {
    for (int64_t i = 0; i < r; ++i) {
      y[i] = std::exp(x[i] - m);
      s += y[i];
    }
    const T inv = T(1) / s;
    for (int64_t i = 0; i < r; ++i) y[i] *= inv;
  }
}

// Forward on one [r, inner] block: every reduction runs along r with inner as the vector dim.
template <typename T>
void softmax_block(const T* x, T* y, int64_t r, int64_t inner, bool log, T* m, T* s) {
  for (int64_t i = 0; i < inner; ++i) {
    m[i] = -std::numeric_limits<T>::infinity();
    s[i] = T(0);
  }
  for (int64_t k = 0; k < r; ++k)
    for (int64_t i = 0; i < inner; ++i) m[i] = std::max(m[i], x[k * inner + i]);
  for (int64_t i = 0; i < inner; ++i)
    if (std::isinf(m[i]) && m[i] < 0) m[i] = T(0);
  for (int64_t k = 0; k < r; ++k)
    for (int64_t i = 0; i < inner; ++i) {
      const T e = std::exp(x[k * inner + i] - m[i]);
      s[i] += e;
      if (!log) y[k * inner + i] = e;
    }
  if (log) {
    for (int64_t i = 0; i < inner; ++i) m[i] += std::log(s[i]);
    for (int64_t k = 0; k < r; ++k)
      for (int64_t i = 0; i < inner; ++i) y[k * inner + i] = x[k * inner + i] - m[i];
  } else {
    for (int64_t i = 0; i < inner; ++i) s[i] = T(1) / s[i];
    for (int64_t k = 0; k < r; ++k)
      for (int64_t i = 0; i < inner; ++i) y[k * inner + i] *= s[i];
  }
}

class SoftmaxOp final : public Op {
 public:
  SoftmaxOp(int axis, bool log) : log_(log), a_{axis} {}
  OpKind kind() const override { return log_ ? OpKind::log_softmax : OpKind::softmax; }
  std::string attrs() const override { return "axis=" + std::to_string(a_.axis); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(is_floating(in[0].dtype), name(), ": expected a floating-point tensor, got ",
                in[0].dtype, in[0].shape);
    return in[0];
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops *= 12;
    return c;
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    const AxisView v = axis_view(in[0].shape, a_.axis);
    return v.inner > 1 ? static_cast<size_t>(2 * v.inner * v.outer) * dtype_size(in[0].dtype) : 0;
  }
  void cpu(const KernelCall& c) const override {
    const AxisView v = axis_view(c.in_shape(0), a_.axis);
    const int64_t n = c.out_meta->numel();
    dispatch_float(c.in_meta[0]->dtype, name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      const T* x = c.in<T>(0);
      T* y = c.out<T>();
      if (v.r == 0 || n == 0) return;
      if (v.inner == 1) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
        for (int64_t o = 0; o < v.outer; ++o) softmax_row(x + o * v.r, y + o * v.r, v.r, log_);
        return;
      }
      T* ws = static_cast<T*>(c.workspace);
      LETHE_ASSERT(ws != nullptr);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t o = 0; o < v.outer; ++o)
        softmax_block(x + o * v.r * v.inner, y + o * v.r * v.inner, v.r, v.inner, log_,
                      ws + 2 * o * v.inner, ws + (2 * o + 1) * v.inner);
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  bool log_;
  SoftmaxAttrs a_;
};

// softmax:     dx = y * (g - sum(g * y))
// log_softmax: dx = g - exp(y) * sum(g)
class SoftmaxBackwardOp final : public Op {
 public:
  SoftmaxBackwardOp(int axis, bool log) : log_(log), a_{axis} {}
  OpKind kind() const override {
    return log_ ? OpKind::log_softmax_backward : OpKind::softmax_backward;
  }
  std::string attrs() const override { return "axis=" + std::to_string(a_.axis); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in[0] == in[1], name(), ": gradient ", in[0].str(), " and output ", in[1].str(),
                " differ");
    return in[0];
  }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& c) const override {
    const AxisView v = axis_view(c.in_shape(0), a_.axis);
    const int64_t n = c.out_meta->numel();
    dispatch_float(c.in_meta[0]->dtype, name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      const T* g = c.in<T>(0);
      const T* y = c.in<T>(1);
      T* dx = c.out<T>();
      if (n == 0) return;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t t = 0; t < v.outer * v.inner; ++t) {
        const int64_t o = t / v.inner, i = t % v.inner;
        const int64_t base = o * v.r * v.inner + i;
        T s = T(0);
        if (log_) {
          for (int64_t k = 0; k < v.r; ++k) s += g[base + k * v.inner];
          for (int64_t k = 0; k < v.r; ++k) {
            const int64_t j = base + k * v.inner;
            dx[j] = g[j] - std::exp(y[j]) * s;
          }
        } else {
          for (int64_t k = 0; k < v.r; ++k) s += g[base + k * v.inner] * y[base + k * v.inner];
          for (int64_t k = 0; k < v.r; ++k) {
            const int64_t j = base + k * v.inner;
            dx[j] = y[j] * (g[j] - s);
          }
        }
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  bool log_;
  SoftmaxAttrs a_;
};

std::vector<Tensor> SoftmaxOp::backward(const BackwardCtx& c) const {
  if (!c.needs_grad[0]) return {Tensor()};
  return {record(std::make_shared<SoftmaxBackwardOp>(a_.axis, log_), {c.grad_output, c.output})};
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) {
  LETHE_CHECK(x.defined(), "softmax: the input is an undefined tensor");
  return record(std::make_shared<SoftmaxOp>(x.shape().axis(axis, "softmax"), false), {x});
}

Tensor log_softmax(const Tensor& x, int axis) {
  LETHE_CHECK(x.defined(), "log_softmax: the input is an undefined tensor");
  return record(std::make_shared<SoftmaxOp>(x.shape().axis(axis, "log_softmax"), true), {x});
}

}  // namespace lethe
