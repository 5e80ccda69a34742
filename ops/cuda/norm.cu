// CUDA kernels of ops/norm.cpp: layer_norm (+ its input and weight gradients), and batch norm's
// nodes: batch_norm_stats, batch_norm (apply), batch_norm_backward_input,
// batch_norm_backward_weight and batch_norm_update_stats. x [N, C, S...] is seen as N x C x S.
//
// Every per-channel sum is one block's fixed-order tree reduction in double (no atomics), so the
// results are bitwise reproducible. The framework splits batch norm into separate nodes
// (statistics, apply, input gradient, weight gradient, running-statistics update) that cuDNN's
// fused batch-norm calls do not match, so these are own kernels. The apply node is one too, rather
// than cudnnBatchNormalizationForwardInference: it computes each channel's scale and shift in
// double and rounds them once, exactly as the CPU kernel (cuDNN's f32 path computes them in f32),
// and needs no workspace of ones and zeros when weight or bias is absent.
#include <algorithm>
#include <cmath>

#include "ops/cuda/column_sums.cuh"
#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {
namespace {

constexpr int kBlock = 256;

struct BnDims {
  int64_t n = 0, c = 0, s = 1;
  __host__ __device__ int64_t count() const { return n * s; }
};
BnDims bn_dims(const Shape& x) {
  BnDims d{x[0], x[1], 1};
  for (int i = 2; i < x.ndim(); ++i) d.s *= x[i];
  return d;
}

// The e-th element (samples, then positions) of channel c.
__device__ __forceinline__ int64_t bn_offset(int64_t e, int64_t c, int64_t C, int64_t S) {
  return ((e / S) * C + c) * S + e % S;
}

// Rounded products and sums (no FMA contraction): the apply node then matches the CPU bitwise.
__device__ __forceinline__ float mul_rn(float a, float b) {
  return __fmul_rn(a, b);
}
__device__ __forceinline__ double mul_rn(double a, double b) {
  return __dmul_rn(a, b);
}
__device__ __forceinline__ float add_rn(float a, float b) {
  return __fadd_rn(a, b);
}
__device__ __forceinline__ double add_rn(double a, double b) {
  return __dadd_rn(a, b);
}

unsigned channel_grid(int64_t c) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(c, 65535 * 8)));
}

// Mean and biased variance per channel into out [2, C] (two passes, as the CPU kernel).
template <typename T>
__global__ void bn_stats_kernel(const T* x, BnDims d, T* out) {
  __shared__ double sh[kBlock];
  const int64_t M = d.count();
  for (int64_t c = blockIdx.x; c < d.c; c += gridDim.x) {
    double s = 0;
    for (int64_t e = threadIdx.x; e < M; e += kBlock) s += double(x[bn_offset(e, c, d.c, d.s)]);
    s = block_sum(s, sh);
    const double m = M ? s / double(M) : 0.0;
    double v = 0;
    for (int64_t e = threadIdx.x; e < M; e += kBlock) {
      const double t = double(x[bn_offset(e, c, d.c, d.s)]) - m;
      v += t * t;
    }
    v = block_sum(v, sh);
    if (threadIdx.x == 0) {
      out[c] = T(m);
      out[d.c + c] = T(M ? v / double(M) : 0.0);
    }
  }
}

// One block per (sample, channel) plane: scale and shift in double, rounded to T, then x*sc + sh.
template <typename T>
__global__ void bn_apply_kernel(const T* x, const T* mean, const T* var, const T* w, const T* b,
                                T* y, BnDims d, double eps) {
  for (int64_t pl = blockIdx.x; pl < d.n * d.c; pl += gridDim.x) {
    const int64_t c = pl % d.c;
    const double inv = 1.0 / sqrt(__dadd_rn(double(var[c]), eps));
    const double scd = w ? __dmul_rn(inv, double(w[c])) : inv;
    const T sc = T(scd);
    const T sh = T(__dsub_rn(b ? double(b[c]) : 0.0, __dmul_rn(double(mean[c]), scd)));
    const T* xp = x + pl * d.s;
    T* yp = y + pl * d.s;
    for (int64_t i = threadIdx.x; i < d.s; i += blockDim.x) yp[i] = add_rn(mul_rn(xp[i], sc), sh);
  }
}

// Σg and Σg·x̂ of channel c over the block (training only).
template <typename T>
__device__ void bn_channel_sums(const T* g, const T* x, const BnDims& d, int64_t c, double m,
                                double inv, double* sh, double* sg, double* sgx) {
  double a = 0, b = 0;
  for (int64_t e = threadIdx.x; e < d.count(); e += kBlock) {
    const int64_t o = bn_offset(e, c, d.c, d.s);
    const double gv = double(g[o]);
    a += gv;
    b += gv * (double(x[o]) - m) * inv;
  }
  *sg = block_sum(a, sh);
  *sgx = block_sum(b, sh);
}

// dx = w·inv·(g - Σg/M - x̂·Σ(g·x̂)/M) in training (through the batch statistics), w·inv·g in eval.
template <typename T>
__global__ void bn_backward_input_kernel(const T* g, const T* x, const T* mean, const T* var,
                                         const T* w, T* dx, BnDims d, double eps, bool training) {
  __shared__ double sh[kBlock];
  const double M = double(d.count());
  for (int64_t c = blockIdx.x; c < d.c; c += gridDim.x) {
    const double m = double(mean[c]), inv = 1.0 / sqrt(double(var[c]) + eps);
    const double k = inv * (w ? double(w[c]) : 1.0);
    double sg = 0, sgx = 0;
    if (training) bn_channel_sums(g, x, d, c, m, inv, sh, &sg, &sgx);
    const double mg = training ? sg / M : 0.0, mgx = training ? sgx / M : 0.0;
    for (int64_t e = threadIdx.x; e < d.count(); e += kBlock) {
      const int64_t o = bn_offset(e, c, d.c, d.s);
      const double xh = (double(x[o]) - m) * inv;
      dx[o] = T(k * (double(g[o]) - mg - xh * mgx));
    }
  }
}

// dweight = Σ g·x̂ per channel.
template <typename T>
__global__ void bn_backward_weight_kernel(const T* g, const T* x, const T* mean, const T* var,
                                          T* dw, BnDims d, double eps) {
  __shared__ double sh[kBlock];
  for (int64_t c = blockIdx.x; c < d.c; c += gridDim.x) {
    double sg, sgx;
    bn_channel_sums(g, x, d, c, double(mean[c]), 1.0 / sqrt(double(var[c]) + eps), sh, &sg, &sgx);
    if (threadIdx.x == 0) dw[c] = T(sgx);
  }
}

// running = (1 - momentum)·running + momentum·batch (unbiased variance), in place, as the CPU
// kernel.
template <typename T>
__global__ void bn_update_kernel(T* rm, T* rv, const T* st, int64_t C, double momentum,
                                 double unbias) {
  LETHE_GRID_LOOP(i, C) {
    const double keep = 1.0 - momentum;
    rm[i] = T(__dadd_rn(__dmul_rn(keep, double(rm[i])), __dmul_rn(momentum, double(st[i]))));
    rv[i] = T(__dadd_rn(__dmul_rn(keep, double(rv[i])),
                        __dmul_rn(__dmul_rn(momentum, double(st[C + i])), unbias)));
  }
}

// Which inputs a node has (ops/norm.cpp's BnLayout): x-like inputs from 0 to first-1, then stats
// [2, C] (training) or running_mean, running_var [C] (eval), then weight?, bias?.
struct BnInputs {
  bool training, w, b;
  double eps;
  int first;
  int w_index() const { return first + (training ? 1 : 2); }
  int b_index() const { return w_index() + (w ? 1 : 0); }
  template <typename T>
  const T* mean(const KernelCall& c) const {
    return c.in<T>(static_cast<size_t>(first));
  }
  template <typename T>
  const T* var(const KernelCall& c, int64_t channels) const {
    return training ? c.in<T>(static_cast<size_t>(first)) + channels
                    : c.in<T>(static_cast<size_t>(first) + 1);
  }
};
BnInputs bn_inputs(const Op& op, int first) {
  const BatchNormAttrs& a = op.attrs_as<BatchNormAttrs>();
  return BnInputs{a.training, a.weight, a.bias, a.eps, first};
}

}  // namespace

void batch_norm_stats(const Op&, const KernelCall& c) {
  const BnDims d = bn_dims(c.in_shape(0));
  if (d.c == 0) return;
  dispatch_f(c.out_meta->dtype, "batch_norm_stats", [&](auto tag) {
    using T = decltype(tag);
    bn_stats_kernel<T><<<channel_grid(d.c), kBlock, 0, stream(c)>>>(c.in<T>(0), d, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void batch_norm(const Op& op, const KernelCall& c) {
  const BnDims d = bn_dims(c.in_shape(0));
  const BnInputs l = bn_inputs(op, 1);
  if (c.out_meta->numel() == 0) return;
  // Threads per plane: up to kBlock, fewer for small planes (BatchNorm1d has S = 1).
  int threads = 32;
  while (threads < kBlock && threads < d.s) threads *= 2;
  dispatch_f(c.out_meta->dtype, "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    bn_apply_kernel<T><<<channel_grid(d.n * d.c), threads, 0, stream(c)>>>(
        c.in<T>(0), l.mean<T>(c), l.var<T>(c, d.c), l.w ? c.in<T>(size_t(l.w_index())) : nullptr,
        l.b ? c.in<T>(size_t(l.b_index())) : nullptr, c.out<T>(), d, l.eps);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// Inputs: g, x, statistics, weight?.
void batch_norm_backward_input(const Op& op, const KernelCall& c) {
  const BnDims d = bn_dims(c.in_shape(1));
  const BnInputs l = bn_inputs(op, 2);
  if (c.out_meta->numel() == 0) return;
  dispatch_f(c.out_meta->dtype, "batch_norm_backward_input", [&](auto tag) {
    using T = decltype(tag);
    bn_backward_input_kernel<T><<<channel_grid(d.c), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.in<T>(1), l.mean<T>(c), l.var<T>(c, d.c),
        l.w ? c.in<T>(size_t(l.w_index())) : nullptr, c.out<T>(), d, l.eps, l.training);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// Inputs: g, x, statistics.
void batch_norm_backward_weight(const Op& op, const KernelCall& c) {
  const BnDims d = bn_dims(c.in_shape(1));
  const BnInputs l = bn_inputs(op, 2);
  if (d.c == 0) return;
  dispatch_f(c.out_meta->dtype, "batch_norm_backward_weight", [&](auto tag) {
    using T = decltype(tag);
    bn_backward_weight_kernel<T><<<channel_grid(d.c), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.in<T>(1), l.mean<T>(c), l.var<T>(c, d.c), c.out<T>(), d, l.eps);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// Inputs: running_mean (mutated), running_var (mutated), stats [2, C].
void batch_norm_update_stats(const Op& op, const KernelCall& c) {
  const int64_t C = c.in_shape(0)[0];
  if (C == 0) return;
  const BatchNormUpdateAttrs& a = op.attrs_as<BatchNormUpdateAttrs>();
  const double momentum = a.momentum;
  const int64_t count = a.count;
  const double unbias = double(count) / double(count - 1);
  dispatch_f(c.in_meta[0]->dtype, "batch_norm_update_stats", [&](auto tag) {
    using T = decltype(tag);
    bn_update_kernel<T><<<grid_for(C, kBlock), kBlock, 0, stream(c)>>>(
        c.in_mut<T>(0), c.in_mut<T>(1), c.in<T>(2), C, momentum, unbias);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// ------------------------------------------------------------------------------- layer_norm

namespace {

// Mean and 1/sqrt(var + eps) of row r (two passes, in double as the CPU kernel).
template <typename T>
__device__ void ln_stats(const T* xr, int64_t d, double eps, double* sh, double* mean,
                         double* rstd) {
  double s = 0;
  for (int64_t j = threadIdx.x; j < d; j += kBlock) s += double(xr[j]);
  s = block_sum(s, sh);
  const double m = d ? s / double(d) : 0.0;
  double q = 0;
  for (int64_t j = threadIdx.x; j < d; j += kBlock) {
    const double c = double(xr[j]) - m;
    q += c * c;
  }
  q = block_sum(q, sh);
  *mean = m;
  *rstd = 1.0 / sqrt((d ? q / double(d) : 0.0) + eps);
}

template <typename T>
__global__ void layer_norm_kernel(const T* x, const T* w, const T* b, T* y, int64_t rows, int64_t d,
                                  double eps) {
  __shared__ double sh[kBlock];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    double mean, rstd;
    ln_stats(x + r * d, d, eps, sh, &mean, &rstd);
    const T m = T(mean), s = T(rstd);
    for (int64_t j = threadIdx.x; j < d; j += kBlock) {
      T v = (x[r * d + j] - m) * s;
      if (w) v *= w[j];
      if (b) v += b[j];
      y[r * d + j] = v;
    }
  }
}

template <typename T>
__global__ void layer_norm_bw_input(const T* x, const T* g, const T* w, T* dx, int64_t rows,
                                    int64_t d, double eps) {
  __shared__ double sh[kBlock];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * d;
    const T* gr = g + r * d;
    double mean, rstd;
    ln_stats(xr, d, eps, sh, &mean, &rstd);
    double sg = 0, sgx = 0;
    for (int64_t j = threadIdx.x; j < d; j += kBlock) {
      const double gw = double(gr[j]) * (w ? double(w[j]) : 1.0);
      sg += gw;
      sgx += gw * (double(xr[j]) - mean) * rstd;
    }
    sg = block_sum(sg, sh);
    sgx = block_sum(sgx, sh);
    const double mg = sg / double(d), mgx = sgx / double(d);
    for (int64_t j = threadIdx.x; j < d; j += kBlock) {
      const double gw = double(gr[j]) * (w ? double(w[j]) : 1.0);
      const double xh = (double(xr[j]) - mean) * rstd;
      dx[r * d + j] = T(rstd * (gw - mg - xh * mgx));
    }
  }
}

template <typename T>
__global__ void layer_norm_row_stats(const T* x, int64_t rows, int64_t d, double eps, double* st) {
  __shared__ double sh[kBlock];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    double mean, rstd;
    ln_stats(x + r * d, d, eps, sh, &mean, &rstd);
    if (threadIdx.x == 0) {
      st[2 * r] = mean;
      st[2 * r + 1] = rstd;
    }
  }
}

// One term of dweight[j] = sum over rows of g x-hat, in double as the CPU kernel.
template <typename T>
struct LnWeightTerm {
  const T* x;
  const T* g;
  const double* st;  // mean, rstd per row
  int64_t d;
  __device__ double operator()(int64_t, int64_t r, int64_t j) const {
    return double(g[r * d + j]) * (double(x[r * d + j]) - st[2 * r]) * st[2 * r + 1];
  }
};

struct Ln {
  int64_t rows, d;
  double eps;
};
Ln ln_of(const Op& op, const Shape& x) {
  const LayerNormAttrs& a = op.attrs_as<LayerNormAttrs>();
  int64_t d = 1;
  for (int64_t v : a.normalized_shape) d *= v;
  return {d == 0 ? 0 : x.numel() / d, d, a.eps};
}

}  // namespace

void layer_norm(const Op& op, const KernelCall& c) {
  const Ln l = ln_of(op, c.in_shape(0));
  const bool w = op.attrs_as<LayerNormAttrs>().weight, b = op.attrs_as<LayerNormAttrs>().bias;
  if (l.rows == 0) return;
  dispatch_f(c.out_meta->dtype, "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    layer_norm_kernel<T><<<rows_grid(l.rows), kBlock, 0, stream(c)>>>(
        c.in<T>(0), w ? c.in<T>(1) : nullptr, b ? c.in<T>(w ? 2 : 1) : nullptr, c.out<T>(), l.rows,
        l.d, l.eps);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void layer_norm_backward_input(const Op& op, const KernelCall& c) {
  const Ln l = ln_of(op, c.in_shape(0));
  const bool w = op.attrs_as<LayerNormAttrs>().weight;
  if (l.rows == 0) return;
  dispatch_f(c.out_meta->dtype, "layer_norm_backward_input", [&](auto tag) {
    using T = decltype(tag);
    layer_norm_bw_input<T><<<rows_grid(l.rows), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.in<T>(1), w ? c.in<T>(2) : nullptr, c.out<T>(), l.rows, l.d, l.eps);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void layer_norm_backward_weight(const Op& op, const KernelCall& c) {
  const Ln l = ln_of(op, c.in_shape(0));
  if (l.d == 0) return;
  dispatch_f(c.out_meta->dtype, "layer_norm_backward_weight", [&](auto tag) {
    using T = decltype(tag);
    if (l.rows == 0) {
      LETHE_CUDA_CHECK(cudaMemsetAsync(c.output, 0, c.out_meta->bytes(), stream(c)));
      return;
    }
    // Workspace: mean and rstd per row, then the column sums' partials (ops/norm.cpp).
    double* st = static_cast<double*>(c.workspace);
    const size_t stats = static_cast<size_t>(l.rows) * 2;
    LETHE_ASSERT(st != nullptr && c.workspace_bytes >= stats * sizeof(double));
    layer_norm_row_stats<T>
        <<<rows_grid(l.rows), kBlock, 0, stream(c)>>>(c.in<T>(0), l.rows, l.d, l.eps, st);
    LETHE_CUDA_LAUNCH_CHECK();
    const int64_t cap = static_cast<int64_t>(c.workspace_bytes / sizeof(double) - stats);
    column_reduce<double, T>(c, LnWeightTerm<T>{c.in<T>(0), c.in<T>(1), st, l.d}, 1, l.rows, l.d,
                             st + stats, cap, c.out<T>(), 1.0);
  });
}

// layer_norm_backward_weight: mean and rstd per row (the CPU kernel's workspace), then the partial
// sums (doubles) of the columns.
size_t layer_norm_backward_weight_workspace(const Op& op, const std::vector<TensorMeta>& in,
                                            const TensorMeta& out) {
  return op.workspace_bytes(in, out) +
         static_cast<size_t>(column_partials_bound(in[0].numel())) * sizeof(double);
}

}  // namespace lethe::cuda::detail
