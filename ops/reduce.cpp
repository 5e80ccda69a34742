// Reductions: sum and mean over any axes, max/min (values) and argmax/argmin along one axis, and
// cumsum (a scan along one axis).
#include "ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"
#include "ops/elementwise.h"
#include "ops/shape_ops.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

// Sorted, wrapped axes (empty = all); a repeated axis is an error.
std::vector<int> normalise_axes(const std::vector<int>& axes, const Shape& s, const char* op) {
  std::vector<int> r;
  if (axes.empty()) {
    for (int d = 0; d < s.ndim(); ++d) r.push_back(d);
    return r;
  }
  for (int a : axes) r.push_back(s.axis(a, op));
  std::sort(r.begin(), r.end());
  for (size_t i = 1; i < r.size(); ++i)
    LETHE_CHECK(r[i] != r[i - 1], op, ": axis ", r[i], " is repeated in the axes of shape ", s);
  return r;
}

std::string axes_str(const std::vector<int>& axes) {
  std::string s = "[";
  for (size_t i = 0; i < axes.size(); ++i) s += (i ? "," : "") + std::to_string(axes[i]);
  return s + "]";
}

// x's shape with the reduced axes set to 1.
Shape keep_shape(const Shape& s, const std::vector<int>& axes) {
  std::vector<int64_t> d = s.dims();
  for (int a : axes) d[static_cast<size_t>(a)] = 1;
  return Shape(std::move(d));
}

Shape out_shape(const Shape& s, const std::vector<int>& axes, bool keepdim) {
  if (keepdim) return keep_shape(s, axes);
  std::vector<int64_t> d;
  for (int i = 0; i < s.ndim(); ++i)
    if (!std::binary_search(axes.begin(), axes.end(), i)) d.push_back(s[i]);
  return Shape(std::move(d));
}

// sum (mean = false) or mean over `axes` (already normalised against the input's shape).
class SumOp final : public Op {
 public:
  SumOp(std::vector<int> axes, bool keepdim, bool mean)
      : mean_(mean), a_{std::move(axes), keepdim} {}
  OpKind kind() const override { return mean_ ? OpKind::mean : OpKind::sum; }
  std::string attrs() const override {
    return "axes=" + axes_str(a_.axes) + ",keepdim=" + (a_.keepdim ? "1" : "0");
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(!mean_ || is_floating(in[0].dtype), "mean: expected a floating-point tensor, got ",
                in[0].dtype, in[0].shape);
    for (int a : a_.axes) LETHE_ASSERT(a >= 0 && a < in[0].shape.ndim());
    TensorMeta m = in[0];
    m.shape = out_shape(in[0].shape, a_.axes, a_.keepdim);
    return m;
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = static_cast<double>(in[0].numel());
    return c;
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    const int64_t n = in[0].numel();
    const int64_t elems = cpu::reduce_scratch_elems(n);
    return static_cast<size_t>(elems) * dtype_size(in[0].dtype);
  }
  void cpu(const KernelCall& c) const override {
    const Shape& xs = c.in_shape(0);
    const Shape keep = keep_shape(xs, a_.axes);
    dispatch_all(c.in_meta[0]->dtype, [&](auto tag) {
      using T = decltype(tag);
      T* out = c.out<T>();
      cpu::reduce_sum(c.in<T>(0), xs, keep, out, static_cast<T*>(c.workspace));
      if constexpr (std::is_floating_point_v<T>) {
        if (mean_) {
          const int64_t m = keep.numel();
          const T inv = T(1) / static_cast<T>(xs.numel() / std::max<int64_t>(m, 1));
          for (int64_t i = 0; i < m; ++i) out[i] *= inv;
        }
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor()};
    const Shape& xs = c.inputs[0].shape();
    Tensor g = broadcast_to(reshape(c.grad_output, keep_shape(xs, a_.axes)), xs);
    if (mean_) {
      const int64_t m = keep_shape(xs, a_.axes).numel();
      g = mul_scalar(g, 1.0 / static_cast<double>(xs.numel() / std::max<int64_t>(m, 1)));
    }
    return {g};
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  bool mean_;
  ReduceAttrs a_;
};

using cpu::axis_view;
using cpu::AxisView;

// NaN counts as better than everything (it propagates, as in PyTorch); ties keep the first index.
template <bool Min, typename T>
bool better(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(best)) return false;
    if (std::isnan(v)) return true;
  }
  return Min ? v < best : v > best;
}

// For each (outer, inner): the first index of the largest (Min: smallest) value along the axis,
// and that value.
template <bool Min, typename T>
void max_along(const T* x, const AxisView& v, T* vals, int64_t* idx) {
#pragma omp parallel for schedule(static) if (v.outer * v.r * v.inner > kParallelGrain)
  for (int64_t o = 0; o < v.outer; ++o) {
    const T* src = x + o * v.r * v.inner;
    for (int64_t i = 0; i < v.inner; ++i) {
      T best = src[i];
      int64_t bi = 0;
      for (int64_t r = 1; r < v.r; ++r) {
        const T cand = src[r * v.inner + i];
        if (better<Min>(cand, best)) {
          best = cand;
          bi = r;
        }
      }
      if (vals) vals[o * v.inner + i] = best;
      if (idx) idx[o * v.inner + i] = bi;
    }
  }
}

class MaxOp final : public Op {
 public:
  MaxOp(int axis, bool keepdim, bool arg, bool min = false)
      : arg_(arg), min_(min), a_{axis, keepdim} {}
  OpKind kind() const override {
    if (min_) return arg_ ? OpKind::argmin : OpKind::min;
    return arg_ ? OpKind::argmax : OpKind::max;
  }
  std::string attrs() const override {
    return "axis=" + std::to_string(a_.axis) + ",keepdim=" + (a_.keepdim ? "1" : "0");
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in[0].shape[a_.axis] > 0, name(), ": cannot reduce the empty axis ", a_.axis,
                " of shape ", in[0].shape);
    TensorMeta m = in[0];
    m.shape = out_shape(in[0].shape, {a_.axis}, a_.keepdim);
    if (arg_) m.dtype = DType::i64;
    return m;
  }
  bool differentiable() const override { return !arg_; }
  void cpu(const KernelCall& c) const override {
    const AxisView v = axis_view(c.in_shape(0), a_.axis);
    dispatch_all(c.in_meta[0]->dtype, [&](auto tag) {
      using T = decltype(tag);
      T* vals = arg_ ? nullptr : c.out<T>();
      int64_t* idx = arg_ ? c.out<int64_t>() : nullptr;
      if (min_)
        max_along<true, T>(c.in<T>(0), v, vals, idx);
      else
        max_along<false, T>(c.in<T>(0), v, vals, idx);
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  bool arg_, min_;
  AxisAttrs a_;
};

// Gradient of max (and of min): grad (max's output shape) placed at the argmax index along `axis`
// of a zero tensor of the input's shape.
class MaxBackwardOp final : public Op {
 public:
  MaxBackwardOp(Shape in_shape, int axis) : in_(std::move(in_shape)), a_{axis, false} {}
  OpKind kind() const override { return OpKind::max_backward; }
  std::string attrs() const override {
    return "shape=" + in_.str() + ",axis=" + std::to_string(a_.axis);
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in[1].dtype == DType::i64, "max_backward: indices must be i64, got ", in[1].dtype);
    LETHE_CHECK(in[0].numel() == in[1].numel(), "max_backward: gradient ", in[0].shape,
                " and indices ", in[1].shape, " differ");
    TensorMeta m = in[0];
    m.shape = in_;
    return m;
  }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& c) const override {
    const AxisView v = axis_view(in_, a_.axis);
    const int64_t* idx = c.in<int64_t>(1);
    dispatch_float(c.in_meta[0]->dtype, "max_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* g = c.in<T>(0);
      T* out = c.out<T>();
      const int64_t n = in_.numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t o = 0; o < v.outer; ++o) {
        T* dst = out + o * v.r * v.inner;
        for (int64_t j = 0; j < v.r * v.inner; ++j) dst[j] = T(0);
        for (int64_t i = 0; i < v.inner; ++i) {
          const int64_t k = o * v.inner + i;
          dst[idx[k] * v.inner + i] = g[k];
        }
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  Shape in_;
  AxisAttrs a_;
};

std::vector<Tensor> MaxOp::backward(const BackwardCtx& c) const {
  if (arg_ || !c.needs_grad[0]) return {Tensor()};
  const Tensor& x = c.inputs[0];
  Tensor idx = min_ ? argmin(x, a_.axis, a_.keepdim) : argmax(x, a_.axis, a_.keepdim);
  return {record(std::make_shared<MaxBackwardOp>(x.shape(), a_.axis), {c.grad_output, idx})};
}

// Inclusive prefix sums along an axis (reverse: from the end), each line summed in order.
class CumsumOp final : public Op {
 public:
  CumsumOp(int axis, bool reverse) : a_{axis, reverse} {}
  OpKind kind() const override { return OpKind::cumsum; }
  std::string attrs() const override {
    return "axis=" + std::to_string(a_.axis) + ",reverse=" + (a_.reverse ? "1" : "0");
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override { return in[0]; }
  void cpu(const KernelCall& c) const override {
    const AxisView v = axis_view(c.in_shape(0), a_.axis);
    const bool rev = a_.reverse;
    dispatch_all(c.in_meta[0]->dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = c.in<T>(0);
      T* y = c.out<T>();
      // Rows of `inner` contiguous elements, added row after row (vectorised along inner).
#pragma omp parallel for schedule(static) if (v.outer * v.r * v.inner > kParallelGrain)
      for (int64_t o = 0; o < v.outer; ++o) {
        const T* src = x + o * v.r * v.inner;
        T* dst = y + o * v.r * v.inner;
        for (int64_t k = 0; k < v.r; ++k) {
          const int64_t r = rev ? v.r - 1 - k : k;
          const T* s = src + r * v.inner;
          T* d = dst + r * v.inner;
          if (k == 0) {
            for (int64_t i = 0; i < v.inner; ++i) d[i] = s[i];
          } else {
            const T* p = rev ? d + v.inner : d - v.inner;
            for (int64_t i = 0; i < v.inner; ++i) d[i] = p[i] + s[i];
          }
        }
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor()};
    return {record(std::make_shared<CumsumOp>(a_.axis, !a_.reverse), {c.grad_output})};
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  CumsumAttrs a_;
};

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  LETHE_CHECK(x.defined(), "sum: the input is an undefined tensor");
  return record(std::make_shared<SumOp>(normalise_axes(axes, x.shape(), "sum"), keepdim, false),
                {x});
}

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  LETHE_CHECK(x.defined(), "mean: the input is an undefined tensor");
  return record(std::make_shared<SumOp>(normalise_axes(axes, x.shape(), "mean"), keepdim, true),
                {x});
}

Tensor max(const Tensor& x, int axis, bool keepdim) {
  LETHE_CHECK(x.defined(), "max: the input is an undefined tensor");
  return record(std::make_shared<MaxOp>(x.shape().axis(axis, "max"), keepdim, false), {x});
}

Tensor argmax(const Tensor& x, int axis, bool keepdim) {
  LETHE_CHECK(x.defined(), "argmax: the input is an undefined tensor");
  return record(std::make_shared<MaxOp>(x.shape().axis(axis, "argmax"), keepdim, true), {x});
}

}  // namespace lethe

namespace lethe {

Tensor min(const Tensor& x, int axis, bool keepdim) {
  LETHE_CHECK(x.defined(), "min: the input is an undefined tensor");
  return record(std::make_shared<MaxOp>(x.shape().axis(axis, "min"), keepdim, false, true), {x});
}

Tensor argmin(const Tensor& x, int axis, bool keepdim) {
  LETHE_CHECK(x.defined(), "argmin: the input is an undefined tensor");
  return record(std::make_shared<MaxOp>(x.shape().axis(axis, "argmin"), keepdim, true, true), {x});
}

Tensor cumsum(const Tensor& x, int axis) {
  LETHE_CHECK(x.defined(), "cumsum: the input is an undefined tensor");
  LETHE_CHECK(x.dim() > 0, "cumsum: the input is a 0-d tensor; give it a dim first");
  return record(std::make_shared<CumsumOp>(x.shape().axis(axis, "cumsum"), false), {x});
}

}  // namespace lethe
