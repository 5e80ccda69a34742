// Device-neutral views of shapes that the CPU kernels (ops/*.cpp) and the CUDA kernels (ops/cuda/)
// both walk: broadcast strides, merged iteration spaces, matmul batch dims, the [outer, R, inner]
// view of an axis. Written once here so that the two backends cannot disagree on what they index.
// Host functions; the small structs are plain data a CUDA kernel takes by value.
//
//   auto l = layout::collapse(out, {layout::broadcast_strides(a, out), out.strides()});
//   layout::AxisView v = layout::axis_view(x, axis);  // x[o][r][i] at (o * v.r + r) * v.inner + i
#pragma once

#include <cstdint>
#include <vector>

#include "framework/shape.h"

namespace lethe::layout {

// Strides (in elements) of a contiguous tensor of shape `in` broadcast to `out` (0 along broadcast
// dims, `in` padded with leading ones).
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  const int n = out.ndim(), off = n - in.ndim();
  std::vector<int64_t> st(static_cast<size_t>(n), 0);
  int64_t s = 1;
  for (int d = in.ndim() - 1; d >= 0; --d) {
    st[static_cast<size_t>(d + off)] = in[d] == 1 ? 0 : s;
    s *= in[d];
  }
  return st;
}

// An iteration space over dims `sizes` (outermost first) read through one stride vector per
// operand.
struct StridedLoop {
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> strides;
};

// Drops size-1 dims and merges adjacent dims wherever every operand walks them as one (so a
// same-shape or row-broadcast loop becomes one or two long dims). Always returns >= 1 dim.
inline StridedLoop collapse(const Shape& out, const std::vector<std::vector<int64_t>>& strides) {
  StridedLoop l;
  l.strides.resize(strides.size());
  for (int d = 0; d < out.ndim(); ++d) {
    if (out[d] == 1) continue;
    bool merge = !l.sizes.empty();
    for (size_t k = 0; merge && k < strides.size(); ++k)
      merge = l.strides[k].back() == strides[k][static_cast<size_t>(d)] * out[d];
    if (merge) {
      l.sizes.back() *= out[d];
      for (size_t k = 0; k < strides.size(); ++k)
        l.strides[k].back() = strides[k][static_cast<size_t>(d)];
    } else {
      l.sizes.push_back(out[d]);
      for (size_t k = 0; k < strides.size(); ++k)
        l.strides[k].push_back(strides[k][static_cast<size_t>(d)]);
    }
  }
  if (l.sizes.empty()) {
    l.sizes.push_back(1);
    for (auto& s : l.strides) s.push_back(0);
  }
  return l;
}

// s left-padded with ones to n dims (n >= s.ndim()).
inline Shape pad_to(const Shape& s, int n) {
  std::vector<int64_t> d(static_cast<size_t>(n - s.ndim()), 1);
  d.insert(d.end(), s.dims().begin(), s.dims().end());
  return Shape(std::move(d));
}

// s with the dims in `axes` set to 1 (a reduction's output with keepdim).
inline Shape keep_shape(const Shape& s, const std::vector<int>& axes) {
  std::vector<int64_t> d = s.dims();
  for (int a : axes) d[static_cast<size_t>(a)] = 1;
  return Shape(std::move(d));
}

// The batch dims of a matmul operand (all but the last two).
inline Shape batch_shape(const Shape& s) {
  return Shape(std::vector<int64_t>(s.dims().begin(), s.dims().end() - 2));
}

// For every flat index of out_batch, the flat index of the matrix of in_batch it reads
// (right-aligned, size-1 dims broadcast).
inline std::vector<int64_t> broadcast_index(const Shape& in_batch, const Shape& out_batch) {
  const int no = out_batch.ndim();
  const std::vector<int64_t> st = broadcast_strides(in_batch, out_batch);
  const int64_t nb = out_batch.numel();
  std::vector<int64_t> res(static_cast<size_t>(nb));
  std::vector<int64_t> idx(static_cast<size_t>(no), 0);
  for (int64_t i = 0; i < nb; ++i) {
    int64_t off = 0;
    for (int d = 0; d < no; ++d) off += idx[static_cast<size_t>(d)] * st[static_cast<size_t>(d)];
    res[static_cast<size_t>(i)] = off;
    for (int d = no - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < out_batch[d]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
  return res;
}

// Row-major strides of shape s with the stride of `axis` set to 0 (gather reads x through these
// over the index's shape, then adds index * the axis's own stride).
inline std::vector<int64_t> strides_without(const Shape& s, int axis) {
  std::vector<int64_t> st = s.strides();
  st[static_cast<size_t>(axis)] = 0;
  return st;
}

// [outer, R, inner] view of a shape along `axis` (reductions and softmax walk this).
struct AxisView {
  int64_t outer = 1, r = 1, inner = 1;
};
inline AxisView axis_view(const Shape& s, int axis) {
  AxisView v;
  for (int d = 0; d < axis; ++d) v.outer *= s[d];
  v.r = s[axis];
  for (int d = axis + 1; d < s.ndim(); ++d) v.inner *= s[d];
  return v;
}

// x [N, C, S...] seen as [N, C, S]: cross entropy's logits (a position is (n, s)) and batch norm's
// input (a channel is c).
struct ChannelView {
  int64_t n = 1, c = 1, s = 1;
};
inline ChannelView channel_view(const Shape& x) {
  ChannelView v{x[0], x[1], 1};
  for (int d = 2; d < x.ndim(); ++d) v.s *= x[d];
  return v;
}

}  // namespace lethe::layout
