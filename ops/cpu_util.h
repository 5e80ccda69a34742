// Internal helpers shared by the CPU kernels of ops/*.cpp: row walks of merged iteration spaces
// (ops/layout.h, shared with CUDA), deterministic sum reductions and broadcast copies.
// Not part of the public API.
//
//   auto loop = lethe::cpu::collapse(out, {broadcast_strides(a, out), broadcast_strides(b, out)});
//   // loop.sizes.back() is the contiguous inner length; loop.strides[i] the strides of operand i.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "framework/shape.h"
#include "ops/layout.h"

namespace lethe::cpu {

// Loops shorter than this run on one thread (OpenMP start-up costs more than the work).
constexpr int64_t kParallelGrain = 32768;
// Full reductions sum fixed chunks of this many elements, then the chunk sums in order: the
// result depends on the data only, never on the thread count.
constexpr int64_t kReduceChunk = 65536;

// The shape views shared with the CUDA kernels (ops/layout.h).
using layout::axis_view;
using layout::AxisView;
using layout::broadcast_strides;
using layout::collapse;
using layout::StridedLoop;

// Offsets of every operand at the start of row `row` (rows = all dims but the innermost).
inline void row_offsets(const StridedLoop& l, int64_t row, int64_t* offs) {
  const size_t k = l.strides.size();
  for (size_t i = 0; i < k; ++i) offs[i] = 0;
  for (int d = static_cast<int>(l.sizes.size()) - 2; d >= 0; --d) {
    const int64_t idx = row % l.sizes[static_cast<size_t>(d)];
    row /= l.sizes[static_cast<size_t>(d)];
    for (size_t i = 0; i < k; ++i) offs[i] += idx * l.strides[i][static_cast<size_t>(d)];
  }
}

// Sum of p[0..n) in a fixed order: 8 interleaved partial sums (vectorisable), combined pairwise.
template <typename T>
T contiguous_sum(const T* p, int64_t n) {
  T acc[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += p[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// Sum of p[0..n) in chunks of kReduceChunk, the chunk sums added in order; chunk sums run in
// parallel when `scratch` (>= reduce_scratch_elems(n) elements) is given. Same bits either way.
inline int64_t reduce_scratch_elems(int64_t n) {
  return n / kReduceChunk + 1;
}
template <typename T>
T chunked_sum(const T* p, int64_t n, T* scratch) {
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  if (chunks <= 1) return contiguous_sum(p, n);
  if (scratch) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c)
      scratch[c] =
          contiguous_sum(p + c * kReduceChunk, std::min(kReduceChunk, n - c * kReduceChunk));
  }
  T acc = T(0);
  for (int64_t c = 0; c < chunks; ++c)
    acc += scratch
               ? scratch[c]
               : contiguous_sum(p + c * kReduceChunk, std::min(kReduceChunk, n - c * kReduceChunk));
  return acc;
}

// Sums x (shape xs) into out (shape keep: xs with the reduced dims set to 1, same ndim).
// Each output element is summed in an order fixed by the shapes alone.
template <typename T>
void reduce_sum(const T* x, const Shape& xs, const Shape& keep, T* out, T* scratch) {
  // Groups of adjacent dims that are all reduced or all kept, size-1 dims dropped.
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
  if (n == 0) {
    std::fill(out, out + m, T(0));
    return;
  }
  // Nothing reduced: a copy.
  if (std::none_of(red.begin(), red.end(), [](bool b) { return b; })) {
    std::memcpy(out, x, static_cast<size_t>(n) * sizeof(T));
    return;
  }
  // [R]: everything.
  if (size.size() == 1) {
    out[0] = chunked_sum(x, n, scratch);
    return;
  }
  // [K, R]: contiguous rows.
  if (size.size() == 2 && red[1]) {
    const int64_t K = size[0], R = size[1];
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t k = 0; k < K; ++k) out[k] = contiguous_sum(x + k * R, R);
    return;
  }
  // [R, K] or [K0, R, K1]: add rows of K1 in order of r (vectorised along K1).
  if ((size.size() == 2 && red[0]) || (size.size() == 3 && red[1])) {
    const int64_t K0 = size.size() == 3 ? size[0] : 1;
    const int64_t R = size.size() == 3 ? size[1] : size[0];
    const int64_t K1 = size.back();
    constexpr int64_t kBlock = 256;
    const int64_t blocks = (K1 + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t t = 0; t < K0 * blocks; ++t) {
      const int64_t k0 = t / blocks, b0 = (t % blocks) * kBlock, len = std::min(kBlock, K1 - b0);
      T* o = out + k0 * K1 + b0;
      const T* src = x + k0 * R * K1 + b0;
      for (int64_t j = 0; j < len; ++j) o[j] = T(0);
      for (int64_t r = 0; r < R; ++r) {
        const T* row = src + r * K1;
        for (int64_t j = 0; j < len; ++j) o[j] += row[j];
      }
    }
    return;
  }
  // Anything else: each output element walks its reduced elements in row-major order.
  const std::vector<int64_t> xstr = xs.strides();
  std::vector<int> rdims, kdims;
  for (int d = 0; d < xs.ndim(); ++d) (keep[d] == 1 && xs[d] != 1 ? rdims : kdims).push_back(d);
  int64_t rcount = 1;
  for (int d : rdims) rcount *= xs[d];
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t o = 0; o < m; ++o) {
    int64_t base = 0, rem = o;
    for (int i = static_cast<int>(kdims.size()) - 1; i >= 0; --i) {
      const int d = kdims[static_cast<size_t>(i)];
      base += (rem % xs[d]) * xstr[static_cast<size_t>(d)];
      rem /= xs[d];
    }
    T acc = T(0);
    for (int64_t r = 0; r < rcount; ++r) {
      int64_t off = base, rr = r;
      for (int i = static_cast<int>(rdims.size()) - 1; i >= 0; --i) {
        const int d = rdims[static_cast<size_t>(i)];
        off += (rr % xs[d]) * xstr[static_cast<size_t>(d)];
        rr /= xs[d];
      }
      acc += x[off];
    }
    out[o] = acc;
  }
}

// Copies a contiguous tensor of shape xs, broadcast to `out` (shape os), into out.
template <typename T>
void broadcast_copy(const T* x, const Shape& xs, T* out, const Shape& os) {
  const StridedLoop l = collapse(os, {broadcast_strides(xs, os), os.strides()});
  const int64_t inner = l.sizes.back(), rows = os.numel() / std::max<int64_t>(inner, 1);
  const int64_t sx = l.strides[0].back();
#pragma omp parallel for schedule(static) if (os.numel() > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off[2];
    row_offsets(l, r, off);
    const T* src = x + off[0];
    T* dst = out + off[1];
    if (sx == 0) {
      const T v = src[0];
      for (int64_t i = 0; i < inner; ++i) dst[i] = v;
    } else {
      for (int64_t i = 0; i < inner; ++i) dst[i] = src[i];
    }
  }
}

}  // namespace lethe::cpu
