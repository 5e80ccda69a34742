// The CUDA backend's kernel table (framework/cuda/runtime.cpp reads it into its Backend, which
// lethe::cuda::init() registers, never a static initialiser, so that no linker can drop it): one
// kernel per op kind, and the kernels that size their own workspace. kernel_of's switch has no
// default and this file turns -Wswitch into an error, so an op kind added to framework/op_kind.h
// without a CUDA kernel does not build.
#include "framework/cuda/backend.h"
#include "ops/cuda/kernels.h"

#pragma GCC diagnostic error "-Wswitch"

namespace lethe::cuda::detail {

[[noreturn]] void throw_not_in_family(const char* family, OpKind kind) {
  throw Error(lethe::detail::concat("internal error: the CUDA kernel of ", family, " was handed ",
                                    op_kind_name(kind),
                                    " (ops/cuda/register.cpp's table is wrong)"));
}

DeviceKernel kernel_of(OpKind k) {
  switch (k) {
    case OpKind::add:
    case OpKind::sub:
    case OpKind::mul:
    case OpKind::div:
      return binary;
    case OpKind::add_scalar:
    case OpKind::mul_scalar:
    case OpKind::rsub_scalar:
    case OpKind::rdiv_scalar:
    case OpKind::neg:
    case OpKind::exp:
    case OpKind::log:
    case OpKind::sqrt:
    case OpKind::pow:
    case OpKind::relu:
    case OpKind::gelu:
    case OpKind::sigmoid:
    case OpKind::tanh:
    case OpKind::abs:
    case OpKind::sign:
    case OpKind::log1p:
    case OpKind::expm1:
    case OpKind::clamp:
      return unary;
    case OpKind::minimum:
    case OpKind::maximum:
    case OpKind::pow_tensor:
      return binary;
    case OpKind::eq:
    case OpKind::ne:
    case OpKind::lt:
    case OpKind::le:
    case OpKind::gt:
    case OpKind::ge:
      return compare;
    case OpKind::where:
      return where;
    case OpKind::relu_backward:
    case OpKind::gelu_backward:
    case OpKind::sigmoid_backward:
    case OpKind::tanh_backward:
      return activation_backward;
    case OpKind::cast:
      return cast;
    case OpKind::leaky_relu:
    case OpKind::leaky_relu_backward:
      return leaky_relu;
    case OpKind::silu:
    case OpKind::silu_backward:
      return silu;
    case OpKind::sum_to:
      return sum_to;
    case OpKind::broadcast_to:
      return broadcast_to;
    case OpKind::full:
      return full;
    case OpKind::copy:
      return copy;
    case OpKind::sum:
    case OpKind::mean:
      return sum_mean;
    case OpKind::max:
    case OpKind::argmax:
    case OpKind::min:
    case OpKind::argmin:
      return max_argmax;
    case OpKind::max_backward:
      return max_backward;
    case OpKind::cumsum:
      return cumsum;
    case OpKind::gather:
      return gather;
    case OpKind::scatter_add:
      return scatter_add;
    case OpKind::index_select:
      return index_select;
    case OpKind::upsample_nearest2d:
    case OpKind::upsample_bilinear2d:
      return upsample2d;
    case OpKind::upsample_nearest2d_backward:
    case OpKind::upsample_bilinear2d_backward:
      return upsample2d_backward;
    case OpKind::pad:
      return pad;
    case OpKind::pad_backward:
      return pad_backward;
    case OpKind::softmax:
    case OpKind::log_softmax:
      return softmax;
    case OpKind::softmax_backward:
    case OpKind::log_softmax_backward:
      return softmax_backward;
    case OpKind::cross_entropy:
      return cross_entropy;
    case OpKind::cross_entropy_backward:
      return cross_entropy_backward;
    case OpKind::nll_loss:
      return nll_loss;
    case OpKind::nll_loss_backward:
      return nll_loss_backward;
    case OpKind::bce_with_logits:
      return bce_with_logits;
    case OpKind::bce_with_logits_backward:
      return bce_with_logits_backward;
    case OpKind::matmul:
      return matmul;
    case OpKind::linear:
      return linear;
    case OpKind::layer_norm:
      return layer_norm;
    case OpKind::layer_norm_backward_input:
      return layer_norm_backward_input;
    case OpKind::layer_norm_backward_weight:
      return layer_norm_backward_weight;
    case OpKind::batch_norm_stats:
      return batch_norm_stats;
    case OpKind::batch_norm:
      return batch_norm;
    case OpKind::batch_norm_backward_input:
      return batch_norm_backward_input;
    case OpKind::batch_norm_backward_weight:
      return batch_norm_backward_weight;
    case OpKind::batch_norm_update_stats:
      return batch_norm_update_stats;
    case OpKind::conv2d:
      return conv2d;
    case OpKind::conv2d_backward_input:
      return conv2d_backward_input;
    case OpKind::conv2d_backward_weight:
      return conv2d_backward_weight;
    case OpKind::conv_transpose2d:
      return conv_transpose2d;
    case OpKind::max_pool2d:
      return max_pool2d;
    case OpKind::max_pool2d_backward:
      return max_pool2d_backward;
    case OpKind::max_pool2d_indices:
      return max_pool2d_indices;
    case OpKind::avg_pool2d:
      return avg_pool2d;
    case OpKind::avg_pool2d_backward:
      return avg_pool2d_backward;
    case OpKind::adaptive_avg_pool2d:
      return adaptive_avg_pool2d;
    case OpKind::adaptive_avg_pool2d_backward:
      return adaptive_avg_pool2d_backward;
    case OpKind::reshape:
      return reshape;
    case OpKind::permute:
      return permute;
    case OpKind::slice:
      return slice;
    case OpKind::slice_backward:
      return slice_backward;
    case OpKind::concat:
      return concat;
    case OpKind::embedding:
      return embedding;
    case OpKind::embedding_backward:
      return embedding_backward;
    case OpKind::dropout:
    case OpKind::dropout_backward:
      return dropout;
    case OpKind::causal_mask:
      return causal_mask;
    case OpKind::sgd_update:
      return sgd_update;
    case OpKind::adamw_update:
      return adamw_update;
    case OpKind::all_reduce:
      return all_reduce;
    case OpKind::bucket_slice:
      return bucket_slice;
    case OpKind::rmsprop_update:
      return rmsprop_update;
  }
  return nullptr;
}

// The kernels whose workspace is not the CPU kernel's (Op::workspace_bytes) size it here.
KernelWorkspaceFn workspace_of(OpKind k) {
  switch (k) {
    case OpKind::conv2d:
    case OpKind::conv2d_backward_input:
    case OpKind::conv_transpose2d:
    case OpKind::conv2d_backward_weight:
      return conv_workspace;
    case OpKind::matmul:
    case OpKind::linear:
      return gemm_workspace;
    case OpKind::sum:
    case OpKind::mean:
    case OpKind::sum_to:
      return column_sums_workspace;
    case OpKind::layer_norm_backward_weight:
      return layer_norm_backward_weight_workspace;
    case OpKind::embedding_backward:
      return embedding_backward_workspace;
    default:
      return nullptr;
  }
}

}  // namespace lethe::cuda::detail
