// Elementwise ops: binary arithmetic with NumPy broadcasting, scalar forms, unary maths and
// activations (with dedicated backward ops), casts, sum_to and broadcast_to.
#include "ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "framework/error.h"
#include "framework/session.h"
#include "ops/attrs.h"
#include "ops/compare.h"
#include "ops/cpu_util.h"
#include "ops/layout.h"
#include "ops/creation.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

namespace lethe {
namespace {

using cpu::kParallelGrain;

std::string fmt_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// y[i] = f(x[i]) over n contiguous elements.
template <typename T, typename U, typename F>
void map1(const T* x, U* y, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// y[i] = f(a[i], b[i]) over n contiguous elements (same shapes).
template <typename T, typename F>
void map2(const T* a, const T* b, T* y, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}

// o = f(a, b) with broadcasting: fast paths for equal shapes and scalar operands, otherwise rows
// of the collapsed iteration space whose inner strides are 0 or 1 (four vectorisable loops).
template <typename T, typename F>
void broadcast_binary(const KernelCall& k, F f) {
  const T* a = k.in<T>(0);
  const T* b = k.in<T>(1);
  T* o = k.out<T>();
  const Shape &sa = k.in_shape(0), &sb = k.in_shape(1), &so = k.out_shape();
  const int64_t n = so.numel();
  if (n == 0) return;
  if (sa.numel() == n && sb.numel() == n) {
    map2(a, b, o, n, f);
    return;
  }
  if (sb.numel() == 1 && sa.numel() == n) {
    const T bv = b[0];
    map1(a, o, n, [&](T x) { return f(x, bv); });
    return;
  }
  if (sa.numel() == 1 && sb.numel() == n) {
    const T av = a[0];
    map1(b, o, n, [&](T x) { return f(av, x); });
    return;
  }
  const cpu::StridedLoop l =
      cpu::collapse(so, {cpu::broadcast_strides(sa, so), cpu::broadcast_strides(sb, so)});
  const int64_t inner = l.sizes.back(), rows = n / inner;
  const int64_t ia = l.strides[0].back(), ib = l.strides[1].back();
  LETHE_ASSERT((ia == 0 || ia == 1) && (ib == 0 || ib == 1));
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off[2];
    cpu::row_offsets(l, r, off);
    const T* pa = a + off[0];
    const T* pb = b + off[1];
    T* po = o + r * inner;
    if (ia == 1 && ib == 1) {
      for (int64_t i = 0; i < inner; ++i) po[i] = f(pa[i], pb[i]);
    } else if (ia == 1) {
      const T bv = pb[0];
      for (int64_t i = 0; i < inner; ++i) po[i] = f(pa[i], bv);
    } else if (ib == 1) {
      const T av = pa[0];
      for (int64_t i = 0; i < inner; ++i) po[i] = f(av, pb[i]);
    } else {
      const T v = f(pa[0], pb[0]);
      for (int64_t i = 0; i < inner; ++i) po[i] = v;
    }
  }
}

Tensor reduce_grad(const Tensor& g, const Shape& s) {
  return sum_to(g, s);
}

// ------------------------------------------------------------------------------------ binary

enum class BinKind { add, sub, mul, div, minimum, maximum, pow };

// maximum/minimum as torch: a NaN in either operand gives NaN.
template <typename T>
T max_nan(T x, T y) {
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(x) || std::isnan(y)) return x + y;
  return x < y ? y : x;
}
template <typename T>
T min_nan(T x, T y) {
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(x) || std::isnan(y)) return x + y;
  return y < x ? y : x;
}

class BinaryOp final : public Op {
 public:
  explicit BinaryOp(BinKind k) : k_(k) {}
  OpKind kind() const override {
    switch (k_) {
      case BinKind::add:
        return OpKind::add;
      case BinKind::sub:
        return OpKind::sub;
      case BinKind::mul:
        return OpKind::mul;
      case BinKind::div:
        return OpKind::div;
      case BinKind::minimum:
        return OpKind::minimum;
      case BinKind::maximum:
        return OpKind::maximum;
      case BinKind::pow:
        return OpKind::pow_tensor;
    }
    return OpKind::div;
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    const std::string n = name();
    LETHE_CHECK(in[0].dtype == in[1].dtype, n, ": dtypes ", in[0].dtype, " and ", in[1].dtype,
                " differ (shapes ", in[0].shape, " and ", in[1].shape, "); cast one with .to()");
    LETHE_CHECK((k_ != BinKind::div && k_ != BinKind::pow) || is_floating(in[0].dtype), n,
                ": expected floating-point tensors, got ", in[0].dtype, " (shapes ", in[0].shape,
                " and ", in[1].shape, ")");
    TensorMeta out = in[0];
    out.shape = broadcast_shapes(in[0].shape, in[1].shape, n.c_str());
    return out;
  }
  void cpu(const KernelCall& c) const override {
    dispatch_all(c.in_meta[0]->dtype, [&](auto tag) {
      using T = decltype(tag);
      switch (k_) {
        case BinKind::add:
          broadcast_binary<T>(c, [](T x, T y) { return x + y; });
          break;
        case BinKind::sub:
          broadcast_binary<T>(c, [](T x, T y) { return x - y; });
          break;
        case BinKind::mul:
          broadcast_binary<T>(c, [](T x, T y) { return x * y; });
          break;
        case BinKind::div:
          if constexpr (std::is_floating_point_v<T>)
            broadcast_binary<T>(c, [](T x, T y) { return x / y; });
          break;
        case BinKind::minimum:
          broadcast_binary<T>(c, [](T x, T y) { return min_nan(x, y); });
          break;
        case BinKind::maximum:
          broadcast_binary<T>(c, [](T x, T y) { return max_nan(x, y); });
          break;
        case BinKind::pow:
          if constexpr (std::is_floating_point_v<T>)
            broadcast_binary<T>(c, [](T x, T y) { return std::pow(x, y); });
          break;
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    const Tensor &a = c.inputs[0], &b = c.inputs[1], &g = c.grad_output;
    std::vector<Tensor> r(2);
    switch (k_) {
      case BinKind::add:
        if (c.needs_grad[0]) r[0] = reduce_grad(g, a.shape());
        if (c.needs_grad[1]) r[1] = reduce_grad(g, b.shape());
        break;
      case BinKind::sub:
        if (c.needs_grad[0]) r[0] = reduce_grad(g, a.shape());
        if (c.needs_grad[1]) r[1] = reduce_grad(neg(g), b.shape());
        break;
      case BinKind::mul:
        if (c.needs_grad[0]) r[0] = reduce_grad(mul(g, b), a.shape());
        if (c.needs_grad[1]) r[1] = reduce_grad(mul(g, a), b.shape());
        break;
      case BinKind::div:
        if (c.needs_grad[0]) r[0] = reduce_grad(div(g, b), a.shape());
        // d(a/b)/db = -(a/b)/b
        if (c.needs_grad[1]) r[1] = reduce_grad(neg(div(mul(g, c.output), b)), b.shape());
        break;
      case BinKind::minimum:
      case BinKind::maximum: {
        // As torch: a tie splits the gradient in halves; the smaller (larger) operand gets none.
        const Tensor half = where(eq(a, b), mul_scalar(g, 0.5), g), zero = full_like(g, 0.0);
        const bool mx = k_ == BinKind::maximum;
        if (c.needs_grad[0])
          r[0] = reduce_grad(where(mx ? lt(a, b) : gt(a, b), zero, half), a.shape());
        if (c.needs_grad[1])
          r[1] = reduce_grad(where(mx ? gt(a, b) : lt(a, b), zero, half), b.shape());
        break;
      }
      case BinKind::pow: {
        // As torch: no gradient to a where b == 0, none to b where a == 0 and b >= 0.
        const Tensor zero = full_like(g, 0.0);
        if (c.needs_grad[0])
          r[0] = reduce_grad(where(eq(b, 0.0), zero, mul(g, mul(b, pow(a, add_scalar(b, -1.0))))),
                             a.shape());
        if (c.needs_grad[1])
          r[1] = reduce_grad(
              where(mul(eq(a, 0.0), ge(b, 0.0)), zero, mul(g, mul(c.output, log(a)))), b.shape());
        break;
      }
    }
    return r;
  }

 private:
  BinKind k_;
};

// ------------------------------------------------------------------------------------ unary

enum class UnKind {
  add_scalar,
  mul_scalar,
  rsub_scalar,
  rdiv_scalar,
  neg,
  exp,
  log,
  sqrt,
  pow,
  relu,
  gelu,
  gelu_tanh,
  sigmoid,
  tanh,
  abs,
  sign,
  log1p,
  expm1,
  clamp
};

// y = x clamped to a's bounds. A NaN fails both tests and stays NaN; min > max gives max (torch).
template <typename T>
void clamp_map(const T* x, T* y, int64_t n, const ClampAttrs& a) {
  const T lo = static_cast<T>(a.min), hi = static_cast<T>(a.max);
  const bool has_lo = a.has_min, has_hi = a.has_max;
  map1(x, y, n, [=](T v) {
    if (has_lo && v < lo) v = lo;
    if (has_hi && v > hi) v = hi;
    return v;
  });
}

constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi)
constexpr double kGeluC = 0.044715;

class UnaryOp final : public Op {
 public:
  UnaryOp(UnKind k, double s = 0.0, ClampAttrs clamp = {})
      : k_(k),
        scalar_{s},
        gelu_{k == UnKind::gelu_tanh ? GeluApproximation::tanh : GeluApproximation::none},
        clamp_(clamp) {}
  OpKind kind() const override {
    switch (k_) {
      case UnKind::add_scalar:
        return OpKind::add_scalar;
      case UnKind::mul_scalar:
        return OpKind::mul_scalar;
      case UnKind::rsub_scalar:
        return OpKind::rsub_scalar;
      case UnKind::rdiv_scalar:
        return OpKind::rdiv_scalar;
      case UnKind::neg:
        return OpKind::neg;
      case UnKind::exp:
        return OpKind::exp;
      case UnKind::log:
        return OpKind::log;
      case UnKind::sqrt:
        return OpKind::sqrt;
      case UnKind::pow:
        return OpKind::pow;
      case UnKind::relu:
        return OpKind::relu;
      case UnKind::gelu:
      case UnKind::gelu_tanh:
        return OpKind::gelu;
      case UnKind::sigmoid:
        return OpKind::sigmoid;
      case UnKind::tanh:
        return OpKind::tanh;
      case UnKind::abs:
        return OpKind::abs;
      case UnKind::sign:
        return OpKind::sign;
      case UnKind::log1p:
        return OpKind::log1p;
      case UnKind::expm1:
        return OpKind::expm1;
      case UnKind::clamp:
        return OpKind::clamp;
    }
    return OpKind::tanh;
  }
  std::string attrs() const override {
    switch (k_) {
      case UnKind::add_scalar:
      case UnKind::mul_scalar:
      case UnKind::rsub_scalar:
      case UnKind::rdiv_scalar:
        return "scalar=" + fmt_double(scalar_.value);
      case UnKind::pow:
        return "exponent=" + fmt_double(scalar_.value);
      case UnKind::gelu:
        return "approximate=none";
      case UnKind::gelu_tanh:
        return "approximate=tanh";
      case UnKind::clamp:
        return "min=" + (clamp_.has_min ? fmt_double(clamp_.min) : std::string("none")) +
               ",max=" + (clamp_.has_max ? fmt_double(clamp_.max) : std::string("none"));
      default:
        return {};
    }
  }
  // Integer tensors take the arithmetic ops with an integral scalar; everything else needs floats.
  bool integer_ok() const {
    const bool integral =
        std::floor(scalar_.value) == scalar_.value && std::abs(scalar_.value) < 9.0e18;
    const auto whole = [](double v) { return std::floor(v) == v && std::abs(v) < 9.0e18; };
    if (k_ == UnKind::clamp)
      return (!clamp_.has_min || whole(clamp_.min)) && (!clamp_.has_max || whole(clamp_.max));
    return k_ == UnKind::neg || k_ == UnKind::abs || k_ == UnKind::sign ||
           ((k_ == UnKind::add_scalar || k_ == UnKind::mul_scalar || k_ == UnKind::rsub_scalar) &&
            integral);
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(is_floating(in[0].dtype) || integer_ok(), name(),
                ": expected a floating-point tensor (f32 or f64), got ", in[0].dtype, in[0].shape,
                (k_ <= UnKind::rsub_scalar ? " with a non-integral scalar"
                 : k_ == UnKind::clamp     ? " with a non-integral bound"
                                           : ""));
    return in[0];
  }
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    OpCost c = Op::cost(in, out);
    double per = 1;
    switch (k_) {
      case UnKind::exp:
      case UnKind::log:
      case UnKind::sqrt:
      case UnKind::pow:
      case UnKind::sigmoid:
      case UnKind::tanh:
      case UnKind::log1p:
      case UnKind::expm1:
        per = 8;
        break;
      case UnKind::gelu:
      case UnKind::gelu_tanh:
        per = 16;
        break;
      default:
        break;
    }
    c.flops *= per;
    return c;
  }
  void cpu(const KernelCall& c) const override {
    const int64_t n = c.out_meta->numel();
    if (c.in_meta[0]->dtype == DType::i64) {
      const int64_t* x = c.in<int64_t>(0);
      int64_t* y = c.out<int64_t>();
      const int64_t s = static_cast<int64_t>(scalar_.value);
      switch (k_) {
        case UnKind::neg:
          map1(x, y, n, [](int64_t v) { return -v; });
          break;
        case UnKind::add_scalar:
          map1(x, y, n, [s](int64_t v) { return v + s; });
          break;
        case UnKind::mul_scalar:
          map1(x, y, n, [s](int64_t v) { return v * s; });
          break;
        case UnKind::rsub_scalar:
          map1(x, y, n, [s](int64_t v) { return s - v; });
          break;
        case UnKind::abs:
          map1(x, y, n, [](int64_t v) { return v < 0 ? -v : v; });
          break;
        case UnKind::sign:
          map1(x, y, n, [](int64_t v) { return int64_t(v > 0) - int64_t(v < 0); });
          break;
        case UnKind::clamp:
          clamp_map(x, y, n, clamp_);
          break;
        default:
          LETHE_ASSERT(false);
      }
      return;
    }
    dispatch_float(c.in_meta[0]->dtype, "unary", [&](auto tag) {
      using T = decltype(tag);
      const T* x = c.in<T>(0);
      T* y = c.out<T>();
      const T s = static_cast<T>(scalar_.value);
      switch (k_) {
        case UnKind::add_scalar:
          map1(x, y, n, [s](T v) { return v + s; });
          break;
        case UnKind::mul_scalar:
          map1(x, y, n, [s](T v) { return v * s; });
          break;
        case UnKind::rsub_scalar:
          map1(x, y, n, [s](T v) { return s - v; });
          break;
        case UnKind::rdiv_scalar:
          map1(x, y, n, [s](T v) { return s / v; });
          break;
        case UnKind::neg:
          map1(x, y, n, [](T v) { return -v; });
          break;
        case UnKind::exp:
          map1(x, y, n, [](T v) { return std::exp(v); });
          break;
        case UnKind::log:
          map1(x, y, n, [](T v) { return std::log(v); });
          break;
        case UnKind::sqrt:
          map1(x, y, n, [](T v) { return std::sqrt(v); });
          break;
        case UnKind::pow:
          if (scalar_.value == 2.0)
            map1(x, y, n, [](T v) { return v * v; });
          else
            map1(x, y, n, [s](T v) { return std::pow(v, s); });
          break;
        // NaN stays NaN (as PyTorch): a comparison with NaN is false, so test v <= 0 instead of v >
        // 0.
        case UnKind::relu:
          map1(x, y, n, [](T v) { return v <= T(0) ? T(0) : v; });
          break;
        case UnKind::gelu:
          map1(x, y, n, [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(kSqrt1_2))); });
          break;
        case UnKind::gelu_tanh:
          map1(x, y, n, [](T v) {
            return T(0.5) * v * (T(1) + std::tanh(T(kSqrt2OverPi) * (v + T(kGeluC) * v * v * v)));
          });
          break;
        case UnKind::sigmoid:
          // Two branches so that exp never overflows.
          map1(x, y, n, [](T v) {
            if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
            const T e = std::exp(v);
            return e / (T(1) + e);
          });
          break;
        case UnKind::tanh:
          map1(x, y, n, [](T v) { return std::tanh(v); });
          break;
        case UnKind::abs:
          map1(x, y, n, [](T v) { return std::abs(v); });
          break;
        // sign(NaN) = 0, as torch.sign.
        case UnKind::sign:
          map1(x, y, n, [](T v) { return T(v > T(0)) - T(v < T(0)); });
          break;
        case UnKind::log1p:
          map1(x, y, n, [](T v) { return std::log1p(v); });
          break;
        case UnKind::expm1:
          map1(x, y, n, [](T v) { return std::expm1(v); });
          break;
        case UnKind::clamp:
          clamp_map(x, y, n, clamp_);
          break;
      }
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override;

 protected:
  AttrsRef attrs_ref() const override {
    switch (k_) {
      case UnKind::add_scalar:
      case UnKind::mul_scalar:
      case UnKind::rsub_scalar:
      case UnKind::rdiv_scalar:
      case UnKind::pow:
        return AttrsRef::of(scalar_);
      case UnKind::gelu:
      case UnKind::gelu_tanh:
        return AttrsRef::of(gelu_);
      case UnKind::clamp:
        return AttrsRef::of(clamp_);
      default:
        return {};
    }
  }

 private:
  UnKind k_;
  ScalarAttrs scalar_;  // the scalar (or exponent) of the kinds that have one
  GeluAttrs gelu_;
  ClampAttrs clamp_;
};

// ---------------------------------------------------------------- activation backward ops

enum class BwKind { relu, gelu, gelu_tanh, sigmoid, tanh };

// grad_in = grad_out * f'(saved): saved is x (relu, gelu) or the output y (sigmoid, tanh).
class ActivationBackwardOp final : public Op {
 public:
  explicit ActivationBackwardOp(BwKind k)
      : k_(k), gelu_{k == BwKind::gelu_tanh ? GeluApproximation::tanh : GeluApproximation::none} {}
  OpKind kind() const override {
    switch (k_) {
      case BwKind::relu:
        return OpKind::relu_backward;
      case BwKind::gelu:
      case BwKind::gelu_tanh:
        return OpKind::gelu_backward;
      case BwKind::sigmoid:
        return OpKind::sigmoid_backward;
      case BwKind::tanh:
        return OpKind::tanh_backward;
    }
    return OpKind::tanh_backward;
  }
  std::string attrs() const override {
    if (k_ == BwKind::gelu) return "approximate=none";
    if (k_ == BwKind::gelu_tanh) return "approximate=tanh";
    return {};
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in[0].shape == in[1].shape && in[0].dtype == in[1].dtype, name(), ": gradient ",
                in[0].str(), " and saved tensor ", in[1].str(), " differ");
    LETHE_CHECK(is_floating(in[0].dtype), name(), ": expected floating-point tensors, got ",
                in[0].dtype);
    return in[0];
  }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& c) const override {
    const int64_t n = c.out_meta->numel();
    dispatch_float(c.in_meta[0]->dtype, name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      const T* g = c.in<T>(0);
      const T* s = c.in<T>(1);
      T* o = c.out<T>();
      switch (k_) {
        case BwKind::relu:
          map2(g, s, o, n, [](T gv, T x) { return x > T(0) ? gv : T(0); });
          break;
        case BwKind::gelu:
          map2(g, s, o, n, [](T gv, T x) {
            const T cdf = T(0.5) * (T(1) + std::erf(x * T(kSqrt1_2)));
            const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
            return gv * (cdf + x * pdf);
          });
          break;
        case BwKind::gelu_tanh:
          map2(g, s, o, n, [](T gv, T x) {
            const T u = T(kSqrt2OverPi) * (x + T(kGeluC) * x * x * x);
            const T t = std::tanh(u);
            const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluC) * x * x);
            return gv * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
          });
          break;
        case BwKind::sigmoid:
          map2(g, s, o, n, [](T gv, T y) { return gv * y * (T(1) - y); });
          break;
        case BwKind::tanh:
          map2(g, s, o, n, [](T gv, T y) { return gv * (T(1) - y * y); });
          break;
      }
    });
  }

 protected:
  AttrsRef attrs_ref() const override {
    return k_ == BwKind::gelu || k_ == BwKind::gelu_tanh ? AttrsRef::of(gelu_) : AttrsRef{};
  }

 private:
  BwKind k_;
  GeluAttrs gelu_;
};

Tensor activation_backward(BwKind k, const Tensor& g, const Tensor& saved) {
  return record(std::make_shared<ActivationBackwardOp>(k), {g, saved});
}

std::vector<Tensor> UnaryOp::backward(const BackwardCtx& c) const {
  if (!c.needs_grad[0]) return {Tensor()};
  const Tensor &x = c.inputs[0], &y = c.output, &g = c.grad_output;
  switch (k_) {
    case UnKind::add_scalar:
      return {g};
    case UnKind::mul_scalar:
      return {mul_scalar(g, scalar_.value)};
    case UnKind::rsub_scalar:
    case UnKind::neg:
      return {neg(g)};
    case UnKind::rdiv_scalar:
      return {neg(div(mul(g, y), x))};  // d(s/x) = -(s/x)/x
    case UnKind::exp:
      return {mul(g, y)};
    case UnKind::log:
      return {div(g, x)};
    case UnKind::sqrt:
      return {div(mul_scalar(g, 0.5), y)};
    case UnKind::pow:
      if (scalar_.value == 0.0) return {full_like(x, 0.0)};
      if (scalar_.value == 1.0) return {g};
      if (scalar_.value == 2.0) return {mul(g, mul_scalar(x, 2.0))};
      return {mul(g, mul_scalar(pow(x, scalar_.value - 1.0), scalar_.value))};
    case UnKind::relu:
      return {activation_backward(BwKind::relu, g, x)};
    case UnKind::gelu:
      return {activation_backward(BwKind::gelu, g, x)};
    case UnKind::gelu_tanh:
      return {activation_backward(BwKind::gelu_tanh, g, x)};
    case UnKind::sigmoid:
      return {activation_backward(BwKind::sigmoid, g, y)};
    case UnKind::tanh:
      return {activation_backward(BwKind::tanh, g, y)};
    case UnKind::abs:
      return {mul(g, sign(x))};
    case UnKind::sign:
      return {full_like(x, 0.0)};
    case UnKind::log1p:
      return {div(g, add_scalar(x, 1.0))};
    case UnKind::expm1:
      return {mul(g, add_scalar(y, 1.0))};
    case UnKind::clamp: {
      // As torch: the gradient passes where min <= x <= max (a NaN x passes none).
      Tensor pass;
      if (clamp_.has_min) pass = ge(x, clamp_.min);
      if (clamp_.has_max) pass = pass.defined() ? mul(pass, le(x, clamp_.max)) : le(x, clamp_.max);
      return {where(pass, g, full_like(g, 0.0))};
    }
  }
  return {Tensor()};
}

Tensor unary(UnKind k, const Tensor& x, double s = 0.0) {
  return record(std::make_shared<UnaryOp>(k, s), {x});
}

// ------------------------------------------------------------------------------------ cast

class CastOp final : public Op {
 public:
  explicit CastOp(DType t) : a_{t} {}
  OpKind kind() const override { return OpKind::cast; }
  std::string attrs() const override { return std::string("dtype=") + dtype_name(a_.dtype); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    TensorMeta m = in[0];
    m.dtype = a_.dtype;
    return m;
  }
  void cpu(const KernelCall& c) const override {
    const int64_t n = c.out_meta->numel();
    dispatch_all(c.in_meta[0]->dtype, [&](auto itag) {
      using I = decltype(itag);
      dispatch_all(a_.dtype, [&](auto otag) {
        using O = decltype(otag);
        map1(c.in<I>(0), c.out<O>(), n, [](I v) { return static_cast<O>(v); });
      });
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0] || !is_floating(a_.dtype) || !is_floating(c.inputs[0].dtype()))
      return {Tensor()};
    return {cast(c.grad_output, c.inputs[0].dtype())};
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  CastAttrs a_;
};

// ---------------------------------------------------------------- sum_to / broadcast_to

using layout::pad_to;

// True when `small` broadcasts to exactly `big`.
bool broadcasts_to(const Shape& small, const Shape& big) {
  if (small.ndim() > big.ndim()) return false;
  const Shape p = pad_to(small, big.ndim());
  for (int d = 0; d < big.ndim(); ++d)
    if (p[d] != big[d] && p[d] != 1) return false;
  return true;
}

class SumToOp final : public Op {
 public:
  explicit SumToOp(Shape s) : a_{std::move(s)} {}
  OpKind kind() const override { return OpKind::sum_to; }
  std::string attrs() const override { return "shape=" + a_.shape.str(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(broadcasts_to(a_.shape, in[0].shape), "sum_to: shape ", in[0].shape,
                " cannot be summed to ", a_.shape, " (", a_.shape, " does not broadcast to ",
                in[0].shape, ")");
    TensorMeta m = in[0];
    m.shape = a_.shape;
    return m;
  }
  size_t workspace_bytes(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    const int64_t n = in[0].numel();
    const int64_t elems = cpu::reduce_scratch_elems(n);
    return static_cast<size_t>(elems) * dtype_size(in[0].dtype);
  }
  void cpu(const KernelCall& c) const override {
    dispatch_all(c.in_meta[0]->dtype, [&](auto tag) {
      using T = decltype(tag);
      const Shape& xs = c.in_shape(0);
      cpu::reduce_sum(c.in<T>(0), xs, pad_to(a_.shape, xs.ndim()), c.out<T>(),
                      static_cast<T*>(c.workspace));
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor()};
    return {broadcast_to(c.grad_output, c.inputs[0].shape())};
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  ShapeAttrs a_;
};

class BroadcastToOp final : public Op {
 public:
  explicit BroadcastToOp(Shape s) : a_{std::move(s)} {}
  OpKind kind() const override { return OpKind::broadcast_to; }
  std::string attrs() const override { return "shape=" + a_.shape.str(); }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(broadcasts_to(in[0].shape, a_.shape), "broadcast_to: shape ", in[0].shape,
                " cannot be broadcast to ", a_.shape);
    TensorMeta m = in[0];
    m.shape = a_.shape;
    return m;
  }
  void cpu(const KernelCall& c) const override {
    dispatch_all(c.in_meta[0]->dtype, [&](auto tag) {
      using T = decltype(tag);
      if (c.out_meta->numel() == 0) return;
      cpu::broadcast_copy(c.in<T>(0), c.in_shape(0), c.out<T>(), a_.shape);
    });
  }
  std::vector<Tensor> backward(const BackwardCtx& c) const override {
    if (!c.needs_grad[0]) return {Tensor()};
    return {sum_to(c.grad_output, c.inputs[0].shape())};
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  ShapeAttrs a_;
};

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return record(std::make_shared<BinaryOp>(BinKind::add), {a, b});
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return record(std::make_shared<BinaryOp>(BinKind::sub), {a, b});
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return record(std::make_shared<BinaryOp>(BinKind::mul), {a, b});
}
Tensor div(const Tensor& a, const Tensor& b) {
  return record(std::make_shared<BinaryOp>(BinKind::div), {a, b});
}
Tensor add_scalar(const Tensor& x, double s) {
  return unary(UnKind::add_scalar, x, s);
}
Tensor mul_scalar(const Tensor& x, double s) {
  return unary(UnKind::mul_scalar, x, s);
}
Tensor rsub_scalar(const Tensor& x, double s) {
  return unary(UnKind::rsub_scalar, x, s);
}
Tensor rdiv_scalar(const Tensor& x, double s) {
  return unary(UnKind::rdiv_scalar, x, s);
}
Tensor neg(const Tensor& x) {
  return unary(UnKind::neg, x);
}
Tensor exp(const Tensor& x) {
  return unary(UnKind::exp, x);
}
Tensor log(const Tensor& x) {
  return unary(UnKind::log, x);
}
Tensor sqrt(const Tensor& x) {
  return unary(UnKind::sqrt, x);
}
Tensor pow(const Tensor& x, double e) {
  return unary(UnKind::pow, x, e);
}
Tensor relu(const Tensor& x) {
  return unary(UnKind::relu, x);
}
Tensor gelu(const Tensor& x, const std::string& approximate) {
  LETHE_CHECK(approximate == "none" || approximate == "tanh",
              "gelu: approximate must be \"none\" or \"tanh\", got \"", approximate, "\"");
  return unary(approximate == "none" ? UnKind::gelu : UnKind::gelu_tanh, x);
}
Tensor sigmoid(const Tensor& x) {
  return unary(UnKind::sigmoid, x);
}
Tensor tanh(const Tensor& x) {
  return unary(UnKind::tanh, x);
}
Tensor abs(const Tensor& x) {
  return unary(UnKind::abs, x);
}
Tensor sign(const Tensor& x) {
  return unary(UnKind::sign, x);
}
Tensor log1p(const Tensor& x) {
  return unary(UnKind::log1p, x);
}
Tensor expm1(const Tensor& x) {
  return unary(UnKind::expm1, x);
}
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  LETHE_CHECK(min || max, "clamp: at least one of min and max must be given");
  ClampAttrs a;
  a.has_min = min.has_value();
  a.has_max = max.has_value();
  a.min = min.value_or(0.0);
  a.max = max.value_or(0.0);
  return record(std::make_shared<UnaryOp>(UnKind::clamp, 0.0, a), {x});
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return record(std::make_shared<BinaryOp>(BinKind::minimum), {a, b});
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return record(std::make_shared<BinaryOp>(BinKind::maximum), {a, b});
}
Tensor pow(const Tensor& a, const Tensor& b) {
  return record(std::make_shared<BinaryOp>(BinKind::pow), {a, b});
}

Tensor cast(const Tensor& x, DType t) {
  if (x.defined() && x.dtype() == t) return x;
  return record(std::make_shared<CastOp>(t), {x});
}

Tensor sum_to(const Tensor& x, const Shape& s) {
  if (x.defined() && x.shape() == s) return x;
  return record(std::make_shared<SumToOp>(s), {x});
}

Tensor broadcast_to(const Tensor& x, const Shape& s) {
  if (x.defined() && x.shape() == s) return x;
  return record(std::make_shared<BroadcastToOp>(s), {x});
}

}  // namespace lethe
