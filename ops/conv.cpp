// conv2d (im2col + GEMM per chunk of samples and group) with its input/weight gradient ops, and 2-d
// pooling.
#include "ops/conv.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "framework/error.h"
#include "ops/elementwise.h"
#include "ops/gemm.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

namespace lethe {
namespace {

using Pair = std::array<int64_t, 2>;

std::string pair_text(const Pair& p) {
  return std::to_string(p[0]) + "," + std::to_string(p[1]);
}

std::string params_text(const Conv2dParams& p) {
  return "stride=" + pair_text(p.stride) + ",padding=" + pair_text(p.padding) +
         ",dilation=" + pair_text(p.dilation) + ",groups=" + std::to_string(p.groups);
}

int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;  // C++ division truncates toward zero: guard negative spans
}

// The geometry of one convolution, from the input and weight shapes.
struct ConvGeo {
  int64_t n, cin, h, w, cout, kh, kw, ho, wo, groups;
  int64_t cin_g() const { return cin / groups; }
  int64_t cout_g() const { return cout / groups; }
  int64_t k() const { return cin_g() * kh * kw; }  // GEMM inner size per group
  int64_t hw_out() const { return ho * wo; }
};

// Checks x [N, Cin, H, W] against w [Cout, Cin/groups, kh, kw]; names the op and both shapes.
ConvGeo conv_geo(const char* op, const Shape& x, const Shape& w, const Conv2dParams& p) {
  LETHE_CHECK(x.ndim() == 4 && w.ndim() == 4, op, ": input ", x, " and weight ", w,
              ": expected a 4-d input [N, C, H, W] and a 4-d weight [Cout, Cin/groups, kh, kw]");
  LETHE_CHECK(p.groups >= 1 && p.stride[0] >= 1 && p.stride[1] >= 1 && p.dilation[0] >= 1 &&
                  p.dilation[1] >= 1 && p.padding[0] >= 0 && p.padding[1] >= 0,
              op, ": invalid parameters ", params_text(p));
  ConvGeo g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0, p.groups};
  LETHE_CHECK(g.cin % g.groups == 0 && g.cout % g.groups == 0, op, ": input ", x, " and weight ", w,
              ": channels ", g.cin, " and ", g.cout, " must both divide by groups=", g.groups);
  LETHE_CHECK(w[1] * g.groups == g.cin, op, ": input ", x, " and weight ", w, ": input has ", g.cin,
              " channels, weight expects ", w[1], " x groups ", g.groups, " = ", w[1] * g.groups);
  g.ho = conv_out(g.h, g.kh, p.stride[0], p.padding[0], p.dilation[0]);
  g.wo = conv_out(g.w, g.kw, p.stride[1], p.padding[1], p.dilation[1]);
  LETHE_CHECK(g.ho > 0 && g.wo > 0, op, ": input ", x, " and weight ", w,
              ": the output would be empty (", g.ho, "x", g.wo, ") with ", params_text(p));
  return g;
}

bool is_pointwise(const ConvGeo& g, const Conv2dParams& p) {
  return g.kh == 1 && g.kw == 1 && p.stride == Pair{1, 1} && p.padding == Pair{0, 0};
}

// cols[(c*kh + i)*kw + j][(oh - oh0)*Wo + ow] = x[c][oh*sh - ph + i*dh][ow*sw - pw + j*dw] (0
// outside) for the output rows oh in [oh0, oh1); rows are ld apart (several samples share one
// column matrix side by side). Single-threaded: it is cheap next to the GEMM, and OpenMP regions
// between BLAS calls make the two thread pools fight.
template <typename T>
void im2col(const T* x, const ConvGeo& g, const Conv2dParams& p, T* cols, int64_t ld, int64_t oh0,
            int64_t oh1) {
  const int64_t rows = g.cin * g.kh * g.kw;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
    T* dst = cols + r * ld;
    const T* src = x + c * g.h * g.w;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t ih = oh * p.stride[0] - p.padding[0] + i * p.dilation[0];
      T* row = dst + (oh - oh0) * g.wo;
      if (ih < 0 || ih >= g.h) {
        std::fill(row, row + g.wo, T(0));
        continue;
      }
      const T* srow = src + ih * g.w;
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const int64_t iw = ow * p.stride[1] - p.padding[1] + j * p.dilation[1];
        row[ow] = (iw >= 0 && iw < g.w) ? srow[iw] : T(0);
      }
    }
  }
}

// The adjoint of im2col for the output rows [oh0, oh1): dx[c][ih][iw] += Σ cols[...], in a fixed
// order (the caller zeroes dx once before the first row tile).
template <typename T>
void col2im(const T* cols, const ConvGeo& g, const Conv2dParams& p, T* dx, int64_t ld, int64_t oh0,
            int64_t oh1) {
  for (int64_t c = 0; c < g.cin; ++c) {
    T* dst = dx + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* src = cols + ((c * g.kh + i) * g.kw + j) * ld;
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const int64_t ih = oh * p.stride[0] - p.padding[0] + i * p.dilation[0];
          if (ih < 0 || ih >= g.h) continue;
          T* drow = dst + ih * g.w;
          const T* srow = src + (oh - oh0) * g.wo;
          for (int64_t ow = 0; ow < g.wo; ++ow) {
            const int64_t iw = ow * p.stride[1] - p.padding[1] + j * p.dilation[1];
            if (iw >= 0 && iw < g.w) drow[iw] += srow[ow];
          }
        }
      }
  }
}

// Columns per GEMM: small images are batched side by side so that each GEMM has >= ~kTargetCols
// columns; a large image is cut into tiles of whole output rows of about kTargetCols columns, so
// that the column matrix (the workspace) stays near Cin·kh·kw·kTargetCols elements.
constexpr int64_t kTargetCols = 2048;
int64_t chunk_of(const ConvGeo& g) {
  return std::max<int64_t>(1, std::min(g.n, (kTargetCols + g.hw_out() - 1) / g.hw_out()));
}
// A pointwise conv on one sample at a time reads its input (and writes its input gradient) in
// place.
bool direct(const ConvGeo& g, const Conv2dParams& p) {
  return is_pointwise(g, p) && chunk_of(g) == 1;
}
// Output rows per column-matrix tile: all of them unless one sample alone exceeds kTargetCols.
int64_t tile_rows(const ConvGeo& g, const Conv2dParams& p) {
  if (chunk_of(g) > 1 || direct(g, p)) return g.ho;
  return std::clamp<int64_t>(kTargetCols / g.wo, 1, g.ho);
}

// Workspace: the column matrix of one chunk or row tile [Cin·kh·kw, chunk·tile columns], then
// (chunk > 1) an output or gradient matrix [Cout, chunk·Ho·Wo] in the same side-by-side layout.
struct ConvWork {
  int64_t cols = 0, mat = 0;  // elements
};
ConvWork conv_work(const ConvGeo& g, const Conv2dParams& p) {
  const int64_t nb = chunk_of(g), ld = nb * tile_rows(g, p) * g.wo;
  ConvWork w;
  if (!direct(g, p)) w.cols = g.cin * g.kh * g.kw * ld;
  if (nb > 1) w.mat = g.cout * ld;
  return w;
}
size_t col_workspace(const ConvGeo& g, const Conv2dParams& p, DType t) {
  const ConvWork w = conv_work(g, p);
  return static_cast<size_t>(align_up(static_cast<size_t>(w.cols) * dtype_size(t)) +
                             static_cast<size_t>(w.mat) * dtype_size(t));
}
template <typename T>
T* work_mat(const KernelCall& kc, const ConvWork& w) {
  return reinterpret_cast<T*>(static_cast<char*>(kc.workspace) +
                              align_up(static_cast<size_t>(w.cols) * sizeof(T)));
}

// Copies samples [n0, n0+nb) of a [N, C, hw] tensor into a [C, nb·hw] matrix, or back.
template <typename T>
void gather_samples(const T* src, int64_t n0, int64_t nb, int64_t c, int64_t hw, T* dst) {
  for (int64_t s = 0; s < nb; ++s)
    for (int64_t ch = 0; ch < c; ++ch)
      std::copy_n(src + ((n0 + s) * c + ch) * hw, hw, dst + ch * nb * hw + s * hw);
}
template <typename T>
void scatter_samples(const T* src, int64_t n0, int64_t nb, int64_t c, int64_t hw, T* dst) {
  for (int64_t s = 0; s < nb; ++s)
    for (int64_t ch = 0; ch < c; ++ch)
      std::copy_n(src + ch * nb * hw + s * hw, hw, dst + ((n0 + s) * c + ch) * hw);
}

// The output gradient of samples [n0, n0+nb), output rows from oh0, as a matrix with `*ld_out`
// between rows: in place for one sample (row stride Ho·Wo), else gathered side by side (ld).
template <typename T>
const T* grad_tile(const KernelCall& kc, const ConvWork& wk, const T* gy, const ConvGeo& g,
                   int64_t n0, int64_t nb, int64_t nb_max, int64_t oh0, int64_t ld,
                   int64_t* ld_out) {
  if (nb_max == 1) {
    *ld_out = g.hw_out();
    return gy + n0 * g.cout * g.hw_out() + oh0 * g.wo;
  }
  T* m = work_mat<T>(kc, wk);
  gather_samples(gy, n0, nb, g.cout, g.hw_out(), m);
  *ld_out = ld;
  return m;
}

double conv_flops(const ConvGeo& g) {
  return 2.0 * double(g.n) * double(g.cout) * double(g.hw_out()) * double(g.k());
}

class Conv2dOp final : public Op {
 public:
  Conv2dOp(Conv2dParams p, bool bias) : a_{p, bias} {}
  OpKind kind() const override { return OpKind::conv2d; }
  std::string attrs() const override {
    return params_text(a_.params) + ",bias=" + (a_.bias ? "1" : "0");
  }

  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    ConvGeo g = conv_geo("conv2d", in[0].shape, in[1].shape, a_.params);
    LETHE_CHECK(in[0].dtype == in[1].dtype, "conv2d: input ", in[0].shape, " and weight ",
                in[1].shape, ": dtypes ", in[0].dtype, " and ", in[1].dtype, " differ");
    LETHE_CHECK(is_floating(in[0].dtype), "conv2d: expected floating-point tensors, got ",
                in[0].dtype);
    if (a_.bias)
      LETHE_CHECK(in[2].shape == Shape{g.cout} && in[2].dtype == in[0].dtype, "conv2d: weight ",
                  in[1].shape, " and bias ", in[2].shape, ": bias must be ", in[0].dtype, "[",
                  g.cout, "]");
    return TensorMeta{Shape{g.n, g.cout, g.ho, g.wo}, in[0].dtype, in[0].device};
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = conv_flops(conv_geo("conv2d", in[0].shape, in[1].shape, a_.params));
    return c;
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    return col_workspace(conv_geo("conv2d", in[0].shape, in[1].shape, a_.params), a_.params,
                         in[0].dtype);
  }

  void cpu(const KernelCall& kc) const override {
    const ConvGeo g = conv_geo("conv2d", kc.in_shape(0), kc.in_shape(1), a_.params);
    dispatch_float(kc.out_meta->dtype, "conv2d", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      const T* w = kc.in<T>(1);
      const T* b = a_.bias ? kc.in<T>(2) : nullptr;
      T* y = kc.out<T>();
      const ConvWork wk = conv_work(g, a_.params);
      const bool dir = direct(g, a_.params);
      const int64_t hw = g.hw_out(), K = g.k(), cin_hw = g.cin * g.h * g.w, nb_max = chunk_of(g);
      const int64_t R = tile_rows(g, a_.params);
      T* cols = static_cast<T*>(kc.workspace);
      for (int64_t n0 = 0; n0 < g.n; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, g.n - n0);
        for (int64_t oh0 = 0; oh0 < g.ho; oh0 += R) {
          const int64_t oh1 = std::min(g.ho, oh0 + R), tc = (oh1 - oh0) * g.wo, ld = nb * tc;
          const T* src = dir ? x + n0 * cin_hw : cols;  // direct: the input is the column matrix
          if (!dir)
            for (int64_t s = 0; s < nb; ++s)
              im2col(x + (n0 + s) * cin_hw, g, a_.params, cols + s * tc, ld, oh0, oh1);
          // One sample: straight into its output rows (row stride Ho·Wo); a chunk: a side-by-side
          // matrix, scattered afterwards.
          T* out = nb_max == 1 ? y + n0 * g.cout * hw + oh0 * g.wo : work_mat<T>(kc, wk);
          const int64_t ldo = nb_max == 1 ? hw : ld;
          for (int64_t gr = 0; gr < g.groups; ++gr)
            detail::gemm(false, false, g.cout_g(), ld, K, T(1), w + gr * g.cout_g() * K, K,
                         src + gr * K * ld, ld, T(0), out + gr * g.cout_g() * ldo, ldo);
          if (b)
            for (int64_t co = 0; co < g.cout; ++co)
              for (int64_t j = 0; j < ld; ++j) out[co * ldo + j] += b[co];
          if (nb_max > 1) scatter_samples(out, n0, nb, g.cout, hw, y);
        }
      }
    });
  }

  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    const Tensor &x = c.inputs[0], &w = c.inputs[1], &g = c.grad_output;
    std::vector<Tensor> r(c.inputs.size());
    if (c.needs_grad[0]) r[0] = conv2d_backward_input(g, w, x.shape(), a_.params);
    if (c.needs_grad[1]) r[1] = conv2d_backward_weight(x, g, w.shape(), a_.params);
    if (a_.bias && c.needs_grad[2]) r[2] = sum(g, {0, 2, 3});
    return r;
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  Conv2dAttrs a_;
};

// dx from (grad_out, w): per sample and group dcols = W_gᵀ·g, then col2im. Transposed, the same
// computation is conv_transpose2d's forward (x in the place of grad_out, its output the "input" of
// the convolution it transposes), differentiable: dx = conv2d(g, w), dw = conv2d_backward_weight(g,
// x).
class Conv2dBackwardInputOp final : public Op {
 public:
  Conv2dBackwardInputOp(Conv2dParams p, Shape x, bool transposed = false)
      : x_(std::move(x)), a_{p, false}, transposed_(transposed) {}
  OpKind kind() const override {
    return transposed_ ? OpKind::conv_transpose2d : OpKind::conv2d_backward_input;
  }
  std::string attrs() const override {
    return params_text(a_.params) + (transposed_ ? ",output=" : ",input=") + x_.str();
  }

  ConvGeo geo(const std::vector<TensorMeta>& in) const {
    ConvGeo g = conv_geo(name().c_str(), x_, in[1].shape, a_.params);
    LETHE_CHECK(in[0].shape == (Shape{g.n, g.cout, g.ho, g.wo}), name(), ": ",
                (transposed_ ? "input " : "grad "), in[0].shape, " and weight ", in[1].shape,
                ": expected ", (transposed_ ? "input " : "grad "), Shape{g.n, g.cout, g.ho, g.wo});
    return g;
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    geo(in);
    LETHE_CHECK(in[0].dtype == in[1].dtype, name(), ": dtypes ", in[0].dtype, " and ", in[1].dtype,
                " differ");
    LETHE_CHECK(is_floating(in[0].dtype), name(), ": expected floating-point tensors, got ",
                in[0].dtype);
    return TensorMeta{x_, in[0].dtype, in[0].device};
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    const Tensor &x = c.inputs[0], &w = c.inputs[1], &g = c.grad_output;
    std::vector<Tensor> r(2);
    if (c.needs_grad[0]) r[0] = conv2d(g, w, Tensor(), a_.params);
    if (c.needs_grad[1]) r[1] = conv2d_backward_weight(g, x, w.shape(), a_.params);
    return r;
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = conv_flops(geo(in));
    return c;
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    return col_workspace(geo(in), a_.params, in[0].dtype);
  }
  bool differentiable() const override { return transposed_; }

  void cpu(const KernelCall& kc) const override {
    const ConvGeo g = geo({*kc.in_meta[0], *kc.in_meta[1]});
    dispatch_float(kc.out_meta->dtype, name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      const T* gy = kc.in<T>(0);
      const T* w = kc.in<T>(1);
      T* dx = kc.out<T>();
      const ConvWork wk = conv_work(g, a_.params);
      const bool dir = direct(g, a_.params);
      const int64_t K = g.k(), cin_hw = g.cin * g.h * g.w, nb_max = chunk_of(g);
      const int64_t R = tile_rows(g, a_.params);
      T* cols = static_cast<T*>(kc.workspace);
      for (int64_t n0 = 0; n0 < g.n; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, g.n - n0);
        if (!dir) std::fill(dx + n0 * cin_hw, dx + (n0 + nb) * cin_hw, T(0));  // col2im accumulates
        for (int64_t oh0 = 0; oh0 < g.ho; oh0 += R) {
          const int64_t oh1 = std::min(g.ho, oh0 + R), tc = (oh1 - oh0) * g.wo, ld = nb * tc;
          int64_t ldg = 0;
          const T* gm = grad_tile(kc, wk, gy, g, n0, nb, nb_max, oh0, ld, &ldg);
          T* dst = dir ? dx + n0 * cin_hw : cols;
          for (int64_t gr = 0; gr < g.groups; ++gr)
            detail::gemm(true, false, K, ld, g.cout_g(), T(1), w + gr * g.cout_g() * K, K,
                         gm + gr * g.cout_g() * ldg, ldg, T(0), dst + gr * K * ld, ld);
          if (!dir)
            for (int64_t s = 0; s < nb; ++s)
              col2im(cols + s * tc, g, a_.params, dx + (n0 + s) * cin_hw, ld, oh0, oh1);
        }
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  Shape x_;
  Conv2dAttrs a_;
  bool transposed_;
};

// dw from (x, grad_out): dW_g = Σ_n g_n,g · cols_n,gᵀ, samples accumulated in order.
class Conv2dBackwardWeightOp final : public Op {
 public:
  Conv2dBackwardWeightOp(Conv2dParams p, Shape w) : w_(std::move(w)), a_{p, false} {}
  OpKind kind() const override { return OpKind::conv2d_backward_weight; }
  std::string attrs() const override { return params_text(a_.params) + ",weight=" + w_.str(); }

  ConvGeo geo(const std::vector<TensorMeta>& in) const {
    ConvGeo g = conv_geo("conv2d_backward_weight", in[0].shape, w_, a_.params);
    LETHE_CHECK(in[1].shape == (Shape{g.n, g.cout, g.ho, g.wo}), "conv2d_backward_weight: input ",
                in[0].shape, " and grad ", in[1].shape, ": expected grad ",
                Shape{g.n, g.cout, g.ho, g.wo});
    return g;
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    geo(in);
    LETHE_CHECK(in[0].dtype == in[1].dtype, "conv2d_backward_weight: dtypes ", in[0].dtype, " and ",
                in[1].dtype, " differ");
    return TensorMeta{w_, in[0].dtype, in[0].device};
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = conv_flops(geo(in));
    return c;
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    return col_workspace(geo(in), a_.params, in[0].dtype);
  }
  bool differentiable() const override { return false; }

  void cpu(const KernelCall& kc) const override {
    const ConvGeo g = geo({*kc.in_meta[0], *kc.in_meta[1]});
    dispatch_float(kc.out_meta->dtype, "conv2d_backward_weight", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      const T* gy = kc.in<T>(1);
      T* dw = kc.out<T>();
      const ConvWork wk = conv_work(g, a_.params);
      const bool dir = direct(g, a_.params);
      const int64_t K = g.k(), cin_hw = g.cin * g.h * g.w, nb_max = chunk_of(g);
      const int64_t R = tile_rows(g, a_.params);
      T* cols = static_cast<T*>(kc.workspace);
      if (g.n == 0) std::fill(dw, dw + g.cout * K, T(0));
      bool first = true;  // chunks and row tiles accumulate in order: deterministic
      for (int64_t n0 = 0; n0 < g.n; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, g.n - n0);
        for (int64_t oh0 = 0; oh0 < g.ho; oh0 += R) {
          const int64_t oh1 = std::min(g.ho, oh0 + R), tc = (oh1 - oh0) * g.wo, ld = nb * tc;
          const T* src = dir ? x + n0 * cin_hw : cols;
          if (!dir)
            for (int64_t s = 0; s < nb; ++s)
              im2col(x + (n0 + s) * cin_hw, g, a_.params, cols + s * tc, ld, oh0, oh1);
          int64_t ldg = 0;
          const T* gm = grad_tile(kc, wk, gy, g, n0, nb, nb_max, oh0, ld, &ldg);
          for (int64_t gr = 0; gr < g.groups; ++gr)
            detail::gemm(false, true, g.cout_g(), K, ld, T(1), gm + gr * g.cout_g() * ldg, ldg,
                         src + gr * K * ld, ld, first ? T(0) : T(1), dw + gr * g.cout_g() * K, K);
          first = false;
        }
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  Shape w_;
  Conv2dAttrs a_;
};

// ---------------------------------------------------------------- pooling

struct PoolGeo {
  int64_t planes, h, w, ho, wo;
};

struct PoolParams : Pool2dAttrs {
  // The options beyond kernel/stride/padding appear only when set (the text of existing graphs
  // stays).
  std::string text() const {
    std::string r = "kernel=" + pair_text(kernel) + ",stride=" + pair_text(stride) +
                    ",padding=" + pair_text(padding);
    if (dilation != Pair{1, 1}) r += ",dilation=" + pair_text(dilation);
    if (ceil_mode) r += ",ceil_mode=1";
    if (!count_include_pad) r += ",count_include_pad=0";
    if (divisor_override != 0) r += ",divisor_override=" + std::to_string(divisor_override);
    return r;
  }
};

// PyTorch's pooling output size: floor or ceil, and in ceil mode no window starting in the right
// padding.
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  if (span < 0) return 0;
  int64_t o = span / s + 1;
  if (ceil_mode && (o - 1) * s >= in + p) --o;
  return o;
}

PoolGeo pool_geo(const char* op, const Shape& x, const PoolParams& pp) {
  LETHE_CHECK(x.ndim() == 4, op, ": expected a 4-d input [N, C, H, W], got ", x);
  LETHE_CHECK(pp.kernel[0] >= 1 && pp.kernel[1] >= 1 && pp.stride[0] >= 1 && pp.stride[1] >= 1 &&
                  pp.padding[0] >= 0 && pp.padding[1] >= 0 && pp.dilation[0] >= 1 &&
                  pp.dilation[1] >= 1 && pp.divisor_override >= 0,
              op, ": invalid parameters ", pp.text());
  LETHE_CHECK(2 * pp.padding[0] <= pp.kernel[0] && 2 * pp.padding[1] <= pp.kernel[1], op,
              ": padding ", pair_text(pp.padding), " must be at most half the kernel ",
              pair_text(pp.kernel));
  PoolGeo g{
      x[0] * x[1], x[2], x[3],
      pool_out(x[2], pp.kernel[0], pp.stride[0], pp.padding[0], pp.dilation[0], pp.ceil_mode),
      pool_out(x[3], pp.kernel[1], pp.stride[1], pp.padding[1], pp.dilation[1], pp.ceil_mode)};
  LETHE_CHECK(g.ho > 0 && g.wo > 0, op, ": input ", x, " is smaller than the kernel ",
              pair_text(pp.kernel), " with padding ", pair_text(pp.padding));
  return g;
}

PoolParams pool_params(Pair k, Pair s, Pair p) {
  if (s == Pair{0, 0}) s = k;
  PoolParams r;
  r.kernel = k, r.stride = s, r.padding = p;
  return r;
}

// Flat index (in the plane) of the first maximum of output (oh, ow)'s window.
template <typename T>
int64_t window_argmax(const T* plane, const PoolGeo& g, const PoolParams& pp, int64_t oh,
                      int64_t ow) {
  const int64_t h0 = oh * pp.stride[0] - pp.padding[0], w0 = ow * pp.stride[1] - pp.padding[1];
  int64_t best = -1;
  T bv = T(0);
  for (int64_t i = 0; i < pp.kernel[0]; ++i) {
    const int64_t ih = h0 + i * pp.dilation[0];
    if (ih < 0 || ih >= g.h) continue;
    for (int64_t j = 0; j < pp.kernel[1]; ++j) {
      const int64_t iw = w0 + j * pp.dilation[1];
      if (iw < 0 || iw >= g.w) continue;
      const T v = plane[ih * g.w + iw];
      if (best < 0 || v > bv || (std::isnan(v) && !std::isnan(bv))) {
        best = ih * g.w + iw;
        bv = v;
      }
    }
  }
  return best;
}

// An average window of output (oh, ow): its rows [h0, h1) and columns [w0, w1) inside the input and
// 1 / its divisor (PyTorch's: divisor_override, or the window clipped to the padded input when
// count_include_pad, or the window inside the input).
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  double inv;
};
AvgWindow avg_window(const PoolGeo& g, const PoolParams& pp, int64_t oh, int64_t ow) {
  int64_t h0 = oh * pp.stride[0] - pp.padding[0], w0 = ow * pp.stride[1] - pp.padding[1];
  int64_t h1 = std::min(h0 + pp.kernel[0], g.h + pp.padding[0]),
          w1 = std::min(w0 + pp.kernel[1], g.w + pp.padding[1]);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, g.h), w1 = std::min(w1, g.w);
  const int64_t div = pp.divisor_override    ? pp.divisor_override
                      : pp.count_include_pad ? padded
                                             : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, 1.0 / static_cast<double>(div)};
}

TensorMeta pooled(const TensorMeta& x, const PoolGeo& g) {
  return TensorMeta{Shape{x.shape[0], x.shape[1], g.ho, g.wo}, x.dtype, x.device};
}

class MaxPool2dOp final : public Op {
 public:
  explicit MaxPool2dOp(PoolParams pp) : pp_(pp) {}
  OpKind kind() const override { return OpKind::max_pool2d; }
  std::string attrs() const override { return pp_.text(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(is_floating(in[0].dtype), "max_pool2d: expected a floating-point input, got ",
                in[0].dtype);
    return pooled(in[0], pool_geo("max_pool2d", in[0].shape, pp_));
  }
  void cpu(const KernelCall& kc) const override {
    const PoolGeo g = pool_geo("max_pool2d", kc.in_shape(0), pp_);
    dispatch_float(kc.out_meta->dtype, "max_pool2d", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      T* y = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t pl = 0; pl < g.planes; ++pl) {
        const T* plane = x + pl * g.h * g.w;
        for (int64_t oh = 0; oh < g.ho; ++oh)
          for (int64_t ow = 0; ow < g.wo; ++ow)
            y[(pl * g.ho + oh) * g.wo + ow] = plane[window_argmax(plane, g, pp_, oh, ow)];
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    return {max_pool2d_backward(c.inputs[0], c.grad_output, pp_)};
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of<Pool2dAttrs>(pp_);
  }

 private:
  PoolParams pp_;
};

// Where each max_pool2d output came from: its flat index in the input plane (h * W + w), i64, as
// torch's return_indices. Not differentiable.
class MaxPool2dIndicesOp final : public Op {
 public:
  explicit MaxPool2dIndicesOp(PoolParams pp) : pp_(pp) {}
  OpKind kind() const override { return OpKind::max_pool2d_indices; }
  std::string attrs() const override { return pp_.text(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(is_floating(in[0].dtype), "max_pool2d: expected a floating-point input, got ",
                in[0].dtype);
    TensorMeta m = pooled(in[0], pool_geo("max_pool2d", in[0].shape, pp_));
    m.dtype = DType::i64;
    return m;
  }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& kc) const override {
    const PoolGeo g = pool_geo("max_pool2d", kc.in_shape(0), pp_);
    dispatch_float(kc.in_meta[0]->dtype, "max_pool2d", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      int64_t* y = kc.out<int64_t>();
#pragma omp parallel for schedule(static)
      for (int64_t pl = 0; pl < g.planes; ++pl) {
        const T* plane = x + pl * g.h * g.w;
        for (int64_t oh = 0; oh < g.ho; ++oh)
          for (int64_t ow = 0; ow < g.wo; ++ow)
            y[(pl * g.ho + oh) * g.wo + ow] = window_argmax(plane, g, pp_, oh, ow);
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of<Pool2dAttrs>(pp_);
  }

 private:
  PoolParams pp_;
};

class MaxPool2dBackwardOp final : public Op {
 public:
  explicit MaxPool2dBackwardOp(PoolParams pp) : pp_(pp) {}
  OpKind kind() const override { return OpKind::max_pool2d_backward; }
  std::string attrs() const override { return pp_.text(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const PoolGeo g = pool_geo("max_pool2d_backward", in[0].shape, pp_);
    LETHE_CHECK(in[1].shape == pooled(in[0], g).shape && in[1].dtype == in[0].dtype,
                "max_pool2d_backward: input ", in[0].shape, " and grad ", in[1].shape,
                ": expected grad ", pooled(in[0], g).shape, " of dtype ", in[0].dtype);
    return in[0];
  }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& kc) const override {
    const PoolGeo g = pool_geo("max_pool2d_backward", kc.in_shape(0), pp_);
    dispatch_float(kc.out_meta->dtype, "max_pool2d_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      const T* gy = kc.in<T>(1);
      T* dx = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t pl = 0; pl < g.planes; ++pl) {
        const T* plane = x + pl * g.h * g.w;
        T* dplane = dx + pl * g.h * g.w;
        std::fill(dplane, dplane + g.h * g.w, T(0));
        for (int64_t oh = 0; oh < g.ho; ++oh)
          for (int64_t ow = 0; ow < g.wo; ++ow)
            dplane[window_argmax(plane, g, pp_, oh, ow)] += gy[(pl * g.ho + oh) * g.wo + ow];
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of<Pool2dAttrs>(pp_);
  }

 private:
  PoolParams pp_;
};

// Each window divides by avg_window's divisor (kh*kw by default: without ceil_mode windows stay in
// the padding).
class AvgPool2dOp final : public Op {
 public:
  explicit AvgPool2dOp(PoolParams pp) : pp_(pp) {}
  OpKind kind() const override { return OpKind::avg_pool2d; }
  std::string attrs() const override { return pp_.text(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(is_floating(in[0].dtype), "avg_pool2d: expected a floating-point input, got ",
                in[0].dtype);
    return pooled(in[0], pool_geo("avg_pool2d", in[0].shape, pp_));
  }
  void cpu(const KernelCall& kc) const override {
    const PoolGeo g = pool_geo("avg_pool2d", kc.in_shape(0), pp_);
    dispatch_float(kc.out_meta->dtype, "avg_pool2d", [&](auto tag) {
      using T = decltype(tag);
      const T* x = kc.in<T>(0);
      T* y = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t pl = 0; pl < g.planes; ++pl) {
        const T* plane = x + pl * g.h * g.w;
        for (int64_t oh = 0; oh < g.ho; ++oh)
          for (int64_t ow = 0; ow < g.wo; ++ow) {
            const AvgWindow aw = avg_window(g, pp_, oh, ow);
            T acc = T(0);
            for (int64_t ih = aw.h0; ih < aw.h1; ++ih)
              for (int64_t iw = aw.w0; iw < aw.w1; ++iw) acc += plane[ih * g.w + iw];
            y[(pl * g.ho + oh) * g.wo + ow] = acc * static_cast<T>(aw.inv);
          }
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    return {avg_pool2d_backward(c.grad_output, c.inputs[0].shape(), pp_)};
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of<Pool2dAttrs>(pp_);
  }

 private:
  PoolParams pp_;
};

class AvgPool2dBackwardOp final : public Op {
 public:
  AvgPool2dBackwardOp(PoolParams pp, Shape x) : pp_(pp), x_(std::move(x)) {}
  OpKind kind() const override { return OpKind::avg_pool2d_backward; }
  std::string attrs() const override { return pp_.text() + ",input=" + x_.str(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    TensorMeta xm{x_, in[0].dtype, in[0].device};
    const PoolGeo g = pool_geo("avg_pool2d_backward", x_, pp_);
    LETHE_CHECK(in[0].shape == pooled(xm, g).shape, "avg_pool2d_backward: input ", x_, " and grad ",
                in[0].shape, ": expected grad ", pooled(xm, g).shape);
    return xm;
  }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& kc) const override {
    const PoolGeo g = pool_geo("avg_pool2d_backward", x_, pp_);
    dispatch_float(kc.out_meta->dtype, "avg_pool2d_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* gy = kc.in<T>(0);
      T* dx = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t pl = 0; pl < g.planes; ++pl) {
        T* dplane = dx + pl * g.h * g.w;
        std::fill(dplane, dplane + g.h * g.w, T(0));
        for (int64_t oh = 0; oh < g.ho; ++oh)
          for (int64_t ow = 0; ow < g.wo; ++ow) {
            const AvgWindow aw = avg_window(g, pp_, oh, ow);
            const T v = gy[(pl * g.ho + oh) * g.wo + ow] * static_cast<T>(aw.inv);
            for (int64_t ih = aw.h0; ih < aw.h1; ++ih)
              for (int64_t iw = aw.w0; iw < aw.w1; ++iw) dplane[ih * g.w + iw] += v;
          }
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of<Pool2dAttrs>(pp_);
  }

 private:
  PoolParams pp_;
  Shape x_;
};

// PyTorch's adaptive windows: [floor(i*in/out), ceil((i+1)*in/out)).
int64_t ada_start(int64_t i, int64_t in, int64_t out) {
  return (i * in) / out;
}
int64_t ada_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

class AdaptiveAvgPool2dOp final : public Op {
 public:
  explicit AdaptiveAvgPool2dOp(Pair out) : a_{out} {}
  OpKind kind() const override { return OpKind::adaptive_avg_pool2d; }
  std::string attrs() const override { return "output_size=" + pair_text(a_.output_size); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const Shape& x = in[0].shape;
    LETHE_CHECK(x.ndim() == 4, "adaptive_avg_pool2d: expected a 4-d input [N, C, H, W], got ", x);
    LETHE_CHECK(a_.output_size[0] >= 1 && a_.output_size[1] >= 1,
                "adaptive_avg_pool2d: output size ", pair_text(a_.output_size),
                " must be positive");
    LETHE_CHECK(is_floating(in[0].dtype),
                "adaptive_avg_pool2d: expected a floating-point input, got ", in[0].dtype);
    return TensorMeta{Shape{x[0], x[1], a_.output_size[0], a_.output_size[1]}, in[0].dtype,
                      in[0].device};
  }
  void cpu(const KernelCall& kc) const override {
    const Shape& x = kc.in_shape(0);
    const int64_t planes = x[0] * x[1], h = x[2], w = x[3], ho = a_.output_size[0],
                  wo = a_.output_size[1];
    dispatch_float(kc.out_meta->dtype, "adaptive_avg_pool2d", [&](auto tag) {
      using T = decltype(tag);
      const T* src = kc.in<T>(0);
      T* y = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t pl = 0; pl < planes; ++pl) {
        const T* plane = src + pl * h * w;
        for (int64_t oh = 0; oh < ho; ++oh) {
          const int64_t hs = ada_start(oh, h, ho), he = ada_end(oh, h, ho);
          for (int64_t ow = 0; ow < wo; ++ow) {
            const int64_t ws = ada_start(ow, w, wo), we = ada_end(ow, w, wo);
            T acc = T(0);
            for (int64_t ih = hs; ih < he; ++ih)
              for (int64_t iw = ws; iw < we; ++iw) acc += plane[ih * w + iw];
            y[(pl * ho + oh) * wo + ow] = acc / T((he - hs) * (we - ws));
          }
        }
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    return {adaptive_avg_pool2d_backward(c.grad_output, c.inputs[0].shape())};
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  AdaptivePool2dAttrs a_;
};

class AdaptiveAvgPool2dBackwardOp final : public Op {
 public:
  explicit AdaptiveAvgPool2dBackwardOp(Shape x) : x_(std::move(x)) {}
  OpKind kind() const override { return OpKind::adaptive_avg_pool2d_backward; }
  std::string attrs() const override { return "input=" + x_.str(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const Shape& g = in[0].shape;
    LETHE_CHECK(x_.ndim() == 4 && g.ndim() == 4 && g[0] == x_[0] && g[1] == x_[1],
                "adaptive_avg_pool2d_backward: grad ", g, " does not match input ", x_);
    return TensorMeta{x_, in[0].dtype, in[0].device};
  }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& kc) const override {
    const Shape& gs = kc.in_shape(0);
    const int64_t planes = x_[0] * x_[1], h = x_[2], w = x_[3], ho = gs[2], wo = gs[3];
    dispatch_float(kc.out_meta->dtype, "adaptive_avg_pool2d_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* gy = kc.in<T>(0);
      T* dx = kc.out<T>();
#pragma omp parallel for schedule(static)
      for (int64_t pl = 0; pl < planes; ++pl) {
        T* dplane = dx + pl * h * w;
        std::fill(dplane, dplane + h * w, T(0));
        for (int64_t oh = 0; oh < ho; ++oh) {
          const int64_t hs = ada_start(oh, h, ho), he = ada_end(oh, h, ho);
          for (int64_t ow = 0; ow < wo; ++ow) {
            const int64_t ws = ada_start(ow, w, wo), we = ada_end(ow, w, wo);
            const T v = gy[(pl * ho + oh) * wo + ow] / T((he - hs) * (we - ws));
            for (int64_t ih = hs; ih < he; ++ih)
              for (int64_t iw = ws; iw < we; ++iw) dplane[ih * w + iw] += v;
          }
        }
      }
    });
  }

 private:
  Shape x_;
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  LETHE_CHECK(x.defined() && w.defined(), "conv2d: input or weight is undefined");
  if (b.defined()) return record(std::make_shared<Conv2dOp>(p, true), {x, w, b});
  return record(std::make_shared<Conv2dOp>(p, false), {x, w});
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& input_shape,
                             const Conv2dParams& p) {
  return record(std::make_shared<Conv2dBackwardInputOp>(p, input_shape), {grad_out, w});
}

Tensor conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                              const Conv2dParams& p) {
  return record(std::make_shared<Conv2dBackwardWeightOp>(p, weight_shape), {x, grad_out});
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,
                        Pair output_padding) {
  LETHE_CHECK(x.defined() && w.defined(), "conv_transpose2d: input or weight is undefined");
  LETHE_CHECK(
      x.dim() == 4 && w.dim() == 4 && x.size(1) == w.size(0),
      "conv_transpose2d: expected input [N, Cin, H, W] and weight [Cin, Cout/groups, kh, kw], got ",
      x.shape(), " and ", w.shape());
  LETHE_CHECK(p.groups > 0 && w.size(0) % p.groups == 0, "conv_transpose2d: weight ", w.shape(),
              ": in channels must be divisible by groups (", p.groups, ")");
  std::array<int64_t, 2> out{};
  for (int i = 0; i < 2; ++i) {
    const size_t k = static_cast<size_t>(i);
    LETHE_CHECK(p.stride[k] > 0 && p.dilation[k] > 0 && p.padding[k] >= 0 && output_padding[k] >= 0,
                "conv_transpose2d: stride and dilation must be positive, padding and "
                "output_padding non-negative");
    LETHE_CHECK(output_padding[k] < std::max(p.stride[k], p.dilation[k]),
                "conv_transpose2d: output_padding (", output_padding[0], ", ", output_padding[1],
                ") must be smaller than stride or dilation");
    out[k] = (x.size(2 + i) - 1) * p.stride[k] - 2 * p.padding[k] +
             p.dilation[k] * (w.size(2 + i) - 1) + output_padding[k] + 1;
    LETHE_CHECK(out[k] > 0, "conv_transpose2d: input ", x.shape(), " and weight ", w.shape(),
                " give an empty output");
  }
  const int64_t cout = w.size(1) * p.groups;
  Tensor y = record(
      std::make_shared<Conv2dBackwardInputOp>(p, Shape{x.size(0), cout, out[0], out[1]}, true),
      {x, w});
  if (!b.defined()) return y;
  LETHE_CHECK(b.shape() == Shape{cout}, "conv_transpose2d: bias must be [", cout, "], got ",
              b.shape());
  return add(y, reshape(b, Shape{cout, 1, 1}));
}

Tensor max_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding, Pair dilation,
                  bool ceil_mode) {
  PoolParams pp = pool_params(kernel, stride, padding);
  pp.dilation = dilation;
  pp.ceil_mode = ceil_mode;
  return record(std::make_shared<MaxPool2dOp>(pp), {x});
}

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, Pair kernel, Pair stride,
                                                  Pair padding, Pair dilation, bool ceil_mode) {
  PoolParams pp = pool_params(kernel, stride, padding);
  pp.dilation = dilation;
  pp.ceil_mode = ceil_mode;
  return {record(std::make_shared<MaxPool2dOp>(pp), {x}),
          record(std::make_shared<MaxPool2dIndicesOp>(pp), {x})};
}

Tensor max_pool2d_backward(const Tensor& x, const Tensor& grad_out, const Pool2dAttrs& a) {
  return record(std::make_shared<MaxPool2dBackwardOp>(PoolParams{a}), {x, grad_out});
}

Tensor avg_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                  bool count_include_pad, std::optional<int64_t> divisor_override) {
  LETHE_CHECK(!divisor_override || *divisor_override > 0,
              "avg_pool2d: divisor_override must be positive, got ", divisor_override.value_or(0));
  PoolParams pp = pool_params(kernel, stride, padding);
  pp.ceil_mode = ceil_mode;
  pp.count_include_pad = count_include_pad;
  pp.divisor_override = divisor_override.value_or(0);
  return record(std::make_shared<AvgPool2dOp>(pp), {x});
}

Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pool2dAttrs& a) {
  return record(std::make_shared<AvgPool2dBackwardOp>(PoolParams{a}, input_shape), {grad_out});
}

Tensor adaptive_avg_pool2d(const Tensor& x, Pair output_size) {
  return record(std::make_shared<AdaptiveAvgPool2dOp>(output_size), {x});
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape) {
  return record(std::make_shared<AdaptiveAvgPool2dBackwardOp>(input_shape), {grad_out});
}

}  // namespace lethe
