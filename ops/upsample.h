// Upsampling of NCHW tensors, as torch.nn.functional.interpolate with mode "nearest" and
// "bilinear" (align_corners as torch; coordinates map with 1 / scale when a scale is given and
// with the size ratio when a size is, as torch without recompute_scale_factor).
//
//   Tensor y = upsample_nearest2d(x, 2.0, 2.0);                 // [N, C, 2H, 2W]
//   Tensor z = upsample_bilinear2d(x, {64, 48}, true);          // align_corners = true
//
// A scale gives the size floor(in * scale). Gradients sum, for each input pixel, the output
// pixels that read it (a fixed order; no atomics on either backend).
#pragma once

#include <array>
#include <cstdint>

#include "framework/tensor.h"

namespace lethe {

Tensor upsample_nearest2d(const Tensor& x, std::array<int64_t, 2> size);
Tensor upsample_nearest2d(const Tensor& x, double scale_h, double scale_w);
Tensor upsample_bilinear2d(const Tensor& x, std::array<int64_t, 2> size,
                           bool align_corners = false);
Tensor upsample_bilinear2d(const Tensor& x, double scale_h, double scale_w,
                           bool align_corners = false);

}  // namespace lethe
