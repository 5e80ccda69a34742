// CUDA kernels of 2-d pooling: max_pool2d (+ backward), avg_pool2d (+ backward) through cuDNN, and
// adaptive_avg_pool2d (+ backward).
//
// Max pooling has its own kernels rather than cuDNN's: the CPU reference sends a window's gradient
// to its first maximum in row-major order (a NaN counts as the maximum), and ties are common (a
// window of zeros after a ReLU). cuDNN does not document which of tied maxima receives the
// gradient, so matching the CPU in meaning needs the rule written out. The forward recomputes
// nothing the backward needs: the backward is a gather (each input element sums, in output order,
// the gradients of the windows whose first maximum it is), so it needs neither the pooled output,
// a workspace, nor atomics, and it adds in the CPU's order (bitwise equal results).
//
// Average pooling (count_include_pad: every window divides by kh*kw) runs on cuDNN with
// CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING; cuDNN lists only CUDNN_POOLING_MAX among the
// non-reproducible pooling backwards.
#include <cudnn.h>

#include <cmath>

#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {
namespace {

constexpr int kBlock = 256;

struct PoolDims {
  int64_t planes = 0, h = 0, w = 0, ho = 0, wo = 0, kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
};

// x [N, C, H, W] and pooled [N, C, Ho, Wo] with the op's kernel/stride/padding attributes.
PoolDims pool_dims(const Op& op, const Shape& x, const Shape& y) {
  const Pool2dAttrs& a = op.attrs_as<Pool2dAttrs>();
  const auto &k = a.kernel, &s = a.stride, &p = a.padding;
  PoolDims d;
  d.planes = x[0] * x[1];
  d.h = x[2], d.w = x[3], d.ho = y[2], d.wo = y[3];
  d.kh = k[0], d.kw = k[1], d.sh = s[0], d.sw = s[1], d.ph = p[0], d.pw = p[1];
  return d;
}

// Flat index in the plane of the first maximum of window (oh, ow), as the CPU's window_argmax.
template <typename T>
__device__ int64_t window_argmax(const T* plane, const PoolDims& d, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
  const int64_t h1 = min(h0 + d.kh, d.h), w1 = min(w0 + d.kw, d.w);
  int64_t best = -1;
  T bv = T(0);
  for (int64_t ih = max(h0, int64_t(0)); ih < h1; ++ih)
    for (int64_t iw = max(w0, int64_t(0)); iw < w1; ++iw) {
      const T v = plane[ih * d.w + iw];
      if (best < 0 || v > bv || (isnan(v) && !isnan(bv))) {
        best = ih * d.w + iw;
        bv = v;
      }
    }
  return best;
}

// Outputs o in [0, n) whose window [o*s - p, o*s - p + k) contains input position i.
__device__ void covering(int64_t i, int64_t k, int64_t s, int64_t p, int64_t n, int64_t* lo,
                         int64_t* hi) {
  const int64_t a = i + p - k + 1;
  *lo = a <= 0 ? 0 : (a + s - 1) / s;
  *hi = min((i + p) / s, n - 1);
}

template <typename T>
__global__ void max_pool_fw(const T* x, T* y, PoolDims d) {
  LETHE_GRID_LOOP(t, d.planes * d.ho * d.wo) {
    const int64_t pl = t / (d.ho * d.wo), r = t % (d.ho * d.wo);
    const T* plane = x + pl * d.h * d.w;
    const int64_t best = window_argmax(plane, d, r / d.wo, r % d.wo);
    y[t] =
        best >= 0 ? plane[best] : T(NAN);  // never empty: padding <= kernel/2 (checked by the op)
  }
}

template <typename T>
__global__ void max_pool_bw(const T* x, const T* gy, T* dx, PoolDims d) {
  LETHE_GRID_LOOP(e, d.planes * d.h * d.w) {
    const int64_t pl = e / (d.h * d.w), r = e % (d.h * d.w), ih = r / d.w, iw = r % d.w;
    const T* plane = x + pl * d.h * d.w;
    const T* g = gy + pl * d.ho * d.wo;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, d.kh, d.sh, d.ph, d.ho, &oh0, &oh1);
    covering(iw, d.kw, d.sw, d.pw, d.wo, &ow0, &ow1);
    T acc = T(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        if (window_argmax(plane, d, oh, ow) == r) acc += g[oh * d.wo + ow];
    dx[e] = acc;
  }
}

}  // namespace

void max_pool2d(const Op& op, const KernelCall& c) {
  const PoolDims d = pool_dims(op, c.in_shape(0), c.out_shape());
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    max_pool_fw<T><<<grid_for(n, kBlock), kBlock, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), d);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// Inputs: x, grad_out.
void max_pool2d_backward(const Op& op, const KernelCall& c) {
  const PoolDims d = pool_dims(op, c.in_shape(0), c.in_shape(1));
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    max_pool_bw<T>
        <<<grid_for(n, kBlock), kBlock, 0, stream(c)>>>(c.in<T>(0), c.in<T>(1), c.out<T>(), d);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// ------------------------------------------------------------------------------- average (cuDNN)

namespace {

// Descriptors of one average pooling call (host objects, cheap to make per call).
struct AvgPoolDescs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnPoolingDescriptor_t pool = nullptr;
  AvgPoolDescs(const char* op, const Shape& xs, const PoolDims& d, DType t) {
    const cudnnDataType_t dt = t == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    for (int64_t v : {xs[0], xs[1], xs[2], xs[3], d.ho, d.wo, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw})
      LETHE_CHECK(v <= INT32_MAX, op, " on CUDA: input ", xs,
                  ": sizes beyond 32 bits are not supported by cuDNN");
    LETHE_CHECK(xs.numel() <= INT32_MAX, op, " on CUDA: input ", xs,
                " has more than 2^31-1 elements, beyond cuDNN's legacy pooling API");
    try {
      LETHE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
      LETHE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
      LETHE_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&pool));
      LETHE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, int(xs[0]), int(xs[1]),
                                                   int(xs[2]), int(xs[3])));
      LETHE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, dt, int(xs[0]), int(xs[1]),
                                                   int(d.ho), int(d.wo)));
      LETHE_CUDNN_CHECK(cudnnSetPooling2dDescriptor(
          pool, CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING, CUDNN_PROPAGATE_NAN, int(d.kh),
          int(d.kw), int(d.ph), int(d.pw), int(d.sh), int(d.sw)));
      // cuDNN's output size must be ours (floor mode, as the CPU); a mismatch would be an overrun.
      int n = 0, ch = 0, oh = 0, ow = 0;
      LETHE_CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(pool, x, &n, &ch, &oh, &ow));
      LETHE_CHECK(n == xs[0] && ch == xs[1] && oh == d.ho && ow == d.wo, op, " on CUDA: input ", xs,
                  ": cuDNN pools to [", n, ", ", ch, ", ", oh, ", ", ow, "], expected [", xs[0],
                  ", ", xs[1], ", ", d.ho, ", ", d.wo, "]");
    } catch (...) {
      release();
      throw;
    }
  }
  ~AvgPoolDescs() { release(); }
  AvgPoolDescs(const AvgPoolDescs&) = delete;
  AvgPoolDescs& operator=(const AvgPoolDescs&) = delete;

 private:
  void release() {
    if (pool) (void)cudnnDestroyPoolingDescriptor(pool);
    if (y) (void)cudnnDestroyTensorDescriptor(y);
    if (x) (void)cudnnDestroyTensorDescriptor(x);
    pool = nullptr, x = y = nullptr;
  }
};

}  // namespace

void avg_pool2d(const Op& op, const KernelCall& c) {
  const Shape& xs = c.in_shape(0);
  if (c.out_meta->numel() == 0) return;
  const PoolDims d = pool_dims(op, xs, c.out_shape());
  const AvgPoolDescs ds("avg_pool2d", xs, d, c.out_meta->dtype);
  dispatch_f(c.out_meta->dtype, "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T one = T(1), zero = T(0);  // scaling factors: float for f32 data, double for f64
    LETHE_CUDNN_CHECK(cudnnPoolingForward(context(c).dnn, ds.pool, &one, ds.x, c.inputs[0], &zero,
                                          ds.y, c.output));
  });
}

// Input: grad_out only. cudnnPoolingBackward also takes the forward's y and x, which an average
// pooling's gradient does not depend on: grad_out stands in for y (same shape) and the output
// buffer for x (same shape, so any read stays in bounds; its values cannot matter).
void avg_pool2d_backward(const Op& op, const KernelCall& c) {
  const Shape& xs = c.out_shape();
  if (c.out_meta->numel() == 0) return;
  const PoolDims d = pool_dims(op, xs, c.in_shape(0));
  const AvgPoolDescs ds("avg_pool2d_backward", xs, d, c.out_meta->dtype);
  dispatch_f(c.out_meta->dtype, "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T one = T(1), zero = T(0);
    LETHE_CUDNN_CHECK(cudnnPoolingBackward(context(c).dnn, ds.pool, &one, ds.y, c.inputs[0], ds.y,
                                           c.inputs[0], ds.x, c.output, &zero, ds.x, c.output));
  });
}

// ------------------------------------------------------------------------------- adaptive average

namespace {

// PyTorch's windows: [floor(i*in/out), ceil((i+1)*in/out)).
__device__ int64_t ada_start(int64_t i, int64_t in, int64_t out) {
  return (i * in) / out;
}
__device__ int64_t ada_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

// One thread per output; the window is summed in row-major order and divided, as the CPU kernel.
template <typename T>
__global__ void adaptive_fw(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t ho,
                            int64_t wo) {
  LETHE_GRID_LOOP(t, planes * ho * wo) {
    const int64_t pl = t / (ho * wo), oh = (t / wo) % ho, ow = t % wo;
    const int64_t hs = ada_start(oh, h, ho), he = ada_end(oh, h, ho);
    const int64_t ws = ada_start(ow, w, wo), we = ada_end(ow, w, wo);
    const T* plane = x + pl * h * w;
    T acc = T(0);
    for (int64_t ih = hs; ih < he; ++ih)
      for (int64_t iw = ws; iw < we; ++iw) acc += plane[ih * w + iw];
    y[t] = acc / T((he - hs) * (we - ws));
  }
}

// One thread per input element: the sum, in output order, of the gradients (divided by their window
// size) of every window containing it. Windows containing row ih are the outputs
// [floor(ih*ho/h), ceil((ih+1)*ho/h) - 1]; the loop still tests each one, so rounding at the ends
// cannot add a window that does not contain it.
template <typename T>
__global__ void adaptive_bw(const T* gy, T* dx, int64_t planes, int64_t h, int64_t w, int64_t ho,
                            int64_t wo) {
  LETHE_GRID_LOOP(e, planes * h * w) {
    const int64_t pl = e / (h * w), ih = (e / w) % h, iw = e % w;
    const T* g = gy + pl * ho * wo;
    const int64_t oh0 = max(int64_t(0), (ih * ho) / h - 1),
                  oh1 = min(ho - 1, ((ih + 1) * ho + h - 1) / h);
    const int64_t ow0 = max(int64_t(0), (iw * wo) / w - 1),
                  ow1 = min(wo - 1, ((iw + 1) * wo + w - 1) / w);
    T acc = T(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const int64_t hs = ada_start(oh, h, ho), he = ada_end(oh, h, ho);
      if (ih < hs || ih >= he) continue;
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t ws = ada_start(ow, w, wo), we = ada_end(ow, w, wo);
        if (iw < ws || iw >= we) continue;
        acc += g[oh * wo + ow] / T((he - hs) * (we - ws));
      }
    }
    dx[e] = acc;
  }
}

}  // namespace

void adaptive_avg_pool2d(const Op&, const KernelCall& c) {
  const Shape &x = c.in_shape(0), &y = c.out_shape();
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "adaptive_avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    adaptive_fw<T><<<grid_for(n, kBlock), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.out<T>(), x[0] * x[1], x[2], x[3], y[2], y[3]);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void adaptive_avg_pool2d_backward(const Op&, const KernelCall& c) {
  const Shape &x = c.out_shape(), &g = c.in_shape(0);
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.out_meta->dtype, "adaptive_avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    adaptive_bw<T><<<grid_for(n, kBlock), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.out<T>(), x[0] * x[1], x[2], x[3], g[2], g[3]);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace lethe::cuda::detail
