// Internal: the coordinate maps of pad and upsample, written once for the CPU kernels (ops/pad.cpp,
// ops/upsample.cpp) and their CUDA twins (ops/cuda/pad.cu, ops/cuda/upsample.cu), so that the two
// backends read and sum the same elements in the same order. Plain functions of plain data,
// __host__ __device__ under nvcc.
//
//   const int64_t s = resample::pad_source(PadMode::reflect, o, before, in);  // -1: the pad value
//   T y = resample::upsample_at(x_plane, g, oh, ow);                          // one output pixel
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/attrs.h"

#if defined(__CUDACC__)
#define LETHE_HD __host__ __device__
#else
#define LETHE_HD
#endif

namespace lethe::resample {

// ------------------------------------------------------------------------------------- pad

// The input position that output position o reads along a dim padded by `before` (in elements
// along it); -1 for a constant pad's value.
LETHE_HD inline int64_t pad_source(PadMode mode, int64_t o, int64_t before, int64_t in) {
  int64_t s = o - before;
  switch (mode) {
    case PadMode::constant:
      return s >= 0 && s < in ? s : -1;
    case PadMode::reflect:
      if (s < 0) s = -s;
      if (s >= in) s = 2 * (in - 1) - s;
      return s;
    case PadMode::replicate:
      return s < 0 ? 0 : (s >= in ? in - 1 : s);
  }
  return -1;
}

// The output positions that read input position i (pad_source(o) == i), as up to 3 ranges
// [lo[k], hi[k]) in increasing order; returns the number of ranges.
LETHE_HD inline int pad_readers(PadMode mode, int64_t i, int64_t before, int64_t in, int64_t out,
                                int64_t* lo, int64_t* hi) {
  int n = 0;
  const int64_t centre = i + before;
  switch (mode) {
    case PadMode::constant:
      if (centre >= 0 && centre < out) lo[n] = centre, hi[n++] = centre + 1;
      break;
    case PadMode::replicate:
      lo[n] = i == 0 ? 0 : centre;
      hi[n++] = i == in - 1 ? out : centre + 1;
      break;
    case PadMode::reflect: {
      const int64_t left = before - i, right = before + 2 * (in - 1) - i;
      if (i >= 1 && left >= 0) lo[n] = left, hi[n++] = left + 1;
      lo[n] = centre, hi[n++] = centre + 1;
      if (i <= in - 2 && right < out) lo[n] = right, hi[n++] = right + 1;
      break;
    }
  }
  return n;
}

// ------------------------------------------------------------------------------------- upsample

// One spatial axis of an upsample: sizes, the user's scale factor (0: none) and align_corners.
struct UpAxis {
  int64_t in = 1, out = 1;
  double scale = 0;
  bool align_corners = false;
};

// Axis d (0: height, 1: width) of an upsample's attributes.
inline UpAxis up_axis(const UpsampleAttrs& a, int d) {
  return UpAxis{a.input_size[d], a.size[d], a.scale[d], a.align_corners};
}

// The source step per output step, in T as torch computes it (area_pixel_compute_scale).
template <typename T>
LETHE_HD inline T up_scale(const UpAxis& a) {
  if (a.align_corners) return a.out > 1 ? T(a.in - 1) / T(a.out - 1) : T(0);
  return a.scale > 0 ? T(1.0 / a.scale) : T(a.in) / T(a.out);
}

// nearest: the input position output position o reads (torch's "nearest": floor, not rounding).
LETHE_HD inline int64_t nearest_source(const UpAxis& a, int64_t o) {
  const float s = a.scale > 0 ? float(1.0 / a.scale) : float(a.in) / float(a.out);
  const int64_t i = static_cast<int64_t>(floorf(float(o) * s));
  return i < a.in - 1 ? i : a.in - 1;
}

// bilinear: output position o reads i0 with weight w0 and i1 (= i0 or i0 + 1) with weight w1.
template <typename T>
struct Taps {
  int64_t i0, i1;
  T w0, w1;
};
template <typename T>
LETHE_HD inline Taps<T> bilinear_taps(const UpAxis& a, int64_t o) {
  const T scale = up_scale<T>(a);
  T src = a.align_corners ? scale * T(o) : scale * (T(o) + T(0.5)) - T(0.5);
  if (src < T(0)) src = T(0);
  int64_t i0 = static_cast<int64_t>(src);
  if (i0 > a.in - 1) i0 = a.in - 1;
  const int64_t i1 = i0 < a.in - 1 ? i0 + 1 : i0;
  const T w1 = src - T(i0);
  return Taps<T>{i0, i1, T(1) - w1, w1};
}

// The weight with which output position o reads input position i (0 when it does not).
template <typename T>
LETHE_HD inline T up_weight(const UpAxis& a, bool bilinear, int64_t o, int64_t i) {
  if (!bilinear) return nearest_source(a, o) == i ? T(1) : T(0);
  const Taps<T> t = bilinear_taps<T>(a, o);
  return (t.i0 == i ? t.w0 : T(0)) + (t.i1 == i ? t.w1 : T(0));
}

// The output positions that read input position i: [first, end). The taps move monotonically with
// o, so the first is found by bisection and the range ends at the first o reading past i.
template <typename T>
LETHE_HD inline void up_readers(const UpAxis& a, bool bilinear, int64_t i, int64_t* first,
                                int64_t* end) {
  // last(o): the largest input position o reads; first(o): the smallest.
  int64_t lo = 0, hi = a.out;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    const int64_t last = bilinear ? bilinear_taps<T>(a, mid).i1 : nearest_source(a, mid);
    if (last < i)
      lo = mid + 1;
    else
      hi = mid;
  }
  int64_t e = lo;
  while (e < a.out && (bilinear ? bilinear_taps<T>(a, e).i0 : nearest_source(a, e)) <= i) ++e;
  *first = lo;
  *end = e;
}

// One output pixel (oh, ow) of an upsampled [ih, iw] plane x.
template <typename T>
LETHE_HD inline T upsample_at(const T* x, const UpAxis& h, const UpAxis& w, bool bilinear,
                              int64_t oh, int64_t ow) {
  if (!bilinear) return x[nearest_source(h, oh) * w.in + nearest_source(w, ow)];
  const Taps<T> th = bilinear_taps<T>(h, oh), tw = bilinear_taps<T>(w, ow);
  const T* r0 = x + th.i0 * w.in;
  const T* r1 = x + th.i1 * w.in;
  return th.w0 * (tw.w0 * r0[tw.i0] + tw.w1 * r0[tw.i1]) +
         th.w1 * (tw.w0 * r1[tw.i0] + tw.w1 * r1[tw.i1]);
}

// The gradient of input pixel (ih, iw) from the [oh, ow] gradient plane g: the output rows that
// read row ih in increasing order, in each the output columns that read column iw.
template <typename T>
LETHE_HD inline T upsample_grad_at(const T* g, const UpAxis& h, const UpAxis& w, bool bilinear,
                                   int64_t ih, int64_t iw) {
  int64_t r0, r1, c0, c1;
  up_readers<T>(h, bilinear, ih, &r0, &r1);
  up_readers<T>(w, bilinear, iw, &c0, &c1);
  T acc = T(0);
  for (int64_t r = r0; r < r1; ++r) {
    const T wr = up_weight<T>(h, bilinear, r, ih);
    T row = T(0);
    for (int64_t c = c0; c < c1; ++c) row += up_weight<T>(w, bilinear, c, iw) * g[r * w.out + c];
    acc += wr * row;
  }
  return acc;
}

}  // namespace lethe::resample
