// Scaled dot-product attention composed of recorded ops (its gradient comes from theirs):
// scores = q·kᵀ (transpose folded into the GEMM) · 1/sqrt(d), an optional causal mask, softmax,
// dropout on the weights when asked, ·v.
#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/softmax.h"

namespace lethe {
namespace {

// Sets x[..., i, j] = fill where j > i + (Lk - Lq) (bottom-right aligned, as PyTorch's is_causal
// for Lq == Lk). With fill = -inf it masks scores; its gradient is the same op with fill = 0.
class CausalMaskOp final : public Op {
 public:
  explicit CausalMaskOp(bool neg_inf) : a_{neg_inf} {}
  OpKind kind() const override { return OpKind::causal_mask; }
  std::string attrs() const override { return a_.neg_inf ? "fill=-inf" : "fill=0"; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in[0].shape.ndim() >= 2,
                "causal_mask: expected at least 2 dims [..., Lq, Lk], got ", in[0].shape);
    LETHE_CHECK(is_floating(in[0].dtype), "causal_mask: expected a floating-point input, got ",
                in[0].dtype);
    return in[0];
  }
  void cpu(const KernelCall& kc) const override {
    const Shape& s = kc.in_shape(0);
    const int64_t lq = s.at(-2), lk = s.at(-1), mats = lq * lk == 0 ? 0 : s.numel() / (lq * lk);
    dispatch_float(kc.out_meta->dtype, "causal_mask", [&](auto tag) {
      using T = decltype(tag);
      const T fill = a_.neg_inf ? -std::numeric_limits<T>::infinity() : T(0);
      const T* x = kc.in<T>(0);
      T* y = kc.out<T>();
#pragma omp parallel for schedule(static) if (mats * lq * lk > 32768)
      for (int64_t m = 0; m < mats; ++m)
        for (int64_t i = 0; i < lq; ++i) {
          const int64_t row = (m * lq + i) * lk;
          const int64_t keep = std::clamp<int64_t>(i + (lk - lq) + 1, 0, lk);  // j < keep kept
          for (int64_t j = 0; j < keep; ++j) y[row + j] = x[row + j];
          for (int64_t j = keep; j < lk; ++j) y[row + j] = fill;
        }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    return {record(std::make_shared<CausalMaskOp>(false), {c.grad_output})};
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  CausalMaskAttrs a_;
};

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                    double dropout_p) {
  LETHE_CHECK(dropout_p >= 0 && dropout_p < 1,
              "scaled_dot_product_attention: dropout_p must be in [0, 1), got ", dropout_p);
  LETHE_CHECK(q.defined() && k.defined() && v.defined(),
              "scaled_dot_product_attention: q, k or v is undefined");
  LETHE_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, "scaled_dot_product_attention: q ",
              q.shape(), ", k ", k.shape(), ", v ", v.shape(),
              ": expected at least 2 dims [..., L, d]");
  LETHE_CHECK(q.size(-1) == k.size(-1), "scaled_dot_product_attention: q ", q.shape(), " and k ",
              k.shape(), ": head dims ", q.size(-1), " and ", k.size(-1), " differ");
  LETHE_CHECK(k.size(-2) == v.size(-2), "scaled_dot_product_attention: k ", k.shape(), " and v ",
              v.shape(), ": sequence lengths ", k.size(-2), " and ", v.size(-2), " differ");
  Tensor scores =
      mul_scalar(matmul_transposed(q, k, false, true), 1.0 / std::sqrt(double(q.size(-1))));
  if (causal) scores = record(std::make_shared<CausalMaskOp>(true), {scores});
  Tensor weights = softmax(scores, -1);
  if (dropout_p > 0) weights = dropout(weights, dropout_p, true);  // on the weights, as PyTorch
  return matmul(weights, v);
}

}  // namespace lethe
