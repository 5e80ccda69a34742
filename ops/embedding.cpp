// embedding: rows of a table gathered by i64 indices; its gradient scatters rows back in a fixed
// order.
#include "ops/embedding.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/error.h"
#include "ops/attrs.h"

namespace lethe {
namespace {

// Throws naming the first index outside [0, rows).
void check_indices(const int64_t* idx, int64_t n, int64_t rows, const char* op) {
  for (int64_t i = 0; i < n; ++i)
    LETHE_CHECK(idx[i] >= 0 && idx[i] < rows, op, ": index ", idx[i], " (at position ", i,
                ") is out of range for a table of ", rows, " rows");
}

class EmbeddingOp final : public Op {
 public:
  explicit EmbeddingOp(int64_t padding_idx) : padding_idx_(padding_idx) {}
  OpKind kind() const override { return OpKind::embedding; }
  std::string attrs() const override {
    return padding_idx_ < 0 ? std::string() : "padding_idx=" + std::to_string(padding_idx_);
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const TensorMeta &w = in[0], &idx = in[1];
    LETHE_CHECK(w.shape.ndim() == 2, "embedding: weight ", w.shape, " and indices ", idx.shape,
                ": weight must be 2-d [num, dim]");
    LETHE_CHECK(is_floating(w.dtype), "embedding: weight must be floating-point, got ", w.dtype);
    LETHE_CHECK(idx.dtype == DType::i64, "embedding: weight ", w.shape, " and indices ", idx.shape,
                ": indices must be i64, got ", idx.dtype);
    std::vector<int64_t> out = idx.shape.dims();
    out.push_back(w.shape[1]);
    return TensorMeta{Shape(out), w.dtype, w.device};
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c;
    c.flops = 0;
    c.bytes = 2.0 * double(out.bytes()) + double(in[1].bytes());
    return c;
  }
  void cpu(const KernelCall& kc) const override {
    const int64_t rows = kc.in_shape(0)[0], dim = kc.in_shape(0)[1], n = kc.in_shape(1).numel();
    const int64_t* idx = kc.in<int64_t>(1);
    check_indices(idx, n, rows,
                  "embedding");  // before any thread starts: errors never cross OpenMP
    const size_t row_bytes = static_cast<size_t>(dim) * dtype_size(kc.out_meta->dtype);
    const char* w = static_cast<const char*>(kc.inputs[0]);
    char* out = kc.out<char>();
#pragma omp parallel for schedule(static) if (n * dim > 32768)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(out + static_cast<size_t>(i) * row_bytes,
                  w + static_cast<size_t>(idx[i]) * row_bytes, row_bytes);
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 private:
  int64_t padding_idx_;  // -1: none
};

// dweight [num, dim] from grad [..., dim] and indices: each table row sums its occurrences in the
// order they appear (a counting sort groups them), rows in parallel.
class EmbeddingBackwardOp final : public Op {
 public:
  EmbeddingBackwardOp(int64_t rows, int64_t padding_idx) : a_{rows, padding_idx} {}
  OpKind kind() const override { return OpKind::embedding_backward; }
  std::string attrs() const override {
    return "num=" + std::to_string(a_.num_embeddings) +
           (a_.padding_idx < 0 ? std::string() : ",padding_idx=" + std::to_string(a_.padding_idx));
  }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const TensorMeta &g = in[0], &idx = in[1];
    LETHE_CHECK(idx.dtype == DType::i64 && g.shape.ndim() == idx.shape.ndim() + 1,
                "embedding_backward: grad ", g.shape, " and indices ", idx.shape, " do not match");
    for (int i = 0; i < idx.shape.ndim(); ++i)
      LETHE_CHECK(g.shape[i] == idx.shape[i], "embedding_backward: grad ", g.shape, " and indices ",
                  idx.shape, " do not match");
    return TensorMeta{Shape{a_.num_embeddings, g.shape.at(-1)}, g.dtype, g.device};
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    const int64_t n = in[1].numel();
    const int64_t words = a_.num_embeddings + 1 + n;  // row starts, then the positions by row
    return static_cast<size_t>(words) * sizeof(int64_t);
  }
  void cpu(const KernelCall& kc) const override {
    const int64_t n = kc.in_shape(1).numel(), dim = kc.out_shape()[1];
    const int64_t* idx = kc.in<int64_t>(1);
    check_indices(idx, n, a_.num_embeddings, "embedding_backward");
    int64_t* start = static_cast<int64_t*>(kc.workspace);  // a_.num_embeddings + 1 offsets
    int64_t* order = start + a_.num_embeddings + 1;        // positions grouped by row, in order
    std::fill(start, start + a_.num_embeddings + 1, int64_t(0));
    for (int64_t i = 0; i < n; ++i) ++start[idx[i] + 1];
    for (int64_t r = 0; r < a_.num_embeddings; ++r) start[r + 1] += start[r];
    {
      std::vector<int64_t> fill(start, start + a_.num_embeddings);
      for (int64_t i = 0; i < n; ++i) order[fill[static_cast<size_t>(idx[i])]++] = i;
    }
    dispatch_float(kc.out_meta->dtype, "embedding_backward", [&](auto tag) {
      using T = decltype(tag);
      const T* g = kc.in<T>(0);
      T* dw = kc.out<T>();
#pragma omp parallel for schedule(static) if (a_.num_embeddings * dim > 32768)
      for (int64_t r = 0; r < a_.num_embeddings; ++r) {
        T* dst = dw + r * dim;
        std::fill(dst, dst + dim, T(0));
        if (r == a_.padding_idx) continue;  // no gradient, as PyTorch
        for (int64_t p = start[r]; p < start[r + 1]; ++p) {
          const T* src = g + order[p] * dim;
          for (int64_t j = 0; j < dim; ++j) dst[j] += src[j];
        }
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  EmbeddingAttrs a_;
};

std::vector<Tensor> EmbeddingOp::backward(const BackwardCtx& c) const {
  std::vector<Tensor> r(2);
  if (c.needs_grad[0])
    r[0] = record(std::make_shared<EmbeddingBackwardOp>(c.inputs[0].shape()[0], padding_idx_),
                  {c.grad_output, c.inputs[1]});
  return r;
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices, std::optional<int64_t> padding_idx) {
  LETHE_CHECK(weight.defined() && indices.defined(), "embedding: weight or indices undefined");
  int64_t pad = -1;
  if (padding_idx) {
    const int64_t rows = weight.dim() >= 1 ? weight.size(0) : 0;
    LETHE_CHECK(*padding_idx >= -rows && *padding_idx < rows, "embedding: padding_idx ",
                *padding_idx, " is out of range for a table of ", rows, " rows (weight ",
                weight.shape(), ")");
    pad = *padding_idx < 0 ? *padding_idx + rows : *padding_idx;
  }
  return record(std::make_shared<EmbeddingOp>(pad), {weight, indices});
}

}  // namespace lethe
