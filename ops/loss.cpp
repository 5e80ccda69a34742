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
  throw Error(
      detail::concat(op, ": reduction must be \"mean\", \"sum\" or \"none\", got \"", r, "\""));
}
const char* reduction_name(Reduction r) {
  return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none";
}

// logits [N, C, S...] seen as [N, C, S] (ops/layout.h, as the CUDA kernel); a position is (n, s).
struct CeView : layout::ChannelView {
  int64_t positions() const { return n * s; }
};
CeView ce_view(const Shape& logits) {
  return CeView{layout::channel_view(logits)};
}

// Throws on a target outside [0, C) that is not ignore_index; returns the count of the others.
int64_t check_targets(const int64_t* t, int64_t n, int64_t classes, int64_t ignore_index,
                      const char* op = "cross_entropy") {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (t[i] == ignore_index) continue;
    LETHE_CHECK(t[i] >= 0 && t[i] < classes, op, ": target ", t[i], " at position ", i,
                " is out of range for ", classes, " classes (expected 0 <= target < ", classes,
                " or ignore_index ", ignore_index, ")");
    ++count;
  }
  return count;
}

// The divisor of a mean: the sum of the weights of the non-ignored targets (their count without
// weights), summed in position order.
template <typename T>
T target_weight_sum(const int64_t* t, int64_t n, int64_t ignore_index, const T* w) {
  T s = T(0);
  for (int64_t i = 0; i < n; ++i)
    if (t[i] != ignore_index) s += w ? w[t[i]] : T(1);
  return s;
}

// Scratch of a reduced class loss: the per-position losses, then chunked_sum's partial sums.
size_t class_loss_workspace(const std::vector<TensorMeta>& in, Reduction r) {
  if (r == Reduction::none) return 0;
  const int64_t p = in[1].numel();
  return static_cast<size_t>(p + cpu::reduce_scratch_elems(p)) * dtype_size(in[0].dtype);
}

// The per-position losses of a class loss: the output (none) or the workspace.
template <typename T>
T* class_losses(const KernelCall& c, Reduction r, int64_t p) {
  T* losses = r == Reduction::none ? c.out<T>() : static_cast<T*>(c.workspace);
  LETHE_ASSERT(losses != nullptr || p == 0);
  return losses;
}

// Writes the sum (or mean over the target weights) of the p per-position losses; nothing for none.
template <typename T>
void reduce_class_losses(const KernelCall& c, const CrossEntropyAttrs& a, const int64_t* t,
                         int64_t p, const T* w, T* losses) {
  if (a.reduction == Reduction::none) return;
  T total = p == 0 ? T(0) : cpu::chunked_sum(losses, p, losses + p);
  // 0/0 = NaN when every target is ignored, as PyTorch
  if (a.reduction == Reduction::mean) total /= target_weight_sum(t, p, a.ignore_index, w);
  c.out<T>()[0] = total;
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

std::string ce_attrs_text(const CrossEntropyAttrs& a) {
  std::string r = std::string("reduction=") + reduction_name(a.reduction) +
                  ",ignore_index=" + std::to_string(a.ignore_index);
  if (a.weight) r += ",weight";
  if (a.label_smoothing != 0) r += ",label_smoothing=" + std::to_string(a.label_smoothing);
  return r;
}

// Checks the [C] class weights of input `i` (if the attributes say there is one).
void check_class_weight(const char* op, const std::vector<TensorMeta>& in, size_t i, bool weight) {
  LETHE_CHECK(in.size() == i + (weight ? 1 : 0), "internal error: ", op, " expects ",
              i + (weight ? 1 : 0), " inputs, got ", in.size());
  if (!weight) return;
  const Shape &ls = in[0].shape, &ws = in[i].shape;
  LETHE_CHECK(ws == Shape{ls[1]}, op, ": weight must be [C] = [", ls[1], "] for input ", ls,
              ", got ", ws);
  LETHE_CHECK(in[i].dtype == in[0].dtype, op, ": weight dtype ", in[i].dtype,
              " differs from the input's ", in[0].dtype);
}

// Shape and dtype checks of an input [N, C, d...] (logits or log-probabilities) and its target.
TensorMeta class_loss_meta(const char* op, const std::vector<TensorMeta>& in,
                           const CrossEntropyAttrs& a) {
  const Shape &ls = in[0].shape, &ts = in[1].shape;
  const char* what = std::string(op) == "cross_entropy" ? "logits" : "input";
  LETHE_CHECK(is_floating(in[0].dtype), op, ": ", what, " must be f32 or f64, got ", in[0].dtype,
              ls);
  LETHE_CHECK(in[1].dtype == DType::i64, op, ": target must hold i64 class indices, got ",
              in[1].dtype, ts, " (", what, " ", ls, ")");
  LETHE_CHECK(ls.ndim() >= 2, op, ": ", what, " must be [N, C] or [N, C, d...], got ", ls,
              " (target ", ts, ")");
  std::vector<int64_t> expect = ls.dims();
  expect.erase(expect.begin() + 1);
  LETHE_CHECK(ts == Shape(expect), op, ": ", what, " ", ls, " and target ", ts,
              " do not match (expected target ", Shape(expect), ")");
  check_class_weight(op, in, 2, a.weight);
  TensorMeta m = in[0];
  m.shape = a.reduction == Reduction::none ? ts : Shape{};
  return m;
}

// Per-position loss with class weights w (all 1 without) and label smoothing e over C classes:
//   (1 - e) w[t] (lse - x[t]) + e/C sum_k w[k] (lse - x[k]),
// as PyTorch; a mean divides every position by the sum of w[t] of the non-ignored ones.
class CrossEntropyOp final : public Op {
 public:
  explicit CrossEntropyOp(CrossEntropyAttrs a) : a_(a) {}
  OpKind kind() const override { return OpKind::cross_entropy; }
  std::string attrs() const override { return ce_attrs_text(a_); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    return class_loss_meta("cross_entropy", in, a_);
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 10.0 * static_cast<double>(in[0].numel());
    return c;
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    return class_loss_workspace(in, a_.reduction);
  }
  void cpu(const KernelCall& c) const override {
    const CeView v = ce_view(c.in_shape(0));
    const int64_t* t = c.in<int64_t>(1);
    check_targets(t, v.positions(), v.c, a_.ignore_index);
    dispatch_float(c.in_meta[0]->dtype, "cross_entropy", [&](auto tag) {
      using T = decltype(tag);
      const T* x = c.in<T>(0);
      const T* w = a_.weight ? c.in<T>(2) : nullptr;
      const T eps = static_cast<T>(a_.label_smoothing);
      const int64_t p = v.positions();
      T* losses = class_losses<T>(c, a_.reduction, p);
#pragma omp parallel for schedule(static) if (p * v.c > kParallelGrain)
      for (int64_t i = 0; i < p; ++i) {
        const int64_t nn = i / v.s, ss = i % v.s;
        if (t[i] == a_.ignore_index) {
          losses[i] = T(0);
          continue;
        }
        const T* xi = x + nn * v.c * v.s + ss;
        const T lse = log_sum_exp(xi, v.c, v.s);
        const T wt = w ? w[t[i]] : T(1);
        T l = wt * (lse - xi[t[i] * v.s]);
        if (eps != T(0)) {
          T smooth = T(0);
          for (int64_t k = 0; k < v.c; ++k) smooth += (w ? w[k] : T(1)) * (lse - xi[k * v.s]);
          l = (T(1) - eps) * l + eps / static_cast<T>(v.c) * smooth;
        }
        losses[i] = l;
      }
      reduce_class_losses(c, a_, t, p, w, losses);
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  CrossEntropyAttrs a_;
};

// Inputs (grad, logits, target, weight?). d loss / d x[k] at a position with scale s (g, g[0] or
// g[0] / sum w[t]): s (p[k] ((1 - e) w[t] + e/C W) - (1 - e) w[t] [k = t] - e/C w[k]), W = sum w;
// zero at ignored positions.
class CrossEntropyBackwardOp final : public Op {
 public:
  explicit CrossEntropyBackwardOp(CrossEntropyAttrs a) : a_(a) {}
  OpKind kind() const override { return OpKind::cross_entropy_backward; }
  std::string attrs() const override { return ce_attrs_text(a_); }
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
    check_targets(t, v.positions(), v.c, a_.ignore_index);
    dispatch_float(c.in_meta[1]->dtype, "cross_entropy_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* g = c.in<T>(0);
      const T* x = c.in<T>(1);
      const T* w = a_.weight ? c.in<T>(3) : nullptr;
      T* dx = c.out<T>();
      const int64_t p = v.positions();
      const T eps = static_cast<T>(a_.label_smoothing), ec = eps / static_cast<T>(v.c);
      T wsum = T(0);
      for (int64_t k = 0; k < v.c; ++k) wsum += w ? w[k] : T(1);
      const T denom =
          a_.reduction == Reduction::mean ? target_weight_sum(t, p, a_.ignore_index, w) : T(1);
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
                                                         : g[0] / denom;
        const T wt = w ? w[t[i]] : T(1);
        const T hot = (T(1) - eps) * wt;
        const T lse = log_sum_exp(xi, v.c, v.s);
        const T sp = scale * (hot + ec * wsum);
        for (int64_t k = 0; k < v.c; ++k) {
          T d = sp * std::exp(xi[k * v.s] - lse);
          if (eps != T(0)) d -= scale * ec * (w ? w[k] : T(1));
          di[k * v.s] = d;
        }
        di[t[i] * v.s] -= scale * hot;
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  CrossEntropyAttrs a_;
};

// The inputs of a class loss's backward: (grad, input, target, weight?).
std::vector<Tensor> class_loss_backward_inputs(const BackwardCtx& c) {
  std::vector<Tensor> in{c.grad_output, c.inputs[0], c.inputs[1]};
  if (c.inputs.size() > 2) in.push_back(c.inputs[2]);
  return in;
}

std::vector<Tensor> CrossEntropyOp::backward(const BackwardCtx& c) const {
  std::vector<Tensor> r(c.inputs.size());
  if (c.needs_grad[0])
    r[0] = record(std::make_shared<CrossEntropyBackwardOp>(a_), class_loss_backward_inputs(c));
  return r;
}

// nll_loss on log-probabilities x: -w[t] x[t] per position (zero where ignored).
class NllLossOp final : public Op {
 public:
  explicit NllLossOp(CrossEntropyAttrs a) : a_(a) {}
  OpKind kind() const override { return OpKind::nll_loss; }
  std::string attrs() const override { return ce_attrs_text(a_); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    return class_loss_meta("nll_loss", in, a_);
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    return class_loss_workspace(in, a_.reduction);
  }
  void cpu(const KernelCall& c) const override {
    const CeView v = ce_view(c.in_shape(0));
    const int64_t* t = c.in<int64_t>(1);
    check_targets(t, v.positions(), v.c, a_.ignore_index, "nll_loss");
    dispatch_float(c.in_meta[0]->dtype, "nll_loss", [&](auto tag) {
      using T = decltype(tag);
      const T* x = c.in<T>(0);
      const T* w = a_.weight ? c.in<T>(2) : nullptr;
      const int64_t p = v.positions();
      T* losses = class_losses<T>(c, a_.reduction, p);
      for (int64_t i = 0; i < p; ++i) {
        const int64_t nn = i / v.s, ss = i % v.s;
        losses[i] = t[i] == a_.ignore_index
                        ? T(0)
                        : -(w ? w[t[i]] : T(1)) * x[(nn * v.c + t[i]) * v.s + ss];
      }
      reduce_class_losses(c, a_, t, p, w, losses);
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  CrossEntropyAttrs a_;
};

// Inputs (grad, x, target, weight?): d/dx[t] = -w[t] scale at each non-ignored position, 0
// elsewhere.
class NllLossBackwardOp final : public Op {
 public:
  explicit NllLossBackwardOp(CrossEntropyAttrs a) : a_(a) {}
  OpKind kind() const override { return OpKind::nll_loss_backward; }
  std::string attrs() const override { return ce_attrs_text(a_); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override { return in[1]; }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& c) const override {
    const CeView v = ce_view(c.in_shape(1));
    const int64_t* t = c.in<int64_t>(2);
    check_targets(t, v.positions(), v.c, a_.ignore_index, "nll_loss_backward");
    dispatch_float(c.in_meta[1]->dtype, "nll_loss_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* g = c.in<T>(0);
      const T* w = a_.weight ? c.in<T>(3) : nullptr;
      T* dx = c.out<T>();
      const int64_t p = v.positions();
      std::fill(dx, dx + c.out_meta->numel(), T(0));
      const T denom =
          a_.reduction == Reduction::mean ? target_weight_sum(t, p, a_.ignore_index, w) : T(1);
      for (int64_t i = 0; i < p; ++i) {
        if (t[i] == a_.ignore_index) continue;
        const int64_t nn = i / v.s, ss = i % v.s;
        const T scale = a_.reduction == Reduction::none  ? g[i]
                        : a_.reduction == Reduction::sum ? g[0]
                                                         : g[0] / denom;
        dx[(nn * v.c + t[i]) * v.s + ss] = -(w ? w[t[i]] : T(1)) * scale;
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  CrossEntropyAttrs a_;
};

std::vector<Tensor> NllLossOp::backward(const BackwardCtx& c) const {
  std::vector<Tensor> r(c.inputs.size());
  if (c.needs_grad[0])
    r[0] = record(std::make_shared<NllLossBackwardOp>(a_), class_loss_backward_inputs(c));
  return r;
}

// Elementwise BCE on logits x, target y and positive weight pw (1 when absent), all one shape:
//   (1 - y) x + (1 + (pw - 1) y) softplus(-x),  softplus(-x) = log1p(exp(-|x|)) + max(-x, 0)
// (never overflows, as PyTorch).
template <typename T>
T bce_logits(T x, T y, T pw) {
  const T lw = T(1) + (pw - T(1)) * y;
  return (T(1) - y) * x + lw * (std::log1p(std::exp(-std::abs(x))) + std::max(-x, T(0)));
}
// d/dx = (1 - y) - lw sigmoid(-x).
template <typename T>
T bce_logits_grad(T x, T y, T pw) {
  const T lw = T(1) + (pw - T(1)) * y;
  const T s = x >= T(0) ? std::exp(-x) / (T(1) + std::exp(-x)) : T(1) / (T(1) + std::exp(x));
  return (T(1) - y) - lw * s;
}

void check_same_float(const char* op, const std::vector<TensorMeta>& in, size_t first) {
  for (size_t i = first; i < in.size(); ++i) {
    LETHE_CHECK(in[i].shape == in[first].shape, op, ": input ", in[first].shape, " and operand ", i,
                " ", in[i].shape, " shapes differ");
    LETHE_CHECK(in[i].dtype == in[first].dtype && is_floating(in[i].dtype), op,
                ": expected one floating-point dtype, got ", in[first].dtype, " and ", in[i].dtype);
  }
}

// Inputs (x, y, pos_weight?), one shape; the output is the loss per element.
class BceWithLogitsOp final : public Op {
 public:
  OpKind kind() const override { return OpKind::bce_with_logits; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    check_same_float("binary_cross_entropy_with_logits", in, 0);
    return in[0];
  }
  void cpu(const KernelCall& c) const override {
    dispatch_float(c.in_meta[0]->dtype, "bce_with_logits", [&](auto tag) {
      using T = decltype(tag);
      const T *x = c.in<T>(0), *y = c.in<T>(1);
      const T* pw = c.inputs.size() > 2 ? c.in<T>(2) : nullptr;
      T* o = c.out<T>();
      const int64_t n = c.out_meta->numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) o[i] = bce_logits(x[i], y[i], pw ? pw[i] : T(1));
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;
};

// Inputs (grad, x, y, pos_weight?): grad * d/dx.
class BceWithLogitsBackwardOp final : public Op {
 public:
  OpKind kind() const override { return OpKind::bce_with_logits_backward; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    check_same_float("bce_with_logits_backward", in, 0);
    return in[1];
  }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& c) const override {
    dispatch_float(c.in_meta[0]->dtype, "bce_with_logits_backward", [&](auto tag) {
      using T = decltype(tag);
      const T *g = c.in<T>(0), *x = c.in<T>(1), *y = c.in<T>(2);
      const T* pw = c.inputs.size() > 3 ? c.in<T>(3) : nullptr;
      T* o = c.out<T>();
      const int64_t n = c.out_meta->numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) o[i] = g[i] * bce_logits_grad(x[i], y[i], pw ? pw[i] : T(1));
    });
  }
};

std::vector<Tensor> BceWithLogitsOp::backward(const BackwardCtx& c) const {
  std::vector<Tensor> r(c.inputs.size());
  if (c.needs_grad[0]) {
    std::vector<Tensor> in{c.grad_output};
    in.insert(in.end(), c.inputs.begin(), c.inputs.end());
    r[0] = record(std::make_shared<BceWithLogitsBackwardOp>(), in);
  }
  return r;
}

Tensor reduce_loss(const Tensor& l, Reduction r) {
  if (r == Reduction::none) return l;
  return r == Reduction::sum ? sum(l) : mean(l);
}

// Checks of the elementwise losses: two defined floating tensors of one shape and dtype.
void check_pair(const char* op, const Tensor& input, const Tensor& target) {
  LETHE_CHECK(input.defined() && target.defined(), op, ": input or target is an undefined tensor");
  LETHE_CHECK(input.shape() == target.shape(), op, ": input ", input.shape(), " and target ",
              target.shape(), " shapes differ");
  LETHE_CHECK(input.dtype() == target.dtype(), op, ": input dtype ", input.dtype(),
              " and target dtype ", target.dtype(), " differ (shapes ", input.shape(), " and ",
              target.shape(), ")");
  LETHE_CHECK(is_floating(input.dtype()), op, ": expected floating-point tensors, got ",
              input.dtype(), input.shape());
}

Tensor class_loss(OpKind k, const Tensor& input, const Tensor& target, const Tensor& weight,
                  const std::string& reduction, int64_t ignore_index, double label_smoothing) {
  const char* op = op_kind_name(k);
  CrossEntropyAttrs a{parse_reduction(reduction, op), ignore_index, weight.defined(),
                      label_smoothing};
  LETHE_CHECK(label_smoothing >= 0 && label_smoothing <= 1, op,
              ": label_smoothing must be in [0, 1], got ", label_smoothing);
  LETHE_CHECK(
      !weight.defined() || !weight.requires_grad(), op,
      ": the gradient with respect to the class weights is not supported (detach the weight ",
      weight.shape(), ")");
  std::vector<Tensor> in{input, target};
  if (weight.defined()) in.push_back(weight);
  if (k == OpKind::nll_loss) return record(std::make_shared<NllLossOp>(a), in);
  return record(std::make_shared<CrossEntropyOp>(a), in);
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const std::string& reduction,
                     int64_t ignore_index, const Tensor& weight, double label_smoothing) {
  return class_loss(OpKind::cross_entropy, logits, target, weight, reduction, ignore_index,
                    label_smoothing);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight,
                const std::string& reduction, int64_t ignore_index) {
  return class_loss(OpKind::nll_loss, log_probs, target, weight, reduction, ignore_index, 0.0);
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const Tensor& weight, const Tensor& pos_weight,
                                        const std::string& reduction) {
  const char* op = "binary_cross_entropy_with_logits";
  const Reduction r = parse_reduction(reduction, op);
  check_pair(op, input, target);
  LETHE_CHECK(!target.requires_grad() && !(pos_weight.defined() && pos_weight.requires_grad()), op,
              ": the gradient with respect to target or pos_weight is not supported (detach them)");
  std::vector<Tensor> in{input, target};
  if (pos_weight.defined()) {
    LETHE_CHECK(pos_weight.dtype() == input.dtype(), op, ": pos_weight dtype ", pos_weight.dtype(),
                " differs from the input's ", input.dtype());
    in.push_back(pos_weight.shape() == input.shape() ? pos_weight
                                                     : broadcast_to(pos_weight, input.shape()));
  }
  Tensor l = record(std::make_shared<BceWithLogitsOp>(), in);
  if (weight.defined()) {
    LETHE_CHECK(broadcast_shapes(weight.shape(), input.shape(), op) == input.shape(), op,
                ": weight ", weight.shape(), " does not broadcast to the input ", input.shape());
    l = mul(l, weight);
  }
  return reduce_loss(l, r);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
  const Reduction r = parse_reduction(reduction, "mse_loss");
  check_pair("mse_loss", input, target);
  const Tensor d = sub(input, target);
  return reduce_loss(mul(d, d), r);
}

// |d| as relu(d) + relu(-d) (gradient sign(d), 0 at 0, as PyTorch) and min(|d|, delta) as
// |d| - relu(|d| - delta): huber = 0.5 m^2 + delta (|d| - m), whose gradient is exact on both
// sides.
Tensor huber_loss(const Tensor& input, const Tensor& target, const std::string& reduction,
                  double delta) {
  const Reduction r = parse_reduction(reduction, "huber_loss");
  check_pair("huber_loss", input, target);
  LETHE_CHECK(delta > 0, "huber_loss: delta must be positive, got ", delta);
  const Tensor d = sub(input, target);
  const Tensor a = add(relu(d), relu(neg(d)));
  const Tensor m = sub(a, relu(add_scalar(a, -delta)));
  return reduce_loss(add(mul_scalar(mul(m, m), 0.5), mul_scalar(sub(a, m), delta)), r);
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, const std::string& reduction,
                      double beta) {
  const Reduction r = parse_reduction(reduction, "smooth_l1_loss");
  check_pair("smooth_l1_loss", input, target);
  LETHE_CHECK(beta >= 0, "smooth_l1_loss: beta must be non-negative, got ", beta);
  if (beta == 0) {  // l1, as PyTorch
    const Tensor d = sub(input, target);
    return reduce_loss(add(relu(d), relu(neg(d))), r);
  }
  return mul_scalar(huber_loss(input, target, reduction, beta), 1.0 / beta);
}

}  // namespace lethe
