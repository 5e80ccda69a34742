// CUDA kernels of reductions and row-wise ops: sum/mean/sum_to, max/argmax (+ backward),
// softmax/log_softmax (+ backward), cross_entropy (+ backward), layer_norm (+ backwards).
// Every sum has an order fixed by the shapes (no atomics): a step is bitwise reproducible.
#include <cmath>
#include <limits>

#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {
namespace {

constexpr int64_t kChunk = 65536;  // = cpu::kReduceChunk: the workspace the ops report fits it
constexpr int kBlock = 256;

// ------------------------------------------------------------------------------- sums

template <typename T>
__global__ void chunk_sums(const T* x, int64_t n, T* partial) {
  __shared__ T sh[kBlock];
  const int64_t base = blockIdx.x * kChunk, end = min(n, base + kChunk);
  T acc = T(0);
  for (int64_t i = base + threadIdx.x; i < end; i += kBlock) acc += x[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// out[0] = scale * sum of x[0..n) (one block).
template <typename T>
__global__ void final_sum(const T* x, int64_t n, T* out, T scale) {
  __shared__ T sh[kBlock];
  T acc = T(0);
  for (int64_t i = threadIdx.x; i < n; i += kBlock) acc += x[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) out[0] = acc * scale;
}

// Rows of R contiguous elements: one block per row.
template <typename T>
__global__ void row_sums(const T* x, int64_t K, int64_t R, T* out, T scale) {
  __shared__ T sh[kBlock];
  for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
    const T* row = x + k * R;
    T acc = T(0);
    for (int64_t i = threadIdx.x; i < R; i += kBlock) acc += row[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) out[k] = acc * scale;
  }
}

// Nothing reduced, mean over size-1 axes: out = x * scale (the CPU kernel copies, then scales).
template <typename T>
__global__ void scaled_copy(const T* x, int64_t n, T* out, T scale) {
  LETHE_GRID_LOOP(i, n) out[i] = x[i] * scale;
}

// ------------------------------------------------------------------------------- column sums

// Sums over r of a term f(k0, r, k1) of a [K0, R, K1] space ([K0, R, K1] summed over R, and
// layer_norm's weight gradient). One thread per column leaves the device idle when R is long and
// K0 x K1 small (a bias gradient: R = batch x sequence), so a block takes a tile of kColTile
// columns and one chunk of rows, its kRowGroups row groups adding interleaved rows; long columns
// are split into chunks across blocks, whose partial sums a second pass adds in chunk order. Every
// choice below depends on (K0, R, K1) and on the workspace the op reports for those shapes only:
// the order of the sums is fixed by the op and its shapes (no atomics).
constexpr int kColTile = 32;          // columns of a block (one warp along the contiguous K1)
constexpr int kRowGroups = 8;         // row groups of a block (blockDim = kColTile x kRowGroups)
constexpr int64_t kColBlocks = 1024;  // blocks worth filling an H100/H200 (132 SMs x 8 blocks)
constexpr int64_t kColMinRows = 64;   // rows of a chunk at least (8 per thread)

// Partial sums that column_plan may ask for, as a bound on the n = K0 x R x K1 summed terms:
// with chunks > 1, chunks <= ceil(R / kColMinRows) < 2R / kColMinRows gives < 2n / 64, and
// chunks <= ceil(kColBlocks / tiles) with tiles < kColBlocks gives < 32 x 2 x kColBlocks. The ops
// report it for CUDA inputs (ops/reduce.cpp, ops/norm.cpp spell the same formula).
int64_t column_partials_bound(int64_t n) {
  return std::min<int64_t>(n / 32, 2 * kColTile * kColBlocks);
}

struct ColumnPlan {
  int64_t K0 = 1, R = 1, K1 = 1;
  int64_t tiles = 1;       // K0 x ceil(K1 / kColTile)
  int64_t chunk_rows = 1;  // rows of a chunk (the last may have fewer)
  int64_t chunks = 1;      // ceil(R / chunk_rows); > 1 needs K0 x K1 x chunks partial sums
};

// Enough chunks for about kColBlocks blocks, never below kColMinRows rows a chunk. One chunk when
// the partial sums would not fit in `cap` elements of workspace: that choice too is a function of
// the op and its shapes (the workspace each op reports).
ColumnPlan column_plan(int64_t K0, int64_t R, int64_t K1, int64_t cap) {
  ColumnPlan p;
  p.K0 = K0;
  p.R = R;
  p.K1 = K1;
  p.tiles = K0 * ((K1 + kColTile - 1) / kColTile);
  int64_t c = std::min((kColBlocks + p.tiles - 1) / p.tiles, (R + kColMinRows - 1) / kColMinRows);
  c = std::max<int64_t>(c, 1);
  p.chunk_rows = std::max<int64_t>((R + c - 1) / c, 1);
  p.chunks = (R + p.chunk_rows - 1) / p.chunk_rows;
  if (p.chunks > 1 && K0 * K1 * p.chunks > cap) {
    p.chunk_rows = R;
    p.chunks = 1;
  }
  LETHE_ASSERT(p.chunks == 1 || K0 * K1 * p.chunks <= column_partials_bound(K0 * R * K1));
  return p;
}

// Block (tile, chunk): thread (x, y) adds rows y, y + kRowGroups, ... of the chunk in increasing
// order for column x of the tile, then thread (x, 0) adds the kRowGroups sums in order 0, 1, ...
// One chunk: out = T(sum * scale); else partial[chunk][k0 x K1 + k1] = sum.
template <typename Acc, typename T, typename F>
__global__ void column_tiles(F f, ColumnPlan p, Acc* partial, T* out, Acc scale) {
  __shared__ Acc sh[kRowGroups][kColTile];
  const int64_t per_k0 = (p.K1 + kColTile - 1) / kColTile;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * p.chunk_rows, r1 = min(p.R, r0 + p.chunk_rows);
  for (int64_t tile = blockIdx.x; tile < p.tiles; tile += gridDim.x) {
    const int64_t k0 = tile / per_k0, k1 = (tile % per_k0) * kColTile + threadIdx.x;
    Acc acc = Acc(0);
    if (k1 < p.K1) {
#pragma unroll 4
      for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowGroups) acc += f(k0, r, k1);
    }
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && k1 < p.K1) {
      Acc s = sh[0][threadIdx.x];
      for (int g = 1; g < kRowGroups; ++g) s += sh[g][threadIdx.x];
      const int64_t o = k0 * p.K1 + k1;
      if (partial)
        partial[chunk * p.K0 * p.K1 + o] = s;
      else
        out[o] = T(s * scale);
    }
    __syncthreads();
  }
}

// out[o] = T(scale * (partial[0][o] + partial[1][o] + ...)), chunks added in order.
template <typename Acc, typename T>
__global__ void fold_chunks(const Acc* partial, int64_t m, int64_t chunks, T* out, Acc scale) {
  LETHE_GRID_LOOP(o, m) {
    Acc s = partial[o];
    for (int64_t c = 1; c < chunks; ++c) s += partial[c * m + o];
    out[o] = T(s * scale);
  }
}

// Runs the plan of (K0, R, K1) with `cap` elements of partial sums at `partial` (may be null).
template <typename Acc, typename T, typename F>
void column_reduce(const KernelCall& c, const F& f, int64_t K0, int64_t R, int64_t K1, Acc* partial,
                   int64_t cap, T* out, Acc scale) {
  const ColumnPlan p = column_plan(K0, R, K1, partial ? cap : 0);
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(p.tiles, 65535LL * 16)),
                  static_cast<unsigned>(p.chunks));
  column_tiles<Acc, T, F><<<grid, dim3(kColTile, kRowGroups), 0, stream(c)>>>(
      f, p, p.chunks > 1 ? partial : nullptr, out, scale);
  LETHE_CUDA_LAUNCH_CHECK();
  if (p.chunks > 1) {
    fold_chunks<Acc, T>
        <<<grid_for(K0 * K1), kBlock, 0, stream(c)>>>(partial, K0 * K1, p.chunks, out, scale);
    LETHE_CUDA_LAUNCH_CHECK();
  }
}

// x[k0][r][k1] of a contiguous [K0, R, K1].
template <typename T>
struct ColumnTerm {
  const T* x;
  int64_t R, K1;
  __device__ T operator()(int64_t k0, int64_t r, int64_t k1) const {
    return x[(k0 * R + r) * K1 + k1];
  }
};

// Anything else: one thread per output, walking its reduced elements in row-major order.
// ix.strides[0] maps the output index to the input base; rx the reduced index to the offset.
template <typename T>
__global__ void general_sums(const T* x, int64_t m, Strided<1> ox, Strided<1> rx, int64_t rcount, T* out, T scale) {
  LETHE_GRID_LOOP(o, m) {
    int64_t base;
    ox.offsets(o, &base);
    T acc = T(0);
    for (int64_t r = 0; r < rcount; ++r) {
      int64_t off;
      rx.offsets(r, &off);
      acc += x[base + off];
    }
    out[o] = acc * scale;
  }
}

// Sums x (shape xs) into out (shape keep: xs with reduced dims set to 1).
template <typename T>
void reduce_sum(const KernelCall& c, const T* x, const Shape& xs, const Shape& keep, T* out, T scale) {
  cudaStream_t s = stream(c);
  std::vector<int64_t> size;
  std::vector<bool> red;
  for (int d = 0; d < xs.ndim(); ++d) {
    if (xs[d] == 1) continue;
    const bool r = keep[d] == 1;
    if (!size.empty() && red.back() == r) {
      size.back() *= xs[d];
    } else {
      size.push_back(xs[d]);
      red.push_back(r);
    }
  }
  const int64_t n = xs.numel(), m = keep.numel();
  if (m == 0) return;
  if (n == 0) {
    LETHE_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(m) * sizeof(T), s));
    return;
  }
  bool any = false;
  for (bool b : red) any = any || b;
  if (!any) {
    if (scale == T(1)) {
      LETHE_CUDA_CHECK(cudaMemcpyAsync(out, x, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice, s));
    } else {
      scaled_copy<T><<<grid_for(n), kBlock, 0, s>>>(x, n, out, scale);
      LETHE_CUDA_LAUNCH_CHECK();
    }
    return;
  }
  if (size.size() == 1) {
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    if (chunks <= 1) {
      final_sum<T><<<1, kBlock, 0, s>>>(x, n, out, scale);
    } else {
      T* partial = static_cast<T*>(c.workspace);
      LETHE_CHECK(partial && c.workspace_bytes >= static_cast<size_t>(chunks) * sizeof(T),
                  "sum: the CUDA kernel needs ", chunks, " elements of workspace");
      chunk_sums<T><<<static_cast<unsigned>(chunks), kBlock, 0, s>>>(x, n, partial);
      LETHE_CUDA_LAUNCH_CHECK();
      final_sum<T><<<1, kBlock, 0, s>>>(partial, chunks, out, scale);
    }
    LETHE_CUDA_LAUNCH_CHECK();
    return;
  }
  if (size.size() == 2 && red[1]) {
    const int64_t K = size[0];
    row_sums<T><<<static_cast<unsigned>(std::min<int64_t>(K, 65535 * 8)), kBlock, 0, s>>>(x, K, size[1], out, scale);
    LETHE_CUDA_LAUNCH_CHECK();
    return;
  }
  if ((size.size() == 2 && red[0]) || (size.size() == 3 && red[1])) {
    const int64_t K0 = size.size() == 3 ? size[0] : 1;
    const int64_t R = size.size() == 3 ? size[1] : size[0];
    const int64_t K1 = size.back();
    const int64_t cap = static_cast<int64_t>(c.workspace_bytes / sizeof(T));
    column_reduce<T, T>(c, ColumnTerm<T>{x, R, K1}, K0, R, K1, static_cast<T*>(c.workspace), cap,
                        out, scale);
    return;
  }
  const std::vector<int64_t> xstr = xs.strides();
  std::vector<int64_t> kd, ks, rd, rs;
  for (int d = 0; d < xs.ndim(); ++d) {
    if (keep[d] == 1 && xs[d] != 1) {
      rd.push_back(xs[d]);
      rs.push_back(xstr[static_cast<size_t>(d)]);
    } else {
      kd.push_back(xs[d]);
      ks.push_back(xstr[static_cast<size_t>(d)]);
    }
  }
  int64_t rcount = 1;
  for (int64_t v : rd) rcount *= v;
  Strided<1> ox = make_strided<1>(Shape(kd), {ks});
  Strided<1> rx = make_strided<1>(Shape(rd), {rs});
  general_sums<T><<<grid_for(m), kBlock, 0, s>>>(x, m, ox, rx, rcount, out, scale);
  LETHE_CUDA_LAUNCH_CHECK();
}

Shape keep_of(const Shape& xs, const std::vector<int>& axes) {
  std::vector<int64_t> d = xs.dims();
  for (int a : axes) d[static_cast<size_t>(a)] = 1;
  return Shape(std::move(d));
}

}  // namespace

void sum_mean(const Op& op, const KernelCall& c) {
  const Shape& xs = c.in_shape(0);
  const Shape keep = keep_of(xs, op.attrs_as<ReduceAttrs>().axes);
  const bool mean = op.kind() == OpKind::mean;
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    T scale = T(1);
    if constexpr (std::is_floating_point_v<T>)
      if (mean) scale = T(1) / static_cast<T>(xs.numel() / std::max<int64_t>(keep.numel(), 1));
    reduce_sum<T>(c, c.in<T>(0), xs, keep, c.out<T>(), scale);
  });
}

void sum_to(const Op&, const KernelCall& c) {
  const Shape& xs = c.in_shape(0);
  const Shape& os = c.out_shape();
  std::vector<int64_t> d(static_cast<size_t>(xs.ndim() - os.ndim()), 1);
  d.insert(d.end(), os.dims().begin(), os.dims().end());
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    reduce_sum<T>(c, c.in<T>(0), xs, Shape(d), c.out<T>(), T(1));
  });
}

// ------------------------------------------------------------------------------- max / argmax

namespace {

struct AxisView {
  int64_t outer = 1, r = 1, inner = 1;
};
AxisView axis_view(const Shape& s, int axis) {
  AxisView v;
  for (int d = 0; d < axis; ++d) v.outer *= s[d];
  v.r = s[axis];
  for (int d = axis + 1; d < s.ndim(); ++d) v.inner *= s[d];
  return v;
}

template <typename T>
__device__ bool better(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (isnan(best)) return false;
    if (isnan(v)) return true;
  }
  return v > best;
}

template <typename T>
__global__ void max_kernel(const T* x, AxisView v, T* vals, int64_t* idx) {
  LETHE_GRID_LOOP(t, v.outer * v.inner) {
    const int64_t o = t / v.inner, i = t % v.inner;
    const T* src = x + o * v.r * v.inner + i;
    T best = src[0];
    int64_t bi = 0;
    for (int64_t r = 1; r < v.r; ++r) {
      const T cand = src[r * v.inner];
      if (better(cand, best)) {
        best = cand;
        bi = r;
      }
    }
    if (vals) vals[t] = best;
    if (idx) idx[t] = bi;
  }
}

}  // namespace

void max_argmax(const Op& op, const KernelCall& c) {
  const AxisView v = axis_view(c.in_shape(0), op.attrs_as<AxisAttrs>().axis);
  const bool arg = op.kind() == OpKind::argmax;
  if (v.outer * v.inner == 0) return;
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    max_kernel<T><<<grid_for(v.outer * v.inner), kBlock, 0, stream(c)>>>(
        c.in<T>(0), v, arg ? nullptr : c.out<T>(), arg ? c.out<int64_t>() : nullptr);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

namespace {
template <typename T>
__global__ void max_backward_kernel(const T* g, const int64_t* idx, AxisView v, T* out) {
  LETHE_GRID_LOOP(e, v.outer * v.r * v.inner) {
    const int64_t i = e % v.inner, r = (e / v.inner) % v.r, o = e / (v.inner * v.r);
    const int64_t k = o * v.inner + i;
    out[e] = idx[k] == r ? g[k] : T(0);
  }
}

}  // namespace

void max_backward(const Op& op, const KernelCall& c) {
  const AxisView v = axis_view(c.out_shape(), op.attrs_as<AxisAttrs>().axis);
  const int64_t n = c.out_meta->numel();
  if (n == 0) return;
  dispatch_f(c.in_meta[0]->dtype, "max_backward", [&](auto tag) {
    using T = decltype(tag);
    max_backward_kernel<T><<<grid_for(n), kBlock, 0, stream(c)>>>(c.in<T>(0), c.in<int64_t>(1), v, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// ------------------------------------------------------------------------------- softmax

namespace {

// One block per (outer, inner) line of R elements with stride `inner`.
template <typename T>
__global__ void softmax_kernel(const T* x, T* y, AxisView v, bool log_) {
  __shared__ T sh[kBlock];
  for (int64_t t = blockIdx.x; t < v.outer * v.inner; t += gridDim.x) {
    const int64_t o = t / v.inner, i = t % v.inner;
    const T* xr = x + o * v.r * v.inner + i;
    T* yr = y + o * v.r * v.inner + i;
    T m = -INFINITY;
    for (int64_t k = threadIdx.x; k < v.r; k += kBlock) m = fmax(m, xr[k * v.inner]);
    m = block_max(m, sh);
    if (isinf(m) && m < 0) m = T(0);
    T s = T(0);
    for (int64_t k = threadIdx.x; k < v.r; k += kBlock) s += exp(xr[k * v.inner] - m);
    s = block_sum(s, sh);
    if (log_) {
      const T lse = m + log(s);
      for (int64_t k = threadIdx.x; k < v.r; k += kBlock) yr[k * v.inner] = xr[k * v.inner] - lse;
    } else {
      const T inv = T(1) / s;
      for (int64_t k = threadIdx.x; k < v.r; k += kBlock) yr[k * v.inner] = exp(xr[k * v.inner] - m) * inv;
    }
  }
}

template <typename T>
__global__ void softmax_backward_kernel(const T* g, const T* y, T* dx, AxisView v, bool log_) {
  __shared__ T sh[kBlock];
  for (int64_t t = blockIdx.x; t < v.outer * v.inner; t += gridDim.x) {
    const int64_t base = (t / v.inner) * v.r * v.inner + t % v.inner;
    T s = T(0);
    for (int64_t k = threadIdx.x; k < v.r; k += kBlock) {
      const int64_t j = base + k * v.inner;
      s += log_ ? g[j] : g[j] * y[j];
    }
    s = block_sum(s, sh);
    for (int64_t k = threadIdx.x; k < v.r; k += kBlock) {
      const int64_t j = base + k * v.inner;
      dx[j] = log_ ? g[j] - exp(y[j]) * s : y[j] * (g[j] - s);
    }
  }
}

unsigned rows_grid(int64_t rows) { return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(rows, 65535 * 8))); }

}  // namespace

void softmax(const Op& op, const KernelCall& c) {
  const AxisView v = axis_view(c.in_shape(0), op.attrs_as<SoftmaxAttrs>().axis);
  if (c.out_meta->numel() == 0) return;
  const bool log_ = op.kind() == OpKind::log_softmax;
  dispatch_f(c.in_meta[0]->dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<rows_grid(v.outer * v.inner), kBlock, 0, stream(c)>>>(c.in<T>(0), c.out<T>(), v, log_);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

void softmax_backward(const Op& op, const KernelCall& c) {
  const AxisView v = axis_view(c.in_shape(0), op.attrs_as<SoftmaxAttrs>().axis);
  if (c.out_meta->numel() == 0) return;
  const bool log_ = op.kind() == OpKind::log_softmax_backward;
  dispatch_f(c.in_meta[0]->dtype, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<T><<<rows_grid(v.outer * v.inner), kBlock, 0, stream(c)>>>(
        c.in<T>(0), c.in<T>(1), c.out<T>(), v, log_);
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// ------------------------------------------------------------------------------- cross entropy

namespace {

enum Red : int { kNone, kSum, kMean };
int reduction_of(const Op& op) {
  switch (op.attrs_as<CrossEntropyAttrs>().reduction) {
    case Reduction::none: return kNone;
    case Reduction::sum: return kSum;
    case Reduction::mean: return kMean;
  }
  return kMean;
}

// log-sum-exp of the C classes of position (nn, ss) by the block.
template <typename T>
__device__ T block_lse(const T* xi, int64_t C, int64_t S, T* sh) {
  T m = -INFINITY;
  for (int64_t k = threadIdx.x; k < C; k += kBlock) m = fmax(m, xi[k * S]);
  m = block_max(m, sh);
  if (isinf(m)) return m;
  T s = T(0);
  for (int64_t k = threadIdx.x; k < C; k += kBlock) s += exp(xi[k * S] - m);
  s = block_sum(s, sh);
  return m + log(s);
}

// Loss per position; a target outside [0, C) (and not ignore_index) gives NaN and records its
// position in `bad` (the host throws as the CPU kernel does, see index_check.h).
template <typename T>
__global__ void ce_losses(const T* x, const int64_t* t, int64_t P, int64_t C, int64_t S, int64_t ignore, T* losses,
                          unsigned long long* bad) {
  __shared__ T sh[kBlock];
  for (int64_t i = blockIdx.x; i < P; i += gridDim.x) {
    const int64_t nn = i / S, ss = i % S;
    const int64_t ti = t[i];
    if (ti == ignore) {
      if (threadIdx.x == 0) losses[i] = T(0);
      continue;
    }
    const T* xi = x + nn * C * S + ss;
    const T lse = block_lse(xi, C, S, sh);
    if (threadIdx.x == 0) {
      const bool ok = ti >= 0 && ti < C;
      losses[i] = ok ? lse - xi[ti * S] : T(NAN);
      if (!ok) atomicMin(bad, static_cast<unsigned long long>(i));
    }
  }
}

// out = sum(losses) (mean: / count of non-ignored targets) in one block, fixed order.
template <typename T>
__global__ void ce_reduce(const T* losses, const int64_t* t, int64_t P, int64_t ignore, bool mean, T* out) {
  __shared__ T sh[kBlock];
  T acc = T(0), cnt = T(0);
  for (int64_t i = threadIdx.x; i < P; i += kBlock) {
    acc += losses[i];
    cnt += t[i] != ignore ? T(1) : T(0);
  }
  acc = block_sum(acc, sh);
  cnt = block_sum(cnt, sh);
  if (threadIdx.x == 0) out[0] = mean ? acc / cnt : acc;
}

struct CeView {
  int64_t n = 1, c = 1, s = 1;
};
CeView ce_view(const Shape& l) {
  CeView v{l[0], l[1], 1};
  for (int d = 2; d < l.ndim(); ++d) v.s *= l[d];
  return v;
}

}  // namespace

void cross_entropy(const Op& op, const KernelCall& c) {
  const CeView v = ce_view(c.in_shape(0));
  const int red = reduction_of(op);
  const int64_t ignore = op.attrs_as<CrossEntropyAttrs>().ignore_index, P = v.n * v.s;
  dispatch_f(c.in_meta[0]->dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    T* losses = red == kNone ? c.out<T>() : static_cast<T*>(c.workspace);
    if (P > 0) {
      LETHE_ASSERT(losses != nullptr);
      arm_bad_index(c);
      ce_losses<T><<<rows_grid(P), kBlock, 0, stream(c)>>>(c.in<T>(0), c.in<int64_t>(1), P, v.c, v.s, ignore, losses,
                                                        bad_index_slot(c));
      LETHE_CUDA_LAUNCH_CHECK();
      // The message of the CPU kernel (ops/loss.cpp), for the first bad position. Only the forward
      // checks: cross_entropy_backward reads the same targets after this node has run.
      const int64_t bad = read_bad_index(c);
      if (bad >= 0) {
        const int64_t tv = read_index_at(c, c.in<int64_t>(1) + bad);
        throw Error(lethe::detail::concat("cross_entropy: target ", tv, " at position ", bad,
                                          " is out of range for ", v.c, " classes (expected 0 <= target < ", v.c,
                                          " or ignore_index ", ignore, ")"));
      }
    }
    if (red == kNone) return;
    ce_reduce<T><<<1, kBlock, 0, stream(c)>>>(losses, c.in<int64_t>(1), P, ignore, red == kMean, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

namespace {
template <typename T>
__global__ void count_targets(const int64_t* t, int64_t P, int64_t ignore, T* out) {
  __shared__ T sh[kBlock];
  T cnt = T(0);
  for (int64_t i = threadIdx.x; i < P; i += kBlock) cnt += t[i] != ignore ? T(1) : T(0);
  cnt = block_sum(cnt, sh);
  if (threadIdx.x == 0) out[0] = cnt;
}

template <typename T>
__global__ void ce_backward(const T* g, const T* x, const int64_t* t, int64_t P, int64_t C, int64_t S,
                            int64_t ignore, int red, const T* count, T* dx) {
  __shared__ T sh[kBlock];
  for (int64_t i = blockIdx.x; i < P; i += gridDim.x) {
    const int64_t nn = i / S, ss = i % S;
    const T* xi = x + nn * C * S + ss;
    T* di = dx + nn * C * S + ss;
    const int64_t ti = t[i];
    if (ti == ignore) {
      for (int64_t k = threadIdx.x; k < C; k += kBlock) di[k * S] = T(0);
      continue;
    }
    const T scale = red == kNone ? g[i] : red == kSum ? g[0] : g[0] / count[0];
    const T lse = block_lse(xi, C, S, sh);
    for (int64_t k = threadIdx.x; k < C; k += kBlock)
      di[k * S] = scale * exp(xi[k * S] - lse) - (k == ti ? scale : T(0));
  }
}

}  // namespace

void cross_entropy_backward(const Op& op, const KernelCall& c) {
  const CeView v = ce_view(c.in_shape(1));
  const int red = reduction_of(op);
  const int64_t ignore = op.attrs_as<CrossEntropyAttrs>().ignore_index, P = v.n * v.s;
  if (P == 0) return;
  dispatch_f(c.in_meta[1]->dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    T* count = static_cast<T*>(context(c).scratch);
    if (red == kMean) {
      count_targets<T><<<1, kBlock, 0, stream(c)>>>(c.in<int64_t>(2), P, ignore, count);
      LETHE_CUDA_LAUNCH_CHECK();
    }
    ce_backward<T><<<rows_grid(P), kBlock, 0, stream(c)>>>(c.in<T>(0), c.in<T>(1), c.in<int64_t>(2), P, v.c,
                                                        v.s, ignore, red, count, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

// ------------------------------------------------------------------------------- layer_norm

namespace {

// Mean and 1/sqrt(var + eps) of row r (two passes, in double as the CPU kernel).
template <typename T>
__device__ void ln_stats(const T* xr, int64_t d, double eps, double* sh, double* mean, double* rstd) {
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
__global__ void layer_norm_kernel(const T* x, const T* w, const T* b, T* y, int64_t rows, int64_t d, double eps) {
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
__global__ void layer_norm_bw_input(const T* x, const T* g, const T* w, T* dx, int64_t rows, int64_t d, double eps) {
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
        c.in<T>(0), w ? c.in<T>(1) : nullptr, b ? c.in<T>(w ? 2 : 1) : nullptr, c.out<T>(), l.rows, l.d, l.eps);
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
    layer_norm_row_stats<T><<<rows_grid(l.rows), kBlock, 0, stream(c)>>>(c.in<T>(0), l.rows, l.d, l.eps, st);
    LETHE_CUDA_LAUNCH_CHECK();
    const int64_t cap = static_cast<int64_t>(c.workspace_bytes / sizeof(double) - stats);
    column_reduce<double, T>(c, LnWeightTerm<T>{c.in<T>(0), c.in<T>(1), st, l.d}, 1, l.rows, l.d,
                             st + stats, cap, c.out<T>(), 1.0);
  });
}

}  // namespace lethe::cuda::detail
