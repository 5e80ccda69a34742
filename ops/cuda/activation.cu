// CUDA kernels of ops/activation.cpp: leaky_relu, silu and their backwards through the broadcasting
// elementwise kernel (elementwise.cuh); the same formulas as the CPU kernels.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/elementwise.cuh"

namespace lethe::cuda::detail {
namespace {

template <typename T>
__device__ T sigmoid_of(T v) {
  if (v >= T(0)) return T(1) / (T(1) + exp(-v));
  const T e = exp(v);
  return e / (T(1) + e);
}

template <typename T>
struct LeakyF {
  T slope;
  __device__ T operator()(const T (&v)[1], int64_t) const {
    return v[0] > T(0) ? v[0] : v[0] * slope;
  }
};
template <typename T>
struct LeakyBackwardF {
  T slope;
  __device__ T operator()(const T (&v)[2], int64_t) const {
    return v[0] * (v[1] > T(0) ? T(1) : slope);
  }
};
template <typename T>
struct SiluF {
  __device__ T operator()(const T (&v)[1], int64_t) const { return v[0] * sigmoid_of(v[0]); }
};
template <typename T>
struct SiluBackwardF {
  __device__ T operator()(const T (&v)[2], int64_t) const {
    const T s = sigmoid_of(v[1]);
    return v[0] * (s * (T(1) + v[1] * (T(1) - s)));
  }
};

}  // namespace

void leaky_relu(const Op& op, const KernelCall& c) {
  const double slope = op.attrs_as<ScalarAttrs>().value;
  dispatch_f(c.in_meta[0]->dtype, op_kind_name(op.kind()), [&](auto tag) {
    using T = decltype(tag);
    switch (op.kind()) {
      case OpKind::leaky_relu:
        launch_ew<T, T, 1>(c, LeakyF<T>{static_cast<T>(slope)});
        break;
      case OpKind::leaky_relu_backward:
        launch_ew<T, T, 2>(c, LeakyBackwardF<T>{static_cast<T>(slope)});
        break;
      default:
        throw_not_in_family("leaky_relu", op.kind());
    }
  });
}

void silu(const Op& op, const KernelCall& c) {
  dispatch_f(c.in_meta[0]->dtype, op_kind_name(op.kind()), [&](auto tag) {
    using T = decltype(tag);
    switch (op.kind()) {
      case OpKind::silu:
        launch_ew<T, T, 1>(c, SiluF<T>{});
        break;
      case OpKind::silu_backward:
        launch_ew<T, T, 2>(c, SiluBackwardF<T>{});
        break;
      default:
        throw_not_in_family("silu", op.kind());
    }
  });
}

}  // namespace lethe::cuda::detail
