// CUDA kernels of ops/elementwise.cpp: binary arithmetic (with minimum, maximum and pow of two
// tensors), unary maths (abs, sign, log1p, expm1, clamp) and activations (+ their
// backwards) and cast through the broadcasting kernel of elementwise.cuh; sum_to (the reduction of
// reduce.cu) and broadcast_to (the strided copy of shape_ops.cu); the bias adds of linear and
// conv2d.
#include <cmath>
#include <type_traits>

#include "ops/cuda/common.cuh"
#include "ops/cuda/elementwise.cuh"
#include "ops/layout.h"

namespace lethe::cuda::detail {
namespace {

// ------------------------------------------------------------------------------- functors

enum Bin : int { kAdd, kSub, kMul, kDiv, kMinimum, kMaximum, kPowT };
template <typename T>
struct BinaryF {
  int k;
  __device__ T operator()(const T (&v)[2], int64_t) const {
    const T x = v[0], y = v[1];
    if (k == kMinimum || k == kMaximum) {
      // As the CPU kernel: a NaN in either operand gives NaN (x + y is that NaN).
      if constexpr (std::is_floating_point_v<T>)
        if (isnan(x) || isnan(y)) return x + y;
      if (k == kMinimum) return y < x ? y : x;
      return x < y ? y : x;
    }
    switch (k) {
      case kAdd:
        return x + y;
      case kSub:
        return x - y;
      case kMul:
        return x * y;
      default:
        if constexpr (std::is_floating_point_v<T>) return k == kPowT ? pow(x, y) : x / y;
        return T(0);
    }
  }
};

enum Un : int {
  kAddS,
  kMulS,
  kRsubS,
  kRdivS,
  kNeg,
  kExp,
  kLog,
  kSqrt,
  kPow,
  kSquare,
  kRelu,
  kGelu,
  kGeluTanh,
  kSigmoid,
  kTanh,
  kAbs,
  kSign,
  kLog1p,
  kExpm1,
  kClamp
};
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluC = 0.044715;

template <typename T>
struct UnaryF {
  int k;
  T s;
  T lo = T(0), hi = T(0);  // clamp's bounds, where has_lo / has_hi
  bool has_lo = false, has_hi = false;
  __device__ T operator()(const T (&a)[1], int64_t) const {
    T v = a[0];
    switch (k) {
      case kAddS:
        return v + s;
      case kMulS:
        return v * s;
      case kRsubS:
        return s - v;
      case kNeg:
        return -v;
      case kAbs:
        if constexpr (std::is_floating_point_v<T>)
          return fabs(v);  // as std::abs: -0 gives +0
        else
          return v < T(0) ? -v : v;
      case kSign:
        return T(v > T(0)) - T(v < T(0));  // sign(NaN) = 0, as the CPU and torch
      case kClamp:
        // A NaN fails both tests and stays NaN; min > max gives max (the CPU kernel's order).
        if (has_lo && v < lo) v = lo;
        if (has_hi && v > hi) v = hi;
        return v;
      default:
        break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (k) {
        case kRdivS:
          return s / v;
        case kExp:
          return exp(v);
        case kLog:
          return log(v);
        case kSqrt:
          return sqrt(v);
        case kPow:
          return pow(v, s);
        case kSquare:
          return v * v;
        case kRelu:
          return v <= T(0) ? T(0) : v;  // NaN stays NaN, as on the CPU
        case kGelu:
          return T(0.5) * v * (T(1) + erf(v * T(kSqrt1_2)));
        case kGeluTanh:
          return T(0.5) * v * (T(1) + tanh(T(kSqrt2OverPi) * (v + T(kGeluC) * v * v * v)));
        case kSigmoid: {
          if (v >= T(0)) return T(1) / (T(1) + exp(-v));
          const T e = exp(v);
          return e / (T(1) + e);
        }
        case kTanh:
          return tanh(v);
        case kLog1p:
          return log1p(v);
        case kExpm1:
          return expm1(v);
        default:
          break;
      }
    }
    return T(0);
  }
};

enum Bw : int { kBwRelu, kBwGelu, kBwGeluTanh, kBwSigmoid, kBwTanh };
template <typename T>
struct ActBackwardF {
  int k;
  __device__ T operator()(const T (&v)[2], int64_t) const {
    const T g = v[0], x = v[1];
    switch (k) {
      case kBwRelu:
        return x > T(0) ? g : T(0);
      case kBwGelu: {
        const T cdf = T(0.5) * (T(1) + erf(x * T(kSqrt1_2)));
        const T pdf = T(kInvSqrt2Pi) * exp(T(-0.5) * x * x);
        return g * (cdf + x * pdf);
      }
      case kBwGeluTanh: {
        const T u = T(kSqrt2OverPi) * (x + T(kGeluC) * x * x * x);
        const T t = tanh(u);
        const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluC) * x * x);
        return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
      }
      case kBwSigmoid:
        return g * x * (T(1) - x);
      default:
        return g * (T(1) - x * x);
    }
  }
};

template <typename O>
struct CastF {
  template <typename I>
  __device__ O operator()(const I (&v)[1], int64_t) const {
    return static_cast<O>(v[0]);
  }
};

// ------------------------------------------------------------------------------- kernels

int binary_code(OpKind k) {
  switch (k) {
    case OpKind::add:
      return kAdd;
    case OpKind::sub:
      return kSub;
    case OpKind::mul:
      return kMul;
    case OpKind::div:
      return kDiv;
    case OpKind::minimum:
      return kMinimum;
    case OpKind::maximum:
      return kMaximum;
    case OpKind::pow_tensor:
      return kPowT;
    default:
      throw_not_in_family("binary", k);
  }
}

int unary_code(const Op& op) {
  switch (op.kind()) {
    case OpKind::add_scalar:
      return kAddS;
    case OpKind::mul_scalar:
      return kMulS;
    case OpKind::rsub_scalar:
      return kRsubS;
    case OpKind::rdiv_scalar:
      return kRdivS;
    case OpKind::neg:
      return kNeg;
    case OpKind::exp:
      return kExp;
    case OpKind::log:
      return kLog;
    case OpKind::sqrt:
      return kSqrt;
    // As the CPU kernel: x*x for an exponent of 2, not pow(x, 2).
    case OpKind::pow:
      return op.attrs_as<ScalarAttrs>().value == 2.0 ? kSquare : kPow;
    case OpKind::relu:
      return kRelu;
    case OpKind::gelu:
      return op.attrs_as<GeluAttrs>().approximate == GeluApproximation::tanh ? kGeluTanh : kGelu;
    case OpKind::sigmoid:
      return kSigmoid;
    case OpKind::tanh:
      return kTanh;
    case OpKind::abs:
      return kAbs;
    case OpKind::sign:
      return kSign;
    case OpKind::log1p:
      return kLog1p;
    case OpKind::expm1:
      return kExpm1;
    case OpKind::clamp:
      return kClamp;
    default:
      throw_not_in_family("unary", op.kind());
  }
}

int activation_backward_code(const Op& op) {
  switch (op.kind()) {
    case OpKind::relu_backward:
      return kBwRelu;
    case OpKind::sigmoid_backward:
      return kBwSigmoid;
    case OpKind::tanh_backward:
      return kBwTanh;
    case OpKind::gelu_backward:
      return op.attrs_as<GeluAttrs>().approximate == GeluApproximation::tanh ? kBwGeluTanh
                                                                             : kBwGelu;
    default:
      throw_not_in_family("activation_backward", op.kind());
  }
}

}  // namespace

void binary(const Op& op, const KernelCall& c) {
  const int k = binary_code(op.kind());
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_ew<T, T, 2>(c, BinaryF<T>{k});
  });
}

void unary(const Op& op, const KernelCall& c) {
  const int k = unary_code(op);
  const double s = k <= kRdivS || k == kPow ? op.attrs_as<ScalarAttrs>().value : 0.0;
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    UnaryF<T> f{k, static_cast<T>(s)};
    if (k == kClamp) {
      const ClampAttrs& a = op.attrs_as<ClampAttrs>();
      f.lo = static_cast<T>(a.min);
      f.hi = static_cast<T>(a.max);
      f.has_lo = a.has_min;
      f.has_hi = a.has_max;
    }
    launch_ew<T, T, 1>(c, f);
  });
}

void activation_backward(const Op& op, const KernelCall& c) {
  const int k = activation_backward_code(op);
  dispatch_f(c.in_meta[0]->dtype, op_kind_name(op.kind()), [&](auto tag) {
    using T = decltype(tag);
    launch_ew<T, T, 2>(c, ActBackwardF<T>{k});
  });
}

void cast(const Op&, const KernelCall& c) {
  dispatch_a(c.in_meta[0]->dtype, [&](auto itag) {
    using I = decltype(itag);
    dispatch_a(c.out_meta->dtype, [&](auto otag) {
      using O = decltype(otag);
      launch_ew<O, I, 1>(c, CastF<O>{});
    });
  });
}

namespace {
template <typename T>
__global__ void bias_rows_kernel(const T* b, T* y, int64_t cols, int64_t n) {
  LETHE_GRID_LOOP(e, n) y[e] = b[e % cols];
}

template <typename T>
__global__ void bias_channels_kernel(const T* b, T* y, int64_t channels, int64_t plane, int64_t n) {
  LETHE_GRID_LOOP(e, n) y[e] += b[(e / plane) % channels];
}

}  // namespace

// y[n, c, i] += bias[c] over y [N, channels, plane] (conv2d's bias, after cuDNN wrote the
// convolution; the CPU kernel adds it after its GEMM too).
void sum_to(const Op&, const KernelCall& c) {
  const Shape& xs = c.in_shape(0);
  reduce_sum_into(c, xs, layout::pad_to(c.out_shape(), xs.ndim()));
}

void broadcast_to(const Op&, const KernelCall& c) {
  launch_copy(c, c.output, c.inputs[0], c.out_shape(), c.out_shape().strides(),
              layout::broadcast_strides(c.in_shape(0), c.out_shape()),
              dtype_size(c.out_meta->dtype));
}

void add_bias_channels(const KernelCall& c, const void* bias, void* y, int64_t channels,
                       int64_t plane) {
  const int64_t n = c.out_meta->numel();
  if (n == 0 || channels == 0 || plane == 0) return;
  dispatch_f(c.out_meta->dtype, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    bias_channels_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(
        static_cast<const T*>(bias), static_cast<T*>(y), channels, plane, n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// y[r, j] = bias[j] (linear's bias, before the GEMM accumulates onto it).
void add_bias_rows(const KernelCall& c, const void* bias, void* y, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "linear", [&](auto tag) {
    using T = decltype(tag);
    bias_rows_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(static_cast<const T*>(bias),
                                                            static_cast<T*>(y), cols, n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
