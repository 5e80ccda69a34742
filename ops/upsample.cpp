// upsample_nearest2d, upsample_bilinear2d and their backward ops. Every pixel, forward and
// backward, is computed by ops/resample_index.h's functions, which ops/cuda/upsample.cu calls too.
#include "ops/upsample.h"

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"
#include "ops/resample_index.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

std::string up_attrs(const UpsampleAttrs& a, bool bilinear) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "size=[%lld,%lld],input=[%lld,%lld],scale=[%.17g,%.17g]%s",
                static_cast<long long>(a.size[0]), static_cast<long long>(a.size[1]),
                static_cast<long long>(a.input_size[0]), static_cast<long long>(a.input_size[1]),
                a.scale[0], a.scale[1],
                bilinear ? (a.align_corners ? ",align_corners=1" : ",align_corners=0") : "");
  return buf;
}

// Every pixel (p, q) of every plane of the [N, C, P, Q] output of c: upsample_at of the input
// plane (forward) or upsample_grad_at of the gradient plane (backward).
void run_pixels(const KernelCall& c, const UpsampleAttrs& a, bool bilinear, bool backward,
                const char* op) {
  const resample::UpAxis h = resample::up_axis(a, 0), w = resample::up_axis(a, 1);
  const Shape& out = c.out_shape();
  const int64_t P = out[2], Q = out[3], n = out.numel();
  const int64_t in_plane = backward ? h.out * w.out : h.in * w.in;
  dispatch_float(c.out_meta->dtype, op, [&](auto tag) {
    using T = decltype(tag);
    const T* x = c.in<T>(0);
    T* y = c.out<T>();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t e = 0; e < n; ++e) {
      const T* src = x + e / (P * Q) * in_plane;
      const int64_t p = (e / Q) % P, q = e % Q;
      y[e] = backward ? resample::upsample_grad_at<T>(src, h, w, bilinear, p, q)
                      : resample::upsample_at<T>(src, h, w, bilinear, p, q);
    }
  });
}

// What the four ops share: the attributes, their text and typed view, the mode.
class UpsampleBase : public Op {
 public:
  UpsampleBase(UpsampleAttrs a, bool bilinear) : a_(a), bilinear_(bilinear) {}
  std::string attrs() const override { return up_attrs(a_, bilinear_); }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }
  UpsampleAttrs a_;
  bool bilinear_;
};

class UpsampleOp final : public UpsampleBase {
 public:
  using UpsampleBase::UpsampleBase;
  OpKind kind() const override {
    return bilinear_ ? OpKind::upsample_bilinear2d : OpKind::upsample_nearest2d;
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const Shape& xs = in[0].shape;
    LETHE_CHECK(xs.ndim() == 4, name(), ": expected an NCHW input (4 dims), got ", xs);
    LETHE_CHECK(is_floating(in[0].dtype), name(), ": expected a floating-point input, got ",
                in[0].dtype);
    LETHE_CHECK(xs[2] == a_.input_size[0] && xs[3] == a_.input_size[1], "internal error: ", name(),
                " recorded for another input size");
    TensorMeta m = in[0];
    m.shape = Shape{xs[0], xs[1], a_.size[0], a_.size[1]};
    return m;
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops *= bilinear_ ? 12 : 1;
    return c;
  }
  void cpu(const KernelCall& c) const override {
    run_pixels(c, a_, bilinear_, false, name().c_str());
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;
};

class UpsampleBackwardOp final : public UpsampleBase {
 public:
  using UpsampleBase::UpsampleBase;
  OpKind kind() const override {
    return bilinear_ ? OpKind::upsample_bilinear2d_backward : OpKind::upsample_nearest2d_backward;
  }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const Shape& gs = in[0].shape;
    LETHE_CHECK(gs.ndim() == 4 && gs[2] == a_.size[0] && gs[3] == a_.size[1], name(), ": gradient ",
                gs, " does not match the output size [", a_.size[0], ", ", a_.size[1], "]");
    TensorMeta m = in[0];
    m.shape = Shape{gs[0], gs[1], a_.input_size[0], a_.input_size[1]};
    return m;
  }
  void cpu(const KernelCall& c) const override {
    run_pixels(c, a_, bilinear_, true, name().c_str());
  }
};

std::vector<Tensor> UpsampleOp::backward(const BackwardCtx& c) const {
  if (!c.needs_grad[0]) return {Tensor()};
  return {record(std::make_shared<UpsampleBackwardOp>(a_, bilinear_), {c.grad_output})};
}

Tensor upsample(const Tensor& x, const char* op, const int64_t* size, const double* scale,
                bool bilinear, bool align_corners) {
  LETHE_CHECK(x.defined(), op, ": the input is an undefined tensor");
  LETHE_CHECK(x.dim() == 4, op, ": expected an NCHW input (4 dims), got ", x.shape());
  UpsampleAttrs a;
  a.input_size = {x.size(2), x.size(3)};
  a.align_corners = align_corners;
  for (int d = 0; d < 2; ++d) {
    if (scale) {
      LETHE_CHECK(std::isfinite(scale[d]) && scale[d] > 0, op,
                  ": scale factors must be positive, got ", scale[0], " and ", scale[1]);
      a.scale[d] = scale[d];
      a.size[d] = static_cast<int64_t>(std::floor(static_cast<double>(a.input_size[d]) * scale[d]));
    } else {
      a.size[d] = size[d];
    }
  }
  LETHE_CHECK(a.size[0] > 0 && a.size[1] > 0 && a.input_size[0] > 0 && a.input_size[1] > 0, op,
              ": input ", x.shape(), " and output size [", a.size[0], ", ", a.size[1],
              "] must be non-empty");
  return record(std::make_shared<UpsampleOp>(a, bilinear), {x});
}

}  // namespace

Tensor upsample_nearest2d(const Tensor& x, std::array<int64_t, 2> size) {
  return upsample(x, "upsample_nearest2d", size.data(), nullptr, false, false);
}
Tensor upsample_nearest2d(const Tensor& x, double scale_h, double scale_w) {
  const double s[2] = {scale_h, scale_w};
  return upsample(x, "upsample_nearest2d", nullptr, s, false, false);
}
Tensor upsample_bilinear2d(const Tensor& x, std::array<int64_t, 2> size, bool align_corners) {
  return upsample(x, "upsample_bilinear2d", size.data(), nullptr, true, align_corners);
}
Tensor upsample_bilinear2d(const Tensor& x, double scale_h, double scale_w, bool align_corners) {
  const double s[2] = {scale_h, scale_w};
  return upsample(x, "upsample_bilinear2d", nullptr, s, true, align_corners);
}

}  // namespace lethe
