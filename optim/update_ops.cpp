#include "optim/update_ops.h"

#include <cmath>
#include <sstream>

#include "framework/error.h"

namespace lethe::optim {
namespace {

constexpr int64_t kParallelGrain = 32768;

// Every input must have the parameter's meta.
TensorMeta check_same(const char* op, const std::vector<TensorMeta>& in, size_t n) {
  LETHE_CHECK(in.size() == n, op, ": expected ", n, " inputs, got ", in.size());
  LETHE_CHECK(is_floating(in[0].dtype), op, ": expected a floating-point parameter, got ", in[0].str());
  for (size_t i = 1; i < n; ++i)
    LETHE_CHECK(in[i] == in[0], op, ": input ", i, " is ", in[i].str(), ", expected ", in[0].str(),
                " like the parameter");
  return TensorMeta{Shape{0}, DType::f32, in[0].device};
}

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

}  // namespace

std::string SgdUpdateOp::attrs() const {
  return "lr=" + fmt(h_.lr) + ",momentum=" + fmt(h_.momentum) + ",dampening=" + fmt(h_.dampening) +
         ",weight_decay=" + fmt(h_.weight_decay) + ",nesterov=" + (h_.nesterov ? "1" : "0") +
         ",first=" + (h_.first ? "1" : "0");
}

TensorMeta SgdUpdateOp::infer(const std::vector<TensorMeta>& in) const {
  return check_same("sgd_update", in, h_.momentum != 0 ? 3 : 2);
}

std::vector<int> SgdUpdateOp::mutated_inputs() const {
  if (h_.momentum != 0) return {0, 2};
  return {0};
}

OpCost SgdUpdateOp::cost(const std::vector<TensorMeta>& in, const TensorMeta&) const {
  double n = static_cast<double>(in[0].numel());
  double b = static_cast<double>(in[0].bytes());
  return {n * 4, b * (h_.momentum != 0 ? 5 : 3)};
}

void SgdUpdateOp::cpu(const KernelCall& k) const {
  const int64_t n = k.in_meta[0]->numel();
  dispatch_float(k.in_meta[0]->dtype, "sgd_update", [&](auto tag) {
    using T = decltype(tag);
    T* __restrict p = k.in_mut<T>(0);
    const T* __restrict g = k.in<T>(1);
    const T lr = static_cast<T>(h_.lr), wd = static_cast<T>(h_.weight_decay);
    if (h_.momentum == 0) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) {
        T d = g[i];
        if (wd != T(0)) d += wd * p[i];
        p[i] -= lr * d;
      }
      return;
    }
    T* __restrict buf = k.in_mut<T>(2);
    const T mom = static_cast<T>(h_.momentum), keep = static_cast<T>(1.0 - h_.dampening);
    const bool first = h_.first, nesterov = h_.nesterov;
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      T d = g[i];
      if (wd != T(0)) d += wd * p[i];
      const T b = first ? d : mom * buf[i] + keep * d;
      buf[i] = b;
      p[i] -= lr * (nesterov ? d + mom * b : b);
    }
  });
}

std::string AdamWUpdateOp::attrs() const {
  return "lr=" + fmt(h_.lr) + ",beta1=" + fmt(h_.beta1) + ",beta2=" + fmt(h_.beta2) + ",eps=" +
         fmt(h_.eps) + ",weight_decay=" + fmt(h_.weight_decay) + ",step=" + std::to_string(h_.step);
}

TensorMeta AdamWUpdateOp::infer(const std::vector<TensorMeta>& in) const {
  LETHE_CHECK(h_.step >= 1, "adamw_update: step must be >= 1, got ", h_.step);
  return check_same("adamw_update", in, 4);
}

OpCost AdamWUpdateOp::cost(const std::vector<TensorMeta>& in, const TensorMeta&) const {
  double n = static_cast<double>(in[0].numel());
  double b = static_cast<double>(in[0].bytes());
  return {n * 12, b * 7};
}

void AdamWUpdateOp::cpu(const KernelCall& k) const {
  const int64_t n = k.in_meta[0]->numel();
  // The same arithmetic as torch.optim.AdamW (single-tensor path): scalars in double, then cast.
  const double bc1 = 1.0 - std::pow(h_.beta1, static_cast<double>(h_.step));
  const double bc2 = 1.0 - std::pow(h_.beta2, static_cast<double>(h_.step));
  dispatch_float(k.in_meta[0]->dtype, "adamw_update", [&](auto tag) {
    using T = decltype(tag);
    T* __restrict p = k.in_mut<T>(0);
    const T* __restrict g = k.in<T>(1);
    T* __restrict m = k.in_mut<T>(2);
    T* __restrict v = k.in_mut<T>(3);
    const T decay = static_cast<T>(1.0 - h_.lr * h_.weight_decay);
    const T b1 = static_cast<T>(h_.beta1), one_b1 = static_cast<T>(1.0 - h_.beta1);
    const T b2 = static_cast<T>(h_.beta2), one_b2 = static_cast<T>(1.0 - h_.beta2);
    const T step_size = static_cast<T>(h_.lr / bc1);
    const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    const T eps = static_cast<T>(h_.eps);
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      const T gi = g[i];
      const T pi = p[i] * decay;
      const T mi = m[i] * b1 + gi * one_b1;
      const T vi = v[i] * b2 + gi * gi * one_b2;
      m[i] = mi;
      v[i] = vi;
      const T denom = std::sqrt(vi) / bc2_sqrt + eps;
      p[i] = pi - step_size * (mi / denom);
    }
  });
}

}  // namespace lethe::optim
