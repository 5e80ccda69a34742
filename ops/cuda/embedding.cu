// CUDA kernels of ops/embedding.cpp: embedding (a gather; an out-of-range index throws the CPU
// kernel's error) and a deterministic backward without float atomics.
#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {

namespace {

// Out-of-range indices read row 0 and record their position in `bad`; the host then throws as the
// CPU kernel does (index_check.h).
template <typename T>
__global__ void embedding_kernel(const T* w, const int64_t* idx, T* out, int64_t n, int64_t rows,
                                 int64_t dim, unsigned long long* bad) {
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

}  // namespace

void embedding(const Op&, const KernelCall& c) {
  const int64_t rows = c.in_shape(0)[0], dim = c.in_shape(0)[1], n = c.in_shape(1).numel();
  if (n * dim == 0) return;
  arm_bad_index(c);
  dispatch_f(c.out_meta->dtype, "embedding", [&](auto tag) {
    using T = decltype(tag);
    embedding_kernel<T><<<grid_for(n * dim), 256, 0, stream(c)>>>(
        c.in<T>(0), c.in<int64_t>(1), c.out<T>(), n, rows, dim, bad_index_slot(c));
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

// Backward as the CPU kernel: positions grouped by row, each group in increasing position, then
// every row of dW adds its positions' gradients in that order. The grouping is a stable LSD radix
// sort of the positions by row (8-bit digits, one pass per byte of `rows`), which takes
// O(n) per pass whatever the distribution of the indices (one index on most positions included).
// Each pass is a stable counting sort over tiles of kSortTile positions: digit counts per tile,
// one scan in (digit, tile) order, then each tile places its positions in tile order, a position's
// rank among its tile's equal digits coming from warp ballots and per-warp counts. Integer atomics
// only count (shared histograms and the per-row counts): no slot depends on timing.
// Out-of-range indices (the forward throws on them) sort last under the key `rows` and are skipped.
namespace {

constexpr int kRadix = 256;  // digit values; also the block size of the sort kernels
constexpr int kRadixBits = 8;
constexpr int64_t kSortTile = 2048;  // positions of a block of the sort (kRadix threads x 8 rounds)
static_assert(kSortTile % kRadix == 0);

__device__ unsigned long long sort_key(const int64_t* idx, int64_t v, int64_t rows) {
  const int64_t r = idx[v];
  return static_cast<unsigned long long>(r >= 0 && r < rows ? r : rows);
}

__global__ void count_rows(const int64_t* idx, int64_t n, int64_t rows, unsigned long long* cnt) {
  LETHE_GRID_LOOP(i, n) {
    const int64_t r = idx[i];
    if (r >= 0 && r < rows) atomicAdd(&cnt[r + 1], 1ull);
  }
}
// Inclusive scan of a[0..len) in one block of 1024 threads, any length: each step covers
// 1024 x kScanItems elements, a thread scanning its kScanItems consecutive ones before the block
// scans the threads' totals (fewer steps for the long arrays of digit counts).
constexpr int kScanItems = 8;
__global__ void inclusive_scan(unsigned long long* a, int64_t len) {
  __shared__ unsigned long long sh[1024];
  unsigned long long carry = 0;
  for (int64_t base = 0; base < len; base += 1024 * kScanItems) {
    const int64_t first = base + static_cast<int64_t>(threadIdx.x) * kScanItems;
    unsigned long long v[kScanItems], run = 0;
#pragma unroll
    for (int k = 0; k < kScanItems; ++k) {
      run += first + k < len ? a[first + k] : 0;
      v[k] = run;
    }
    sh[threadIdx.x] = run;
    __syncthreads();
    for (int w = 1; w < 1024; w <<= 1) {
      const unsigned long long add = threadIdx.x >= w ? sh[threadIdx.x - w] : 0;
      __syncthreads();
      sh[threadIdx.x] += add;
      __syncthreads();
    }
    const unsigned long long before = carry + (threadIdx.x > 0 ? sh[threadIdx.x - 1] : 0);
#pragma unroll
    for (int k = 0; k < kScanItems; ++k)
      if (first + k < len) a[first + k] = before + v[k];
    carry += sh[1023];
    __syncthreads();
  }
}

// counts[1 + d * tiles + t] = positions of tile t (of the order `src`; null: 0, 1, 2, ...) whose
// key has digit d at `shift`. Block: kRadix threads.
__global__ void digit_counts(const int64_t* idx, int64_t n, int64_t rows, const int64_t* src,
                             int shift, int64_t tiles, unsigned long long* counts) {
  __shared__ unsigned int hist[kRadix];
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    hist[threadIdx.x] = 0;
    __syncthreads();
    const int64_t end = min(n, (t + 1) * kSortTile);
    for (int64_t i = t * kSortTile + threadIdx.x; i < end; i += kRadix) {
      const int64_t v = src ? src[i] : i;
      atomicAdd(&hist[(sort_key(idx, v, rows) >> shift) & (kRadix - 1)], 1u);
    }
    __syncthreads();
    counts[1 + threadIdx.x * tiles + t] = hist[threadIdx.x];
    __syncthreads();
  }
}

// The lanes of the warp whose `key` (9 bits) equals this lane's; every lane must call it.
__device__ unsigned match_key(unsigned key) {
  unsigned peers = 0xffffffffu;
  for (int b = 0; b <= kRadixBits; ++b) {
    const bool bit = (key >> b) & 1u;
    const unsigned ones = __ballot_sync(0xffffffffu, bit);
    peers &= bit ? ones : ~ones;
  }
  return peers;
}

// dst[offs[d * tiles + t] + rank] = v for the positions v of tile t in order, rank counting the
// earlier positions of the tile with the same digit d: in rounds of kRadix positions, earlier
// rounds (next[d]), earlier warps of the round (wcount), earlier lanes of the warp (ballots).
__global__ void digit_scatter(const int64_t* idx, int64_t n, int64_t rows, const int64_t* src,
                              int shift, int64_t tiles, const unsigned long long* offs,
                              int64_t* dst) {
  constexpr int kWarps = kRadix / 32;
  __shared__ unsigned long long next[kRadix];
  __shared__ unsigned int wcount[kWarps][kRadix];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    next[threadIdx.x] = offs[threadIdx.x * tiles + t];
    for (int w = 0; w < kWarps; ++w) wcount[w][threadIdx.x] = 0;
    __syncthreads();
    const int64_t end = min(n, (t + 1) * kSortTile);
    for (int64_t base = t * kSortTile; base < end; base += kRadix) {
      const int64_t i = base + threadIdx.x;
      const bool live = i < end;
      int64_t v = 0;
      unsigned d = kRadix;  // no digit: a lane past the end matches no live lane
      if (live) {
        v = src ? src[i] : i;
        d = static_cast<unsigned>((sort_key(idx, v, rows) >> shift) & (kRadix - 1));
      }
      const unsigned peers = match_key(d);
      const unsigned before = peers & ((1u << lane) - 1u);
      if (live && before == 0) wcount[warp][d] = static_cast<unsigned>(__popc(peers));
      __syncthreads();
      if (live) {
        unsigned long long slot = next[d] + static_cast<unsigned long long>(__popc(before));
        for (unsigned w = 0; w < warp; ++w) slot += wcount[w][d];
        dst[slot] = v;
      }
      __syncthreads();
      unsigned long long add = 0;
      for (int w = 0; w < kWarps; ++w) {
        add += wcount[w][threadIdx.x];
        wcount[w][threadIdx.x] = 0;
      }
      next[threadIdx.x] += add;
      __syncthreads();
    }
  }
}

template <typename T>
__global__ void group_sums(const T* g, const unsigned long long* start, const int64_t* order,
                           int64_t rows, int64_t dim, int64_t padding_idx, T* dw) {
  LETHE_GRID_LOOP(e, rows * dim) {
    const int64_t r = e / dim, j = e % dim;
    if (r == padding_idx) {  // no gradient, as PyTorch
      dw[e] = T(0);
      continue;
    }
    const unsigned long long end = start[r + 1];
    unsigned long long p = start[r];
    T acc = T(0);
    // A frequent index (padding) makes a long serial sum: loads go ahead 8 at a time, the adds
    // stay in position order.
    for (; p + 8 <= end; p += 8) {
      T v[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = g[order[p + k] * dim + j];
#pragma unroll
      for (int k = 0; k < 8; ++k) acc += v[k];
    }
    for (; p < end; ++p) acc += g[order[p] * dim + j];
    dw[e] = acc;
  }
}

// The workspace, in 8-byte words: row starts (rows + 1), the order (n), the sort's other buffer
// (n), then its digit counts (1 + kRadix x tiles).
size_t sort_words(int64_t rows, int64_t n) {
  const int64_t tiles = (n + kSortTile - 1) / kSortTile;
  return static_cast<size_t>(rows + 1 + 2 * n + 1 + kRadix * tiles);
}

}  // namespace

void embedding_backward(const Op& op, const KernelCall& c) {
  const int64_t rows = op.attrs_as<EmbeddingAttrs>().num_embeddings;
  const int64_t n = c.in_shape(1).numel(), dim = c.out_shape()[1];
  if (rows * dim == 0) return;
  cudaStream_t s = stream(c);
  const int64_t* idx = c.in<int64_t>(1);
  const int64_t tiles = (n + kSortTile - 1) / kSortTile;
  const size_t words = sort_words(rows, n);
  LETHE_CHECK(c.workspace != nullptr && c.workspace_bytes >= words * 8,
              "embedding_backward: the CUDA kernel needs ", words * 8, " bytes of workspace, got ",
              c.workspace_bytes);
  auto* start = static_cast<unsigned long long*>(c.workspace);
  auto* order = reinterpret_cast<int64_t*>(start + rows + 1);
  int64_t* other = order + n;
  auto* counts = reinterpret_cast<unsigned long long*>(other + n);
  LETHE_CUDA_CHECK(cudaMemsetAsync(start, 0, static_cast<size_t>(rows + 1) * 8, s));
  if (n > 0) {
    count_rows<<<grid_for(n), 256, 0, s>>>(idx, n, rows, start);
    LETHE_CUDA_LAUNCH_CHECK();
  }
  inclusive_scan<<<1, 1024, 0, s>>>(start, rows + 1);
  LETHE_CUDA_LAUNCH_CHECK();
  if (n > 0) {
    int bits = 0;  // keys lie in [0, rows]
    for (auto k = static_cast<unsigned long long>(rows); k; k >>= 1) ++bits;
    const int passes = std::max(1, (bits + kRadixBits - 1) / kRadixBits);
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(tiles, 65535LL * 16));
    const int64_t len = 1 + kRadix * tiles;
    LETHE_CUDA_CHECK(cudaMemsetAsync(counts, 0, 8, s));  // counts[0] = 0: the scan makes offsets
    const int64_t* src = nullptr;                        // pass 0 reads the positions in order
    for (int p = 0; p < passes; ++p) {
      int64_t* dst = (passes - 1 - p) % 2 == 0 ? order : other;  // the last pass writes `order`
      digit_counts<<<grid, kRadix, 0, s>>>(idx, n, rows, src, p * kRadixBits, tiles, counts);
      LETHE_CUDA_LAUNCH_CHECK();
      inclusive_scan<<<1, 1024, 0, s>>>(counts, len);
      LETHE_CUDA_LAUNCH_CHECK();
      digit_scatter<<<grid, kRadix, 0, s>>>(idx, n, rows, src, p * kRadixBits, tiles, counts, dst);
      LETHE_CUDA_LAUNCH_CHECK();
      src = dst;
    }
  }
  dispatch_f(c.out_meta->dtype, "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    group_sums<T><<<grid_for(rows * dim), 256, 0, s>>>(
        c.in<T>(0), start, order, rows, dim, op.attrs_as<EmbeddingAttrs>().padding_idx, c.out<T>());
    LETHE_CUDA_LAUNCH_CHECK();
  });
}

size_t embedding_backward_workspace(const Op& op, const std::vector<TensorMeta>& in,
                                    const TensorMeta&) {
  return sort_words(op.attrs_as<EmbeddingAttrs>().num_embeddings, in[1].numel()) * 8;
}

}  // namespace lethe::cuda::detail
