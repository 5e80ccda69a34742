// Shape ops: reshape (and flatten/unsqueeze/squeeze through it), permute (and transpose), slice
// with its scatter backward, concat. Storage is contiguous row-major, so every one of them copies.
#include "ops/shape_ops.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

std::string ints_str(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// memcpy in parallel chunks for large buffers.
void copy_bytes(void* dst, const void* src, size_t bytes) {
  constexpr size_t kChunk = size_t{1} << 20;
  const int64_t chunks = static_cast<int64_t>((bytes + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const size_t off = static_cast<size_t>(c) * kChunk;
    std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off,
                std::min(kChunk, bytes - off));
  }
}

// Calls f with an unsigned integer type of the element's size (copies do not care about dtype).
template <typename F>
void dispatch_size(DType t, F&& f) {
  if (dtype_size(t) == 4)
    f(uint32_t{});
  else
    f(uint64_t{});
}

// ------------------------------------------------------------------------------------ reshape

class ReshapeOp final : public Op {
 public:
  explicit ReshapeOp(Shape s) : a_{std::move(s)} {}
  OpKind kind() const override { return OpKind::reshape; }
  std::string attrs() const override { return "shape=" + a_.shape.str(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in[0].shape.numel() == a_.shape.numel(), "reshape: cannot reshape ", in[0].shape,
                " (", in[0].shape.numel(), " elements) into ", a_.shape, " (", a_.shape.numel(),
                " elements)");
    TensorMeta m = in[0];
    m.shape = a_.shape;
    return m;
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 0;
    return c;
  }
  void cpu(const KernelCall& c) const override {
    copy_bytes(c.output, c.inputs[0], c.out_meta->bytes());
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor()};
    return {reshape(c.grad_output, c.inputs[0].shape())};
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  ShapeAttrs a_;
};

// Resolves one -1 in `s` against x's shape; errors name both shapes.
Shape resolve_shape(const Shape& x, const Shape& s) {
  int infer_at = -1;
  int64_t known = 1;
  for (int d = 0; d < s.ndim(); ++d) {
    if (s[d] == -1) {
      LETHE_CHECK(infer_at < 0, "reshape: only one dimension may be -1, got ", s, " for input ", x);
      infer_at = d;
    } else {
      LETHE_CHECK(s[d] >= 0, "reshape: invalid size ", s[d], " in ", s, " for input ", x);
      known *= s[d];
    }
  }
  if (infer_at < 0) return s;
  LETHE_CHECK(known != 0 && x.numel() % known == 0, "reshape: cannot reshape ", x, " (", x.numel(),
              " elements) into ", s);
  Shape r = s;
  r[infer_at] = x.numel() / known;
  return r;
}

// ------------------------------------------------------------------------------------ permute

class PermuteOp final : public Op {
 public:
  explicit PermuteOp(std::vector<int> perm) : a_{std::move(perm)} {}
  OpKind kind() const override { return OpKind::permute; }
  std::string attrs() const override { return "dims=" + ints_str(a_.dims); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    TensorMeta m = in[0];
    std::vector<int64_t> d;
    for (int a : a_.dims) d.push_back(in[0].shape[a]);
    m.shape = Shape(std::move(d));
    return m;
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    c.flops = 0;
    return c;
  }
  void cpu(const KernelCall& c) const override {
    const Shape& xs = c.in_shape(0);
    const Shape& os = c.out_shape();
    const int64_t n = os.numel();
    if (n == 0) return;
    const std::vector<int64_t> xstr = xs.strides();
    std::vector<int64_t> src_str;
    for (int a : a_.dims) src_str.push_back(xstr[static_cast<size_t>(a)]);
    const cpu::StridedLoop l = cpu::collapse(os, {src_str});
    dispatch_size(c.in_meta[0]->dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* x = static_cast<const T*>(c.inputs[0]);
      T* o = static_cast<T*>(c.output);
      const size_t nd = l.sizes.size();
      // A (batched) matrix transpose: tile the last two dims so reads and writes both stay in
      // cache.
      if (nd >= 2 && l.strides[0][nd - 2] == 1 && l.strides[0][nd - 1] != 1) {
        const int64_t rows = l.sizes[nd - 2], cols = l.sizes[nd - 1], cs = l.strides[0][nd - 1];
        const int64_t batch = n / (rows * cols);
        constexpr int64_t kTile = 32;
        const int64_t tr = (rows + kTile - 1) / kTile, tc = (cols + kTile - 1) / kTile;
        cpu::StridedLoop outer = l;
        outer.sizes.back() = 1;  // row_offsets over the batch dims only
        outer.sizes[nd - 2] = 1;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
        for (int64_t t = 0; t < batch * tr * tc; ++t) {
          const int64_t b = t / (tr * tc), i0 = (t / tc % tr) * kTile, j0 = (t % tc) * kTile;
          int64_t off = 0;
          cpu::row_offsets(outer, b, &off);
          const T* src = x + off;
          T* dst = o + b * rows * cols;
          const int64_t i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
          for (int64_t i = i0; i < i1; ++i)
            for (int64_t j = j0; j < j1; ++j) dst[i * cols + j] = src[i + j * cs];
        }
        return;
      }
      const int64_t inner = l.sizes.back(), rows = n / inner, s = l.strides[0].back();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t r = 0; r < rows; ++r) {
        int64_t off = 0;
        cpu::row_offsets(l, r, &off);
        const T* src = x + off;
        T* dst = o + r * inner;
        if (s == 1)
          for (int64_t i = 0; i < inner; ++i) dst[i] = src[i];
        else
          for (int64_t i = 0; i < inner; ++i) dst[i] = src[i * s];
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor()};
    std::vector<int> inv(a_.dims.size());
    for (size_t i = 0; i < a_.dims.size(); ++i)
      inv[static_cast<size_t>(a_.dims[i])] = static_cast<int>(i);
    return {permute(c.grad_output, inv)};
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  PermuteAttrs a_;
};

// ------------------------------------------------------------------------------------ slice

using layout::axis_view;
using layout::AxisView;

// Copies elements start, start+step, ... (len of them) along the axis between a big tensor (shape
// big) and a small one; gather: big -> small, otherwise small -> big.
void strided_axis_copy(void* big, void* small, const AxisView& v, int64_t len, int64_t start,
                       int64_t step, size_t elem, bool gather) {
  const size_t row = static_cast<size_t>(v.inner) * elem;
  const int64_t n = v.outer * len;
#pragma omp parallel for schedule(static) if (n * v.inner > kParallelGrain)
  for (int64_t t = 0; t < n; ++t) {
    const int64_t o = t / len, j = t % len;
    char* b = static_cast<char*>(big) + static_cast<size_t>(o * v.r + start + j * step) * row;
    char* s = static_cast<char*>(small) + static_cast<size_t>(t) * row;
    if (gather)
      std::memcpy(s, b, row);
    else
      std::memcpy(b, s, row);
  }
}

class SliceOp final : public Op {
 public:
  SliceOp(int axis, int64_t start, int64_t len, int64_t step) : len_(len), a_{axis, start, step} {}
  OpKind kind() const override { return OpKind::slice; }
  std::string attrs() const override {
    return "axis=" + std::to_string(a_.axis) + ",start=" + std::to_string(a_.start) +
           ",len=" + std::to_string(len_) + ",step=" + std::to_string(a_.step);
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    TensorMeta m = in[0];
    m.shape[a_.axis] = len_;
    return m;
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    return {0, 2.0 * static_cast<double>(out.bytes())};
  }
  void cpu(const KernelCall& c) const override {
    strided_axis_copy(c.inputs[0], c.output, axis_view(c.in_shape(0), a_.axis), len_, a_.start,
                      a_.step, dtype_size(c.in_meta[0]->dtype), true);
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  int64_t len_;
  SliceAttrs a_;
};

// The gradient of slice: zeros of the input's shape with the gradient scattered into the slice.
class SliceBackwardOp final : public Op {
 public:
  SliceBackwardOp(Shape in_shape, int axis, int64_t start, int64_t step)
      : in_(std::move(in_shape)), a_{axis, start, step} {}
  OpKind kind() const override { return OpKind::slice_backward; }
  std::string attrs() const override {
    return "shape=" + in_.str() + ",axis=" + std::to_string(a_.axis) +
           ",start=" + std::to_string(a_.start) + ",step=" + std::to_string(a_.step);
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    TensorMeta m = in[0];
    m.shape = in_;
    return m;
  }
  void cpu(const KernelCall& c) const override {
    const size_t elem = dtype_size(c.in_meta[0]->dtype);
    std::memset(c.output, 0, c.out_meta->bytes());
    strided_axis_copy(c.output, c.inputs[0], axis_view(in_, a_.axis), c.in_shape(0)[a_.axis],
                      a_.start, a_.step, elem, false);
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor()};
    const int64_t len = c.inputs[0].shape()[a_.axis];
    return {slice(c.grad_output, a_.axis, a_.start,
                  len == 0 ? a_.start : a_.start + (len - 1) * a_.step + 1, a_.step)};
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  Shape in_;
  SliceAttrs a_;
};

std::vector<Tensor> SliceOp::backward(const BackwardCtx& c) const {
  if (!c.needs_grad[0]) return {Tensor()};
  return {record(std::make_shared<SliceBackwardOp>(c.inputs[0].shape(), a_.axis, a_.start, a_.step),
                 {c.grad_output})};
}

// ------------------------------------------------------------------------------------ concat

class ConcatOp final : public Op {
 public:
  explicit ConcatOp(int axis) : a_{axis} {}
  OpKind kind() const override { return OpKind::concat; }
  std::string attrs() const override { return "axis=" + std::to_string(a_.axis); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    TensorMeta m = in[0];
    int64_t total = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      LETHE_CHECK(in[i].dtype == in[0].dtype, "concat: tensor ", i, " has dtype ", in[i].dtype,
                  " but tensor 0 has ", in[0].dtype);
      bool ok = in[i].shape.ndim() == in[0].shape.ndim();
      for (int d = 0; ok && d < in[0].shape.ndim(); ++d)
        ok = d == a_.axis || in[i].shape[d] == in[0].shape[d];
      LETHE_CHECK(ok, "concat: shapes ", in[0].shape, " and ", in[i].shape, " (tensors 0 and ", i,
                  ") differ outside axis ", a_.axis);
      total += in[i].shape[a_.axis];
    }
    m.shape[a_.axis] = total;
    return m;
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    return {0, 2.0 * static_cast<double>(out.bytes())};
  }
  void cpu(const KernelCall& c) const override {
    const size_t elem = dtype_size(c.out_meta->dtype);
    const AxisView v = axis_view(c.out_shape(), a_.axis);
    const size_t out_row = static_cast<size_t>(v.r * v.inner) * elem;
    int64_t off = 0;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      const size_t row = static_cast<size_t>(c.in_shape(i)[a_.axis] * v.inner) * elem;
      const char* src = static_cast<const char*>(c.inputs[i]);
      char* dst = static_cast<char*>(c.output) + static_cast<size_t>(off * v.inner) * elem;
#pragma omp parallel for schedule(static) if (static_cast <int64_t>(row) * v.outer > \
                                              8 * kParallelGrain)
      for (int64_t o = 0; o < v.outer; ++o)
        std::memcpy(dst + static_cast<size_t>(o) * out_row, src + static_cast<size_t>(o) * row,
                    row);
      off += c.in_shape(i)[a_.axis];
    }
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    std::vector<Tensor> r(c.inputs.size());
    int64_t off = 0;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      const int64_t len = c.inputs[i].shape()[a_.axis];
      if (c.needs_grad[i]) r[i] = slice(c.grad_output, a_.axis, off, off + len);
      off += len;
    }
    return r;
  }

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }

 private:
  ConcatAttrs a_;
};

}  // namespace

Tensor reshape(const Tensor& x, const Shape& s) {
  LETHE_CHECK(x.defined(), "reshape: the input is an undefined tensor");
  const Shape r = resolve_shape(x.shape(), s);
  if (r == x.shape()) return x;
  return record(std::make_shared<ReshapeOp>(r), {x});
}

Tensor flatten(const Tensor& x, int start_dim, int end_dim) {
  LETHE_CHECK(x.defined(), "flatten: the input is an undefined tensor");
  const Shape& s = x.shape();
  if (s.ndim() == 0) return reshape(x, Shape{1});
  const int a = s.axis(start_dim, "flatten"), b = s.axis(end_dim, "flatten");
  LETHE_CHECK(a <= b, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim,
              " for shape ", s);
  std::vector<int64_t> d(s.dims().begin(), s.dims().begin() + a);
  int64_t m = 1;
  for (int i = a; i <= b; ++i) m *= s[i];
  d.push_back(m);
  d.insert(d.end(), s.dims().begin() + b + 1, s.dims().end());
  return reshape(x, Shape(std::move(d)));
}

Tensor permute(const Tensor& x, const std::vector<int>& dims) {
  LETHE_CHECK(x.defined(), "permute: the input is an undefined tensor");
  const Shape& s = x.shape();
  std::vector<int> p;
  bool ok = static_cast<int>(dims.size()) == s.ndim();
  std::vector<bool> seen(static_cast<size_t>(s.ndim()), false);
  for (size_t i = 0; ok && i < dims.size(); ++i) {
    const int a = dims[i] < 0 ? dims[i] + s.ndim() : dims[i];
    ok = a >= 0 && a < s.ndim() && !seen[static_cast<size_t>(a)];
    if (ok) {
      seen[static_cast<size_t>(a)] = true;
      p.push_back(a);
    }
  }
  LETHE_CHECK(ok, "permute: dims ", ints_str(dims), " are not a permutation of the ", s.ndim(),
              " dimensions of shape ", s);
  bool identity = true;
  for (size_t i = 0; i < p.size(); ++i) identity = identity && p[i] == static_cast<int>(i);
  if (identity) return x;
  return record(std::make_shared<PermuteOp>(std::move(p)), {x});
}

Tensor transpose(const Tensor& x, int d0, int d1) {
  LETHE_CHECK(x.defined(), "transpose: the input is an undefined tensor");
  const Shape& s = x.shape();
  const int a = s.axis(d0, "transpose"), b = s.axis(d1, "transpose");
  std::vector<int> p(static_cast<size_t>(s.ndim()));
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[static_cast<size_t>(a)], p[static_cast<size_t>(b)]);
  return permute(x, p);
}

Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end, int64_t step) {
  LETHE_CHECK(x.defined(), "slice: the input is an undefined tensor");
  const Shape& s = x.shape();
  const int a = s.axis(axis, "slice");
  LETHE_CHECK(step > 0, "slice: step must be positive, got ", step, " (shape ", s, ", axis ", axis,
              ")");
  const int64_t n = s[a];
  // Python semantics: negative indices count from the end, then both clamp to [0, n].
  auto wrap = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  const int64_t b = wrap(start), e = std::max(wrap(end), b);
  const int64_t len = (e - b + step - 1) / step;
  if (b == 0 && len == n && step == 1) return x;
  return record(std::make_shared<SliceOp>(a, b, len, step), {x});
}

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  LETHE_CHECK(!xs.empty(), "concat: expected at least one tensor");
  for (size_t i = 0; i < xs.size(); ++i)
    LETHE_CHECK(xs[i].defined(), "concat: tensor ", i, " is undefined");
  LETHE_CHECK(xs[0].dim() > 0, "concat: cannot concatenate 0-d tensors");
  const int a = xs[0].shape().axis(axis, "concat");
  if (xs.size() == 1) return xs[0];
  return record(std::make_shared<ConcatOp>(a), xs);
}

Tensor unsqueeze(const Tensor& x, int d) {
  LETHE_CHECK(x.defined(), "unsqueeze: the input is an undefined tensor");
  const Shape& s = x.shape();
  const int n = s.ndim();
  LETHE_CHECK(d >= -(n + 1) && d <= n, "unsqueeze: dimension ", d, " is out of range for shape ", s,
              " (expected ", -(n + 1), " <= d <= ", n, ")");
  const int a = d < 0 ? d + n + 1 : d;
  std::vector<int64_t> dims = s.dims();
  dims.insert(dims.begin() + a, 1);
  return reshape(x, Shape(std::move(dims)));
}

Tensor squeeze(const Tensor& x, int d) {
  LETHE_CHECK(x.defined(), "squeeze: the input is an undefined tensor");
  const Shape& s = x.shape();
  const int a = s.axis(d, "squeeze");
  if (s[a] != 1) return x;  // as PyTorch: squeezing a dimension that is not 1 leaves x unchanged
  std::vector<int64_t> dims = s.dims();
  dims.erase(dims.begin() + a);
  return reshape(x, Shape(std::move(dims)));
}

}  // namespace lethe
