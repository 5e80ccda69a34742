// CUDA kernels of ops/conv.cpp. Convolution: conv2d, conv2d_backward_input and
// conv2d_backward_weight through cuDNN's legacy convolution API (NCHW tensors, cross-correlation,
// groups, compute type = data type).
//
// Determinism and the budget: for each geometry (shapes, parameters, dtype, TF32 on/off) a plan
// holds the descriptors and the CUDNN_DETERMINISTIC algorithms cuDNN's heuristics return, in their
// order, each with the workspace it needs. The backend's workspace_bytes() asks the same plan
// (conv_workspace below, from ops/cuda/register.cpp) for the first algorithm whose workspace fits a
// cap, so the workspace lives
// in the session's arena like any buffer; the kernel then takes the first algorithm fitting the
// workspace it was given, which is that same algorithm. Every run of a step, remat or not, runs
// the same deterministic algorithm: bitwise equal results.
//
// f32 uses CUDNN_FMA_MATH (no TF32 tensor cores: results stay close to the CPU) unless
// lethe::cuda::set_allow_tf32(true), then CUDNN_DEFAULT_MATH (which lets cuDNN use TF32 on Ampere
// and later, as PyTorch does); f64 uses CUDNN_DEFAULT_MATH.
//
// Pooling (below the convolution): max_pool2d (+ backward), avg_pool2d (+ backward) through cuDNN,
// and adaptive_avg_pool2d (+ backward).
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

#include <algorithm>
#include <array>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "framework/cuda.h"
#include "framework/cuda/context.h"
#include "ops/attrs.h"
#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {

namespace {

enum class ConvPass : int { forward = 0, backward_input = 1, backward_weight = 2 };

// One convolution: input x [n, cin, h, w], weight [cout, cin/groups, kh, kw], on CUDA device
// `device`.
struct ConvQuery {
  ConvPass pass = ConvPass::forward;
  int device = 0;
  DType dtype = DType::f32;
  int64_t n = 0, cin = 0, h = 0, w = 0, cout = 0, kh = 0, kw = 0;
  std::array<int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
};

const char* pass_name(ConvPass p) {
  return p == ConvPass::forward          ? "conv2d"
         : p == ConvPass::backward_input ? "conv2d_backward_input"
                                         : "conv2d_backward_weight";
}

// Makes `device` current for the scope: planning may run on a thread whose current device differs.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    LETHE_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) {
      LETHE_CUDA_CHECK(cudaSetDevice(device));
      changed_ = true;
    }
  }
  ~DeviceGuard() {
    if (changed_) (void)cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

struct Candidate {
  int algo = 0;  // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t of the plan's pass
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t bytes = 0;  // workspace
};

constexpr int kMathTypes = 4;  // CUDNN_DEFAULT_MATH .. CUDNN_FMA_MATH

struct Plan {
  ConvPass pass = ConvPass::forward;
  bool empty = false;  // a tensor has no element: nothing for cuDNN to do
  cudnnDataType_t dt = CUDNN_DATA_FLOAT;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv[kMathTypes] = {};  // one per math type a candidate uses
  std::vector<Candidate> candidates;                   // deterministic, in the heuristics' order

  // The first candidate whose workspace fits `limit`.
  const Candidate* fitting(size_t limit) const {
    for (const Candidate& c : candidates)
      if (c.bytes <= limit) return &c;
    return nullptr;
  }
  // The first candidate with the smallest workspace.
  const Candidate* smallest() const {
    const Candidate* best = nullptr;
    for (const Candidate& c : candidates)
      if (!best || c.bytes < best->bytes) best = &c;
    return best;
  }
};

using PlanKey = std::array<int64_t, 18>;

PlanKey key_of(const ConvQuery& q, bool tf32) {
  return {static_cast<int64_t>(q.pass),
          q.device,
          static_cast<int64_t>(q.dtype),
          tf32 ? 1 : 0,
          q.n,
          q.cin,
          q.h,
          q.w,
          q.cout,
          q.kh,
          q.kw,
          q.stride[0],
          q.stride[1],
          q.padding[0],
          q.padding[1],
          q.dilation[0],
          q.dilation[1],
          q.groups};
}

// Plans and the planning handles live for the whole process and are never destroyed: destroying
// cuDNN objects from static destructors can run after the driver has shut down. The mutex also
// serialises the planning handles (cuDNN handles must not be used by two threads at once).
struct Registry {
  std::mutex m;
  std::map<int, cudnnHandle_t> handles;  // per device, for heuristics only (no kernel runs on them)
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
};
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

// Caller holds registry().m and a DeviceGuard for `device`.
cudnnHandle_t planning_handle(int device) {
  Registry& r = registry();
  auto it = r.handles.find(device);
  if (it != r.handles.end()) return it->second;
  cudnnHandle_t h = nullptr;
  LETHE_CUDNN_CHECK(cudnnCreate(&h));
  r.handles.emplace(device, h);
  return h;
}

int checked_int(int64_t v, const ConvQuery& q, const char* what) {
  LETHE_CHECK(v >= 0 && v <= INT_MAX, pass_name(q.pass), " on CUDA: ", what, " ", v,
              " does not fit cuDNN's 32-bit sizes");
  return static_cast<int>(v);
}

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

cudnnConvolutionDescriptor_t conv_desc(Plan& p, const ConvQuery& q, cudnnMathType_t math) {
  cudnnConvolutionDescriptor_t& d = p.conv[static_cast<int>(math)];
  if (!d) {
    LETHE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    LETHE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        d, checked_int(q.padding[0], q, "padding"), checked_int(q.padding[1], q, "padding"),
        checked_int(q.stride[0], q, "stride"), checked_int(q.stride[1], q, "stride"),
        checked_int(q.dilation[0], q, "dilation"), checked_int(q.dilation[1], q, "dilation"),
        CUDNN_CROSS_CORRELATION, p.dt));
    LETHE_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, checked_int(q.groups, q, "groups")));
    LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(d, math));
  }
  return d;
}

// Adds the heuristics' deterministic algorithms with their workspace sizes. Caller holds the lock.
void collect(Plan& p, const ConvQuery& q, bool tf32, cudnnHandle_t h) {
  const bool strict_f32 = q.dtype == DType::f32 && !tf32;
  const cudnnMathType_t base = strict_f32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  cudnnConvolutionDescriptor_t c0 = conv_desc(p, q, base);
  auto consider = [&](int algo, cudnnStatus_t status, cudnnDeterminism_t det,
                      cudnnMathType_t math) {
    if (status != CUDNN_STATUS_SUCCESS || det != CUDNN_DETERMINISTIC) return;
    // Without TF32 the algorithm runs with CUDNN_FMA_MATH whatever the heuristics echo (asked with
    // an FMA descriptor they answer FMA, which PyTorch asserts; the descriptor is what keeps cuDNN
    // off TF32). Otherwise it runs in the math type the heuristics give it (cuDNN picks kernels
    // from the algorithm and the math type together).
    if (strict_f32) math = CUDNN_FMA_MATH;
    if (static_cast<int>(math) < 0 || static_cast<int>(math) >= kMathTypes) return;
    for (const Candidate& c : p.candidates)
      if (c.algo == algo && c.math == math) return;
    cudnnConvolutionDescriptor_t cd = conv_desc(p, q, math);
    size_t bytes = 0;
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    switch (p.pass) {
      case ConvPass::forward:
        st = cudnnGetConvolutionForwardWorkspaceSize(
            h, p.x, p.w, cd, p.y, static_cast<cudnnConvolutionFwdAlgo_t>(algo), &bytes);
        break;
      case ConvPass::backward_input:
        st = cudnnGetConvolutionBackwardDataWorkspaceSize(
            h, p.w, p.y, cd, p.x, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &bytes);
        break;
      case ConvPass::backward_weight:
        st = cudnnGetConvolutionBackwardFilterWorkspaceSize(
            h, p.x, p.y, cd, p.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &bytes);
        break;
    }
    if (st != CUDNN_STATUS_SUCCESS) return;  // not available in this math type after all
    p.candidates.push_back(Candidate{algo, math, bytes});
  };
  int count = 0, got = 0;
  // The same for the three perf-result types of cuDNN's heuristics.
  auto take = [&](const auto& perf, int got_n) {
    for (int i = 0; i < got_n; ++i) {
      const auto& r = perf[static_cast<size_t>(i)];
      consider(static_cast<int>(r.algo), r.status, r.determinism, r.mathType);
    }
  };
  switch (p.pass) {
    case ConvPass::forward: {
      LETHE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(std::max(count, 1)));
      LETHE_CUDNN_CHECK(
          cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, c0, p.y, count, &got, perf.data()));
      take(perf, got);
      break;
    }
    case ConvPass::backward_input: {
      LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<size_t>(std::max(count, 1)));
      LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, c0, p.x, count,
                                                                    &got, perf.data()));
      take(perf, got);
      break;
    }
    case ConvPass::backward_weight: {
      LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(
          static_cast<size_t>(std::max(count, 1)));
      LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, c0, p.w, count,
                                                                      &got, perf.data()));
      take(perf, got);
      break;
    }
  }
}

std::string geometry_text(const ConvQuery& q) {
  return lethe::detail::concat(dtype_name(q.dtype), " input [", q.n, ", ", q.cin, ", ", q.h, ", ",
                               q.w, "], weight [", q.cout, ", ", q.groups ? q.cin / q.groups : 0,
                               ", ", q.kh, ", ", q.kw, "], stride ", q.stride[0], ",", q.stride[1],
                               ", padding ", q.padding[0], ",", q.padding[1], ", dilation ",
                               q.dilation[0], ",", q.dilation[1], ", groups ", q.groups);
}

// Caller holds the lock.
std::unique_ptr<Plan> make_plan(const ConvQuery& q, bool tf32) {
  auto p = std::make_unique<Plan>();
  p->pass = q.pass;
  const int64_t ho = out_size(q.h, q.kh, q.stride[0], q.padding[0], q.dilation[0]);
  const int64_t wo = out_size(q.w, q.kw, q.stride[1], q.padding[1], q.dilation[1]);
  const int64_t cin_g = q.groups > 0 ? q.cin / q.groups : 0;
  const int64_t x_numel = q.n * q.cin * q.h * q.w, w_numel = q.cout * cin_g * q.kh * q.kw,
                y_numel = q.n * q.cout * ho * wo;
  if (x_numel == 0 || w_numel == 0 || y_numel == 0) {
    p->empty = true;
    return p;
  }
  // The legacy API's tensors index with 32-bit integers.
  for (int64_t v : {x_numel, w_numel, y_numel})
    LETHE_CHECK(v <= INT_MAX, pass_name(q.pass), " on CUDA: ", geometry_text(q),
                ": a tensor of more than 2^31-1 elements is beyond cuDNN's legacy convolution API "
                "(split the batch)");
  p->dt = q.dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  DeviceGuard guard(q.device);
  cudnnHandle_t h = planning_handle(q.device);
  LETHE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  LETHE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  LETHE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  LETHE_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, p->dt, checked_int(q.n, q, "batch"),
                                 checked_int(q.cin, q, "channels"), checked_int(q.h, q, "height"),
                                 checked_int(q.w, q, "width")));
  LETHE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(
      p->y, CUDNN_TENSOR_NCHW, p->dt, static_cast<int>(q.n), checked_int(q.cout, q, "channels"),
      checked_int(ho, q, "height"), checked_int(wo, q, "width")));
  LETHE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(
      p->w, p->dt, CUDNN_TENSOR_NCHW, static_cast<int>(q.cout), static_cast<int>(cin_g),
      checked_int(q.kh, q, "kernel"), checked_int(q.kw, q, "kernel")));
  const cudnnMathType_t base = q.dtype == DType::f32 && !tf32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  {
    // cuDNN's own output size must be ours (same formula); a mismatch would be a silent overrun.
    int dn = 0, dc = 0, dh = 0, dw = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv_desc(*p, q, base), p->x, p->w, &dn,
                                                            &dc, &dh, &dw));
    LETHE_CHECK(dn == q.n && dc == q.cout && dh == ho && dw == wo, pass_name(q.pass),
                " on CUDA: ", geometry_text(q), ": cuDNN computes an output [", dn, ", ", dc, ", ",
                dh, ", ", dw, "], expected [", q.n, ", ", q.cout, ", ", ho, ", ", wo, "]");
  }
  collect(*p, q, tf32, h);
  LETHE_CHECK(!p->candidates.empty(), pass_name(q.pass), " on CUDA: ", geometry_text(q),
              ": cuDNN's heuristics offer no deterministic algorithm for this geometry");
  return p;
}

const Plan& plan_for(const ConvQuery& q, bool tf32) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  const PlanKey key = key_of(q, tf32);
  auto it = r.plans.find(key);
  if (it == r.plans.end()) it = r.plans.emplace(key, make_plan(q, tf32)).first;
  return *it->second;
}

bool tf32_for(const ConvQuery& q) {
  return q.dtype == DType::f32 && lethe::cuda::allow_tf32();
}

// The query of `op` in pass `pass`: x is the output of backward_input (and of conv_transpose2d,
// which runs that pass), w the output of backward_weight; the device is the output's.
ConvQuery query_of(const Op& op, ConvPass pass, const std::vector<const Shape*>& in,
                   const TensorMeta& out) {
  const Shape& x = pass == ConvPass::backward_input ? out.shape : *in[0];
  const Shape& w = pass == ConvPass::backward_weight ? out.shape : *in[1];
  ConvQuery q;
  q.pass = pass;
  q.device = out.device.index;
  q.dtype = out.dtype;
  q.n = x[0], q.cin = x[1], q.h = x[2], q.w = x[3];
  q.cout = w[0], q.kh = w[2], q.kw = w[3];
  const Conv2dParams& p = op.attrs_as<Conv2dAttrs>().params;
  q.stride = p.stride;
  q.padding = p.padding;
  q.dilation = p.dilation;
  q.groups = p.groups;
  return q;
}
ConvQuery query_of(const Op& op, const KernelCall& c, ConvPass pass) {
  TensorMeta out = *c.out_meta;
  out.device = Device::cuda(context(c).device);
  return query_of(op, pass, {&c.in_shape(0), &c.in_shape(1)}, out);
}

// The workspace of the algorithm the kernel will run. The cap keeps small convolutions from
// reserving large workspaces (fast algorithms may ask for hundreds of MiB) while letting big ones
// use the faster algorithms; when nothing fits, the smallest is taken.
size_t workspace_of_query(const ConvQuery& q) {
  const Plan& p = plan_for(q, tf32_for(q));
  if (p.empty) return 0;
  const int64_t ho = out_size(q.h, q.kh, q.stride[0], q.padding[0], q.dilation[0]);
  const int64_t wo = out_size(q.w, q.kw, q.stride[1], q.padding[1], q.dilation[1]);
  const size_t io =
      static_cast<size_t>(q.n * q.cin * q.h * q.w + q.cout * (q.cin / q.groups) * q.kh * q.kw +
                          q.n * q.cout * ho * wo) *
      dtype_size(q.dtype);
  const size_t cap = std::min<size_t>(size_t(256) << 20, std::max<size_t>(size_t(1) << 20, io));
  const Candidate* c = p.fitting(cap);
  if (!c) c = p.smallest();
  return c->bytes;
}

template <typename T>
void run(const Op& op, const KernelCall& c, ConvPass pass) {
  const ConvQuery q = query_of(op, c, pass);
  const Plan& p = plan_for(q, tf32_for(q));
  cudaStream_t s = stream(c);
  const bool bias = pass == ConvPass::forward && op.attrs_as<Conv2dAttrs>().bias;
  if (p.empty) {  // an empty sum: zeros (plus the bias), as the CPU kernel
    LETHE_CUDA_CHECK(cudaMemsetAsync(c.output, 0, c.out_meta->bytes(), s));
    if (bias)
      add_bias_channels(c, c.inputs[2], c.output, q.cout, c.out_shape()[2] * c.out_shape()[3]);
    return;
  }
  const Candidate* cand = p.fitting(c.workspace_bytes);
  LETHE_CHECK(cand != nullptr, op.name(), " on CUDA: ", geometry_text(q),
              ": no deterministic cuDNN algorithm fits ", "the op's workspace of ",
              c.workspace_bytes, " bytes (the smallest needs ", p.smallest()->bytes,
              "); was lethe::cuda::set_allow_tf32 changed after the step was planned?");
  LETHE_CHECK(cand->bytes == 0 || c.workspace != nullptr, "internal error: ", op.name(),
              " has no workspace");
  cudnnHandle_t h = context(c).dnn;
  cudnnConvolutionDescriptor_t cd = p.conv[static_cast<int>(cand->math)];
  const T one = T(1), zero = T(0);  // scaling factors: float for f32 data, double for f64
  switch (pass) {
    case ConvPass::forward:
      LETHE_CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x, c.inputs[0], p.w, c.inputs[1], cd,
                                                static_cast<cudnnConvolutionFwdAlgo_t>(cand->algo),
                                                c.workspace, cand->bytes, &zero, p.y, c.output));
      if (bias)
        add_bias_channels(c, c.inputs[2], c.output, q.cout, c.out_shape()[2] * c.out_shape()[3]);
      break;
    case ConvPass::backward_input:  // inputs: grad_out, w
      LETHE_CUDNN_CHECK(
          cudnnConvolutionBackwardData(h, &one, p.w, c.inputs[1], p.y, c.inputs[0], cd,
                                       static_cast<cudnnConvolutionBwdDataAlgo_t>(cand->algo),
                                       c.workspace, cand->bytes, &zero, p.x, c.output));
      break;
    case ConvPass::backward_weight:  // inputs: x, grad_out
      LETHE_CUDNN_CHECK(
          cudnnConvolutionBackwardFilter(h, &one, p.x, c.inputs[0], p.y, c.inputs[1], cd,
                                         static_cast<cudnnConvolutionBwdFilterAlgo_t>(cand->algo),
                                         c.workspace, cand->bytes, &zero, p.w, c.output));
      break;
  }
}

template <ConvPass P>
void conv_kernel(const Op& op, const KernelCall& c) {
  if (c.out_meta->dtype == DType::f32) return run<float>(op, c, P);
  if (c.out_meta->dtype == DType::f64) return run<double>(op, c, P);
  throw Error(lethe::detail::concat(op.name(), ": the CUDA kernel expects f32 or f64, got ",
                                    dtype_name(c.out_meta->dtype)));
}

}  // namespace

size_t conv_workspace(const Op& op, const std::vector<TensorMeta>& in, const TensorMeta& out) {
  ConvPass pass = ConvPass::forward;
  switch (op.kind()) {
    case OpKind::conv2d:
      break;
    case OpKind::conv2d_backward_input:
    case OpKind::conv_transpose2d:
      pass = ConvPass::backward_input;
      break;
    case OpKind::conv2d_backward_weight:
      pass = ConvPass::backward_weight;
      break;
    default:
      throw_not_in_family("conv_workspace", op.kind());
  }
  return workspace_of_query(query_of(op, pass, {&in[0].shape, &in[1].shape}, out));
}
void conv2d(const Op& op, const KernelCall& c) {
  conv_kernel<ConvPass::forward>(op, c);
}
void conv2d_backward_input(const Op& op, const KernelCall& c) {
  conv_kernel<ConvPass::backward_input>(op, c);
}
void conv2d_backward_weight(const Op& op, const KernelCall& c) {
  conv_kernel<ConvPass::backward_weight>(op, c);
}
// Inputs (x, w), output [N, Cout, Ho, Wo]: cuDNN's backward data with x as the output gradient.
void conv_transpose2d(const Op& op, const KernelCall& c) {
  conv_kernel<ConvPass::backward_input>(op, c);
}

// ------------------------------------------------------------------------------- pooling

namespace {

constexpr int kBlock = 256;

struct PoolDims {
  int64_t planes = 0, h = 0, w = 0, ho = 0, wo = 0, kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0,
          dh = 1, dw = 1;
  bool count_include_pad = true;
  int64_t divisor_override = 0;
};

// x [N, C, H, W] and pooled [N, C, Ho, Wo] with the op's attributes (ceil_mode is in the shapes).
PoolDims pool_dims(const Op& op, const Shape& x, const Shape& y) {
  const Pool2dAttrs& a = op.attrs_as<Pool2dAttrs>();
  const auto &k = a.kernel, &s = a.stride, &p = a.padding, &dl = a.dilation;
  PoolDims d;
  d.planes = x[0] * x[1];
  d.h = x[2], d.w = x[3], d.ho = y[2], d.wo = y[3];
  d.kh = k[0], d.kw = k[1], d.sh = s[0], d.sw = s[1], d.ph = p[0], d.pw = p[1], d.dh = dl[0],
  d.dw = dl[1];
  d.count_include_pad = a.count_include_pad;
  d.divisor_override = a.divisor_override;
  return d;
}

// Flat index in the plane of the first maximum of window (oh, ow), as the CPU's window_argmax.
template <typename T>
__device__ int64_t window_argmax(const T* plane, const PoolDims& d, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
  int64_t best = -1;
  T bv = T(0);
  for (int64_t i = 0; i < d.kh; ++i) {
    const int64_t ih = h0 + i * d.dh;
    if (ih < 0 || ih >= d.h) continue;
    for (int64_t j = 0; j < d.kw; ++j) {
      const int64_t iw = w0 + j * d.dw;
      if (iw < 0 || iw >= d.w) continue;
      const T v = plane[ih * d.w + iw];
      if (best < 0 || v > bv || (isnan(v) && !isnan(bv))) {
        best = ih * d.w + iw;
        bv = v;
      }
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
    covering(ih, (d.kh - 1) * d.dh + 1, d.sh, d.ph, d.ho, &oh0, &oh1);  // dilated extent
    covering(iw, (d.kw - 1) * d.dw + 1, d.sw, d.pw, d.wo, &ow0, &ow1);
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

namespace {
template <typename T>
__global__ void max_pool_idx(const T* x, int64_t* y, PoolDims d) {
  LETHE_GRID_LOOP(t, d.planes * d.ho * d.wo) {
    const int64_t pl = t / (d.ho * d.wo), r = t % (d.ho * d.wo);
    y[t] = window_argmax(x + pl * d.h * d.w, d, r / d.wo, r % d.wo);
  }
}
}  // namespace

void max_pool2d_indices(const Op& op, const KernelCall& c) {
  const PoolDims d = pool_dims(op, c.in_shape(0), c.out_shape());
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.in_meta[0]->dtype, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    max_pool_idx<T><<<grid_for(n, kBlock), kBlock, 0, stream(c)>>>(c.in<T>(0), c.out<int64_t>(), d);
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

namespace {

// Whether cuDNN's average pooling computes the op: count_include_pad, no divisor_override, floor
// mode (cuDNN's output size must be ours; ceil mode gives other windows).
bool cudnn_avg(const Op& op) {
  const Pool2dAttrs& a = op.attrs_as<Pool2dAttrs>();
  return a.count_include_pad && a.divisor_override == 0 && !a.ceil_mode;
}

// ops/conv.cpp's avg_window: rows [h0, h1), columns [w0, w1) and 1 / the divisor.
struct AvgWin {
  int64_t h0, h1, w0, w1;
  double inv;
};
__device__ AvgWin avg_win(const PoolDims& d, int64_t oh, int64_t ow) {
  int64_t h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
  int64_t h1 = min(h0 + d.kh, d.h + d.ph), w1 = min(w0 + d.kw, d.w + d.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = max(h0, int64_t(0)), w0 = max(w0, int64_t(0));
  h1 = min(h1, d.h), w1 = min(w1, d.w);
  const int64_t div = d.divisor_override    ? d.divisor_override
                      : d.count_include_pad ? padded
                                            : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, 1.0 / static_cast<double>(div)};
}

// One thread per output: the window in row-major order times 1 / divisor, as the CPU kernel.
template <typename T>
__global__ void avg_pool_fw(const T* x, T* y, PoolDims d) {
  LETHE_GRID_LOOP(t, d.planes * d.ho * d.wo) {
    const int64_t pl = t / (d.ho * d.wo), r = t % (d.ho * d.wo);
    const AvgWin a = avg_win(d, r / d.wo, r % d.wo);
    const T* plane = x + pl * d.h * d.w;
    T acc = T(0);
    for (int64_t ih = a.h0; ih < a.h1; ++ih)
      for (int64_t iw = a.w0; iw < a.w1; ++iw) acc += plane[ih * d.w + iw];
    y[t] = acc * static_cast<T>(a.inv);
  }
}

// One thread per input element: the scaled gradients of the windows containing it, in output
// order (the CPU kernel's order of accumulation).
template <typename T>
__global__ void avg_pool_bw(const T* gy, T* dx, PoolDims d) {
  LETHE_GRID_LOOP(e, d.planes * d.h * d.w) {
    const int64_t pl = e / (d.h * d.w), r = e % (d.h * d.w), ih = r / d.w, iw = r % d.w;
    const T* g = gy + pl * d.ho * d.wo;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, d.kh, d.sh, d.ph, d.ho, &oh0, &oh1);
    covering(iw, d.kw, d.sw, d.pw, d.wo, &ow0, &ow1);
    T acc = T(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const AvgWin a = avg_win(d, oh, ow);
        if (ih >= a.h0 && ih < a.h1 && iw >= a.w0 && iw < a.w1)
          acc += g[oh * d.wo + ow] * static_cast<T>(a.inv);
      }
    dx[e] = acc;
  }
}

}  // namespace

void avg_pool2d(const Op& op, const KernelCall& c) {
  const Shape& xs = c.in_shape(0);
  if (c.out_meta->numel() == 0) return;
  const PoolDims d = pool_dims(op, xs, c.out_shape());
  if (!cudnn_avg(op)) {
    dispatch_f(c.out_meta->dtype, "avg_pool2d", [&](auto tag) {
      using T = decltype(tag);
      avg_pool_fw<T><<<grid_for(c.out_meta->numel(), kBlock), kBlock, 0, stream(c)>>>(
          c.in<T>(0), c.out<T>(), d);
      LETHE_CUDA_LAUNCH_CHECK();
    });
    return;
  }
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
  if (!cudnn_avg(op)) {
    dispatch_f(c.out_meta->dtype, "avg_pool2d_backward", [&](auto tag) {
      using T = decltype(tag);
      avg_pool_bw<T><<<grid_for(c.out_meta->numel(), kBlock), kBlock, 0, stream(c)>>>(
          c.in<T>(0), c.out<T>(), d);
      LETHE_CUDA_LAUNCH_CHECK();
    });
    return;
  }
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
