// CUDA kernels of optim/update_ops.cpp: the in-place SGD and AdamW updates, element for element the
// CPU arithmetic, reading their hyper-parameters from the op (Op::attrs_as).
#include <cmath>

#include "ops/cuda/common.cuh"
#include "optim/update_ops.h"

namespace lethe::cuda::detail {

namespace {
template <typename T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, T lr, T wd, T mom, T keep,
                           bool first, bool nesterov) {
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
// vmax non-null: amsgrad (NaN-propagating max, as the CPU kernel).
template <typename T>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, T decay, T b1,
                             T one_b1, T b2, T one_b2, T step_size, T bc2_sqrt, T eps) {
  LETHE_GRID_LOOP(i, n) {
    const T gi = g[i];
    const T pi = p[i] * decay;
    const T mi = m[i] * b1 + gi * one_b1;
    const T vi = v[i] * b2 + gi * gi * one_b2;
    m[i] = mi;
    v[i] = vi;
    T d = vi;
    if (vmax) {
      d = (vi > vmax[i] || vi != vi) ? vi : vmax[i];
      vmax[i] = d;
    }
    const T denom = sqrt(d) / bc2_sqrt + eps;
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
        c.in_mut<T>(0), c.in<T>(1), c.in_mut<T>(2), c.in_mut<T>(3),
        h.amsgrad ? c.in_mut<T>(4) : nullptr, n, static_cast<T>(1.0 - h.lr * h.weight_decay),
        static_cast<T>(h.beta1), static_cast<T>(1.0 - h.beta1), static_cast<T>(h.beta2),
        static_cast<T>(1.0 - h.beta2), static_cast<T>(h.lr / bc1), static_cast<T>(std::sqrt(bc2)),
        static_cast<T>(h.eps));
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

namespace {
// optim/update_ops.cpp's RmspropUpdateOp, element for element.
template <typename T>
__global__ void rmsprop_kernel(T* p, const T* g, T* sq, T* ga, T* buf, int64_t n, T lr, T alpha,
                               T one_a, T eps, T wd, T mom) {
  LETHE_GRID_LOOP(i, n) {
    T gi = g[i];
    if (wd != T(0)) gi = gi + wd * p[i];
    const T s = sq[i] * alpha + gi * gi * one_a;
    sq[i] = s;
    T avg;
    if (ga) {
      const T a = ga[i] * alpha + gi * one_a;
      ga[i] = a;
      avg = sqrt(s - a * a) + eps;
    } else {
      avg = sqrt(s) + eps;
    }
    if (buf) {
      const T b = buf[i] * mom + gi / avg;
      buf[i] = b;
      p[i] = p[i] - lr * b;
    } else {
      p[i] = p[i] - lr * (gi / avg);
    }
  }
}
}  // namespace

void rmsprop_update(const Op& op, const KernelCall& c) {
  const auto& h = op.attrs_as<optim::RmspropHyper>();
  const int64_t n = c.in_meta[0]->numel();
  if (n == 0) return;
  dispatch_f(c.in_meta[0]->dtype, "rmsprop_update", [&](auto tag) {
    using T = decltype(tag);
    T* ga = h.centered ? c.in_mut<T>(3) : nullptr;
    T* buf = h.momentum > 0 ? c.in_mut<T>(h.centered ? 4 : 3) : nullptr;
    rmsprop_kernel<T><<<grid_for(n), 256, 0, stream(c)>>>(
        c.in_mut<T>(0), c.in<T>(1), c.in_mut<T>(2), ga, buf, n, static_cast<T>(h.lr),
        static_cast<T>(h.alpha), static_cast<T>(1.0 - h.alpha), static_cast<T>(h.eps),
        static_cast<T>(h.weight_decay), static_cast<T>(h.momentum));
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
