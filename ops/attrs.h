// The attributes of every op family, as public structs: the typed half of the contract between an
// op (ops/*.cpp, optim/) and the kernels of other backends (ops/cuda/). A kernel reads them with
// Op::attrs_as<...>() and dispatches on Op::kind(); the text of Op::attrs() is for the graph hash
// and exports only, never parsed.
//
//   void softmax(const Op& op, const KernelCall& c) {
//     const SoftmaxAttrs& a = op.attrs_as<SoftmaxAttrs>();        // softmax, log_softmax, ...
//     const bool log = op.kind() == OpKind::log_softmax;
//   }
//
// Which kinds hold which struct is written next to each; kinds not listed have no attributes
// (add, sub, mul, div, neg, exp, log, sqrt, relu, sigmoid, tanh, silu and their backwards, copy,
// embedding, batch_norm_stats, bce_with_logits and its backward, abs, sign, log1p, expm1, minimum,
// maximum, pow_tensor, where).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "framework/dtype.h"
#include "framework/shape.h"

namespace lethe {

// ------------------------------------------------------------------- elementwise, creation

// add_scalar, mul_scalar, rsub_scalar, rdiv_scalar (the scalar), pow (the exponent),
// leaky_relu, leaky_relu_backward (the negative slope).
struct ScalarAttrs {
  double value = 0;
};

enum class GeluApproximation { none, tanh };
// gelu, gelu_backward.
struct GeluAttrs {
  GeluApproximation approximate = GeluApproximation::none;
};

// cast: the output dtype.
struct CastAttrs {
  DType dtype = DType::f32;
};

// sum_to, broadcast_to, reshape: the output shape.
struct ShapeAttrs {
  Shape shape;
};

// clamp: the bounds it has (torch.clamp: at least one; min > max gives max everywhere).
struct ClampAttrs {
  bool has_min = false, has_max = false;
  double min = 0, max = 0;
};

// eq, ne, lt, le, gt, ge: tensor-tensor (one more input) or, when scalar, against `value`.
struct CompareAttrs {
  bool scalar = false;
  double value = 0;
};

// full: every element's value (the output meta is the node's).
struct FullAttrs {
  double value = 0;
};

// ------------------------------------------------------------------- reductions, softmax, losses

// sum, mean: the reduced axes (sorted, in [0, ndim)); keepdim as in PyTorch.
struct ReduceAttrs {
  std::vector<int> axes;
  bool keepdim = false;
};

// max, argmax, min, argmin (keepdim as in PyTorch), max_backward (keepdim unused; also min's
// gradient).
struct AxisAttrs {
  int axis = 0;
  bool keepdim = false;
};

// cumsum: along axis; reverse sums from the end (the gradient of a cumsum).
struct CumsumAttrs {
  int axis = 0;
  bool reverse = false;
};

// softmax, log_softmax, softmax_backward, log_softmax_backward.
struct SoftmaxAttrs {
  int axis = 0;
};

enum class Reduction { none, sum, mean };
// cross_entropy, cross_entropy_backward, nll_loss, nll_loss_backward (label_smoothing 0). weight:
// whether a [C] class-weight tensor is the input after the target; a weighted mean divides by the
// sum of the weights of the non-ignored targets (as PyTorch).
struct CrossEntropyAttrs {
  Reduction reduction = Reduction::mean;
  int64_t ignore_index = -100;
  bool weight = false;
  double label_smoothing = 0.0;
};

// ------------------------------------------------------------------- matmul, normalisations

// matmul: op(a) op(b) with op = transpose of the last two dims where asked; reduce_batch sums the
// batch of products into one matrix (the gradient of a broadcast operand).
struct MatmulAttrs {
  bool transpose_a = false, transpose_b = false, reduce_batch = false;
};

// linear: x wᵀ (+ b when bias).
struct LinearAttrs {
  bool bias = false;
};

// layer_norm (weight, bias: the inputs it has), layer_norm_backward_input (weight: whether w is an
// input; bias unused), layer_norm_backward_weight (weight and bias unused).
struct LayerNormAttrs {
  std::vector<int64_t> normalized_shape;
  double eps = 1e-5;
  bool weight = false, bias = false;
};

// batch_norm (apply), batch_norm_backward_input, batch_norm_backward_weight: the inputs are the
// x-like ones, then the statistics ([2, C] batch mean and variance in training, running_mean and
// running_var [C] in eval), then weight? and bias?.
struct BatchNormAttrs {
  bool training = true, weight = false, bias = false;
  double eps = 1e-5;
};

// batch_norm_update_stats: running = (1 - momentum) running + momentum batch, the variance
// unbiased over `count` elements per channel.
struct BatchNormUpdateAttrs {
  double momentum = 0.1;
  int64_t count = 0;
};

// ------------------------------------------------------------------- convolution, pooling

struct Conv2dParams {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};

// conv2d (bias: whether b is an input), conv2d_backward_input, conv2d_backward_weight,
// conv_transpose2d (bias false; its bias is a separate add).
struct Conv2dAttrs {
  Conv2dParams params;
  bool bias = false;
};

// max_pool2d, max_pool2d_backward (dilation, ceil_mode), avg_pool2d, avg_pool2d_backward
// (ceil_mode, count_include_pad, divisor_override: 0 for none; dilation 1), as torch.nn.functional.
struct Pool2dAttrs {
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, padding{0, 0}, dilation{1, 1};
  bool ceil_mode = false, count_include_pad = true;
  int64_t divisor_override = 0;
};

// adaptive_avg_pool2d: the output's spatial size.
struct AdaptivePool2dAttrs {
  std::array<int64_t, 2> output_size{1, 1};
};

// upsample_nearest2d, upsample_bilinear2d and their backwards: output (size) and input
// (input_size) spatial sizes; scale > 0 where the user gave a scale factor (torch then maps
// coordinates with 1 / scale, not with the size ratio); align_corners for bilinear only.
struct UpsampleAttrs {
  std::array<int64_t, 2> size{1, 1}, input_size{1, 1};
  std::array<double, 2> scale{0, 0};
  bool align_corners = false;
};

enum class PadMode { constant, reflect, replicate };
// pad: pads as torch.nn.functional.pad ((before, after) pairs, last dim first), constant value.
struct PadAttrs {
  std::vector<int64_t> pads;
  PadMode mode = PadMode::constant;
  double value = 0;
};

// pad_backward: the gradient of a pad along one axis (one node per padded axis).
struct PadBackwardAttrs {
  int axis = 0;
  int64_t before = 0, after = 0;
  PadMode mode = PadMode::constant;
};

// ------------------------------------------------------------------- shape ops, embedding, dropout

// permute: output dim i is input dim dims[i].
struct PermuteAttrs {
  std::vector<int> dims;
};

// slice (elements start, start + step, ... along axis), slice_backward (scatter back into zeros).
struct SliceAttrs {
  int axis = 0;
  int64_t start = 0, step = 1;
};

// concat.
struct ConcatAttrs {
  int axis = 0;
};

// gather, scatter_add, index_select: the indexed dim.
struct IndexAttrs {
  int dim = 0;
};

// embedding_backward: rows of the table; the row that gets no gradient (padding_idx in [0, rows),
// or -1 for none).
struct EmbeddingAttrs {
  int64_t num_embeddings = 0;
  int64_t padding_idx = -1;
};

// dropout (forward_node -1: the mask is that of the node itself), dropout_backward (the forward
// node whose mask it applies again).
struct DropoutAttrs {
  double p = 0.5;
  int64_t forward_node = -1;
};

// causal_mask: masked positions become -inf (neg_inf) or 0.
struct CausalMaskAttrs {
  bool neg_inf = true;
};

// all_reduce: one bucket of gradients (numel values packed in input order, then zeros up to the
// bucket's padded length), averaged over the ranks; bucket numbers the step's buckets. With
// `ordered`, the last input is not packed: it is a value of the previous bucket, read only so that
// every plan runs the buckets in order (the kernels ignore it).
struct AllReduceAttrs {
  int64_t numel = 0;
  int bucket = 0;
  bool ordered = false;
};

// bucket_slice: one gradient back out of an all-reduced bucket (its values from offset on).
struct BucketSliceAttrs {
  int64_t offset = 0;
};

}  // namespace lethe
