// CUDA kernels of the elementwise family: one generic broadcasting kernel (templated on a functor)
// serves binary arithmetic, unary maths, activation backwards and dropout; plus cast, full, copy,
// causal_mask and the optimizer updates (optim/update_ops.cpp).
#include <cmath>
#include <type_traits>

#include "framework/random.h"
#include "ops/cuda/common.cuh"
#include "optim/update_ops.h"

namespace lethe::cuda::detail {
namespace {

template <typename T, int N>
struct Ptrs {
  const T* p[N];
};

// out[i] = f(v, i) where v[k] is operand k at output element i (broadcast through ix unless every
// operand is contiguous with the output).
template <typename O, typename T, int N, typename F>
__global__ void ew_kernel(F f, O* __restrict__ out, Ptrs<T, N> in, Strided<N> ix, bool contiguous, int64_t n) {
  LETHE_GRID_LOOP(i, n) {
    T v[N];
    if (contiguous) {
      for (int k = 0; k < N; ++k) v[k] = in.p[k][i];
    } else {
      int64_t off[N];
      ix.offsets(i, off);
      for (int k = 0; k < N; ++k) v[k] = in.p[k][off[k]];
    }
    out[i] = f(v, i);
  }
}

template <typename O, typename T, int N, typename F>
void launch_ew(const KernelCall& c, F f) {
  const Shape& os = c.out_shape();
  const int64_t n = os.numel();
  if (n == 0) return;
  Ptrs<T, N> in;
  bool contiguous = true;
  std::vector<std::vector<int64_t>> st;
  for (int k = 0; k < N; ++k) {
    in.p[k] = c.in<T>(static_cast<size_t>(k));
    contiguous = contiguous && c.in_shape(static_cast<size_t>(k)).numel() == n;
    st.push_back(bcast_strides(c.in_shape(static_cast<size_t>(k)), os));
  }
  Strided<N> ix = make_strided<N>(os, st);
  ew_kernel<O, T, N, F><<<grid_for(n), 256, 0, stream(c)>>>(f, c.out<O>(), in, ix, contiguous, n);
  LETHE_CUDA_LAUNCH_CHECK();
}

// ------------------------------------------------------------------------------- functors

enum Bin : int { kAdd, kSub, kMul, kDiv };
template <typename T>
struct BinaryF {
  int k;
  __device__ T operator()(const T (&v)[2], int64_t) const {
    switch (k) {
      case kAdd: return v[0] + v[1];
      case kSub: return v[0] - v[1];
      case kMul: return v[0] * v[1];
      default:
        if constexpr (std::is_floating_point_v<T>) return v[0] / v[1];
        return T(0);
    }
  }
};

enum Un : int { kAddS, kMulS, kRsubS, kRdivS, kNeg, kExp, kLog, kSqrt, kPow, kSquare, kRelu, kGelu, kGeluTanh, kSigmoid, kTanh };
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluC = 0.044715;

template <typename T>
struct UnaryF {
  int k;
  T s;
  __device__ T operator()(const T (&a)[1], int64_t) const {
    const T v = a[0];
    switch (k) {
      case kAddS: return v + s;
      case kMulS: return v * s;
      case kRsubS: return s - v;
      case kNeg: return -v;
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (k) {
        case kRdivS: return s / v;
        case kExp: return exp(v);
        case kLog: return log(v);
        case kSqrt: return sqrt(v);
        case kPow: return pow(v, s);
        case kSquare: return v * v;
        case kRelu: return v <= T(0) ? T(0) : v;  // NaN stays NaN, as on the CPU
        case kGelu: return T(0.5) * v * (T(1) + erf(v * T(kSqrt1_2)));
        case kGeluTanh: return T(0.5) * v * (T(1) + tanh(T(kSqrt2OverPi) * (v + T(kGeluC) * v * v * v)));
        case kSigmoid: {
          if (v >= T(0)) return T(1) / (T(1) + exp(-v));
          const T e = exp(v);
          return e / (T(1) + e);
        }
        case kTanh: return tanh(v);
        default: break;
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
      case kBwRelu: return x > T(0) ? g : T(0);
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
      case kBwSigmoid: return g * x * (T(1) - x);
      default: return g * (T(1) - x * x);
    }
  }
};

// The same mask as the CPU kernel: element i of stream (step, node) under the session seed.
template <typename T>
struct DropoutF {
  uint64_t seed, stream;
  double p;
  T scale;
  __device__ T operator()(const T (&v)[1], int64_t i) const {
    return rng::uniform01(seed, stream, static_cast<uint64_t>(i)) >= p ? v[0] * scale : T(0);
  }
};

template <typename O>
struct CastF {
  template <typename I>
  __device__ O operator()(const I (&v)[1], int64_t) const { return static_cast<O>(v[0]); }
};

// ------------------------------------------------------------------------------- kernels

int binary_code(OpKind k) {
  switch (k) {
    case OpKind::add: return kAdd;
    case OpKind::sub: return kSub;
    case OpKind::mul: return kMul;
    case OpKind::div: return kDiv;
    default: throw_not_in_family("binary", k);
  }
}

int unary_code(const Op& op) {
  switch (op.kind()) {
    case OpKind::add_scalar: return kAddS;
    case OpKind::mul_scalar: return kMulS;
    case OpKind::rsub_scalar: return kRsubS;
    case OpKind::rdiv_scalar: return kRdivS;
    case OpKind::neg: return kNeg;
    case OpKind::exp: return kExp;
    case OpKind::log: return kLog;
    case OpKind::sqrt: return kSqrt;
    // As the CPU kernel: x*x for an exponent of 2, not pow(x, 2).
    case OpKind::pow: return op.attrs_as<ScalarAttrs>().value == 2.0 ? kSquare : kPow;
    case OpKind::relu: return kRelu;
    case OpKind::gelu:
      return op.attrs_as<GeluAttrs>().approximate == GeluApproximation::tanh ? kGeluTanh : kGelu;
    case OpKind::sigmoid: return kSigmoid;
    case OpKind::tanh: return kTanh;
    default: throw_not_in_family("unary", op.kind());
  }
}

int activation_backward_code(const Op& op) {
  switch (op.kind()) {
    case OpKind::relu_backward: return kBwRelu;
    case OpKind::sigmoid_backward: return kBwSigmoid;
    case OpKind::tanh_backward: return kBwTanh;
    case OpKind::gelu_backward:
      return op.attrs_as<GeluAttrs>().approximate == GeluApproximation::tanh ? kBwGeluTanh : kBwGelu;
    default: throw_not_in_family("activation_backward", op.kind());
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
    launch_ew<T, T, 1>(c, UnaryF<T>{k, static_cast<T>(s)});
  });
}

void activation_backward(const Op& op, const KernelCall& c) {
  const int k = activation_backward_code(op);
  dispatch_f(c.in_meta[0]->dtype, op_kind_name(op.kind()), [&](auto tag) {
    using T = decltype(tag);
    launch_ew<T, T, 2>(c, ActBackwardF<T>{k});
  });
}

void dropout(const Op& op, const KernelCall& c) {
  const DropoutAttrs& a = op.attrs_as<DropoutAttrs>();
  const double p = a.p;
  // The forward draws the mask of its own node; the backward applies that node's mask again.
  const uint64_t node = op.kind() == OpKind::dropout ? static_cast<uint64_t>(c.node)
                                                     : static_cast<uint64_t>(a.forward_node);
  const uint64_t st = rng::op_stream(c.step, node);
  dispatch_f(c.out_meta->dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T scale = p < 1.0 ? T(1.0 / (1.0 - p)) : T(0);
    launch_ew<T, T, 1>(c, DropoutF<T>{c.seed, st, p, scale});
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
__global__ void fill_kernel(T* o, T v, int64_t n) {
  LETHE_GRID_LOOP(i, n) o[i] = v;
}

}  // namespace

void full(const Op& op, const KernelCall& c) {
  const double v = op.attrs_as<FullAttrs>().value;
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_a(c.out_meta->dtype, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(c.out<T>(), static_cast<T>(v), n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void copy(const Op&, const KernelCall& c) {
  const size_t b = c.out_meta->bytes();
  if (b) LETHE_CUDA_CHECK(cudaMemcpyAsync(c.output, c.inputs[0], b, cudaMemcpyDeviceToDevice, stream(c)));
}

namespace {
template <typename T>
__global__ void causal_mask_kernel(const T* x, T* y, int64_t lq, int64_t lk, int64_t n, T fill) {
  LETHE_GRID_LOOP(e, n) {
    const int64_t j = e % lk, i = (e / lk) % lq;
    int64_t keep = i + (lk - lq) + 1;
    keep = keep < 0 ? 0 : keep > lk ? lk : keep;
    y[e] = j < keep ? x[e] : fill;
  }
}

}  // namespace

void causal_mask(const Op& op, const KernelCall& c) {
  const Shape& s = c.in_shape(0);
  const int64_t lq = s.at(-2), lk = s.at(-1), n = s.numel();
  const bool neg_inf = op.attrs_as<CausalMaskAttrs>().neg_inf;
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "causal_mask", [&](auto tag) {
    using T = decltype(tag);
    const T fill = neg_inf ? -INFINITY : T(0);
    causal_mask_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), lq, lk, n, fill);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// ------------------------------------------------------------------------------- optimizers

namespace {
template <typename T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, T lr, T wd, T mom, T keep, bool first,
                           bool nesterov) {
  LETHE_GRID_LOOP(i, n) {
    T d = g[i];
    if (wd != T(0)) d += wd * p[i];
    if (!buf) {
      p[i] -= lr * d;
      continue;
    }
    const T b = first ? d : mom * buf[i] + keep * d;
    buf[i] = b;
    p[i] -= lr * (nesterov ? d + mom * b : b);
  }
}

}  // namespace

void sgd_update(const Op& op, const KernelCall& c) {
  const auto& h = op.attrs_as<optim::SgdHyper>();
  const int64_t n = c.in_meta[0]->numel();
  if (n == 0) return;
  dispatch_f(c.in_meta[0]->dtype, "sgd_update", [&](auto tag) {
    using T = decltype(tag);
    T* buf = h.momentum != 0 ? c.in_mut<T>(2) : nullptr;
    sgd_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(
        c.in_mut<T>(0), c.in<T>(1), buf, n, static_cast<T>(h.lr), static_cast<T>(h.weight_decay),
        static_cast<T>(h.momentum), static_cast<T>(1.0 - h.dampening), h.first, h.nesterov);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

namespace {
template <typename T>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, T decay, T b1, T one_b1, T b2,
                             T one_b2, T step_size, T bc2_sqrt, T eps) {
  LETHE_GRID_LOOP(i, n) {
    const T gi = g[i];
    const T pi = p[i] * decay;
    const T mi = m[i] * b1 + gi * one_b1;
    const T vi = v[i] * b2 + gi * gi * one_b2;
    m[i] = mi;
    v[i] = vi;
    const T denom = sqrt(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * (mi / denom);
  }
}

}  // namespace

void adamw_update(const Op& op, const KernelCall& c) {
  const auto& h = op.attrs_as<optim::AdamWHyper>();
  const int64_t n = c.in_meta[0]->numel();
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  dispatch_f(c.in_meta[0]->dtype, "adamw_update", [&](auto tag) {
    using T = decltype(tag);
    adamw_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(
        c.in_mut<T>(0), c.in<T>(1), c.in_mut<T>(2), c.in_mut<T>(3), n,
        static_cast<T>(1.0 - h.lr * h.weight_decay), static_cast<T>(h.beta1),
        static_cast<T>(1.0 - h.beta1), static_cast<T>(h.beta2), static_cast<T>(1.0 - h.beta2),
        static_cast<T>(h.lr / bc1), static_cast<T>(std::sqrt(bc2)), static_cast<T>(h.eps));
    LETHE_CUDA_LAUNCH_CHECK();
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
void add_bias_channels(const KernelCall& c, const void* bias, void* y, int64_t channels, int64_t plane) {
  const int64_t n = c.out_meta->numel();
  if (n == 0 || channels == 0 || plane == 0) return;
  dispatch_f(c.out_meta->dtype, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    bias_channels_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(static_cast<const T*>(bias), static_cast<T*>(y),
                                                               channels, plane, n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// y[r, j] = bias[j] (linear's bias, before the GEMM accumulates onto it).
void add_bias_rows(const KernelCall& c, const void* bias, void* y, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "linear", [&](auto tag) {
    using T = decltype(tag);
    bias_rows_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(static_cast<const T*>(bias), static_cast<T*>(y), cols, n);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
