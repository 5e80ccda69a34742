#include "optim/update_ops.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "framework/error.h"

namespace lethe::optim {
namespace {

constexpr int64_t kParallelGrain = 32768;

// Every input must have the parameter's meta.
TensorMeta check_same(const char* op, const std::vector<TensorMeta>& in, size_t n) {
  LETHE_CHECK(in.size() == n, op, ": expected ", n, " inputs, got ", in.size());
  LETHE_CHECK(is_floating(in[0].dtype), op, ": expected a floating-point parameter, got ",
              in[0].str());
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
  return "lr=" + fmt(h_.lr) + ",beta1=" + fmt(h_.beta1) + ",beta2=" + fmt(h_.beta2) +
         ",eps=" + fmt(h_.eps) + ",weight_decay=" + fmt(h_.weight_decay) +
         ",step=" + std::to_string(h_.step) + (h_.amsgrad ? ",amsgrad=1" : "");
}

TensorMeta AdamWUpdateOp::infer(const std::vector<TensorMeta>& in) const {
  LETHE_CHECK(h_.step >= 1, "adamw_update: step must be >= 1, got ", h_.step);
  return check_same("adamw_update", in, h_.amsgrad ? 5 : 4);
}

std::vector<int> AdamWUpdateOp::mutated_inputs() const {
  if (h_.amsgrad) return {0, 2, 3, 4};
  return {0, 2, 3};
}

OpCost AdamWUpdateOp::cost(const std::vector<TensorMeta>& in, const TensorMeta&) const {
  double n = static_cast<double>(in[0].numel());
  double b = static_cast<double>(in[0].bytes());
  return {n * 12, b * 7};
}

namespace {

// One contiguous block, element by element as torch does it. Every operation is a correctly rounded
// IEEE operation (no FMA), so the SSE path and the scalar tail give the same bits.
// amsgrad (vmax non-null): vmax = max(vmax, v), NaN-propagating as torch.maximum, and the
// denominator reads vmax (scalar loop only).
template <typename T>
void adamw_block(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict m,
                 T* __restrict v, T* __restrict vmax, T decay, T b1, T one_b1, T b2, T one_b2,
                 T step_size, T bc2_sqrt, T eps) {
  int64_t i = 0;
#if defined(__SSE2__)
  // Written out because std::sqrt's errno handling keeps GCC from vectorising this loop.
  if constexpr (sizeof(T) == 4) {
    const __m128 vdecay = _mm_set1_ps(decay), vb1 = _mm_set1_ps(b1), vob1 = _mm_set1_ps(one_b1);
    const __m128 vb2 = _mm_set1_ps(b2), vob2 = _mm_set1_ps(one_b2), vstep = _mm_set1_ps(step_size);
    const __m128 vbc2 = _mm_set1_ps(bc2_sqrt), veps = _mm_set1_ps(eps);
    for (; !vmax && i + 4 <= n; i += 4) {
      const __m128 gi = _mm_loadu_ps(g + i);
      const __m128 pi = _mm_mul_ps(_mm_loadu_ps(p + i), vdecay);
      const __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), vb1), _mm_mul_ps(gi, vob1));
      const __m128 vi =
          _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), vb2), _mm_mul_ps(_mm_mul_ps(gi, gi), vob2));
      _mm_storeu_ps(m + i, mi);
      _mm_storeu_ps(v + i, vi);
      const __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc2), veps);
      _mm_storeu_ps(p + i, _mm_sub_ps(pi, _mm_mul_ps(vstep, _mm_div_ps(mi, denom))));
    }
  }
#endif
  for (; i < n; ++i) {
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
    const T denom = std::sqrt(d) / bc2_sqrt + eps;
    p[i] = pi - step_size * (mi / denom);
  }
}

}  // namespace

void AdamWUpdateOp::cpu(const KernelCall& k) const {
  const int64_t n = k.in_meta[0]->numel();
  // The same arithmetic as torch.optim.AdamW (single-tensor path): scalars in double, then cast.
  const double bc1 = 1.0 - std::pow(h_.beta1, static_cast<double>(h_.step));
  const double bc2 = 1.0 - std::pow(h_.beta2, static_cast<double>(h_.step));
  dispatch_float(k.in_meta[0]->dtype, "adamw_update", [&](auto tag) {
    using T = decltype(tag);
    T* p = k.in_mut<T>(0);
    const T* g = k.in<T>(1);
    T* m = k.in_mut<T>(2);
    T* v = k.in_mut<T>(3);
    T* vmax = h_.amsgrad ? k.in_mut<T>(4) : nullptr;
    const T decay = static_cast<T>(1.0 - h_.lr * h_.weight_decay);
    const T b1 = static_cast<T>(h_.beta1), one_b1 = static_cast<T>(1.0 - h_.beta1);
    const T b2 = static_cast<T>(h_.beta2), one_b2 = static_cast<T>(1.0 - h_.beta2);
    const T step_size = static_cast<T>(h_.lr / bc1), bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    const T eps = static_cast<T>(h_.eps);
    constexpr int64_t kBlock = 8192;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t bi = 0; bi < blocks; ++bi) {
      const int64_t o = bi * kBlock, len = std::min(kBlock, n - o);
      adamw_block<T>(len, p + o, g + o, m + o, v + o, vmax ? vmax + o : nullptr, decay, b1, one_b1,
                     b2, one_b2, step_size, bc2_sqrt, eps);
    }
  });
}

std::string RmspropUpdateOp::attrs() const {
  return "lr=" + fmt(h_.lr) + ",alpha=" + fmt(h_.alpha) + ",eps=" + fmt(h_.eps) +
         ",weight_decay=" + fmt(h_.weight_decay) + ",momentum=" + fmt(h_.momentum) +
         ",centered=" + (h_.centered ? "1" : "0");
}

TensorMeta RmspropUpdateOp::infer(const std::vector<TensorMeta>& in) const {
  return check_same("rmsprop_update", in, 3 + (h_.centered ? 1 : 0) + (h_.momentum > 0 ? 1 : 0));
}

std::vector<int> RmspropUpdateOp::mutated_inputs() const {
  std::vector<int> r{0, 2};
  if (h_.centered) r.push_back(3);
  if (h_.momentum > 0) r.push_back(h_.centered ? 4 : 3);
  return r;
}

OpCost RmspropUpdateOp::cost(const std::vector<TensorMeta>& in, const TensorMeta&) const {
  const double n = static_cast<double>(in[0].numel()), b = static_cast<double>(in[0].bytes());
  return {n * 10, b * static_cast<double>(2 * in.size() - 1)};
}

// torch.optim.RMSprop (1.13, single-tensor path), element by element:
//   g += wd p;  sq = alpha sq + (1 - alpha) g^2;  centered: ga = alpha ga + (1 - alpha) g,
//   avg = sqrt(sq - ga^2) + eps (sqrt(sq) + eps otherwise);
//   momentum: buf = momentum buf + g / avg, p -= lr buf;  else p -= lr (g / avg).
void RmspropUpdateOp::cpu(const KernelCall& k) const {
  const int64_t n = k.in_meta[0]->numel();
  dispatch_float(k.in_meta[0]->dtype, "rmsprop_update", [&](auto tag) {
    using T = decltype(tag);
    T* __restrict p = k.in_mut<T>(0);
    const T* __restrict g = k.in<T>(1);
    T* __restrict sq = k.in_mut<T>(2);
    T* __restrict ga = h_.centered ? k.in_mut<T>(3) : nullptr;
    T* __restrict buf = h_.momentum > 0 ? k.in_mut<T>(h_.centered ? 4 : 3) : nullptr;
    const T lr = static_cast<T>(h_.lr), alpha = static_cast<T>(h_.alpha),
            one_a = static_cast<T>(1.0 - h_.alpha);
    const T eps = static_cast<T>(h_.eps), wd = static_cast<T>(h_.weight_decay),
            mom = static_cast<T>(h_.momentum);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      T gi = g[i];
      if (wd != T(0)) gi = gi + wd * p[i];
      const T s = sq[i] * alpha + gi * gi * one_a;
      sq[i] = s;
      T avg;
      if (ga) {
        const T a = ga[i] * alpha + gi * one_a;
        ga[i] = a;
        avg = std::sqrt(s - a * a) + eps;
      } else {
        avg = std::sqrt(s) + eps;
      }
      if (buf) {
        const T b = buf[i] * mom + gi / avg;
        buf[i] = b;
        p[i] = p[i] - lr * b;
      } else {
        p[i] = p[i] - lr * (gi / avg);
      }
    }
  });
}

}  // namespace lethe::optim
