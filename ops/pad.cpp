// pad (constant, reflect, replicate over any trailing dims) and its gradient, one pad_backward node
// per padded dim, each a gather of the output positions that read an input position (no atomics,
// a fixed order). The coordinate maps are ops/resample_index.h's, shared with ops/cuda/pad.cu.
#include "ops/pad.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"
#include "ops/layout.h"
#include "ops/resample_index.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

const char* mode_name(PadMode m) {
  switch (m) {
    case PadMode::constant:
      return "constant";
    case PadMode::reflect:
      return "reflect";
    case PadMode::replicate:
      return "replicate";
  }
  return "?";
}

// The (before, after) pad of dim d of an ndim tensor (0, 0 when pads do not reach it).
void pads_of(const std::vector<int64_t>& pads, int ndim, int d, int64_t* before, int64_t* after) {
  const size_t k = static_cast<size_t>(ndim - 1 - d);
  *before = 2 * k < pads.size() ? pads[2 * k] : 0;
  *after = 2 * k + 1 < pads.size() ? pads[2 * k + 1] : 0;
}

class PadOp final : public Op {
 public:
  explicit PadOp(PadAttrs a) : a_(std::move(a)) {}
  OpKind kind() const override { return OpKind::pad; }
  std::string attrs() const override {
    std::string s = "pads=[";
    for (size_t i = 0; i < a_.pads.size(); ++i) s += (i ? "," : "") + std::to_string(a_.pads[i]);
    s += std::string("],mode=") + mode_name(a_.mode);
    if (a_.mode == PadMode::constant) {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", a_.value);
      s += std::string(",value=") + buf;
    }
    return s;
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const Shape& xs = in[0].shape;
    const int nd = xs.ndim();
    LETHE_CHECK(a_.pads.size() % 2 == 0, "pad: pads must come in (before, after) pairs, got ",
                a_.pads.size(), " values");
    LETHE_CHECK(static_cast<int>(a_.pads.size() / 2) <= nd, "pad: ", a_.pads.size() / 2,
                " dims of padding for an input of shape ", xs, " (", nd, " dims)");
    TensorMeta m = in[0];
    for (int d = 0; d < nd; ++d) {
      int64_t b, e;
      pads_of(a_.pads, nd, d, &b, &e);
      if (a_.mode != PadMode::constant)
        LETHE_CHECK(b >= 0 && e >= 0, "pad: ", mode_name(a_.mode),
                    " padding must not be negative, got (", b, ", ", e, ") for dim ", d,
                    " of shape ", xs);
      if (a_.mode == PadMode::reflect && (b > 0 || e > 0))
        LETHE_CHECK(b < xs[d] && e < xs[d], "pad: reflect padding (", b, ", ", e, ") of dim ", d,
                    " must be smaller than its size ", xs[d], " (shape ", xs, ")");
      if (a_.mode == PadMode::replicate && (b > 0 || e > 0))
        LETHE_CHECK(xs[d] > 0, "pad: replicate padding of the empty dim ", d, " of shape ", xs);
      m.shape[d] = xs[d] + b + e;
      LETHE_CHECK(m.shape[d] >= 0, "pad: padding (", b, ", ", e, ") of dim ", d, " of shape ", xs,
                  " leaves a negative size");
    }
    return m;
  }
  void cpu(const KernelCall& c) const override {
    const Shape &xs = c.in_shape(0), &os = c.out_shape();
    const int nd = xs.ndim();
    const int64_t n = os.numel();
    if (n == 0) return;
    std::vector<int64_t> before(static_cast<size_t>(nd));
    for (int d = 0; d < nd; ++d) {
      int64_t e;
      pads_of(a_.pads, nd, d, &before[static_cast<size_t>(d)], &e);
    }
    const std::vector<int64_t> xst = xs.strides();
    const PadMode mode = a_.mode;
    dispatch_all(c.out_meta->dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = c.in<T>(0);
      T* y = c.out<T>();
      const T value = static_cast<T>(a_.value);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t e = 0; e < n; ++e) {
        int64_t rem = e, off = 0;
        bool inside = true;
        for (int d = nd - 1; d >= 0; --d) {
          const int64_t o = rem % os[d];
          rem /= os[d];
          const int64_t s = resample::pad_source(mode, o, before[static_cast<size_t>(d)], xs[d]);
          if (s < 0) inside = false;
          off += s * xst[static_cast<size_t>(d)];
        }
        y[e] = inside ? x[off] : value;
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  PadAttrs a_;
};

// The gradient of a pad along one axis: [outer, out, inner] -> [outer, in, inner], each input
// position summing the output positions that read it in increasing order.
class PadBackwardOp final : public Op {
 public:
  explicit PadBackwardOp(PadBackwardAttrs a) : a_(a) {}
  OpKind kind() const override { return OpKind::pad_backward; }
  std::string attrs() const override {
    return "axis=" + std::to_string(a_.axis) + ",before=" + std::to_string(a_.before) +
           ",after=" + std::to_string(a_.after) + ",mode=" + mode_name(a_.mode);
  }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    TensorMeta m = in[0];
    m.shape[a_.axis] -= a_.before + a_.after;
    LETHE_CHECK(m.shape[a_.axis] >= 0, "pad_backward: gradient ", in[0].shape,
                " is too small for pads (", a_.before, ", ", a_.after, ") of dim ", a_.axis);
    return m;
  }
  void cpu(const KernelCall& c) const override {
    const layout::AxisView v = layout::axis_view(c.out_shape(), a_.axis);
    const int64_t out_len = c.in_shape(0)[a_.axis];
    const int64_t n = c.out_meta->numel();
    const PadBackwardAttrs a = a_;
    dispatch_float(c.out_meta->dtype, "pad_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* g = c.in<T>(0);
      T* dx = c.out<T>();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t t = 0; t < v.outer * v.r; ++t) {
        const int64_t o = t / v.r, i = t % v.r;
        int64_t lo[3], hi[3];
        const int k = resample::pad_readers(a.mode, i, a.before, v.r, out_len, lo, hi);
        T* dst = dx + t * v.inner;
        const T* src = g + o * out_len * v.inner;
        for (int64_t j = 0; j < v.inner; ++j) dst[j] = T(0);
        for (int q = 0; q < k; ++q)
          for (int64_t p = lo[q]; p < hi[q]; ++p)
            for (int64_t j = 0; j < v.inner; ++j) dst[j] += src[p * v.inner + j];
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  PadBackwardAttrs a_;
};

std::vector<Tensor> PadOp::backward(const BackwardCtx& c) const {
  if (!c.needs_grad[0]) return {Tensor()};
  Tensor g = c.grad_output;
  const int nd = c.inputs[0].dim();
  for (int d = 0; d < nd; ++d) {
    PadBackwardAttrs b;
    b.axis = d;
    b.mode = a_.mode;
    pads_of(a_.pads, nd, d, &b.before, &b.after);
    if (b.before != 0 || b.after != 0) g = record(std::make_shared<PadBackwardOp>(b), {g});
  }
  return {g};
}

}  // namespace

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode,
           double value) {
  LETHE_CHECK(x.defined(), "pad: the input is an undefined tensor");
  PadAttrs a;
  a.pads = pads;
  a.value = value;
  if (mode == "constant")
    a.mode = PadMode::constant;
  else if (mode == "reflect")
    a.mode = PadMode::reflect;
  else if (mode == "replicate")
    a.mode = PadMode::replicate;
  else
    throw Error("pad: mode must be \"constant\", \"reflect\" or \"replicate\", got \"" + mode +
                "\"");
  LETHE_CHECK(a.mode == PadMode::constant || value == 0.0,
              "pad: a value is only for mode \"constant\", got ", value, " with \"", mode, "\"");
  return record(std::make_shared<PadOp>(std::move(a)), {x});
}

}  // namespace lethe
