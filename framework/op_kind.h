// The identity of every primitive op, as an enum: kernels of other backends dispatch on it (a
// switch the compiler checks for missing cases), tests enumerate it, and Op::name() is its text.
//
//   switch (op.kind()) {
//     case OpKind::softmax: ...
//   }
//   for (OpKind k : all_op_kinds()) std::cout << op_kind_name(k) << "\n";
//
// Adding an op: one line here (name as recorded in graphs, traces and plans), a class in ops/ (or
// optim/) whose kind() returns it, its CUDA kernel in the table of ops/cuda/register.cpp (the build
// fails without it), and an entry in the op table of tests/ops/test_op_table.cpp.
#pragma once

#include <array>
#include <cstdint>

namespace lethe {

// X(enumerator) per op kind; the enumerator is the op's name. One family per line (clang-format
// would reflow the list).
// clang-format off
#define LETHE_OP_KINDS(X)                                                                            \
  /* elementwise (ops/elementwise.cpp) */                                                          \
  X(add) X(sub) X(mul) X(div)                                                                      \
  X(add_scalar) X(mul_scalar) X(rsub_scalar) X(rdiv_scalar)                                        \
  X(neg) X(exp) X(log) X(sqrt) X(pow) X(relu) X(gelu) X(sigmoid) X(tanh)                           \
  X(relu_backward) X(gelu_backward) X(sigmoid_backward) X(tanh_backward)                           \
  X(cast) X(sum_to) X(broadcast_to)                                                                \
  X(abs) X(sign) X(log1p) X(expm1) X(clamp) X(minimum) X(maximum) X(pow_tensor)                    \
  /* comparisons and selection (ops/compare.cpp) */                                                \
  X(eq) X(ne) X(lt) X(le) X(gt) X(ge) X(where)                                                     \
  /* activations (ops/activation.cpp) */                                                           \
  X(leaky_relu) X(leaky_relu_backward) X(silu) X(silu_backward)                                    \
  /* creation (ops/creation.cpp) */                                                                \
  X(full) X(copy)                                                                                  \
  /* reductions (ops/reduce.cpp) */                                                                \
  X(sum) X(mean) X(max) X(argmax) X(max_backward) X(min) X(argmin) X(cumsum)                       \
  /* indexing (ops/indexing.cpp) */                                                                \
  X(gather) X(scatter_add) X(index_select)                                                         \
  /* resampling and padding (ops/upsample.cpp, ops/pad.cpp) */                                     \
  X(upsample_nearest2d) X(upsample_nearest2d_backward)                                             \
  X(upsample_bilinear2d) X(upsample_bilinear2d_backward)                                           \
  X(pad) X(pad_backward)                                                                           \
  /* softmax (ops/softmax.cpp) */                                                                  \
  X(softmax) X(log_softmax) X(softmax_backward) X(log_softmax_backward)                            \
  /* losses (ops/loss.cpp) */                                                                      \
  X(cross_entropy) X(cross_entropy_backward) X(nll_loss) X(nll_loss_backward)                     \
  X(bce_with_logits) X(bce_with_logits_backward)                                                   \
  /* matmul (ops/matmul.cpp) */                                                                    \
  X(matmul) X(linear)                                                                              \
  /* normalisations (ops/norm.cpp) */                                                              \
  X(layer_norm) X(layer_norm_backward_input) X(layer_norm_backward_weight)                         \
  X(batch_norm_stats) X(batch_norm) X(batch_norm_backward_input) X(batch_norm_backward_weight)     \
  X(batch_norm_update_stats)                                                                       \
  /* convolution and pooling (ops/conv.cpp) */                                                     \
  X(conv2d) X(conv2d_backward_input) X(conv2d_backward_weight) X(conv_transpose2d)                 \
  X(max_pool2d) X(max_pool2d_backward) X(max_pool2d_indices) X(avg_pool2d) X(avg_pool2d_backward)                        \
  X(adaptive_avg_pool2d) X(adaptive_avg_pool2d_backward)                                           \
  /* shape ops (ops/shape_ops.cpp) */                                                              \
  X(reshape) X(permute) X(slice) X(slice_backward) X(concat)                                       \
  /* embedding, dropout, attention (ops/embedding.cpp, dropout.cpp, attention.cpp) */              \
  X(embedding) X(embedding_backward) X(dropout) X(dropout_backward) X(causal_mask)                 \
  /* optimizer updates (optim/update_ops.cpp) */                                                   \
  X(sgd_update) X(adamw_update) X(rmsprop_update)                                                  \
  /* data parallel (ops/comm.cpp) */                                                               \
  X(all_reduce) X(bucket_slice)
// clang-format on

enum class OpKind : uint16_t {
#define LETHE_OP_KIND_ENUM(n) n,
  LETHE_OP_KINDS(LETHE_OP_KIND_ENUM)
#undef LETHE_OP_KIND_ENUM
};

inline constexpr int kOpKindCount = 0
#define LETHE_OP_KIND_COUNT(n) +1
    LETHE_OP_KINDS(LETHE_OP_KIND_COUNT)
#undef LETHE_OP_KIND_COUNT
    ;

// The op's name ("log_softmax"), as in graphs, traces, plans and error messages.
constexpr const char* op_kind_name(OpKind k) {
  switch (k) {
#define LETHE_OP_KIND_NAME(n) \
  case OpKind::n:             \
    return #n;
    LETHE_OP_KINDS(LETHE_OP_KIND_NAME)
#undef LETHE_OP_KIND_NAME
  }
  return "?";
}

// Every kind, in declaration order.
constexpr std::array<OpKind, kOpKindCount> all_op_kinds() {
  std::array<OpKind, kOpKindCount> r{};
  for (int i = 0; i < kOpKindCount; ++i) r[static_cast<size_t>(i)] = static_cast<OpKind>(i);
  return r;
}

}  // namespace lethe
