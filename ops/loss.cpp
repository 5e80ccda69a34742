// Losses: cross_entropy fused (log-softmax + NLL in one op, one backward op), mse_loss composed of
// elementwise ops and a reduction.
#include "ops/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"
#include "ops/layout.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

Reduction parse_reduction(const std::string& r, const char* op) {
  if (r == "mean") return Reduction::mean;
  if (r == "sum") return Reduction::sum;
  if (r == "none") return Reduction::none;
  throw Error(detail::concat(op, ": reduction must be \"mean\", \"sum\" or \"none\", got \"", r, "\""));
}
const char* reduction_name(Reduction r) {
  return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none";
}

// logits [N, C, S...] seen as [N, C, S] (ops/layout.h, as the CUDA kernel); a position is (n, s).
struct CeView : layout::ChannelView {
  int64_t positions() const { return n * s; }
};
CeView ce_view(const Shape& logits) { return CeView{layout::channel_view(logits)}; }

// Throws on a target outside [0, C) that is not ignore_index; returns the count of the others.
int64_t check_targets(const int64_t* t, int64_t n, int64_t classes, int64_t ignore_index) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (t[i] == ignore_index) continue;
    LETHE_CHECK(t[i] >= 0 && t[i] < classes, "cross_entropy: target ", t[i], " at position ", i,
                " is out of range for ", classes, " classes (expected 0 <= target < ", classes,
                " or ignore_index ", ignore_index, ")");
    ++count;
  }
  return count;
}

// log-sum-exp over the classes of position (n, s).
template <typename T>
T log_sum_exp(const T* x, int64_t c, int64_t stride) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < c; ++k) m = std::max(m, x[k * stride]);
  if (std::isinf(m)) return m;
  T s = T(0);
  for (int64_t k = 0; k < c; ++k) s += std::exp(x[k * stride] - m);
  return m + std::log(s);
}

class CrossEntropyOp final : public Op {
 public:
  CrossEntropyOp(Reduction r, int64_t ignore) : a_{r, ignore} {}
  OpKind kind() const override { return OpKind::cross_entropy; }
  std::string attrs() const override {
    return std::string("reduction=") + reduction_name(a_.reduction) + ",ignore_index=" + std::to_string(a_.ignore_index);
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const Shape &ls = in[0].shape, &ts = in[1].shape;
    LETHE_CHECK(is_floating(in[0].dtype), "cross_entropy: logits must be f32 or f64, got ", in[0].dtype,
                ls);
    LETHE_CHECK(in[1].dtype == DType::i64, "cross_entropy: target must hold i64 class indices, got ",
                in[1].dtype, ts, " (logits ", ls, ")");
    LETHE_CHECK(ls.ndim() >= 2, "cross_entropy: logits must be [N, C] or [N, C, d...], got ", ls,
                " (target ", ts, ")");
    std::vector<int64_t> expect = ls.dims();
    expect.erase(expect.begin() + 1);
    LETHE_CHECK(ts == Shape(expect), "cross_entropy: logits ", ls, " and target ", ts,
                " do not match (expected target ", Shape(expect), ")");
    TensorMeta m = in[0];
    m.shape = a_.reduction == Reduction::none ? ts : Shape{};
    return m;
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 10.0 * static_cast<double>(in[0].numel());
    return c;
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    if (a_.reduction == Reduction::none) return 0;
    const int64_t p = in[1].numel();
    return static_cast<size_t>(p + cpu::reduce_scratch_elems(p)) * dtype_size(in[0].dtype);
  }
  void cpu(const KernelCall& c) const override {
    const CeView v = ce_view(c.in_shape(0));
    const int64_t* t = c.in<int64_t>(1);
    const int64_t count = check_targets(t, v.positions(), v.c, a_.ignore_index);
    dispatch_float(c.in_meta[0]->dtype, "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      const T* x = c.in<T>(0);
      const int64_t p = v.positions();
      T* losses = a_.reduction == Reduction::none ? c.out<T>() : static_cast<T*>(c.workspace);
      LETHE_ASSERT(losses != nullptr || p == 0);
#pragma omp parallel for schedule(static) if (p * v.c > kParallelGrain)
      for (int64_t i = 0; i < p; ++i) {
        const int64_t nn = i / v.s, ss = i % v.s;
        if (t[i] == a_.ignore_index) {
          losses[i] = T(0);
          continue;
        }
        const T* xi = x + nn * v.c * v.s + ss;
        losses[i] = log_sum_exp(xi, v.c, v.s) - xi[t[i] * v.s];
      }
      if (a_.reduction == Reduction::none) return;
      T total = p == 0 ? T(0) : cpu::chunked_sum(losses, p, losses + p);
      if (a_.reduction == Reduction::mean) total /= static_cast<T>(count);  // 0/0 = NaN, as PyTorch
      c.out<T>()[0] = total;
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  CrossEntropyAttrs a_;
};

// d loss / d logits = scale * (softmax(logits) - onehot(target)), zero at ignored positions;
// scale = g (none), g[0] (sum) or g[0] / count (mean).
class CrossEntropyBackwardOp final : public Op {
 public:
  CrossEntropyBackwardOp(Reduction r, int64_t ignore) : a_{r, ignore} {}
  OpKind kind() const override { return OpKind::cross_entropy_backward; }
  std::string attrs() const override {
    return std::string("reduction=") + reduction_name(a_.reduction) + ",ignore_index=" + std::to_string(a_.ignore_index);
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override { return in[1]; }
  bool differentiable() const override { return false; }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 12.0 * static_cast<double>(out.numel());
    return c;
  }
  void cpu(const KernelCall& c) const override {
    const CeView v = ce_view(c.in_shape(1));
    const int64_t* t = c.in<int64_t>(2);
    const int64_t count = check_targets(t, v.positions(), v.c, a_.ignore_index);
    dispatch_float(c.in_meta[1]->dtype, "cross_entropy_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* g = c.in<T>(0);
      const T* x = c.in<T>(1);
      T* dx = c.out<T>();
      const int64_t p = v.positions();
#pragma omp parallel for schedule(static) if (p * v.c > kParallelGrain)
      for (int64_t i = 0; i < p; ++i) {
        const int64_t nn = i / v.s, ss = i % v.s;
        const T* xi = x + nn * v.c * v.s + ss;
        T* di = dx + nn * v.c * v.s + ss;
        if (t[i] == a_.ignore_index) {
          for (int64_t k = 0; k < v.c; ++k) di[k * v.s] = T(0);
          continue;
        }
        const T scale = a_.reduction == Reduction::none  ? g[i]
                        : a_.reduction == Reduction::sum ? g[0]
                                                 : g[0] / static_cast<T>(count);
        const T lse = log_sum_exp(xi, v.c, v.s);
        for (int64_t k = 0; k < v.c; ++k) di[k * v.s] = scale * std::exp(xi[k * v.s] - lse);
        di[t[i] * v.s] -= scale;
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  CrossEntropyAttrs a_;
};

std::vector<Tensor> CrossEntropyOp::backward(const BackwardCtx& c) const {
  std::vector<Tensor> r(2);
  if (c.needs_grad[0])
    r[0] = record(std::make_shared<CrossEntropyBackwardOp>(a_.reduction, a_.ignore_index),
                  {c.grad_output, c.inputs[0], c.inputs[1]});
  return r;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const std::string& reduction,
                     int64_t ignore_index) {
  return record(std::make_shared<CrossEntropyOp>(parse_reduction(reduction, "cross_entropy"), ignore_index),
                {logits, target});
}

Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
  const Reduction r = parse_reduction(reduction, "mse_loss");
  LETHE_CHECK(input.defined() && target.defined(), "mse_loss: input or target is an undefined tensor");
  LETHE_CHECK(input.shape() == target.shape(), "mse_loss: input ", input.shape(), " and target ",
              target.shape(), " shapes differ");
  LETHE_CHECK(input.dtype() == target.dtype(), "mse_loss: input dtype ", input.dtype(),
              " and target dtype ", target.dtype(), " differ (shapes ", input.shape(), " and ",
              target.shape(), ")");
  LETHE_CHECK(is_floating(input.dtype()), "mse_loss: expected floating-point tensors, got ",
              input.dtype(), input.shape());
  const Tensor d = sub(input, target);
  const Tensor sq = mul(d, d);
  if (r == Reduction::none) return sq;
  return r == Reduction::sum ? sum(sq) : mean(sq);
}

}  // namespace lethe
