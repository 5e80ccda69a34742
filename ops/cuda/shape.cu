// CUDA kernels of data movement: reshape (a copy), permute, broadcast_to, slice (+ backward), concat,
// and embedding (+ a deterministic backward without float atomics).
#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {
namespace {

// dst[off0(i)] = src[off1(i)] over an iteration space (element type by size only).
template <typename E>
__global__ void strided_copy(E* dst, const E* src, Strided<2> ix, int64_t n) {
  LETHE_GRID_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

void launch_copy(const KernelCall& c, void* dst, const void* src, const Shape& space,
                 const std::vector<int64_t>& dst_st, const std::vector<int64_t>& src_st, size_t elem) {
  const int64_t n = space.numel();
  if (n == 0) return;
  Strided<2> ix = make_strided<2>(space, {dst_st, src_st});
  if (elem == 4)
    strided_copy<uint32_t><<<grid_for(n), 256, 0, stream(c)>>>(static_cast<uint32_t*>(dst),
                                                               static_cast<const uint32_t*>(src), ix, n);
  else
    strided_copy<uint64_t><<<grid_for(n), 256, 0, stream(c)>>>(static_cast<uint64_t*>(dst),
                                                               static_cast<const uint64_t*>(src), ix, n);
  LETHE_CUDA_LAUNCH_CHECK();
}

size_t elem_of(const KernelCall& c) { return dtype_size(c.out_meta->dtype); }

void reshape(const Op&, const KernelCall& c) {
  const size_t b = c.out_meta->bytes();
  if (b && c.output != c.inputs[0])
    LETHE_CUDA_CHECK(cudaMemcpyAsync(c.output, c.inputs[0], b, cudaMemcpyDeviceToDevice, stream(c)));
}

void permute(const Op& op, const KernelCall& c) {
  const std::vector<int64_t> p = attr_ints(op, "dims");
  const std::vector<int64_t> xstr = c.in_shape(0).strides();
  std::vector<int64_t> src;
  for (int64_t a : p) src.push_back(xstr[static_cast<size_t>(a)]);
  launch_copy(c, c.output, c.inputs[0], c.out_shape(), c.out_shape().strides(), src, elem_of(c));
}

void broadcast_to(const Op&, const KernelCall& c) {
  launch_copy(c, c.output, c.inputs[0], c.out_shape(), c.out_shape().strides(),
              bcast_strides(c.in_shape(0), c.out_shape()), elem_of(c));
}

// The slice of `full` (shape fs) along axis with start/step, as strides over the slice's shape.
std::vector<int64_t> slice_strides(const Shape& fs, int axis, int64_t step) {
  std::vector<int64_t> st = fs.strides();
  st[static_cast<size_t>(axis)] *= step;
  return st;
}

void slice(const Op& op, const KernelCall& c) {
  const int axis = static_cast<int>(attr_int(op, "axis"));
  const int64_t start = attr_int(op, "start"), step = attr_int(op, "step");
  const Shape& xs = c.in_shape(0);
  const size_t e = elem_of(c);
  const char* src = static_cast<const char*>(c.inputs[0]) + static_cast<size_t>(start * xs.strides()[static_cast<size_t>(axis)]) * e;
  launch_copy(c, c.output, src, c.out_shape(), c.out_shape().strides(), slice_strides(xs, axis, step), e);
}

void slice_backward(const Op& op, const KernelCall& c) {
  const int axis = static_cast<int>(attr_int(op, "axis"));
  const int64_t start = attr_int(op, "start"), step = attr_int(op, "step");
  const Shape& os = c.out_shape();
  const size_t e = elem_of(c);
  if (c.out_meta->bytes()) LETHE_CUDA_CHECK(cudaMemsetAsync(c.output, 0, c.out_meta->bytes(), stream(c)));
  char* dst = static_cast<char*>(c.output) + static_cast<size_t>(start * os.strides()[static_cast<size_t>(axis)]) * e;
  launch_copy(c, dst, c.inputs[0], c.in_shape(0), slice_strides(os, axis, step), c.in_shape(0).strides(), e);
}

void concat(const Op& op, const KernelCall& c) {
  const int axis = static_cast<int>(attr_int(op, "axis"));
  const Shape& os = c.out_shape();
  const size_t e = elem_of(c);
  const std::vector<int64_t> ost = os.strides();
  int64_t off = 0;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    char* dst = static_cast<char*>(c.output) + static_cast<size_t>(off * ost[static_cast<size_t>(axis)]) * e;
    launch_copy(c, dst, c.inputs[i], c.in_shape(i), ost, c.in_shape(i).strides(), e);
    off += c.in_shape(i)[axis];
  }
}

// ------------------------------------------------------------------------------- embedding

// Out-of-range indices read row 0 and record their position in `bad`; the host then throws as the
// CPU kernel does (index_check.h).
template <typename T>
__global__ void embedding_kernel(const T* w, const int64_t* idx, T* out, int64_t n, int64_t rows, int64_t dim,
                                 unsigned long long* bad) {
  LETHE_GRID_LOOP(e, n * dim) {
    const int64_t i = e / dim, j = e % dim;
    int64_t r = idx[i];
    if (r < 0 || r >= rows) {
      if (j == 0) atomicMin(bad, static_cast<unsigned long long>(i));
      r = 0;
    }
    out[e] = w[r * dim + j];
  }
}

void embedding(const Op&, const KernelCall& c) {
  const int64_t rows = c.in_shape(0)[0], dim = c.in_shape(0)[1], n = c.in_shape(1).numel();
  if (n * dim == 0) return;
  arm_bad_index(c);
  dispatch_f(c.out_meta->dtype, "embedding", [&](auto tag) {
    using T = decltype(tag);
    embedding_kernel<T><<<grid_for(n * dim), 256, 0, stream(c)>>>(c.in<T>(0), c.in<int64_t>(1), c.out<T>(), n, rows, dim,
                                                                 bad_index_slot(c));
    LETHE_CUDA_LAUNCH_CHECK();
  });
  // The message of the CPU kernel (ops/embedding.cpp). Only the forward checks: embedding_backward
  // reads the same indices after this node has run (and skips out-of-range ones).
  const int64_t bad = read_bad_index(c);
  if (bad >= 0) {
    const int64_t v = read_index_at(c, c.in<int64_t>(1) + bad);
    throw Error(lethe::detail::concat("embedding: index ", v, " (at position ", bad,
                                      ") is out of range for a table of ", rows, " rows"));
  }
}

// Backward as the CPU kernel: positions grouped by row (a counting sort), each group ordered by
// position, then every row of dW sums its positions' gradients in that order. Integer atomics
// only (counts and slots: their results do not depend on timing once each group is re-sorted).
__global__ void count_rows(const int64_t* idx, int64_t n, int64_t rows, unsigned long long* cnt) {
  LETHE_GRID_LOOP(i, n) {
    const int64_t r = idx[i];
    if (r >= 0 && r < rows) atomicAdd(&cnt[r + 1], 1ull);
  }
}
// Inclusive scan of cnt[0..rows] in one block (chunked: rows up to millions are fine).
__global__ void scan_rows(unsigned long long* cnt, int64_t len) {
  __shared__ unsigned long long sh[1024];
  unsigned long long carry = 0;
  for (int64_t base = 0; base < len; base += 1024) {
    const int64_t i = base + threadIdx.x;
    unsigned long long v = i < len ? cnt[i] : 0;
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int w = 1; w < 1024; w <<= 1) {
      unsigned long long add = threadIdx.x >= w ? sh[threadIdx.x - w] : 0;
      __syncthreads();
      sh[threadIdx.x] += add;
      __syncthreads();
    }
    if (i < len) cnt[i] = sh[threadIdx.x] + carry;
    carry += sh[1023];
    __syncthreads();
  }
}
__global__ void place_rows(const int64_t* idx, int64_t n, int64_t rows, const unsigned long long* start,
                           unsigned long long* fill, int64_t* order) {
  LETHE_GRID_LOOP(i, n) {
    const int64_t r = idx[i];
    if (r >= 0 && r < rows) order[start[r] + atomicAdd(&fill[r], 1ull)] = i;
  }
}
// Insertion sort of each row's group (groups are short for real vocabularies).
__global__ void sort_groups(const unsigned long long* start, int64_t rows, int64_t* order) {
  LETHE_GRID_LOOP(r, rows) {
    const int64_t b = static_cast<int64_t>(start[r]), e = static_cast<int64_t>(start[r + 1]);
    for (int64_t i = b + 1; i < e; ++i) {
      const int64_t v = order[i];
      int64_t j = i - 1;
      while (j >= b && order[j] > v) {
        order[j + 1] = order[j];
        --j;
      }
      order[j + 1] = v;
    }
  }
}
template <typename T>
__global__ void group_sums(const T* g, const unsigned long long* start, const int64_t* order, int64_t rows,
                           int64_t dim, T* dw) {
  LETHE_GRID_LOOP(e, rows * dim) {
    const int64_t r = e / dim, j = e % dim;
    T acc = T(0);
    for (unsigned long long p = start[r]; p < start[r + 1]; ++p) acc += g[order[p] * dim + j];
    dw[e] = acc;
  }
}

void embedding_backward(const Op& op, const KernelCall& c) {
  const int64_t rows = attr_int(op, "num");
  const int64_t n = c.in_shape(1).numel(), dim = c.out_shape()[1];
  if (rows * dim == 0) return;
  cudaStream_t s = stream(c);
  // Workspace (rows + 1 + n) x 8 bytes, as the op reports: start offsets, then the order; the fill
  // counters reuse dW's own memory (rows x 8 bytes fit when dim x elem >= 8, i.e. always but f32 dim 1).
  auto* start = static_cast<unsigned long long*>(c.workspace);
  auto* order = reinterpret_cast<int64_t*>(start + rows + 1);
  LETHE_ASSERT(start != nullptr);
  LETHE_CHECK(c.out_meta->bytes() >= static_cast<size_t>(rows) * 8, "embedding_backward on CUDA needs dim*elem >= 8");
  auto* fill = static_cast<unsigned long long*>(c.output);
  LETHE_CUDA_CHECK(cudaMemsetAsync(start, 0, static_cast<size_t>(rows + 1) * 8, s));
  LETHE_CUDA_CHECK(cudaMemsetAsync(fill, 0, static_cast<size_t>(rows) * 8, s));
  if (n > 0) {
    count_rows<<<grid_for(n), 256, 0, s>>>(c.in<int64_t>(1), n, rows, start);
    LETHE_CUDA_LAUNCH_CHECK();
  }
  scan_rows<<<1, 1024, 0, s>>>(start, rows + 1);
  LETHE_CUDA_LAUNCH_CHECK();
  if (n > 0) {
    place_rows<<<grid_for(n), 256, 0, s>>>(c.in<int64_t>(1), n, rows, start, fill, order);
    LETHE_CUDA_LAUNCH_CHECK();
    sort_groups<<<grid_for(rows), 256, 0, s>>>(start, rows, order);
    LETHE_CUDA_LAUNCH_CHECK();
  }
  dispatch_f(c.out_meta->dtype, "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    group_sums<T><<<grid_for(rows * dim), 256, 0, s>>>(c.in<T>(0), start, order, rows, dim, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace

void register_shape() {
  const DeviceKind k = DeviceKind::cuda;
  register_device_kernel(k, "reshape", reshape);
  register_device_kernel(k, "permute", permute);
  register_device_kernel(k, "broadcast_to", broadcast_to);
  register_device_kernel(k, "slice", slice);
  register_device_kernel(k, "slice_backward", slice_backward);
  register_device_kernel(k, "concat", concat);
  register_device_kernel(k, "embedding", embedding);
  register_device_kernel(k, "embedding_backward", embedding_backward);
}

}  // namespace lethe::cuda::detail
