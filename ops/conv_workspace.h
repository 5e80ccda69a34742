// Internal: how conv2d's ops (ops/conv.cpp, compiled without CUDA headers) ask the CUDA backend for
// the workspace of the cuDNN algorithm it will run. The backend installs the hook when it registers
// its kernels; without it (no CUDA in this build or no device used yet) the ops report the CPU
// size.
//
//   if (auto fn = detail::cuda_conv_workspace_hook(); fn && in[0].device.is_cuda())
//     return fn(ConvQuery{...});
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "framework/dtype.h"

namespace lethe::detail {

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

// Bytes of workspace the backend's algorithm for `q` needs (it throws lethe::Error when cuDNN has
// no deterministic algorithm for the geometry).
using ConvWorkspaceFn = size_t (*)(const ConvQuery& q);

void set_cuda_conv_workspace_hook(ConvWorkspaceFn fn);
ConvWorkspaceFn cuda_conv_workspace_hook();  // null until the CUDA backend is installed

}  // namespace lethe::detail
