// Convolution and pooling over NCHW tensors.
#pragma once

#include <array>
#include <optional>

#include "framework/tensor.h"
#include "ops/attrs.h"  // Conv2dParams

namespace lethe {

// x [N, Cin, H, W], w [Cout, Cin/groups, kh, kw], b [Cout] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(),
              const Conv2dParams& p = {});
// The transpose (gradient) of conv2d: x [N, Cin, H, W], w [Cin, Cout/groups, kh, kw], b [Cout] or
// undefined; output [N, Cout, (H-1)·s - 2p + d·(kh-1) + output_padding + 1, ...], as PyTorch.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(),
                        const Conv2dParams& p = {}, std::array<int64_t, 2> output_padding = {0, 0});
// stride {0, 0} = kernel; options as torch.nn.functional.max_pool2d / avg_pool2d.
Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel,
                  std::array<int64_t, 2> stride = {0, 0}, std::array<int64_t, 2> padding = {0, 0},
                  std::array<int64_t, 2> dilation = {1, 1}, bool ceil_mode = false);
// max_pool2d and, as torch's return_indices, where each output came from: its flat index in the
// input plane (h * W + w), i64, without a gradient.
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, std::array<int64_t, 2> kernel,
                                                  std::array<int64_t, 2> stride = {0, 0},
                                                  std::array<int64_t, 2> padding = {0, 0},
                                                  std::array<int64_t, 2> dilation = {1, 1},
                                                  bool ceil_mode = false);
Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel,
                  std::array<int64_t, 2> stride = {0, 0}, std::array<int64_t, 2> padding = {0, 0},
                  bool ceil_mode = false, bool count_include_pad = true,
                  std::optional<int64_t> divisor_override = std::nullopt);
Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size);

// Gradient ops (recorded by the gradient rules above; public for tests and other backends).
// dx of conv2d from grad_out [N, Cout, Ho, Wo] and w, for an input of shape input_shape.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& input_shape,
                             const Conv2dParams& p);
// dw of conv2d from x and grad_out, for a weight of shape weight_shape.
Tensor conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                              const Conv2dParams& p);
// dx of max_pool2d: each window's gradient goes to its first maximum (row-major scan).
Tensor max_pool2d_backward(const Tensor& x, const Tensor& grad_out, const Pool2dAttrs& a);
Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pool2dAttrs& a);
Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape);

}  // namespace lethe
