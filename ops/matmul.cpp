// matmul (batched, broadcasting, transposes folded into the GEMM) and linear (x·Wᵀ + b in one
// GEMM).
#include "ops/matmul.h"

#include <memory>
#include <vector>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/elementwise.h"
#include "ops/gemm.h"
#include "ops/layout.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

namespace lethe {
namespace {

using layout::batch_shape;
using layout::broadcast_index;

std::string bool_text(bool b) {
  return b ? "1" : "0";
}

// C[batch] = op(A[batch]) · op(B[batch]) with broadcast batch dims. With reduce_batch, A and B have
// the same batch dims and C = Σ_batch op(A)·op(B) is 2-d (weight gradients: one GEMM when
// transpose_a && !transpose_b, because the batch then stacks along the inner dimension).
class MatmulOp final : public Op {
 public:
  MatmulOp(bool ta, bool tb, bool reduce) : a_{ta, tb, reduce} {}
  OpKind kind() const override { return OpKind::matmul; }
  std::string attrs() const override {
    return "transpose_a=" + bool_text(a_.transpose_a) +
           ",transpose_b=" + bool_text(a_.transpose_b) +
           ",reduce_batch=" + bool_text(a_.reduce_batch);
  }

  struct Dims {
    int64_t m, n, k;
    Shape ba, bb, bo;
  };
  Dims dims(const Shape& a, const Shape& b) const {
    Dims d;
    d.m = a_.transpose_a ? a.at(-1) : a.at(-2);
    d.k = a_.transpose_a ? a.at(-2) : a.at(-1);
    d.n = a_.transpose_b ? b.at(-2) : b.at(-1);
    d.ba = batch_shape(a);
    d.bb = batch_shape(b);
    d.bo = a_.reduce_batch ? Shape{} : broadcast_shapes(d.ba, d.bb, "matmul");
    return d;
  }

  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const Shape &a = in[0].shape, &b = in[1].shape;
    LETHE_CHECK(a.ndim() >= 2 && b.ndim() >= 2, "matmul: shapes ", a, " and ", b,
                ": this form needs operands of at least 2 dims");
    LETHE_CHECK(in[0].dtype == in[1].dtype, "matmul: shapes ", a, " and ", b, ": dtypes ",
                in[0].dtype, " and ", in[1].dtype, " differ");
    LETHE_CHECK(is_floating(in[0].dtype), "matmul: expected floating-point operands, got ",
                in[0].dtype);
    const int64_t ka = a_.transpose_a ? a.at(-2) : a.at(-1),
                  kb = a_.transpose_b ? b.at(-1) : b.at(-2);
    LETHE_CHECK(ka == kb, "matmul: shapes ", a, " and ", b, ": inner dimensions ", ka, " and ", kb,
                " differ");
    if (a_.reduce_batch)
      LETHE_CHECK(batch_shape(a) == batch_shape(b), "matmul: shapes ", a, " and ", b,
                  ": reduce_batch needs equal batch dims");
    Dims d = dims(a, b);
    std::vector<int64_t> out = d.bo.dims();
    out.push_back(d.m);
    out.push_back(d.n);
    return TensorMeta{Shape(out), in[0].dtype, in[0].device};
  }

  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    Dims d = dims(in[0].shape, in[1].shape);
    const double nb = static_cast<double>(a_.reduce_batch ? d.ba.numel() : d.bo.numel());
    OpCost c = Op::cost(in, out);
    c.flops =
        2.0 * nb * static_cast<double>(d.m) * static_cast<double>(d.n) * static_cast<double>(d.k);
    return c;
  }

  void cpu(const KernelCall& kc) const override {
    const Dims d = dims(kc.in_shape(0), kc.in_shape(1));
    dispatch_float(kc.out_meta->dtype, "matmul", [&](auto tag) {
      using T = decltype(tag);
      const T* A = kc.in<T>(0);
      const T* B = kc.in<T>(1);
      T* C = kc.out<T>();
      const int64_t lda = a_.transpose_a ? d.m : d.k, ldb = a_.transpose_b ? d.k : d.n;
      const int64_t sa = d.m * d.k, sb = d.k * d.n, sc = d.m * d.n;
      if (a_.reduce_batch) {
        const int64_t nb = d.ba.numel();
        if (a_.transpose_a &&
            !a_.transpose_b) {  // Σ_b A_bᵀ B_b = [A_0; A_1; ...]ᵀ · [B_0; B_1; ...]
          detail::gemm(true, false, d.m, d.n, d.k * nb, T(1), A, d.m, B, d.n, T(0), C, d.n);
          return;
        }
        if (nb == 0) detail::gemm(false, false, d.m, d.n, 0, T(1), A, 1, B, 1, T(0), C, d.n);
        for (int64_t b = 0; b < nb; ++b)  // fixed order: deterministic accumulation
          detail::gemm(a_.transpose_a, a_.transpose_b, d.m, d.n, d.k, T(1), A + b * sa, lda,
                       B + b * sb, ldb, b == 0 ? T(0) : T(1), C, d.n);
        return;
      }
      const int64_t na = d.ba.numel(), nbb = d.bb.numel(), no = d.bo.numel();
      if (!a_.transpose_a && nbb == 1 &&
          na == no) {  // B shared by every batch: fold the batch into M
        detail::gemm(false, a_.transpose_b, na * d.m, d.n, d.k, T(1), A, d.k, B, ldb, T(0), C, d.n);
        return;
      }
      const auto ia = broadcast_index(d.ba, d.bo), ib = broadcast_index(d.bb, d.bo);
      for (int64_t i = 0; i < no; ++i)
        detail::gemm(a_.transpose_a, a_.transpose_b, d.m, d.n, d.k, T(1),
                     A + ia[static_cast<size_t>(i)] * sa, lda, B + ib[static_cast<size_t>(i)] * sb,
                     ldb, T(0), C + i * sc, d.n);
    });
  }

  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  MatmulAttrs a_;
};

Tensor mm(const Tensor& a, const Tensor& b, bool ta, bool tb, bool reduce) {
  return record(std::make_shared<MatmulOp>(ta, tb, reduce), {a, b});
}

// op(x1)·op(x2) summed over the batch dims that `target` does not have (gradient of a broadcast
// operand): a single reduce_batch GEMM when target is a plain matrix, else a product then sum_to.
Tensor product_to(const Tensor& target, bool t1, bool t2, const Tensor& x1, const Tensor& x2) {
  const Shape bt = batch_shape(target.shape()), b1 = batch_shape(x1.shape()),
              b2 = batch_shape(x2.shape());
  const Shape full = broadcast_shapes(b1, b2, "matmul");
  if (full == bt) return mm(x1, x2, t1, t2, false);
  if (bt.numel() == 1 && b1 == b2 && b1.ndim() > 0) {
    Tensor p = mm(x1, x2, t1, t2, true);
    return target.dim() > 2 ? reshape(p, target.shape()) : p;
  }
  return sum_to(mm(x1, x2, t1, t2, false), target.shape());
}

std::vector<Tensor> MatmulOp::backward(const BackwardCtx& c) const {
  const Tensor &A = c.inputs[0], &B = c.inputs[1], &G = c.grad_output;
  std::vector<Tensor> r(2);
  // C = op(A)·op(B): dop(A) = G·op(B)ᵀ, dop(B) = op(A)ᵀ·G, transposed back where op transposes.
  if (c.needs_grad[0])
    r[0] = a_.transpose_a ? product_to(A, a_.transpose_b, true, B, G)
                          : product_to(A, false, !a_.transpose_b, G, B);
  if (c.needs_grad[1])
    r[1] = a_.transpose_b ? product_to(B, true, a_.transpose_a, G, A)
                          : product_to(B, !a_.transpose_a, false, A, G);
  return r;
}

// y = x·Wᵀ + b: x [..., in] (at least 2-d here), w [out, in], b [out] when has_bias.
class LinearOp final : public Op {
 public:
  explicit LinearOp(bool has_bias) : a_{has_bias} {}
  OpKind kind() const override { return OpKind::linear; }
  std::string attrs() const override { return "bias=" + bool_text(a_.bias); }

  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const Shape &x = in[0].shape, &w = in[1].shape;
    LETHE_CHECK(w.ndim() == 2, "linear: input ", x, " and weight ", w,
                ": weight must be 2-d [out, in]");
    LETHE_CHECK(x.ndim() >= 1 && x.at(-1) == w[1], "linear: input ", x, " and weight ", w,
                ": input features ", (x.ndim() ? x.at(-1) : 0), " and weight in-features ", w[1],
                " differ");
    LETHE_CHECK(in[0].dtype == in[1].dtype, "linear: input ", x, " and weight ", w, ": dtypes ",
                in[0].dtype, " and ", in[1].dtype, " differ");
    LETHE_CHECK(is_floating(in[0].dtype), "linear: expected floating-point operands, got ",
                in[0].dtype);
    if (a_.bias) {
      LETHE_CHECK(in[2].shape == Shape{w[0]}, "linear: weight ", w, " and bias ", in[2].shape,
                  ": bias must be [", w[0], "]");
      LETHE_CHECK(in[2].dtype == in[0].dtype, "linear: bias dtype ", in[2].dtype,
                  " and input dtype ", in[0].dtype, " differ");
    }
    std::vector<int64_t> out = x.dims();
    out.back() = w[0];
    return TensorMeta{Shape(out), in[0].dtype, in[0].device};
  }

  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 2.0 * static_cast<double>(out.numel()) * static_cast<double>(in[1].shape[1]) +
              (a_.bias ? static_cast<double>(out.numel()) : 0.0);
    return c;
  }

  void cpu(const KernelCall& kc) const override {
    const int64_t in_f = kc.in_shape(1)[1], out_f = kc.in_shape(1)[0];
    const int64_t rows = out_f == 0 ? 0 : kc.out_meta->numel() / out_f;
    dispatch_float(kc.out_meta->dtype, "linear", [&](auto tag) {
      using T = decltype(tag);
      T* y = kc.out<T>();
      if (a_.bias) {
        const T* b = kc.in<T>(2);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < out_f; ++j) y[r * out_f + j] = b[j];
      }
      detail::gemm(false, true, rows, out_f, in_f, T(1), kc.in<T>(0), in_f, kc.in<T>(1), in_f,
                   a_.bias ? T(1) : T(0), y, out_f);
    });
  }

  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    const Tensor &x = c.inputs[0], &w = c.inputs[1], &g = c.grad_output;
    std::vector<Tensor> r(c.inputs.size());
    if (c.needs_grad[0]) r[0] = mm(g, w, false, false, false);       // [..., in]
    if (c.needs_grad[1]) r[1] = mm(g, x, true, false, x.dim() > 2);  // gᵀx over flattened rows
    if (a_.bias && c.needs_grad[2]) {
      std::vector<int> axes;
      for (int i = 0; i + 1 < g.dim(); ++i) axes.push_back(i);
      r[2] = axes.empty() ? g : sum(g, axes);
    }
    return r;
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  LinearAttrs a_;
};

void check_pair(const Tensor& a, const Tensor& b, const char* op) {
  LETHE_CHECK(a.defined() && b.defined(), op, ": an operand is undefined");
  LETHE_CHECK(a.dtype() == b.dtype(), op, ": shapes ", a.shape(), " and ", b.shape(), ": dtypes ",
              a.dtype(), " and ", b.dtype(), " differ");
  LETHE_CHECK(is_floating(a.dtype()), op, ": shapes ", a.shape(), " and ", b.shape(),
              ": expected floating-point operands, got ", a.dtype());
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_pair(a, b, "matmul");
  LETHE_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: shapes ", a.shape(), " and ", b.shape(),
              ": both operands need at least 1 dim");
  const int64_t ka = a.shape().at(-1), kb = b.dim() == 1 ? b.shape()[0] : b.shape().at(-2);
  LETHE_CHECK(ka == kb, "matmul: shapes ", a.shape(), " and ", b.shape(), ": inner dimensions ", ka,
              " and ", kb, " differ");
  if (a.dim() >= 2 && b.dim() >= 2) {
    Shape ba = batch_shape(a.shape()), bb = batch_shape(b.shape());
    for (int i = 1; i <= std::min(ba.ndim(), bb.ndim()); ++i) {
      const int64_t x = ba.at(-i), y = bb.at(-i);
      LETHE_CHECK(x == y || x == 1 || y == 1, "matmul: shapes ", a.shape(), " and ", b.shape(),
                  ": batch dimensions ", ba, " and ", bb, " do not broadcast");
    }
    return mm(a, b, false, false, false);
  }
  // 1-d operands: as torch.matmul, a vector is a [1, k] row (left) or a [k, 1] column (right) whose
  // added dim is removed from the result.
  Tensor a2 = a.dim() == 1 ? reshape(a, Shape{1, ka}) : a;
  Tensor b2 = b.dim() == 1 ? reshape(b, Shape{kb, 1}) : b;
  Tensor r = mm(a2, b2, false, false, false);
  std::vector<int64_t> out(r.shape().dims().begin(), r.shape().dims().end() - 2);
  if (a.dim() >= 2) out.push_back(r.shape().at(-2));
  if (b.dim() >= 2) out.push_back(r.shape().at(-1));
  return reshape(r, Shape(out));
}

Tensor matmul_transposed(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  check_pair(a, b, "matmul");
  return mm(a, b, transpose_a, transpose_b, false);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  LETHE_CHECK(x.defined() && w.defined(), "linear: input or weight is undefined");
  LETHE_CHECK(x.dim() >= 1, "linear: input ", x.shape(), " must have at least 1 dim");
  if (x.dim() == 1) {
    Tensor r = linear(reshape(x, Shape{1, x.shape()[0]}), w, b);
    return reshape(r, Shape{r.shape()[1]});
  }
  if (b.defined()) return record(std::make_shared<LinearOp>(true), {x, w, b});
  return record(std::make_shared<LinearOp>(false), {x, w});
}

}  // namespace lethe
