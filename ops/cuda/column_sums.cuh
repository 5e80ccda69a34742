// Internal (lethe_cuda .cu files): deterministic column sums over a [K0, R, K1] space, shared by
// the reductions (reduce.cu) and layer_norm's weight gradient (norm.cu).
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {

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
constexpr int kColFoldThreads = 256;  // threads of a block adding the chunks' partial sums

// Partial sums that column_plan may ask for, as a bound on the n = K0 x R x K1 summed terms:
// with chunks > 1, chunks <= ceil(R / kColMinRows) < 2R / kColMinRows gives < 2n / 64, and
// chunks <= ceil(kColBlocks / tiles) with tiles < kColBlocks gives < 32 x 2 x kColBlocks. The ops
// report it for CUDA inputs (ops/reduce.cpp, ops/norm.cpp spell the same formula).
inline int64_t column_partials_bound(int64_t n) {
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
inline ColumnPlan column_plan(int64_t K0, int64_t R, int64_t K1, int64_t cap) {
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
    fold_chunks<Acc, T><<<grid_for(K0 * K1), kColFoldThreads, 0, stream(c)>>>(partial, K0 * K1,
                                                                              p.chunks, out, scale);
    LETHE_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace lethe::cuda::detail
