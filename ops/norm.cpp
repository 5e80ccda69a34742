// layer_norm and batch_norm. Statistics accumulate in double; every reduction has a fixed order.
//
// batch_norm in training records: a stats node x -> [2, C] (mean, biased variance), an apply node
// (x, stats, weight?, bias?) -> y, and, when running statistics are given, a side-effect node
// batch_norm_update_stats (running_mean, running_var, stats) that updates them in place. The apply
// node's gradient rule differentiates through the batch statistics itself (stats is a function of x
// only and has no other differentiable use), so the stats node needs no gradient rule.
#include "ops/norm.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "framework/error.h"
#include "ops/attrs.h"
#include "framework/session.h"
#include "ops/reduce.h"

namespace lethe {
namespace {

std::string num_text(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

// ---------------------------------------------------------------- layer_norm

// "normalized_shape=[...],eps=..." (the weight and bias flags are added by the ops that have them).
std::string ln_text(const LayerNormAttrs& a) {
  return "normalized_shape=" + Shape(a.normalized_shape).str() + ",eps=" + num_text(a.eps);
}

// Rows and row length of x normalised over its trailing `shape` dims (checked).
std::pair<int64_t, int64_t> ln_rows(const char* op, const Shape& x,
                                    const std::vector<int64_t>& ns) {
  const int k = static_cast<int>(ns.size());
  bool ok = k >= 1 && x.ndim() >= k;
  for (int i = 0; ok && i < k; ++i) ok = x[x.ndim() - k + i] == ns[static_cast<size_t>(i)];
  LETHE_CHECK(ok, op, ": input ", x, " does not end with normalized_shape ", Shape(ns));
  int64_t d = Shape(ns).numel();
  return {d == 0 ? 0 : x.numel() / d, d};
}

// Mean and 1/sqrt(var + eps) of one row.
template <typename T>
void row_stats(const T* x, int64_t d, double eps, double* mean, double* rstd) {
  double s = 0;
  for (int64_t j = 0; j < d; ++j) s += static_cast<double>(x[j]);
  const double m = d ? s / double(d) : 0.0;
  double v = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double c = static_cast<double>(x[j]) - m;
    v += c * c;
  }
  *mean = m;
  *rstd = 1.0 / std::sqrt((d ? v / double(d) : 0.0) + eps);
}

class LayerNormOp final : public Op {
 public:
  explicit LayerNormOp(LayerNormAttrs a) : attrs_(std::move(a)) {}
  OpKind kind() const override { return OpKind::layer_norm; }
  std::string attrs() const override {
    return ln_text(attrs_) + ",weight=" + (attrs_.weight ? "1" : "0") +
           ",bias=" + (attrs_.bias ? "1" : "0");
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    ln_rows("layer_norm", in[0].shape, attrs_.normalized_shape);
    LETHE_CHECK(is_floating(in[0].dtype), "layer_norm: expected a floating-point input, got ",
                in[0].dtype);
    for (size_t i = 1; i < in.size(); ++i)
      LETHE_CHECK(in[i].shape == Shape(attrs_.normalized_shape) && in[i].dtype == in[0].dtype,
                  "layer_norm: input ", in[0].shape, " and ",
                  (attrs_.weight && i == 1 ? "weight " : "bias "), in[i].shape, " (", in[i].dtype,
                  "): expected ", in[0].dtype, Shape(attrs_.normalized_shape));
    return in[0];
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 8.0 * double(out.numel());
    return c;
  }
  void cpu(const KernelCall& kc) const override {
    const auto [rows, d] = ln_rows("layer_norm", kc.in_shape(0), attrs_.normalized_shape);
    dispatch_float(kc.out_meta->dtype, "layer_norm", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      const T* w = attrs_.weight ? kc.in<T>(1) : nullptr;
      const T* b = attrs_.bias ? kc.in<T>(attrs_.weight ? 2 : 1) : nullptr;
      T* y = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        double mean, rstd;
        row_stats(x + r * d, d, attrs_.eps, &mean, &rstd);
        const T* xr = x + r * d;
        T* yr = y + r * d;
        const T m = T(mean), s = T(rstd);
        for (int64_t j = 0; j < d; ++j) {
          T v = (xr[j] - m) * s;
          if (w) v *= w[j];
          if (b) v += b[j];
          yr[j] = v;
        }
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(attrs_);
  }

 private:
  LayerNormAttrs attrs_;
};

// dx = rstd·(gw - mean(gw) - x̂·mean(gw·x̂)), gw = g·w. Inputs: x, g, weight?.
class LayerNormBackwardInputOp final : public Op {
 public:
  // weight: whether w is an input (the forward's); bias is not one.
  explicit LayerNormBackwardInputOp(LayerNormAttrs a) : attrs_(std::move(a)) {
    attrs_.bias = false;
  }
  OpKind kind() const override { return OpKind::layer_norm_backward_input; }
  std::string attrs() const override {
    return ln_text(attrs_) + ",weight=" + (attrs_.weight ? "1" : "0");
  }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    ln_rows("layer_norm_backward_input", in[0].shape, attrs_.normalized_shape);
    LETHE_CHECK(in[1] == in[0], "layer_norm_backward_input: input ", in[0].str(), " and grad ",
                in[1].str(), " differ");
    return in[0];
  }
  void cpu(const KernelCall& kc) const override {
    const auto [rows, d] =
        ln_rows("layer_norm_backward_input", kc.in_shape(0), attrs_.normalized_shape);
    dispatch_float(kc.out_meta->dtype, "layer_norm_backward_input", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      const T* g = kc.in<T>(1);
      const T* w = attrs_.weight ? kc.in<T>(2) : nullptr;
      T* dx = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + r * d;
        const T* gr = g + r * d;
        double mean, rstd;
        row_stats(xr, d, attrs_.eps, &mean, &rstd);
        double sg = 0, sgx = 0;
        for (int64_t j = 0; j < d; ++j) {
          const double gw = double(gr[j]) * (w ? double(w[j]) : 1.0);
          sg += gw;
          sgx += gw * (double(xr[j]) - mean) * rstd;
        }
        const double mg = sg / double(d), mgx = sgx / double(d);
        T* out = dx + r * d;
        for (int64_t j = 0; j < d; ++j) {
          const double gw = double(gr[j]) * (w ? double(w[j]) : 1.0);
          const double xh = (double(xr[j]) - mean) * rstd;
          out[j] = T(rstd * (gw - mg - xh * mgx));
        }
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(attrs_);
  }

 private:
  LayerNormAttrs attrs_;
};

// dweight = Σ_rows g·x̂. Inputs: x, g. Threads split the columns, rows are summed in order.
class LayerNormBackwardWeightOp final : public Op {
 public:
  explicit LayerNormBackwardWeightOp(LayerNormAttrs a) : attrs_(std::move(a)) {
    attrs_.weight = attrs_.bias = false;
  }
  OpKind kind() const override { return OpKind::layer_norm_backward_weight; }
  std::string attrs() const override { return ln_text(attrs_); }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    ln_rows("layer_norm_backward_weight", in[0].shape, attrs_.normalized_shape);
    LETHE_CHECK(in[1] == in[0], "layer_norm_backward_weight: input ", in[0].str(), " and grad ",
                in[1].str(), " differ");
    return TensorMeta{Shape(attrs_.normalized_shape), in[0].dtype, in[0].device};
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    const auto [rows, d] =
        ln_rows("layer_norm_backward_weight", in[0].shape, attrs_.normalized_shape);
    return static_cast<size_t>(rows) * 2 * sizeof(double);  // mean, rstd per row
  }
  void cpu(const KernelCall& kc) const override {
    const auto [rows, d] =
        ln_rows("layer_norm_backward_weight", kc.in_shape(0), attrs_.normalized_shape);
    double* st = static_cast<double*>(kc.workspace);  // mean, rstd per row
    dispatch_float(kc.out_meta->dtype, "layer_norm_backward_weight", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      const T* g = kc.in<T>(1);
      T* dw = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r)
        row_stats(x + r * d, d, attrs_.eps, &st[2 * r], &st[2 * r + 1]);
      constexpr int64_t kBlock = 256;
      const int64_t blocks = (d + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
      for (int64_t bl = 0; bl < blocks; ++bl) {
        const int64_t j0 = bl * kBlock, j1 = std::min(d, j0 + kBlock);
        double acc[kBlock] = {};
        for (int64_t r = 0; r < rows; ++r) {
          const T* xr = x + r * d;
          const T* gr = g + r * d;
          const double m = st[2 * r], s = st[2 * r + 1];
          for (int64_t j = j0; j < j1; ++j) acc[j - j0] += double(gr[j]) * (double(xr[j]) - m) * s;
        }
        for (int64_t j = j0; j < j1; ++j) dw[j] = T(acc[j - j0]);
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(attrs_);
  }

 private:
  LayerNormAttrs attrs_;
};

std::vector<Tensor> LayerNormOp::backward(const BackwardCtx& c) const {
  const Tensor &x = c.inputs[0], &g = c.grad_output;
  std::vector<Tensor> r(c.inputs.size());
  if (c.needs_grad[0]) {
    std::vector<Tensor> in{x, g};
    if (attrs_.weight) in.push_back(c.inputs[1]);
    r[0] = record(std::make_shared<LayerNormBackwardInputOp>(attrs_), in);
  }
  if (attrs_.weight && c.needs_grad[1])
    r[1] = record(std::make_shared<LayerNormBackwardWeightOp>(attrs_), {x, g});
  const size_t bi = attrs_.weight ? 2 : 1;
  if (attrs_.bias && c.needs_grad[bi]) {
    std::vector<int> axes;
    for (int i = 0; i < x.dim() - static_cast<int>(attrs_.normalized_shape.size()); ++i)
      axes.push_back(i);
    r[bi] = axes.empty() ? g : sum(g, axes);
  }
  return r;
}

// ---------------------------------------------------------------- batch_norm

// x [N, C, S...] seen as N x C x S.
struct BnGeo {
  int64_t n, c, s;
  int64_t count() const { return n * s; }
};

BnGeo bn_geo(const char* op, const Shape& x) {
  LETHE_CHECK(x.ndim() >= 2, op, ": expected an input [N, C, ...], got ", x);
  int64_t s = 1;
  for (int i = 2; i < x.ndim(); ++i) s *= x[i];
  return BnGeo{x[0], x[1], s};
}

// Which inputs an apply/backward node has: (x-like inputs...), then stats [2, C] in training or
// running_mean, running_var [C] in eval, then weight?, bias?.
struct BnLayout : BatchNormAttrs {
  int first;  // index of the first statistics input
  int stat_inputs() const { return training ? 1 : 2; }
  int w_index() const { return first + stat_inputs(); }
  int b_index() const { return w_index() + (weight ? 1 : 0); }
  std::string text() const {
    return std::string("training=") + (training ? "1" : "0") + ",weight=" + (weight ? "1" : "0") +
           ",bias=" + (bias ? "1" : "0") + ",eps=" + num_text(eps);
  }
  void check(const char* op, const std::vector<TensorMeta>& in, const BnGeo& g, int x_index) const {
    const TensorMeta& x = in[static_cast<size_t>(x_index)];
    auto expect = [&](int i, const Shape& s, const char* what) {
      const TensorMeta& m = in[static_cast<size_t>(i)];
      LETHE_CHECK(m.shape == s && m.dtype == x.dtype, op, ": input ", x.shape, " and ", what, " ",
                  m.shape, " (", m.dtype, "): expected ", x.dtype, s);
    };
    if (training) {
      expect(first, Shape{2, g.c}, "stats");
    } else {
      expect(first, Shape{g.c}, "running_mean");
      expect(first + 1, Shape{g.c}, "running_var");
    }
  }
  // Mean and variance pointers of channel statistics.
  template <typename T>
  std::pair<const T*, const T*> stats(const KernelCall& kc, int64_t c) const {
    if (training) return {kc.in<T>(size_t(first)), kc.in<T>(size_t(first)) + c};
    return {kc.in<T>(size_t(first)), kc.in<T>(size_t(first) + 1)};
  }
};

class BatchNormStatsOp final : public Op {
 public:
  OpKind kind() const override { return OpKind::batch_norm_stats; }
  bool differentiable() const override {
    return false;
  }  // the apply node differentiates through it
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const BnGeo g = bn_geo("batch_norm", in[0].shape);
    LETHE_CHECK(is_floating(in[0].dtype), "batch_norm: expected a floating-point input, got ",
                in[0].dtype);
    return TensorMeta{Shape{2, g.c}, in[0].dtype, in[0].device};
  }
  void cpu(const KernelCall& kc) const override {
    const BnGeo g = bn_geo("batch_norm", kc.in_shape(0));
    dispatch_float(kc.out_meta->dtype, "batch_norm_stats", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      T* out = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < g.c; ++c) {
        double s = 0;
        for (int64_t n = 0; n < g.n; ++n) {
          const T* p = x + (n * g.c + c) * g.s;
          for (int64_t i = 0; i < g.s; ++i) s += double(p[i]);
        }
        const double m = g.count() ? s / double(g.count()) : 0.0;
        double v = 0;
        for (int64_t n = 0; n < g.n; ++n) {
          const T* p = x + (n * g.c + c) * g.s;
          for (int64_t i = 0; i < g.s; ++i) v += (double(p[i]) - m) * (double(p[i]) - m);
        }
        out[c] = T(m);
        out[g.c + c] = T(g.count() ? v / double(g.count()) : 0.0);
      }
    });
  }
};

class BatchNormApplyOp final : public Op {
 public:
  explicit BatchNormApplyOp(BnLayout l) : l_(l) {}
  OpKind kind() const override { return OpKind::batch_norm; }
  std::string attrs() const override { return l_.text(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const BnGeo g = bn_geo("batch_norm", in[0].shape);
    LETHE_CHECK(is_floating(in[0].dtype), "batch_norm: expected a floating-point input, got ",
                in[0].dtype);
    l_.check("batch_norm", in, g, 0);
    if (l_.weight)
      LETHE_CHECK(in[size_t(l_.w_index())].shape == Shape{g.c} &&
                      in[size_t(l_.w_index())].dtype == in[0].dtype,
                  "batch_norm: input ", in[0].shape, " and weight ", in[size_t(l_.w_index())].shape,
                  ": expected ", in[0].dtype, Shape{g.c});
    if (l_.bias)
      LETHE_CHECK(in[size_t(l_.b_index())].shape == Shape{g.c} &&
                      in[size_t(l_.b_index())].dtype == in[0].dtype,
                  "batch_norm: input ", in[0].shape, " and bias ", in[size_t(l_.b_index())].shape,
                  ": expected ", in[0].dtype, Shape{g.c});
    return in[0];
  }
  void cpu(const KernelCall& kc) const override {
    const BnGeo g = bn_geo("batch_norm", kc.in_shape(0));
    dispatch_float(kc.out_meta->dtype, "batch_norm", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      auto [mean, var] = l_.stats<T>(kc, g.c);
      const T* w = l_.weight ? kc.in<T>(size_t(l_.w_index())) : nullptr;
      const T* b = l_.bias ? kc.in<T>(size_t(l_.b_index())) : nullptr;
      T* y = kc.out<T>();
      std::vector<T> scale(size_t(g.c)), shift(size_t(g.c));
      for (int64_t c = 0; c < g.c; ++c) {
        const double inv = 1.0 / std::sqrt(double(var[c]) + l_.eps);
        const double sc = inv * (w ? double(w[c]) : 1.0);
        scale[size_t(c)] = T(sc);
        shift[size_t(c)] = T((b ? double(b[c]) : 0.0) - double(mean[c]) * sc);
      }
#pragma omp parallel for schedule(static)
      for (int64_t pl = 0; pl < g.n * g.c; ++pl) {
        const int64_t c = pl % g.c;
        const T sc = scale[size_t(c)], sh = shift[size_t(c)];
        const T* xp = x + pl * g.s;
        T* yp = y + pl * g.s;
        for (int64_t i = 0; i < g.s; ++i) yp[i] = xp[i] * sc + sh;
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of<BatchNormAttrs>(l_);
  }

 private:
  BnLayout l_;
};

// Per channel Σg and Σg·x̂ (fixed order: samples, then positions).
template <typename T>
void bn_channel_sums(const T* g, const T* x, const BnGeo& geo, int64_t c, double mean, double inv,
                     double* sg, double* sgx) {
  double a = 0, b = 0;
  for (int64_t n = 0; n < geo.n; ++n) {
    const T* gp = g + (n * geo.c + c) * geo.s;
    const T* xp = x + (n * geo.c + c) * geo.s;
    for (int64_t i = 0; i < geo.s; ++i) {
      a += double(gp[i]);
      b += double(gp[i]) * (double(xp[i]) - mean) * inv;
    }
  }
  *sg = a;
  *sgx = b;
}

// dx. Inputs: g, x, statistics, weight?. Training: dx = w·inv·(g - Σg/M - x̂·Σ(g·x̂)/M) (through the
// batch statistics); eval: dx = w·inv·g.
class BatchNormBackwardInputOp final : public Op {
 public:
  explicit BatchNormBackwardInputOp(BnLayout l) : l_(l) {}
  OpKind kind() const override { return OpKind::batch_norm_backward_input; }
  std::string attrs() const override { return l_.text(); }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const BnGeo g = bn_geo("batch_norm_backward_input", in[1].shape);
    LETHE_CHECK(in[0] == in[1], "batch_norm_backward_input: grad ", in[0].str(), " and input ",
                in[1].str(), " differ");
    l_.check("batch_norm_backward_input", in, g, 1);
    return in[1];
  }
  void cpu(const KernelCall& kc) const override {
    const BnGeo geo = bn_geo("batch_norm_backward_input", kc.in_shape(1));
    dispatch_float(kc.out_meta->dtype, "batch_norm_backward_input", [&](auto tag) {
      using T = decltype(tag);
      const T* g = kc.in<T>(0);
      const T* x = kc.in<T>(1);
      auto [mean, var] = l_.stats<T>(kc, geo.c);
      const T* w = l_.weight ? kc.in<T>(size_t(l_.w_index())) : nullptr;
      T* dx = kc.out<T>();
      const double M = double(geo.count());
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < geo.c; ++c) {
        const double m = double(mean[c]), inv = 1.0 / std::sqrt(double(var[c]) + l_.eps);
        const double k = inv * (w ? double(w[c]) : 1.0);
        double sg = 0, sgx = 0;
        if (l_.training) bn_channel_sums(g, x, geo, c, m, inv, &sg, &sgx);
        const double mg = l_.training ? sg / M : 0.0, mgx = l_.training ? sgx / M : 0.0;
        for (int64_t n = 0; n < geo.n; ++n) {
          const int64_t off = (n * geo.c + c) * geo.s;
          for (int64_t i = 0; i < geo.s; ++i) {
            const double xh = (double(x[off + i]) - m) * inv;
            dx[off + i] = T(k * (double(g[off + i]) - mg - xh * mgx));
          }
        }
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of<BatchNormAttrs>(l_);
  }

 private:
  BnLayout l_;
};

// dweight = Σ g·x̂ per channel. Inputs: g, x, statistics.
class BatchNormBackwardWeightOp final : public Op {
 public:
  explicit BatchNormBackwardWeightOp(BnLayout l) : l_(l) {}
  OpKind kind() const override { return OpKind::batch_norm_backward_weight; }
  std::string attrs() const override { return l_.text(); }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const BnGeo g = bn_geo("batch_norm_backward_weight", in[1].shape);
    LETHE_CHECK(in[0] == in[1], "batch_norm_backward_weight: grad ", in[0].str(), " and input ",
                in[1].str(), " differ");
    l_.check("batch_norm_backward_weight", in, g, 1);
    return TensorMeta{Shape{g.c}, in[1].dtype, in[1].device};
  }
  void cpu(const KernelCall& kc) const override {
    const BnGeo geo = bn_geo("batch_norm_backward_weight", kc.in_shape(1));
    dispatch_float(kc.out_meta->dtype, "batch_norm_backward_weight", [&](auto tag) {
      using T = decltype(tag);
      const T* g = kc.in<T>(0);
      const T* x = kc.in<T>(1);
      auto [mean, var] = l_.stats<T>(kc, geo.c);
      T* dw = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < geo.c; ++c) {
        double sg, sgx;
        bn_channel_sums(g, x, geo, c, double(mean[c]), 1.0 / std::sqrt(double(var[c]) + l_.eps),
                        &sg, &sgx);
        dw[c] = T(sgx);
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of<BatchNormAttrs>(l_);
  }

 private:
  BnLayout l_;
};

std::vector<Tensor> BatchNormApplyOp::backward(const BackwardCtx& c) const {
  const Tensor &x = c.inputs[0], &g = c.grad_output;
  std::vector<Tensor> stat_in;
  for (int i = 0; i < l_.stat_inputs(); ++i) stat_in.push_back(c.inputs[size_t(l_.first + i)]);
  std::vector<Tensor> r(c.inputs.size());
  if (c.needs_grad[0]) {
    std::vector<Tensor> in{g, x};
    in.insert(in.end(), stat_in.begin(), stat_in.end());
    if (l_.weight) in.push_back(c.inputs[size_t(l_.w_index())]);
    BnLayout bl = l_;
    bl.first = 2;
    r[0] = record(std::make_shared<BatchNormBackwardInputOp>(bl), in);
  }
  if (l_.weight && c.needs_grad[size_t(l_.w_index())]) {
    std::vector<Tensor> in{g, x};
    in.insert(in.end(), stat_in.begin(), stat_in.end());
    BnLayout bl = l_;
    bl.first = 2;
    bl.weight = bl.bias = false;
    r[size_t(l_.w_index())] = record(std::make_shared<BatchNormBackwardWeightOp>(bl), in);
  }
  if (l_.bias && c.needs_grad[size_t(l_.b_index())]) {
    std::vector<int> axes{0};
    for (int i = 2; i < g.dim(); ++i) axes.push_back(i);
    r[size_t(l_.b_index())] = sum(g, axes);
  }
  return r;
}

// running = (1 - momentum)·running + momentum·batch, with the unbiased batch variance (n/(n-1)).
class BatchNormUpdateStatsOp final : public Op {
 public:
  BatchNormUpdateStatsOp(double momentum, int64_t count) : attrs_{momentum, count} {}
  OpKind kind() const override { return OpKind::batch_norm_update_stats; }
  std::string attrs() const override {
    return "momentum=" + num_text(attrs_.momentum) + ",count=" + std::to_string(attrs_.count);
  }
  bool differentiable() const override { return false; }
  std::vector<int> mutated_inputs() const override { return {0, 1}; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const int64_t c = in[0].shape.ndim() == 1 ? in[0].shape[0] : -1;
    LETHE_CHECK(c >= 0 && in[1].shape == in[0].shape && in[2].shape == (Shape{2, c}) &&
                    in[1].dtype == in[0].dtype && in[2].dtype == in[0].dtype,
                "batch_norm_update_stats: running_mean ", in[0].str(), ", running_var ",
                in[1].str(), " and stats ", in[2].str(), " do not match");
    return TensorMeta{Shape{0}, in[0].dtype, in[0].device};
  }
  void cpu(const KernelCall& kc) const override {
    const int64_t c = kc.in_shape(0)[0];
    dispatch_float(kc.in_meta[0]->dtype, "batch_norm_update_stats", [&](auto tag) {
      using T = decltype(tag);
      T* rm = kc.in_mut<T>(0);
      T* rv = kc.in_mut<T>(1);
      const T* st = kc.in<T>(2);
      const double m = attrs_.momentum, unbias = double(attrs_.count) / double(attrs_.count - 1);
      for (int64_t i = 0; i < c; ++i) {
        rm[i] = T((1.0 - m) * double(rm[i]) + m * double(st[i]));
        rv[i] = T((1.0 - m) * double(rv[i]) + m * double(st[c + i]) * unbias);
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(attrs_); }

 private:
  BatchNormUpdateAttrs attrs_;
};

}  // namespace

Tensor layer_norm(const Tensor& x, const std::vector<int64_t>& normalized_shape,
                  const Tensor& weight, const Tensor& bias, double eps) {
  LETHE_CHECK(x.defined(), "layer_norm: the input is undefined");
  std::vector<Tensor> in{x};
  if (weight.defined()) in.push_back(weight);
  if (bias.defined()) in.push_back(bias);
  return record(std::make_shared<LayerNormOp>(
                    LayerNormAttrs{normalized_shape, eps, weight.defined(), bias.defined()}),
                in);
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  LETHE_CHECK(x.defined(), "batch_norm: the input is undefined");
  LETHE_CHECK(running_mean.defined() == running_var.defined(),
              "batch_norm: running_mean and running_var must both be given or both be undefined");
  const BnGeo geo = bn_geo("batch_norm", x.shape());
  BnLayout l{{training, weight.defined(), bias.defined(), eps}, 1};
  std::vector<Tensor> in{x};
  if (training) {
    LETHE_CHECK(geo.count() > 1, "batch_norm: input ", x.shape(),
                ": training needs more than 1 value per channel");
    Tensor stats = record(std::make_shared<BatchNormStatsOp>(), {x});
    in.push_back(stats);
    if (running_mean.defined()) {
      NoGradGuard no_grad;
      // A side effect: the executor runs it once even though nothing consumes its output.
      record(std::make_shared<BatchNormUpdateStatsOp>(momentum, geo.count()),
             {running_mean, running_var, stats});
    }
  } else {
    LETHE_CHECK(running_mean.defined(),
                "batch_norm: eval mode (training=false) needs running_mean and running_var");
    in.push_back(running_mean);
    in.push_back(running_var);
  }
  if (weight.defined()) in.push_back(weight);
  if (bias.defined()) in.push_back(bias);
  return record(std::make_shared<BatchNormApplyOp>(l), in);
}

}  // namespace lethe
