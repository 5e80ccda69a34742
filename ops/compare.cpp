// Comparisons (eq ne lt le gt ge, tensor-tensor with broadcasting or against a scalar) giving i64
// 0/1 masks, and where(cond, a, b) with broadcasting of all three.
#include "ops/compare.h"

#include <cstdio>
#include <memory>
#include <string>

#include "framework/error.h"
#include "ops/attrs.h"
#include "ops/cpu_util.h"
#include "ops/creation.h"
#include "ops/elementwise.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

template <typename T>
bool compare_as(OpKind k, T x, T y) {
  switch (k) {
    case OpKind::eq:
      return x == y;
    case OpKind::ne:
      return x != y;
    case OpKind::lt:
      return x < y;
    case OpKind::le:
      return x <= y;
    case OpKind::gt:
      return x > y;
    default:
      return x >= y;
  }
}

// out[i] = f(offsets of the N inputs at output element i), the inputs broadcast to out's shape.
template <size_t N, typename F>
void broadcast_walk(const KernelCall& c, F f) {
  const Shape& so = c.out_shape();
  const int64_t n = so.numel();
  if (n == 0) return;
  std::vector<std::vector<int64_t>> st;
  for (size_t k = 0; k < N; ++k) st.push_back(cpu::broadcast_strides(c.in_shape(k), so));
  const cpu::StridedLoop l = cpu::collapse(so, st);
  const int64_t inner = l.sizes.back(), rows = n / inner;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off[N];
    cpu::row_offsets(l, r, off);
    for (int64_t i = 0; i < inner; ++i) {
      f(r * inner + i, off);
      for (size_t k = 0; k < N; ++k) off[k] += l.strides[k].back();
    }
  }
}

class CompareOp final : public Op {
 public:
  CompareOp(OpKind k, CompareAttrs a) : k_(k), a_(a) {}
  OpKind kind() const override { return k_; }
  std::string attrs() const override {
    if (!a_.scalar) return {};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", a_.value);
    return std::string("scalar=") + buf;
  }
  bool differentiable() const override { return false; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const std::string n = name();
    TensorMeta out = in[0];
    out.dtype = DType::i64;
    if (a_.scalar) return out;
    LETHE_CHECK(in[0].dtype == in[1].dtype, n, ": dtypes ", in[0].dtype, " and ", in[1].dtype,
                " differ (shapes ", in[0].shape, " and ", in[1].shape, "); cast one with .to()");
    out.shape = broadcast_shapes(in[0].shape, in[1].shape, n.c_str());
    return out;
  }
  void cpu(const KernelCall& c) const override {
    int64_t* o = c.out<int64_t>();
    dispatch_all(c.in_meta[0]->dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* a = c.in<T>(0);
      const OpKind k = k_;
      if (a_.scalar) {
        const int64_t n = c.out_meta->numel();
        if constexpr (std::is_floating_point_v<T>) {
          const T s = static_cast<T>(a_.value);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
          for (int64_t i = 0; i < n; ++i) o[i] = compare_as(k, a[i], s);
        } else {
          const double s = a_.value;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
          for (int64_t i = 0; i < n; ++i) o[i] = compare_as(k, static_cast<double>(a[i]), s);
        }
        return;
      }
      const T* b = c.in<T>(1);
      broadcast_walk<2>(
          c, [&](int64_t i, const int64_t* off) { o[i] = compare_as(k, a[off[0]], b[off[1]]); });
    });
  }

 private:
  OpKind k_;
  CompareAttrs a_;

 protected:
  AttrsRef attrs_ref() const override {
    return AttrsRef::of(a_);
  }
};

class WhereOp final : public Op {
 public:
  OpKind kind() const override { return OpKind::where; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in[1].dtype == in[2].dtype, "where: a and b have dtypes ", in[1].dtype, " and ",
                in[2].dtype, " (shapes ", in[1].shape, " and ", in[2].shape,
                "); cast one with .to()");
    TensorMeta out = in[1];
    out.shape =
        broadcast_shapes(broadcast_shapes(in[0].shape, in[1].shape, "where"), in[2].shape, "where");
    return out;
  }
  void cpu(const KernelCall& c) const override {
    dispatch_all(c.in_meta[0]->dtype, [&](auto ctag) {
      using C = decltype(ctag);
      dispatch_all(c.in_meta[1]->dtype, [&](auto tag) {
        using T = decltype(tag);
        const C* cond = c.in<C>(0);
        const T* a = c.in<T>(1);
        const T* b = c.in<T>(2);
        T* o = c.out<T>();
        broadcast_walk<3>(c, [&](int64_t i, const int64_t* off) {
          o[i] = cond[off[0]] != C(0) ? a[off[1]] : b[off[2]];
        });
      });
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    std::vector<Tensor> r(3);
    const Tensor &cond = c.inputs[0], &g = c.grad_output;
    if (!c.needs_grad[1] && !c.needs_grad[2]) return r;
    const Tensor zero = full_like(g, 0.0);
    if (c.needs_grad[1]) r[1] = sum_to(where(cond, g, zero), c.inputs[1].shape());
    if (c.needs_grad[2]) r[2] = sum_to(where(cond, zero, g), c.inputs[2].shape());
    return r;
  }
};

Tensor compare(OpKind k, const Tensor& a, const Tensor& b) {
  LETHE_CHECK(a.defined() && b.defined(), op_kind_name(k), ": an operand is an undefined tensor");
  return record(std::make_shared<CompareOp>(k, CompareAttrs{}), {a, b});
}
Tensor compare(OpKind k, const Tensor& a, double s) {
  LETHE_CHECK(a.defined(), op_kind_name(k), ": the input is an undefined tensor");
  return record(std::make_shared<CompareOp>(k, CompareAttrs{true, s}), {a});
}

}  // namespace

Tensor eq(const Tensor& a, const Tensor& b) {
  return compare(OpKind::eq, a, b);
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return compare(OpKind::ne, a, b);
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return compare(OpKind::lt, a, b);
}
Tensor le(const Tensor& a, const Tensor& b) {
  return compare(OpKind::le, a, b);
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return compare(OpKind::gt, a, b);
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return compare(OpKind::ge, a, b);
}
Tensor eq(const Tensor& a, double s) {
  return compare(OpKind::eq, a, s);
}
Tensor ne(const Tensor& a, double s) {
  return compare(OpKind::ne, a, s);
}
Tensor lt(const Tensor& a, double s) {
  return compare(OpKind::lt, a, s);
}
Tensor le(const Tensor& a, double s) {
  return compare(OpKind::le, a, s);
}
Tensor gt(const Tensor& a, double s) {
  return compare(OpKind::gt, a, s);
}
Tensor ge(const Tensor& a, double s) {
  return compare(OpKind::ge, a, s);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  LETHE_CHECK(cond.defined() && a.defined() && b.defined(),
              "where: an operand is an undefined tensor");
  return record(std::make_shared<WhereOp>(), {cond, a, b});
}

}  // namespace lethe
