// gather, scatter_add and index_select along one dim with i64 indices. Out-of-range indices throw
// before any thread starts (errors never cross OpenMP); the CUDA twins report the same message.
#include "ops/indexing.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/pad.h"
#include "ops/shape_ops.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

// Throws naming the first index outside [0, size).
void check_indices(const int64_t* idx, int64_t n, int64_t size, int dim, const char* op) {
  for (int64_t i = 0; i < n; ++i)
    LETHE_CHECK(idx[i] >= 0 && idx[i] < size, op, ": index ", idx[i], " (at position ", i,
                ") is out of range for dim ", dim, " of size ", size);
}

void check_index_meta(const TensorMeta& x, const TensorMeta& index, int dim, const char* op) {
  LETHE_CHECK(index.dtype == DType::i64, op, ": index must be i64, got ", index.dtype, index.shape);
  LETHE_CHECK(index.shape.ndim() == x.shape.ndim(), op, ": index ", index.shape, " and input ",
              x.shape, " must have the same number of dims");
  for (int d = 0; d < x.shape.ndim(); ++d)
    LETHE_CHECK(d == dim || index.shape[d] <= x.shape[d], op, ": index ", index.shape,
                " is larger than the input ", x.shape, " along dim ", d, " (only dim ", dim,
                " may differ)");
}

// Offsets of the operands of l at element e of its space.
inline void offsets_at(const cpu::StridedLoop& l, int64_t e, int64_t* off) {
  const int64_t inner = l.sizes.back();
  cpu::row_offsets(l, e / inner, off);
  for (size_t k = 0; k < l.strides.size(); ++k) off[k] += (e % inner) * l.strides[k].back();
}

// What every op here shares: the indexed dim (IndexAttrs), its text and its typed view.
class DimOp : public Op {
 public:
  explicit DimOp(int dim) : a_{dim} {}
  std::string attrs() const override { return "dim=" + std::to_string(a_.dim); }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }
  IndexAttrs a_;
};

class GatherOp final : public DimOp {
 public:
  using DimOp::DimOp;
  OpKind kind() const override { return OpKind::gather; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    check_index_meta(in[0], in[1], a_.dim, "gather");
    TensorMeta m = in[0];
    m.shape = in[1].shape;
    return m;
  }
  void cpu(const KernelCall& c) const override {
    const Shape &xs = c.in_shape(0), &is = c.in_shape(1);
    const int64_t n = is.numel();
    const int64_t* idx = c.in<int64_t>(1);
    check_indices(idx, n, xs[a_.dim], a_.dim, "gather");
    if (n == 0) return;
    const cpu::StridedLoop l =
        cpu::collapse(is, {layout::strides_without(xs, a_.dim), is.strides()});
    const int64_t step = xs.strides()[static_cast<size_t>(a_.dim)];
    dispatch_all(c.out_meta->dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = c.in<T>(0);
      T* out = c.out<T>();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t e = 0; e < n; ++e) {
        int64_t off[2];
        offsets_at(l, e, off);
        out[e] = x[off[0] + idx[off[1]] * step];
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;
};

class ScatterAddOp final : public DimOp {
 public:
  using DimOp::DimOp;
  OpKind kind() const override { return OpKind::scatter_add; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const TensorMeta &x = in[0], &index = in[1], &src = in[2];
    check_index_meta(x, index, a_.dim, "scatter_add");
    LETHE_CHECK(src.dtype == x.dtype, "scatter_add: src has dtype ", src.dtype, " and the input ",
                x.dtype);
    LETHE_CHECK(src.shape.ndim() == x.shape.ndim(), "scatter_add: src ", src.shape, " and input ",
                x.shape, " must have the same number of dims");
    for (int d = 0; d < x.shape.ndim(); ++d)
      LETHE_CHECK(index.shape[d] <= src.shape[d], "scatter_add: index ", index.shape,
                  " is larger than src ", src.shape, " along dim ", d);
    return x;
  }
  void cpu(const KernelCall& c) const override {
    const Shape &xs = c.in_shape(0), &is = c.in_shape(1), &ss = c.in_shape(2);
    const int64_t* idx = c.in<int64_t>(1);
    check_indices(idx, is.numel(), xs[a_.dim], a_.dim, "scatter_add");
    const size_t bytes = c.out_meta->bytes();
    if (bytes && c.output != c.inputs[0]) std::memcpy(c.output, c.inputs[0], bytes);
    if (is.numel() == 0) return;
    // Lines along dim, one per position of the index with dim dropped; each line adds in order.
    const Shape space = layout::keep_shape(is, {a_.dim});
    const cpu::StridedLoop l = cpu::collapse(space, {xs.strides(), ss.strides(), is.strides()});
    const size_t d = static_cast<size_t>(a_.dim);
    const int64_t xstep = xs.strides()[d], sstep = ss.strides()[d], istep = is.strides()[d],
                  len = is[a_.dim];
    const int64_t lines = space.numel();
    dispatch_all(c.out_meta->dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* src = c.in<T>(2);
      T* out = c.out<T>();
#pragma omp parallel for schedule(static) if (is.numel() > kParallelGrain)
      for (int64_t e = 0; e < lines; ++e) {
        int64_t off[3];
        offsets_at(l, e, off);
        for (int64_t r = 0; r < len; ++r)
          out[off[0] + idx[off[2] + r * istep] * xstep] += src[off[1] + r * sstep];
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    std::vector<Tensor> r(3);
    const Tensor &g = c.grad_output, &index = c.inputs[1], &src = c.inputs[2];
    if (c.needs_grad[0]) r[0] = g;
    if (c.needs_grad[2]) {
      Tensor gs = gather(g, a_.dim, index);
      // src elements beyond the index's extent added nothing: their gradient is 0.
      if (gs.shape() != src.shape()) {
        std::vector<int64_t> pads;
        for (int d = src.dim() - 1; d >= 0; --d) {
          pads.push_back(0);
          pads.push_back(src.size(d) - index.size(d));
        }
        gs = pad(gs, pads);
      }
      r[2] = gs;
    }
    return r;
  }
};

class IndexSelectOp final : public DimOp {
 public:
  using DimOp::DimOp;
  OpKind kind() const override { return OpKind::index_select; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const TensorMeta &x = in[0], &index = in[1];
    LETHE_CHECK(index.dtype == DType::i64, "index_select: index must be i64, got ", index.dtype,
                index.shape);
    LETHE_CHECK(index.shape.ndim() <= 1, "index_select: index must be 1-d (or 0-d), got ",
                index.shape);
    TensorMeta m = x;
    m.shape[a_.dim] = index.numel();
    return m;
  }
  void cpu(const KernelCall& c) const override {
    const Shape& xs = c.in_shape(0);
    const int64_t k = c.in_shape(1).numel();
    const int64_t* idx = c.in<int64_t>(1);
    check_indices(idx, k, xs[a_.dim], a_.dim, "index_select");
    const layout::AxisView v = layout::axis_view(xs, a_.dim);
    const size_t row = static_cast<size_t>(v.inner) * dtype_size(c.out_meta->dtype);
    const char* x = static_cast<const char*>(c.inputs[0]);
    char* out = c.out<char>();
#pragma omp parallel for schedule(static) if (v.outer * k * v.inner > kParallelGrain)
    for (int64_t t = 0; t < v.outer * k; ++t) {
      const int64_t o = t / k, j = t % k;
      std::memcpy(out + static_cast<size_t>(t) * row,
                  x + static_cast<size_t>(o * v.r + idx[j]) * row, row);
    }
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor(), Tensor()};
    // index_select(x, dim, i) is gather(x, dim, i broadcast along the other dims): its gradient is
    // that gather's, a scatter_add in a fixed order.
    const Tensor &x = c.inputs[0], &g = c.grad_output;
    std::vector<int64_t> line(static_cast<size_t>(x.dim()), 1);
    line[static_cast<size_t>(a_.dim)] = g.size(a_.dim);
    const Tensor index = broadcast_to(reshape(c.inputs[1], Shape(line)), g.shape());
    return {scatter_add(full_like(x, 0.0), a_.dim, index, g), Tensor()};
  }
};

std::vector<Tensor> GatherOp::backward(const BackwardCtx& c) const {
  if (!c.needs_grad[0]) return {Tensor(), Tensor()};
  return {scatter_add(full_like(c.inputs[0], 0.0), a_.dim, c.inputs[1], c.grad_output), Tensor()};
}

int dim_of(const Tensor& x, const Tensor& index, int dim, const char* op) {
  LETHE_CHECK(x.defined() && index.defined(), op, ": an operand is an undefined tensor");
  LETHE_CHECK(x.dim() > 0, op, ": the input is a 0-d tensor");
  return x.shape().axis(dim, op);
}

}  // namespace

Tensor gather(const Tensor& x, int dim, const Tensor& index) {
  const int d = dim_of(x, index, dim, "gather");
  return record(std::make_shared<GatherOp>(d), {x, index});
}

Tensor scatter_add(const Tensor& x, int dim, const Tensor& index, const Tensor& src) {
  const int d = dim_of(x, index, dim, "scatter_add");
  LETHE_CHECK(src.defined(), "scatter_add: src is an undefined tensor");
  return record(std::make_shared<ScatterAddOp>(d), {x, index, src});
}

Tensor index_select(const Tensor& x, int dim, const Tensor& index) {
  const int d = dim_of(x, index, dim, "index_select");
  return record(std::make_shared<IndexSelectOp>(d), {x, index});
}

}  // namespace lethe
