// Internal (lethe_cuda): every CUDA kernel entry point, in the file named like the op's CPU file
// (ops/cuda/softmax.cu beside ops/softmax.cpp; optim/cuda/ beside optim/). The table of
// ops/cuda/register.cpp maps each OpKind to one of these (a switch the compiler checks for missing
// kinds); each reads its op's attributes typed (ops/attrs.h) and dispatches on op.kind().
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "framework/op.h"
#include "ops/attrs.h"

namespace lethe::cuda::detail {

// Thrown by a family kernel handed a kind that is not of its family (a wrong table entry).
[[noreturn]] void throw_not_in_family(const char* family, OpKind kind);

// elementwise.cu
void binary(const Op& op, const KernelCall& c);  // add, sub, mul, div, minimum, maximum, pow_tensor
void unary(const Op& op,
           const KernelCall& c);  // add_scalar ... tanh, abs, sign, log1p, expm1, clamp
void activation_backward(const Op& op, const KernelCall& c);  // relu/gelu/sigmoid/tanh_backward
void cast(const Op& op, const KernelCall& c);
void sum_to(const Op& op, const KernelCall& c);
void broadcast_to(const Op& op, const KernelCall& c);
// Bias adds other families' kernels call (conv2d after cuDNN, linear before its GEMM).
void add_bias_channels(const KernelCall& c, const void* bias, void* y, int64_t channels,
                       int64_t plane);
void add_bias_rows(const KernelCall& c, const void* bias, void* y, int64_t rows, int64_t cols);

// compare.cu
void compare(const Op& op, const KernelCall& c);  // eq, ne, lt, le, gt, ge
void where(const Op& op, const KernelCall& c);
// activation.cu
void leaky_relu(const Op& op, const KernelCall& c);  // leaky_relu, leaky_relu_backward
void silu(const Op& op, const KernelCall& c);        // silu, silu_backward

// creation.cu
void full(const Op& op, const KernelCall& c);
void copy(const Op& op, const KernelCall& c);

// reduce.cu
void sum_mean(const Op& op, const KernelCall& c);    // sum, mean
void max_argmax(const Op& op, const KernelCall& c);  // max, argmax, min, argmin
void max_backward(const Op& op, const KernelCall& c);
void cumsum(const Op& op, const KernelCall& c);
// sum, mean, sum_to: the CPU kernel's scratch or the column sums' partials, the larger.
size_t column_sums_workspace(const Op& op, const std::vector<TensorMeta>& in,
                             const TensorMeta& out);

// indexing.cu
void gather(const Op& op, const KernelCall& c);
void scatter_add(const Op& op, const KernelCall& c);
void index_select(const Op& op, const KernelCall& c);

// upsample.cu, pad.cu
void upsample2d(const Op& op, const KernelCall& c);           // nearest, bilinear
void upsample2d_backward(const Op& op, const KernelCall& c);  // their backwards
void pad(const Op& op, const KernelCall& c);
void pad_backward(const Op& op, const KernelCall& c);

// softmax.cu
void softmax(const Op& op, const KernelCall& c);           // softmax, log_softmax
void softmax_backward(const Op& op, const KernelCall& c);  // (log_)softmax_backward

// loss.cu
void cross_entropy(const Op& op, const KernelCall& c);
void cross_entropy_backward(const Op& op, const KernelCall& c);
void nll_loss(const Op& op, const KernelCall& c);
void nll_loss_backward(const Op& op, const KernelCall& c);
void bce_with_logits(const Op& op, const KernelCall& c);
void bce_with_logits_backward(const Op& op, const KernelCall& c);

// shape_ops.cu
void reshape(const Op& op, const KernelCall& c);
void permute(const Op& op, const KernelCall& c);
void slice(const Op& op, const KernelCall& c);
void slice_backward(const Op& op, const KernelCall& c);
void concat(const Op& op, const KernelCall& c);

// embedding.cu, dropout.cu, attention.cu
void embedding(const Op& op, const KernelCall& c);
void embedding_backward(const Op& op, const KernelCall& c);
size_t embedding_backward_workspace(const Op& op, const std::vector<TensorMeta>& in,
                                    const TensorMeta& out);  // the radix sort's buffers
void dropout(const Op& op, const KernelCall& c);             // dropout, dropout_backward
void causal_mask(const Op& op, const KernelCall& c);

// comm.cu (NCCL)
void all_reduce(const Op& op, const KernelCall& c);
void bucket_slice(const Op& op, const KernelCall& c);

// matmul.cpp (cuBLAS)
void matmul(const Op& op, const KernelCall& c);
void linear(const Op& op, const KernelCall& c);
// matmul, linear: the cuBLAS workspace (ops/gemm.h).
size_t gemm_workspace(const Op& op, const std::vector<TensorMeta>& in, const TensorMeta& out);

// conv.cu: convolution through cuDNN, pooling.
void conv2d(const Op& op, const KernelCall& c);
void conv2d_backward_input(const Op& op, const KernelCall& c);
void conv2d_backward_weight(const Op& op, const KernelCall& c);
void conv_transpose2d(const Op& op, const KernelCall& c);  // conv2d_backward_input's computation
// conv2d, conv2d_backward_input, conv_transpose2d, conv2d_backward_weight: the workspace of the
// cuDNN algorithm the kernel will run.
size_t conv_workspace(const Op& op, const std::vector<TensorMeta>& in, const TensorMeta& out);
void max_pool2d(const Op& op, const KernelCall& c);
void max_pool2d_backward(const Op& op, const KernelCall& c);
void max_pool2d_indices(const Op& op, const KernelCall& c);
void avg_pool2d(const Op& op, const KernelCall& c);
void avg_pool2d_backward(const Op& op, const KernelCall& c);
void adaptive_avg_pool2d(const Op& op, const KernelCall& c);
void adaptive_avg_pool2d_backward(const Op& op, const KernelCall& c);

// norm.cu
void layer_norm(const Op& op, const KernelCall& c);
void layer_norm_backward_input(const Op& op, const KernelCall& c);
void layer_norm_backward_weight(const Op& op, const KernelCall& c);
size_t layer_norm_backward_weight_workspace(const Op& op, const std::vector<TensorMeta>& in,
                                            const TensorMeta& out);  // + column partials
void batch_norm_stats(const Op& op, const KernelCall& c);
void batch_norm(const Op& op, const KernelCall& c);
void batch_norm_backward_input(const Op& op, const KernelCall& c);
void batch_norm_backward_weight(const Op& op, const KernelCall& c);
void batch_norm_update_stats(const Op& op, const KernelCall& c);

// optim/cuda/update_ops.cu
void sgd_update(const Op& op, const KernelCall& c);
void adamw_update(const Op& op, const KernelCall& c);
void rmsprop_update(const Op& op, const KernelCall& c);

}  // namespace lethe::cuda::detail
